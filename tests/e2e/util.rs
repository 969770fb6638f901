//! Helpers for end-to-end tests: an in-process simulator on a free loopback port, the real
//! `wxcc` binary, and readers for what it wrote.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Output;

use arrow::array::RecordBatch;
use chrono::{DateTime, Duration, Utc};
use wxcc::sim::{RecordingKind, SimConfig, Simulator};

/// A small, fast world: short calls, two days.
pub fn small_world() -> SimConfig {
    SimConfig {
        seed: 7,
        days: 2,
        calls_per_day: 60,
        median_call_secs: 4,
        max_call_secs: 30,
        ..SimConfig::default()
    }
}

pub async fn start_sim(cfg: SimConfig) -> Simulator {
    Simulator::start(cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("simulator starts on a free port")
}

/// A world of two days ending `now` whose recordings are listed while their calls are going,
/// and an instant in the middle of a recorded call whose task closed well before `now` (found in
/// the world, not the time of day): synced at that instant and again at `now`, the call is seen
/// to have grown and finished.
pub async fn a_call_going_on(now: DateTime<Utc>) -> (SimConfig, DateTime<Utc>) {
    let cfg = SimConfig {
        start: now.date_naive() - Duration::days(1),
        days: 2,
        recordings_while_open: true,
        median_call_secs: 120,
        max_call_secs: 300,
        calls_per_day: 24,
        ..small_world()
    };
    let probe = start_sim(cfg.clone()).await;
    let world = probe.world();
    let settled = (now - Duration::minutes(30)).timestamp_millis();
    let during = world
        .all_recordings()
        .iter()
        .filter(|r| r.kind == RecordingKind::Main && r.stop_ms - r.start_ms >= 4_000)
        .find(|r| {
            let closed = world.task(&r.task_id).and_then(|t| t.timeline.closed_ms);
            r.start_ms > (now - Duration::hours(20)).timestamp_millis()
                && closed.is_some_and(|c| c < settled)
                && r.stop_ms < settled
        })
        .map(|r| DateTime::from_timestamp_millis((r.start_ms + r.stop_ms) / 2).unwrap())
        .expect("a recorded call ended in the last day");
    assert!(
        world
            .recordings_as_of(during)
            .iter()
            .zip(world.recordings_available_at(during))
            .any(|(cut, full)| cut.stop_ms != full.stop_ms),
        "a call is in progress at {during}"
    );
    probe.shutdown().await;
    (cfg, during)
}

/// Environment pointing the binary at the simulator, and nothing else from the caller's
/// environment that starts with WXCC_.
pub fn sim_env(sim: &Simulator) -> HashMap<String, String> {
    let c = sim.credentials();
    HashMap::from([
        ("WXCC_API_BASE_URL".into(), sim.base_url()),
        ("WXCC_OAUTH_BASE_URL".into(), sim.base_url()),
        ("WXCC_CLIENT_ID".into(), c.client_id.clone()),
        ("WXCC_CLIENT_SECRET".into(), c.client_secret.clone()),
        ("WXCC_REFRESH_TOKEN".into(), c.refresh_token.clone()),
        ("WXCC_ORG_ID".into(), c.org_id.clone()),
    ])
}

/// Runs the real binary in `cwd` with exactly `env` as its WXCC_* variables.
pub async fn wxcc(args: &[&str], env: &HashMap<String, String>, cwd: &Path) -> Output {
    wxcc_command(args, env, cwd)
        .output()
        .await
        .expect("wxcc binary runs")
}

/// The real binary, not started yet.
pub fn wxcc_command(
    args: &[&str],
    env: &HashMap<String, String>,
    cwd: &Path,
) -> tokio::process::Command {
    command(WXCC, args, env, cwd)
}

/// The binary under test.
pub const WXCC: &str = env!("CARGO_BIN_EXE_wxcc");

/// `program` (the binary, or a wrapper that runs it) with exactly `env` as its WXCC_* variables.
pub fn command(
    program: &str,
    args: &[&str],
    env: &HashMap<String, String>,
    cwd: &Path,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).current_dir(cwd).env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("WXCC_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env).kill_on_drop(true);
    cmd
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// `wxcc sync` over the two days of [`small_world`] into `output`, with `extra` flags.
pub async fn sync_small_world(
    output: &str,
    extra: &[&str],
    env: &HashMap<String, String>,
    cwd: &Path,
) -> Output {
    let mut args = vec![
        "sync",
        "--from",
        "2026-01-05",
        "--to",
        "2026-01-07",
        "--output",
        output,
    ];
    args.extend_from_slice(extra);
    wxcc(&args, env, cwd).await
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a helper program (a validator, a Python check) and fails the test with its output
/// unless it succeeds.
pub async fn run_ok(cmd: &mut tokio::process::Command) -> std::process::Output {
    let out = cmd.output().await.expect("the program starts");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// Every row of a table, via the project's own query layer.
pub async fn query(location: &str, sql: &str) -> Vec<RecordBatch> {
    let lake = wxcc::lake::Lake::open(location).expect("lake opens");
    let session = wxcc::query::QuerySession::open(&lake)
        .await
        .expect("tables register");
    session.sql(sql).await.expect("query runs")
}

/// Single string column of a query result, in order.
pub async fn strings(location: &str, sql: &str) -> Vec<String> {
    use arrow::array::{Array, AsArray};
    let mut out = Vec::new();
    for b in query(location, sql).await {
        let col = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
        let col = col.as_string::<i32>();
        out.extend((0..col.len()).map(|i| col.value(i).to_owned()));
    }
    out
}

/// A table's rows as CSV in a stable order, leaving out columns that name the output folder.
pub async fn dump(location: &str, table: &str, order: &str) -> String {
    let sql = format!("SELECT * EXCLUDE (object_uri) FROM {table} ORDER BY {order}");
    let sql = if table == "manifest" || table == "derivatives" {
        sql
    } else {
        sql.replace(" EXCLUDE (object_uri)", "")
    };
    let batches = query(location, &sql).await;
    wxcc::query::format_batches(&batches, wxcc::query::OutputFormat::Csv).unwrap()
}

/// The three tables with their keys.
pub const TABLES: [(&str, &str); 3] = [
    ("tasks", "task_id"),
    ("captures", "task_id, recording_id"),
    ("manifest", "task_id, recording_id"),
];

/// Copies the folder `from` into `to`, recursively.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// All files under `dir`, recursively.
pub fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
