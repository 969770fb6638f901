//! A graceful stop: SIGTERM during downloads commits what is complete, leaves no partial object
//! or upload, releases the lease, and the next run starts at once and finishes the job.

use std::time::{Duration, Instant};

use crate::util::{files, sim_env, small_world, start_sim, strings, text, wxcc_command};
use wxcc::sim::SimConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_downloads_stops_cleanly_and_the_next_run_finishes() {
    let sim = start_sim(SimConfig {
        // Slow links: downloads are in flight when the signal comes.
        download_bytes_per_sec: Some(200_000),
        median_call_secs: 30,
        max_call_secs: 90,
        ..small_world()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    let loc = out.to_str().unwrap().to_owned();
    let args = [
        "sync",
        "--from",
        "2026-01-05",
        "--to",
        "2026-01-07",
        "--output",
        loc.as_str(),
    ];
    let child = wxcc_command(&args, &sim_env(&sim), dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first recordings are stored (so some work is complete and some in flight).
    let began = Instant::now();
    while sim.stats().downloads < 12 && began.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = child.id().unwrap().to_string();
    let signalled = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    let took = signalled.elapsed();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    assert!(took < Duration::from_secs(15), "stopped in {took:?}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["stopped"], true, "{summary}");
    // No partial object or staged upload part is left behind.
    for f in files(&out) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.contains('#'), "staged upload left: {}", f.display());
    }
    // What is recorded as stored is complete.
    let stored = strings(
        &loc,
        "SELECT object_uri || ' ' || CAST(size_bytes AS VARCHAR) FROM manifest WHERE status = 'stored'",
    )
    .await;
    for row in &stored {
        let (uri, size) = row.rsplit_once(' ').unwrap();
        let path = uri.strip_prefix("file://").unwrap();
        assert_eq!(std::fs::metadata(path).unwrap().len().to_string(), size);
    }
    // A first run marks where settle checks begin as it starts, so one stopped midway leaves
    // it too: the tasks it asked about while young get their settle check from a later run.
    let meta = files(&out.join("_state"))
        .into_iter()
        .find(|f| f.ends_with("ledger.json"))
        .expect("the ledger's meta file");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
    assert!(meta["settled_until"].is_string(), "{meta}");
    // The lease was released: the next run starts at once and completes.
    let next = wxcc_command(&args, &sim_env(&sim), dir.path())
        .output()
        .await
        .unwrap();
    assert_eq!(next.status.code(), Some(0), "{}", text(&next.stderr));
    let truth: usize = sim.world().recordings_available_at(sim.now()).len();
    let all = strings(
        &loc,
        "SELECT recording_id FROM manifest WHERE status = 'stored'",
    )
    .await;
    assert_eq!(all.len(), truth);
    sim.shutdown().await;
}
