//! What a run asks of the captures API, and in which order: list each window and pick the tasks
//! that are new, changed or due; then the ledger's other due entries; then the settle check.

use std::collections::HashSet;

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, Utc};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::lease::{Fence, LeaseGuard};
use super::ledger::{Gap, Ledger};
use super::rows;
use super::state::OrgState;
use super::window::{self, DayWork, RunState};
use super::{Result, SyncContext, SyncError, SyncOptions, SyncSummary};
use crate::api::model::Task;
use crate::api::{Reject, TaskListing};

/// The run's notion of now (`WXCC_NOW` or the clock), and the latest instant the watermark may
/// claim (the run's start).
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    pub now: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn run_windows(
    ctx: &SyncContext,
    opts: &SyncOptions,
    org: &str,
    state: &OrgState,
    lease: &LeaseGuard,
    windows: &[(DateTime<Utc>, DateTime<Utc>)],
    ledger: &mut Ledger,
    clock: Clock,
    summary: &mut SyncSummary,
) -> Result<()> {
    let now = clock.now;
    let fence = lease.fence();
    // A first run marks where settle checks begin before it asks about anything: killed midway,
    // the tasks it asked about while young still get their settle check from a later run.
    if ledger.settled_until().is_none() {
        ledger.set_settled_until(now - opts.policy.settle_after);
        fence.check()?;
        ledger.save().await?;
    }
    // Listing ranges earlier runs could not read, outside this run's range, are listed again
    // first (those inside it are listed again with their window).
    let (lo, hi) = (
        windows.first().map_or(0, |w| w.0.timestamp_millis()),
        windows.last().map_or(0, |w| w.1.timestamp_millis()),
    );
    let gaps: Vec<(i64, i64)> = ledger
        .gaps()
        .iter()
        .flat_map(|g| {
            // The parts of each gap outside this run's range.
            let before = (g.from_ms < lo).then_some((g.from_ms, g.to_ms.min(lo)));
            let after = (g.to_ms > hi).then_some((g.from_ms.max(hi), g.to_ms));
            before.into_iter().chain(after)
        })
        .collect();
    let run = Run {
        ctx,
        opts,
        org,
        now,
        state: window::Shared::new(RunState {
            ledger,
            fence: &fence,
            summary,
            policy: &opts.policy,
            now,
        }),
        asked: Default::default(),
        downloads: window::Downloads::new(opts.download_concurrency),
        fence: &fence,
    };
    // Ranges earlier runs could not read first, then this run's windows; only a window moves
    // the watermark.
    let segments: Vec<Segment> = gaps
        .into_iter()
        .map(|(from_ms, to_ms)| Segment {
            from_ms,
            to_ms,
            window: None,
        })
        .chain(windows.iter().map(|&(start, end)| Segment {
            from_ms: start.timestamp_millis(),
            to_ms: end.timestamp_millis(),
            window: Some((start, end)),
        }))
        .collect();
    ctx.progress.set_length(windows.len() as u64);
    // Listing runs one part ahead of the work (at most two parts listed and not finished).
    let (parts_tx, parts) = mpsc::channel::<Result<Listed>>(1);
    let lister = list_ahead(ctx, opts, &segments, parts_tx);
    let worker = async {
        // Two parts are worked on at once: the next starts its captures queries as soon as the
        // one before it has asked all of its own, so the earlier part's tail of downloads
        // overlaps the next part's queries instead of idling the pipeline. Parts finish in
        // order, so the watermark never moves past a part that is not complete.
        let mut before: Option<oneshot::Receiver<()>> = None;
        let mut started = None;
        let parts = futures::stream::unfold(parts, |mut rx| async move {
            rx.recv().await.map(|part| (part, rx))
        });
        let done = parts
            .map(|part| {
                let (queried, next) = oneshot::channel();
                let wait = before.replace(next);
                let first_of_segment = match &part {
                    Ok(p) if started != Some(p.segment) => {
                        started = Some(p.segment);
                        true
                    }
                    _ => false,
                };
                let (run, segments) = (&run, &segments);
                async move {
                    if let Some(wait) = wait {
                        // An error means the part before failed: its error comes out first.
                        let _ = wait.await;
                    }
                    let part = part?;
                    if ctx.stop.is_cancelled() {
                        return Ok(None);
                    }
                    let segment = &segments[part.segment];
                    if first_of_segment {
                        match segment.window {
                            Some((start, _)) => {
                                ctx.progress
                                    .set_message(format!("{} …", start.date_naive()));
                                lease.ensure_held()?;
                            }
                            None => tracing::info!(
                                from_ms = segment.from_ms,
                                to_ms = segment.to_ms,
                                "listing a range an earlier run could not read"
                            ),
                        }
                    }
                    let span = tracing::info_span!("window", date = %part.date());
                    let (index, until) = (part.segment, part.until);
                    run.sync_part(part, queried).instrument(span).await?;
                    if segment.window.is_some()
                        && until >= segment.to_ms
                        && !ctx.stop.is_cancelled()
                    {
                        let mut st = run.state.lock().await;
                        let summary = &mut *st.summary;
                        summary.windows += 1;
                        ctx.progress.inc(1);
                        ctx.progress.set_message(format!(
                            "{} tasks, {} recordings stored, {:.1} MB",
                            summary.tasks,
                            summary.stored + summary.skipped_present,
                            summary.bytes as f64 / 1e6
                        ));
                    }
                    Ok::<_, SyncError>(Some((index, until)))
                }
            })
            .buffered(2);
        // Nothing in this loop may wait for the run's state: a part in flight can hold it while
        // it commits, and it is only polled from `done.next()`.
        let mut done = std::pin::pin!(done);
        let mut stopped = false;
        while let Some(part) = done.next().await {
            let part = part?;
            if ctx.stop.is_cancelled() {
                // Stopped mid-window: the parts in flight commit what settled; the watermark
                // stays before them.
                if !stopped {
                    stopped = true;
                    tracing::warn!(
                        "stopping: committing what was complete; the next run continues"
                    );
                }
                continue;
            }
            let Some((index, until)) = part else {
                continue;
            };
            let segment = &segments[index];
            let Some((start, end)) = segment.window.filter(|_| until >= segment.to_ms) else {
                continue;
            };
            // The window's gaps are in the ledger (saved by its commits) before the mark moves.
            state.advance(&fence, start, end, clock.started_at).await?;
        }
        Ok::<bool, SyncError>(stopped)
    };
    {
        let (mut lister, mut worker) = (std::pin::pin!(lister), std::pin::pin!(worker));
        // The worker ends the run: when it stops or fails, listing further is pointless.
        let stopped = tokio::select! {
            done = &mut worker => done?,
            () = &mut lister => worker.await?,
        };
        if stopped {
            run.state.lock().await.summary.stopped = true;
            return Ok(());
        }
    }
    run.drain_due().await?;
    if ctx.stop.is_cancelled() {
        run.state.lock().await.summary.stopped = true;
        return Ok(());
    }
    run.settle().await?;
    run.state.lock().await.summary.stopped = ctx.stop.is_cancelled();
    Ok(())
}

/// What listing a range needs, borrowed for the run.
struct Run<'a> {
    ctx: &'a SyncContext,
    opts: &'a SyncOptions,
    org: &'a str,
    now: DateTime<Utc>,
    /// The ledger and the summary, shared by the parts in flight.
    state: window::Shared<'a>,
    /// Tasks asked about this run: the ledger's due entries and the settle check skip them.
    asked: Asked,
    downloads: window::Downloads,
    /// Every commit checks it: a run that lost its lease writes nothing more.
    fence: &'a Fence,
}

impl Run<'_> {
    /// One listed part's work: its gaps recorded, its tasks planned and synced, the ledger saved.
    /// `queried` is told once its captures queries are all asked.
    async fn sync_part(&self, part: Listed, queried: oneshot::Sender<()>) -> Result<()> {
        let Listed {
            from_ms,
            until,
            listing,
            ..
        } = part;
        let found: Vec<Gap> = listing
            .gaps
            .iter()
            .map(|g| {
                tracing::warn!(
                    from_ms = g.from_ms,
                    to_ms = g.to_ms,
                    status = ?g.status,
                    reason = %g.reason,
                    "tasks in a range could not be listed; recorded for retry"
                );
                Gap {
                    from_ms: g.from_ms,
                    to_ms: g.to_ms,
                    status: g.status,
                    reason: g.reason.clone(),
                    first_seen: self.now,
                    attempts: 1,
                }
            })
            .collect();
        {
            let mut st = self.state.lock().await;
            st.summary.task_pages += u64::from(listing.pages);
            st.summary.tasks += listing.tasks.len() as u64;
            // New gaps are owed at once; old ones in this range are cleared only once the
            // range's tasks are committed.
            st.ledger.add_gaps(&found);
        }
        let date = day_of(from_ms);
        let work = plan_day(
            self.ctx,
            self.org,
            date,
            listing.tasks,
            listing.rejects,
            &self.state,
            self.opts,
            self.now,
        )
        .await?;
        tracing::info!(
            listed = work.parsed.len(),
            to_ask = work.query.len(),
            until,
            "window listed"
        );
        self.run_day(work, Some(queried)).await?;
        if !self.ctx.stop.is_cancelled() {
            let mut st = self.state.lock().await;
            st.ledger.set_gaps(from_ms, until, found, self.now);
            self.fence.check()?;
            st.ledger.save().await?;
        }
        Ok(())
    }

    /// Asks again about tasks of `date` that this run did not list (ledger, settle check).
    async fn ask_again(&self, date: NaiveDate, query: Vec<(String, i64)>) -> Result<()> {
        self.run_day(
            DayWork {
                date,
                query,
                ..Default::default()
            },
            None,
        )
        .await
    }

    async fn run_day(&self, work: DayWork, queried: Option<oneshot::Sender<()>>) -> Result<()> {
        self.asked
            .extend(work.query.iter().map(|(id, _)| id.as_str()));
        window::sync_day(
            self.ctx,
            self.org,
            work,
            &self.downloads,
            &self.state,
            queried,
        )
        .await
    }

    fn was_asked(&self, id: &str) -> bool {
        self.asked.contains(id)
    }
}

/// The ids of the tasks a run asked about, held compactly and exactly. As strings, a
/// 100,000-call day's ids held some 5 MiB of small allocations for the whole run (heaptrack).
/// WxCC task ids are UUIDs, kept here as 128-bit numbers (about 2 MiB for that day); any other
/// id is kept as it is. Exact, not hashed: a false "asked" would skip a settle check and could
/// leave a late recording behind.
#[derive(Default)]
struct Asked {
    ids: std::sync::Mutex<AskedIds>,
}

#[derive(Default)]
struct AskedIds {
    uuids: HashSet<u128>,
    others: HashSet<Box<str>>,
}

impl Asked {
    fn extend<'i>(&self, ids: impl IntoIterator<Item = &'i str>) {
        let mut asked = self.ids.lock().expect("not poisoned: no panic while held");
        for id in ids {
            match canonical_uuid(id) {
                Some(n) => asked.uuids.insert(n),
                None => asked.others.insert(id.into()),
            };
        }
    }

    fn contains(&self, id: &str) -> bool {
        let asked = self.ids.lock().expect("not poisoned: no panic while held");
        match canonical_uuid(id) {
            Some(n) => asked.uuids.contains(&n),
            None => asked.others.contains(id),
        }
    }
}

/// The id as a number when it is a UUID in its canonical form (lower-case, hyphenated), the
/// only form that maps one to one: `A…` and `a…` stay two ids.
fn canonical_uuid(id: &str) -> Option<u128> {
    let uuid = uuid::Uuid::try_parse(id).ok()?;
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    (uuid.hyphenated().encode_lower(&mut buf) == id).then(|| uuid.as_u128())
}

/// A range to list: a window of this run (which moves the watermark once done), or a range an
/// earlier run could not read.
struct Segment {
    from_ms: i64,
    to_ms: i64,
    window: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// One part of a segment's listing: `[from_ms, until)`, about `tasks_per_part` tasks.
struct Listed {
    segment: usize,
    from_ms: i64,
    until: i64,
    listing: TaskListing,
}

impl Listed {
    fn date(&self) -> NaiveDate {
        day_of(self.from_ms)
    }
}

fn day_of(ms: i64) -> NaiveDate {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .date_naive()
}

/// Lists every segment a part at a time (1,000 tasks by default: a 100,000-call day is done in
/// a hundred parts, so memory follows the part, not the day) and hands each part on. A slot in the
/// channel is reserved before a part is listed, so listing is never more than one part ahead.
async fn list_ahead(
    ctx: &SyncContext,
    opts: &SyncOptions,
    segments: &[Segment],
    tx: mpsc::Sender<Result<Listed>>,
) {
    for (segment, s) in segments.iter().enumerate() {
        let mut from_ms = s.from_ms;
        while from_ms < s.to_ms {
            let Ok(slot) = tx.reserve().await else {
                return; // the worker ended
            };
            if ctx.stop.is_cancelled() {
                return;
            }
            let listed = ctx
                .api
                .list_tasks_upto(from_ms, s.to_ms, opts.policy.tasks_per_part)
                .await;
            let listing = match listed {
                Ok(listing) => listing,
                Err(e) => {
                    slot.send(Err(e.into()));
                    return;
                }
            };
            // A part always ends past its start, so listing moves on.
            let until = listing.until.max(from_ms + 1).min(s.to_ms);
            slot.send(Ok(Listed {
                segment,
                from_ms,
                until,
                listing,
            }));
            from_ms = until;
        }
    }
}

/// Which of a window's listed tasks need their captures asked for: new ones, those whose
/// `lastUpdatedTime` moved since the stored row, and those due in the ledger (all of them with
/// `--full-refresh`). New and changed tasks get their rows rewritten.
#[allow(clippy::too_many_arguments)]
async fn plan_day(
    ctx: &SyncContext,
    org: &str,
    date: NaiveDate,
    tasks: Vec<Task>,
    rejects: Vec<Reject>,
    state: &window::Shared<'_>,
    opts: &SyncOptions,
    now: DateTime<Utc>,
) -> Result<DayWork> {
    let listed: HashSet<String> = tasks.iter().map(|t| t.id.clone()).collect();
    // Only this part's tasks: a part's memory must not grow with the day's volume.
    let known = rows::tasks_from_lake(&ctx.lake, org, date, Some(&listed)).await?;
    let unprocessed = unprocessed_tasks(ctx, org, date, &listed).await?;
    let mut state = state.lock().await;
    let ledger = &mut *state.ledger;
    let mut work = DayWork {
        date,
        rejects,
        ..Default::default()
    };
    for task in tasks {
        work.parsed.insert(task.id.clone());
        let created = task.attributes.created_time;
        let changed = opts.policy.full_refresh
            || known
                .get(&task.id)
                .is_none_or(|k| k.last_updated_ms != task.attributes.last_updated_time);
        let due = ledger
            .get(&task.id, created)
            .is_some_and(|e| e.next_due <= now)
            || unprocessed.contains(&task.id);
        if task.may_have_recording() {
            if changed || due {
                work.query.push((task.id.clone(), created));
            }
        } else {
            // `captureRequested` turned false (or the channel is not voice): nothing is owed.
            ledger.resolve(&task.id, created);
        }
        if changed || due {
            work.tasks.push(task);
        }
    }
    Ok(work)
}

/// Tasks with a stored recording that lacks the analysis or a derivative now asked for
/// (switched on since it was stored): asked about again, and processed from the stored copy.
async fn unprocessed_tasks(
    ctx: &SyncContext,
    org: &str,
    date: NaiveDate,
    listed: &HashSet<String>,
) -> Result<HashSet<String>> {
    let p = &ctx.processing;
    if !p.analyze && p.derive.is_empty() {
        return Ok(HashSet::new());
    }
    let manifest = rows::manifest_from_lake(&ctx.lake, org, date, Some(listed)).await?;
    if manifest.is_empty() {
        return Ok(HashSet::new());
    }
    let analysed = rows::analysed_in_lake(&ctx.lake, org, date, Some(listed)).await?;
    let derived = if p.derive.is_empty() {
        Default::default()
    } else {
        rows::derivatives_from_lake(&ctx.lake, org, date, Some(listed)).await?
    };
    Ok(manifest
        .into_iter()
        .filter(|m| m.status == rows::STATUS_STORED)
        .filter(|m| {
            let key = (m.task_id.clone(), m.recording_id.clone());
            let unanalysed = p.analyze && !analysed.contains(&key);
            let underived = p.derive.iter().any(|kind| {
                let k = (key.0.clone(), key.1.clone(), kind.name().to_owned());
                derived.get(&k).is_none_or(|row| {
                    row.source_sha256 != m.sha256
                        || row.status == crate::lake::derivatives::status::FAILED
                })
            });
            unanalysed || underived
        })
        .map(|m| m.task_id)
        .collect())
}

impl Run<'_> {
    /// Ledger entries due now that no window of this run asked about (their day is outside the
    /// range, or the listing no longer returned them).
    async fn drain_due(&self) -> Result<()> {
        let (ctx, now) = (self.ctx, self.now);
        let due = self.state.lock().await.ledger.due(now);
        for (date, due) in due {
            if ctx.stop.is_cancelled() {
                return Ok(());
            }
            let query: Vec<(String, i64)> = due
                .into_iter()
                .filter(|(id, _)| !self.was_asked(id))
                .map(|(id, e)| (id, e.created_ms))
                .collect();
            if query.is_empty() {
                continue;
            }
            tracing::info!(%date, tasks = query.len(), "asking again about tasks due in the ledger");
            self.ask_again(date, query).await?;
        }
        Ok(())
    }

    /// The settle check: voice tasks created in `[settled_until, now - settle_after)` that this run
    /// did not ask about are asked once more, so a recording that appeared hours after the others,
    /// without any change to its task, is found. The first run sets the mark as it starts.
    async fn settle(&self) -> Result<()> {
        let (ctx, org, now) = (self.ctx, self.org, self.now);
        let target = now - self.opts.policy.settle_after;
        let mark = self.state.lock().await.ledger.settled_until();
        let Some(mark) = mark else {
            let mut st = self.state.lock().await;
            st.ledger.set_settled_until(target);
            self.fence.check()?;
            st.ledger.save().await?;
            return Ok(());
        };
        if mark >= target {
            return Ok(());
        }
        let (lo, hi) = (mark.timestamp_millis(), target.timestamp_millis());
        let mut date = mark.date_naive();
        while date <= target.date_naive() {
            let known = rows::tasks_from_lake(&ctx.lake, org, date, None).await?;
            let mut query: Vec<(String, i64)> = known
                .into_iter()
                .filter(|(id, k)| {
                    k.may_have_recording && (lo..hi).contains(&k.created_ms) && !self.was_asked(id)
                })
                .map(|(id, k)| (id, k.created_ms))
                .collect();
            query.sort();
            if !query.is_empty() {
                self.state.lock().await.summary.settled += query.len() as u64;
                tracing::info!(%date, tasks = query.len(), "settle check");
                self.ask_again(date, query).await?;
            }
            date += ChronoDuration::days(1);
        }
        if ctx.stop.is_cancelled() {
            return Ok(()); // the mark stays: the next run settles these days again
        }
        let mut st = self.state.lock().await;
        st.ledger.set_settled_until(target);
        self.fence.check()?;
        st.ledger.save().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Asked;

    #[test]
    fn asked_ids_are_kept_exactly_in_any_form() {
        let asked = Asked::default();
        let uuids: Vec<String> = (0..2_000u128)
            .map(|i| uuid::Uuid::from_u128(i * 0x9e37_79b9_7f4a_7c15).to_string())
            .collect();
        asked.extend(uuids.iter().step_by(2).map(String::as_str));
        for (i, id) in uuids.iter().enumerate() {
            assert_eq!(asked.contains(id), i % 2 == 0, "{id}");
        }
        // Other shapes of id, and other spellings of a UUID, are ids of their own.
        asked.extend(["task-1", "CAFEBABE-0000-4000-8000-000000000001"]);
        assert!(asked.contains("task-1"));
        assert!(!asked.contains("task-2"));
        assert!(asked.contains("CAFEBABE-0000-4000-8000-000000000001"));
        assert!(!asked.contains("cafebabe-0000-4000-8000-000000000001"));
        assert!(!asked.contains("cafebabe000040008000000000000001"));
        assert!(!asked.contains(""));
    }
}
