//! Query benchmark (a report, not a timed test): DataFusion through wxcc's query layer against
//! DuckDB on the very same Parquet files.
//!
//! ```sh
//! WXCC_TEST_PYTHON=~/.cache/wxcc-venv/bin/python cargo bench --bench query
//! ```
//!
//! Writes a synthetic lake with the lake API (default 1,000,000 tasks with one manifest row each,
//! over 30 daily partitions of one org), then times a selective query (one date, one queue), a
//! full-scan aggregate and a full join aggregate: one warm-up run, then the median of five. DuckDB
//! runs through `WXCC_TEST_PYTHON` (a python with `duckdb`) when it is set, with the same SQL over
//! `read_parquet(..., hive_partitioning = true)`. Knobs: `WXCC_BENCH_ROWS`, `WXCC_BENCH_DAYS`,
//! `WXCC_BENCH_DIR` (keep the lake there and reuse it on the next run), `WXCC_BENCH_SET`
//! (`key=value;...` DataFusion settings to try), `WXCC_BENCH_EXPLAIN` (print EXPLAIN ANALYZE).

mod common;

use common::{ORG, QUEUES, env_usize, mix};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use wxcc::lake::{Lake, ManifestRow, Table, TaskRow, manifest_batch, tasks_batch};
use wxcc::query::QuerySession;

const RUNS: usize = 5;

/// The benchmark queries: same SQL for both engines.
const QUERIES: [(&str, &str); 3] = [
    (
        "selective: one date + one queue",
        "SELECT t.queue_name, count(*) AS recordings, sum(m.size_bytes) AS bytes \
         FROM manifest AS m JOIN tasks AS t \
           ON t.org_id = m.org_id AND t.date = m.date AND t.task_id = m.task_id \
         WHERE m.date = '2026-01-15' AND t.date = '2026-01-15' \
           AND t.queue_name = 'Support' AND m.status = 'stored' \
         GROUP BY t.queue_name",
    ),
    (
        "full scan: aggregate per queue/status",
        "SELECT queue_name, status, count(*) AS tasks, count(DISTINCT owner_name) AS agents, \
                max(created_time) AS last_created \
         FROM tasks GROUP BY queue_name, status ORDER BY queue_name, status",
    ),
    (
        "full join: bytes per queue",
        "SELECT t.queue_name, count(*) AS recordings, sum(m.size_bytes) AS bytes \
         FROM manifest AS m JOIN tasks AS t \
           ON t.org_id = m.org_id AND t.date = m.date AND t.task_id = m.task_id \
         WHERE m.status = 'stored' GROUP BY t.queue_name ORDER BY t.queue_name",
    ),
];

async fn generate(lake: &Lake, rows: usize, days: usize) {
    let per_day = rows / days;
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
    for d in 0..days {
        let date = start + chrono::Duration::days(i64::try_from(d).expect("days"));
        let midnight = date
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_millis();
        let step = 86_400_000 / i64::try_from(per_day.max(1)).expect("rows");
        let mut tasks = Vec::with_capacity(per_day);
        let mut manifest = Vec::with_capacity(per_day);
        for i in 0..per_day {
            let r = mix((d * per_day + i) as u64);
            let task_id = format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                r >> 32,
                r & 0xffff,
                d,
                i % 4096,
                i
            );
            let queue = QUEUES[(r % 8) as usize];
            let status = if r.is_multiple_of(10) {
                "abandoned"
            } else {
                "completed"
            };
            let created = midnight + i64::try_from(i).expect("i") * step;
            tasks.push(TaskRow {
                task_id: task_id.clone(),
                channel_type: Some("telephony".into()),
                status: Some(status.into()),
                created_time: created,
                last_updated_time: Some(created + 300_000),
                capture_requested: Some(true),
                owner_id: Some(format!("agent-{}", (r >> 8) % 200)),
                owner_name: Some(format!("Agent {}", (r >> 8) % 200)),
                queue_id: Some(format!("queue-{}", r % 8)),
                queue_name: Some(queue.into()),
                origin: Some(format!("+1555{:07}", (r >> 16) % 10_000_000)),
                destination: Some("+18005550100".into()),
                direction: Some("inbound".into()),
                reason_code: None,
            });
            let recording_id = format!("{:016x}", mix(r));
            let failed = r.is_multiple_of(100);
            manifest.push(ManifestRow {
                object_uri: lake
                    .uri(&lake.path(&format!("audio/{ORG}/{task_id}/{recording_id}.wav"))),
                task_id,
                recording_id,
                size_bytes: (!failed).then_some(100_000 + (r >> 20) as i64 % 5_000_000),
                sha256: (!failed).then(|| {
                    format!(
                        "{:016x}{:016x}{:016x}{:016x}",
                        mix(r ^ 1),
                        mix(r ^ 2),
                        mix(r ^ 3),
                        mix(r ^ 4)
                    )
                }),
                content_type: Some("audio/wav".into()),
                status: if failed { "failed" } else { "stored" }.into(),
                error: failed.then(|| "HTTP 403 from download URL".to_string()),
            });
        }
        let t = tasks_batch(&tasks).expect("tasks batch");
        lake.upsert_partition(Table::Tasks, ORG, date, t)
            .await
            .expect("tasks");
        let m = manifest_batch(&manifest).expect("manifest batch");
        lake.upsert_partition(Table::Manifest, ORG, date, m)
            .await
            .expect("manifest");
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn time_datafusion(session: &QuerySession, sql: &str) -> (Duration, usize) {
    let warm = session.sql(sql).await.expect("query runs");
    let n = warm.iter().map(|b| b.num_rows()).sum();
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        let out = session.sql(sql).await.expect("query runs");
        times.push(t.elapsed());
        std::hint::black_box(out);
    }
    (median(times), n)
}

const DUCKDB: &str = r#"
import json, statistics, sys, time
import duckdb
root, queries, runs = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
con = duckdb.connect()
con.execute("SET threads = 2")
for t in ("tasks", "manifest"):
    con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{root}/{t}/*/*/*.parquet', hive_partitioning = true, hive_types_autocast = false)")
out = []
for sql in queries:
    n = len(con.execute(sql).fetchall())
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        con.execute(sql).fetchall()
        times.append(time.perf_counter() - t)
    out.append({"seconds": statistics.median(times), "rows": n, "version": duckdb.__version__})
print(json.dumps(out))
"#;

fn time_duckdb(python: &str, root: &str) -> Option<Vec<(Duration, usize, String)>> {
    let sqls: Vec<&str> = QUERIES.iter().map(|(_, q)| *q).collect();
    let out = std::process::Command::new(python)
        .args([
            "-c",
            DUCKDB,
            root,
            &serde_json::to_string(&sqls).ok()?,
            &RUNS.to_string(),
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "duckdb run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
    Some(
        v.iter()
            .map(|r| {
                (
                    Duration::from_secs_f64(r["seconds"].as_f64().unwrap_or(f64::NAN)),
                    r["rows"].as_u64().unwrap_or(0) as usize,
                    r["version"].as_str().unwrap_or("?").to_string(),
                )
            })
            .collect(),
    )
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_size(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must stay fast.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("query bench: run with `cargo bench --bench query`");
        return;
    }
    let rows = env_usize("WXCC_BENCH_ROWS", 1_000_000);
    let days = env_usize("WXCC_BENCH_DAYS", 30).max(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = std::env::var("WXCC_BENCH_DIR").map_or_else(|_| tmp.path().join("lake"), Into::into);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let lake = Lake::open(root.to_str().expect("utf8 path")).expect("lake");
        if root.join("tasks").is_dir() {
            eprintln!("reusing the lake in {}", root.display());
        } else {
            let t = Instant::now();
            generate(&lake, rows, days).await;
            eprintln!(
                "wrote {rows} tasks + {rows} manifest rows in {days} daily partitions in {:.1} s ({:.1} MB)",
                t.elapsed().as_secs_f64(),
                dir_size(&root) as f64 / 1e6
            );
        }
        let session = QuerySession::open(&lake).await.expect("session");
        // Experiments: WXCC_BENCH_SET="datafusion.execution.target_partitions=4;..."
        for setting in std::env::var("WXCC_BENCH_SET").unwrap_or_default().split(';') {
            if let Some((k, v)) = setting.split_once('=') {
                let sql = format!("SET {} = {}", k.trim(), v.trim());
                session.context().sql(&sql).await.expect("SET");
                eprintln!("{sql}");
            }
        }
        if std::env::var_os("WXCC_BENCH_EXPLAIN").is_some() {
            for (name, sql) in QUERIES {
                let plan = session.sql(&format!("EXPLAIN ANALYZE {sql}")).await.expect("explain");
                let text = wxcc::query::format_batches(&plan, wxcc::query::OutputFormat::Csv)
                    .expect("plan");
                eprintln!("== {name}\n{text}");
            }
        }
        let mut ours = Vec::new();
        for (_, sql) in QUERIES {
            ours.push(time_datafusion(&session, sql).await);
        }
        let duck = std::env::var("WXCC_TEST_PYTHON")
            .ok()
            .and_then(|py| time_duckdb(&py, root.to_str().expect("utf8")));
        if duck.is_none() {
            eprintln!("DuckDB column empty: set WXCC_TEST_PYTHON to a python with duckdb");
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "\n{rows} rows/table, {days} partitions, median of {RUNS} after one warm-up ({cores} cores)\n"
        );
        println!("| query | DataFusion ms | DuckDB ms | DataFusion / DuckDB | rows |");
        println!("|---|---:|---:|---:|---:|");
        for (i, (name, _)) in QUERIES.iter().enumerate() {
            let (df, n) = ours[i];
            let (duck_ms, ratio) = match duck.as_ref().map(|d| &d[i]) {
                Some((t, dn, _)) => {
                    assert_eq!(*dn, n, "{name}: engines disagree on the row count");
                    (
                        format!("{:.1}", t.as_secs_f64() * 1e3),
                        format!("{:.2}x", df.as_secs_f64() / t.as_secs_f64()),
                    )
                }
                None => ("-".into(), "-".into()),
            };
            println!("| {name} | {:.1} | {duck_ms} | {ratio} | {n} |", df.as_secs_f64() * 1e3);
        }
        if let Some(v) = duck.as_ref().and_then(|d| d.first()) {
            println!("\nDuckDB {} via python; DataFusion 55 via wxcc::query::QuerySession", v.2);
        }
    });
}
