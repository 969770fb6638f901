//! `wxcc sync` against the simulator: completeness, checksums, idempotence, no leaked secrets.

use std::path::Path;

use chrono::Duration;

use crate::util::{
    TABLES, dump, files, sha256_file, sim_env, small_world, start_sim, strings, sync_small_world,
    text, wxcc,
};
use wxcc::sim::Simulator;

fn range_args(sim: &Simulator, days: u32) -> (String, String) {
    let start = small_world().start;
    let _ = sim;
    (
        start.to_string(),
        (start + Duration::days(i64::from(days))).to_string(),
    )
}

pub async fn sync(sim: &Simulator, out: &Path) -> serde_json::Value {
    let (from, to) = range_args(sim, small_world().days);
    let output = wxcc(
        &[
            "sync",
            "--from",
            &from,
            "--to",
            &to,
            "--output",
            out.to_str().unwrap(),
        ],
        &sim_env(sim),
        out.parent().unwrap(),
    )
    .await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "sync failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    for secret in secrets(sim) {
        assert!(
            !stdout.contains(&secret) && !stderr.contains(&secret),
            "secret leaked to output"
        );
    }
    serde_json::from_str(stdout.lines().last().expect("a summary line")).expect("summary is JSON")
}

/// Where a local lake keeps a recording's audio.
fn stored_audio(out: &Path, org: &str, rec: &wxcc::sim::SimRecording) -> std::path::PathBuf {
    out.join("audio")
        .join(org)
        .join(&rec.task_id)
        .join(format!("{}.wav", rec.id))
}

/// `wxcc sync --full-refresh` over the small world's days: every recording checked again.
async fn full_refresh(sim: &Simulator, out: &Path) -> std::process::Output {
    let (from, to) = range_args(sim, small_world().days);
    let args = [
        "sync",
        "--full-refresh",
        "--from",
        &from,
        "--to",
        &to,
        "--output",
        out.to_str().unwrap(),
    ];
    wxcc(&args, &sim_env(sim), out.parent().unwrap()).await
}

/// Values that must never be written anywhere: credentials, token material, signed URLs.
fn secrets(sim: &Simulator) -> Vec<String> {
    let c = sim.credentials();
    vec![
        c.client_secret.clone(),
        c.refresh_token.clone(),
        "_P0A1_".into(), // every simulator token ends in _P0A1_<orgId>
        "X-Amz-Signature".into(),
        "/media/".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_exports_every_task_and_recording_exactly_once() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    let summary = sync(&sim, &out).await;
    let loc = out.to_str().unwrap();
    let world = sim.world();

    let mut expected_tasks: Vec<String> = world.tasks().iter().map(|t| t.id.clone()).collect();
    expected_tasks.sort();
    assert_eq!(
        strings(loc, "SELECT task_id FROM tasks ORDER BY task_id").await,
        expected_tasks,
        "every simulated task exactly once"
    );
    assert_eq!(summary["tasks"], expected_tasks.len());

    let mut expected_recs: Vec<String> = world
        .recordings()
        .iter()
        .map(|r| format!("{}/{}", r.task_id, r.id))
        .collect();
    expected_recs.sort();
    assert!(!expected_recs.is_empty());
    assert_eq!(
        strings(
            loc,
            "SELECT task_id || '/' || recording_id FROM captures ORDER BY 1"
        )
        .await,
        expected_recs,
        "every simulated recording exactly once in captures"
    );

    let mut expected_manifest: Vec<String> = world
        .recordings()
        .iter()
        .map(|r| format!("{} {} stored", r.id, world.wav_sha256(r)))
        .collect();
    expected_manifest.sort();
    assert_eq!(
        strings(
            loc,
            "SELECT recording_id || ' ' || sha256 || ' ' || status FROM manifest ORDER BY 1"
        )
        .await,
        expected_manifest,
        "every recording stored once with the simulator's SHA-256"
    );

    // The audio objects are where the manifest says, keyed by task id.
    for line in strings(loc, "SELECT object_uri FROM manifest").await {
        let path = url::Url::parse(&line).unwrap().to_file_path().unwrap();
        assert!(
            path.starts_with(out.join("audio").join(world.org_id())),
            "{line}"
        );
        assert!(path.is_file(), "{line}");
    }

    // Every stored recording was measured as it streamed in, and matches its capture.
    let facts = strings(
        loc,
        "SELECT status || ' ' || channel1_label || ' ' || channel2_label || ' ' || \
         CAST(abs(duration_mismatch_ms) <= 1 AS VARCHAR) || ' ' || CAST(channels AS VARCHAR) \
         FROM audio_facts",
    )
    .await;
    assert_eq!(facts.len(), expected_recs.len());
    for f in &facts {
        assert!(f.starts_with("ok ") && f.ends_with(" true 2"), "{f}");
    }

    // Partitions are Hive-style by org and UTC date.
    let dates = strings(loc, "SELECT DISTINCT date FROM tasks ORDER BY 1").await;
    assert_eq!(dates, ["2026-01-05", "2026-01-06"]);
    let orgs = strings(loc, "SELECT DISTINCT org_id FROM manifest").await;
    assert_eq!(orgs, [world.org_id().to_string()]);

    // No secret in any file written.
    for file in files(&out) {
        let bytes = std::fs::read(&file).unwrap();
        for secret in secrets(&sim) {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret:?} found in {}",
                file.display()
            );
        }
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_sync_of_the_same_range_changes_nothing() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    let loc = out.to_str().unwrap().to_owned();
    let first = sync(&sim, &out).await;
    let mut before = Vec::new();
    for (t, order) in TABLES {
        before.push(dump(&loc, t, order).await);
    }
    let second = sync(&sim, &out).await;
    for ((t, order), was) in TABLES.iter().zip(before) {
        assert_eq!(dump(&loc, t, order).await, was, "{t} changed on re-run");
    }
    assert_eq!(second["tasks"], first["tasks"]);
    assert!(first["captures_queries"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(
        second["captures_queries"], 0,
        "nothing changed, so no captures are asked for again: {second}"
    );
    assert_eq!(second["stored"], 0);
    let runs = files(&out.join("_state"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/runs/"))
        .count();
    assert_eq!(runs, 2, "each run's summary is kept in the store");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_windows_without_calling_the_data_api() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    let output = wxcc(
        &[
            "sync",
            "--dry-run",
            "--from",
            "2026-01-05T12:00:00Z",
            "--to",
            "2026-01-08",
            "--output",
            out.to_str().unwrap(),
        ],
        &sim_env(&sim),
        dir.path(),
    )
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(text(&output.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(summary["dry_run"], true);
    assert_eq!(summary["windows"], 3);
    assert_eq!(sim.stats().api_requests, 0, "a plan calls no data API");
    assert!(!out.join("tasks").exists());

    // A reader that went away before the summary (`wxcc sync | head -0`) leaves the run's own
    // exit code, not a panic's.
    let args = ["sync", "--dry-run", "--output", out.to_str().unwrap()];
    let mut child = crate::util::wxcc_command(&args, &sim_env(&sim), dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let closed = child.wait_with_output().await.unwrap();
    assert_eq!(closed.status.code(), Some(0), "{}", text(&closed.stderr));

    // A mistyped year is refused before anything is asked, not planned day by day.
    for (from, to) in [("0026-01-05", "2026-01-08"), ("2026-01-05", "3026-01-08")] {
        let args = [
            "sync",
            "--from",
            from,
            "--to",
            to,
            "--output",
            out.to_str().unwrap(),
        ];
        let refused = wxcc(&args, &sim_env(&sim), dir.path()).await;
        let stderr = text(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{from}..{to}: {stderr}");
        assert!(stderr.contains("Check the year"), "{stderr}");
    }
    assert_eq!(sim.stats().api_requests, 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let sim = start_sim(small_world()).await;
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
            "2026-01-06",
            "--output",
            out.to_str().unwrap(),
        ],
        &sim_env(&sim),
        dir.path(),
    )
    .await;
    assert!(output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.lines().count() > 1);
    for line in stderr.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("{line}"));
        assert!(v["level"].is_string(), "{line}");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_audio_is_repaired_by_the_next_run() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    sync(&sim, &out).await;
    let world = sim.world();
    let org = world.org_id().to_owned();
    let recs = world.recordings();
    let (cut, flipped) = (
        stored_audio(&out, &org, recs[0]),
        stored_audio(&out, &org, recs[1]),
    );
    // One object cut short (size differs), one with a flipped byte (same size).
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let mut bytes = std::fs::read(&flipped).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&flipped, &bytes).unwrap();

    // A plain run trusts the lake (nothing changed in the API); a full refresh re-checks sizes.
    let summary = sync(&sim, &out).await;
    assert_eq!(summary["stored"], 0, "{summary}");
    let output = full_refresh(&sim, &out).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        summary["stored"], 1,
        "the size mismatch is repaired: {summary}"
    );
    assert_eq!(sha256_file(&cut), world.wav_sha256(recs[0]));
    assert_ne!(
        sha256_file(&flipped),
        world.wav_sha256(recs[1]),
        "same size: trusted"
    );

    let (from, to) = ("2026-01-05", "2026-01-07");
    let output = wxcc(
        &[
            "sync",
            "--verify-checksums",
            "--from",
            from,
            "--to",
            to,
            "--output",
            out.to_str().unwrap(),
        ],
        &sim_env(&sim),
        dir.path(),
    )
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        sha256_file(&flipped),
        world.wav_sha256(recs[1]),
        "checksum mismatch repaired"
    );
    sim.shutdown().await;
}

/// An object found damaged whose repair download then failed: the failed row no longer holds
/// the size and checksum that showed the damage, so a later run must download it again, not
/// hash the damaged bytes and take them as stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_object_whose_repair_failed_is_downloaded_again_later() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    sync(&sim, &out).await;
    let world = sim.world();
    let rec = &world.recordings()[0];
    let path = stored_audio(&out, world.org_id(), rec);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();

    // The same world, whose media host cuts every download short: the repair fails.
    let broken = start_sim(wxcc::sim::SimConfig {
        truncate_rate: 1.0,
        ..small_world()
    })
    .await;
    assert_eq!(broken.world().recordings(), world.recordings());
    let output = full_refresh(&broken, &out).await;
    let summary: serde_json::Value =
        serde_json::from_str(text(&output.stdout).lines().last().expect("summary")).unwrap();
    assert_eq!(output.status.code(), Some(4), "{summary}");
    assert_eq!(summary["failed"], 1, "{summary}");
    broken.shutdown().await;

    // The next run, with the media host well again, downloads it again.
    let summary = sync(&sim, &out).await;
    assert_eq!(summary["stored"], 1, "{summary}");
    assert_eq!(sha256_file(&path), world.wav_sha256(rec));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pii_hashing_keeps_numbers_joinable_but_unreadable() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    let mut env = sim_env(&sim);
    env.insert("WXCC_PII".into(), "hash".into());
    env.insert("WXCC_PII_KEY".into(), "a-customer-kept-secret".into());
    let output = sync_small_world(out.to_str().unwrap(), &[], &env, dir.path()).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let loc = out.to_str().unwrap();
    let origins = strings(
        loc,
        "SELECT origin FROM tasks WHERE channel_type = 'telephony'",
    )
    .await;
    assert!(!origins.is_empty());
    assert!(origins.iter().all(|o| o.starts_with("h:")), "{origins:?}");
    // Joinable: the same caller hashes the same everywhere.
    let world_origins: std::collections::HashSet<&str> = sim
        .world()
        .tasks()
        .iter()
        .map(|t| t.origin.as_str())
        .collect();
    for file in files(&out) {
        let bytes = std::fs::read(&file).unwrap();
        for number in world_origins.iter().filter(|o| o.starts_with('+')).take(20) {
            assert!(
                !bytes.windows(number.len()).any(|w| w == number.as_bytes()),
                "{number} readable in {}",
                file.display()
            );
        }
    }
    let without_key = wxcc(
        &[
            "sync",
            "--pii",
            "hash",
            "--from",
            "2026-01-05",
            "--output",
            loc,
        ],
        &sim_env(&sim),
        dir.path(),
    )
    .await;
    assert_eq!(without_key.status.code(), Some(2));
    assert!(text(&without_key.stderr).contains("WXCC_PII_KEY"));
    sim.shutdown().await;
}
