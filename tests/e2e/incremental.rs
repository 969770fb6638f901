//! Scheduled runs without dates: continue from the watermark, re-read the look-back window,
//! and follow a world that changes between runs (calls close, late recordings appear, new calls
//! arrive).

use chrono::{Duration, Utc};

use crate::util::{sim_env, start_sim, strings, sync_small_world, text, wxcc};
use wxcc::sim::{SimConfig, Simulator};

fn expected_tasks(sim: &Simulator) -> Vec<String> {
    tasks_at(sim, sim.now())
}

/// Each task as `GET /v1/tasks` shows it at `at`: id, status, captureRequested.
fn tasks_at(sim: &Simulator, at: chrono::DateTime<Utc>) -> Vec<String> {
    let mut v: Vec<String> = sim
        .world()
        .tasks_as_of(at)
        .iter()
        .map(|t| {
            let cap = t
                .capture_requested
                .map_or("null".to_string(), |c| c.to_string());
            format!("{} {} {cap}", t.id, t.status)
        })
        .collect();
    v.sort();
    v
}

fn expected_recordings(sim: &Simulator) -> Vec<String> {
    let mut v: Vec<String> = sim
        .world()
        .recordings_available_at(sim.now())
        .iter()
        .map(|r| r.id.clone())
        .collect();
    v.sort();
    v
}

/// A scheduled run at `now` (the simulator's clock unless given).
async fn scheduled_run(sim: &Simulator, dir: &std::path::Path, out: &str) -> serde_json::Value {
    scheduled_run_at(sim, dir, out, sim.now()).await
}

async fn scheduled_run_at(
    sim: &Simulator,
    dir: &std::path::Path,
    out: &str,
    now: chrono::DateTime<Utc>,
) -> serde_json::Value {
    let mut env = sim_env(sim);
    env.insert("WXCC_NOW".into(), now.to_rfc3339());
    let output = wxcc(&["sync", "--output", out], &env, dir).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Recordings stored, as a sorted list of ids.
async fn stored(loc: &str) -> Vec<String> {
    strings(loc, STORED_SQL).await
}

const TASKS_SQL: &str = "SELECT task_id || ' ' || status || ' ' || \
     coalesce(CAST(capture_requested AS VARCHAR), 'null') FROM tasks ORDER BY 1";
const STORED_SQL: &str = "SELECT recording_id FROM manifest WHERE status = 'stored' ORDER BY 1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_follow_a_changing_world() {
    let today = Utc::now().date_naive();
    let sim = start_sim(SimConfig {
        seed: 11,
        start: today - Duration::days(2),
        days: 3,
        calls_per_day: 80,
        median_call_secs: 4,
        max_call_secs: 30,
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // Re-list four days each run so every late change of this small world is in reach.
    std::fs::write(
        dir.path().join("wxcc.toml"),
        "[sync]\nlookback_hours = 96\n",
    )
    .unwrap();
    let out = dir.path().join("lake");
    let loc = out.to_str().unwrap();

    // The first run happens at least six hours back, at an instant when some call is still in
    // progress or in wrap-up (found in the world, so the test does not depend on the time of day).
    let now = Utc::now();
    let last = tasks_at(&sim, now);
    let first_run = (0..24 * 12)
        .map(|i| now - Duration::hours(6) - Duration::minutes(5 * i))
        .find(|t| tasks_at(&sim, *t).iter().any(|task| !last.contains(task)))
        .expect("some task changes state in the last 30 hours");
    sim.set_now(first_run);
    scheduled_run(&sim, dir.path(), loc).await;
    let first_tasks = expected_tasks(&sim);
    assert_eq!(strings(loc, TASKS_SQL).await, first_tasks);
    assert_eq!(strings(loc, STORED_SQL).await, expected_recordings(&sim));

    // Hours later: open calls closed, late captures appeared, new calls arrived.
    sim.set_now(Utc::now());
    scheduled_run(&sim, dir.path(), loc).await;
    let second_tasks = expected_tasks(&sim);
    assert!(second_tasks.len() > first_tasks.len(), "new calls arrived");
    assert_ne!(
        first_tasks
            .iter()
            .filter(|t| second_tasks.contains(t))
            .count(),
        first_tasks.len(),
        "some tasks changed state"
    );
    assert_eq!(strings(loc, TASKS_SQL).await, second_tasks);
    // New and changed tasks and those the ledger waited for are complete; a second leg that
    // appeared late on a task that did not change waits for the settle check.
    let available = expected_recordings(&sim);
    let got = stored(loc).await;
    assert!(
        got.iter().all(|r| available.contains(r)),
        "only available recordings"
    );
    assert!(
        got.len() > available.len() * 9 / 10,
        "{} of {}",
        got.len(),
        available.len()
    );

    // Past the settle age, with the world unchanged: every late recording is found.
    let later = Utc::now() + Duration::hours(13);
    let third = scheduled_run_at(&sim, dir.path(), loc, later).await;
    assert!(third["settled"].as_u64().unwrap() > 0, "{third}");
    assert_eq!(stored(loc).await, available);
    let state = out.join("_state");
    assert!(state.exists(), "the watermark lives in the output store");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_orgs_sync_into_one_lake_and_one_failure_spares_the_others() {
    use crate::util::small_world;
    let a = start_sim(small_world()).await;
    let b = start_sim(SimConfig {
        seed: 99,
        ..small_world()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let entry = |sim: &Simulator, refresh: &str, org: &str| {
        let c = sim.credentials();
        format!(
            "[[orgs]]\norg_id = \"{org}\"\napi_base_url = \"{url}\"\noauth_base_url = \"{url}\"\n\
             client_id = \"{id}\"\n\
             client_secret = \"{secret}\"\nrefresh_token = \"{refresh}\"\n\n",
            url = sim.base_url(),
            id = c.client_id,
            secret = c.client_secret,
        )
    };
    let (org_a, org_b) = (
        a.credentials().org_id.clone(),
        b.credentials().org_id.clone(),
    );
    // A's token pasted under another org id: refused, never written under that id.
    let wrong = "11111111-1111-4111-8111-111111111111";
    let toml = format!(
        "{}{}{}{}",
        entry(&a, &a.credentials().refresh_token, &org_a),
        entry(
            &b,
            "revoked-long-ago",
            "00000000-0000-4000-8000-000000000000"
        ),
        entry(&a, &a.credentials().refresh_token, wrong),
        entry(&b, &b.credentials().refresh_token, &org_b),
    );
    std::fs::write(dir.path().join("wxcc.toml"), toml).unwrap();
    let out = dir.path().join("lake");
    let no_env = std::collections::HashMap::new();
    let output = sync_small_world(out.to_str().unwrap(), &[], &no_env, dir.path()).await;
    let stderr = text(&output.stderr);
    // The configuration error wins over the login, and both over the others' success.
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("00000000-0000-4000-8000-000000000000"),
        "{stderr}"
    );
    assert!(stderr.contains("wxcc auth login"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "issued for org {org_a}, but this run is configured for org {wrong}"
        )),
        "{stderr}"
    );
    let mut orgs = vec![org_a, org_b];
    orgs.sort();
    let loc = out.to_str().unwrap();
    assert_eq!(
        strings(loc, "SELECT DISTINCT org_id FROM tasks ORDER BY 1").await,
        orgs
    );
    // One summary per org, the failed one's too.
    let statuses: Vec<String> = text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["status"].to_string())
        .collect();
    assert_eq!(
        statuses,
        ["\"ok\"", "\"failed\"", "\"failed\"", "\"ok\""],
        "one summary per org"
    );
    a.shutdown().await;
    b.shutdown().await;
}
