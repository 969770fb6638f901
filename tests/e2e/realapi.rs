//! The client under every plausible reading of what REFERENCE.md leaves UNCONFIRMED, and under
//! the faults a real tenant shows: each test switches one simulator knob on and ends with tables
//! equal to the simulator's ground truth (after the fault is lifted, where there is one).

use chrono::{DateTime, Duration, Utc};

use crate::util::{
    a_call_going_on, copy_tree, sim_env, small_world, start_sim, strings, text, wxcc,
};
use wxcc::sim::{SimConfig, Simulator};

const TASKS_SQL: &str = "SELECT task_id FROM tasks ORDER BY 1";
const STORED_SQL: &str =
    "SELECT recording_id || ' ' || sha256 FROM manifest WHERE status = 'stored' ORDER BY 1";

/// Runs `wxcc sync` over the small world's two days (or from the watermark when `range` is
/// false) and returns the exit code and the JSON summary.
async fn sync_at(
    sim: &Simulator,
    dir: &std::path::Path,
    extra: &[&str],
    now: Option<DateTime<Utc>>,
) -> (i32, serde_json::Value) {
    let out = dir.join("lake");
    let mut args = vec!["sync", "--output", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut env = sim_env(sim);
    if let Some(now) = now {
        env.insert("WXCC_NOW".into(), now.to_rfc3339());
    }
    let output = wxcc(&args, &env, dir).await;
    let stdout = text(&output.stdout);
    let summary = serde_json::from_str(stdout.lines().last().unwrap_or("null"))
        .unwrap_or_else(|_| panic!("no summary: {stdout}\n{}", text(&output.stderr)));
    (output.status.code().unwrap_or(-1), summary)
}

async fn backfill(sim: &Simulator, dir: &std::path::Path) -> (i32, serde_json::Value) {
    backfill_at(sim, dir, None).await
}

/// The same backfill, run at `now` (a later scheduled run, when the ledger's retries are due).
async fn backfill_at(
    sim: &Simulator,
    dir: &std::path::Path,
    now: Option<DateTime<Utc>>,
) -> (i32, serde_json::Value) {
    sync_at(
        sim,
        dir,
        &["--from", "2026-01-05", "--to", "2026-01-07"],
        now,
    )
    .await
}

/// Every task of the two days, as the simulator knows them.
fn truth_tasks(sim: &Simulator) -> Vec<String> {
    let mut v: Vec<String> = sim
        .world()
        .tasks_as_of(sim.now())
        .into_iter()
        .map(|t| t.id)
        .collect();
    v.sort();
    v
}

/// Every recording available now, with the SHA-256 of the audio served for it.
fn truth_recordings(sim: &Simulator) -> Vec<String> {
    let world = sim.world();
    let mut v: Vec<String> = world
        .recordings_as_of(sim.now())
        .iter()
        .map(|r| format!("{} {}", r.id, world.wav_sha256(r)))
        .collect();
    v.sort();
    v
}

async fn assert_equals_truth(sim: &Simulator, dir: &std::path::Path) {
    let loc = dir.join("lake");
    let loc = loc.to_str().unwrap();
    assert_eq!(strings(loc, TASKS_SQL).await, truth_tasks(sim), "tasks");
    assert_eq!(
        strings(loc, STORED_SQL).await,
        truth_recordings(sim),
        "recordings"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_serves_fewer_tasks_than_asked_is_paged_to_the_end() {
    for honour_page_param in [true, false] {
        let sim = start_sim(SimConfig {
            page_cap: Some(7),
            honour_page_param,
            ..small_world()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let (code, summary) = backfill(&sim, dir.path()).await;
        assert_eq!(code, 0, "{summary}");
        assert!(
            summary["task_pages"].as_u64().unwrap() > 120 / 7,
            "{summary}"
        );
        assert_equals_truth(&sim, dir.path()).await;
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_on_full_pages_is_quarantined_and_nothing_after_it_is_missed() {
    let sim = start_sim(SimConfig {
        page_cap: Some(10),
        junk_per_full_page: 1,
        ..small_world()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (code, summary) = backfill(&sim, dir.path()).await;
    assert_eq!(
        code, 4,
        "quarantined records make the run partial: {summary}"
    );
    assert!(summary["rejects"].as_u64().unwrap() > 0, "{summary}");
    assert!(sim.stats().junk_records > 0);
    assert_equals_truth(&sim, dir.path()).await;
    let rejects = crate::util::files(&dir.path().join("lake/_rejects"));
    assert!(!rejects.is_empty(), "quarantine is kept");
    let before: Vec<String> = rejects
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();

    // A later run over the evening of the first day only (a partial window, no full page, so
    // no junk) leaves the day's earlier rejects in place.
    let (_, evening) = sync_at(
        &sim,
        dir.path(),
        &["--from", "2026-01-05T23:00:00Z", "--to", "2026-01-06"],
        None,
    )
    .await;
    assert_eq!(evening["rejects"], 0, "{evening}");
    let after: Vec<String> = crate::util::files(&dir.path().join("lake/_rejects"))
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert_eq!(
        after, before,
        "quarantine accumulates, never wiped by a partial window"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_captures_always_fail_is_named_and_retried_until_it_succeeds() {
    let sim = start_sim(SimConfig {
        failing_capture_tasks: 1,
        failing_capture_status: 422,
        ..small_world()
    })
    .await;
    let bad = sim.failing_capture_task_ids();
    assert_eq!(bad.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let (code, summary) = backfill(&sim, dir.path()).await;
    assert_eq!(code, 4, "{summary}");
    let failed: Vec<&str> = summary["failed_tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, [bad[0].as_str()], "{summary}");
    assert_eq!(summary["failed_tasks"][0]["status"], 422);
    // Everything else of the window is in.
    let loc = dir.path().join("lake");
    let stored = strings(loc.to_str().unwrap(), STORED_SQL).await;
    let others: Vec<String> = truth_recordings(&sim)
        .into_iter()
        .filter(|r| {
            let id = r.split(' ').next().unwrap();
            !sim.world()
                .recordings()
                .iter()
                .any(|x| x.id == id && x.task_id == bad[0])
        })
        .collect();
    assert_eq!(stored, others);

    // Still failing: still named, still partial.
    let (code, again) = backfill(&sim, dir.path()).await;
    assert_eq!(code, 4, "{again}");
    assert_eq!(again["failed_tasks"][0]["task_id"], bad[0].as_str());

    // Retried with backoff (at once, then 5 min, 30 min, ...): the run an hour later succeeds.
    sim.lift_faults();
    let (code, last) = backfill_at(&sim, dir.path(), Some(Utc::now() + Duration::hours(1))).await;
    assert_eq!(code, 0, "{last}");
    assert_eq!(last["failed_tasks"].as_array().unwrap().len(), 0);
    assert_equals_truth(&sim, dir.path()).await;
    sim.shutdown().await;
}

/// A world whose last day is today, so scheduled runs (no dates) have something to do.
fn world_ending_now(extra: SimConfig) -> SimConfig {
    SimConfig {
        start: Utc::now().date_naive() - Duration::days(1),
        days: 2,
        ..extra
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_that_appear_hours_later_without_any_change_to_the_task_are_found() {
    let now = Utc::now();
    let sim = start_sim(world_ending_now(SimConfig {
        late_capture_per_mille: 400,
        late_capture_hours: (2, 6),
        now: Some(now),
        ..small_world()
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (code, first) = sync_at(&sim, dir.path(), &[], Some(now)).await;
    assert_eq!(code, 0, "{first}");
    let pending = first["pending"]["no_recording_yet"].as_u64().unwrap();
    assert!(pending > 0, "late recordings are waited for: {first}");

    // Nothing changed: a second run asks for no captures.
    let (_, second) = sync_at(&sim, dir.path(), &[], Some(now + Duration::seconds(1))).await;
    assert_eq!(second["captures_queries"], 0, "{second}");

    // 13 hours later (past the late delays and the settle check), with the tasks untouched.
    let later = now + Duration::hours(13);
    sim.set_now(later);
    let (code, third) = sync_at(&sim, dir.path(), &[], Some(later)).await;
    assert_eq!(code, 0, "{third}");
    let loc = dir.path().join("lake");
    let stored = strings(loc.to_str().unwrap(), STORED_SQL).await;
    assert_eq!(stored, truth_recordings(&sim));
    sim.shutdown().await;
}

/// Syncs in the middle of a recorded call, then after the call ended: every recording is stored
/// as it is now. Also when the first run was killed after storing the audio, before its commit
/// (every table and the state lost), or between the manifest and the captures (the rows saying
/// which stopTime the stored audio is for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_listed_while_its_call_is_going_is_stored_again_when_it_ends() {
    let now = Utc::now();
    let (cfg, during) = a_call_going_on(now).await;
    let sim = start_sim(SimConfig {
        now: Some(during),
        ..cfg
    })
    .await;
    let first_dir = tempfile::tempdir().unwrap();
    let (code, first) = sync_at(&sim, first_dir.path(), &[], Some(during)).await;
    assert_eq!(code, 0, "{first}");
    assert_equals_truth(&sim, first_dir.path()).await;

    sim.set_now(now);
    let every = ["tasks", "captures", "manifest", "audio_facts", "_state"];
    for lost in [&[][..], &every, &["tasks", "captures", "_state"]] {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(first_dir.path(), dir.path());
        for table in lost {
            std::fs::remove_dir_all(dir.path().join("lake").join(table)).unwrap();
        }
        let (code, second) = sync_at(&sim, dir.path(), &[], Some(now)).await;
        assert_eq!(code, 0, "{lost:?}: {second}");
        assert!(second["stored"].as_u64().unwrap() > 0, "{lost:?}: {second}");
        let loc = dir.path().join("lake");
        let loc = loc.to_str().unwrap();
        assert_eq!(strings(loc, TASKS_SQL).await, truth_tasks(&sim), "{lost:?}");
        let stored = strings(loc, STORED_SQL).await;
        let truth = truth_recordings(&sim);
        assert!(
            truth.iter().all(|r| stored.contains(r)),
            "{lost:?}: every recording as it is now"
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_a_day_long_range_is_asked_in_shorter_spans() {
    // The sibling agent-activities API wants less than 24 h; a stricter reading still lists all.
    for max_range_ms in [86_399_999, 6 * 3_600_000] {
        let sim = start_sim(SimConfig {
            max_range_ms: Some(max_range_ms),
            ..small_world()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let (code, summary) = backfill(&sim, dir.path()).await;
        assert_eq!(code, 0, "{summary}");
        assert_equals_truth(&sim, dir.path()).await;
        sim.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_range_that_keeps_failing_is_recorded_and_listed_again() {
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    let sim = start_sim(SimConfig {
        failing_tasks_window: Some((at("2026-01-05T10:00:00Z"), at("2026-01-05T10:00:30Z"))),
        ..small_world()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // Short waits between retries: the defaults (up to 60 s) made this the suite's long pole.
    std::fs::write(
        dir.path().join("wxcc.toml"),
        "[sync]\nretry_max_delay_secs = 1\n",
    )
    .unwrap();
    let (code, summary) = backfill(&sim, dir.path()).await;
    assert_eq!(code, 4, "{summary}");
    let gaps = summary["gaps"].as_array().unwrap();
    assert!(!gaps.is_empty(), "{summary}");
    let covered: i64 = gaps
        .iter()
        .map(|g| g["to_ms"].as_i64().unwrap() - g["from_ms"].as_i64().unwrap())
        .sum();
    assert!(
        covered <= 4 * 60_000,
        "only the failing minute is a gap: {summary}"
    );
    assert_eq!(gaps[0]["status"], 500);
    let loc = dir.path().join("lake");
    let listed = strings(loc.to_str().unwrap(), TASKS_SQL).await;
    let in_gap = |id: &str| {
        sim.world().tasks_as_of(sim.now()).iter().any(|t| {
            t.id == id
                && gaps.iter().any(|g| {
                    (g["from_ms"].as_i64().unwrap()..g["to_ms"].as_i64().unwrap())
                        .contains(&t.created_ms)
                })
        })
    };
    let expected: Vec<String> = truth_tasks(&sim)
        .into_iter()
        .filter(|id| !in_gap(id))
        .collect();
    assert_eq!(listed, expected, "everything outside the gap is listed");

    sim.lift_faults();
    let (code, last) = backfill(&sim, dir.path()).await;
    assert_eq!(code, 0, "{last}");
    assert_eq!(last["gaps"].as_array().unwrap().len(), 0);
    assert_equals_truth(&sim, dir.path()).await;
    sim.shutdown().await;
}

/// A busy day as a large tenant has it, scaled down: listed and processed a few tasks at a time
/// (`tasks_per_part`) into partitions spread over several files (`rows_per_file`), under a
/// server that caps its pages. Every task and recording lands once; a second run adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_day_done_in_parts_and_files_equals_the_truth() {
    let sim = start_sim(SimConfig {
        page_cap: Some(9),
        ..small_world()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wxcc.toml"),
        "[sync]\ntasks_per_part = 13\ncommit_every_recordings = 4\n\n[storage]\nrows_per_file = 10\n",
    )
    .unwrap();
    let (code, summary) = backfill(&sim, dir.path()).await;
    assert_eq!(code, 0, "{summary}");
    assert_equals_truth(&sim, dir.path()).await;
    let tasks_files = walkdir_count(&dir.path().join("lake/tasks"));
    assert!(tasks_files > 4, "tasks spread over files: {tasks_files}");
    let again = sim.now() + Duration::minutes(1);
    let (code, second) = backfill_at(&sim, dir.path(), Some(again)).await;
    assert_eq!(code, 0, "{second}");
    assert_eq!(second["stored"], 0, "{second}");
    assert_equals_truth(&sim, dir.path()).await;
    sim.shutdown().await;
}

/// Parquet files under `dir`.
fn walkdir_count(dir: &std::path::Path) -> usize {
    let mut n = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                n += 1;
            }
        }
    }
    n
}
