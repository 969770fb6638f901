//! Run safety: the org lease keeps concurrent runs apart (exit 75, nothing written), a run that
//! loses its lease stops writing, the watermark only moves over contiguous windows, and every
//! run, failed ones too, leaves its summary in `_state/org_id=<org>/runs/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::util::{
    TABLES, dump, sim_env, small_world, start_sim, sync_small_world, text, wxcc, wxcc_command,
};
use wxcc::sim::{SimConfig, Simulator};

fn state_dir(out: &Path, sim: &Simulator) -> PathBuf {
    out.join(format!("_state/org_id={}", sim.credentials().org_id))
}

fn summary(output: &Output) -> serde_json::Value {
    let stdout = text(&output.stdout);
    let line = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "a summary line\nstdout: {stdout}\nstderr: {}",
            text(&output.stderr)
        )
    });
    serde_json::from_str(line).expect("summary is JSON")
}

async fn state_show(sim: &Simulator, out: &Path) -> serde_json::Value {
    let output = wxcc(
        &["state", "show", "--output", out.to_str().unwrap()],
        &sim_env(sim),
        out.parent().unwrap(),
    )
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("state show prints JSON")
}

async fn dumps(loc: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for (t, order) in TABLES {
        v.push(dump(loc.to_str().unwrap(), t, order).await);
    }
    v
}

fn partitions(out: &Path, date: &str) -> Vec<String> {
    ["tasks", "captures", "manifest"]
        .iter()
        .filter(|t| {
            std::fs::read_dir(out.join(t))
                .into_iter()
                .flatten()
                .flatten()
                .any(|org| org.path().join(format!("date={date}")).exists())
        })
        .map(|t| t.to_string())
        .collect()
}

/// Several requests a second at most, so a day window takes seconds.
fn slow_env(sim: &Simulator, lease_secs: u64) -> HashMap<String, String> {
    let mut env = sim_env(sim);
    env.insert("WXCC_LEASE_SECS".into(), lease_secs.to_string());
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_started_together_one_exits_75_and_writes_nothing() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let single = dir.path().join("single");
    let out = sync_small_world(single.to_str().unwrap(), &[], &sim_env(&sim), dir.path()).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let shared = dir.path().join("shared");
    let loc = shared.to_str().unwrap();
    let env = slow_env(&sim, 30);
    let slow = ["--rate-limit", "120"];
    let (a, b) = tokio::join!(
        sync_small_world(loc, &slow, &env, dir.path()),
        sync_small_world(loc, &slow, &env, dir.path()),
    );
    let mut codes = [a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(75)],
        "a: {}\nb: {}",
        text(&a.stderr),
        text(&b.stderr)
    );
    let (winner, loser) = if a.status.success() { (a, b) } else { (b, a) };
    let locked = summary(&loser);
    assert_eq!(locked["status"], "locked", "{locked}");
    assert!(
        text(&loser.stderr).contains("holds the lease"),
        "{}",
        text(&loser.stderr)
    );
    let won = summary(&winner);
    assert_eq!(won["status"], "ok");

    // Only the winner's run is on record, and the data is that of one run alone.
    let state = state_show(&sim, &shared).await;
    let runs = state["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{state}");
    assert_eq!(runs[0]["run_id"], won["run_id"]);
    assert_eq!(state["lease"]["run_id"], won["run_id"]);
    assert_eq!(state["lease"]["status"], "released");
    assert_eq!(dumps(&shared).await, dumps(&single).await);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_is_taken_over_stops_writing() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    let loc = out.to_str().unwrap().to_owned();
    // One request a second: each day window takes several seconds; a 6 s lease is renewed
    // every 2 s.
    let args = [
        "sync",
        "--from",
        "2026-01-05",
        "--to",
        "2026-01-07",
        "--output",
        loc.as_str(),
        "--rate-limit",
        "60",
    ];
    let run = wxcc_command(&args, &slow_env(&sim, 6), dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let state = state_dir(&out, &sim);
    let watermark = state.join("watermark.json");
    for _ in 0..600 {
        if watermark.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(watermark.exists(), "the first day was synced");
    // Another run takes the lease over (as one would after a long pause of this one).
    let thief = serde_json::json!({
        "holder": "thief",
        "run_id": "thief-run",
        "host": "elsewhere",
        "pid": 1,
        "started": chrono::Utc::now(),
        "expires": chrono::Utc::now() + chrono::Duration::minutes(10),
        "released": false,
    });
    std::fs::write(state.join("lock.json"), thief.to_string()).unwrap();

    let output = tokio::time::timeout(Duration::from_secs(60), run.wait_with_output())
        .await
        .expect("the run stops")
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("lost the lease"),
        "{}",
        text(&output.stderr)
    );
    let s = summary(&output);
    assert_eq!(s["status"], "failed");
    assert_eq!(s["windows"], 1, "{s}");
    assert_eq!(partitions(&out, "2026-01-06"), Vec::<String>::new());
    assert_eq!(partitions(&out, "2026-01-05").len(), 3);
    let shown = state_show(&sim, &out).await;
    assert_eq!(
        shown["watermark"]["synced_until"], "2026-01-06T00:00:00Z",
        "{shown}"
    );
    assert_eq!(
        shown["lease"]["run_id"], "thief-run",
        "the thief's lease stays"
    );
    assert_eq!(shown["runs"][0]["status"], "failed");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watermark_moves_only_over_contiguous_windows() {
    let sim = start_sim(SimConfig {
        days: 3,
        ..small_world()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    let loc = out.to_str().unwrap();
    let env = sim_env(&sim);
    let sync = |from: &'static str, to: String| {
        let env = env.clone();
        let cwd = dir.path().to_owned();
        async move {
            let o = wxcc(
                &["sync", "--from", from, "--to", &to, "--output", loc],
                &env,
                &cwd,
            )
            .await;
            assert!(o.status.success(), "{}", text(&o.stderr));
        }
    };
    let mark = |v: serde_json::Value| v["watermark"]["synced_until"].as_str().unwrap().to_owned();

    sync("2026-01-05", "2026-01-06".into()).await;
    assert_eq!(mark(state_show(&sim, &out).await), "2026-01-06T00:00:00Z");
    // A later backfill that leaves a gap: the gap is not claimed.
    sync("2026-01-07", "2026-01-08".into()).await;
    assert_eq!(mark(state_show(&sim, &out).await), "2026-01-06T00:00:00Z");
    // A backfill that continues it moves it, but never past the run's own start.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
    let o = wxcc(
        &[
            "state",
            "reset",
            "--yes",
            "--output",
            loc,
            "--to",
            &yesterday.to_string(),
        ],
        &env,
        dir.path(),
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let before = chrono::Utc::now();
    let from: &'static str = yesterday.to_string().leak();
    sync(from, (yesterday + chrono::Duration::days(3)).to_string()).await;
    let moved: chrono::DateTime<chrono::Utc> = mark(state_show(&sim, &out).await).parse().unwrap();
    assert!(
        moved >= before && moved <= chrono::Utc::now(),
        "{moved} is the run's start"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_keeps_its_summary_and_logs_its_error_as_json() {
    // Every task query is refused with a 400 (range longer than the API allows).
    let sim = start_sim(SimConfig {
        max_range_days: Some(0),
        ..small_world()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    let output = wxcc(
        &[
            "--log-format",
            "json",
            "sync",
            "--from",
            "2026-01-05",
            "--to",
            "2026-01-07",
            "--output",
            out.to_str().unwrap(),
        ],
        &sim_env(&sim),
        dir.path(),
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let s = summary(&output);
    assert_eq!(s["status"], "failed", "{s}");
    assert!(s["error"].as_str().unwrap().contains("400"), "{s}");
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["run_id"].as_str().unwrap().len(), 36);
    let stderr = text(&output.stderr);
    let last: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap())
        .unwrap_or_else(|_| panic!("the error is a JSON line: {stderr}"));
    assert_eq!(last["level"], "ERROR", "{last}");
    assert!(last["fields"]["error"].as_str().unwrap().contains("400"));
    assert_eq!(last["fields"]["exit_code"], 1);

    let shown = state_show(&sim, &out).await;
    assert_eq!(shown["runs"][0]["status"], "failed", "{shown}");
    assert_eq!(shown["runs"][0]["run_id"], s["run_id"]);
    assert!(shown["watermark"].is_null());
    assert_eq!(shown["ledger"]["counts"]["gaps"], 0, "{shown}");
    assert!(shown["ledger"]["failures"].as_array().unwrap().is_empty());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_reset_needs_confirmation_and_the_lease() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    let loc = out.to_str().unwrap();
    let env = sim_env(&sim);
    let o = sync_small_world(loc, &[], &env, dir.path()).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let reset = |extra: &'static [&'static str]| {
        let env = env.clone();
        let cwd = dir.path().to_owned();
        async move {
            let mut args = vec!["state", "reset", "--output", loc, "--to", "2026-01-05"];
            args.extend_from_slice(extra);
            wxcc(&args, &env, &cwd).await
        }
    };

    // No terminal to ask on, no --yes: refused, unchanged.
    let refused = reset(&[]).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("--yes"));
    let mark = |v: serde_json::Value| v["watermark"]["synced_until"].clone();
    assert_eq!(mark(state_show(&sim, &out).await), "2026-01-07T00:00:00Z");

    // Under another run's live lease: 75, unchanged.
    let lock = state_dir(&out, &sim).join("lock.json");
    let released = std::fs::read(&lock).unwrap();
    let live = serde_json::json!({
        "holder": "busy", "run_id": "other", "host": "elsewhere", "pid": 1,
        "started": chrono::Utc::now(),
        "expires": chrono::Utc::now() + chrono::Duration::minutes(10),
    });
    std::fs::write(&lock, live.to_string()).unwrap();
    assert_eq!(reset(&["--yes"]).await.status.code(), Some(75));
    assert_eq!(mark(state_show(&sim, &out).await), "2026-01-07T00:00:00Z");

    std::fs::write(&lock, released).unwrap();
    let done = reset(&["--yes"]).await;
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert_eq!(mark(state_show(&sim, &out).await), "2026-01-05T00:00:00Z");

    // A watermark that cannot be read is an error naming the way out, and reset repairs it.
    let watermark = state_dir(&out, &sim).join("watermark.json");
    std::fs::write(&watermark, "{not json").unwrap();
    let o = wxcc(&["state", "show", "--output", loc], &env, dir.path()).await;
    assert_eq!(o.status.code(), Some(1));
    // A mistyped org is refused, not shown as a blank state.
    let typo = "22222222-2222-4222-8222-222222222222";
    let other = wxcc(
        &["state", "show", "--output", loc, "--org", typo],
        &env,
        dir.path(),
    )
    .await;
    assert_eq!(other.status.code(), Some(2), "{}", text(&other.stderr));
    assert!(
        text(&other.stderr).contains(&format!("no sync state for org {typo}")),
        "{}",
        text(&other.stderr)
    );
    assert!(
        text(&o.stderr).contains("wxcc state reset"),
        "{}",
        text(&o.stderr)
    );
    let repaired = reset(&["--yes"]).await;
    assert!(repaired.status.success(), "{}", text(&repaired.stderr));
    assert_eq!(mark(state_show(&sim, &out).await), "2026-01-05T00:00:00Z");
    sim.shutdown().await;
}
