//! Tests for partition upserts (kept apart so `partition.rs` stays readable).

use arrow::array::{Array, AsArray, Float64Array, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, TimeUnit, TimestampMillisecondType};
use object_store::ObjectStoreExt;
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::*;
use crate::lake::{CaptureRow, TaskRow, captures_batch, tasks_batch};

const ORG: &str = "3dae8fdd-06e2-411a-9035-51f3719f5b65";

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, 5).expect("valid date")
}

fn task(id: &str, created: i64, status: &str) -> TaskRow {
    TaskRow {
        task_id: id.into(),
        channel_type: Some("telephony".into()),
        status: Some(status.into()),
        created_time: created,
        capture_requested: Some(true),
        ..TaskRow::default()
    }
}

fn ids_and_status(batch: &RecordBatch) -> Vec<(String, String)> {
    let ids = batch
        .column_by_name("task_id")
        .expect("task_id")
        .as_string::<i32>();
    let status = batch
        .column_by_name("status")
        .expect("status")
        .as_string::<i32>();
    (0..batch.num_rows())
        .map(|i| (ids.value(i).to_string(), status.value(i).to_string()))
        .collect()
}

async fn file_bytes(lake: &Lake, table: Table) -> Bytes {
    let path = lake.path(&partition_file(table, ORG, day()).expect("path"));
    lake.store()
        .get(&path)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes")
}

#[tokio::test]
async fn written_partition_reads_back_identically() {
    let lake = Lake::open("memory://").expect("open");
    let batch = tasks_batch(&[task("b", 2, "completed"), task("a", 1, "queued")]).expect("batch");
    let n = lake
        .upsert_partition(Table::Tasks, ORG, day(), batch)
        .await
        .expect("upsert");
    assert_eq!(n, 2);
    let back = lake
        .read_partition(Table::Tasks, ORG, day())
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(back.schema(), Table::Tasks.def().file_schema());
    // Sorted by created_time, task_id.
    assert_eq!(
        ids_and_status(&back),
        vec![
            ("a".into(), "queued".into()),
            ("b".into(), "completed".into())
        ]
    );
}

#[tokio::test]
async fn missing_partition_reads_as_none() {
    let lake = Lake::open("memory://").expect("open");
    assert!(
        lake.read_partition(Table::Captures, ORG, day())
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test]
async fn upserting_the_same_rows_twice_leaves_the_file_unchanged() {
    let lake = Lake::open("memory://").expect("open");
    let rows = [task("a", 1, "completed"), task("b", 2, "completed")];
    lake.upsert_partition(Table::Tasks, ORG, day(), tasks_batch(&rows).expect("batch"))
        .await
        .expect("first");
    let first = file_bytes(&lake, Table::Tasks).await;
    let n = lake
        .upsert_partition(Table::Tasks, ORG, day(), tasks_batch(&rows).expect("batch"))
        .await
        .expect("second");
    assert_eq!(n, 2, "no duplicates");
    assert_eq!(
        file_bytes(&lake, Table::Tasks).await,
        first,
        "same bytes after a re-run"
    );
}

#[tokio::test]
async fn changed_row_replaces_the_stored_one_and_other_keys_are_kept() {
    let lake = Lake::open("memory://").expect("open");
    let first = tasks_batch(&[task("a", 1, "queued"), task("b", 2, "queued")]).expect("batch");
    lake.upsert_partition(Table::Tasks, ORG, day(), first)
        .await
        .expect("first");
    let update = tasks_batch(&[task("a", 1, "completed"), task("c", 3, "queued")]).expect("batch");
    let n = lake
        .upsert_partition(Table::Tasks, ORG, day(), update)
        .await
        .expect("update");
    assert_eq!(n, 3);
    let back = lake
        .read_partition(Table::Tasks, ORG, day())
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        ids_and_status(&back),
        vec![
            ("a".into(), "completed".into()),
            ("b".into(), "queued".into()),
            ("c".into(), "queued".into())
        ]
    );
}

#[tokio::test]
async fn later_duplicate_within_one_batch_wins() {
    let lake = Lake::open("memory://").expect("open");
    let batch = tasks_batch(&[task("a", 1, "queued"), task("a", 1, "abandoned")]).expect("batch");
    assert_eq!(
        lake.upsert_partition(Table::Tasks, ORG, day(), batch)
            .await
            .expect("upsert"),
        1
    );
    let back = lake
        .read_partition(Table::Tasks, ORG, day())
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        ids_and_status(&back),
        vec![("a".into(), "abandoned".into())]
    );
}

#[tokio::test]
async fn captures_are_keyed_by_task_and_recording() {
    let lake = Lake::open("memory://").expect("open");
    let cap = |task: &str, rec: &str, start: i64| CaptureRow {
        task_id: task.into(),
        recording_id: rec.into(),
        start_time: Some(start),
        stop_time: Some(start + 10),
        ..CaptureRow::default()
    };
    let rows = [cap("t1", "r1", 5), cap("t1", "r2", 1), cap("t2", "r1", 0)];
    let n = lake
        .upsert_partition(
            Table::Captures,
            ORG,
            day(),
            captures_batch(&rows).expect("batch"),
        )
        .await;
    assert_eq!(n.expect("upsert"), 3);
    let again = lake
        .upsert_partition(
            Table::Captures,
            ORG,
            day(),
            captures_batch(&rows[..1]).expect("batch"),
        )
        .await;
    assert_eq!(again.expect("upsert"), 3);
}

#[tokio::test]
async fn org_id_that_could_escape_the_partition_is_rejected() {
    let lake = Lake::open("memory://").expect("open");
    for bad in ["../other", "a/b", "", "org id", "x\0"] {
        let batch = tasks_batch(&[task("a", 1, "queued")]).expect("batch");
        let err = lake
            .upsert_partition(Table::Tasks, bad, day(), batch)
            .await
            .expect_err(bad);
        assert!(matches!(err, LakeError::InvalidOrgId(_)), "{bad}: {err}");
        assert!(lake.read_partition(Table::Tasks, bad, day()).await.is_err());
    }
}

#[tokio::test]
async fn batch_with_another_schema_is_rejected() {
    let lake = Lake::open("memory://").expect("open");
    let captures = captures_batch(&[CaptureRow::default()]).expect("batch");
    let err = lake
        .upsert_partition(Table::Tasks, ORG, day(), captures)
        .await
        .expect_err("mismatch");
    assert!(matches!(err, LakeError::SchemaMismatch { .. }), "{err}");
}

#[tokio::test]
async fn empty_batch_writes_nothing() {
    let lake = Lake::open("memory://").expect("open");
    let n = lake
        .upsert_partition(Table::Tasks, ORG, day(), tasks_batch(&[]).expect("batch"))
        .await;
    assert_eq!(n.expect("upsert"), 0);
    assert!(
        lake.read_partition(Table::Tasks, ORG, day())
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test]
async fn local_file_is_in_hive_layout_and_readable_by_a_plain_parquet_reader() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(tmp.path().to_str().expect("utf8 path")).expect("open");
    let batch = tasks_batch(&[task("a", 1_709_600_000_000, "completed")]).expect("batch");
    lake.upsert_partition(Table::Tasks, ORG, day(), batch)
        .await
        .expect("upsert");

    let file = tmp
        .path()
        .join(format!("tasks/org_id={ORG}/date=2024-03-05/part-0.parquet"));
    let bytes = Bytes::from(std::fs::read(&file).expect("file exists at the Hive path"));

    // Footer: ZSTD, page index written, no partition columns, our metadata.
    let reader = SerializedFileReader::new(bytes.clone()).expect("parquet footer");
    let meta = reader.metadata();
    let columns = meta
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect::<Vec<_>>();
    assert!(
        !columns.iter().any(|c| c == "org_id" || c == "date"),
        "{columns:?}"
    );
    let rg = meta.row_group(0);
    assert!(matches!(rg.column(0).compression(), Compression::ZSTD(_)));
    assert!(
        rg.column(0).column_index_offset().is_some(),
        "page index written"
    );
    let kv = meta.file_metadata().key_value_metadata().expect("kv");
    assert!(
        kv.iter()
            .any(|k| k.key == "wxcc.table" && k.value.as_deref() == Some("tasks"))
    );

    // Arrow view of the file: standard types, times as ms UTC.
    let batches = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .expect("reader")
        .build()
        .expect("build");
    let batch = batches
        .into_iter()
        .next()
        .expect("one batch")
        .expect("decode");
    let created = batch.column_by_name("created_time").expect("created_time");
    assert_eq!(
        created.data_type(),
        &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
    );
    assert_eq!(
        created.as_primitive::<TimestampMillisecondType>().value(0),
        1_709_600_000_000
    );
    assert!(
        batch
            .column_by_name("last_updated_time")
            .expect("column")
            .is_null(0)
    );
    // Column descriptions from schemas/ travel in the file's Arrow schema.
    let schema = batch.schema();
    let described = schema.field_with_name("task_id").expect("task_id");
    assert_eq!(
        described
            .metadata()
            .get(crate::lake::schema::DESCRIPTION_KEY),
        Some(&Table::Tasks.def().columns[2].description),
    );
}

#[test]
fn partition_file_path_uses_iso_dates() {
    let p = partition_file(Table::Manifest, "abc-123", day()).expect("path");
    assert_eq!(p, "manifest/org_id=abc-123/date=2024-03-05/part-0.parquet");
}

// Schema evolution: files written by other wxcc versions (see the module docs).

/// `batch` with column `name` replaced by `column` (dropped when `None`), or with `column`
/// appended when `batch` has no `name`.
fn with_column(batch: &RecordBatch, name: &str, column: Option<(Field, ArrayRef)>) -> RecordBatch {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut arrays = batch.columns().to_vec();
    match (batch.schema().index_of(name).ok(), column) {
        (Some(i), Some((f, a))) => {
            fields[i] = f;
            arrays[i] = a;
        }
        (Some(i), None) => {
            fields.remove(i);
            arrays.remove(i);
        }
        (None, Some((f, a))) => {
            fields.push(f);
            arrays.push(a);
        }
        (None, None) => {}
    }
    RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), arrays).expect("batch")
}

/// Stores `batch` as the partition's file the way another wxcc version would write it, with
/// `version` as its footer schema version; returns the bytes.
async fn put_file(lake: &Lake, table: Table, batch: &RecordBatch, version: &str) -> Bytes {
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![KeyValue::new(
            SCHEMA_VERSION_KEY.to_string(),
            version.to_string(),
        )]))
        .build();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
    let bytes = Bytes::from(buf);
    let path = lake.path(&partition_file(table, ORG, day()).expect("path"));
    lake.store()
        .put(&path, PutPayload::from(bytes.clone()))
        .await
        .expect("put");
    bytes
}

/// The partition file as any Parquet reader sees it, and its footer schema version.
async fn raw_file(lake: &Lake, table: Table) -> (RecordBatch, String) {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file_bytes(lake, table).await).expect("reader");
    let version = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == SCHEMA_VERSION_KEY).cloned())
        .and_then(|k| k.value)
        .expect("version in footer");
    let schema = Arc::clone(builder.schema());
    let batches = builder
        .build()
        .expect("build")
        .collect::<std::result::Result<Vec<_>, _>>()
        .expect("decode");
    let batch = concat_batches(&schema, &batches).expect("concat");
    (batch, version)
}

fn names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

fn declared_names(table: Table) -> Vec<String> {
    table
        .def()
        .file_schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

#[tokio::test]
async fn newer_file_keeps_its_unknown_column_for_untouched_and_updated_rows() {
    let lake = Lake::open("memory://").expect("open");
    let def = Table::Tasks.def();
    let stored = tasks_batch(&[task("a", 1, "queued"), task("b", 2, "queued")]).expect("batch");
    let sentiment: ArrayRef = Arc::new(Float64Array::from(vec![0.25, 0.75]));
    let newer = with_column(
        &stored,
        "sentiment",
        Some((Field::new("sentiment", DataType::Float64, false), sentiment)),
    );
    let newer_version = (def.version + 1).to_string();
    put_file(&lake, Table::Tasks, &newer, &newer_version).await;

    let update = tasks_batch(&[task("a", 1, "completed"), task("c", 3, "queued")]).expect("batch");
    let n = lake
        .upsert_partition(Table::Tasks, ORG, day(), update)
        .await
        .expect("upsert");
    assert_eq!(n, 3);

    let (file, version) = raw_file(&lake, Table::Tasks).await;
    assert_eq!(
        version, newer_version,
        "the file still says which version made it"
    );
    let mut expected = declared_names(Table::Tasks);
    expected.push("sentiment".into());
    assert_eq!(
        names(&file),
        expected,
        "declared columns first, then the kept one"
    );
    assert_eq!(
        ids_and_status(&file),
        vec![
            ("a".into(), "completed".into()),
            ("b".into(), "queued".into()),
            ("c".into(), "queued".into())
        ]
    );
    let kept = file
        .column_by_name("sentiment")
        .expect("kept")
        .as_primitive::<Float64Type>();
    let values: Vec<Option<f64>> = (0..kept.len())
        .map(|i| kept.is_valid(i).then(|| kept.value(i)))
        .collect();
    assert_eq!(
        values,
        vec![Some(0.25), Some(0.75), None],
        "a updated, b untouched, c new"
    );

    // This binary's own view has exactly its declared columns.
    let view = lake
        .read_partition(Table::Tasks, ORG, day())
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(view.schema(), def.file_schema());
}

/// A stored file is read in several batches and merged from them without concatenating:
/// every row, and its unknown column, must still land in its place.
#[tokio::test]
async fn a_file_read_in_several_batches_merges_every_row_and_unknown_value() {
    let lake = Lake::open("memory://").expect("open");
    let def = Table::Tasks.def();
    let n = 3_000; // the reader yields batches of 1,024 rows
    let rows: Vec<TaskRow> = (0..n)
        .map(|i| task(&format!("t{i:05}"), i64::from(i), "queued"))
        .collect();
    let stored = tasks_batch(&rows).expect("batch");
    let score: ArrayRef = Arc::new(Float64Array::from(
        (0..n).map(f64::from).collect::<Vec<_>>(),
    ));
    let newer = with_column(
        &stored,
        "score",
        Some((Field::new("score", DataType::Float64, false), score)),
    );
    put_file(&lake, Table::Tasks, &newer, &(def.version + 1).to_string()).await;

    // Replace one row of each batch, add one new key.
    let update = tasks_batch(&[
        task("t00010", 10, "completed"),
        task("t01500", 1_500, "completed"),
        task("t02999", 2_999, "completed"),
        task("t99999", 99_999, "queued"),
    ])
    .expect("batch");
    let total = lake
        .upsert_partition(Table::Tasks, ORG, day(), update)
        .await
        .expect("upsert");
    assert_eq!(total, 3_001);

    let (file, _) = raw_file(&lake, Table::Tasks).await;
    let got = ids_and_status(&file);
    assert_eq!(got.len(), 3_001);
    let completed: Vec<&str> = got
        .iter()
        .filter(|(_, s)| s == "completed")
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(completed, ["t00010", "t01500", "t02999"]);
    let score = file
        .column_by_name("score")
        .expect("kept")
        .as_primitive::<Float64Type>();
    for (i, (id, _)) in got.iter().enumerate() {
        let want = id[1..].parse::<f64>().ok().filter(|&v| v < f64::from(n));
        let have = score.is_valid(i).then(|| score.value(i));
        assert_eq!(have, want, "{id}");
    }
}

/// Tasks "a" (queued) and "b" (completed) in a file of the schema version before this one,
/// which had no `reason_code` column.
async fn put_old_tasks_without_reason_code(lake: &Lake) {
    let current = tasks_batch(&[task("a", 1, "queued"), task("b", 2, "completed")]).expect("batch");
    let old = with_column(&current, "reason_code", None);
    let version = Table::Tasks.def().version.saturating_sub(1).to_string();
    put_file(lake, Table::Tasks, &old, &version).await;
}

#[tokio::test]
async fn old_file_missing_a_nullable_column_gets_nulls_and_keeps_every_row() {
    let lake = Lake::open("memory://").expect("open");
    let def = Table::Tasks.def();
    put_old_tasks_without_reason_code(&lake).await;

    let new_row = TaskRow {
        reason_code: Some("no-answer".into()),
        ..task("c", 3, "abandoned")
    };
    let n = lake
        .upsert_partition(
            Table::Tasks,
            ORG,
            day(),
            tasks_batch(&[new_row]).expect("batch"),
        )
        .await
        .expect("upsert");
    assert_eq!(n, 3);

    let (file, version) = raw_file(&lake, Table::Tasks).await;
    assert_eq!(version, def.version.to_string());
    assert_eq!(names(&file), declared_names(Table::Tasks));
    assert_eq!(
        ids_and_status(&file),
        vec![
            ("a".into(), "queued".into()),
            ("b".into(), "completed".into()),
            ("c".into(), "abandoned".into())
        ]
    );
    let reason = file
        .column_by_name("reason_code")
        .expect("reason_code")
        .as_string::<i32>();
    let values: Vec<Option<&str>> = reason.iter().collect();
    assert_eq!(values, vec![None, None, Some("no-answer")]);
}

#[tokio::test]
async fn old_column_type_is_converted_when_every_value_converts() {
    let lake = Lake::open("memory://").expect("open");
    let stored = tasks_batch(&[task("a", 1, "queued"), task("b", 2, "queued")]).expect("batch");
    let text: ArrayRef = Arc::new(StringArray::from(vec![Some("true"), None]));
    let old = with_column(
        &stored,
        "capture_requested",
        Some((Field::new("capture_requested", DataType::Utf8, true), text)),
    );
    put_file(&lake, Table::Tasks, &old, "0").await;
    let back = lake
        .read_partition(Table::Tasks, ORG, day())
        .await
        .expect("read")
        .expect("exists");
    let flags: Vec<Option<bool>> = back
        .column_by_name("capture_requested")
        .expect("column")
        .as_boolean()
        .iter()
        .collect();
    assert_eq!(flags, vec![Some(true), None]);
}

/// Upserting into the stored file fails with `IncompatibleFile` naming the file and `column`,
/// and leaves the file's bytes as they were; reading it fails the same way.
async fn assert_refused(
    lake: &Lake,
    table: Table,
    stored: &Bytes,
    column: &str,
    batch: RecordBatch,
) {
    let err = lake
        .upsert_partition(table, ORG, day(), batch)
        .await
        .expect_err("refused");
    let msg = err.to_string();
    assert!(matches!(err, LakeError::IncompatibleFile { .. }), "{msg}");
    let file = partition_file(table, ORG, day()).expect("path");
    assert!(msg.contains(&file), "names the file: {msg}");
    assert!(
        msg.contains(&format!("`{column}`")),
        "names the column: {msg}"
    );
    assert_eq!(&file_bytes(lake, table).await, stored, "file unchanged");
    let read = lake.read_partition(table, ORG, day()).await;
    assert!(
        matches!(read, Err(LakeError::IncompatibleFile { .. })),
        "{read:?}"
    );
}

#[tokio::test]
async fn value_that_does_not_convert_is_refused_not_nulled() {
    let lake = Lake::open("memory://").expect("open");
    let stored = tasks_batch(&[task("a", 1, "queued"), task("b", 2, "queued")]).expect("batch");
    let text: ArrayRef = Arc::new(StringArray::from(vec!["true", "maybe"]));
    let old = with_column(
        &stored,
        "capture_requested",
        Some((Field::new("capture_requested", DataType::Utf8, true), text)),
    );
    let bytes = put_file(&lake, Table::Tasks, &old, "0").await;
    let update = tasks_batch(&[task("c", 3, "queued")]).expect("batch");
    assert_refused(&lake, Table::Tasks, &bytes, "capture_requested", update).await;
}

#[tokio::test]
async fn number_that_a_conversion_would_truncate_is_refused() {
    let lake = Lake::open("memory://").expect("open");
    let cap = |rec: &str| CaptureRow {
        task_id: "t1".into(),
        recording_id: rec.into(),
        start_time: Some(0),
        stop_time: Some(1000),
        ..CaptureRow::default()
    };
    let stored = captures_batch(&[cap("r1"), cap("r2")]).expect("batch");
    let floats: ArrayRef = Arc::new(Float64Array::from(vec![1000.0, 1500.5]));
    let old = with_column(
        &stored,
        "duration_ms",
        Some((Field::new("duration_ms", DataType::Float64, true), floats)),
    );
    let bytes = put_file(&lake, Table::Captures, &old, "0").await;
    let update = captures_batch(&[cap("r3")]).expect("batch");
    assert_refused(&lake, Table::Captures, &bytes, "duration_ms", update).await;
}

#[tokio::test]
async fn newer_file_with_a_known_column_of_another_type_is_refused() {
    let lake = Lake::open("memory://").expect("open");
    let def = Table::Tasks.def();
    let stored = tasks_batch(&[task("a", 1, "queued")]).expect("batch");
    // Every value would convert; a newer version changed the type, so it is not ours to undo.
    let text: ArrayRef = Arc::new(StringArray::from(vec!["true"]));
    let newer = with_column(
        &stored,
        "capture_requested",
        Some((Field::new("capture_requested", DataType::Utf8, true), text)),
    );
    let bytes = put_file(&lake, Table::Tasks, &newer, &(def.version + 1).to_string()).await;
    let update = tasks_batch(&[task("b", 2, "queued")]).expect("batch");
    assert_refused(&lake, Table::Tasks, &bytes, "capture_requested", update).await;
}

#[tokio::test]
async fn file_missing_a_required_column_is_refused() {
    let lake = Lake::open("memory://").expect("open");
    let stored = tasks_batch(&[task("a", 1, "queued")]).expect("batch");
    let old = with_column(&stored, "created_time", None);
    let bytes = put_file(&lake, Table::Tasks, &old, "0").await;
    let update = tasks_batch(&[task("b", 2, "queued")]).expect("batch");
    assert_refused(&lake, Table::Tasks, &bytes, "created_time", update).await;
}

#[tokio::test]
async fn unreadable_schema_version_is_refused() {
    let lake = Lake::open("memory://").expect("open");
    let stored = tasks_batch(&[task("a", 1, "queued")]).expect("batch");
    let bytes = put_file(&lake, Table::Tasks, &stored, "2.0-beta").await;
    let err = lake
        .upsert_partition(
            Table::Tasks,
            ORG,
            day(),
            tasks_batch(&[task("b", 2, "queued")]).expect("batch"),
        )
        .await
        .expect_err("refused");
    assert!(matches!(err, LakeError::UnreadableVersion { .. }), "{err}");
    assert!(err.to_string().contains("2.0-beta"), "{err}");
    assert_eq!(file_bytes(&lake, Table::Tasks).await, bytes);
}

/// The query layer lives elsewhere, but whether it can read partitions written by different
/// versions side by side is a property of the files this module writes.
#[tokio::test]
async fn sql_reads_partitions_with_different_column_sets() {
    use crate::query::{OutputFormat, QuerySession, format_batches};
    let lake = Lake::open("memory://").expect("open");
    // Day 1: written by a newer version, with an extra column.
    let first = tasks_batch(&[TaskRow {
        reason_code: Some("busy".into()),
        ..task("a", 1, "queued")
    }])
    .expect("batch");
    let extra: ArrayRef = Arc::new(Float64Array::from(vec![0.5]));
    let newer = with_column(
        &first,
        "sentiment",
        Some((Field::new("sentiment", DataType::Float64, true), extra)),
    );
    put_file(&lake, Table::Tasks, &newer, "99").await;
    // Day 2: written by an older version, without `reason_code`.
    let second = with_column(
        &tasks_batch(&[task("b", 2, "completed")]).expect("batch"),
        "reason_code",
        None,
    );
    let next_day = day().succ_opt().expect("next day");
    let props = writer_properties(Table::Tasks.def());
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, second.schema(), Some(props)).expect("writer");
    writer.write(&second).expect("write");
    writer.close().expect("close");
    let path = lake.path(&partition_file(Table::Tasks, ORG, next_day).expect("path"));
    lake.store()
        .put(&path, PutPayload::from(buf))
        .await
        .expect("put");

    let session = QuerySession::open(&lake).await.expect("session");
    let batches = session
        .sql("SELECT task_id, status, reason_code, date FROM tasks ORDER BY task_id")
        .await
        .expect("query runs");
    let text = format_batches(&batches, OutputFormat::Csv).expect("csv");
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        vec![
            "task_id,status,reason_code,date",
            "a,queued,busy,2024-03-05",
            "b,completed,,2024-03-06"
        ]
    );
}

/// Names of the partition's files, in order.
async fn file_names(lake: &Lake, table: Table) -> Vec<String> {
    let dir = lake.path(&partition_dir(table, ORG, day()).expect("dir"));
    let mut names: Vec<String> = lake
        .store()
        .list_with_delimiter(Some(&dir))
        .await
        .expect("list")
        .objects
        .into_iter()
        .filter_map(|m| m.location.filename().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Task ids per file, read with a plain Parquet reader (what another engine sees).
async fn ids_per_file(lake: &Lake, table: Table) -> Vec<Vec<String>> {
    let dir = partition_dir(table, ORG, day()).expect("dir");
    let mut out = Vec::new();
    for name in file_names(lake, table).await {
        let bytes = lake
            .store()
            .get(&lake.path(&format!("{dir}/{name}")))
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .expect("parquet")
            .build()
            .expect("reader");
        let mut ids = Vec::new();
        for batch in reader {
            let batch = batch.expect("batch");
            ids.extend(ids_and_status(&batch).into_iter().map(|(id, _)| id));
        }
        out.push(ids);
    }
    out
}

#[tokio::test]
async fn a_busy_day_is_spread_over_files_of_bounded_size() {
    let lake = Lake::open("memory://").expect("open").with_max_file_rows(2);
    let rows: Vec<TaskRow> = ["e", "d", "c", "b", "a"]
        .iter()
        .enumerate()
        .map(|(i, id)| task(id, 10 - i as i64, "queued"))
        .collect();
    let n = lake
        .upsert_partition(Table::Tasks, ORG, day(), tasks_batch(&rows).expect("batch"))
        .await
        .expect("upsert");
    assert_eq!(n, 5);
    assert_eq!(
        file_names(&lake, Table::Tasks).await,
        ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    );
    // Sorted by created_time within and across the files one upsert writes.
    assert_eq!(
        ids_per_file(&lake, Table::Tasks).await,
        [vec!["a", "b"], vec!["c", "d"], vec!["e"]]
    );
    let back = lake
        .read_partition(Table::Tasks, ORG, day())
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(back.num_rows(), 5);
}

#[tokio::test]
async fn a_replaced_key_is_rewritten_in_its_own_file_and_new_keys_fill_the_last() {
    let lake = Lake::open("memory://").expect("open").with_max_file_rows(2);
    let first: Vec<TaskRow> = (0..3)
        .map(|i| task(&format!("t{i}"), i, "queued"))
        .collect();
    lake.upsert_partition(
        Table::Tasks,
        ORG,
        day(),
        tasks_batch(&first).expect("batch"),
    )
    .await
    .expect("first");
    // t0 changes (it lives in part-0); t3 fills part-1's last place; t4 and t5 start part-2.
    let update = [
        task("t0", 0, "completed"),
        task("t3", 3, "queued"),
        task("t4", 4, "queued"),
        task("t5", 5, "queued"),
    ];
    let n = lake
        .upsert_partition(
            Table::Tasks,
            ORG,
            day(),
            tasks_batch(&update).expect("batch"),
        )
        .await
        .expect("update");
    assert_eq!(n, 6);
    assert_eq!(
        ids_per_file(&lake, Table::Tasks).await,
        [vec!["t0", "t1"], vec!["t2", "t3"], vec!["t4", "t5"]]
    );
    let back = lake
        .read_partition(Table::Tasks, ORG, day())
        .await
        .expect("read")
        .expect("exists");
    let all = ids_and_status(&back);
    assert_eq!(all.len(), 6, "each key once: {all:?}");
    assert!(all.contains(&("t0".into(), "completed".into())), "{all:?}");
    // A file holding no replaced key, and with no room for new ones, is not rewritten.
    let part = |n: u32| {
        lake.path(&format!(
            "{}/part-{n}.parquet",
            partition_dir(Table::Tasks, ORG, day()).expect("dir")
        ))
    };
    let tags = || async {
        let mut tags = Vec::new();
        for n in 0..3 {
            tags.push(lake.store().head(&part(n)).await.expect("head").e_tag);
        }
        tags
    };
    let before = tags().await;
    let again = lake
        .upsert_partition(
            Table::Tasks,
            ORG,
            day(),
            tasks_batch(&[task("t2", 2, "abandoned")]).expect("batch"),
        )
        .await
        .expect("again");
    assert_eq!(again, 6);
    let after = tags().await;
    assert_eq!(after[0], before[0], "part-0 untouched");
    assert_ne!(after[1], before[1], "part-1 holds t2");
    assert_eq!(after[2], before[2], "part-2 untouched");
}

#[tokio::test]
async fn files_that_are_not_data_files_are_left_alone() {
    let lake = Lake::open("memory://").expect("open");
    let dir = partition_dir(Table::Tasks, ORG, day()).expect("dir");
    for name in ["_SUCCESS", "part-0.parquet.tmp", "part-x.parquet"] {
        lake.store()
            .put(&lake.path(&format!("{dir}/{name}")), PutPayload::from("x"))
            .await
            .expect("put");
    }
    lake.upsert_partition(
        Table::Tasks,
        ORG,
        day(),
        tasks_batch(&[task("a", 1, "queued")]).expect("batch"),
    )
    .await
    .expect("upsert ignores them");
    let back = lake
        .read_partition(Table::Tasks, ORG, day())
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(back.num_rows(), 1);
}

#[tokio::test]
async fn sql_reads_every_file_of_a_busy_day_once() {
    use crate::query::{OutputFormat, QuerySession, format_batches};
    let lake = Lake::open("memory://").expect("open").with_max_file_rows(3);
    let rows: Vec<TaskRow> = (0..10)
        .map(|i| task(&format!("t{i:02}"), i, "queued"))
        .collect();
    lake.upsert_partition(Table::Tasks, ORG, day(), tasks_batch(&rows).expect("batch"))
        .await
        .expect("upsert");
    lake.upsert_partition(
        Table::Tasks,
        ORG,
        day(),
        tasks_batch(&[task("t04", 4, "completed")]).expect("batch"),
    )
    .await
    .expect("update");
    let session = QuerySession::open(&lake).await.expect("session");
    let batches = session
        .sql("SELECT count(*) AS n, count(DISTINCT task_id) AS ids, sum(CASE WHEN status = 'completed' THEN 1 ELSE 0 END) AS done FROM tasks")
        .await
        .expect("query runs");
    let text = format_batches(&batches, OutputFormat::Csv).expect("csv");
    assert_eq!(text.lines().nth(1), Some("10,10,1"), "{text}");
}

#[tokio::test]
async fn reading_columns_returns_only_them_for_every_file_of_a_busy_day() {
    let lake = Lake::open("memory://").expect("open").with_max_file_rows(2);
    upsert_completed_tasks(&lake, 5).await;
    let batches = lake
        .read_partition_columns(Table::Tasks, ORG, day(), &["task_id", "created_time"])
        .await
        .expect("read");
    assert_eq!(batches.len(), 3, "three small files, one reader batch each");
    let mut ids = Vec::new();
    for b in &batches {
        assert_eq!(names(b), vec!["task_id", "created_time"]);
        let declared = Table::Tasks.def().file_schema();
        assert_eq!(
            b.schema().field(1).data_type(),
            declared
                .field_with_name("created_time")
                .expect("declared")
                .data_type()
        );
        ids.extend(
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|v| v.expect("id").to_string()),
        );
    }
    assert_eq!(ids, vec!["t0", "t1", "t2", "t3", "t4"]);
    assert!(
        lake.read_partition_columns(Table::Captures, ORG, day(), &["task_id"])
            .await
            .expect("read")
            .is_empty()
    );
}

#[tokio::test]
async fn reading_a_column_an_old_file_lacks_gives_nulls_and_an_undeclared_one_is_refused() {
    let lake = Lake::open("memory://").expect("open");
    put_old_tasks_without_reason_code(&lake).await;
    let batches = lake
        .read_partition_columns(Table::Tasks, ORG, day(), &["reason_code"])
        .await
        .expect("read");
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].num_rows(), 2);
    assert_eq!(batches[0].column(0).null_count(), 2);

    let err = lake
        .read_partition_columns(Table::Tasks, ORG, day(), &["no_such_column"])
        .await
        .expect_err("undeclared");
    assert!(err.to_string().contains("no_such_column"), "{err}");
}

#[tokio::test]
async fn visiting_a_partition_hands_over_each_file_before_reading_the_next() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(tmp.path().to_str().expect("utf8"))
        .expect("open")
        .with_max_file_rows(2);
    upsert_completed_tasks(&lake, 5).await;
    let dir = tmp
        .path()
        .join(format!("tasks/org_id={ORG}/date={}", day()));
    // Files removed while the first is being handed over are never read: nothing is fetched
    // ahead, so a caller holds one file's batches at a time.
    let mut seen = Vec::new();
    let visit = |batch: RecordBatch| {
        for n in [1, 2] {
            let _ = std::fs::remove_file(dir.join(format!("part-{n}.parquet")));
        }
        seen.push(batch.num_rows());
    };
    lake.visit_partition_files(Table::Tasks, ORG, day(), None, visit)
        .await
        .expect("visit");
    assert_eq!(seen, [2]);

    // The same for projected reads (the removed files are written again first).
    upsert_completed_tasks(&lake, 5).await;
    assert!(dir.join("part-2.parquet").exists());
    let mut projected = Vec::new();
    let visit = |batch: RecordBatch| {
        for n in [1, 2] {
            let _ = std::fs::remove_file(dir.join(format!("part-{n}.parquet")));
        }
        projected.push(batch.num_rows());
    };
    lake.visit_partition_columns(Table::Tasks, ORG, day(), &["task_id"], visit)
        .await
        .expect("visit");
    assert_eq!(projected, [2]);
}

#[tokio::test]
async fn visiting_the_rows_of_some_tasks_reads_only_theirs_from_every_file() {
    let lake = Lake::open("memory://").expect("open").with_max_file_rows(3);
    upsert_completed_tasks(&lake, 8).await;
    // t0..t2 in part-0, t3..t5 in part-1 (none wanted), t6, t7 in part-2.
    let wanted: HashSet<String> = ["t1", "t7", "t2", "nowhere"]
        .into_iter()
        .map(String::from)
        .collect();
    let mut got = Vec::new();
    lake.visit_partition_files(Table::Tasks, ORG, day(), Some(&wanted), |b| {
        assert_eq!(b.schema(), Table::Tasks.def().file_schema());
        let ids = b.column(0).as_string::<i32>();
        let created = b
            .column_by_name("created_time")
            .expect("declared")
            .as_primitive::<TimestampMillisecondType>();
        for i in 0..b.num_rows() {
            got.push((ids.value(i).to_string(), created.value(i)));
        }
    })
    .await
    .expect("visit");
    got.sort();
    assert_eq!(
        got,
        [("t1".to_string(), 1), ("t2".into(), 2), ("t7".into(), 7)]
    );
}

/// Upserts completed tasks `t0`..`t{n-1}`, created at 0..n ms, into [`day`].
async fn upsert_completed_tasks(lake: &Lake, n: i64) {
    let rows: Vec<TaskRow> = (0..n)
        .map(|i| task(&format!("t{i}"), i, "completed"))
        .collect();
    lake.upsert_partition(Table::Tasks, ORG, day(), tasks_batch(&rows).expect("batch"))
        .await
        .expect("upsert");
}

/// A put killed between object_store's staging write and its rename leaves
/// `part-N.parquet#K` in the partition: the next upsert removes it, since pyarrow and Spark
/// would read it as a data file.
#[tokio::test]
async fn the_next_upsert_removes_what_a_killed_put_left_in_a_local_partition() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(tmp.path().to_str().expect("utf8")).expect("lake");
    let batch = tasks_batch(&[task("t1", 1_709_600_000_000, "completed")]).expect("batch");
    lake.upsert_partition(Table::Tasks, ORG, day(), batch.clone())
        .await
        .expect("upsert");
    let dir = tmp
        .path()
        .join(partition_dir(Table::Tasks, ORG, day()).expect("dir"));
    let staged = [dir.join("part-0.parquet#3"), dir.join("part-1.parquet#12")];
    for f in &staged {
        std::fs::write(f, b"PAR1 torn").expect("leftover");
    }
    let other = dir.join("notes.txt");
    std::fs::write(&other, b"not ours").expect("other");
    lake.upsert_partition(Table::Tasks, ORG, day(), batch)
        .await
        .expect("upsert");
    for f in &staged {
        assert!(!f.exists(), "{} is left", f.display());
    }
    assert!(other.exists(), "only staging files of parts are removed");
    assert!(dir.join("part-0.parquet").exists());
}
