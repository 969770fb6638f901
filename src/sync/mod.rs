//! Orchestration of a sync run: resolve the org, take its lock, cut the range into UTC-day
//! windows, list each window and decide what must be asked of the captures API (`plan.rs`), do
//! that work with small commits (`window.rs`), and move the watermark after each window. Then
//! drain what the ledger (`ledger.rs`) says is due and run the settle check.
//!
//! Cost follows what changed: captures are asked for tasks that are new or whose
//! `lastUpdatedTime` moved, ledger entries that are due, and the settle check, never for every
//! task in the look-back (unless `--full-refresh`). Rows are upserted by key, so re-running any
//! range is idempotent, and a run killed at any point is finished by the next.

pub mod lease;
pub mod ledger;
pub mod lineage;
pub mod listen;
pub mod metrics;
pub mod pii;
mod plan;
mod rows;
pub use rows::facts_status;
pub mod state;
mod window;

use std::time::Instant;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;

use crate::api::{ApiClient, ApiCounts, ApiError, ApiSettings};
use crate::audio;
use crate::auth::{AuthError, TokenProvider};
use crate::config::{Config, ConfigError, PiiSetting};
use crate::lake::{DerivativeRow, Lake, LakeError, ManifestRow, derivatives};
use crate::net::{self, RetryPolicy};
use lease::LeaseConfig;
use ledger::Ledger;
use state::{OrgState, StateError};

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("object store error: {0}")]
    Store(#[from] object_store::Error),
    #[error(
        "cannot tell which organization the data belongs to: set WXCC_ORG_ID (neither the token \
         nor the API response named one)"
    )]
    UnknownOrg,
    #[error("organization id {0:?} is not a plain UUID-like token")]
    UnsafeOrg(String),
    #[error(
        "the access token was issued for org {token_org}, but this run is configured for org \
         {configured}, whose data it cannot read. Give org {configured} \
         its own token (`wxcc auth login --org-id {configured}`, or its [[orgs]] entry), or fix \
         the configured org id"
    )]
    OrgMismatch {
        configured: String,
        token_org: String,
    },
    #[error(
        "the captures API keeps failing for task after task ({0}); stopping the run, the next \
         one retries"
    )]
    Outage(String),
    #[error(
        "the lake's store keeps failing recording after recording ({0}); stopping the run, the \
         next one retries (check the output location and its credentials: `wxcc check`)"
    )]
    StoreDown(String),
    #[error("listen queue: {0}")]
    Listen(String),
}

pub type Result<T, E = SyncError> = std::result::Result<T, E>;

impl SyncError {
    /// Another run holds the org's lease (exit code 75: try again later).
    pub fn is_locked(&self) -> bool {
        matches!(self, SyncError::State(StateError::Locked { .. }))
    }
}

/// Which range to sync.
#[derive(Debug, Clone)]
pub enum SyncRange {
    /// A backfill of `[from, to)`.
    Explicit {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    /// Continue from the watermark up to now, re-reading `lookback` before it for late changes
    /// (tasks that closed, captures that appeared); `initial` is how far back a first run goes.
    Incremental {
        lookback: ChronoDuration,
        initial: ChronoDuration,
    },
}

/// What to sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub range: SyncRange,
    pub download_concurrency: usize,
    /// Configured org id; otherwise the token's org suffix or the API's `meta.orgId`.
    pub org_id: Option<String>,
    /// Plan only: resolve the range and windows, call nothing but the token endpoint.
    pub dry_run: bool,
    pub policy: SyncPolicy,
}

/// What a run asks again, and how often it commits.
#[derive(Debug, Clone)]
pub struct SyncPolicy {
    /// Ask for the captures of every listed voice task, as if none had been seen before.
    pub full_refresh: bool,
    /// The settle check: every voice task is asked about once more this long after its
    /// creation, for recordings that appear late without any change to the task.
    pub settle_after: ChronoDuration,
    /// A task waiting for its first recording is no longer asked about after this long.
    pub give_up_after: ChronoDuration,
    /// Commit after this many recordings have settled...
    pub commit_every: usize,
    /// ...or this long after the last commit, whichever comes first.
    pub commit_interval: std::time::Duration,
    /// A busy day is listed and processed this many tasks at a time.
    pub tasks_per_part: usize,
    /// The instant the run takes as now (`WXCC_NOW`, for replays and tests); default the clock.
    pub now: Option<DateTime<Utc>>,
}

impl Default for SyncPolicy {
    fn default() -> Self {
        SyncPolicy {
            full_refresh: false,
            settle_after: ChronoDuration::hours(12),
            give_up_after: ChronoDuration::days(7),
            commit_every: 500,
            commit_interval: std::time::Duration::from_secs(60),
            tasks_per_part: 1_000,
            now: None,
        }
    }
}

/// A task whose captures could not be read, named in the run summary until a run reads them.
#[derive(Debug, Clone, Serialize)]
pub struct FailedTask {
    pub task_id: String,
    pub status: Option<u16>,
    pub reason: String,
}

/// Everything a run talks to.
pub struct SyncContext {
    pub api: ApiClient,
    pub lake: Lake,
    /// Client for pre-signed media URLs (never sends the bearer token; https to public
    /// addresses unless the API itself is on loopback).
    pub media: net::MediaClient,
    pub retry: RetryPolicy,
    /// Re-hash stored audio before trusting it (default: trust a matching size).
    pub verify_checksums: bool,
    /// Measure each recording as it streams in (`audio_facts` table) and write the derivatives
    /// asked for (`derivatives` table).
    pub processing: audio::Processing,
    /// Hash or mask every customer contact value (any notation) before it reaches a table, a
    /// quarantined record or a log.
    pub pii: pii::PiiMode,
    /// Progress display; hidden unless the CLI attaches one to a terminal.
    pub progress: indicatif::ProgressBar,
    /// Cancelled on SIGTERM/SIGINT: start no new work, abort transfers in flight, commit what
    /// is complete, release the lease.
    pub stop: tokio_util::sync::CancellationToken,
    /// Length of the org lease (renewed every third of it while the run goes on).
    pub lease: LeaseConfig,
    /// The run's id when the caller announced the run before it started (lineage START);
    /// otherwise a fresh one.
    pub run_id: Option<String>,
}

impl SyncContext {
    /// Wires the API client, token provider and output store from configuration.
    pub fn from_config(cfg: &Config) -> Result<SyncContext> {
        let http = net::api_http_client();
        let retry = RetryPolicy {
            max_retries: cfg.max_retries as usize,
            max_delay: std::time::Duration::from_secs(cfg.retry_max_delay_secs),
            ..RetryPolicy::default()
        };
        let tokens = TokenProvider::from_config(cfg, http.clone(), retry.clone())?;
        let mut settings = ApiSettings::new(cfg.api_base_url.clone());
        settings.org_id = cfg.org_id.clone();
        settings.rate_limit_per_minute = cfg.rate_limit_per_minute;
        settings.url_expiration_minutes = cfg.url_expiration_minutes;
        settings.retry = retry.clone();
        Ok(SyncContext {
            api: ApiClient::new(http, settings, tokens),
            lake: Lake::open_with_options(&cfg.output, cfg.storage_options.iter().cloned())?
                .with_max_file_rows(cfg.rows_per_file),
            media: net::MediaClient::new(net::MediaPolicy::for_api(&cfg.api_base_url)),
            retry,
            verify_checksums: false,
            processing: audio::Processing {
                analyze: true,
                derive: cfg.derive.clone(),
                scratch_dir: cfg.scratch_dir.clone(),
            },
            pii: match &cfg.pii {
                PiiSetting::Keep => pii::PiiMode::Keep,
                PiiSetting::Mask => pii::PiiMode::Mask,
                PiiSetting::Hash(key) => pii::PiiMode::Hash(key.clone()),
            },
            progress: indicatif::ProgressBar::hidden(),
            stop: tokio_util::sync::CancellationToken::new(),
            lease: LeaseConfig::default(),
            run_id: None,
        })
    }
}

/// How a run ended, as schedulers read it from the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    #[default]
    Ok,
    /// Finished, but something is left for the next run (see [`SyncSummary::is_partial`]).
    Partial,
    Failed,
    /// Another run holds the org's lease; this one wrote nothing.
    Locked,
}

/// Machine-readable run summary, printed and kept in `_state/org_id=<org>/runs/`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncSummary {
    /// Random (UUID v4), also in the lease this run held.
    pub run_id: String,
    /// wxcc version that ran.
    pub version: String,
    pub status: RunStatus,
    /// Why the run failed, if it did.
    pub error: Option<String>,
    pub started_at: String,
    pub org_id: Option<String>,
    pub from: String,
    pub to: String,
    pub dry_run: bool,
    pub windows: u32,
    pub tasks: u64,
    pub recordings: u64,
    pub stored: u64,
    pub skipped_present: u64,
    pub failed: u64,
    pub bytes: u64,
    /// Derived files made this run, and those that could not be stored (retried next run).
    pub derived: u64,
    pub derive_failed: u64,
    pub url_refreshes: u64,
    pub rejects: u64,
    /// Listing requests (`GET /v1/tasks` pages) and captures queries made by this run.
    pub task_pages: u64,
    pub captures_queries: u64,
    /// Tasks whose captures were asked for (new, changed, due in the ledger, settle check).
    pub captures_asked: u64,
    /// Of those, asked for by the settle check.
    pub settled: u64,
    /// Tasks no longer waited for: no recording within the give-up age.
    pub given_up: u64,
    pub commits: u64,
    /// When `wxcc listen` serves this org: recordings this run had to download itself, i.e.
    /// that no webhook had delivered (lost, or not processed yet). Absent without `listen`.
    pub not_from_webhook: Option<u64>,
    /// Tasks whose captures could not be read, still owed (retried by the next runs).
    pub failed_tasks: Vec<FailedTask>,
    /// Listing ranges that could not be read, still owed.
    pub gaps: Vec<ledger::Gap>,
    /// The ledger after the run: what later runs will still ask about.
    pub pending: Option<ledger::LedgerCounts>,
    /// Dry run: the requests the run would make at least.
    pub estimated_requests: Option<u64>,
    /// The run was stopped by SIGTERM/SIGINT: what was complete is committed, the rest (the
    /// `interrupted` transfers among it) is left for the next run.
    pub stopped: bool,
    pub interrupted: u64,
    pub api: Option<ApiCounts>,
    pub token_refreshes: u64,
    /// When the refresh token stops working (RFC 3339), as the token endpoint last said; absent
    /// when unknown. A scheduled job stops with exit code 3 after it, so it is shown early.
    pub refresh_token_expires_at: Option<String>,
    pub duration_ms: u64,
    /// The process's peak resident memory so far (Linux `VmHWM`; absent elsewhere): what a
    /// container's memory limit must allow.
    pub peak_rss_bytes: Option<u64>,
}

impl SyncSummary {
    fn count(&mut self, row: &ManifestRow, outcome: Outcome) {
        match outcome {
            Outcome::Stored { refreshed } => {
                self.stored += 1;
                self.bytes += row.size_bytes.unwrap_or(0) as u64;
                self.url_refreshes += u64::from(refreshed);
            }
            Outcome::Present => self.skipped_present += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Stopped => self.interrupted += 1,
        }
    }

    fn count_derived(&mut self, rows: &[DerivativeRow]) {
        for row in rows {
            match row.status.as_str() {
                derivatives::status::OK => self.derived += 1,
                derivatives::status::FAILED => self.derive_failed += 1,
                _ => {} // undecodable original: audio_facts already says why
            }
        }
    }

    /// True when something could not be stored and a later run should retry it.
    pub fn is_partial(&self) -> bool {
        self.failed > 0
            || self.rejects > 0
            || self.derive_failed > 0
            || self.given_up > 0
            || !self.failed_tasks.is_empty()
            || !self.gaps.is_empty()
            || self.stopped
            // A recording that could not be stored by an earlier run and is not due yet is
            // still missing: never exit 0 over it.
            || self.pending.is_some_and(|p| p.download_failed > 0)
    }
}

/// What happened to one recording.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Stored {
        refreshed: bool,
    },
    Present,
    Failed,
    /// Aborted by a graceful stop: nothing is recorded, the next run does it.
    Stopped,
}

/// A finished run: its summary (always), and the error that ended it, if any.
pub struct RunReport {
    pub summary: SyncSummary,
    pub error: Option<SyncError>,
}

/// Runs one sync: lock the org, list and sync each window, advance the watermark after each,
/// then drain the ledger and run the settle check.
pub async fn run(ctx: &SyncContext, opts: &SyncOptions) -> Result<SyncSummary> {
    let report = run_report(ctx, opts).await;
    match report.error {
        None => Ok(report.summary),
        Some(e) => Err(e),
    }
}

/// Like [`run`], but a failed run also yields its summary. Every run that resolved its org
/// and was not refused the lease stores the summary in `runs/` (if the store is reachable).
pub async fn run_report(ctx: &SyncContext, opts: &SyncOptions) -> RunReport {
    let started = Instant::now();
    let started_at = Utc::now();
    let mut summary = SyncSummary {
        run_id: (ctx.run_id.clone()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: started_at.to_rfc3339(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let mut state = None;
    let result = run_locked(ctx, opts, started_at, &mut summary, &mut state).await;
    if let Some(org) = summary.org_id.clone()
        && !opts.dry_run
        && listen::is_active(&ctx.lake, &org).await
    {
        summary.not_from_webhook = Some(summary.stored);
        if summary.stored > 0 {
            tracing::info!(
                recordings = summary.stored,
                "recordings found by sync that no webhook had delivered"
            );
        }
    }
    summary.api = Some(ctx.api.stats());
    summary.token_refreshes = ctx.api.tokens().refresh_count();
    summary.refresh_token_expires_at = refresh_token_expiry(ctx);
    summary.duration_ms = started.elapsed().as_millis() as u64;
    summary.peak_rss_bytes = peak_rss_bytes();
    summary.status = match &result {
        Ok(()) if summary.is_partial() => RunStatus::Partial,
        Ok(()) => RunStatus::Ok,
        Err(e) if e.is_locked() => RunStatus::Locked,
        Err(_) => RunStatus::Failed,
    };
    summary.error = result.as_ref().err().map(|e| e.to_string());
    let mut error = result.err();
    let record = !opts.dry_run && summary.status != RunStatus::Locked;
    if let Some(state) = state.filter(|_| record)
        && let Err(e) = state
            .record_run(started_at, &summary.run_id, &summary)
            .await
    {
        tracing::warn!(error = %e, "cannot store the run summary");
        error.get_or_insert(e.into());
    }
    RunReport { summary, error }
}

/// Days before the refresh token's expiry from which every run warns.
const REFRESH_EXPIRY_WARNING_DAYS: i64 = 14;

/// The refresh token's expiry, with a warning when it is close: a server that never extends it
/// (REFERENCE.md §1.4 leaves that open) would otherwise stop the schedule without notice.
fn refresh_token_expiry(ctx: &SyncContext) -> Option<String> {
    let at = ctx.api.tokens().refresh_expires_at()?;
    let left = at - Utc::now();
    if left <= chrono::Duration::days(REFRESH_EXPIRY_WARNING_DAYS) {
        tracing::warn!(
            expires_at = %at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            hours_left = left.num_hours().max(0),
            "the refresh token expires soon: run `wxcc auth login` before then, or scheduled \
             runs will stop with exit code 3"
        );
    }
    Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

async fn run_locked(
    ctx: &SyncContext,
    opts: &SyncOptions,
    started_at: DateTime<Utc>,
    summary: &mut SyncSummary,
    state_out: &mut Option<OrgState>,
) -> Result<()> {
    let org = resolve_org(ctx, opts).await?;
    summary.org_id = Some(org.clone());
    let state = state_out.insert(OrgState::new(&ctx.lake, &org)).clone();
    // A dry run sends no request, so it does not ask for a token to check.
    if opts.org_id.is_some() && !opts.dry_run {
        check_token_owner(ctx, &org).await?;
    }
    let now = opts.policy.now.unwrap_or(started_at);
    let (from, to) = resolve_range(&opts.range, &state, now).await?;
    let windows = day_windows(from, to);
    summary.from = from.to_rfc3339();
    summary.to = to.to_rfc3339();
    let ledger = Ledger::load(&ctx.lake, &org, opts.policy.give_up_after).await?;
    if opts.dry_run {
        summary.windows = windows.len() as u32;
        let due: usize = ledger.due(now).values().map(Vec::len).sum();
        // A wide range (`--from 0001-01-01`) has millions of windows: the first and last few
        // say enough.
        const SHOWN: usize = 10;
        for (i, (start, end)) in windows.iter().enumerate() {
            if ctx.stop.is_cancelled() {
                summary.stopped = true;
                return Ok(());
            }
            if i < SHOWN || i + SHOWN >= windows.len() {
                tracing::info!(%start, %end, "would list window (at least one GET /v1/tasks)");
            } else if i == SHOWN {
                let more = windows.len() - 2 * SHOWN;
                tracing::info!(more, "… more windows");
            }
        }
        tracing::info!(due, "ledger entries due (one captures query per 10)");
        summary.estimated_requests =
            Some(windows.len() as u64 + ledger.gaps().len() as u64 + due.div_ceil(10) as u64);
        summary.pending = Some(ledger.counts());
        return Ok(());
    }
    let lease = state
        .lock(&state::holder_label(), &summary.run_id, ctx.lease)
        .await?;
    // Read again under the lease: a run that just finished may have moved the watermark and
    // changed the ledger since they were first read.
    let reread = async {
        let (from, to) = resolve_range(&opts.range, &state, now).await?;
        let ledger = Ledger::load(&ctx.lake, &org, opts.policy.give_up_after).await?;
        Ok::<_, SyncError>((from, to, ledger))
    }
    .await;
    let (from, to, mut ledger) = match reread {
        Ok(read) => read,
        Err(e) => {
            let _ = lease.release().await;
            return Err(e);
        }
    };
    let windows = day_windows(from, to);
    summary.from = from.to_rfc3339();
    summary.to = to.to_rfc3339();
    let outcome = plan::run_windows(
        ctx,
        opts,
        &org,
        &state,
        &lease,
        &windows,
        &mut ledger,
        plan::Clock {
            now,
            started_at: started_at.min(now),
        },
        summary,
    )
    .await;
    let released = lease.release().await;
    summary.failed_tasks = ledger
        .failures()
        .into_iter()
        .filter(|(_, e)| e.why == ledger::Why::CapturesFailed)
        .map(|(task_id, e)| FailedTask {
            task_id,
            status: e.status,
            reason: e.reason.unwrap_or_default(),
        })
        .collect();
    summary.gaps = ledger.gaps().to_vec();
    summary.pending = Some(ledger.counts());
    outcome?;
    Ok(released?)
}

/// The org the data belongs to: configured, else the token's `…_<orgId>` suffix (a documented
/// convention of Webex tokens, REFERENCE.md §1.6), else the API's own `meta.orgId`.
async fn resolve_org(ctx: &SyncContext, opts: &SyncOptions) -> Result<String> {
    resolve_org_id(ctx, opts.org_id.clone()).await
}

/// [`resolve_org`] for callers without [`SyncOptions`] (`wxcc listen`).
pub(crate) async fn resolve_org_id(
    ctx: &SyncContext,
    configured: Option<String>,
) -> Result<String> {
    let org = match configured {
        Some(org) => org,
        None => {
            let token = ctx.api.tokens().access_token().await?;
            match crate::auth::org_from_token(token.expose_secret()) {
                Some(org) => org,
                None => ctx.api.org_id().await?.ok_or(SyncError::UnknownOrg)?,
            }
        }
    };
    crate::lake::partition::validate_org_id(&org).map_err(|_| SyncError::UnsafeOrg(org.clone()))?;
    Ok(org)
}

/// Refuses a configured org that the access token says is another's (its `…_<orgId>` suffix),
/// a pasted token or a shared environment: a configuration to fix (exit 2), said up front,
/// where the API would answer each request with a 403 that reads like an outage. A token that
/// cannot be had now, or names no org, passes: the run meets and reports the former itself.
pub(crate) async fn check_token_owner(ctx: &SyncContext, org: &str) -> Result<()> {
    let Ok(token) = ctx.api.tokens().access_token().await else {
        return Ok(());
    };
    match crate::auth::org_from_token(token.expose_secret()) {
        Some(owner) if !owner.eq_ignore_ascii_case(org) => Err(SyncError::OrgMismatch {
            configured: org.to_owned(),
            token_org: owner,
        }),
        _ => Ok(()),
    }
}

async fn resolve_range(
    range: &SyncRange,
    state: &OrgState,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    Ok(match range {
        SyncRange::Explicit { from, to } => (*from, *to),
        SyncRange::Incremental { lookback, initial } => {
            let from = match state.watermark().await? {
                Some(mark) => mark.synced_until.min(now) - *lookback,
                None => now - *initial,
            };
            (from, now)
        }
    })
}

/// `[from, to)` cut at UTC midnights.
pub fn day_windows(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut start = from;
    while start < to {
        let next_midnight = (start.date_naive() + ChronoDuration::days(1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc();
        let end = next_midnight.min(to);
        out.push((start, end));
        start = end;
    }
    out
}

/// Peak resident set size of this process, from `/proc/self/status` (Linux only).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_time;

    #[test]
    fn windows_are_cut_at_utc_midnight() {
        let w = day_windows(
            parse_time("f", "2026-01-05T12:00:00Z").unwrap(),
            parse_time("t", "2026-01-07T06:00:00Z").unwrap(),
        );
        let shown: Vec<String> = w
            .iter()
            .map(|(a, b)| format!("{}..{}", a.format("%dT%H"), b.format("%dT%H")))
            .collect();
        assert_eq!(shown, ["05T12..06T00", "06T00..07T00", "07T00..07T06"]);
        assert!(day_windows(w[0].1, w[0].1).is_empty());
    }
    #[test]
    #[cfg(target_os = "linux")]
    fn peak_memory_is_read_from_the_kernel() {
        let peak = peak_rss_bytes().expect("VmHWM on Linux");
        assert!(peak > 1 << 20, "{peak}");
    }
}
