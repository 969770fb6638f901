//! Mapping API payloads to the lake's row types. Signed URLs are dropped here: only the file
//! name of a recording reaches a table.

use arrow::array::{Array, AsArray};
use arrow::datatypes::Int64Type;
use chrono::NaiveDate;

use super::pii::PiiMode;
use crate::api::model::{Recording, Task};
use crate::audio::facts::{ANALYSER_VERSION, AudioFacts, FactsError};
use crate::audio::{self, AudioError, Derivative, DerivedObject, StoredAudio};
use crate::lake::audio_facts::status;
use crate::lake::derivatives::{self, DerivativeRow};
use crate::lake::{AudioFactsRow, CaptureRow, Lake, ManifestRow, Result, Table, TaskRow};

pub const STATUS_STORED: &str = "stored";
pub const STATUS_FAILED: &str = "failed";

pub fn task_rows(tasks: &[Task], pii: &PiiMode) -> Vec<TaskRow> {
    tasks
        .iter()
        .map(|t| {
            let a = &t.attributes;
            TaskRow {
                task_id: t.id.clone(),
                channel_type: a.channel_type.clone(),
                status: a.status.clone(),
                created_time: a.created_time,
                last_updated_time: a.last_updated_time,
                capture_requested: a.capture_requested,
                owner_id: a.owner.as_ref().and_then(|o| o.id.clone()),
                owner_name: a.owner.as_ref().and_then(|o| o.name.clone()),
                queue_id: a.queue.as_ref().and_then(|q| q.id.clone()),
                queue_name: a.queue.as_ref().and_then(|q| q.name.clone()),
                origin: pii.apply_opt(&a.origin),
                destination: pii.apply_opt(&a.destination),
                direction: a.direction.clone(),
                reason_code: a.reason_code.clone(),
            }
        })
        .collect()
}

pub fn capture_rows(recordings: &[(&str, &Recording)], pii: &PiiMode) -> Vec<CaptureRow> {
    recordings
        .iter()
        .map(|(task_id, r)| {
            let a = &r.attributes;
            CaptureRow {
                task_id: (*task_id).to_owned(),
                recording_id: r.id.clone(),
                call_type: a.call_type.clone(),
                segment: r.segment,
                file_name: a.file_name.clone(),
                start_time: a.start_time,
                stop_time: a.stop_time,
                channel1: a.channel1.clone(),
                channel2: a.channel2.clone(),
                participants: a.participants.iter().map(|p| pii.apply(p)).collect(),
                sensitive: a.sensitive,
            }
        })
        .collect()
}

pub fn manifest_row(
    task_id: &str,
    recording_id: &str,
    object_uri: String,
    result: std::result::Result<&StoredAudio, &AudioError>,
) -> ManifestRow {
    let (size, sha, status, error) = match result {
        Ok(s) => (
            Some(s.size as i64),
            Some(s.sha256.clone()),
            STATUS_STORED,
            None,
        ),
        Err(e) => (None, None, STATUS_FAILED, Some(e.to_string())),
    };
    ManifestRow {
        task_id: task_id.to_owned(),
        recording_id: recording_id.to_owned(),
        object_uri,
        size_bytes: size,
        sha256: sha,
        content_type: Some(audio::WAV_CONTENT_TYPE.to_owned()),
        status: status.to_owned(),
        error,
    }
}

/// The tasks whose rows a reader keeps (all of the day's when `None`): a part of a busy day
/// needs only its own.
pub type Only<'a> = Option<&'a std::collections::HashSet<String>>;

fn kept(only: Only<'_>, task_id: &str) -> bool {
    only.is_none_or(|ids| ids.contains(task_id))
}

/// The manifest rows already in a partition, to skip audio that is stored.
pub async fn manifest_from_lake(
    lake: &Lake,
    org: &str,
    date: NaiveDate,
    only: Only<'_>,
) -> Result<Vec<ManifestRow>> {
    let mut rows = Vec::new();
    lake.visit_partition_files(Table::Manifest, org, date, only, |batch| {
        rows.extend(manifest_rows(&batch, only));
    })
    .await?;
    Ok(rows)
}

/// The rows of `batch` for the tasks in `only`, built only for those (a part of a busy day
/// keeps a few thousand of the day's rows).
fn manifest_rows(batch: &arrow::array::RecordBatch, only: Only<'_>) -> Vec<ManifestRow> {
    let text = |name: &str| {
        batch
            .column_by_name(name)
            .map(|c| c.as_string::<i32>().clone())
    };
    let (Some(task), Some(rec), Some(uri), Some(sha), Some(ctype), Some(status), Some(error)) = (
        text("task_id"),
        text("recording_id"),
        text("object_uri"),
        text("sha256"),
        text("content_type"),
        text("status"),
        text("error"),
    ) else {
        return Vec::new();
    };
    let Some(size) = batch
        .column_by_name("size_bytes")
        .map(|c| c.as_primitive::<Int64Type>().clone())
    else {
        return Vec::new();
    };
    let opt =
        |a: &arrow::array::StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_owned());
    (0..batch.num_rows())
        .filter(|&i| kept(only, task.value(i)))
        .map(|i| ManifestRow {
            task_id: task.value(i).to_owned(),
            recording_id: rec.value(i).to_owned(),
            object_uri: uri.value(i).to_owned(),
            size_bytes: (!size.is_null(i)).then(|| size.value(i)),
            sha256: opt(&sha, i),
            content_type: opt(&ctype, i),
            status: status.value(i).to_owned(),
            error: opt(&error, i),
        })
        .collect()
}

/// The `audio_facts.status` of a recording that could not be analysed.
pub fn facts_status(e: &FactsError) -> &'static str {
    match e {
        FactsError::NotWav(_) => status::NOT_WAV,
        FactsError::Unsupported(_) => status::UNSUPPORTED,
        FactsError::Corrupt(_) | FactsError::Io(_) => status::CORRUPT,
        FactsError::Empty => status::EMPTY,
    }
}

/// The audio facts row of one recording: what the analysis found, next to what the capture
/// metadata claims (duration, which party is on which channel).
pub fn facts_row(
    task_id: &str,
    rec: &Recording,
    analysis: &std::result::Result<AudioFacts, FactsError>,
) -> AudioFactsRow {
    let a = &rec.attributes;
    let mut row = AudioFactsRow {
        task_id: task_id.to_owned(),
        recording_id: rec.id.clone(),
        expected_duration_ms: a
            .stop_time
            .zip(a.start_time)
            .map(|(stop, start)| stop - start),
        channel1_label: a.channel1.clone(),
        channel2_label: a.channel2.clone(),
        ..Default::default()
    };
    let facts = match analysis {
        Ok(f) => f,
        Err(e) => {
            row.status = facts_status(e).to_owned();
            row.error = Some(e.to_string());
            return row;
        }
    };
    row.status = status::OK.to_owned();
    row.analyser_version = Some(facts.analyser_version);
    row.notes = (!facts.notes.is_empty()).then(|| facts.notes.join("; "));
    row.format = Some(facts.format.clone());
    row.sample_rate = Some(i64::from(facts.sample_rate));
    row.channels = Some(i64::from(facts.channels));
    row.bits_per_sample = Some(i64::from(facts.bits_per_sample));
    row.duration_ms = Some(facts.duration_ms);
    row.crosstalk_share = Some(facts.crosstalk_share);
    if let Some(c) = facts.channel_stats.first() {
        row.ch1_rms_dbfs = Some(c.rms_dbfs);
        row.ch1_peak_dbfs = Some(c.peak_dbfs);
        row.ch1_silence_share = c.silence_share;
        row.ch1_clipping_share = Some(c.clipping_share);
        row.ch1_talk_ms = c.talk_time_ms;
        row.ch1_active_dbfs = c.active_level_dbfs;
    }
    if let Some(c) = facts.channel_stats.get(1) {
        row.ch2_rms_dbfs = Some(c.rms_dbfs);
        row.ch2_peak_dbfs = Some(c.peak_dbfs);
        row.ch2_silence_share = c.silence_share;
        row.ch2_clipping_share = Some(c.clipping_share);
        row.ch2_talk_ms = c.talk_time_ms;
        row.ch2_active_dbfs = c.active_level_dbfs;
    }
    row
}

/// The derivative rows of one recording made from the original `source`.
pub fn derivative_rows(
    lake: &Lake,
    task_id: &str,
    rec: &Recording,
    source: &StoredAudio,
    derived: &[DerivedObject],
) -> Vec<DerivativeRow> {
    derived
        .iter()
        .map(|d| {
            let mut row = DerivativeRow {
                task_id: task_id.to_owned(),
                recording_id: rec.id.clone(),
                kind: d.kind.name().to_owned(),
                channel_label: match d.kind {
                    Derivative::Mono16k => None,
                    Derivative::Channel1 => rec.attributes.channel1.clone(),
                    Derivative::Channel2 => rec.attributes.channel2.clone(),
                },
                object_uri: lake.uri(&d.path),
                source_sha256: Some(source.sha256.clone()),
                analyser_version: Some(ANALYSER_VERSION),
                ..Default::default()
            };
            match &d.result {
                Ok((info, stored)) => {
                    row.status = derivatives::status::OK.to_owned();
                    row.sample_rate = Some(i64::from(info.sample_rate));
                    row.channels = Some(i64::from(info.channels));
                    row.duration_ms = Some(info.duration_ms);
                    row.size_bytes = Some(stored.size as i64);
                    row.sha256 = Some(stored.sha256.clone());
                    row.clipping_share = Some(if info.frames == 0 {
                        0.0
                    } else {
                        info.clipped as f64 / info.frames as f64
                    });
                }
                Err(e) => {
                    row.status = match e {
                        AudioError::Undecodable(_) => derivatives::status::UNUSABLE_SOURCE,
                        _ => derivatives::status::FAILED,
                    }
                    .to_owned();
                    row.error = Some(e.to_string());
                }
            }
            row
        })
        .collect()
}

/// The derivative rows already in a partition, by (task, recording, kind).
pub async fn derivatives_from_lake(
    lake: &Lake,
    org: &str,
    date: NaiveDate,
    only: Only<'_>,
) -> Result<std::collections::HashMap<(String, String, String), DerivativeRow>> {
    let mut rows = std::collections::HashMap::new();
    lake.visit_partition_files(Table::Derivatives, org, date, only, |batch| {
        // Files made by another analyser version are left out, so they are made again.
        rows.extend(
            derivatives::derivative_rows(&batch)
                .into_iter()
                .filter(|r| r.analyser_version == Some(ANALYSER_VERSION))
                .filter(|r| kept(only, &r.task_id))
                .map(|r| {
                    (
                        (r.task_id.clone(), r.recording_id.clone(), r.kind.clone()),
                        r,
                    )
                }),
        );
    })
    .await?;
    Ok(rows)
}

/// Keys of the recordings that already have an audio facts row of this analyser version in a
/// partition (rows of another version, or with none recorded, are analysed again).
pub async fn analysed_in_lake(
    lake: &Lake,
    org: &str,
    date: NaiveDate,
    only: Only<'_>,
) -> Result<std::collections::HashSet<(String, String)>> {
    let mut keys = std::collections::HashSet::new();
    let columns = ["task_id", "recording_id", "analyser_version"];
    lake.visit_partition_columns(Table::AudioFacts, org, date, &columns, |batch| {
        let (Some(task), Some(rec)) = (
            string_column(&batch, "task_id"),
            string_column(&batch, "recording_id"),
        ) else {
            return;
        };
        let version = batch
            .column_by_name("analyser_version")
            .and_then(|c| c.as_primitive_opt::<Int64Type>());
        let current =
            |i: usize| version.is_some_and(|v| !v.is_null(i) && v.value(i) == ANALYSER_VERSION);
        keys.extend(
            (0..batch.num_rows())
                .filter(|&i| current(i) && kept(only, task.value(i)))
                .map(|i| (task.value(i).to_owned(), rec.value(i).to_owned())),
        );
    })
    .await?;
    Ok(keys)
}

/// What an earlier run stored of a task: enough to tell whether it changed since.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownTask {
    pub created_ms: i64,
    pub last_updated_ms: Option<i64>,
    /// A voice task whose `captureRequested` is not `false` (see `Task::may_have_recording`).
    pub may_have_recording: bool,
}

/// A text column, if the partition has it.
fn string_column(
    batch: &arrow::array::RecordBatch,
    name: &str,
) -> Option<arrow::array::StringArray> {
    batch
        .column_by_name(name)
        .map(|c| c.as_string::<i32>().clone())
}

/// A column as `i64` values (timestamps as epoch ms), `None` where null.
fn int64_column(batch: &arrow::array::RecordBatch, name: &str) -> Option<Vec<Option<i64>>> {
    let col = batch.column_by_name(name)?;
    let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Int64).ok()?;
    let col = col.as_primitive::<Int64Type>();
    Some(
        (0..col.len())
            .map(|i| (!col.is_null(i)).then(|| col.value(i)))
            .collect(),
    )
}

/// The tasks already in a partition, by id (those in `only`, when given).
pub async fn tasks_from_lake(
    lake: &Lake,
    org: &str,
    date: NaiveDate,
    only: Only<'_>,
) -> Result<std::collections::HashMap<String, KnownTask>> {
    let mut known = std::collections::HashMap::new();
    let columns = [
        "task_id",
        "channel_type",
        "capture_requested",
        "created_time",
        "last_updated_time",
    ];
    lake.visit_partition_columns(Table::Tasks, org, date, &columns, |batch| {
        let (Some(id), Some(channel), Some(capture), Some(created), Some(updated)) = (
            string_column(&batch, "task_id"),
            string_column(&batch, "channel_type"),
            batch
                .column_by_name("capture_requested")
                .map(|c| c.as_boolean().clone()),
            int64_column(&batch, "created_time"),
            int64_column(&batch, "last_updated_time"),
        ) else {
            return;
        };
        known.extend(
            (0..batch.num_rows())
                .filter(|&i| kept(only, id.value(i)))
                .map(|i| {
                    let voice =
                        !channel.is_null(i) && channel.value(i).eq_ignore_ascii_case("telephony");
                    let not_requested = !capture.is_null(i) && !capture.value(i);
                    (
                        id.value(i).to_owned(),
                        KnownTask {
                            created_ms: created[i].unwrap_or_default(),
                            last_updated_ms: updated[i],
                            may_have_recording: voice && !not_requested,
                        },
                    )
                }),
        );
    })
    .await?;
    Ok(known)
}

/// `stop_time` of the recordings already in a captures partition: a recording listed while its
/// call was still going has a later `stop_time` once the call ended, and is stored again.
pub async fn capture_stops_from_lake(
    lake: &Lake,
    org: &str,
    date: NaiveDate,
    only: Only<'_>,
) -> Result<std::collections::HashMap<(String, String), Option<i64>>> {
    let mut stops = std::collections::HashMap::new();
    let columns = ["task_id", "recording_id", "stop_time"];
    lake.visit_partition_columns(Table::Captures, org, date, &columns, |batch| {
        let (Some(task), Some(rec), Some(stop)) = (
            string_column(&batch, "task_id"),
            string_column(&batch, "recording_id"),
            int64_column(&batch, "stop_time"),
        ) else {
            return;
        };
        stops.extend(
            (0..batch.num_rows())
                .filter(|&i| kept(only, task.value(i)))
                .map(|i| ((task.value(i).to_owned(), rec.value(i).to_owned()), stop[i])),
        );
    })
    .await?;
    Ok(stops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_rows_carry_the_verdict_and_the_capture_labels() {
        let rec: Recording = serde_json::from_str(
            r#"{"id":"r1","attributes":{"startTime":1000,"stopTime":61000,
                "channel1":"Caller","channel2":"Agent"}}"#,
        )
        .unwrap();
        let bad = facts_row("t1", &rec, &Err(FactsError::Corrupt("cut short".into())));
        assert_eq!(bad.status, status::CORRUPT);
        assert!(bad.error.unwrap().contains("cut short"));
        assert_eq!(bad.expected_duration_ms, Some(60_000));
        assert_eq!(bad.channel1_label.as_deref(), Some("Caller"));
        assert!(bad.duration_ms.is_none());
    }
}
