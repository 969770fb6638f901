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
//! (`key=value;...` DataFusion settings to try), `WXCC_BENCH_REGISTER` (`utf8part`, `dict`,
//! `sorted`, `noview`: register `tasks` and `manifest` another way, to try), `WXCC_BENCH_RUNS` (timed runs
//! per query, default 5), `WXCC_BENCH_EXPLAIN` (print
//! EXPLAIN ANALYZE).
//!
//! Then the report's own saved queries (`queries/report_*.sql`, with the parameters `wxcc report`
//! gives them) over the report's synthetic lake of `WXCC_BENCH_REPORT_DAYS` (100) ×
//! `WXCC_BENCH_REPORT_CALLS` (1000) tasks, timed the same way; DuckDB runs them over the views
//! `wxcc duckdb-init` writes (`runs` and `watermarks`, the sync state, as empty tables, and
//! `to_unixtime` as a macro over DuckDB's `epoch`). Last, `wxcc report` end to end (all queries and
//! the HTML page) over that lake. `WXCC_BENCH_REPORT_DIR` keeps that lake;
//! `WXCC_BENCH_REPORT_DAYS=0` skips this part.

mod common;

use common::{ORG, QUEUES, env_usize, mix, report_lake};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use datafusion::common::ParamValues;
use wxcc::lake::{Lake, ManifestRow, Table, TaskRow, manifest_batch, tasks_batch};
use wxcc::query::params::{ParamDefault, ParamType};
use wxcc::query::{QuerySession, SavedQuery};
use wxcc::report::{
    ReportRequest, Resolved, SyncState, build, params_for, render_html, report_queries,
};

/// Timed runs per query after the warm-up (`WXCC_BENCH_RUNS`, default 5).
fn runs() -> usize {
    env_usize("WXCC_BENCH_RUNS", 5).max(1)
}

/// One engine's result for one query: medians of the timed runs and the row count.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// Elapsed time.
    wall: Duration,
    /// CPU time of the whole process (every thread), user + system: steadier than `wall` on a
    /// shared machine, and what a busy host pays.
    cpu: Duration,
    rows: usize,
}

/// This process's CPU time so far (user + system, all threads).
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

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

async fn time_datafusion(
    session: &QuerySession,
    sql: &str,
    params: Option<&ParamValues>,
) -> Timing {
    let run = || async {
        match params {
            Some(p) => session.sql_with_params(sql, p.clone()).await,
            None => session.sql(sql).await,
        }
        .expect("query runs")
    };
    let warm = run().await;
    let rows = warm.iter().map(|b| b.num_rows()).sum();
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..runs() {
        let (t, c) = (Instant::now(), cpu_time());
        let out = run().await;
        wall.push(t.elapsed());
        cpu.push(cpu_time().saturating_sub(c));
        std::hint::black_box(out);
    }
    Timing {
        wall: median(wall),
        cpu: median(cpu),
        rows,
    }
}

/// DuckDB side: reads `{"setup": [sql...], "queries": [{"sql", "params"}...], "runs"}` on stdin,
/// prints one `{"wall", "cpu", "rows"}` (seconds) or `{"error"}` per query.
const DUCKDB: &str = r#"
import json, statistics, sys, time
import duckdb
job = json.load(sys.stdin)
con = duckdb.connect()
con.execute("SET threads = 2")
con.execute("SET enable_progress_bar = false")
for stmt in job["setup"]:
    con.execute(stmt)
out = []
for q in job["queries"]:
    try:
        n = len(con.execute(q["sql"], q["params"]).fetchall())
        wall, cpu = [], []
        for _ in range(job["runs"]):
            t, c = time.perf_counter(), time.process_time()
            con.execute(q["sql"], q["params"]).fetchall()
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        out.append({"wall": statistics.median(wall), "cpu": statistics.median(cpu), "rows": n})
    except Exception as e:
        out.append({"error": str(e).splitlines()[0]})
print(json.dumps({"version": duckdb.__version__, "results": out}))
"#;

/// One DuckDB result: median time and row count, or DuckDB's error.
type DuckResult = Result<Timing, String>;

/// Runs `queries` (SQL, named parameters) in DuckDB after `setup`; `None` when no python with
/// `duckdb` is configured or it fails to start.
fn time_duckdb(
    setup: &[String],
    queries: &[(String, serde_json::Value)],
) -> Option<(String, Vec<DuckResult>)> {
    let python = std::env::var("WXCC_TEST_PYTHON").ok()?;
    let job = serde_json::json!({
        "setup": setup,
        "queries": queries.iter().map(|(sql, params)| serde_json::json!({"sql": sql, "params": params})).collect::<Vec<_>>(),
        "runs": runs(),
    });
    let mut child = std::process::Command::new(python)
        .args(["-c", DUCKDB])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take()?;
        stdin.write_all(job.to_string().as_bytes()).ok()?;
    }
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        eprintln!(
            "duckdb run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let results = v["results"]
        .as_array()?
        .iter()
        .map(|r| match r["error"].as_str() {
            Some(e) => Err(e.to_owned()),
            None => {
                let secs = |k: &str| Duration::from_secs_f64(r[k].as_f64().unwrap_or(0.0));
                Ok(Timing {
                    wall: secs("wall"),
                    cpu: secs("cpu"),
                    rows: r["rows"].as_u64().unwrap_or(0) as usize,
                })
            }
        })
        .collect();
    Some((v["version"].as_str().unwrap_or("?").to_owned(), results))
}

/// Prints one markdown table of DataFusion vs DuckDB timings (wall and CPU).
fn print_table(names: &[&str], ours: &[Timing], duck: Option<&[DuckResult]>) {
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    let ratio = |a: Duration, b: Duration| format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64());
    println!(
        "| query | DataFusion ms | DuckDB ms | DataFusion / DuckDB | CPU ms DataFusion | CPU ms DuckDB | CPU ratio | rows |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (i, name) in names.iter().enumerate() {
        let df = ours[i];
        let theirs = match duck.map(|d| &d[i]) {
            Some(Ok(t)) => {
                assert_eq!(t.rows, df.rows, "{name}: engines disagree on the row count");
                [
                    ms(t.wall),
                    ratio(df.wall, t.wall),
                    ms(t.cpu),
                    ratio(df.cpu, t.cpu),
                ]
            }
            Some(Err(e)) => [format!("- ({e})"), "-".into(), "-".into(), "-".into()],
            None => ["-".into(), "-".into(), "-".into(), "-".into()],
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            ms(df.wall),
            theirs[0],
            theirs[1],
            ms(df.cpu),
            theirs[2],
            theirs[3],
            df.rows
        );
    }
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

/// `WXCC_BENCH_REGISTER` experiments: registers `tasks` and `manifest` again with partition
/// columns as `Utf8` (`utf8part`, the session's registration before partition columns became
/// views) or as dictionaries (`dict`), with the files' declared sort order (`sorted`) or stored
/// strings read as `Utf8` rather than `Utf8View` (`noview`).
fn reregister(session: &QuerySession, lake: &Lake, how: &str) {
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{
        ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
    };
    use std::sync::Arc;
    let ctx = session.context();
    for table in [Table::Tasks, Table::Manifest] {
        let def = table.def();
        let mut partition_cols = def.partition_columns();
        if how.contains("dict") {
            for (_, t) in &mut partition_cols {
                *t = DataType::Dictionary(Box::new(DataType::UInt16), Box::new(t.clone()));
            }
        }
        if !how.contains("utf8part") && !how.contains("dict") {
            for (_, t) in &mut partition_cols {
                *t = DataType::Utf8View;
            }
        }
        let mut options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(partition_cols);
        if how.contains("sorted") {
            let order = def
                .sort_by
                .iter()
                .map(|c| datafusion::prelude::col(c.as_str()).sort(true, true))
                .collect();
            options = options.with_file_sort_order(vec![order]);
        }
        let schema = def.file_schema();
        let view = !how.contains("noview");
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Utf8 if view => f.as_ref().clone().with_data_type(DataType::Utf8View),
                _ => f.as_ref().clone(),
            })
            .collect();
        let url = ListingTableUrl::parse(format!("{}{}/", lake.url(), table.name())).expect("url");
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(Arc::new(Schema::new(fields)));
        ctx.deregister_table(table.name()).expect("deregister");
        ctx.register_table(
            table.name(),
            Arc::new(ListingTable::try_new(config).expect("table")),
        )
        .expect("register");
    }
    eprintln!("tables registered with: {how}");
}

/// The report's queries over a `days` × `calls` lake, then `wxcc report` end to end.
async fn report_part(root: &std::path::Path, days: usize, calls: usize) {
    let lake = Lake::open(root.to_str().expect("utf8 path")).expect("lake");
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
    if root.join("tasks").is_dir() {
        eprintln!("reusing the report lake in {}", root.display());
    } else {
        let t = Instant::now();
        report_lake::generate(&lake, start, days, calls).await;
        eprintln!(
            "wrote the report lake: {days} days x {calls} tasks in {:.1} s ({:.1} MB)",
            t.elapsed().as_secs_f64(),
            dir_size(root) as f64 / 1e6
        );
    }
    let as_of = Utc::now();
    let request = Resolved {
        from: start,
        to: start + chrono::Days::new(days as u64),
        org: None,
        as_of,
    };
    let session = QuerySession::open(&lake).await.expect("session");
    SyncState::read(&lake)
        .await
        .expect("sync state")
        .register(&session)
        .expect("state tables");
    let mut ours = Vec::new();
    let mut duck_queries = Vec::new();
    for query in report_queries() {
        let given = params_for(query, &request);
        let bound = query.bind(&given).expect("params");
        if std::env::var_os("WXCC_BENCH_EXPLAIN").is_some() {
            let explain = format!("EXPLAIN ANALYZE {}", query.sql);
            let plan = session
                .sql_with_params(&explain, bound.clone())
                .await
                .expect("explain");
            let text =
                wxcc::query::format_batches(&plan, wxcc::query::OutputFormat::Csv).expect("plan");
            eprintln!("== {}\n{text}", query.name);
        }
        ours.push(time_datafusion(&session, query.sql, Some(&bound)).await);
        duck_queries.push((query.sql.to_owned(), duck_params(query, &given, as_of)));
    }
    let mut setup =
        vec![
        wxcc::query::duckdb::init_sql(&lake).await.expect("duckdb-init"),
        "CREATE TABLE runs (org_id VARCHAR, run_id VARCHAR, started_at VARCHAR, status VARCHAR, \
         error VARCHAR, duration_ms BIGINT, tasks BIGINT, recordings BIGINT, stored BIGINT, \
         failed BIGINT, bytes BIGINT, rejects BIGINT, requests BIGINT, rate_limited BIGINT, \
         server_errors BIGINT)"
            .to_owned(),
        "CREATE TABLE watermarks (org_id VARCHAR, synced_until TIMESTAMPTZ, \
         no_recording_yet BIGINT, captures_failed BIGINT, download_failed BIGINT, gaps BIGINT)"
            .to_owned(),
        "CREATE MACRO to_unixtime(t) AS epoch(CAST(t AS TIMESTAMPTZ))".to_owned(),
    ];
    setup.retain(|s| !s.is_empty());
    let duck = time_duckdb(&setup, &duck_queries);
    let names: Vec<&str> = report_queries().iter().map(|q| q.name).collect();
    println!(
        "\nreport queries over {days} days x {calls} tasks (`wxcc report`'s parameters, whole range), median of {} after one warm-up\n",
        runs()
    );
    print_table(&names, &ours, duck.as_ref().map(|(_, r)| r.as_slice()));

    let report_request = ReportRequest {
        from: Some(request.from),
        to: Some(request.to),
        org: None,
        as_of,
    };
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let report = build(&lake, &report_request).await.expect("report builds");
        size = render_html(&report).len();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "\n`wxcc report` end to end over {days} days x {calls} tasks (session, {} queries, HTML): median {:.0} ms of 3 (min {:.0} ms), HTML {:.0} KB",
        names.len(),
        times[1].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        size as f64 / 1024.0
    );
}

/// A report query's parameters as DuckDB takes them: every declared one (given or default),
/// numbers as numbers, the rest as text.
fn duck_params(
    query: &SavedQuery,
    given: &[(String, String)],
    as_of: chrono::DateTime<Utc>,
) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for decl in &query.params {
        let value = given
            .iter()
            .find(|(n, _)| *n == decl.name)
            .map(|(_, v)| v.clone())
            .or(match &decl.default {
                ParamDefault::Value(v) => Some(v.clone()),
                _ => None,
            });
        let json = match (value, decl.param_type) {
            (None, _) => serde_json::Value::Null,
            (Some(v), ParamType::Timestamp) if v.eq_ignore_ascii_case("now") => {
                as_of.to_rfc3339().into()
            }
            (Some(v), ParamType::Int) => v.parse::<i64>().expect("INT default").into(),
            (Some(v), ParamType::Float) => v.parse::<f64>().expect("FLOAT default").into(),
            (Some(v), ParamType::Bool) => (v == "true").into(),
            (Some(v), _) => v.into(),
        };
        map.insert(decl.name.clone(), json);
    }
    serde_json::Value::Object(map)
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
        if let Ok(how) = std::env::var("WXCC_BENCH_REGISTER") {
            reregister(&session, &lake, &how);
        }
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
            ours.push(time_datafusion(&session, sql, None).await);
        }
        let base = root.to_str().expect("utf8");
        let setup: Vec<String> = ["tasks", "manifest"]
            .iter()
            .map(|t| format!("CREATE VIEW {t} AS SELECT * FROM read_parquet('{base}/{t}/*/*/*.parquet', hive_partitioning = true, hive_types_autocast = false)"))
            .collect();
        let sqls: Vec<(String, serde_json::Value)> = QUERIES
            .iter()
            .map(|(_, q)| ((*q).to_owned(), serde_json::json!({})))
            .collect();
        let duck = time_duckdb(&setup, &sqls);
        if duck.is_none() {
            eprintln!("DuckDB column empty: set WXCC_TEST_PYTHON to a python with duckdb");
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "\n{rows} rows/table, {days} partitions, median of {} after one warm-up ({cores} cores)\n",
            runs()
        );
        let names: Vec<&str> = QUERIES.iter().map(|(n, _)| *n).collect();
        print_table(&names, &ours, duck.as_ref().map(|(_, r)| r.as_slice()));
        if let Some((version, _)) = &duck {
            println!("\nDuckDB {version} via python (2 threads); DataFusion 55 via wxcc::query::QuerySession");
        }

        let report_days = env_usize("WXCC_BENCH_REPORT_DAYS", 100);
        let report_calls = env_usize("WXCC_BENCH_REPORT_CALLS", 1000).max(1);
        if report_days > 0 {
            let report_root = std::env::var("WXCC_BENCH_REPORT_DIR")
                .map_or_else(|_| tmp.path().join("report-lake"), Into::into);
            report_part(&report_root, report_days, report_calls).await;
        }
    });
}
