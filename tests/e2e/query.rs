//! `wxcc sql`, `wxcc query` and `wxcc export` on a small lake written with the lake API, and the
//! same lake read by other engines (pyarrow, DuckDB and Spark) through Python.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use wxcc::lake::{
    AudioFactsRow, CaptureRow, DerivativeRow, Lake, ManifestRow, Table, TaskRow, audio_facts_batch,
    captures_batch, derivatives_batch, manifest_batch, tasks_batch,
};

use crate::s3::test_python;
use crate::util::{text, wxcc};

const ORG: &str = "0a1b2c3d-0000-4000-8000-000000000001";
const USAGE: i32 = 2;

fn ms(date: &str, hour: u32) -> i64 {
    NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .expect("date")
        .and_hms_opt(hour, 0, 0)
        .expect("time")
        .and_utc()
        .timestamp_millis()
}

/// Two days, three calls per day on two queues, one main recording each (stored), facts and a
/// 16 kHz mono derivative for all.
async fn write_lake(dir: &Path) -> Lake {
    let lake = Lake::open(dir.to_str().expect("utf8")).expect("lake");
    for date in ["2026-01-05", "2026-01-06"] {
        let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").expect("date");
        let (mut tasks, mut caps, mut man, mut facts) = (vec![], vec![], vec![], vec![]);
        let mut derived = vec![];
        for (i, queue) in ["Support", "Sales", "Support"].into_iter().enumerate() {
            let hour = 9 + u32::try_from(i).expect("small");
            let id = format!("task-{date}-{i}");
            let rec = format!("rec-{date}-{i}");
            tasks.push(TaskRow {
                task_id: id.clone(),
                channel_type: Some("telephony".into()),
                status: Some(if i == 1 { "abandoned" } else { "completed" }.into()),
                created_time: ms(date, hour),
                capture_requested: Some(true),
                queue_name: Some(queue.into()),
                owner_name: Some("Alice".into()),
                ..TaskRow::default()
            });
            caps.push(CaptureRow {
                task_id: id.clone(),
                recording_id: rec.clone(),
                call_type: Some("main".into()),
                start_time: Some(ms(date, hour)),
                stop_time: Some(ms(date, hour) + 60_000),
                channel1: Some("Agent".into()),
                channel2: Some("Caller".into()),
                participants: vec!["agent-1".into()],
                ..CaptureRow::default()
            });
            man.push(ManifestRow {
                task_id: id.clone(),
                recording_id: rec.clone(),
                object_uri: lake.uri(&lake.path(&format!("audio/{ORG}/{id}/{rec}.wav"))),
                size_bytes: Some(960_044),
                sha256: Some("cd".repeat(32)),
                content_type: Some("audio/wav".into()),
                status: "stored".into(),
                error: None,
            });
            derived.push(DerivativeRow {
                task_id: id.clone(),
                recording_id: rec.clone(),
                kind: "mono16k".into(),
                object_uri: lake.uri(&lake.path(&format!("audio/{ORG}/{id}/{rec}.mono16k.wav"))),
                status: "ok".into(),
                sample_rate: Some(16_000),
                channels: Some(1),
                duration_ms: Some(60_000),
                size_bytes: Some(1_920_044),
                sha256: Some("ef".repeat(32)),
                source_sha256: Some("cd".repeat(32)),
                ..DerivativeRow::default()
            });
            facts.push(AudioFactsRow {
                task_id: id,
                recording_id: rec,
                status: "ok".into(),
                sample_rate: Some(8000),
                channels: Some(2),
                duration_ms: Some(60_000),
                expected_duration_ms: Some(60_000),
                channel1_label: Some("Agent".into()),
                channel2_label: Some("Caller".into()),
                ch1_talk_ms: Some(20_000),
                ch2_talk_ms: Some(30_000),
                ch1_rms_dbfs: Some(-21.5),
                ..AudioFactsRow::default()
            });
        }
        let batches = [
            (Table::Tasks, tasks_batch(&tasks)),
            (Table::Captures, captures_batch(&caps)),
            (Table::Manifest, manifest_batch(&man)),
            (Table::AudioFacts, audio_facts_batch(&facts)),
            (Table::Derivatives, derivatives_batch(&derived)),
        ];
        for (table, batch) in batches {
            lake.upsert_partition(table, ORG, d, batch.expect("batch"))
                .await
                .expect("upsert");
        }
    }
    lake
}

struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

async fn run(dir: &Path, args: &[&str]) -> Run {
    let lake = dir.join("lake");
    let mut all = args.to_vec();
    all.extend(["--data", lake.to_str().expect("utf8")]);
    let out = wxcc(&all, &HashMap::new(), dir).await;
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: text(&out.stderr),
    }
}

async fn ok(dir: &Path, args: &[&str]) -> String {
    let r = run(dir, args).await;
    assert_eq!(r.code, Some(0), "{args:?}\nstderr: {}", r.stderr);
    text(&r.stdout)
}

async fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write_lake(&dir.path().join("lake")).await;
    dir
}

fn parquet_rows(bytes: Vec<u8>) -> usize {
    ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
        .expect("valid parquet")
        .build()
        .expect("reader")
        .map(|b| b.expect("batch").num_rows())
        .sum()
}

const PER_QUEUE: &str =
    "SELECT queue_name, count(*) AS n FROM tasks GROUP BY queue_name ORDER BY queue_name";

#[tokio::test]
async fn sql_prints_each_text_format() {
    let dir = setup().await;
    let d = dir.path();
    let table = ok(d, &["sql", PER_QUEUE]).await;
    assert!(
        table.contains("| queue_name |") && table.contains("| Support    | 4 |"),
        "{table}"
    );
    let csv = ok(d, &["sql", PER_QUEUE, "--format", "csv"]).await;
    assert_eq!(csv, "queue_name,n\nSales,2\nSupport,4\n");
    let json: serde_json::Value =
        serde_json::from_str(&ok(d, &["sql", PER_QUEUE, "--format", "json"]).await).expect("json");
    assert_eq!(
        json,
        serde_json::json!([{"queue_name": "Sales", "n": 2}, {"queue_name": "Support", "n": 4}])
    );
    let ndjson = ok(d, &["sql", PER_QUEUE, "--format", "ndjson"]).await;
    let lines: Vec<serde_json::Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).expect("one object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["queue_name"], "Support");
}

#[tokio::test]
async fn sql_writes_parquet_to_a_file_or_a_pipe_and_csv_to_a_file() {
    let dir = setup().await;
    let d = dir.path();
    let out = d.join("out/result.parquet");
    ok(
        d,
        &[
            "sql",
            "SELECT * FROM recordings",
            "--format",
            "parquet",
            "--output",
            out.to_str().expect("utf8"),
        ],
    )
    .await;
    assert_eq!(parquet_rows(std::fs::read(&out).expect("written")), 6);
    // Standard output is a pipe here, so Parquet may go there.
    let piped = run(d, &["sql", "SELECT * FROM tasks", "--format", "parquet"]).await;
    assert_eq!(piped.code, Some(0), "{}", piped.stderr);
    let schema = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(piped.stdout.clone()))
        .expect("valid parquet")
        .schema()
        .clone();
    let task_id = schema.field_with_name("task_id").expect("task_id");
    assert_eq!(
        task_id.data_type(),
        &arrow::datatypes::DataType::Utf8,
        "plain strings for every reader"
    );
    assert_eq!(parquet_rows(piped.stdout), 6);
    let csv = d.join("result.csv");
    let printed = ok(
        d,
        &[
            "sql",
            PER_QUEUE,
            "--format",
            "csv",
            "--output",
            csv.to_str().expect("utf8"),
        ],
    )
    .await;
    assert!(printed.is_empty(), "results go to the file only: {printed}");
    assert_eq!(
        std::fs::read_to_string(&csv).expect("csv"),
        "queue_name,n\nSales,2\nSupport,4\n"
    );
}

#[tokio::test]
async fn explain_with_a_date_filter_lists_only_that_partitions_file() {
    let dir = setup().await;
    let plan = ok(
        d(&dir),
        &[
            "sql",
            "EXPLAIN SELECT * FROM recordings WHERE date = '2026-01-06'",
            "--format",
            "csv",
        ],
    )
    .await;
    assert!(
        plan.contains("manifest/org_id=") && plan.contains("date=2026-01-06/part-0.parquet"),
        "{plan}"
    );
    assert!(
        !plan.contains("date=2026-01-05"),
        "other day not pruned: {plan}"
    );
}

fn d(dir: &tempfile::TempDir) -> &Path {
    dir.path()
}

#[tokio::test]
async fn query_list_names_each_query_with_its_description_and_parameters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = wxcc(&["query", "list"], &HashMap::new(), dir.path()).await;
    assert_eq!(out.status.code(), Some(0));
    let list = text(&out.stdout);
    for q in wxcc::query::saved_queries() {
        assert!(
            list.contains(q.name) && list.contains(q.description),
            "{}",
            q.name
        );
    }
    assert!(
        list.contains("--param since=<DATE>  default 1970-01-01"),
        "{list}"
    );
}

/// `wxcc query run recordings_to_transcribe --format csv` with each of `params` as a `--param`.
async fn to_transcribe(dir: &Path, params: &[&str]) -> String {
    let mut args = vec![
        "query",
        "run",
        "recordings_to_transcribe",
        "--format",
        "csv",
    ];
    for p in params {
        args.extend(["--param", p]);
    }
    ok(dir, &args).await
}

#[tokio::test]
async fn query_run_binds_parameters_and_a_hostile_value_matches_nothing() {
    let dir = setup().await;
    let d = d(&dir);
    let all = to_transcribe(d, &[]).await;
    assert_eq!(all.lines().count(), 7, "{all}");
    let some = to_transcribe(d, &["since=2026-01-06", "queue=Support"]).await;
    assert_eq!(some.lines().count(), 3, "{some}");
    let hostile = to_transcribe(d, &["queue=x'; DROP TABLE tasks; --"]).await;
    assert_eq!(hostile.lines().count(), 1, "only the header: {hostile}");
    // `sql @name` still runs saved queries, with the same parameters.
    let at = ok(
        d,
        &[
            "sql",
            "@recordings_to_transcribe",
            "--format",
            "csv",
            "--param",
            "since=2026-01-06",
        ],
    )
    .await;
    assert_eq!(at.lines().count(), 4, "{at}");
    assert_eq!(
        ok(
            d,
            &["sql", "SELECT count(*) AS n FROM tasks", "--format", "csv"]
        )
        .await,
        "n\n6\n"
    );
}

#[tokio::test]
async fn bad_parameters_and_unknown_queries_are_usage_errors() {
    let dir = setup().await;
    let d = d(&dir);
    for (args, needle) in [
        (
            vec![
                "query",
                "run",
                "recordings_to_transcribe",
                "--param",
                "since=yesterday",
            ],
            "expected a DATE",
        ),
        (
            vec![
                "query",
                "run",
                "recordings_to_transcribe",
                "--param",
                "colour=blue",
            ],
            "unknown parameter `colour`",
        ),
        (
            vec!["query", "run", "no_such_query"],
            "available: recordings_to_transcribe",
        ),
        (
            vec!["export", "--sign", "1h"],
            "pre-signed URLs need an S3, GCS or Azure store",
        ),
        (
            vec!["export", "--sql", "SELECT task_id FROM tasks"],
            "org_id, recording_id",
        ),
    ] {
        let r = run(d, &args).await;
        assert_eq!(r.code, Some(USAGE), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
    }
}

#[tokio::test]
async fn export_writes_the_same_job_list_on_every_run() {
    let dir = setup().await;
    let d = d(&dir);
    let first = ok(d, &["export"]).await;
    let jobs: Vec<serde_json::Value> = first
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    assert_eq!(jobs.len(), 6);
    let job = &jobs[0];
    assert_eq!(job["task_id"], "task-2026-01-05-0");
    assert!(
        job["object_uri"]
            .as_str()
            .expect("uri")
            .ends_with("/rec-2026-01-05-0.wav")
    );
    // Agent on channel 1, caller on channel 2, for diarization.
    assert_eq!(
        (
            job["caller_channel"].as_i64(),
            job["agent_channel"].as_i64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(job["duration_ms"], 60_000);
    assert!(job["url"].is_null() && job["language"].is_null());
    assert_eq!(
        ok(d, &["export"]).await,
        first,
        "re-running gives the same list"
    );

    let sales = ok(
        d,
        &[
            "export",
            "--query",
            "recordings_to_transcribe",
            "--param",
            "queue=Sales",
            "--format",
            "csv",
        ],
    )
    .await;
    assert_eq!(sales.lines().count(), 3, "{sales}");
    let custom = ok(
        d,
        &[
            "export",
            "--sql",
            "SELECT org_id, task_id, recording_id FROM recordings WHERE date = '2026-01-06'",
            "--format",
            "csv",
        ],
    )
    .await;
    assert_eq!(custom.lines().count(), 4, "{custom}");
    let file = d.join("jobs.parquet");
    ok(
        d,
        &[
            "export",
            "--format",
            "parquet",
            "--output",
            file.to_str().expect("utf8"),
        ],
    )
    .await;
    assert_eq!(parquet_rows(std::fs::read(&file).expect("written")), 6);
}

/// A job list that leaves selected recordings out says how many and why, and exits 4 (partial),
/// so a transcription pipeline cannot take it for the whole selection.
#[tokio::test]
async fn an_export_that_leaves_recordings_out_says_so_and_exits_partial() {
    let dir = setup().await;
    let d = d(&dir);
    // The second day's derivatives are gone.
    let day = d.join(format!("lake/derivatives/org_id={ORG}/date=2026-01-06"));
    std::fs::remove_dir_all(&day).expect("remove a day of derivatives");
    let r = run(d, &["export", "--audio", "mono16k"]).await;
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    assert_eq!(text(&r.stdout).lines().count(), 3, "the first day's jobs");
    assert!(
        r.stderr
            .contains("3 of 6 selected recordings are not in the job list")
            && r.stderr.contains("3 have no current mono16k derivative"),
        "{}",
        r.stderr
    );
    // Three recordings the lake never stored, next to the six it did.
    let sql = "SELECT org_id, task_id, recording_id FROM recordings \
               UNION ALL SELECT org_id, task_id, 'rec-not-stored-' || task_id FROM recordings \
               WHERE date = '2026-01-05'";
    let r = run(d, &["export", "--sql", sql, "--format", "csv"]).await;
    assert_eq!(r.code, Some(4), "{}", r.stderr);
    assert_eq!(
        text(&r.stdout).lines().count(),
        7,
        "header and the six stored"
    );
    let short = r
        .stderr
        .lines()
        .find(|l| l.contains("not in the job list"))
        .unwrap_or_else(|| panic!("{}", r.stderr));
    assert!(
        short.contains("3 of 9 selected") && short.contains("have no stored audio"),
        "{short}"
    );
}

const READ_WITH_OTHER_ENGINES: &str = r#"
import json, sys
import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

root, spec = sys.argv[1], json.loads(sys.argv[2])
arrow_types = {
    "string": [pa.string(), pa.large_string(), pa.string_view()],
    "bool": [pa.bool_()],
    "int64": [pa.int64()],
    "float64": [pa.float64()],
    "timestamp_ms": [pa.timestamp("ms", tz="UTC")],
    "list<string>": [pa.list_(pa.string()), pa.list_(pa.large_string())],
}
duck_types = {
    "string": ["VARCHAR"],
    "bool": ["BOOLEAN"],
    "int64": ["BIGINT"],
    "float64": ["DOUBLE"],
    "timestamp_ms": ["TIMESTAMP WITH TIME ZONE"],
    "list<string>": ["VARCHAR[]"],
}
problems = []
for table in spec:
    name, rows, columns = table["name"], table["rows"], table["columns"]
    path = f"{root}/{name}"
    t = ds.dataset(path, format="parquet", partitioning="hive").to_table()
    if t.num_rows != rows:
        problems.append(f"pyarrow {name}: {t.num_rows} rows, expected {rows}")
    for col, typ in columns.items():
        if col in ("org_id", "date"):
            ok = col in t.schema.names
        else:
            ok = col in t.schema.names and t.schema.field(col).type in arrow_types[typ]
        if not ok:
            got = t.schema.field(col).type if col in t.schema.names else "missing"
            problems.append(f"pyarrow {name}.{col}: {got}, expected {typ}")
    con = duckdb.connect()
    src = f"read_parquet('{path}/*/*/*.parquet', hive_partitioning = true)"
    n = con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]
    if n != rows:
        problems.append(f"duckdb {name}: {n} rows, expected {rows}")
    described = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    for col, typ in columns.items():
        allowed = duck_types[typ] + (["DATE"] if col == "date" else []) + (["UUID"] if col == "org_id" else [])
        if described.get(col) not in allowed:
            problems.append(f"duckdb {name}.{col}: {described.get(col)}, expected {typ}")
    if name == "tasks":
        first = con.execute(f"SELECT epoch_ms(min(created_time)) FROM {src}").fetchone()[0]
        if first != table["first_created_ms"]:
            problems.append(f"duckdb tasks.created_time: {first}, expected {table['first_created_ms']}")
print("\n".join(problems) if problems else "ok")
sys.exit(1 if problems else 0)
"#;

/// What the other engines should find in the lake [`write_lake`] writes: per table, its rows and
/// each column's type as `schemas/` declares it.
fn engine_spec() -> String {
    let spec: Vec<serde_json::Value> = Table::ALL
        .into_iter()
        .map(|t| {
            let columns: serde_json::Map<String, serde_json::Value> = t
                .def()
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.column_type.name().into()))
                .collect();
            serde_json::json!({
                "name": t.name(),
                "rows": 6,
                "columns": columns,
                "first_created_ms": ms("2026-01-05", 9),
            })
        })
        .collect();
    serde_json::to_string(&spec).expect("spec")
}

/// Runs `script` (one of the checks above) with the test Python over a freshly written lake;
/// the script prints its problems and exits 1 when there are any.
async fn other_engine_agrees(script: &str, what: &str) {
    let Some(python) = test_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("lake");
    write_lake(&root).await;
    let out = tokio::process::Command::new(&python)
        .args(["-c", script, root.to_str().expect("utf8"), &engine_spec()])
        // Spark writes its scratch (spark-warehouse, derby logs) to the working directory.
        .current_dir(dir.path())
        .output()
        .await
        .expect("python runs");
    assert!(
        out.status.success(),
        "{what} disagrees with the lake:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[tokio::test]
async fn lake_reads_unchanged_with_pyarrow_and_duckdb() {
    other_engine_agrees(READ_WITH_OTHER_ENGINES, "pyarrow or DuckDB").await;
}

/// Spark, as a user who outgrows one machine reads the lake: `spark.read.parquet` on each table's
/// folder, Hive partitions discovered, no schema given, then the `recordings` join.
const READ_WITH_SPARK: &str = r#"
import json, sys
from pyspark.sql import SparkSession
from pyspark.sql import types as T

root, spec = sys.argv[1], json.loads(sys.argv[2])
spark = (SparkSession.builder.master("local[1]").appName("wxcc-lake-check")
         .config("spark.ui.enabled", "false")
         .config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.sql.session.timeZone", "UTC")
         .getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
spark_types = {
    "string": [T.StringType()],
    "bool": [T.BooleanType()],
    "int64": [T.LongType()],
    "float64": [T.DoubleType()],
    # isAdjustedToUTC = true: an instant, TIMESTAMP (not TIMESTAMP_NTZ)
    "timestamp_ms": [T.TimestampType()],
    "list<string>": [T.ArrayType(T.StringType(), True), T.ArrayType(T.StringType(), False)],
}
problems = []
for table in spec:
    name, rows, columns = table["name"], table["rows"], table["columns"]
    df = spark.read.parquet(f"{root}/{name}")
    df.createOrReplaceTempView(name)
    n = df.count()
    if n != rows:
        problems.append(f"spark {name}: {n} rows, expected {rows}")
    fields = {f.name: f.dataType for f in df.schema.fields}
    for col, typ in columns.items():
        # Spark infers a partition value that looks like a date as DATE.
        allowed = spark_types[typ] + ([T.DateType()] if col == "date" else [])
        if fields.get(col) not in allowed:
            problems.append(f"spark {name}.{col}: {fields.get(col)}, expected {typ}")
    if name == "tasks":
        first = df.selectExpr("unix_millis(min(created_time))").first()[0]
        if first != table["first_created_ms"]:
            problems.append(f"spark tasks.created_time: {first}, expected {table['first_created_ms']}")
joined = spark.sql(
    "SELECT count(*) FROM manifest m JOIN tasks t "
    "ON t.org_id = m.org_id AND t.date = m.date AND t.task_id = m.task_id "
    "WHERE m.status = 'stored'").first()[0]
if joined != 6:
    problems.append(f"spark manifest JOIN tasks: {joined} rows, expected 6")
spark.stop()
print("\n".join(problems) if problems else "ok")
sys.exit(1 if problems else 0)
"#;

/// Spark needs a Java runtime; scripts/test.sh installs one (and pyspark) where it can.
#[tokio::test]
async fn lake_reads_unchanged_with_spark() {
    let java = std::process::Command::new("java").arg("-version").output();
    if !java.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "no Java runtime for Spark: run the suite through scripts/test.sh"
        );
        eprintln!("skipping: no Java runtime (scripts/test.sh installs one)");
        return;
    }
    other_engine_agrees(READ_WITH_SPARK, "Spark").await;
}
