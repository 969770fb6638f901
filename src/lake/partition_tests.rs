//! Tests for partition upserts (kept apart so `partition.rs` stays readable).

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
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
}

#[test]
fn partition_file_path_uses_iso_dates() {
    let p = partition_file(Table::Manifest, "abc-123", day()).expect("path");
    assert_eq!(p, "manifest/org_id=abc-123/date=2024-03-05/part-0.parquet");
}
