//! The durable queue between the webhook receiver and the workers: an append-only journal
//! (`journal.jsonl`) in a local directory, fsynced before an event is acknowledged.
//!
//! Why a journal file and not an embedded database: the queue only ever appends ("accepted
//! event E", "done with E") and replays the file once at start, which is what a write-ahead log
//! is; one `write` + `fdatasync` per accepted event is the whole durability cost, and it adds no
//! dependency. A torn last line (a crash mid-append) was never acknowledged and is skipped on
//! replay. The journal is compacted at open: events still owed, and the keys seen in the last
//! [`SEEN_KEEP_MS`], are rewritten to a temporary file that replaces the old one atomically.
//!
//! De-duplication: an event is a duplicate if its id, or its (task, recording) key, was seen.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;

/// Keys of finished events are remembered this long (simulated by `createdTime` of the event's
/// acceptance, wall clock) so a late redelivery is still recognised.
pub const SEEN_KEEP_MS: i64 = 7 * 24 * 3600 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot use the listen queue at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another process uses the listen queue at {0}: stop it first, or give this one its own --queue-dir"
    )]
    Busy(PathBuf),
}

pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// One accepted webhook event, as the workers get it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueuedEvent {
    /// Position in the journal; done lines name it.
    pub seq: u64,
    pub event_id: String,
    /// `task_id/recording_id`, or `task_id/<file path>` when the event names no recording.
    pub key: String,
    /// Wall-clock acceptance, epoch ms (lag is measured from here).
    pub accepted_ms: i64,
    /// The event's `data` object as received. Its `filePath` is a bearer URL: the journal keeps
    /// it without its query string (the signature), so an event replayed after a restart
    /// carries a path to match by and no URL to download from.
    pub data: Value,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Line {
    Accept(QueuedEvent),
    Done {
        seq: u64,
        /// Wall-clock commit instant, epoch ms (latency measurements read it).
        #[serde(default)]
        at_ms: i64,
    },
    Seen {
        event_id: String,
        key: String,
        accepted_ms: i64,
    },
}

/// Whether an event was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    Queued,
    Duplicate,
}

/// Queue depth and lag, for `/healthz` and logs.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct QueueStats {
    /// Accepted events not yet committed.
    pub depth: usize,
    /// Age of the oldest of them, ms (0 when empty).
    pub oldest_ms: i64,
    pub accepted: u64,
    pub duplicates: u64,
    pub done: u64,
}

struct Inner {
    file: File,
    /// The journal's length up to its last whole line.
    len: u64,
    /// An append failed and could not be cut back off: the next starts on a line of its own.
    torn: bool,
    next_seq: u64,
    ids: HashSet<String>,
    keys: HashSet<String>,
    pending: BTreeMap<u64, QueuedEvent>,
    claimed: HashSet<u64>,
    accepted: u64,
    duplicates: u64,
    done: u64,
}

impl Inner {
    /// Appends whole lines durably, or none: a write cut short (a full disk) is cut back off,
    /// or else the next line would fuse with its fragment into one line no reopen can read,
    /// losing an event already answered 2xx.
    fn append(&mut self, lines: &[u8]) -> std::io::Result<()> {
        if self.torn && self.file.set_len(self.len).is_ok() {
            self.torn = false;
        }
        let written = if self.torn {
            // The fragment could not be cut off: end it, so it is a line of its own, skipped.
            self.file
                .write_all(b"\n")
                .and_then(|()| self.file.write_all(lines))
        } else {
            self.file.write_all(lines)
        };
        match written.and_then(|()| self.file.sync_data()) {
            Ok(()) => {
                let added = lines.len() as u64 + u64::from(self.torn);
                self.len = self.file.metadata().map_or(self.len + added, |m| m.len());
                self.torn = false;
                Ok(())
            }
            Err(e) => {
                self.torn = self.file.set_len(self.len).is_err();
                Err(e)
            }
        }
    }
}

/// The queue; share it behind an `Arc`.
pub struct Queue {
    path: PathBuf,
    /// Held (an exclusive `flock` on `lock`) while the queue is open: a second process on the
    /// same directory would compact the journal under the first, whose later appends would go
    /// to the replaced file and be lost on its next restart.
    _lock: File,
    inner: Mutex<Inner>,
    notify: Notify,
    started: Instant,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QueueError + '_ {
    move |source| QueueError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `data` with its `filePath` cut to scheme, host and path: signed URLs are never written to
/// disk (a copy of the queue directory would carry live download links).
fn unsigned(data: &Value) -> Value {
    let mut data = data.clone();
    if let Some(path) = data.get_mut("filePath")
        && let Some(mut url) = path.as_str().and_then(|p| url::Url::parse(p).ok())
    {
        url.set_query(None);
        url.set_fragment(None);
        *path = Value::String(url.into());
    } else if let Some(path) = data.get_mut("filePath").filter(|p| !p.is_null()) {
        // Not a URL: nothing to download from anyway, and nothing kept that could be one.
        *path = Value::Null;
    }
    data
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Queue {
    /// Opens (creating) the queue in `dir`, replays and compacts its journal.
    pub fn open(dir: &Path) -> Result<Queue> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(QueueError::Busy(dir.to_owned())),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let path = dir.join("journal.jsonl");
        let mut pending: BTreeMap<u64, QueuedEvent> = BTreeMap::new();
        let mut seen: HashMap<String, (String, i64)> = HashMap::new();
        let mut next_seq = 0;
        // Any error but "no journal yet" stops here: compacting what could not be read would
        // drop the events in it.
        let journal = match File::open(&path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&path)(e)),
        };
        if let Some(f) = journal {
            for line in BufReader::new(f).split(b'\n') {
                let line = line.map_err(io(&path))?;
                // A torn line (a crash mid-append, or a full disk) was never acknowledged; it
                // may even end inside a character.
                let Ok(parsed) = serde_json::from_slice::<Line>(&line) else {
                    continue;
                };
                match parsed {
                    Line::Accept(e) => {
                        next_seq = next_seq.max(e.seq + 1);
                        seen.insert(e.event_id.clone(), (e.key.clone(), e.accepted_ms));
                        pending.insert(e.seq, e);
                    }
                    Line::Done { seq, .. } => {
                        pending.remove(&seq);
                    }
                    Line::Seen {
                        event_id,
                        key,
                        accepted_ms,
                    } => {
                        seen.insert(event_id, (key, accepted_ms));
                    }
                }
            }
        }
        let cutoff = now_ms() - SEEN_KEEP_MS;
        seen.retain(|_, (_, at)| *at >= cutoff);
        // Compact: seen keys, then the events still owed, into a new file swapped in atomically.
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
        {
            let w = tmp.as_file_mut();
            let mut out = Vec::new();
            for (event_id, (key, accepted_ms)) in &seen {
                let line = Line::Seen {
                    event_id: event_id.clone(),
                    key: key.clone(),
                    accepted_ms: *accepted_ms,
                };
                out.extend(serde_json::to_vec(&line).unwrap_or_default());
                out.push(b'\n');
            }
            for e in pending.values() {
                out.extend(serde_json::to_vec(&Line::Accept(e.clone())).unwrap_or_default());
                out.push(b'\n');
            }
            w.write_all(&out).map_err(io(&path))?;
            w.sync_all().map_err(io(&path))?;
        }
        tmp.persist(&path).map_err(|e| QueueError::Io {
            path: path.clone(),
            source: e.error,
        })?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        let len = file.metadata().map_err(io(&path))?.len();
        let keys = seen.values().map(|(k, _)| k.clone()).collect();
        let ids = seen.into_keys().collect();
        if !pending.is_empty() {
            tracing::info!(
                events = pending.len(),
                "listen queue: resuming events accepted before a restart"
            );
        }
        Ok(Queue {
            path,
            _lock: lock,
            inner: Mutex::new(Inner {
                file,
                len,
                torn: false,
                next_seq,
                ids,
                keys,
                pending,
                claimed: HashSet::new(),
                accepted: 0,
                duplicates: 0,
                done: 0,
            }),
            notify: Notify::new(),
            started: Instant::now(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an event durably (written and fsynced) unless its id or key was seen; only
    /// then may the sender be answered 2xx.
    pub fn accept(&self, event_id: &str, key: &str, data: Value) -> Result<Accepted> {
        let mut inner = self.lock();
        if inner.ids.contains(event_id) || inner.keys.contains(key) {
            inner.duplicates += 1;
            return Ok(Accepted::Duplicate);
        }
        let event = QueuedEvent {
            seq: inner.next_seq,
            event_id: event_id.to_owned(),
            key: key.to_owned(),
            accepted_ms: now_ms(),
            data,
        };
        let journaled = QueuedEvent {
            data: unsigned(&event.data),
            ..event.clone()
        };
        let mut line = serde_json::to_vec(&Line::Accept(journaled)).unwrap_or_default();
        line.push(b'\n');
        inner.append(&line).map_err(io(&self.path))?;
        inner.next_seq += 1;
        inner.ids.insert(event_id.to_owned());
        inner.keys.insert(key.to_owned());
        inner.pending.insert(event.seq, event);
        inner.accepted += 1;
        drop(inner);
        self.notify.notify_waiters();
        Ok(Accepted::Queued)
    }

    /// Up to `n` owed events no worker holds yet, oldest first; they stay owed until
    /// [`Queue::done`].
    pub fn claim(&self, n: usize) -> Vec<QueuedEvent> {
        let mut inner = self.lock();
        let picked: Vec<QueuedEvent> = inner
            .pending
            .values()
            .filter(|e| !inner.claimed.contains(&e.seq))
            .take(n)
            .cloned()
            .collect();
        for e in &picked {
            inner.claimed.insert(e.seq);
        }
        picked
    }

    /// Hands claimed events back (their work could not be committed; tried again later).
    pub fn release(&self, seqs: &[u64]) {
        let mut inner = self.lock();
        for s in seqs {
            inner.claimed.remove(s);
        }
    }

    /// Marks events finished (their rows committed), durably.
    pub fn done(&self, seqs: &[u64]) -> Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut inner = self.lock();
        let mut out = Vec::new();
        let at_ms = now_ms();
        for &seq in seqs {
            out.extend(serde_json::to_vec(&Line::Done { seq, at_ms }).unwrap_or_default());
            out.push(b'\n');
        }
        inner.append(&out).map_err(io(&self.path))?;
        for s in seqs {
            inner.pending.remove(s);
            inner.claimed.remove(s);
        }
        inner.done += seqs.len() as u64;
        Ok(())
    }

    /// Waits until an event is accepted (or `timeout` passes).
    pub async fn wait(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.notify.notified()).await;
    }

    pub fn stats(&self) -> QueueStats {
        let inner = self.lock();
        let oldest = inner.pending.values().map(|e| e.accepted_ms).min();
        QueueStats {
            depth: inner.pending.len(),
            oldest_ms: oldest.map(|at| (now_ms() - at).max(0)).unwrap_or(0),
            accepted: inner.accepted,
            duplicates: inner.duplicates,
            done: inner.done,
        }
    }

    /// How long the queue has been open.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    /// A disk that fills up mid-append, for real: the test runs itself again in a user and mount
    /// namespace of its own (`unshare -Urm`, no privilege needed) over a 64 KiB tmpfs.
    #[test]
    fn a_full_disk_never_costs_an_acknowledged_event() {
        const DIR: &str = "WXCC_TEST_FULL_DISK_DIR";
        const NAME: &str = "listen::queue::tests::a_full_disk_never_costs_an_acknowledged_event";
        let Ok(dir) = std::env::var(DIR) else {
            let probe = std::process::Command::new("unshare")
                .args(["-Urm", "true"])
                .status();
            if !probe.is_ok_and(|s| s.success()) {
                eprintln!("skipped: no `unshare -Urm` here to mount a small disk");
                return;
            }
            let dir = tempfile::tempdir().expect("dir");
            let script = r#"mount -t tmpfs -o size=64k tmpfs "$WXCC_TEST_FULL_DISK_DIR" && exec "$0" --exact "$1" --nocapture --test-threads 1"#;
            let ran = std::process::Command::new("unshare")
                .args(["-Urm", "sh", "-c", script])
                .arg(std::env::current_exe().expect("this test binary"))
                .arg(NAME)
                .env(DIR, dir.path())
                .output()
                .expect("unshare runs");
            let out = String::from_utf8_lossy(&ran.stdout);
            let err = String::from_utf8_lossy(&ran.stderr);
            assert!(ran.status.success(), "{out}\n{err}");
            assert!(
                out.contains("1 passed"),
                "the test ran on the small disk: {out}\n{err}"
            );
            return;
        };
        let dir = Path::new(&dir);
        let journal = dir.join("journal.jsonl");
        let q = Queue::open(dir).expect("open");
        let event = |i: usize| {
            (
                format!("e{i}"),
                format!("t/r{i}"),
                json!({"pad": "x".repeat(700)}),
            )
        };
        let mut acked = BTreeSet::new();
        let accept = |i: usize| {
            let (id, key, data) = event(i);
            q.accept(&id, &key, data).map(|_| id)
        };
        // One line, so the journal's page has room left when the disk is full.
        acked.insert(accept(0).expect("room"));
        let mut filler = File::create(dir.join("filler")).expect("filler");
        while filler.write_all(&[0; 4096]).is_ok() {}
        let mut refused = None;
        for i in 1..40 {
            let before = std::fs::metadata(&journal).expect("journal").len();
            match accept(i) {
                Ok(id) => {
                    acked.insert(id);
                }
                Err(e) => {
                    // The line that did not fit is not left half written.
                    assert_eq!(std::fs::metadata(&journal).expect("journal").len(), before);
                    refused = Some(e);
                    break;
                }
            }
        }
        let refused = refused.expect("the disk filled up");
        assert!(
            refused.to_string().contains("No space left on device"),
            "{refused}"
        );
        drop(filler);
        std::fs::remove_file(dir.join("filler")).expect("room again");
        for i in 40..43 {
            acked.insert(accept(i).expect("room again"));
        }
        drop(q);
        let q = Queue::open(dir).expect("reopen");
        let owed: BTreeSet<String> = q.claim(100).into_iter().map(|e| e.event_id).collect();
        assert_eq!(owed, acked, "every event answered 2xx is still owed");
    }

    #[test]
    fn duplicates_by_event_id_or_by_recording_are_not_queued_twice() {
        let dir = tempfile::tempdir().expect("dir");
        let q = Queue::open(dir.path()).expect("open");
        assert_eq!(
            q.accept("e1", "t/r1", json!({})).expect("a"),
            Accepted::Queued
        );
        assert_eq!(
            q.accept("e1", "t/r2", json!({})).expect("a"),
            Accepted::Duplicate
        );
        assert_eq!(
            q.accept("e2", "t/r1", json!({})).expect("a"),
            Accepted::Duplicate
        );
        assert_eq!(
            q.accept("e3", "t/r2", json!({})).expect("a"),
            Accepted::Queued
        );
        let s = q.stats();
        assert_eq!((s.depth, s.accepted, s.duplicates), (2, 2, 2));
    }

    /// A second `wxcc listen` on the same directory would compact the journal under the
    /// first, whose later appends (each answered 2xx) would go to the replaced file.
    #[test]
    fn a_queue_directory_serves_one_process_at_a_time() {
        let dir = tempfile::tempdir().expect("dir");
        let q = Queue::open(dir.path()).expect("open");
        q.accept("e1", "t/r1", json!({})).expect("a");
        let journal = std::fs::read(dir.path().join("journal.jsonl")).expect("journal");
        let refused = Queue::open(dir.path())
            .err()
            .expect("a second open is refused");
        assert!(matches!(refused, QueueError::Busy(_)), "{refused}");
        assert!(refused.to_string().contains("--queue-dir"), "{refused}");
        assert_eq!(
            std::fs::read(dir.path().join("journal.jsonl")).expect("journal"),
            journal,
            "the refused open left the journal alone"
        );
        q.accept("e2", "t/r2", json!({})).expect("a");
        drop(q);
        let q = Queue::open(dir.path()).expect("free once the first is closed");
        assert_eq!(q.claim(10).len(), 2);
    }

    #[test]
    fn accepted_events_survive_a_reopen_until_done_and_keys_stay_known() {
        let dir = tempfile::tempdir().expect("dir");
        let q = Queue::open(dir.path()).expect("open");
        q.accept("e1", "t/r1", json!({"taskId": "t"})).expect("a");
        q.accept("e2", "t/r2", json!({"taskId": "t"})).expect("a");
        let claimed = q.claim(10);
        assert_eq!(claimed.len(), 2);
        assert!(
            q.claim(10).is_empty(),
            "claimed events are not handed out twice"
        );
        q.done(&[claimed[0].seq]).expect("done");
        drop(q);
        // A torn line at the end (a crash mid-append) is ignored.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("journal.jsonl"))
            .expect("journal");
        f.write_all(b"{\"op\":\"accept\",\"seq\":9").expect("torn");
        drop(f);
        let q = Queue::open(dir.path()).expect("reopen");
        let left = q.claim(10);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].event_id, "e2");
        assert_eq!(left[0].data["taskId"], "t");
        assert_eq!(
            q.accept("e1", "t/r1", json!({})).expect("a"),
            Accepted::Duplicate
        );
        assert_eq!(
            q.accept("e9", "t/r3", json!({})).expect("a"),
            Accepted::Queued
        );
        assert!(q.claim(10).iter().all(|e| e.seq > left[0].seq));
    }

    #[test]
    fn signed_urls_are_never_written_to_the_journal() {
        let dir = tempfile::tempdir().expect("dir");
        let q = Queue::open(dir.path()).expect("open");
        let signed = "https://media.example/org/t/rec.wav?X-Amz-Signature=abc123&X-Amz-Expires=60";
        q.accept("e1", "t/r1", json!({"taskId": "t", "filePath": signed}))
            .expect("a");
        // The worker in this process gets the URL to download from.
        assert_eq!(q.claim(1)[0].data["filePath"], signed);
        let journal = std::fs::read_to_string(dir.path().join("journal.jsonl")).expect("read");
        assert!(!journal.contains("abc123"), "{journal}");
        drop(q);
        // Replayed, the event keeps the path (to match recordings by) and no signature.
        let q = Queue::open(dir.path()).expect("reopen");
        assert_eq!(
            q.claim(1)[0].data["filePath"],
            "https://media.example/org/t/rec.wav"
        );
        let journal = std::fs::read_to_string(dir.path().join("journal.jsonl")).expect("read");
        assert!(!journal.contains("abc123"), "compacted too: {journal}");
    }

    #[test]
    fn released_events_are_handed_out_again() {
        let dir = tempfile::tempdir().expect("dir");
        let q = Queue::open(dir.path()).expect("open");
        q.accept("e1", "t/r1", json!({})).expect("a");
        let c = q.claim(1);
        q.release(&[c[0].seq]);
        assert_eq!(q.claim(1).len(), 1);
    }
}
