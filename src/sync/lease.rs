//! The per-org lease (`_state/org_id=<org>/lock.json`) that keeps two runs off the same output.
//!
//! Every write of the lease is conditional on the version last read or written: taken with
//! `PutMode::Create` (no lease yet) or `PutMode::Update` on the version of a dead one (so two
//! runs that find the same dead lease cannot both win), renewed the same way by a heartbeat
//! task every third of the lease, and released by an update to a `released` record. A holder
//! whose renewal finds someone else's record has lost the lease: its [`Fence`] trips, and every
//! later write of the run is refused.
//!
//! Backends: S3 (`If-Match`/`If-None-Match`, on by default in object_store; S3-compatible
//! stores must honour them), GCS (generation match), Azure (`If-Match`) and `memory://` do
//! both natively. object_store's `LocalFileSystem` has no `PutMode::Update`, so local disk
//! does the compare-and-swap itself ([`cell`]) under an OS file lock on a sidecar
//! `lock.json.guard` (which holds between processes on one machine; shared network file
//! systems are only as good as their `flock`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::state::{Result, StateError};

mod cell;

pub(crate) use cell::LockCell;
use cell::{CasError, Version};

/// How long a lease lasts without renewal. The heartbeat renews it every third of that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    pub duration: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            duration: Duration::from_secs(30 * 60),
        }
    }
}

impl LeaseConfig {
    pub fn with_duration(duration: Duration) -> LeaseConfig {
        LeaseConfig {
            duration: duration.max(Duration::from_millis(300)),
        }
    }

    fn heartbeat(&self) -> Duration {
        self.duration / 3
    }

    /// How long after a successful renewal was sent this run still trusts it holds the lease:
    /// a little less than the lease, so a slow clock elsewhere cannot see it expire first.
    fn trusted(&self) -> Duration {
        self.duration - self.duration / 6
    }
}

/// What `lock.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LeaseRecord {
    pub holder: String,
    /// The run holding it; a renewal that finds another run id has lost the lease.
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub pid: u32,
    /// Where `pid` means something: the kernel's boot id and the holder's PID namespace. Pods
    /// sharing a host name (`hostNetwork`, a fixed `hostname`) each have their own PID
    /// namespace, where another's pid is absent or someone else. Empty when unknown (older
    /// records, no `/proc`): the lease then ends only by release or expiry.
    #[serde(default)]
    pub pid_scope: String,
    pub started: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    /// Set by a clean release; a released lease is free.
    #[serde(default)]
    pub released: bool,
}

impl LeaseRecord {
    /// A lease is dead when released, expired, or taken on this host, in this PID namespace, by
    /// a process that no longer exists (a run killed with SIGKILL must not block the next cron
    /// run for the whole lease).
    pub fn is_dead(&self, now: DateTime<Utc>) -> bool {
        self.released
            || self.expires <= now
            || (self.host == host_name()
                && !self.pid_scope.is_empty()
                && self.pid_scope == pid_scope()
                && !process_alive(self.pid))
    }

    fn body(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("lease serializes")
    }
}

fn process_alive(pid: u32) -> bool {
    if pid == 0 || pid == std::process::id() {
        return pid != 0;
    }
    if cfg!(target_os = "linux") {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true // no cheap check elsewhere: rely on the lease expiry
    }
}

/// This process's boot id and PID namespace (see [`LeaseRecord::pid_scope`]); empty when the
/// system does not say.
pub(crate) fn pid_scope() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap_or_default();
    match (boot.trim(), ns.to_string_lossy()) {
        ("", _) => String::new(),
        (_, ns) if ns.is_empty() => String::new(),
        (boot, ns) => format!("{boot} {ns}"),
    }
}

pub(crate) fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether this run still holds its lease. Cheap (two atomics); clone it into anything that
/// writes, and call [`Fence::check`] right before each write that must not race another run.
#[derive(Clone)]
pub struct Fence {
    shared: Arc<FenceShared>,
}

struct FenceShared {
    org: String,
    path: String,
    /// Where the lease is kept and the run holding it, for [`Fence::verify`]; `None` in tests.
    cell: Option<(LockCell, String)>,
    base: Instant,
    /// Milliseconds after `base` until which the last renewal is trusted.
    deadline_ms: AtomicU64,
    lost: AtomicBool,
    reason: Mutex<Option<String>>,
    tripped: watch::Sender<bool>,
}

impl Fence {
    fn new(org: &str, cell: Option<(LockCell, String)>, trusted_until: Instant) -> Fence {
        let base = Instant::now();
        let path = cell
            .as_ref()
            .map_or_else(|| "-".into(), |(c, _)| c.display());
        let fence = Fence {
            shared: Arc::new(FenceShared {
                org: org.to_owned(),
                path,
                cell,
                base,
                deadline_ms: AtomicU64::new(0),
                lost: AtomicBool::new(false),
                reason: Mutex::new(None),
                tripped: watch::channel(false).0,
            }),
        };
        fence.extend(trusted_until);
        fence
    }

    /// Ok while the lease is held: no renewal found another holder and the last successful
    /// renewal is recent enough.
    pub fn check(&self) -> Result<()> {
        let s = &self.shared;
        let reason = if s.lost.load(Ordering::Acquire) {
            s.reason
                .lock()
                .expect("fence reason")
                .clone()
                .unwrap_or_else(|| "lost".into())
        } else if Instant::now() >= self.deadline() {
            "it could not be renewed in time".into()
        } else {
            return Ok(());
        };
        Err(StateError::LeaseLost {
            org: s.org.clone(),
            path: s.path.clone(),
            reason,
        })
    }

    /// [`Fence::check`], and then the lease as stored: still this run's. One read, made before
    /// each commit, so a lease changed from outside (`_state/` restored from a backup, its
    /// `lock.json` deleted by hand) stops this run at its next commit, not only at the next
    /// renewal (a third of the lease later) while another run writes the same partitions. A
    /// store that cannot be read is no proof of loss: the renewal deadline still bounds the run.
    pub async fn verify(&self) -> Result<()> {
        self.check()?;
        let Some((cell, run_id)) = &self.shared.cell else {
            return Ok(());
        };
        let found = match read(cell).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the lease to verify it; relying on its renewal");
                return Ok(());
            }
        };
        match found {
            Some(r) if r.run_id == *run_id && !r.released => Ok(()),
            other => {
                let why = other.map_or_else(
                    || "its lock file was removed".into(),
                    |r| format!("its lock file now names {} (run {})", r.holder, r.run_id),
                );
                tracing::error!(%why, "lease lost; this run stops writing");
                self.trip(why);
                self.check()
            }
        }
    }

    /// Resolves once [`Fence::check`] fails, so a run can drop the work in flight at once.
    pub async fn lost(&self) {
        let mut rx = self.shared.tripped.subscribe();
        loop {
            if self.check().is_err() {
                return;
            }
            let deadline = tokio::time::Instant::from_std(self.deadline());
            tokio::select! {
                _ = rx.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// A fence whose lease ran out as it was made, for tests of what a run without it writes.
    #[cfg(test)]
    pub(crate) fn expired(org: &str) -> Fence {
        Fence::new(org, None, Instant::now())
    }

    fn deadline(&self) -> Instant {
        self.shared.base + Duration::from_millis(self.shared.deadline_ms.load(Ordering::Acquire))
    }

    fn extend(&self, until: Instant) {
        let ms = until
            .saturating_duration_since(self.shared.base)
            .as_millis() as u64;
        self.shared.deadline_ms.fetch_max(ms, Ordering::AcqRel);
    }

    fn trip(&self, reason: String) {
        let s = &self.shared;
        s.reason.lock().expect("fence reason").get_or_insert(reason);
        s.lost.store(true, Ordering::Release);
        s.tripped.send_replace(true);
    }
}

/// What the holder last wrote, shared by the guard and its heartbeat.
struct Held {
    cell: LockCell,
    config: LeaseConfig,
    fence: Fence,
    current: Mutex<(LeaseRecord, Version)>,
}

impl Held {
    /// Writes `record` over our own last version. A conflict whose current record still
    /// carries our run id (a write that landed but whose answer was lost) is adopted and
    /// retried once; any other conflict means another run holds the lease now.
    async fn write_own(&self, record: LeaseRecord) -> Wrote {
        for _ in 0..2 {
            let version = self.current.lock().expect("lease state").1.clone();
            match self.cell.write(record.body(), Some(&version)).await {
                Ok(v) => {
                    *self.current.lock().expect("lease state") = (record, v);
                    return Wrote::Yes;
                }
                Err(CasError::Conflict) => match self.cell.read().await {
                    Ok(Some((bytes, v))) => {
                        match serde_json::from_slice::<LeaseRecord>(&bytes).ok() {
                            Some(r) if r.run_id == record.run_id && !r.released => {
                                self.current.lock().expect("lease state").1 = v;
                            }
                            other => return Wrote::Lost(other),
                        }
                    }
                    Ok(None) => return Wrote::Lost(None),
                    Err(e) => return Wrote::Transient(e),
                },
                Err(CasError::State(e)) => return Wrote::Transient(e),
            }
        }
        Wrote::Lost(None)
    }
}

/// Outcome of a write of our own lease record.
enum Wrote {
    Yes,
    /// The store failed; the lease may still be ours.
    Transient(StateError),
    /// Another run's record (or none) is there now.
    Lost(Option<LeaseRecord>),
}

/// Holds the lease of one org until [`LeaseGuard::release`]; dropping it stops the heartbeat
/// and leaves the lease to expire.
pub struct LeaseGuard {
    held: Arc<Held>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl LeaseGuard {
    /// A handle for the writers of this run.
    pub fn fence(&self) -> Fence {
        self.held.fence.clone()
    }

    /// Ok while this run holds the lease (see [`Fence::check`]).
    pub fn ensure_held(&self) -> Result<()> {
        self.held.fence.check()
    }

    /// The record as last written.
    pub fn record(&self) -> LeaseRecord {
        self.held.current.lock().expect("lease state").0.clone()
    }

    /// Stops the heartbeat and marks the lease released, if it is still ours.
    pub async fn release(mut self) -> Result<()> {
        self.heartbeat.abort();
        self.held.fence.trip("this run released it".into());
        let _ = (&mut self.heartbeat).await;
        let mut record = self.held.current.lock().expect("lease state").0.clone();
        record.released = true;
        record.expires = Utc::now();
        match self.held.write_own(record).await {
            Wrote::Yes => Ok(()),
            Wrote::Transient(e) => Err(e),
            Wrote::Lost(other) => {
                let holder = other.map_or_else(|| "nobody".into(), |r| r.holder);
                tracing::warn!(%holder, "the lease was no longer ours at release");
                Ok(())
            }
        }
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

/// The lease as stored, if any.
pub(crate) async fn read(cell: &LockCell) -> Result<Option<LeaseRecord>> {
    match cell.read().await? {
        None => Ok(None),
        Some((bytes, _)) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StateError::Corrupt {
                    path: cell.display(),
                    reason: e.to_string(),
                })
        }
    }
}

/// Takes the lease in `cell` for `record.run_id`, or fails with [`StateError::Locked`].
pub(crate) async fn acquire(
    cell: LockCell,
    org: &str,
    record: LeaseRecord,
    config: LeaseConfig,
) -> Result<LeaseGuard> {
    for _ in 0..3 {
        let sent = Instant::now();
        let existing = cell.read().await?;
        let expected = match &existing {
            None => None,
            Some((bytes, version)) => {
                match serde_json::from_slice::<LeaseRecord>(bytes) {
                    Ok(other) if !other.is_dead(Utc::now()) => {
                        return Err(StateError::Locked {
                            org: org.to_owned(),
                            holder: other.holder,
                            started: other.started,
                            expires: other.expires,
                            path: cell.display(),
                        });
                    }
                    Ok(other) if !other.released => {
                        tracing::warn!(path = %cell.display(), holder = %other.holder, "taking over the lease of a run that is gone");
                    }
                    Ok(_) => {}
                    Err(_) => {
                        tracing::warn!(path = %cell.display(), "taking over an unreadable lease");
                    }
                }
                Some(version)
            }
        };
        match cell.write(record.body(), expected).await {
            Ok(version) => {
                let mine = Some((cell.clone(), record.run_id.clone()));
                let fence = Fence::new(org, mine, sent + config.trusted());
                let held = Arc::new(Held {
                    cell,
                    config,
                    fence,
                    current: Mutex::new((record, version)),
                });
                let heartbeat = tokio::spawn(heartbeat(held.clone()));
                return Ok(LeaseGuard { held, heartbeat });
            }
            Err(CasError::Conflict) => continue, // someone else moved first: look again
            Err(CasError::State(e)) => return Err(e),
        }
    }
    Err(StateError::Corrupt {
        path: cell.display(),
        reason: "the lease keeps changing; another run is starting at the same time".into(),
    })
}

/// Renews the lease every third of its length until the guard is dropped or released, or the
/// lease is lost.
async fn heartbeat(held: Arc<Held>) {
    let every = held.config.heartbeat();
    loop {
        tokio::time::sleep(every).await;
        if held.fence.check().is_err() {
            held.fence.trip("it could not be renewed in time".into());
            return;
        }
        let sent = Instant::now();
        let mut record = held.current.lock().expect("lease state").0.clone();
        record.expires = Utc::now() + held.config.duration;
        match tokio::time::timeout(every, held.write_own(record)).await {
            Ok(Wrote::Yes) => held.fence.extend(sent + held.config.trusted()),
            Ok(Wrote::Lost(other)) => {
                let holder = other.map_or_else(
                    || "the lease was removed".into(),
                    |r| format!("{} (run {}) holds it now", r.holder, r.run_id),
                );
                tracing::error!(%holder, "lease lost; this run stops writing");
                held.fence
                    .trip(format!("another run took it over: {holder}"));
                return;
            }
            Ok(Wrote::Transient(e)) => tracing::warn!(error = %e, "lease renewal failed; retrying"),
            Err(_) => tracing::warn!("lease renewal timed out; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;
    use object_store::path::Path;

    fn record(run: &str, expires_in: chrono::Duration) -> LeaseRecord {
        LeaseRecord {
            holder: format!("holder {run}"),
            run_id: run.into(),
            host: "elsewhere".into(),
            pid: 1,
            pid_scope: String::new(),
            started: Utc::now(),
            expires: Utc::now() + expires_in,
            released: false,
        }
    }

    fn memory_cell() -> LockCell {
        LockCell::Store {
            store: Arc::new(InMemory::new()),
            path: Path::from("_state/org_id=o/lock.json"),
        }
    }

    fn local_cell(dir: &tempfile::TempDir) -> LockCell {
        LockCell::Local {
            file: dir.path().join("_state/org_id=o/lock.json"),
        }
    }

    const LONG: LeaseConfig = LeaseConfig {
        duration: Duration::from_secs(600),
    };

    async fn one_of_two_takeovers_wins(cell: LockCell) {
        let dead = record("dead", chrono::Duration::hours(-1));
        cell.write(dead.body(), None).await.unwrap();
        for _ in 0..10 {
            let (a, b) = tokio::join!(
                acquire(
                    cell.clone(),
                    "o",
                    record("a", chrono::Duration::minutes(5)),
                    LONG
                ),
                acquire(
                    cell.clone(),
                    "o",
                    record("b", chrono::Duration::minutes(5)),
                    LONG
                ),
            );
            let won = [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count();
            assert_eq!(won, 1, "exactly one takeover wins");
            let loser = a.as_ref().err().or(b.as_ref().err()).unwrap();
            assert!(matches!(loser, StateError::Locked { .. }), "{loser}");
            let winner = a.ok().or(b.ok()).unwrap();
            // make it dead again for the next round
            let mut r = winner.record();
            r.expires = Utc::now() - chrono::Duration::hours(1);
            r.host = "elsewhere".into();
            assert!(matches!(winner.held.write_own(r).await, Wrote::Yes));
            drop(winner);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_takeovers_of_a_dead_lease_on_memory_store_one_wins() {
        one_of_two_takeovers_wins(memory_cell()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_takeovers_of_a_dead_lease_on_local_disk_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        one_of_two_takeovers_wins(local_cell(&dir)).await;
    }

    #[tokio::test]
    async fn live_lease_is_refused_and_released_lease_is_free() {
        let cell = memory_cell();
        let first = acquire(
            cell.clone(),
            "o",
            record("a", chrono::Duration::minutes(5)),
            LONG,
        )
        .await
        .unwrap();
        let err = acquire(
            cell.clone(),
            "o",
            record("b", chrono::Duration::minutes(5)),
            LONG,
        )
        .await
        .err()
        .unwrap();
        assert!(err.to_string().contains("holder a"), "{err}");
        first.release().await.unwrap();
        let (bytes, _) = cell.read().await.unwrap().unwrap();
        assert!(
            serde_json::from_slice::<LeaseRecord>(&bytes)
                .unwrap()
                .released
        );
        acquire(cell, "o", record("c", chrono::Duration::minutes(5)), LONG)
            .await
            .unwrap();
    }

    async fn heartbeat_renews_and_notices_a_thief(cell: LockCell) {
        let short = LeaseConfig::with_duration(Duration::from_secs(6));
        let guard = acquire(
            cell.clone(),
            "o",
            record("a", chrono::Duration::seconds(6)),
            short,
        )
        .await
        .unwrap();
        let first = guard.record().expires;
        let renewed = async {
            while guard.record().expires == first {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_millis(4500), renewed)
            .await
            .expect("renewed every third of the lease");
        guard.ensure_held().unwrap();
        // Another run overwrites the lease (as a takeover after a long pause would).
        loop {
            let (_, v) = cell.read().await.unwrap().unwrap();
            let thief = record("thief", chrono::Duration::minutes(5)).body();
            if cell.write(thief, Some(&v)).await.is_ok() {
                break; // else a renewal came in between: try again
            }
        }
        let fence = guard.fence();
        tokio::time::timeout(Duration::from_secs(5), fence.lost())
            .await
            .expect("the heartbeat notices");
        let err = fence.check().unwrap_err().to_string();
        assert!(err.contains("thief"), "{err}");
        // Release does not clobber the thief's lease.
        guard.release().await.unwrap();
        let (bytes, _) = cell.read().await.unwrap().unwrap();
        assert_eq!(
            serde_json::from_slice::<LeaseRecord>(&bytes)
                .unwrap()
                .run_id,
            "thief"
        );
    }

    #[tokio::test]
    async fn heartbeat_on_memory_store_renews_and_notices_a_thief() {
        heartbeat_renews_and_notices_a_thief(memory_cell()).await;
    }

    #[tokio::test]
    async fn heartbeat_on_local_disk_renews_and_notices_a_thief() {
        let dir = tempfile::tempdir().unwrap();
        heartbeat_renews_and_notices_a_thief(local_cell(&dir)).await;
    }

    /// A lock file restored from a backup, or deleted by hand, is noticed by the next commit's
    /// verification, long before the next renewal would.
    #[tokio::test]
    async fn verify_notices_a_lease_changed_from_outside() {
        for restored in [Some(record("old", chrono::Duration::hours(-1))), None] {
            let cell = memory_cell();
            let guard = acquire(
                cell.clone(),
                "o",
                record("a", chrono::Duration::minutes(10)),
                LONG,
            )
            .await
            .unwrap();
            let fence = guard.fence();
            fence.verify().await.expect("still ours");
            let LockCell::Store { store, path } = &cell else {
                unreachable!()
            };
            match &restored {
                Some(old) => {
                    store.put(path, old.body().into()).await.unwrap();
                }
                None => store.delete(path).await.unwrap(),
            }
            fence.check().expect("nothing local says otherwise");
            let err = fence.verify().await.unwrap_err().to_string();
            assert!(
                err.contains(if restored.is_some() {
                    "run old"
                } else {
                    "removed"
                }),
                "{err}"
            );
            assert!(fence.check().is_err(), "tripped for every writer");
        }
    }

    #[tokio::test]
    async fn fence_trips_when_renewals_stop() {
        let cell = memory_cell();
        let short = LeaseConfig::with_duration(Duration::from_millis(600));
        let guard = acquire(
            cell,
            "o",
            record("a", chrono::Duration::milliseconds(600)),
            short,
        )
        .await
        .unwrap();
        let fence = guard.fence();
        guard.heartbeat.abort(); // as if every renewal hung
        tokio::time::timeout(Duration::from_secs(2), fence.lost())
            .await
            .expect("expiry trips the fence");
        assert!(fence.check().unwrap_err().to_string().contains("in time"));
    }
}
