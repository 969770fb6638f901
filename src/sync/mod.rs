//! Orchestration of a sync run: resolve the org, take its lock, cut the range into UTC-day
//! windows, sync each window (`window.rs`), and move the watermark after each one.
//!
//! Each window maps to exactly one `date=` partition per table and is upserted as a whole, so
//! re-running any range is idempotent, and a run killed at any point is finished by the next.

pub mod lease;
pub mod pii;
mod rows;
pub mod state;
mod window;

use std::time::Instant;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use secrecy::ExposeSecret;
use serde::Serialize;
use tracing::Instrument;

use crate::api::{ApiClient, ApiCounts, ApiError, ApiSettings};
use crate::audio;
use crate::auth::{AuthError, TokenProvider};
use crate::config::{Config, ConfigError, PiiSetting};
use crate::lake::{DerivativeRow, Lake, LakeError, ManifestRow, derivatives};
use crate::net::{self, RetryPolicy};
use lease::{LeaseConfig, LeaseGuard};
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
}

/// Everything a run talks to.
pub struct SyncContext {
    pub api: ApiClient,
    pub lake: Lake,
    /// Client for pre-signed media URLs (never sends the bearer token).
    pub media: reqwest::Client,
    pub retry: RetryPolicy,
    /// Re-hash stored audio before trusting it (default: trust a matching size).
    pub verify_checksums: bool,
    /// Measure each recording as it streams in (`audio_facts` table) and write the derivatives
    /// asked for (`derivatives` table).
    pub processing: audio::Processing,
    /// Hash or mask customer phone numbers and addresses before they reach a table.
    pub pii: pii::PiiMode,
    /// Progress display; hidden unless the CLI attaches one to a terminal.
    pub progress: indicatif::ProgressBar,
    /// Length of the org lease (renewed every third of it while the run goes on).
    pub lease: LeaseConfig,
}

impl SyncContext {
    /// Wires the API client, token provider and output store from configuration.
    pub fn from_config(cfg: &Config) -> Result<SyncContext> {
        let http = net::api_http_client();
        let retry = RetryPolicy::default();
        let tokens = TokenProvider::from_config(cfg, http.clone(), retry.clone())?;
        let mut settings = ApiSettings::new(cfg.api_base_url.clone());
        settings.org_id = cfg.org_id.clone();
        settings.rate_limit_per_minute = cfg.rate_limit_per_minute;
        settings.url_expiration_minutes = cfg.url_expiration_minutes;
        settings.retry = retry.clone();
        Ok(SyncContext {
            api: ApiClient::new(http, settings, tokens),
            lake: Lake::open_with_options(&cfg.output, cfg.storage_options.iter().cloned())?,
            media: net::media_http_client(),
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
            lease: LeaseConfig::default(),
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
    pub api: Option<ApiCounts>,
    pub token_refreshes: u64,
    pub duration_ms: u64,
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
        self.failed > 0 || self.rejects > 0 || self.derive_failed > 0
    }
}

/// What happened to one recording.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Stored { refreshed: bool },
    Present,
    Failed,
}

/// A finished run: its summary (always), and the error that ended it, if any.
pub struct RunReport {
    pub summary: SyncSummary,
    pub error: Option<SyncError>,
}

/// Runs one sync: lock the org, sync each window, advance the watermark after each.
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
        run_id: uuid::Uuid::new_v4().to_string(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: started_at.to_rfc3339(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let mut state = None;
    let result = run_locked(ctx, opts, started_at, &mut summary, &mut state).await;
    summary.api = Some(ctx.api.stats());
    summary.token_refreshes = ctx.api.tokens().refresh_count();
    summary.duration_ms = started.elapsed().as_millis() as u64;
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
    let (from, to) = resolve_range(&opts.range, &state).await?;
    let windows = day_windows(from, to);
    summary.from = from.to_rfc3339();
    summary.to = to.to_rfc3339();
    if opts.dry_run {
        summary.windows = windows.len() as u32;
        for (start, end) in &windows {
            tracing::info!(%start, %end, "would sync window (at least one GET /v1/tasks, plus one captures query per 10 calls)");
        }
        return Ok(());
    }
    let lease = state
        .lock(&state::holder_label(), &summary.run_id, ctx.lease)
        .await?;
    let outcome = run_windows(
        ctx, opts, &org, &state, &lease, &windows, started_at, summary,
    )
    .await;
    let released = lease.release().await;
    outcome?;
    Ok(released?)
}

#[allow(clippy::too_many_arguments)]
async fn run_windows(
    ctx: &SyncContext,
    opts: &SyncOptions,
    org: &str,
    state: &OrgState,
    lease: &LeaseGuard,
    windows: &[(DateTime<Utc>, DateTime<Utc>)],
    started_at: DateTime<Utc>,
    summary: &mut SyncSummary,
) -> Result<()> {
    let fence = lease.fence();
    ctx.progress.set_length(windows.len() as u64);
    for (start, end) in windows {
        ctx.progress
            .set_message(format!("{} …", start.date_naive()));
        let span = tracing::info_span!("window", date = %start.date_naive());
        lease.ensure_held()?;
        // A lost lease drops the window in flight: its partitions are committed whole or not
        // at all, and the run now holding the lease redoes it.
        tokio::select! {
            biased;
            () = fence.lost() => return Err(lease.ensure_held().expect_err("fence tripped").into()),
            done = window::sync_window(ctx, org, *start, *end, opts.download_concurrency, summary)
                .instrument(span) => done?,
        }
        summary.windows += 1;
        ctx.progress.inc(1);
        ctx.progress.set_message(format!(
            "{} tasks, {} recordings stored, {:.1} MB",
            summary.tasks,
            summary.stored + summary.skipped_present,
            summary.bytes as f64 / 1e6
        ));
        state.advance(&fence, *start, *end, started_at).await?;
    }
    Ok(())
}

/// The org the data belongs to: configured, else the token's `…_<orgId>` suffix (a documented
/// convention of Webex tokens, REFERENCE.md §1.6), else the API's own `meta.orgId`.
async fn resolve_org(ctx: &SyncContext, opts: &SyncOptions) -> Result<String> {
    let org = match &opts.org_id {
        Some(org) => org.clone(),
        None => {
            let token = ctx.api.tokens().access_token().await?;
            match crate::auth::org_from_token(token.expose_secret()) {
                Some(org) => org,
                None => ctx.api.org_id().await?.ok_or(SyncError::UnknownOrg)?,
            }
        }
    };
    crate::audio::check_id(&org).map_err(|_| SyncError::UnsafeOrg(org.clone()))?;
    Ok(org)
}

async fn resolve_range(
    range: &SyncRange,
    state: &OrgState,
) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    Ok(match range {
        SyncRange::Explicit { from, to } => (*from, *to),
        SyncRange::Incremental { lookback, initial } => {
            let now = Utc::now();
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
}
