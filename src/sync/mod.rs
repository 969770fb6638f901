//! Orchestration of one sync run: UTC-day windows → tasks → captures → audio → Parquet.
//!
//! Each window is one UTC day, so it maps to exactly one `date=` partition per table. Within a
//! window, capture queries and downloads run concurrently (bounded); the three partitions are
//! upserted at the end of the window, which makes re-running any range idempotent.

mod rows;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;
use tracing::Instrument;

use crate::api::model::{Recording, Task, TaskCaptures};
use crate::api::{ApiClient, ApiCounts, ApiError, ApiSettings, MAX_CAPTURE_IDS, Reject};
use crate::audio::{self, AudioError, StoredAudio};
use crate::auth::{AuthError, TokenProvider};
use crate::config::{Config, ConfigError};
use crate::lake::{self, Lake, LakeError, ManifestRow, Table};
use crate::net::{self, RetryPolicy};

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
    #[error(
        "cannot tell which organization the data belongs to: set WXCC_ORG_ID (the API response \
         carried no meta.orgId)"
    )]
    UnknownOrg,
    #[error("organization id {0:?} is not a plain UUID-like token")]
    UnsafeOrg(String),
}

pub type Result<T, E = SyncError> = std::result::Result<T, E>;

/// What to sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub download_concurrency: usize,
    /// Configured org id; otherwise the API's `meta.orgId` is used.
    pub org_id: Option<String>,
}

/// Everything a run talks to.
pub struct SyncContext {
    pub api: ApiClient,
    pub lake: Lake,
    /// Client for pre-signed media URLs (never sends the bearer token).
    pub media: reqwest::Client,
    pub retry: RetryPolicy,
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
            lake: Lake::open(&cfg.output)?,
            media: net::media_http_client(),
            retry,
        })
    }
}

/// Machine-readable run summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncSummary {
    pub org_id: Option<String>,
    pub from: String,
    pub to: String,
    pub windows: u32,
    pub tasks: u64,
    pub recordings: u64,
    pub stored: u64,
    pub skipped_present: u64,
    pub failed: u64,
    pub bytes: u64,
    pub url_refreshes: u64,
    pub rejects: u64,
    pub api: Option<ApiCounts>,
    pub token_refreshes: u64,
    pub duration_ms: u64,
}

impl SyncSummary {
    /// True when something could not be stored and a later run should retry it.
    pub fn is_partial(&self) -> bool {
        self.failed > 0 || self.rejects > 0
    }
}

/// Runs the sync over `[from, to)`.
pub async fn run(ctx: &SyncContext, opts: &SyncOptions) -> Result<SyncSummary> {
    let started = Instant::now();
    let mut summary = SyncSummary {
        from: opts.from.to_rfc3339(),
        to: opts.to.to_rfc3339(),
        org_id: opts.org_id.clone(),
        ..Default::default()
    };
    for (start, end) in day_windows(opts.from, opts.to) {
        let span = tracing::info_span!("window", date = %start.date_naive());
        sync_window(ctx, opts, start, end, &mut summary)
            .instrument(span)
            .await?;
        summary.windows += 1;
    }
    summary.api = Some(ctx.api.stats());
    summary.token_refreshes = ctx.api.tokens().refresh_count();
    summary.duration_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
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

async fn sync_window(
    ctx: &SyncContext,
    opts: &SyncOptions,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    summary: &mut SyncSummary,
) -> Result<()> {
    let listing = ctx
        .api
        .list_tasks(start.timestamp_millis(), end.timestamp_millis())
        .await?;
    report_rejects(&listing.rejects, summary);
    if listing.tasks.is_empty() {
        tracing::info!("no tasks");
        return Ok(());
    }
    let org = opts
        .org_id
        .clone()
        .or(listing.org_id.clone())
        .ok_or(SyncError::UnknownOrg)?;
    audio::check_id(&org).map_err(|_| SyncError::UnsafeOrg(org.clone()))?;
    summary.org_id.get_or_insert(org.clone());
    let date = start.date_naive();
    let tasks = listing.tasks;
    summary.tasks += tasks.len() as u64;

    let captures = query_captures(ctx, &tasks, summary).await?;
    let recordings: Vec<(&str, &Recording)> = captures
        .iter()
        .flat_map(|c| c.recording.iter().map(move |r| (c.task_id.as_str(), r)))
        .collect();
    summary.recordings += recordings.len() as u64;

    let previous = previous_manifest(&ctx.lake, &org, date).await?;
    let manifest: Vec<(ManifestRow, Outcome)> = futures::stream::iter(recordings.iter().copied())
        .map(|(task_id, rec)| store_recording(ctx, &org, task_id, rec, &previous))
        .buffer_unordered(opts.download_concurrency)
        .collect()
        .await;
    for (row, outcome) in &manifest {
        match outcome {
            Outcome::Stored { refreshed } => {
                summary.stored += 1;
                summary.bytes += row.size_bytes.unwrap_or(0) as u64;
                summary.url_refreshes += *refreshed as u64;
            }
            Outcome::Present => summary.skipped_present += 1,
            Outcome::Failed => summary.failed += 1,
        }
    }
    let manifest: Vec<ManifestRow> = manifest.into_iter().map(|(row, _)| row).collect();

    let capture_rows = rows::capture_rows(&recordings);
    let task_rows = rows::task_rows(&tasks);
    let lake = &ctx.lake;
    lake.upsert_partition(
        Table::Captures,
        &org,
        date,
        lake::captures_batch(&capture_rows)?,
    )
    .await?;
    if !manifest.is_empty() {
        lake.upsert_partition(
            Table::Manifest,
            &org,
            date,
            lake::manifest_batch(&manifest)?,
        )
        .await?;
    }
    lake.upsert_partition(Table::Tasks, &org, date, lake::tasks_batch(&task_rows)?)
        .await?;
    tracing::info!(
        tasks = tasks.len(),
        recordings = recordings.len(),
        "window synced"
    );
    Ok(())
}

fn report_rejects(rejects: &[Reject], summary: &mut SyncSummary) {
    for r in rejects {
        tracing::warn!(source = r.source, reason = %r.reason, "record quarantined");
    }
    summary.rejects += rejects.len() as u64;
}

/// Captures for every task that can have a recording, ten ids per query.
async fn query_captures(
    ctx: &SyncContext,
    tasks: &[Task],
    summary: &mut SyncSummary,
) -> Result<Vec<TaskCaptures>> {
    let ids: Vec<String> = tasks
        .iter()
        .filter(|t| t.may_have_recording())
        .map(|t| t.id.clone())
        .collect();
    let batches: Vec<(Vec<TaskCaptures>, Vec<Reject>)> =
        futures::stream::iter(ids.chunks(MAX_CAPTURE_IDS))
            .map(|chunk| ctx.api.query_captures(chunk))
            .buffered(4)
            .try_collect()
            .await?;
    let mut out = Vec::new();
    for (captures, rejects) in batches {
        report_rejects(&rejects, summary);
        out.extend(captures);
    }
    Ok(out)
}

enum Outcome {
    Stored { refreshed: bool },
    Present,
    Failed,
}

type Previous = HashMap<(String, String), ManifestRow>;

async fn previous_manifest(lake: &Lake, org: &str, date: NaiveDate) -> Result<Previous> {
    Ok(rows::manifest_from_lake(lake, org, date)
        .await?
        .into_iter()
        .map(|r| ((r.task_id.clone(), r.recording_id.clone()), r))
        .collect())
}

/// Stores one recording, or confirms it is already stored. Never fails the window: a failure
/// becomes a manifest row with status `failed`, picked up again by the next run.
async fn store_recording(
    ctx: &SyncContext,
    org: &str,
    task_id: &str,
    rec: &Recording,
    previous: &Previous,
) -> (ManifestRow, Outcome) {
    let key = match audio::object_key(org, task_id, &rec.id) {
        Ok(k) => k,
        Err(e) => {
            return (
                rows::manifest_row(task_id, &rec.id, String::new(), Err(&e)),
                Outcome::Failed,
            );
        }
    };
    let path = ctx.lake.path(&key);
    let uri = ctx.lake.uri(&path);
    let store: &Arc<dyn ObjectStore> = ctx.lake.store();
    if let Some(prev) = previous.get(&(task_id.to_owned(), rec.id.clone()))
        && prev.status == rows::STATUS_STORED
        && let Ok(meta) = store.head(&path).await
        && Some(meta.size as i64) == prev.size_bytes
    {
        return (prev.clone(), Outcome::Present);
    }
    let result = download(ctx, task_id, rec, &path).await;
    let outcome = match &result {
        Ok((_, refreshed)) => Outcome::Stored {
            refreshed: *refreshed,
        },
        Err(e) => {
            tracing::warn!(task_id, recording_id = %rec.id, error = %e, "recording not stored");
            Outcome::Failed
        }
    };
    let row = rows::manifest_row(
        task_id,
        &rec.id,
        uri,
        result.as_ref().map(|(stored, _)| stored),
    );
    (row, outcome)
}

/// Downloads with the URL at hand; if it has expired, asks for a fresh one once.
async fn download(
    ctx: &SyncContext,
    task_id: &str,
    rec: &Recording,
    path: &object_store::path::Path,
) -> std::result::Result<(StoredAudio, bool), AudioError> {
    let url = rec.attributes.file_path.clone().ok_or(AudioError::NoUrl)?;
    match audio::fetch_to_store(&ctx.media, &url, ctx.lake.store(), path, &ctx.retry).await {
        Err(AudioError::UrlExpired) => {
            tracing::debug!(task_id, recording_id = %rec.id, "download URL expired; re-querying captures");
            let fresh = fresh_url(ctx, task_id, &rec.id)
                .await
                .ok_or(AudioError::UrlExpired)?;
            audio::fetch_to_store(&ctx.media, &fresh, ctx.lake.store(), path, &ctx.retry)
                .await
                .map(|s| (s, true))
        }
        other => other.map(|s| (s, false)),
    }
}

async fn fresh_url(
    ctx: &SyncContext,
    task_id: &str,
    recording_id: &str,
) -> Option<secrecy::SecretString> {
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
