//! One creation day's work: captures asked for the tasks that need it (failing batches split
//! down to single tasks), recordings stored (analysed, derivatives made as they stream), and the
//! results committed in small batches.
//!
//! Capture queries and downloads overlap: each captures batch feeds its recordings straight
//! into the bounded download pool, while a committer beside it writes what has settled every
//! `commit_every` recordings or `commit_interval`. A commit writes audio-derived rows first,
//! then captures, then the ledger, then the rows of the tasks whose work is complete, so a crash
//! at any point leaves tables that describe only durable objects, and a task whose row is
//! missing is simply asked about again by the next run.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use secrecy::SecretString;
use tokio::sync::mpsc;

use super::lease::Fence;
use super::ledger::{Ledger, Why};
use super::rows::{self, STATUS_STORED};
use super::{FailedTask, Outcome, Result, SyncContext, SyncError, SyncPolicy, SyncSummary};
use crate::api::model::{Recording, Task, TaskCaptures};
use crate::api::{ApiError, CAPTURES_SOURCE, MAX_CAPTURE_IDS, Reject};
use crate::audio::{self, AudioError, Fetched, Processing, StoredAudio};
use crate::lake::derivatives::status as derived_status;
use crate::lake::{self, AudioFactsRow, CaptureRow, DerivativeRow, ManifestRow, Table};

/// Capture queries in flight at once; the rate limiter paces them anyway.
const CAPTURE_QUERIES_IN_FLIGHT: usize = 4;
/// Recordings listed but not yet downloading: how far captures queries may run ahead of a busy
/// download pool (their URLs are refreshed if they near expiry while they wait).
const RECORDINGS_AHEAD: usize = 1024;
/// Ask for a fresh URL when less than this is left of its validity.
const URL_SAFETY_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Tasks that fail for good one after another, with no success between, before the run treats
/// the captures API as down instead of isolating task after task; likewise recordings the store
/// fails (see [`store_health`]).
const OUTAGE_AFTER: u32 = 5;

/// A recording with the URL it came with and when that URL was issued.
struct Pending {
    task_id: String,
    recording: Recording,
    issued: Instant,
}

/// What one creation day owes: task rows to (re)write and task ids whose captures to ask for.
#[derive(Default)]
pub(super) struct DayWork {
    pub date: NaiveDate,
    /// Tasks listed this run that are new or changed since the stored row.
    pub tasks: Vec<Task>,
    /// Task ids (with their `createdTime`) whose captures are asked for.
    pub query: Vec<(String, i64)>,
    /// Records of this day the listing could not understand.
    pub rejects: Vec<Reject>,
    /// Ids that parsed fine this run: their earlier rejects are cleared.
    pub parsed: HashSet<String>,
}

/// The run's state every day's work updates.
pub(super) struct RunState<'a> {
    pub ledger: &'a mut Ledger,
    /// Checked before every commit: a run that lost its lease writes nothing more.
    pub fence: &'a super::lease::Fence,
    pub summary: &'a mut SyncSummary,
    pub policy: &'a SyncPolicy,
    pub now: DateTime<Utc>,
}

impl RunState<'_> {
    fn books(&mut self) -> Books<'_> {
        Books {
            ledger: self.ledger,
            summary: self.summary,
            now: self.now,
        }
    }
}

/// The part of the run's state the pipeline's events update between commits.
struct Books<'a> {
    ledger: &'a mut Ledger,
    summary: &'a mut SyncSummary,
    now: DateTime<Utc>,
}

/// What the query-and-download pipeline reports to the committer.
enum Event {
    Captures(Queried),
    Stored(Box<Stored>),
}

/// One captures batch, isolated: what came back, what could not be read, what failed for good.
#[derive(Default)]
struct Queried {
    asked: Vec<String>,
    captures: Vec<TaskCaptures>,
    rejects: Vec<Reject>,
    failed: Vec<FailedTask>,
    requests: u64,
}

/// Rows that have settled and wait for the next commit.
#[derive(Default)]
struct Batch {
    tasks: Vec<Task>,
    captures: Vec<CaptureRow>,
    manifest: Vec<ManifestRow>,
    facts: Vec<AudioFactsRow>,
    derived: Vec<DerivativeRow>,
    rejects: Vec<Reject>,
    /// Tasks whose captures parsed: their earlier quarantined captures entries are cleared.
    answered: HashSet<String>,
    recordings: usize,
    /// Tasks whose work is complete, freed from the ledger (with their `createdTime`) only by
    /// the commit that writes their rows: the parts in flight share one ledger, and the other
    /// part's save must never free a task whose rows are still only in memory.
    resolved: HashMap<String, i64>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
            && self.captures.is_empty()
            && self.manifest.is_empty()
            && self.rejects.is_empty()
            && self.resolved.is_empty()
    }

    /// The task is complete: freed from the ledger with this batch's commit.
    fn resolve(&mut self, task_id: &str, created_ms: i64) {
        self.resolved.insert(task_id.to_owned(), created_ms);
    }

    /// Frees the resolved tasks: only once this batch's rows are upserted.
    fn free_resolved(&self, ledger: &mut Ledger) {
        for (task_id, created_ms) in &self.resolved {
            ledger.resolve(task_id, *created_ms);
        }
    }

    /// The task is owed again, at once (an entry saved early only means one more retry); a
    /// freeing still waiting in this batch is cancelled. `false`: given up (see
    /// [`Ledger::record`]).
    fn owe(
        &mut self,
        ledger: &mut Ledger,
        task_id: &str,
        created_ms: i64,
        why: Why,
        failure: Option<(Option<u16>, String)>,
        now: DateTime<Utc>,
    ) -> bool {
        self.resolved.remove(task_id);
        ledger.record(task_id, created_ms, why, failure, now)
    }
}

/// What the committer learns from the pipeline's events, until the part is done.
struct Tally<'a> {
    /// The `createdTime` of every task asked about (its partition, its ledger day).
    created: &'a HashMap<String, i64>,
    /// `stop_time` of each recording as last stored.
    stops: &'a HashMap<(String, String), Option<i64>>,
    pii: &'a super::pii::PiiMode,
    /// Tasks listed this run whose row waits for their work to be complete.
    listed: HashMap<String, Task>,
    /// Recordings of each task not settled yet.
    outstanding: HashMap<String, usize>,
    /// A recording's capture row waits for its download: a row written ahead of a transfer
    /// that then failed or was stopped would hide that the recording grew.
    waiting: HashMap<(String, String), CaptureRow>,
    /// Tasks with a recording (or a derivative) that could not be stored.
    failed: HashSet<String>,
}

impl Tally<'_> {
    fn created(&self, task_id: &str) -> i64 {
        self.created.get(task_id).copied().unwrap_or_default()
    }

    /// One captures batch answered: failures owed, tasks without recordings settled, the
    /// recordings' capture rows held until their downloads settle.
    fn captures(&mut self, run: &mut Books<'_>, batch: &mut Batch, mut q: Queried) {
        run.summary.captures_queries += q.requests;
        let answered: HashSet<&str> = q.captures.iter().map(|c| c.task_id.as_str()).collect();
        // An entry that could not be parsed is a failure of its task, not a task without
        // recordings: owed, named in the summary, and asked about again.
        for r in q.rejects.iter().filter(|r| r.source == CAPTURES_SOURCE) {
            let Some(id) = reject_id(&r.raw) else {
                continue;
            };
            if q.asked.contains(&id)
                && !answered.contains(id.as_str())
                && !q.failed.iter().any(|f| f.task_id == id)
            {
                q.failed.push(FailedTask {
                    task_id: id,
                    status: None,
                    reason: format!("captures entry rejected: {}", r.reason),
                });
            }
        }
        batch.rejects.extend(q.rejects);
        batch
            .answered
            .extend(answered.iter().map(|&id| id.to_owned()));
        for failed in &q.failed {
            let at = self.created(&failed.task_id);
            batch.owe(
                run.ledger,
                &failed.task_id,
                at,
                Why::CapturesFailed,
                Some((failed.status, failed.reason.clone())),
                run.now,
            );
            tracing::warn!(task_id = %failed.task_id, status = ?failed.status, reason = %failed.reason, "captures of a task could not be read; recorded for retry");
            run.summary.failed_tasks.push(failed.clone());
            batch.tasks.extend(self.listed.remove(&failed.task_id));
        }
        let failed: HashSet<&str> = q.failed.iter().map(|f| f.task_id.as_str()).collect();
        // Tasks the API left out of its answer have no captures (yet).
        let silent: Vec<&String> = q
            .asked
            .iter()
            .filter(|id| !answered.contains(id.as_str()) && !failed.contains(id.as_str()))
            .collect();
        for id in silent {
            self.no_recording(run, batch, id);
        }
        for c in &q.captures {
            run.summary.recordings += c.recording.len() as u64;
            batch.recordings += c.recording.len();
            let recordings: Vec<_> = c
                .recording
                .iter()
                .map(|r| (c.task_id.as_str(), r))
                .collect();
            for row in rows::capture_rows(&recordings, self.pii) {
                self.waiting
                    .insert((row.task_id.clone(), row.recording_id.clone()), row);
            }
            if c.recording.is_empty() {
                self.no_recording(run, batch, &c.task_id);
            } else {
                *self.outstanding.entry(c.task_id.clone()).or_default() += c.recording.len();
            }
        }
    }

    /// One transfer settled. Once a task's last recording has, the task is owed again if
    /// anything of it failed (the recording, or a derivative: a freed task is never asked
    /// about again once its day leaves the look-back), and freed otherwise.
    fn stored(&mut self, run: &mut Books<'_>, batch: &mut Batch, stored: Stored) {
        let key = (
            stored.manifest.task_id.clone(),
            stored.manifest.recording_id.clone(),
        );
        run.summary.count(&stored.manifest, stored.outcome);
        if matches!(stored.outcome, Outcome::Stopped) {
            // Aborted by a graceful stop: no row, the task stays owed.
            self.settle(batch, key, false);
            return;
        }
        let durable = !matches!(stored.outcome, Outcome::Failed);
        self.settle(batch, key, durable);
        run.summary.count_derived(&stored.derived);
        let task_id = stored.manifest.task_id.clone();
        if !durable
            || stored.store_error.is_some()
            || stored
                .derived
                .iter()
                .any(|d| d.status == derived_status::FAILED)
        {
            self.failed.insert(task_id.clone());
        }
        batch.manifest.push(stored.manifest);
        batch.facts.extend(stored.facts);
        batch.derived.extend(stored.derived);
        let left = self.outstanding.entry(task_id.clone()).or_insert(1);
        *left -= 1;
        if *left == 0 {
            self.outstanding.remove(&task_id);
            let at = self.created(&task_id);
            if self.failed.remove(&task_id) {
                batch.owe(run.ledger, &task_id, at, Why::DownloadFailed, None, run.now);
            } else {
                batch.resolve(&task_id, at);
            }
            batch.tasks.extend(self.listed.remove(&task_id));
        }
    }

    /// Releases a recording's capture row once its transfer settled. Without durable audio, a
    /// row listed before keeps its old `stop_time` (so the next run still sees the recording
    /// grew).
    fn settle(&mut self, batch: &mut Batch, key: (String, String), durable: bool) {
        if let Some(row) = self.waiting.remove(&key)
            && (durable || !self.stops.contains_key(&key))
        {
            batch.captures.push(row);
        }
    }

    /// A task asked about that has no recording: if one may still come, the ledger waits for
    /// it.
    fn no_recording(&mut self, run: &mut Books<'_>, batch: &mut Batch, id: &str) {
        let at = self.created(id);
        // A task listed this run says whether a recording may still come; one asked about from
        // the ledger alone keeps waiting (its row in the tasks table is unchanged).
        let may_come = self.listed.get(id).is_none_or(Task::may_have_recording);
        if !may_come {
            batch.resolve(id, at);
        } else if !batch.owe(run.ledger, id, at, Why::NoRecordingYet, None, run.now) {
            tracing::warn!(
                task_id = id,
                "no recording appeared within the give-up age; no longer asked about"
            );
            run.summary.given_up += 1;
        }
        batch.tasks.extend(self.listed.remove(id));
    }
}

/// The run's state, shared by the parts in flight (one finishing its downloads while the next
/// queries captures): each committer holds it while it handles an event or commits, which also
/// keeps two commits from upserting one partition at once.
pub(super) type Shared<'a> = tokio::sync::Mutex<RunState<'a>>;

/// Download slots shared by the parts in flight, so two parts never download more at once than
/// `download_concurrency` allows.
pub(super) struct Downloads {
    limit: usize,
    slots: tokio::sync::Semaphore,
}

impl Downloads {
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Downloads {
            limit,
            slots: tokio::sync::Semaphore::new(limit),
        }
    }
}

/// One part's work. `downloads` bounds the transfers of every part in flight; `queried`
/// is told when this part has asked all its captures queries (the next part may start its own).
pub(super) async fn sync_day(
    ctx: &SyncContext,
    org: &str,
    work: DayWork,
    downloads: &Downloads,
    run: &Shared<'_>,
    queried: Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<()> {
    let date = work.date;
    // What earlier runs stored, for this work's tasks only (not the whole day's).
    let only: HashSet<String> = work.query.iter().map(|(id, _)| id.clone()).collect();
    let only = Some(&only);
    let previous = previous_manifest(ctx, org, date, only).await?;
    let analysed = rows::analysed_in_lake(&ctx.lake, org, date, only).await?;
    let derived = if ctx.processing.derive.is_empty() {
        HashMap::new()
    } else {
        rows::derivatives_from_lake(&ctx.lake, org, date, only).await?
    };
    let stops = rows::capture_stops_from_lake(&ctx.lake, org, date, only).await?;
    let known = Known {
        manifest: &previous,
        analysed: &analysed,
        derived: &derived,
        stops: &stops,
    };
    let url_life = Duration::from_secs(u64::from(ctx.api.settings().url_expiration_minutes) * 60);

    let created: HashMap<String, i64> = work.query.iter().cloned().collect();
    let mut listed: HashMap<String, Task> = HashMap::new();
    let mut batch = Batch {
        rejects: work.rejects,
        ..Default::default()
    };
    for task in work.tasks {
        if created.contains_key(&task.id) {
            listed.insert(task.id.clone(), task);
        } else {
            batch.tasks.push(task);
        }
    }
    run.lock().await.summary.captures_asked += work.query.len() as u64;

    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let ids: Vec<String> = work.query.into_iter().map(|(id, _)| id).collect();
    let failures_in_a_row = std::sync::atomic::AtomicU32::new(0);
    let store_failures_in_a_row = std::sync::atomic::AtomicU32::new(0);
    // Stops asking for more when the run stops or the committer failed (a lost lease, say).
    let halt = ctx.stop.child_token();
    // Two stages joined by a bounded queue, so captures queries keep going (up to
    // `RECORDINGS_AHEAD` recordings ahead) while every download slot is busy.
    let (mut ahead_tx, ahead_rx) = futures::channel::mpsc::channel::<Pending>(RECORDINGS_AHEAD);
    let query_stage = {
        let tx = tx.clone();
        let (ids, halt, failures_in_a_row) = (&ids, &halt, &failures_in_a_row);
        async move {
            use futures::SinkExt;
            let answers = futures::stream::iter(ids.chunks(MAX_CAPTURE_IDS))
                .take_until(halt.cancelled())
                .map(|chunk| query_isolated(ctx, chunk.to_vec(), failures_in_a_row))
                .buffered(CAPTURE_QUERIES_IN_FLIGHT);
            let mut answers = std::pin::pin!(answers);
            while let Some(queried) = answers.next().await {
                let queried = queried?;
                let issued = Instant::now();
                let pending: Vec<Pending> = queried
                    .captures
                    .iter()
                    .flat_map(|c| {
                        c.recording.iter().map(|r| Pending {
                            task_id: c.task_id.clone(),
                            recording: r.clone(),
                            issued,
                        })
                    })
                    .collect();
                // The committer learns of a batch's recordings before any of them is stored.
                let _ = tx.send(Event::Captures(queried));
                for p in pending {
                    if ahead_tx.send(p).await.is_err() {
                        return Ok(()); // the download stage ended (stopped or failed)
                    }
                }
            }
            Ok::<(), SyncError>(())
        }
    };
    let query_stage = async {
        let done = query_stage.await;
        if let Some(queried) = queried {
            let _ = queried.send(());
        }
        done
    };
    let download_stage = async {
        let tx = tx; // dropped with the last stage, which ends the committer's loop
        let done = ahead_rx
            .take_until(halt.cancelled())
            .map(|p| async {
                // Never closed; without a permit the transfer would still be bounded here.
                let _slot = downloads.slots.acquire().await.ok();
                store_recording(ctx, org, p, url_life, &known).await
            })
            .buffer_unordered(downloads.limit)
            .try_for_each(|stored| {
                let store_down = store_health(&store_failures_in_a_row, &stored);
                let _ = tx.send(Event::Stored(Box::new(stored)));
                futures::future::ready(store_down)
            })
            .await;
        if done.is_err() {
            halt.cancel();
        }
        done
    };
    let committer = async {
        let mut tally = Tally {
            created: &created,
            stops: &stops,
            pii: &ctx.pii,
            listed,
            outstanding: HashMap::new(),
            waiting: HashMap::new(),
            failed: HashSet::new(),
        };
        let mut last_commit = Instant::now();
        while let Some(event) = rx.recv().await {
            let mut run = run.lock().await;
            let run = &mut *run;
            match event {
                Event::Captures(q) => tally.captures(&mut run.books(), &mut batch, q),
                Event::Stored(stored) => tally.stored(&mut run.books(), &mut batch, *stored),
            }
            if batch.recordings >= run.policy.commit_every
                || (last_commit.elapsed() >= run.policy.commit_interval && !batch.is_empty())
            {
                let full = std::mem::take(&mut batch);
                commit(ctx, org, date, full, &work.parsed, run).await?;
                last_commit = Instant::now();
            }
        }
        // Whatever was not answered (the pipeline stopped early) keeps its ledger state and
        // gets no task row, so the next run asks again.
        let mut run = run.lock().await;
        let run = &mut *run;
        for key in tally.waiting.keys().cloned().collect::<Vec<_>>() {
            tally.settle(&mut batch, key, false);
        }
        let done = std::mem::take(&mut batch);
        commit(ctx, org, date, done, &work.parsed, run).await?;
        Ok::<(), SyncError>(())
    };
    let committer = async {
        let done = committer.await;
        if done.is_err() {
            halt.cancel();
        }
        done
    };
    let (queried, downloaded, committed) = tokio::join!(query_stage, download_stage, committer);
    committed?;
    downloaded?;
    queried?;
    Ok(())
}

/// Counts recordings the store failed, one after another with none stored between: at
/// [`OUTAGE_AFTER`] the store is refusing us (revoked credentials, a location that cannot be
/// written) and the run stops, instead of failing recording after recording, each only after
/// its own retries. Failures of the media host neither count nor break the run.
fn store_health(in_a_row: &std::sync::atomic::AtomicU32, stored: &Stored) -> Result<()> {
    use std::sync::atomic::Ordering;
    match &stored.store_error {
        Some(e) => {
            let failures = in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
            if failures >= OUTAGE_AFTER {
                return Err(SyncError::StoreDown(e.clone()));
            }
        }
        None if matches!(stored.outcome, Outcome::Stored { .. } | Outcome::Present) => {
            in_a_row.store(0, Ordering::Relaxed);
        }
        None => {}
    }
    Ok(())
}

/// Writes one batch of settled rows: audio-derived tables, captures, the ledger, then tasks.
async fn commit(
    ctx: &SyncContext,
    org: &str,
    date: NaiveDate,
    batch: Batch,
    parsed: &HashSet<String>,
    run: &mut RunState<'_>,
) -> Result<()> {
    let (lake, fence) = (&ctx.lake, run.fence);
    fence.verify().await?;
    if !batch.facts.is_empty() {
        let b = lake::audio_facts_batch(&batch.facts)?;
        fenced_upsert(lake, fence, Table::AudioFacts, org, date, b).await?;
    }
    if !batch.derived.is_empty() {
        let b = lake::derivatives_batch(&batch.derived)?;
        fenced_upsert(lake, fence, Table::Derivatives, org, date, b).await?;
    }
    if !batch.manifest.is_empty() {
        let b = lake::manifest_batch(&batch.manifest)?;
        fenced_upsert(lake, fence, Table::Manifest, org, date, b).await?;
    }
    if !batch.captures.is_empty() {
        let b = lake::captures_batch(&batch.captures)?;
        fenced_upsert(lake, fence, Table::Captures, org, date, b).await?;
    }
    write_rejects(ctx, org, date, &batch.rejects, parsed, &batch.answered).await?;
    run.summary.rejects += batch.rejects.len() as u64;
    // Their rows are written now (the tasks' own rows come last: a task without its row is
    // listed as new and asked about again).
    batch.free_resolved(run.ledger);
    fence.check()?;
    run.ledger.save().await?;
    if !batch.tasks.is_empty() {
        let b = lake::tasks_batch(&rows::task_rows(&batch.tasks, &ctx.pii))?;
        fenced_upsert(lake, fence, Table::Tasks, org, date, b).await?;
    }
    run.summary.commits += 1;
    tracing::debug!(%date, tasks = batch.tasks.len(), recordings = batch.manifest.len(), "committed");
    Ok(())
}

/// Upserts one partition if this run still holds its lease. Checked before every table, not
/// once per commit: a commit that outlives its lease (a put stalled past the lease's trust)
/// stops at its next write instead of finishing over a newer run's files.
pub(super) async fn fenced_upsert(
    lake: &lake::Lake,
    fence: &Fence,
    table: Table,
    org: &str,
    date: NaiveDate,
    batch: arrow::array::RecordBatch,
) -> Result<()> {
    fence.check()?;
    lake.upsert_partition(table, org, date, batch).await?;
    Ok(())
}

/// One captures batch; a batch that fails for good is split in halves down to single tasks, so
/// one bad task costs its own query and never the others'. Only authorization failures, and a
/// run of failures that looks like an outage, stop the run.
async fn query_isolated(
    ctx: &SyncContext,
    ids: Vec<String>,
    failures_in_a_row: &std::sync::atomic::AtomicU32,
) -> Result<Queried> {
    use std::sync::atomic::Ordering;
    let mut out = Queried {
        asked: ids.clone(),
        ..Default::default()
    };
    let mut todo = vec![ids];
    while let Some(batch) = todo.pop() {
        out.requests += 1;
        match ctx.api.query_captures(&batch).await {
            Ok((captures, rejects)) => {
                failures_in_a_row.store(0, Ordering::Relaxed);
                out.captures.extend(captures);
                out.rejects.extend(rejects);
            }
            Err(ApiError::Auth(e)) => return Err(ApiError::Auth(e).into()),
            Err(e) if batch.len() > 1 => {
                tracing::debug!(tasks = batch.len(), error = %e, "captures batch failed; splitting it");
                let mut left = batch;
                let right = left.split_off(left.len() / 2);
                todo.push(right);
                todo.push(left);
            }
            Err(e) => {
                let status = match &e {
                    ApiError::Status { status, .. } => Some(*status),
                    _ => None,
                };
                // A 4xx is about this task; only server and transport failures look like an
                // outage of the API.
                let about_the_task = status.is_some_and(|s| (400..500).contains(&s) && s != 429);
                if !about_the_task
                    && failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1 >= OUTAGE_AFTER
                {
                    return Err(SyncError::Outage(e.to_string()));
                }
                out.failed.push(FailedTask {
                    task_id: batch[0].clone(),
                    status,
                    reason: e.to_string(),
                });
            }
        }
    }
    Ok(out)
}

type Previous = HashMap<(String, String), ManifestRow>;

/// What earlier runs left in this window's partitions.
struct Known<'a> {
    manifest: &'a Previous,
    analysed: &'a HashSet<(String, String)>,
    /// Empty unless derivatives are asked for.
    derived: &'a HashMap<(String, String, String), DerivativeRow>,
    /// `stop_time` of each recording as last listed.
    stops: &'a HashMap<(String, String), Option<i64>>,
}

impl Known<'_> {
    /// The derivatives asked for that no earlier run made from this very original. One whose
    /// original could not be decoded is not tried again until the original changes.
    fn derivatives_missing(
        &self,
        wanted: &[audio::Derivative],
        id: &(String, String),
        source: &StoredAudio,
    ) -> Vec<audio::Derivative> {
        wanted
            .iter()
            .copied()
            .filter(|kind| {
                let key = (id.0.clone(), id.1.clone(), kind.name().to_owned());
                !self.derived.get(&key).is_some_and(|row| {
                    row.source_sha256.as_deref() == Some(source.sha256.as_str())
                        && (row.status == derived_status::OK
                            || row.status == derived_status::UNUSABLE_SOURCE)
                })
            })
            .collect()
    }
}

/// One recording's outcome: its manifest row and, when analysed or derived now, those rows.
struct Stored {
    manifest: ManifestRow,
    outcome: Outcome,
    facts: Option<AudioFactsRow>,
    derived: Vec<DerivativeRow>,
    /// Why the store itself failed this recording (checking for it, writing it, or reading the
    /// stored copy to process it), if it did: the task stays owed.
    store_error: Option<String>,
}

async fn previous_manifest(
    ctx: &SyncContext,
    org: &str,
    date: NaiveDate,
    only: rows::Only<'_>,
) -> Result<Previous> {
    Ok(rows::manifest_from_lake(&ctx.lake, org, date, only)
        .await?
        .into_iter()
        .map(|r| ((r.task_id.clone(), r.recording_id.clone()), r))
        .collect())
}

/// Quarantined records of a day accumulate across runs and commits (one line each, kept once);
/// a record is dropped from quarantine only when what it was later parses: the task in a
/// listing (`parsed`), its captures entry in a captures answer (`answered`). Signed URLs were
/// scrubbed when the reject was made.
async fn write_rejects(
    ctx: &SyncContext,
    org: &str,
    date: NaiveDate,
    rejects: &[Reject],
    parsed: &HashSet<String>,
    answered: &HashSet<String>,
) -> Result<()> {
    let path = ctx
        .lake
        .path(&format!("_rejects/org_id={org}/date={date}/rejects.jsonl"));
    let store = ctx.lake.store();
    let existing = match store.get(&path).await {
        Ok(got) => got.bytes().await?.to_vec(),
        Err(object_store::Error::NotFound { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    if rejects.is_empty() && existing.is_empty() {
        return Ok(());
    }
    let mut lines: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for line in String::from_utf8_lossy(&existing).lines() {
        let Ok(mut v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let mut raw = v["raw"].as_str().unwrap_or_default().to_owned();
        let fixed = reject_id(&raw).is_some_and(|id| match v["source"].as_str() {
            Some(CAPTURES_SOURCE) => answered.contains(&id),
            _ => parsed.contains(&id),
        });
        if fixed {
            continue;
        }
        // Lines kept by a run with weaker settings get today's protection (idempotent: a
        // hashed value stays as it is).
        let mut line = line.to_owned();
        if ctx.pii.protects() {
            raw = ctx.pii.apply_to_json(&raw);
            let reason =
                crate::api::reason_without_values(v["reason"].as_str().unwrap_or_default());
            v["raw"] = raw.clone().into();
            v["reason"] = reason.into();
            line = v.to_string();
        }
        if seen.insert(raw) {
            lines.push(line);
        }
    }
    for r in rejects {
        tracing::warn!(source = r.source, reason = %r.reason, "record quarantined");
        let r = Reject {
            raw: ctx.pii.apply_to_json(&r.raw),
            ..r.clone()
        };
        if seen.insert(r.raw.clone()) {
            lines.push(serde_json::to_string(&r).expect("reject serializes"));
        }
    }
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if body.as_bytes() == existing.as_slice() {
        return Ok(());
    }
    if body.is_empty() {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    store.put(&path, body.into_bytes().into()).await?;
    Ok(())
}

/// The task id a quarantined record names, if any (`id` of a task, `taskId` of captures).
fn reject_id(raw: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    v.get("id")
        .or_else(|| v.get("taskId"))
        .and_then(|id| id.as_str())
        .map(str::to_owned)
}

/// Stores one recording, or confirms it is already stored, and analyses audio not analysed
/// yet. Never fails the window: a failure becomes a manifest row with status `failed`, picked
/// up again by the next run.
async fn store_recording(
    ctx: &SyncContext,
    org: &str,
    p: Pending,
    url_life: Duration,
    known: &Known<'_>,
) -> Result<Stored> {
    let (task_id, rec) = (p.task_id.as_str(), &p.recording);
    if ctx.stop.is_cancelled() {
        return Ok(Stored {
            manifest: ManifestRow {
                task_id: task_id.to_owned(),
                recording_id: rec.id.clone(),
                ..Default::default()
            },
            outcome: Outcome::Stopped,
            facts: None,
            derived: Vec::new(),
            store_error: None,
        });
    }
    let key = match audio::object_key(org, task_id, &rec.id) {
        Ok(k) => k,
        Err(e) => {
            let manifest = rows::manifest_row(task_id, &rec.id, String::new(), Err(&e));
            return Ok(Stored {
                manifest,
                outcome: Outcome::Failed,
                facts: None,
                derived: Vec::new(),
                store_error: None,
            });
        }
    };
    let path = ctx.lake.path(&key);
    let uri = ctx.lake.uri(&path);
    let id = (task_id.to_owned(), rec.id.clone());
    let ids = audio::RecordingIds {
        task_id,
        recording_id: &rec.id,
    };
    // A recording listed while its call was going is not final: a later stop time means the
    // stored audio is shorter than the recording now is.
    let grown = known
        .stops
        .get(&id)
        .is_some_and(|stop| *stop != rec.attributes.stop_time);
    let stored = if grown {
        tracing::info!(%path, "recording grew since it was stored; downloading again");
        None
    } else {
        match already_stored(ctx, &path, known.manifest.get(&id)).await {
            Ok(stored) => stored,
            Err(e) => {
                // Nothing stored is on record for it, so nothing is demoted: retried next run.
                let e = AudioError::Store(e);
                let manifest = rows::manifest_row(task_id, &rec.id, uri, Err(&e));
                return Ok(Stored {
                    manifest,
                    outcome: Outcome::Failed,
                    facts: None,
                    derived: Vec::new(),
                    store_error: Some(e.to_string()),
                });
            }
        }
    };
    // Without both rows of a durable store, nothing says which stopTime the stored bytes were
    // fetched for: a run killed between storing a recording and committing its rows, or one
    // whose transfer stopped (its capture row, written anyway, has the stopTime listed then, not
    // that of an object left by an earlier killed run). The audio's own length says.
    let recorded = known.stops.contains_key(&id)
        && known
            .manifest
            .get(&id)
            .is_some_and(|m| m.status == STATUS_STORED);
    let stored = match stored {
        Some(s) if !recorded && cut_short(ctx, &path, &s, rec).await => {
            tracing::info!(%path, "stored audio is shorter than the recording listed now; downloading again");
            None
        }
        other => other,
    };
    if let Some(stored) = stored {
        // Audio stored by an earlier run: analyse or derive from the stored copy what that run
        // did not (analysis or derivation switched on since, or a derivative that failed).
        let mut derive = known.derivatives_missing(&ctx.processing.derive, &id, &stored);
        if ctx.verify_checksums {
            derive.extend(derivatives_gone(ctx, &path, known, &id, &derive).await);
        }
        let processing = Processing {
            analyze: ctx.processing.analyze && !known.analysed.contains(&id),
            derive,
            scratch_dir: ctx.processing.scratch_dir.clone(),
        };
        // A stored copy that cannot be read (the store failing) leaves its facts and derivatives
        // unmade: the task stays owed, so a later run makes them even once its day is no longer
        // listed.
        let mut read_error = None;
        let processed =
            match audio::process_stored(&transfer(ctx, &processing), &path, &ids, &stored).await {
                Ok(p) => Some(p),
                Err(AudioError::Changed) => None,
                Err(e) => {
                    tracing::warn!(%path, error = %e, "cannot read stored audio to process it");
                    read_error = Some(e.to_string());
                    Some(audio::Processed {
                        facts: None,
                        derived: unreadable(&path, &processing.derive, &e),
                    })
                }
            };
        if let Some(processed) = processed {
            return Ok(Stored {
                manifest: rows::manifest_row(task_id, &rec.id, uri, Ok(&stored)),
                outcome: Outcome::Present,
                facts: processed
                    .facts
                    .map(|analysis| rows::facts_row(task_id, rec, &analysis)),
                derived: rows::derivative_rows(
                    &ctx.lake,
                    task_id,
                    rec,
                    &stored,
                    &processed.derived,
                ),
                store_error: read_error,
            });
        }
        tracing::warn!(%path, "stored object changed since it was recorded; downloading again");
    }
    let margin = URL_SAFETY_MARGIN.min(url_life / 4);
    let url = if p.issued.elapsed() + margin >= url_life {
        fresh_url(ctx, task_id, &rec.id).await
    } else {
        rec.attributes.file_path.clone()
    };
    let result = download(ctx, &ids, url, &path).await;
    let (outcome, facts, derived) = match &result {
        Ok((fetched, refreshed)) => (
            Outcome::Stored {
                refreshed: *refreshed,
            },
            fetched
                .processed
                .facts
                .as_ref()
                .map(|analysis| rows::facts_row(task_id, rec, analysis)),
            rows::derivative_rows(
                &ctx.lake,
                task_id,
                rec,
                &fetched.stored,
                &fetched.processed.derived,
            ),
        ),
        Err(AudioError::Stopped) => (Outcome::Stopped, None, Vec::new()),
        Err(e) => {
            tracing::warn!(task_id, recording_id = %rec.id, error = %e, "recording not stored");
            (Outcome::Failed, None, Vec::new())
        }
    };
    let manifest = rows::manifest_row(
        task_id,
        &rec.id,
        uri,
        result.as_ref().map(|(f, _)| &f.stored),
    );
    let store_error = match &result {
        Err(e @ AudioError::Store(_)) => Some(e.to_string()),
        _ => None,
    };
    Ok(Stored {
        manifest,
        outcome,
        facts,
        derived,
        store_error,
    })
}

/// With `--verify-checksums`, derivatives recorded as made (and not in `missing` already) must
/// still be in the store at their recorded size; those that are not are made again.
async fn derivatives_gone(
    ctx: &SyncContext,
    original: &Path,
    known: &Known<'_>,
    id: &(String, String),
    missing: &[audio::Derivative],
) -> Vec<audio::Derivative> {
    let mut gone = Vec::new();
    for &kind in ctx
        .processing
        .derive
        .iter()
        .filter(|k| !missing.contains(k))
    {
        let key = (id.0.clone(), id.1.clone(), kind.name().to_owned());
        let Some(row) = known.derived.get(&key) else {
            continue;
        };
        if row.status != derived_status::OK {
            continue;
        }
        let path = audio::derived_path(original, kind);
        let size = ctx
            .lake
            .store()
            .head(&path)
            .await
            .ok()
            .map(|m| m.size as i64);
        if size.is_none() || size != row.size_bytes {
            tracing::warn!(%path, "derivative missing or changed; making it again");
            gone.push(kind);
        }
    }
    gone
}

/// Failed derivative outcomes for a stored recording that could not be read.
fn unreadable(
    original: &Path,
    kinds: &[audio::Derivative],
    e: &AudioError,
) -> Vec<audio::DerivedObject> {
    kinds
        .iter()
        .map(|&kind| audio::DerivedObject {
            kind,
            path: audio::derived_path(original, kind),
            result: Err(AudioError::Derive(format!(
                "cannot read the stored recording: {e}"
            ))),
        })
        .collect()
}

/// How audio moves into the lake's store, with `processing` on the way.
fn transfer<'a>(ctx: &'a SyncContext, processing: &'a Processing) -> audio::Transfer<'a> {
    audio::Transfer {
        http: &ctx.media,
        store: ctx.lake.store(),
        retry: &ctx.retry,
        part_size: audio::part_size_for(ctx.lake.url().scheme()),
        processing,
        stop: Some(&ctx.stop),
    }
}

/// An object already in the store counts as stored when it matches the manifest's size (or,
/// with `verify_checksums`, its SHA-256). An object with no manifest row (a run that died
/// before writing its partitions) is complete by construction — uploads only become visible
/// once every byte arrived — so it is hashed from the store instead of downloaded again. One
/// whose row says its last download failed is never trusted: it is downloaded again.
///
/// Only a definite "not found" means absent: other errors are retried, and a recording the
/// manifest says is stored stays stored when the store cannot be asked (never demoted to
/// `failed` by a hiccup).
async fn already_stored(
    ctx: &SyncContext,
    path: &Path,
    previous: Option<&ManifestRow>,
) -> std::result::Result<Option<StoredAudio>, object_store::Error> {
    use backon::Retryable;
    let store: &Arc<dyn ObjectStore> = ctx.lake.store();
    let head = (|| store.head(path))
        .retry(
            backon::ExponentialBuilder::default()
                .with_jitter()
                .with_max_times(4),
        )
        .when(|e| !matches!(e, object_store::Error::NotFound { .. }))
        .await;
    let recorded = previous
        .filter(|p| p.status == STATUS_STORED)
        .and_then(|p| {
            Some(StoredAudio {
                size: u64::try_from(p.size_bytes?).ok()?,
                sha256: p.sha256.clone()?,
            })
        });
    let meta = match head {
        Ok(meta) => meta,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => {
            return match recorded {
                Some(r) => {
                    tracing::warn!(%path, error = %e, "cannot check a stored recording; keeping its manifest row");
                    Ok(Some(r))
                }
                None => Err(e),
            };
        }
    };
    Ok(match (previous, recorded) {
        (_, Some(recorded)) if recorded.size == meta.size => {
            if !ctx.verify_checksums {
                return Ok(Some(recorded));
            }
            let actual = audio::hash_object(store, path).await.ok();
            actual.filter(|a| *a == recorded)
        }
        (Some(prev), _) if prev.status == STATUS_STORED => {
            tracing::warn!(%path, "stored object differs from the manifest; downloading again");
            None
        }
        // The last download of it failed: the object may be one found damaged before that
        // failed repair (whose row no longer holds the size and checksum that showed it).
        (Some(_), _) => {
            tracing::info!(%path, "object whose last download failed; downloading again");
            None
        }
        (None, _) => audio::hash_object(store, path).await.ok(),
    })
}

/// How much shorter than its listed `stopTime − startTime` stored audio may be and still be taken
/// as the whole recording: the larger of this and 2 % (writers pad and trim a little).
const CUT_SHORT_SLACK_MS: i64 = 2_000;

/// Whether a stored object is audio cut off before the recording listed now ends, i.e. fetched
/// while its call was going. An object that is no WAV whose length can be read counts as cut
/// short: it is downloaded once more rather than trusted. A store that cannot be asked does not
/// (a hiccup never demotes a stored recording). A recording still open (no `stopTime`) is not
/// final either way, and is fetched again when it stops.
pub(super) async fn cut_short(
    ctx: &SyncContext,
    path: &Path,
    stored: &StoredAudio,
    rec: &Recording,
) -> bool {
    let a = &rec.attributes;
    let Some(listed) = a
        .stop_time
        .zip(a.start_time)
        .map(|(stop, start)| stop - start)
    else {
        return false;
    };
    match audio::stored_duration_ms(ctx.lake.store(), path, stored.size).await {
        Ok(Some(ms)) => ms + CUT_SHORT_SLACK_MS.max(listed / 50) < listed,
        Ok(None) => true,
        Err(e) => {
            tracing::warn!(%path, error = %e, "cannot read a stored recording's header; keeping it");
            false
        }
    }
}

/// Fresh URLs asked for one recording before giving up (each costs a captures query).
const MAX_URL_REFRESHES: u32 = 3;

/// Downloads with the URL at hand; when it has expired (even between retries of a flaky
/// transfer), asks for a fresh one, a bounded number of times.
async fn download(
    ctx: &SyncContext,
    ids: &audio::RecordingIds<'_>,
    url: Option<SecretString>,
    path: &Path,
) -> std::result::Result<(Fetched, bool), AudioError> {
    let mut url = url.ok_or(AudioError::NoUrl)?;
    let transfer = transfer(ctx, &ctx.processing);
    let (task_id, recording_id) = (ids.task_id, ids.recording_id);
    let mut refreshes = 0;
    loop {
        match audio::fetch_to_store(&transfer, &url, path, ids).await {
            Err(AudioError::UrlExpired) if refreshes < MAX_URL_REFRESHES => {
                tracing::debug!(
                    task_id,
                    recording_id,
                    "download URL expired; re-querying captures"
                );
                refreshes += 1;
                url = fresh_url(ctx, task_id, recording_id)
                    .await
                    .ok_or(AudioError::UrlExpired)?;
            }
            other => return other.map(|f| (f, refreshes > 0)),
        }
    }
}

async fn fresh_url(ctx: &SyncContext, task_id: &str, recording_id: &str) -> Option<SecretString> {
    let (captures, _) = ctx.api.query_captures(&[task_id.to_owned()]).await.ok()?;
    captures
        .into_iter()
        .flat_map(|c| c.recording)
        .find(|r| r.id == recording_id)
        .and_then(|r| r.attributes.file_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::Lake;
    use std::sync::atomic::AtomicU32;

    fn settled(outcome: Outcome, store_error: Option<&str>) -> Stored {
        Stored {
            manifest: ManifestRow::default(),
            outcome,
            facts: None,
            derived: Vec::new(),
            store_error: store_error.map(str::to_owned),
        }
    }

    const CREATED: i64 = 1_767_600_000_000; // 2026-01-05T08:00:00Z

    fn now() -> DateTime<Utc> {
        "2026-01-06T09:00:00Z".parse().expect("time")
    }

    /// A transfer of `task`'s only recording that settled with `outcome`, with derivatives in
    /// the given states.
    fn transfer(task: &str, outcome: Outcome, derived: &[&str]) -> Stored {
        Stored {
            manifest: ManifestRow {
                task_id: task.into(),
                recording_id: format!("{task}-rec"),
                status: STATUS_STORED.into(),
                ..ManifestRow::default()
            },
            derived: derived
                .iter()
                .map(|status| DerivativeRow {
                    task_id: task.into(),
                    recording_id: format!("{task}-rec"),
                    kind: "mono16k".into(),
                    status: (*status).into(),
                    ..DerivativeRow::default()
                })
                .collect(),
            ..settled(outcome, None)
        }
    }

    /// An empty tally over tasks created as `created` says.
    fn tally<'a>(
        created: &'a HashMap<String, i64>,
        stops: &'a HashMap<(String, String), Option<i64>>,
    ) -> Tally<'a> {
        Tally {
            created,
            stops,
            pii: &super::super::pii::PiiMode::Keep,
            listed: HashMap::new(),
            outstanding: HashMap::new(),
            waiting: HashMap::new(),
            failed: HashSet::new(),
        }
    }

    async fn ledger_of(lake: &Lake) -> Ledger {
        Ledger::load(lake, "org-1", chrono::Duration::days(7))
            .await
            .expect("load")
    }

    /// Settles one transfer per task (each task's only recording) through a fresh tally, and
    /// returns the batch waiting for its commit.
    fn settle_all(ledger: &mut Ledger, transfers: Vec<Stored>) -> Batch {
        let created: HashMap<String, i64> = transfers
            .iter()
            .map(|t| (t.manifest.task_id.clone(), CREATED))
            .collect();
        let stops = HashMap::new();
        let mut tally = tally(&created, &stops);
        tally.outstanding = created.keys().map(|id| (id.clone(), 1)).collect();
        let mut summary = SyncSummary::default();
        let mut batch = Batch::default();
        for t in transfers {
            let mut books = Books {
                ledger: &mut *ledger,
                summary: &mut summary,
                now: now(),
            };
            tally.stored(&mut books, &mut batch, t);
        }
        batch
    }

    async fn owed_after_reload(lake: &Lake, task: &str) -> Option<Why> {
        ledger_of(lake).await.get(task, CREATED).map(|e| e.why)
    }

    /// A captures entry that cannot be parsed fails its task: owed and named, never taken for
    /// a task without recordings (which a run does not count as partial).
    #[tokio::test]
    async fn a_captures_entry_that_cannot_be_parsed_fails_its_task() {
        let lake = Lake::open("memory://").expect("lake");
        let mut ledger = ledger_of(&lake).await;
        let created: HashMap<String, i64> =
            [("t1".to_owned(), CREATED), ("t2".to_owned(), CREATED)].into();
        let stops = HashMap::new();
        let mut tally = tally(&created, &stops);
        let mut summary = SyncSummary::default();
        let mut batch = Batch::default();
        let raw = serde_json::json!({"taskId": "t1", "recording": [{"attributes": 7}]});
        let q = Queried {
            asked: vec!["t1".into(), "t2".into()],
            captures: Vec::new(),
            rejects: vec![Reject::new(CAPTURES_SOURCE, "invalid type", &raw)],
            failed: Vec::new(),
            requests: 1,
        };
        let mut books = Books {
            ledger: &mut ledger,
            summary: &mut summary,
            now: now(),
        };
        tally.captures(&mut books, &mut batch, q);
        let names: Vec<&str> = summary
            .failed_tasks
            .iter()
            .map(|f| f.task_id.as_str())
            .collect();
        assert_eq!(names, ["t1"]);
        assert!(summary.failed_tasks[0].reason.contains("rejected"));
        assert_eq!(batch.rejects.len(), 1, "still quarantined");
        batch.free_resolved(&mut ledger);
        ledger.save().await.expect("save");
        assert_eq!(
            owed_after_reload(&lake, "t1").await,
            Some(Why::CapturesFailed)
        );
        // t2 was answered with nothing: a task without recordings (yet).
        assert_eq!(
            owed_after_reload(&lake, "t2").await,
            Some(Why::NoRecordingYet)
        );
    }

    /// A commit that outlived its lease stops at its next table: another run may own these
    /// partitions by now.
    #[tokio::test]
    async fn a_commit_whose_lease_ran_out_writes_no_further_table() {
        let lake = Lake::open("memory://").expect("lake");
        let date = NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let rows = || {
            lake::captures_batch(&[CaptureRow {
                task_id: "t1".into(),
                recording_id: "r1".into(),
                ..CaptureRow::default()
            }])
            .unwrap()
        };
        let expired = Fence::expired("org-1");
        let err = fenced_upsert(&lake, &expired, Table::Captures, "org-1", date, rows()).await;
        assert!(matches!(err, Err(SyncError::State(_))), "{err:?}");
        let read = lake.read_partition(Table::Captures, "org-1", date).await;
        assert!(read.expect("read").is_none(), "nothing written");
    }

    /// Two parts share the ledger, and either may save it at any time: a task whose last
    /// recording was stored stays owed in every save until the commit that writes its rows.
    /// Freed at once, a save by the other part followed by a crash before this part's commit
    /// left its recording in no table and in no ledger: never asked about again.
    #[tokio::test]
    async fn a_task_leaves_the_ledger_only_with_the_commit_of_its_rows() {
        let lake = Lake::open("memory://").expect("lake");
        let mut ledger = ledger_of(&lake).await;
        ledger.record("t1", CREATED, Why::DownloadFailed, None, now());
        ledger.save().await.expect("save");

        let batch = settle_all(
            &mut ledger,
            vec![transfer("t1", Outcome::Stored { refreshed: false }, &[])],
        );
        // The other part saves now; this part's commit has not run.
        ledger.save().await.expect("save");
        assert_eq!(
            owed_after_reload(&lake, "t1").await,
            Some(Why::DownloadFailed)
        );

        batch.free_resolved(&mut ledger);
        ledger.save().await.expect("save");
        assert_eq!(owed_after_reload(&lake, "t1").await, None);
    }

    /// A recording stored but a derivative of it failed, or whose stored copy could not be read
    /// to analyse it: the task stays owed (the summary counts it, the run exits partial, a later
    /// run derives it from the stored copy), also once its day has left the look-back.
    #[tokio::test]
    async fn a_failed_derivative_keeps_its_task_owed() {
        let lake = Lake::open("memory://").expect("lake");
        let mut ledger = ledger_of(&lake).await;
        let failed = derived_status::FAILED;
        let batch = settle_all(
            &mut ledger,
            vec![
                transfer(
                    "t1",
                    Outcome::Stored { refreshed: false },
                    &[derived_status::OK, failed],
                ),
                transfer("t2", Outcome::Present, &[failed]),
                transfer(
                    "t3",
                    Outcome::Stored { refreshed: false },
                    &[derived_status::OK],
                ),
                transfer("t4", Outcome::Failed, &[]),
                // Stored before; reading it back to analyse it failed.
                Stored {
                    store_error: Some("503".into()),
                    ..transfer("t5", Outcome::Present, &[])
                },
            ],
        );
        batch.free_resolved(&mut ledger);
        ledger.save().await.expect("save");
        for (task, owed) in [
            ("t1", Some(Why::DownloadFailed)),
            ("t2", Some(Why::DownloadFailed)),
            ("t3", None),
            ("t4", Some(Why::DownloadFailed)),
            ("t5", Some(Why::DownloadFailed)),
        ] {
            assert_eq!(owed_after_reload(&lake, task).await, owed, "{task}");
        }
        assert_eq!(ledger.counts().download_failed, 4);
    }

    #[test]
    fn only_store_failures_in_a_row_stop_the_run() {
        let in_a_row = AtomicU32::new(0);
        let store_failed = || settled(Outcome::Failed, Some("disk says no"));
        let check = |stored: Stored| store_health(&in_a_row, &stored);
        // A failure of the media host neither counts nor resets.
        for _ in 2..OUTAGE_AFTER {
            assert!(check(store_failed()).is_ok());
        }
        assert!(check(settled(Outcome::Failed, None)).is_ok());
        assert!(check(store_failed()).is_ok());
        let stopped = check(store_failed());
        assert!(
            matches!(&stopped, Err(SyncError::StoreDown(e)) if e == "disk says no"),
            "{stopped:?}"
        );
        // A recording stored or found present resets the count.
        for ok in [Outcome::Stored { refreshed: false }, Outcome::Present] {
            assert!(check(settled(ok, None)).is_ok());
            for _ in 1..OUTAGE_AFTER {
                assert!(check(store_failed()).is_ok());
            }
        }
        assert!(check(store_failed()).is_err());
    }
}
