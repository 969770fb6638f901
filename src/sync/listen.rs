//! The working half of `wxcc listen`: a pool that takes events from the durable queue
//! ([`crate::listen::queue`]), stores each recording through the same audio path as `sync`
//! (streamed to the object store with its SHA-256, analysed, derivatives made), and commits the
//! manifest, captures, audio_facts and derivatives rows every few seconds into the partitions
//! `sync` writes, holding the org's lease only for the commit (so `sync` and `listen` take
//! turns, never write at once).
//!
//! What `listen` does not write, on purpose: task rows and the ledger. A task without a row is
//! new to the next `sync`, which asks for its captures and finds the recordings `listen`
//! stored already present (no second download), plus any recording no webhook announced. So
//! a lost webhook costs latency, never data.
//!
//! An event whose recording cannot be read or stored gets no row (a failed row could hide a
//! good one `sync` wrote): its task goes into the ledger instead (`captures_failed` or
//! `download_failed`, on the task's creation day), so the next `sync` asks about it again
//! whatever its look-back, and exits 4 until it is stored. Without that, a task `sync` had
//! already settled (a consult leg that appeared hours later, say) would never be asked again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use object_store::ObjectStoreExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::ledger::{Ledger, Why};
use super::state::{OrgState, StateError};
use super::{Result, SyncContext, SyncError};
use super::{rows, window};
use crate::api::model::Recording;
use crate::audio::{self, AudioError, StoredAudio};
use crate::lake::{self, AudioFactsRow, CaptureRow, DerivativeRow, ManifestRow, Table};
use crate::listen::WorkerCounters;
use crate::listen::queue::{Queue, QueuedEvent};

/// How the workers run.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Downloads in flight at once.
    pub concurrency: usize,
    /// Commit what is ready this often.
    pub commit_interval: Duration,
    /// The org (else the token's).
    pub org_id: Option<String>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            concurrency: 8,
            commit_interval: Duration::from_secs(2),
            org_id: None,
        }
    }
}

/// One event's rows, waiting for the next commit.
struct Ready {
    seq: u64,
    accepted_ms: i64,
    /// One per recording the event led to that is stored (several when the event could not be
    /// matched to one recording of its task).
    rows: Vec<Rows>,
    /// What could not be read or stored, owed to `sync` through the ledger.
    failed: Option<Failed>,
}

impl Ready {
    /// The tasks whose creation day the commit needs, each with a time near it (where the
    /// listing looks) and whether that time may stand in for the creation day when no listing
    /// shows the task (a recording's start may; a webhook's `createdTime`, which can be hours
    /// after the call, may not).
    fn tasks(&self) -> impl Iterator<Item = (&str, i64, bool)> {
        self.rows
            .iter()
            .map(|r| match r.start_ms {
                Some(start) => (r.task_id.as_str(), start, true),
                None => (r.task_id.as_str(), self.accepted_ms, false),
            })
            .chain(self.failed.iter().map(|f| {
                let near = f.near_ms.unwrap_or(self.accepted_ms);
                (f.task_id.as_str(), near, f.why == Why::DownloadFailed)
            }))
    }
}

/// A task an event named whose recording could not be read or stored.
struct Failed {
    task_id: String,
    why: Why,
    /// A time near the task's creation, where the listing looks for it: the recording's start
    /// when known, else the event's `createdTime`.
    near_ms: Option<i64>,
    reason: String,
}

struct Rows {
    task_id: String,
    start_ms: Option<i64>,
    manifest: ManifestRow,
    captures: Vec<CaptureRow>,
    facts: Option<AudioFactsRow>,
    derived: Vec<DerivativeRow>,
    present: bool,
}

/// Where `listen` notes that it serves an org, so `sync` can report its webhook misses.
fn marker(org: &str) -> String {
    format!("_state/org_id={org}/listen.json")
}

/// Notes in the lake that `listen` serves `org` (since when).
async fn mark_active(ctx: &SyncContext, org: &str) -> Result<()> {
    let body = json!({"since": Utc::now().to_rfc3339(), "host": super::lease::host_name()});
    ctx.lake
        .store()
        .put(
            &ctx.lake.path(&marker(org)),
            body.to_string().into_bytes().into(),
        )
        .await?;
    Ok(())
}

/// Whether a `listen` has served `org` (then `sync`'s own downloads are webhook misses).
pub(crate) async fn is_active(lake: &crate::lake::Lake, org: &str) -> bool {
    lake.store().head(&lake.path(&marker(org))).await.is_ok()
}

/// Runs until `ctx.stop` is cancelled; what is ready then is committed before returning.
pub async fn run_workers(
    ctx: Arc<SyncContext>,
    queue: Arc<Queue>,
    counters: Arc<WorkerCounters>,
    opts: &ListenOptions,
) -> Result<()> {
    let org = super::resolve_org_id(&ctx, opts.org_id.clone()).await?;
    if opts.org_id.is_some() {
        super::check_token_owner(&ctx, &org).await?;
    }
    let state = OrgState::new(&ctx.lake, &org);
    mark_active(&ctx, &org).await?;
    let mut dates = TaskDays::default();
    let mut ready: Vec<Ready> = Vec::new();
    // Downloads run as their own tasks, so they go on while a commit writes.
    let mut running: tokio::task::JoinSet<Ready> = tokio::task::JoinSet::new();
    let mut last_commit = Instant::now();
    let concurrency = opts.concurrency.max(1);
    tracing::info!(%org, concurrency, "listen workers started");
    loop {
        let free = concurrency.saturating_sub(running.len());
        if free > 0 && !ctx.stop.is_cancelled() {
            for ev in queue.claim(free) {
                let (ctx, org, counters) = (ctx.clone(), org.clone(), counters.clone());
                running.spawn(async move { process(&ctx, &org, ev, &counters).await });
            }
        }
        let tick = if ready.is_empty() {
            Duration::from_millis(200)
        } else {
            opts.commit_interval
                .saturating_sub(last_commit.elapsed())
                .max(Duration::from_millis(20))
        };
        tokio::select! {
            _ = ctx.stop.cancelled(), if running.is_empty() => break,
            Some(joined) = running.join_next(), if !running.is_empty() => {
                let Ok(r) = joined else {
                    // A panicked task: its event stays claimed until a restart retries it.
                    tracing::error!("a listen worker task failed");
                    continue;
                };
                if r.rows.is_empty() && ctx.stop.is_cancelled() {
                    // Interrupted by a stop, not failed: still owed after a restart.
                    queue.release(&[r.seq]);
                } else {
                    ready.push(r);
                }
            }
            _ = queue.wait(tick), if running.len() < concurrency => {}
            _ = tokio::time::sleep(tick) => {}
        }
        if !ready.is_empty() && last_commit.elapsed() >= opts.commit_interval {
            commit(
                &ctx, &org, &state, &queue, &counters, &mut dates, &mut ready,
            )
            .await?;
            last_commit = Instant::now();
        }
    }
    if !ready.is_empty() {
        commit(
            &ctx, &org, &state, &queue, &counters, &mut dates, &mut ready,
        )
        .await?;
    }
    Ok(())
}

/// The recording an event about `task_id` announces: from the event's own fields when it
/// carries them, else from a captures query for its task (matched by download path). `Err`:
/// the captures query failed.
async fn recordings_of(
    ctx: &SyncContext,
    task_id: &str,
    data: &Value,
    counters: &WorkerCounters,
) -> std::result::Result<Vec<Recording>, String> {
    let file_path = data.get("filePath").and_then(Value::as_str);
    if let Some(rec_id) = data.get("recordingId").and_then(Value::as_str) {
        let shaped = json!({
            "id": rec_id,
            "segment": data.get("segment"),
            "attributes": {
                "fileName": data.get("fileName"),
                "filePath": file_path,
                "startTime": data.get("startTime"),
                "stopTime": data.get("stopTime"),
                "participants": data.get("participants"),
                "channel1": data.get("channel1"),
                "channel2": data.get("channel2"),
                "callType": data.get("callType"),
                "sensitive": data.get("sensitive"),
            }
        });
        if let Ok(rec) = serde_json::from_value::<Recording>(shaped)
            && rec.attributes.start_time.is_some()
        {
            return Ok(vec![rec]);
        }
    }
    counters.captures_queries.fetch_add(1, Ordering::Relaxed);
    let (captures, _) = ctx
        .api
        .query_captures(&[task_id.to_owned()])
        .await
        .map_err(|e| e.to_string())?;
    let all: Vec<Recording> = captures
        .into_iter()
        .filter(|c| c.task_id == task_id)
        .flat_map(|c| c.recording)
        .collect();
    let wanted = file_path
        .and_then(|p| url::Url::parse(p).ok())
        .map(|u| u.path().to_owned());
    let matching: Vec<Recording> = all
        .iter()
        .filter(|r| {
            let path = r
                .attributes
                .file_path
                .as_ref()
                .and_then(|p| url::Url::parse(p.expose_secret()).ok())
                .map(|u| u.path().to_owned());
            wanted.is_some() && path == wanted
        })
        .cloned()
        .collect();
    // No match (the URL's form changed): every recording of the task, all idempotent.
    Ok(if matching.is_empty() { all } else { matching })
}

/// A fresh URL for one recording (the event's expired or was missing).
async fn fresh_url(
    ctx: &SyncContext,
    task_id: &str,
    recording_id: &str,
    counters: &WorkerCounters,
) -> Option<SecretString> {
    counters.captures_queries.fetch_add(1, Ordering::Relaxed);
    let (captures, _) = ctx.api.query_captures(&[task_id.to_owned()]).await.ok()?;
    captures
        .into_iter()
        .flat_map(|c| c.recording)
        .find(|r| r.id == recording_id)
        .and_then(|r| r.attributes.file_path)
}

async fn process(
    ctx: &SyncContext,
    org: &str,
    ev: QueuedEvent,
    counters: &WorkerCounters,
) -> Ready {
    let mut out = Ready {
        seq: ev.seq,
        accepted_ms: ev.accepted_ms,
        rows: Vec::new(),
        failed: None,
    };
    let Some(task_id) = ev.data.get("taskId").and_then(Value::as_str) else {
        tracing::warn!(key = %ev.key, "an event without a task id; left to sync");
        counters.failed.fetch_add(1, Ordering::Relaxed);
        return out;
    };
    let near_ms = ev.data.get("createdTime").and_then(Value::as_i64);
    let recs = match recordings_of(ctx, task_id, &ev.data, counters).await {
        Ok(recs) => recs,
        Err(reason) => {
            tracing::warn!(task_id, error = %reason, "cannot read the captures an event names; owed to sync");
            counters.failed.fetch_add(1, Ordering::Relaxed);
            out.failed = Some(Failed {
                task_id: task_id.to_owned(),
                why: Why::CapturesFailed,
                near_ms,
                reason,
            });
            return out;
        }
    };
    // An event names one recording; the fallback may find several: each is stored and gets
    // its rows.
    for rec in recs {
        match store(ctx, org, task_id, &rec, counters).await {
            Ok(rows) => out.rows.push(rows),
            Err(e) => {
                tracing::warn!(task_id, recording_id = %rec.id, error = %e, "recording not stored; owed to sync");
                counters.failed.fetch_add(1, Ordering::Relaxed);
                out.failed = Some(Failed {
                    task_id: task_id.to_owned(),
                    why: Why::DownloadFailed,
                    near_ms: rec.attributes.start_time.or(near_ms),
                    reason: e.to_string(),
                });
            }
        }
    }
    out
}

/// Stores one recording (or finds it stored) and makes its rows, as `sync` would.
async fn store(
    ctx: &SyncContext,
    org: &str,
    task_id: &str,
    rec: &Recording,
    counters: &WorkerCounters,
) -> std::result::Result<Rows, AudioError> {
    let key = audio::object_key(org, task_id, &rec.id)?;
    let path = ctx.lake.path(&key);
    let uri = ctx.lake.uri(&path);
    let ids = audio::RecordingIds {
        task_id,
        recording_id: &rec.id,
    };
    let transfer = audio::Transfer {
        http: &ctx.media,
        store: ctx.lake.store(),
        retry: &ctx.retry,
        part_size: audio::part_size_for(ctx.lake.url().scheme()),
        processing: &ctx.processing,
        stop: Some(&ctx.stop),
    };
    let captures = rows::capture_rows(&[(task_id, rec)], &ctx.pii);
    // Already stored (by sync, or before a restart): hash the stored copy, analyse it, and
    // write the same rows sync would; unless it was stored while the call was going.
    let present = match ctx.lake.store().head(&path).await {
        Ok(_) => {
            let stored: StoredAudio = audio::hash_object(ctx.lake.store(), &path).await?;
            (!window::cut_short(ctx, &path, &stored, rec).await).then_some(stored)
        }
        Err(_) => None,
    };
    if let Some(stored) = present {
        let processed = audio::process_stored(&transfer, &path, &ids, &stored).await?;
        counters.present.fetch_add(1, Ordering::Relaxed);
        return Ok(Rows {
            task_id: task_id.to_owned(),
            start_ms: rec.attributes.start_time,
            manifest: rows::manifest_row(task_id, &rec.id, uri, Ok(&stored)),
            captures,
            facts: processed.facts.map(|a| rows::facts_row(task_id, rec, &a)),
            derived: rows::derivative_rows(&ctx.lake, task_id, rec, &stored, &processed.derived),
            present: true,
        });
    }
    let mut url = match rec.attributes.file_path.clone() {
        Some(u) => u,
        None => fresh_url(ctx, task_id, &rec.id, counters)
            .await
            .ok_or(AudioError::NoUrl)?,
    };
    let mut refreshes = 0;
    let fetched = loop {
        match audio::fetch_to_store(&transfer, &url, &path, &ids).await {
            Err(AudioError::UrlExpired) if refreshes < 2 => {
                refreshes += 1;
                url = fresh_url(ctx, task_id, &rec.id, counters)
                    .await
                    .ok_or(AudioError::UrlExpired)?;
            }
            other => break other?,
        }
    };
    Ok(Rows {
        task_id: task_id.to_owned(),
        start_ms: rec.attributes.start_time,
        manifest: rows::manifest_row(task_id, &rec.id, uri, Ok(&fetched.stored)),
        captures,
        facts: fetched
            .processed
            .facts
            .as_ref()
            .map(|a| rows::facts_row(task_id, rec, a)),
        derived: rows::derivative_rows(
            &ctx.lake,
            task_id,
            rec,
            &fetched.stored,
            &fetched.processed.derived,
        ),
        present: false,
    })
}

/// The capture rows that tell the lake something new: recordings it has no row for, or whose
/// `stopTime` moved (an event that gives none says nothing about it). A row built from an event's own fields (UNCONFIRMED beyond `taskId`,
/// `filePath` and `createdTime`) may lack what `sync` read from the captures API, so it never
/// replaces that row just to say the same.
fn news(
    captures: Vec<CaptureRow>,
    known: &HashMap<(String, String), Option<i64>>,
) -> Vec<CaptureRow> {
    captures
        .into_iter()
        .filter(|c| {
            known
                .get(&(c.task_id.clone(), c.recording_id.clone()))
                .is_none_or(|stop| c.stop_time.is_some() && *stop != c.stop_time)
        })
        .collect()
}

/// A task is looked for in listings starting this long before its recording.
const BEFORE_MS: i64 = 6 * 3600 * 1000;
/// Listings reach this far past the latest recording start, so the next events' tasks are
/// usually known already (one `/v1/tasks` listing serves many commits).
const AHEAD_MS: i64 = 3600 * 1000;

/// Creation times of tasks, learnt from `/v1/tasks` listings (their day is the partition `sync`
/// writes).
#[derive(Default)]
struct TaskDays {
    /// `createdTime` (epoch ms) of each task listed.
    created: HashMap<String, i64>,
    /// `[from, to)` ranges listed so far.
    listed: Vec<(i64, i64)>,
}

impl TaskDays {
    fn covered(&self, start: i64) -> bool {
        self.listed
            .iter()
            .any(|&(from, to)| start - BEFORE_MS >= from && start < to)
    }

    fn day(&self, task_id: &str) -> Option<NaiveDate> {
        let ms = self.created.get(task_id)?;
        DateTime::from_timestamp_millis(*ms).map(|d| d.date_naive())
    }

    /// Learns the creation times of the tasks not known yet with at most one listing. `false`
    /// when that listing failed: the tasks it was for stay unknown (their events wait for the
    /// next commit; a guessed day could put their rows in the wrong partition for good).
    async fn learn(&mut self, ctx: &SyncContext, ready: &[Ready]) -> bool {
        let unknown: Vec<(String, i64, bool)> = ready
            .iter()
            .flat_map(Ready::tasks)
            .filter(|(task, ..)| !self.created.contains_key(*task))
            .map(|(task, near, guess)| (task.to_owned(), near, guess))
            .collect();
        let to_list: Vec<i64> = unknown
            .iter()
            .map(|u| u.1)
            .filter(|&start| !self.covered(start))
            .collect();
        if let (Some(lo), Some(hi)) = (to_list.iter().min(), to_list.iter().max()) {
            let (from, to) = (lo - BEFORE_MS, hi + AHEAD_MS);
            match ctx.api.list_tasks(from, to).await {
                Ok(listing) => {
                    for t in listing.tasks {
                        self.created.insert(t.id, t.attributes.created_time);
                    }
                    // Tasks created later than the real "now" could not be listed yet.
                    let listed_to = to.min(Utc::now().timestamp_millis().max(hi + 1));
                    self.listed.push((from, listed_to));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list tasks to find their creation days; their events wait");
                    return false;
                }
            }
        }
        for (task, near, _) in unknown.into_iter().filter(|u| u.2) {
            self.created.entry(task).or_insert_with_key(|task| {
                tracing::debug!(task_id = %task, "task not listed; using its recording's start day");
                near
            });
        }
        true
    }
}

/// Writes everything ready under the org's lease, then marks it done in the queue. If `sync`
/// holds the lease, the rows wait for the next tick (the queue keeps them owed meanwhile).
async fn commit(
    ctx: &SyncContext,
    org: &str,
    state: &OrgState,
    queue: &Queue,
    counters: &WorkerCounters,
    dates: &mut TaskDays,
    ready: &mut Vec<Ready>,
) -> Result<()> {
    let all_known = dates.learn(ctx, ready).await;
    let run_id = format!("listen-{}", uuid::Uuid::new_v4());
    let lease = match state
        .lock(&super::state::holder_label(), &run_id, ctx.lease)
        .await
    {
        Ok(l) => l,
        Err(StateError::Locked { .. }) => {
            tracing::debug!("org lease held (a sync is running); commit postponed");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let fence = lease.fence();
    // Events whose task's day is still unknown (its listing failed) wait for the next commit.
    let (todo, wait): (Vec<Ready>, Vec<Ready>) = std::mem::take(ready)
        .into_iter()
        .partition(|r| all_known || r.tasks().all(|(t, ..)| dates.day(t).is_some()));
    *ready = wait;
    let mut by_date: BTreeMap<NaiveDate, Vec<&Rows>> = BTreeMap::new();
    for r in todo.iter().flat_map(|r| &r.rows) {
        let Some(date) = dates.day(&r.task_id) else {
            // No listing shows the task and its recording has no start time: `sync` lists the
            // task as new (listen writes no task rows) and finds this recording present.
            tracing::warn!(task_id = %r.task_id, "task not found in any listing; its rows are left to sync");
            continue;
        };
        by_date.entry(date).or_default().push(r);
    }
    let written: Result<()> = async {
        for (date, rows) in &by_date {
            let (lake, date) = (&ctx.lake, *date);
            let facts: Vec<AudioFactsRow> = rows.iter().filter_map(|r| r.facts.clone()).collect();
            if !facts.is_empty() {
                let b = lake::audio_facts_batch(&facts)?;
                window::fenced_upsert(lake, &fence, Table::AudioFacts, org, date, b).await?;
            }
            let derived: Vec<DerivativeRow> = rows
                .iter()
                .flat_map(|r| r.derived.iter().cloned())
                .collect();
            if !derived.is_empty() {
                let b = lake::derivatives_batch(&derived)?;
                window::fenced_upsert(lake, &fence, Table::Derivatives, org, date, b).await?;
            }
            let manifest: Vec<ManifestRow> = rows.iter().map(|r| r.manifest.clone()).collect();
            let b = lake::manifest_batch(&manifest)?;
            window::fenced_upsert(lake, &fence, Table::Manifest, org, date, b).await?;
            let captures: Vec<CaptureRow> = rows
                .iter()
                .flat_map(|r| r.captures.iter().cloned())
                .collect();
            let tasks: HashSet<String> = captures.iter().map(|c| c.task_id.clone()).collect();
            let known = rows::capture_stops_from_lake(lake, org, date, Some(&tasks)).await?;
            let captures = news(captures, &known);
            if !captures.is_empty() {
                let b = lake::captures_batch(&captures)?;
                window::fenced_upsert(lake, &fence, Table::Captures, org, date, b).await?;
            }
        }
        // After the rows (as `sync` commits): what could not be stored, owed to the next sync.
        let owed: Vec<&Failed> = todo.iter().filter_map(|r| r.failed.as_ref()).collect();
        if !owed.is_empty() {
            fence.check()?;
            let give_up = super::SyncPolicy::default().give_up_after;
            let mut ledger = Ledger::load(&ctx.lake, org, give_up).await?;
            for f in owed {
                let Some(&created_ms) = dates.created.get(&f.task_id) else {
                    // Its creation day is unknown, and a guessed day would have `sync` write
                    // its rows into the wrong partition.
                    tracing::warn!(task_id = %f.task_id, "task not found in any listing; left to sync");
                    continue;
                };
                let failure = Some((None, format!("listen: {}", f.reason)));
                ledger.record(&f.task_id, created_ms, f.why, failure, Utc::now());
            }
            ledger.save().await?;
        }
        Ok(())
    }
    .await;
    let released = lease.release().await;
    written?;
    released?;
    let now = Utc::now().timestamp_millis();
    let stored = todo.iter().filter(|r| !r.rows.is_empty()).count() as u64;
    counters.committed.fetch_add(stored, Ordering::Relaxed);
    counters.commits.fetch_add(1, Ordering::Relaxed);
    if let Some(oldest) = todo.iter().map(|r| r.accepted_ms).min() {
        counters.last_lag_ms.store(now - oldest, Ordering::Relaxed);
    }
    // Counted before the queue forgets them, so `/healthz` never shows an empty queue with
    // the last commit missing from `committed`.
    let seqs: Vec<u64> = todo.iter().map(|r| r.seq).collect();
    queue
        .done(&seqs)
        .map_err(|e| SyncError::Listen(e.to_string()))?;
    let present = todo
        .iter()
        .flat_map(|r| &r.rows)
        .filter(|r| r.present)
        .count();
    tracing::info!(
        recordings = by_date.values().map(Vec::len).sum::<usize>(),
        present,
        owed = todo.iter().filter(|r| r.failed.is_some()).count(),
        waiting = ready.len(),
        partitions = by_date.len(),
        depth = queue.stats().depth,
        "listen: committed"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(task: &str, rec: &str, stop: Option<i64>) -> CaptureRow {
        CaptureRow {
            task_id: task.into(),
            recording_id: rec.into(),
            stop_time: stop,
            ..CaptureRow::default()
        }
    }

    #[test]
    fn an_events_capture_row_replaces_syncs_only_to_say_the_recording_changed() {
        let known = HashMap::from([
            (("t1".into(), "r1".into()), Some(1_000)),
            (("t1".into(), "r2".into()), Some(1_000)),
            (("t2".into(), "r3".into()), None),
        ]);
        let kept = news(
            vec![
                row("t1", "r1", Some(1_000)), // what sync wrote already: kept as sync wrote it
                row("t1", "r2", Some(2_000)), // grew since
                row("t2", "r3", Some(3_000)), // ended since
                row("t3", "r4", Some(1_000)), // new
                row("t1", "r1", None),        // an event without a stopTime: nothing new
            ],
            &known,
        );
        let ids: Vec<&str> = kept.iter().map(|c| c.recording_id.as_str()).collect();
        assert_eq!(ids, ["r2", "r3", "r4"]);
    }
}
