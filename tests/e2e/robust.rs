//! Sync under a flaky API and under `kill -9`: the dataset must come out the same.

use std::time::Duration;

use crate::sync::sync;
use crate::util::{TABLES, dump, query, sim_env, small_world, start_sim, text, wxcc_command};
use wxcc::sim::SimConfig;

/// `wxcc sync` of the small world: exit code and summary.
async fn sync_code(sim: &wxcc::sim::Simulator, out: &std::path::Path) -> (i32, serde_json::Value) {
    let output = crate::util::sync_small_world(
        out.to_str().unwrap(),
        &[],
        &sim_env(sim),
        out.parent().unwrap(),
    )
    .await;
    let summary = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("no summary: {}", text(&output.stderr)));
    (output.status.code().unwrap_or(-1), summary)
}

async fn dumps(loc: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (t, order) in TABLES {
        out.push(dump(loc, t, order).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_leave_the_dataset_identical_to_a_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let clean_out = dir.path().join("clean");
    let clean = start_sim(small_world()).await;
    sync(&clean, &clean_out).await;
    clean.shutdown().await;

    let faulty = start_sim(SimConfig {
        error_rate: 0.1,
        truncate_rate: 0.2,
        url_ttl: Some(Duration::from_secs(1)),
        access_token_ttl: Duration::from_secs(3),
        ..small_world()
    })
    .await;
    let faulty_out = dir.path().join("faulty");
    let (code, summary) = sync_code(&faulty, &faulty_out).await;
    if code == 4 {
        // A download whose 1 s URLs kept expiring (a loaded machine) is owed, said so, and
        // finished by the next run: that is the contract, not a failure.
        assert!(summary["failed"].as_u64().unwrap() > 0, "{summary}");
        let (code, next) = sync_code(&faulty, &faulty_out).await;
        assert_eq!(code, 0, "{next}");
    } else {
        assert_eq!(code, 0, "{summary}");
    }
    let stats = faulty.stats();
    assert!(
        stats.truncated_downloads > 0,
        "the faults were exercised: {stats:?}"
    );
    assert!(summary["api"]["retries"].as_u64().unwrap() > 0, "{summary}");
    assert!(
        summary["token_refreshes"].as_u64().unwrap() > 1,
        "{summary}"
    );
    assert_eq!(
        dumps(faulty_out.to_str().unwrap()).await,
        dumps(clean_out.to_str().unwrap()).await
    );
    faulty.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_runs_rerun_to_the_same_dataset_without_redownloading() {
    let cfg = SimConfig {
        median_call_secs: 20,
        max_call_secs: 120,
        ..small_world()
    };
    let dir = tempfile::tempdir().unwrap();
    let reference = start_sim(cfg.clone()).await;
    let ref_out = dir.path().join("reference");
    sync(&reference, &ref_out).await;
    reference.shutdown().await;

    let sim = start_sim(cfg).await;
    let out = dir.path().join("crashed");
    let out_s = out.to_str().unwrap().to_owned();
    let (from, to) = ("2026-01-05", "2026-01-07");
    let args = [
        "sync",
        "--from",
        from,
        "--to",
        to,
        "--output",
        out_s.as_str(),
    ];
    // Deterministic pseudo-random kill points between 0.05 s and 2.5 s into a run.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let trials = 6;
    for _ in 0..trials {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(50 + (seed >> 33) % 2450);
        let mut child = wxcc_command(&args, &sim_env(&sim), dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::select! {
            _ = child.wait() => {}
            _ = tokio::time::sleep(delay) => {
                child.start_kill().unwrap(); // SIGKILL: no cleanup runs
                child.wait().await.unwrap();
            }
        }
    }
    let last = wxcc_command(&args, &sim_env(&sim), dir.path())
        .output()
        .await
        .unwrap();
    assert!(last.status.success(), "{}", text(&last.stderr));

    assert_eq!(dumps(&out_s).await, dumps(ref_out.to_str().unwrap()).await);
    for (table, key) in TABLES {
        let sql = format!("SELECT count(*) - count(DISTINCT ({key})) FROM {table}");
        let dupes = query(&out_s, &sql).await;
        let col = dupes[0].column(0);
        let n = arrow::array::AsArray::as_primitive::<arrow::datatypes::Int64Type>(col).value(0);
        assert_eq!(n, 0, "duplicates in {table}");
    }
    // Each kill may cut at most `download_concurrency` transfers short; everything completed
    // before a kill must not be fetched again.
    let recordings = sim.world().recordings().len() as u64;
    let downloads = sim.stats().downloads;
    assert!(
        downloads <= recordings + trials * 8,
        "{downloads} downloads for {recordings} recordings over {trials} kills"
    );
    sim.shutdown().await;
}

/// Syncs the small world into `out` and checks the run stopped on the store (exit 1, saying
/// why); its summary.
async fn stopped_by_the_store(
    out: &std::path::Path,
    env: &std::collections::HashMap<String, String>,
) -> serde_json::Value {
    let output =
        crate::util::sync_small_world(out.to_str().unwrap(), &[], env, out.parent().unwrap()).await;
    let err = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the lake's store keeps failing recording after recording"),
        "{err}"
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failing_every_recording_stops_the_run_and_the_next_run_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let reference = start_sim(small_world()).await;
    let ref_out = dir.path().join("reference");
    sync(&reference, &ref_out).await;
    reference.shutdown().await;

    // `audio` is a file: nothing under it can be looked up or written, while the tables can.
    let sim = start_sim(small_world()).await;
    let out = dir.path().join("lake");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("audio"), b"not a folder").unwrap();
    let env = sim_env(&sim);
    let summary = stopped_by_the_store(&out, &env).await;
    let recordings = sim.world().recordings().len() as u64;
    // Stopped after a few recordings (at most one download slot each past the limit), not one
    // failure per recording.
    let failed = summary["failed"].as_u64().unwrap();
    assert!(
        (1..=13).contains(&failed),
        "{failed} of {recordings}: {summary}"
    );
    assert!(recordings > 13, "the world is large enough to tell");
    assert_eq!(summary["stored"], 0, "{summary}");
    assert_eq!(
        sim.stats().downloads,
        0,
        "nothing fetched for a store that fails"
    );

    // A store that can say "not there" but refuses every write: each recording's key is taken
    // by a folder. The run stops after a few downloads, not after all of them.
    std::fs::remove_file(out.join("audio")).unwrap();
    let originals = crate::util::files(&ref_out.join("audio"));
    for original in &originals {
        let taken = out.join(original.strip_prefix(&ref_out).unwrap());
        std::fs::create_dir_all(taken).unwrap();
    }
    stopped_by_the_store(&out, &env).await;
    let downloads = sim.stats().downloads;
    assert!(
        (5..=13).contains(&downloads),
        "{downloads} downloads of {} recordings",
        originals.len()
    );

    // Mended: the next run stores everything else. Recordings whose task row a failed run
    // committed are owed on the ledger's schedule (exit 4 says so until then); a full refresh
    // takes them up at once.
    std::fs::remove_dir_all(out.join("audio")).unwrap();
    let (code, next) = sync_code(&sim, &out).await;
    let owed = next["pending"]["download_failed"].as_u64().unwrap();
    assert_eq!(code, if owed > 0 { 4 } else { 0 }, "{next}");
    if owed > 0 {
        let output = crate::util::sync_small_world(
            out.to_str().unwrap(),
            &["--full-refresh"],
            &env,
            dir.path(),
        )
        .await;
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    assert_eq!(
        dumps(out.to_str().unwrap()).await,
        dumps(ref_out.to_str().unwrap()).await
    );
    sim.shutdown().await;
}

/// The runs of [`a_full_disk_stops_the_run_loses_nothing_and_the_next_run_finishes`], in one
/// mount namespace: a small tmpfs as the lake's disk, a sync that fills it, a copy of what it
/// left, the disk grown, the next runs, a copy of the result. `$1` is the disk's first size.
const FULL_DISK_SCRIPT: &str = r#"
set -u
mount -t tmpfs -o "size=$1" tmpfs disk || exit 90
sync() { "$WXCC" sync --from 2026-01-05 --to 2026-01-07 --output "$PWD/disk" "$@"; }
sync >full.json 2>full.err; echo $? >full.rc
cp -a disk after_full
mount -o remount,size=256m disk || exit 91
sync >next.json 2>next.err; echo $? >next.rc
if [ "$(cat next.rc)" = 4 ]; then sync --full-refresh >refresh.json 2>refresh.err; echo $? >refresh.rc; fi
cp -a disk mended
"#;

/// A lake whose disk fills up: the run stops with the disk's own complaint, what it wrote is
/// whole (no torn object, no stray temporary file, every manifest row matching its object), and
/// once space is freed the next runs finish to the same dataset as a clean run. The disk is a
/// tmpfs in a user and mount namespace of its own (`unshare -Urm`), so no privilege is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_run_loses_nothing_and_the_next_run_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let probe = std::process::Command::new("unshare")
        .args(["-Urm", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        eprintln!("skipped: this kernel or sandbox allows no `unshare -Urm` to mount a small disk");
        return;
    }
    let reference = start_sim(small_world()).await;
    let ref_out = dir.path().join("reference");
    sync(&reference, &ref_out).await;
    reference.shutdown().await;
    let audio: u64 = crate::util::files(&ref_out.join("audio"))
        .iter()
        .map(|f| f.metadata().unwrap().len())
        .sum();

    let sim = start_sim(small_world()).await;
    let mut env = sim_env(&sim);
    env.insert("WXCC".into(), crate::util::WXCC.into());
    std::fs::create_dir(dir.path().join("disk")).unwrap();
    // Frequent commits, so the disk fills up between them, with rows already written.
    std::fs::write(
        dir.path().join("wxcc.toml"),
        "[sync]\ncommit_every_recordings = 4\n",
    )
    .unwrap();
    // Room for the tables and about a third of the audio.
    let size = format!("{}k", (audio / 3) / 1024 + 256);
    let script = crate::util::command(
        "unshare",
        &["-Urm", "bash", "-c", FULL_DISK_SCRIPT, "full-disk", &size],
        &env,
        dir.path(),
    )
    .output()
    .await
    .unwrap();
    assert!(script.status.success(), "{}", text(&script.stderr));
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();

    // The full disk: exit 1 with the disk's complaint, said once, in the error; a summary all
    // the same. (Should the recordings that still fit break every run of five failures, and
    // the last commits fit too, the run ends partial instead: exit 4, the failures named.)
    let err = read("full.err");
    let summary: serde_json::Value = serde_json::from_str(&read("full.json")).unwrap();
    assert!(summary["stored"].as_u64().unwrap() > 0, "{summary}");
    match read("full.rc").trim() {
        "1" => {
            let last = err.lines().last().unwrap_or_default();
            assert!(last.starts_with("error: "), "{err}");
            assert_eq!(last.matches("No space left on device").count(), 1, "{err}");
        }
        "4" => {
            assert!(summary["failed"].as_u64().unwrap() > 0, "{summary}");
            assert!(err.contains("No space left on device"), "{err}");
        }
        code => panic!("exit {code}: {err}"),
    }

    // What it left is whole: every manifest row's object is there with its size and checksum,
    // and no temporary file or torn object lies beside them.
    let after = dir.path().join("after_full");
    let rows = crate::util::strings(
        after.to_str().unwrap(),
        "SELECT concat_ws('|', object_uri, CAST(size_bytes AS VARCHAR), sha256) FROM manifest \
         WHERE status = 'stored'",
    )
    .await;
    // (Under load the disk may fill before the first commit: then no row, and whole objects.)
    let mut listed = std::collections::BTreeSet::new();
    for row in &rows {
        let [uri, size, sha] = row.split('|').collect::<Vec<_>>()[..] else {
            panic!("{row}")
        };
        let (_, key) = uri.split_once("/disk/").unwrap();
        let file = after.join(key);
        assert_eq!(file.metadata().unwrap().len().to_string(), size, "{key}");
        assert_eq!(crate::util::sha256_file(&file), sha, "{key}");
        listed.insert(file);
    }
    for file in crate::util::files(&after.join("audio")) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.contains('#'),
            "a temporary file was left: {}",
            file.display()
        );
        // An object without its row is allowed (the next run finds it present), if whole.
        if !listed.contains(&file) {
            let key = file.strip_prefix(&after).unwrap();
            let original = ref_out.join(key);
            assert_eq!(
                crate::util::sha256_file(&file),
                crate::util::sha256_file(&original),
                "torn object {}",
                key.display()
            );
        }
    }

    // Space freed: the next runs finish, and the dataset is a clean run's.
    let next = read("next.rc");
    assert!(
        ["0", "4"].contains(&next.trim()),
        "{next}: {}",
        read("next.err")
    );
    if next.trim() == "4" {
        assert_eq!(read("refresh.rc").trim(), "0", "{}", read("refresh.err"));
    }
    assert_eq!(
        dumps(dir.path().join("mended").to_str().unwrap()).await,
        dumps(ref_out.to_str().unwrap()).await
    );
    sim.shutdown().await;
}
