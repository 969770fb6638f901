//! Transcription job lists: one row per selected recording with everything a speech-to-text job
//! needs (where the audio is, optionally a pre-signed HTTPS URL, which channel is the caller and
//! which the agent for diarization, duration, language hint), in a stable order.
//!
//! A selection query (a saved query or ad-hoc SQL) says *which* recordings: it must return
//! `org_id`, `task_id` and `recording_id`. The job columns always come from the `recordings`
//! view, so every export has the same schema whatever the selection, and re-running an export
//! gives the same rows in the same order (only signed URLs and their expiry change).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use datafusion::arrow::array::{
    ArrayRef, AsArray, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use super::error::{QueryError, Result};
use super::session::QuerySession;
use crate::lake::Lake;

/// Columns a selection query must return.
pub const SELECTION_KEYS: [&str; 3] = ["org_id", "task_id", "recording_id"];

/// The job list over the selection `{selection}` (placeholders allowed), ordered stably.
/// `url` and `url_expires_at` are filled (or left null) after the query, by [`sign_batch`].
/// `{a}` is the audio file's alias (`r` for the original, `d` for a derivative joined by
/// `{audio_join}`); a mono derivative has no caller or agent channel.
const JOBS_SQL: &str = "\
WITH selected AS (
    SELECT DISTINCT org_id, task_id, recording_id FROM ({selection}) AS q
)
SELECT
    r.org_id,
    r.date,
    r.task_id,
    r.recording_id,
    r.created_time,
    r.queue_name,
    r.agent_name,
    r.call_type,
    {a}.object_uri,
    CAST(NULL AS VARCHAR) AS url,
    CAST(NULL AS VARCHAR) AS url_expires_at,
    CASE WHEN {stereo} AND r.channel1 = 'Caller' THEN 1
         WHEN {stereo} AND r.channel2 = 'Caller' THEN 2 END AS caller_channel,
    CASE WHEN {stereo} AND r.channel1 = 'Agent' THEN 1
         WHEN {stereo} AND r.channel2 = 'Agent' THEN 2 END AS agent_channel,
    r.channel1,
    r.channel2,
    COALESCE({a}.{duration}, r.duration_ms) AS duration_ms,
    CAST(NULL AS VARCHAR) AS language,
    {a}.size_bytes,
    {a}.sha256
FROM recordings AS r
JOIN selected AS s
    ON r.org_id = s.org_id AND r.task_id = s.task_id AND r.recording_id = s.recording_id
{audio_join}
ORDER BY r.created_time, r.task_id, r.recording_id";

/// Only a derivative made from the very bytes stored counts (see the `recordings` view).
const MONO16K_JOIN: &str = "\
JOIN derivatives AS d
    ON d.org_id = r.org_id AND d.date = r.date
    AND d.task_id = r.task_id AND d.recording_id = r.recording_id
    AND d.kind = 'mono16k' AND d.status = 'ok' AND d.source_sha256 = r.sha256";

/// How many selected recordings have a row in `recordings` (stored audio): the selection may
/// name recordings not stored yet, which the job list cannot point at.
const COVERAGE_SQL: &str = "\
WITH selected AS (
    SELECT DISTINCT org_id, task_id, recording_id FROM ({selection}) AS q
)
SELECT
    CAST(COUNT(*) AS BIGINT) AS selected,
    CAST(SUM(CASE WHEN r.recording_id IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS not_stored
FROM selected AS s
LEFT JOIN recordings AS r
    ON r.org_id = s.org_id AND r.task_id = s.task_id AND r.recording_id = s.recording_id";

/// Which audio file each job points at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExportAudio {
    /// The recording as stored (stereo, caller and agent channels given).
    #[default]
    Original,
    /// Its 16 kHz mono derivative (`wxcc sync --derive mono16k`); recordings without one are
    /// left out of the job list.
    Mono16k,
}

impl ExportAudio {
    fn jobs_sql(self, selection: &str) -> String {
        let (alias, stereo, duration, join) = match self {
            ExportAudio::Original => ("r", "TRUE", "audio_duration_ms", ""),
            ExportAudio::Mono16k => ("d", "FALSE", "duration_ms", MONO16K_JOIN),
        };
        JOBS_SQL
            .replace("{a}", alias)
            .replace("{stereo}", stereo)
            .replace("{duration}", duration)
            .replace("{audio_join}", join)
            .replace("{selection}", selection)
    }
}

/// What to export and how.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// Selection SQL: a saved query's text or ad-hoc SQL, with `$name` placeholders.
    pub selection_sql: String,
    /// Values for the placeholders.
    pub params: Option<ParamValues>,
    /// Pre-sign a `GET` URL valid this long for each recording.
    pub sign: Option<Duration>,
    /// The original recordings or their 16 kHz mono derivatives.
    pub audio: ExportAudio,
}

/// What a selection asked for, to tell the caller which recordings a job list leaves out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Distinct recordings the selection returned.
    pub selected: u64,
    /// Of those, recordings without stored audio (no row in `recordings`).
    pub not_stored: u64,
}

impl Coverage {
    /// Why `written` job rows fall short of the selection, or `None` when none is left out.
    pub fn shortfall(&self, written: u64, audio: ExportAudio) -> Option<String> {
        let left_out = self.selected.saturating_sub(written);
        if left_out == 0 {
            return None;
        }
        let mut reasons = Vec::new();
        if self.not_stored > 0 {
            reasons.push(format!(
                "{} have no stored audio (not downloaded yet, or failed: `wxcc state show` \
                 lists what the next sync retries)",
                self.not_stored
            ));
        }
        let rest = left_out.saturating_sub(self.not_stored);
        if rest > 0 {
            reasons.push(match audio {
                ExportAudio::Mono16k => format!(
                    "{rest} have no current mono16k derivative of their stored audio \
                     (`wxcc sync --derive mono16k` makes missing ones; the `derivatives` table \
                     shows failed ones)"
                ),
                ExportAudio::Original => format!("{rest} could not be matched to their audio"),
            });
        }
        Some(format!(
            "{left_out} of {} selected recordings are not in the job list: {}",
            self.selected,
            reasons.join("; ")
        ))
    }
}

/// Counts what `request`'s selection asks for (one small aggregate query), so a job list that
/// leaves recordings out says so instead of passing for complete.
pub async fn coverage(session: &QuerySession, request: &ExportRequest) -> Result<Coverage> {
    let sql = COVERAGE_SQL.replace("{selection}", selection_of(request));
    let batches = session
        .dataframe(&sql, request.params.clone())
        .await?
        .collect()
        .await
        .map_err(QueryError::sql)?;
    let count = |name: &str| -> u64 {
        batches
            .iter()
            .filter_map(|b| b.column_by_name(name))
            .filter_map(|c| c.as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>())
            .flat_map(|a| a.iter().flatten())
            .map(|v| u64::try_from(v).unwrap_or(0))
            .sum()
    };
    Ok(Coverage {
        selected: count("selected"),
        not_stored: count("not_stored"),
    })
}

fn selection_of(request: &ExportRequest) -> &str {
    request
        .selection_sql
        .trim()
        .trim_end_matches(';')
        .trim_end()
}

/// Runs the export and returns the job rows as a stream (see the module docs for the columns).
///
/// `lake` signs the URLs: it must be an S3, GCS or Azure lake when `sign` is set (the error
/// says so up front, before any query runs), and the objects must live in its store.
pub async fn export_jobs(
    session: &QuerySession,
    lake: &Lake,
    request: &ExportRequest,
) -> Result<SendableRecordBatchStream> {
    if request.sign.is_some() && !lake.can_sign() {
        return Err(crate::lake::LakeError::SigningUnsupported {
            location: lake.url().to_string(),
        }
        .into());
    }
    if request.sign.is_some() && lake.signs_with_session_credentials().await? {
        tracing::warn!(
            "the URLs are signed with temporary credentials (an STS session or instance role): \
             each stops working when that session ends, which may be before its url_expires_at; \
             sign with long-lived keys, or keep --sign within the session's remaining lifetime"
        );
    }
    let selection = selection_of(request);
    let probe = session.dataframe(selection, None).await?;
    let missing: Vec<&str> = SELECTION_KEYS
        .into_iter()
        .filter(|k| probe.schema().field_with_unqualified_name(k).is_err())
        .collect();
    if !missing.is_empty() {
        return Err(QueryError::Usage(format!(
            "the export query must return one row per recording with columns org_id, task_id \
             and recording_id; it lacks {}",
            missing.join(", ")
        )));
    }
    let sql = request.audio.jobs_sql(selection);
    let df = session.dataframe(&sql, request.params.clone()).await?;
    let stream = df.execute_stream().await.map_err(QueryError::sql)?;
    let schema = job_schema(&stream.schema());
    let lake = lake.clone();
    let sign = request.sign;
    let out_schema = Arc::clone(&schema);
    let signed = stream.then(move |batch| {
        let (lake, schema) = (lake.clone(), Arc::clone(&out_schema));
        async move {
            let batch = batch?;
            sign_batch(&lake, &batch, schema, sign)
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))
        }
    });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, signed)))
}

/// The query's schema with `url` as plain UTF-8 and `url_expires_at` as a UTC millisecond
/// timestamp (SQL can only give them as typeless nulls).
fn job_schema(query: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = query
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "url" => Field::new("url", DataType::Utf8, true),
            "url_expires_at" => Field::new(
                "url_expires_at",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Fills `url` and `url_expires_at` of one batch: pre-signed when `sign` is set, else null.
pub async fn sign_batch(
    lake: &Lake,
    batch: &RecordBatch,
    schema: SchemaRef,
    sign: Option<Duration>,
) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let (urls, expiry): (StringArray, TimestampMillisecondArray) = match sign {
        None => (
            StringArray::new_null(n),
            TimestampMillisecondArray::new_null(n),
        ),
        Some(ttl) => {
            let uris = cast(column(batch, "object_uri")?, &DataType::Utf8).map_err(|source| {
                QueryError::Format {
                    format: "export",
                    source,
                }
            })?;
            let uris = uris.as_string::<i32>();
            let expires_at = (Utc::now() + ttl).timestamp_millis();
            let mut urls = Vec::with_capacity(n);
            for i in 0..n {
                let uri = uris.value(i);
                let path = lake.audio_path_of_uri(uri).ok_or_else(|| {
                    QueryError::Usage(format!(
                        "cannot pre-sign {uri}: only recordings under {}audio/ are signed",
                        lake.url()
                    ))
                })?;
                urls.push(lake.signed_get_url(&path, ttl).await?.to_string());
            }
            (StringArray::from(urls), vec![Some(expires_at); n].into())
        }
    };
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[index(batch, "url")?] = Arc::new(urls);
    columns[index(batch, "url_expires_at")?] = Arc::new(expiry.with_timezone("UTC"));
    RecordBatch::try_new(schema, columns).map_err(|source| QueryError::Format {
        format: "export",
        source,
    })
}

fn index(batch: &RecordBatch, name: &str) -> Result<usize> {
    batch
        .schema_ref()
        .index_of(name)
        .map_err(|source| QueryError::Format {
            format: "export",
            source,
        })
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    Ok(batch.column(index(batch, name)?))
}

/// Parses a URL lifetime such as `90s`, `15m`, `1h` or `7d` (a bare number is seconds).
pub fn parse_ttl(text: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let secs_per = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    let n: u64 = digits.parse().unwrap_or(0);
    let secs = n.saturating_mul(secs_per);
    // S3 and GCS cap pre-signed URLs at 7 days.
    if secs == 0 || secs > 7 * 86_400 {
        return Err(QueryError::Usage(format!(
            "--sign {text}: expected a lifetime between 1s and 7d, e.g. 15m, 1h or 2d"
        )));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
