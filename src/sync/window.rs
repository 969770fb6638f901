//! One window (at most one UTC day): tasks → captures → audio (analysed, derivatives made as it
//! streams) → partition upserts.
//!
//! Capture queries and downloads overlap: each captures batch feeds its recordings straight
//! into the bounded download pool. The partitions are written only after every download of the
//! window has settled (stored or failed), audio first, so a crash at any point leaves tables
//! that describe only durable objects, and a rerun picks up the rest.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use secrecy::SecretString;

use super::rows::{self, STATUS_STORED};
use super::{Outcome, Result, SyncContext, SyncSummary};
use crate::api::model::{Recording, TaskCaptures};
use crate::api::{MAX_CAPTURE_IDS, Reject};
use crate::audio::{self, AudioError, Fetched, Processing, StoredAudio};
use crate::lake::derivatives::status as derived_status;
use crate::lake::{self, AudioFactsRow, DerivativeRow, ManifestRow, Table};

/// Capture queries in flight at once; the rate limiter paces them anyway.
const CAPTURE_QUERIES_IN_FLIGHT: usize = 4;
/// Ask for a fresh URL when less than this is left of its validity.
const URL_SAFETY_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A recording with the URL it came with and when that URL was issued.
struct Pending {
    task_id: String,
    recording: Recording,
    issued: Instant,
}

pub(super) async fn sync_window(
    ctx: &SyncContext,
    org: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    concurrency: usize,
    summary: &mut SyncSummary,
) -> Result<()> {
    let listing = ctx
        .api
        .list_tasks(start.timestamp_millis(), end.timestamp_millis())
        .await?;
    let date = start.date_naive();
    let mut rejects = listing.rejects;
    let tasks = listing.tasks;
    summary.tasks += tasks.len() as u64;

    let previous = previous_manifest(ctx, org, date).await?;
    let analysed = rows::analysed_in_lake(&ctx.lake, org, date).await?;
    let derived = if ctx.processing.derive.is_empty() {
        HashMap::new()
    } else {
        rows::derivatives_from_lake(&ctx.lake, org, date).await?
    };
    let known = Known {
        manifest: &previous,
        analysed: &analysed,
        derived: &derived,
    };
    let captured: Mutex<Vec<TaskCaptures>> = Mutex::new(Vec::new());
    let capture_rejects: Mutex<Vec<Reject>> = Mutex::new(Vec::new());
    let url_life = Duration::from_secs(u64::from(ctx.api.settings().url_expiration_minutes) * 60);

    let ids: Vec<String> = tasks
        .iter()
        .filter(|t| t.may_have_recording())
        .map(|t| t.id.clone())
        .collect();
    let results: Vec<Stored> = futures::stream::iter(ids.chunks(MAX_CAPTURE_IDS))
        .map(|chunk| ctx.api.query_captures(chunk))
        .buffered(CAPTURE_QUERIES_IN_FLIGHT)
        .map_ok(|(batch, bad)| {
            let issued = Instant::now();
            capture_rejects.lock().expect("not poisoned").extend(bad);
            let pending: Vec<Pending> = batch
                .iter()
                .flat_map(|c| {
                    c.recording.iter().map(|r| Pending {
                        task_id: c.task_id.clone(),
                        recording: r.clone(),
                        issued,
                    })
                })
                .collect();
            captured.lock().expect("not poisoned").extend(batch);
            futures::stream::iter(pending.into_iter().map(Ok))
        })
        .try_flatten()
        .map_ok(|p| store_recording(ctx, org, p, url_life, &known))
        .try_buffer_unordered(concurrency)
        .try_collect()
        .await?;

    rejects.extend(capture_rejects.into_inner().expect("not poisoned"));
    let captures = captured.into_inner().expect("not poisoned");
    let recordings: Vec<(&str, &Recording)> = captures
        .iter()
        .flat_map(|c| c.recording.iter().map(move |r| (c.task_id.as_str(), r)))
        .collect();
    summary.recordings += recordings.len() as u64;
    let mut manifest = Vec::with_capacity(results.len());
    let mut facts = Vec::new();
    let mut derivatives = Vec::new();
    for stored in results {
        summary.count(&stored.manifest, stored.outcome);
        summary.count_derived(&stored.derived);
        manifest.push(stored.manifest);
        facts.extend(stored.facts);
        derivatives.extend(stored.derived);
    }

    let lake = &ctx.lake;
    if !facts.is_empty() {
        let batch = lake::audio_facts_batch(&facts)?;
        lake.upsert_partition(Table::AudioFacts, org, date, batch)
            .await?;
    }
    if !derivatives.is_empty() {
        let batch = lake::derivatives_batch(&derivatives)?;
        lake.upsert_partition(Table::Derivatives, org, date, batch)
            .await?;
    }
    if !manifest.is_empty() {
        let batch = lake::manifest_batch(&manifest)?;
        lake.upsert_partition(Table::Manifest, org, date, batch)
            .await?;
    }
    if !recordings.is_empty() {
        let batch = lake::captures_batch(&rows::capture_rows(&recordings, &ctx.pii))?;
        lake.upsert_partition(Table::Captures, org, date, batch)
            .await?;
    }
    if !tasks.is_empty() {
        let batch = lake::tasks_batch(&rows::task_rows(&tasks, &ctx.pii))?;
        lake.upsert_partition(Table::Tasks, org, date, batch)
            .await?;
    }
    write_rejects(ctx, org, date, &rejects).await?;
    summary.rejects += rejects.len() as u64;
    tracing::info!(
        tasks = tasks.len(),
        recordings = recordings.len(),
        rejects = rejects.len(),
        "window synced"
    );
    Ok(())
}

type Previous = HashMap<(String, String), ManifestRow>;

/// What earlier runs left in this window's partitions.
struct Known<'a> {
    manifest: &'a Previous,
    analysed: &'a HashSet<(String, String)>,
    /// Empty unless derivatives are asked for.
    derived: &'a HashMap<(String, String, String), DerivativeRow>,
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
}

async fn previous_manifest(ctx: &SyncContext, org: &str, date: NaiveDate) -> Result<Previous> {
    Ok(rows::manifest_from_lake(&ctx.lake, org, date)
        .await?
        .into_iter()
        .map(|r| ((r.task_id.clone(), r.recording_id.clone()), r))
        .collect())
}

/// Quarantined records of a window, replaced on every run of that window (so a rerun that
/// parses fine clears them). Signed URLs were scrubbed when the reject was made.
async fn write_rejects(
    ctx: &SyncContext,
    org: &str,
    date: NaiveDate,
    rejects: &[Reject],
) -> Result<()> {
    let path = ctx
        .lake
        .path(&format!("_rejects/org_id={org}/date={date}/rejects.jsonl"));
    let store = ctx.lake.store();
    if rejects.is_empty() {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    let mut body = Vec::new();
    for r in rejects {
        tracing::warn!(source = r.source, reason = %r.reason, "record quarantined");
        let r = Reject {
            raw: ctx.pii.apply_to_json(&r.raw),
            ..r.clone()
        };
        serde_json::to_writer(&mut body, &r).expect("reject serializes");
        body.push(b'\n');
    }
    store.put(&path, body.into()).await?;
    Ok(())
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
    let key = match audio::object_key(org, task_id, &rec.id) {
        Ok(k) => k,
        Err(e) => {
            let manifest = rows::manifest_row(task_id, &rec.id, String::new(), Err(&e));
            return Ok(Stored {
                manifest,
                outcome: Outcome::Failed,
                facts: None,
                derived: Vec::new(),
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
    if let Some(stored) = already_stored(ctx, &path, known.manifest.get(&id)).await {
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
        let processed =
            match audio::process_stored(&transfer(ctx, &processing), &path, &ids, &stored).await {
                Ok(p) => Some(p),
                Err(AudioError::Changed) => None,
                Err(e) => {
                    tracing::warn!(%path, error = %e, "cannot read stored audio to process it");
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
    Ok(Stored {
        manifest,
        outcome,
        facts,
        derived,
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
    }
}

/// An object already in the store counts as stored when it matches the manifest's size (or,
/// with `verify_checksums`, its SHA-256). An object with no manifest row (a run that died
/// before writing its partitions) is complete by construction — uploads only become visible
/// once every byte arrived — so it is hashed from the store instead of downloaded again.
async fn already_stored(
    ctx: &SyncContext,
    path: &Path,
    previous: Option<&ManifestRow>,
) -> Option<StoredAudio> {
    let store: &Arc<dyn ObjectStore> = ctx.lake.store();
    let meta = store.head(path).await.ok()?;
    match previous {
        Some(prev) if prev.status == STATUS_STORED && prev.size_bytes == Some(meta.size as i64) => {
            let recorded = StoredAudio {
                size: meta.size,
                sha256: prev.sha256.clone()?,
            };
            if !ctx.verify_checksums {
                return Some(recorded);
            }
            let actual = audio::hash_object(store, path).await.ok()?;
            (actual == recorded).then_some(actual)
        }
        Some(prev) if prev.status == STATUS_STORED => {
            tracing::warn!(%path, "stored object differs from the manifest; downloading again");
            None
        }
        _ => audio::hash_object(store, path).await.ok(),
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
