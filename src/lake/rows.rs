//! Row structs for each table and their conversion to Arrow record batches.
//!
//! The orchestrator maps API payloads to these plain structs; this module never sees HTTP types.
//! Batches are assembled by column *name* against the declared file schema, so a column missing
//! from the code, an extra one, or a type that disagrees with `schemas/*.toml` is an error (and
//! a failing test), never a silently different file.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field};
use arrow::error::ArrowError;

use super::error::{LakeError, Result};
use super::schema::Table;

/// One WxCC task (`GET /v1/tasks` item). Times are epoch milliseconds (UTC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskRow {
    pub task_id: String,
    pub channel_type: Option<String>,
    pub status: Option<String>,
    pub created_time: i64,
    pub last_updated_time: Option<i64>,
    pub capture_requested: Option<bool>,
    pub owner_id: Option<String>,
    pub owner_name: Option<String>,
    pub queue_id: Option<String>,
    pub queue_name: Option<String>,
    pub origin: Option<String>,
    pub destination: Option<String>,
    pub direction: Option<String>,
    pub reason_code: Option<String>,
}

/// One recording of a task (`POST /v1/captures/query`, `data[].recording[]`).
///
/// Has no field for the signed download URL on purpose: it is a secret and must not be stored.
/// `duration_ms` is derived when building the batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureRow {
    pub task_id: String,
    pub recording_id: String,
    pub call_type: Option<String>,
    pub segment: Option<bool>,
    pub file_name: Option<String>,
    pub start_time: Option<i64>,
    pub stop_time: Option<i64>,
    pub channel1: Option<String>,
    pub channel2: Option<String>,
    pub participants: Vec<String>,
    pub sensitive: Option<bool>,
}

/// One stored (or failed) audio object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestRow {
    pub task_id: String,
    pub recording_id: String,
    pub object_uri: String,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub content_type: Option<String>,
    /// `stored` or `failed`.
    pub status: String,
    pub error: Option<String>,
}

/// Tasks as a batch with exactly `Table::Tasks.def().file_schema()`.
pub fn tasks_batch(rows: &[TaskRow]) -> Result<RecordBatch> {
    assemble(
        Table::Tasks,
        vec![
            ("task_id", strings(rows, |r| Some(r.task_id.as_str()))),
            ("channel_type", strings(rows, |r| r.channel_type.as_deref())),
            ("status", strings(rows, |r| r.status.as_deref())),
            ("created_time", times(rows, |r| Some(r.created_time))),
            ("last_updated_time", times(rows, |r| r.last_updated_time)),
            ("capture_requested", bools(rows, |r| r.capture_requested)),
            ("owner_id", strings(rows, |r| r.owner_id.as_deref())),
            ("owner_name", strings(rows, |r| r.owner_name.as_deref())),
            ("queue_id", strings(rows, |r| r.queue_id.as_deref())),
            ("queue_name", strings(rows, |r| r.queue_name.as_deref())),
            ("origin", strings(rows, |r| r.origin.as_deref())),
            ("destination", strings(rows, |r| r.destination.as_deref())),
            ("direction", strings(rows, |r| r.direction.as_deref())),
            ("reason_code", strings(rows, |r| r.reason_code.as_deref())),
        ],
    )
}

/// Captures as a batch with exactly `Table::Captures.def().file_schema()`.
///
/// `duration_ms = stop_time - start_time`, null when either end is missing.
pub fn captures_batch(rows: &[CaptureRow]) -> Result<RecordBatch> {
    let duration = |r: &CaptureRow| r.stop_time?.checked_sub(r.start_time?);
    assemble(
        Table::Captures,
        vec![
            ("task_id", strings(rows, |r| Some(r.task_id.as_str()))),
            (
                "recording_id",
                strings(rows, |r| Some(r.recording_id.as_str())),
            ),
            ("call_type", strings(rows, |r| r.call_type.as_deref())),
            ("segment", bools(rows, |r| r.segment)),
            ("file_name", strings(rows, |r| r.file_name.as_deref())),
            ("start_time", times(rows, |r| r.start_time)),
            ("stop_time", times(rows, |r| r.stop_time)),
            ("duration_ms", ints(rows, duration)),
            ("channel1", strings(rows, |r| r.channel1.as_deref())),
            ("channel2", strings(rows, |r| r.channel2.as_deref())),
            (
                "participants",
                string_lists(Table::Captures, "participants", rows, |r| &r.participants)?,
            ),
            ("sensitive", bools(rows, |r| r.sensitive)),
        ],
    )
}

/// Manifest entries as a batch with exactly `Table::Manifest.def().file_schema()`.
pub fn manifest_batch(rows: &[ManifestRow]) -> Result<RecordBatch> {
    assemble(
        Table::Manifest,
        vec![
            ("task_id", strings(rows, |r| Some(r.task_id.as_str()))),
            (
                "recording_id",
                strings(rows, |r| Some(r.recording_id.as_str())),
            ),
            ("object_uri", strings(rows, |r| Some(r.object_uri.as_str()))),
            ("size_bytes", ints(rows, |r| r.size_bytes)),
            ("sha256", strings(rows, |r| r.sha256.as_deref())),
            ("content_type", strings(rows, |r| r.content_type.as_deref())),
            ("status", strings(rows, |r| Some(r.status.as_str()))),
            ("error", strings(rows, |r| r.error.as_deref())),
        ],
    )
}

pub(super) fn strings<'a, R>(rows: &'a [R], f: impl Fn(&'a R) -> Option<&'a str>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<StringArray>())
}

pub(super) fn bools<R>(rows: &[R], f: impl Fn(&R) -> Option<bool>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<BooleanArray>())
}

pub(super) fn ints<R>(rows: &[R], f: impl Fn(&R) -> Option<i64>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<Int64Array>())
}

pub(super) fn floats<R>(rows: &[R], f: impl Fn(&R) -> Option<f64>) -> ArrayRef {
    Arc::new(rows.iter().map(f).collect::<Float64Array>())
}

pub(super) fn times<R>(rows: &[R], f: impl Fn(&R) -> Option<i64>) -> ArrayRef {
    Arc::new(
        rows.iter()
            .map(f)
            .collect::<TimestampMillisecondArray>()
            .with_timezone("UTC"),
    )
}

/// A `List<Utf8>` column whose item field is taken from the declared schema.
fn string_lists<'a, R>(
    table: Table,
    column: &str,
    rows: &'a [R],
    f: impl Fn(&'a R) -> &'a Vec<String>,
) -> Result<ArrayRef> {
    let schema = table.def().file_schema();
    let item = match schema
        .field_with_name(column)
        .map(|f| f.data_type().clone())
    {
        Ok(DataType::List(item)) => item,
        _ => {
            return Err(LakeError::SchemaMismatch {
                table: table.name(),
                detail: format!("column `{column}` is not declared as list<string>"),
            });
        }
    };
    let mut builder = ListBuilder::new(StringBuilder::new()).with_field(Arc::<Field>::clone(&item));
    for r in rows {
        for v in f(r) {
            builder.values().append_value(v);
        }
        builder.append(true);
    }
    Ok(Arc::new(builder.finish()))
}

/// Orders `columns` by the declared file schema; errors on a missing or extra column and (via
/// `RecordBatch::try_new`) on a type or nullability disagreement.
pub(super) fn assemble(
    table: Table,
    columns: Vec<(&'static str, ArrayRef)>,
) -> Result<RecordBatch> {
    let schema = table.def().file_schema();
    let mut by_name: HashMap<&str, ArrayRef> = columns.into_iter().collect();
    let mut ordered = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let array =
            by_name
                .remove(field.name().as_str())
                .ok_or_else(|| LakeError::SchemaMismatch {
                    table: table.name(),
                    detail: format!(
                        "declared column `{}` is not produced by the row builder",
                        field.name()
                    ),
                })?;
        ordered.push(array);
    }
    if let Some(extra) = by_name.keys().next() {
        return Err(LakeError::SchemaMismatch {
            table: table.name(),
            detail: format!("row builder produces undeclared column `{extra}`"),
        });
    }
    RecordBatch::try_new(schema, ordered).map_err(|source: ArrowError| LakeError::Build {
        table: table.name(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;

    pub(crate) fn task(id: &str, created: i64) -> TaskRow {
        TaskRow {
            task_id: id.into(),
            channel_type: Some("telephony".into()),
            status: Some("completed".into()),
            created_time: created,
            capture_requested: Some(true),
            queue_name: Some("Support".into()),
            ..TaskRow::default()
        }
    }

    #[test]
    fn each_batch_has_exactly_the_declared_file_schema() {
        let t = tasks_batch(&[task("t1", 1)]).expect("tasks");
        assert_eq!(t.schema(), Table::Tasks.def().file_schema());
        let c = captures_batch(&[CaptureRow::default()]).expect("captures");
        assert_eq!(c.schema(), Table::Captures.def().file_schema());
        let m = manifest_batch(&[ManifestRow::default()]).expect("manifest");
        assert_eq!(m.schema(), Table::Manifest.def().file_schema());
    }

    #[test]
    fn every_declared_column_is_produced_and_no_other() {
        for (table, batch) in [
            (Table::Tasks, tasks_batch(&[]).expect("tasks")),
            (Table::Captures, captures_batch(&[]).expect("captures")),
            (Table::Manifest, manifest_batch(&[]).expect("manifest")),
            (
                Table::AudioFacts,
                crate::lake::audio_facts_batch(&[]).expect("audio_facts"),
            ),
        ] {
            let declared: Vec<&str> = table
                .def()
                .columns
                .iter()
                .filter(|c| !c.partition)
                .map(|c| c.name.as_str())
                .collect();
            let produced: Vec<&str> = batch
                .schema_ref()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            assert_eq!(produced, declared, "{table}");
            assert_eq!(batch.num_rows(), 0);
        }
    }

    #[test]
    fn capture_duration_is_stop_minus_start_or_null() {
        let rows = [
            CaptureRow {
                start_time: Some(1_000),
                stop_time: Some(61_000),
                ..CaptureRow::default()
            },
            CaptureRow {
                start_time: Some(1_000),
                ..CaptureRow::default()
            },
        ];
        let b = captures_batch(&rows).expect("captures");
        let d = b
            .column_by_name("duration_ms")
            .expect("column")
            .as_primitive::<Int64Type>();
        assert_eq!(d.value(0), 60_000);
        assert!(d.is_null(1));
    }

    #[test]
    fn participants_become_a_string_list_and_missing_ones_an_empty_list() {
        let rows = [
            CaptureRow {
                participants: vec!["agent-1".into(), "+121****1219".into()],
                ..CaptureRow::default()
            },
            CaptureRow::default(),
        ];
        let b = captures_batch(&rows).expect("captures");
        let list = b
            .column_by_name("participants")
            .expect("column")
            .as_list::<i32>();
        assert_eq!(list.value(0).as_string::<i32>().value(1), "+121****1219");
        assert_eq!(list.value(1).len(), 0);
        assert!(!list.is_null(1));
    }
}
