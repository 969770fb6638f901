//! `wxcc sync --derive`: 16 kHz mono files for transcription beside each recording, recorded in
//! the `derivatives` table, made once per original and remade when the original changes.

use std::path::Path;

use crate::util::{
    dump, sha256_file, sim_env, small_world, start_sim, strings, sync_small_world, text, wxcc,
    wxcc_command,
};
use wxcc::lake::{Lake, ManifestRow, Table, manifest_batch};
use wxcc::sim::Simulator;

/// Runs `wxcc sync` over the small world's two days with `extra` flags; returns the summary.
async fn sync_with(sim: &Simulator, out: &Path, extra: &[&str]) -> serde_json::Value {
    sync_logged(sim, out, extra).await.0
}

/// Like [`sync_with`], also returning the log (standard error).
async fn sync_logged(sim: &Simulator, out: &Path, extra: &[&str]) -> (serde_json::Value, String) {
    let output = sync_small_world(
        out.to_str().unwrap(),
        extra,
        &sim_env(sim),
        out.parent().unwrap(),
    )
    .await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "sync failed\n{stdout}\n{stderr}");
    let summary =
        serde_json::from_str(stdout.lines().last().expect("summary")).expect("summary is JSON");
    (summary, stderr)
}

/// Rewrites the manifest row of the object at `uri` to say it was stored as `bytes`.
async fn record_as_stored(sim: &Simulator, loc: &str, uri: &str, bytes: &[u8]) {
    use sha2::Digest;
    let sql = format!(
        "SELECT date || ' ' || task_id || ' ' || recording_id FROM manifest WHERE object_uri = '{uri}'"
    );
    let found = strings(loc, &sql).await;
    let [date, task_id, recording_id] = found[0].split(' ').collect::<Vec<_>>()[..] else {
        panic!("{found:?}")
    };
    let row = ManifestRow {
        task_id: task_id.into(),
        recording_id: recording_id.into(),
        object_uri: uri.into(),
        size_bytes: Some(bytes.len() as i64),
        sha256: Some(hex::encode(sha2::Sha256::digest(bytes))),
        content_type: Some("audio/wav".into()),
        status: "stored".into(),
        error: None,
    };
    let lake = Lake::open(loc).unwrap();
    let org = sim.credentials().org_id.clone();
    lake.upsert_partition(
        Table::Manifest,
        &org,
        date.parse().unwrap(),
        manifest_batch(&[row]).unwrap(),
    )
    .await
    .unwrap();
}

/// A local `file://` URI as a path.
fn local(uri: &str) -> std::path::PathBuf {
    url::Url::parse(uri).unwrap().to_file_path().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derivatives_are_made_beside_each_recording_once() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    let loc = out.to_str().unwrap();
    let summary = sync_with(&sim, &out, &["--derive", "mono16k,channels"]).await;
    let recordings = sim.world().recordings().len() as u64;
    assert!(recordings > 10);
    assert_eq!(summary["derived"], 3 * recordings, "{summary}");
    assert_eq!(summary["derive_failed"], 0);

    let rows = strings(
        loc,
        "SELECT concat_ws('|', d.kind, d.object_uri, d.sha256, CAST(d.size_bytes AS VARCHAR), \
                CAST(d.duration_ms AS VARCHAR), CAST(d.sample_rate AS VARCHAR), \
                CAST(d.channels AS VARCHAR), coalesce(d.channel_label, '-'), \
                coalesce(c.channel1, '-'), coalesce(c.channel2, '-'), \
                CAST(f.duration_ms AS VARCHAR), m.object_uri) \
         FROM derivatives d \
         JOIN manifest m ON m.date = d.date AND m.task_id = d.task_id \
              AND m.recording_id = d.recording_id \
         JOIN captures c ON c.date = d.date AND c.task_id = d.task_id \
              AND c.recording_id = d.recording_id \
         JOIN audio_facts f ON f.date = d.date AND f.task_id = d.task_id \
              AND f.recording_id = d.recording_id \
         WHERE d.status = 'ok' AND d.source_sha256 = m.sha256",
    )
    .await;
    assert_eq!(rows.len() as u64, 3 * recordings);
    for row in &rows {
        let f: Vec<&str> = row.split('|').collect();
        let (kind, uri, sha, size, ms) = (f[0], f[1], f[2], f[3], f[4]);
        let path = local(uri);
        let original = local(f[11]);
        assert_eq!(
            path,
            original.with_extension(format!("{kind}.wav")),
            "beside the original"
        );
        assert_eq!(sha256_file(&path), sha, "{kind} checksum");
        assert_eq!(std::fs::metadata(&path).unwrap().len().to_string(), size);
        let wav = hound::WavReader::open(&path).unwrap();
        let spec = wav.spec();
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (16_000, 1, 16),
            "{kind}"
        );
        assert_eq!((f[5], f[6]), ("16000", "1"));
        let original_ms: i64 = f[10].parse().unwrap();
        let derived_ms: i64 = ms.parse().unwrap();
        assert!(
            (derived_ms - original_ms).abs() <= 1,
            "{kind}: {derived_ms} vs {original_ms}"
        );
        assert_eq!(i64::from(wav.duration()) / 16, derived_ms);
        let label = match kind {
            "mono16k" => "-",
            "ch1_16k" => f[8],
            "ch2_16k" => f[9],
            other => panic!("unexpected kind {other}"),
        };
        assert_eq!(f[7], label, "channel label from the capture");
    }

    // The transcription job list can point at the mono derivatives.
    let export = wxcc(
        &[
            "export",
            "--data",
            loc,
            "--audio",
            "mono16k",
            "--sql",
            "SELECT org_id, task_id, recording_id FROM recordings",
            "--format",
            "csv",
        ],
        &sim_env(&sim),
        dir.path(),
    )
    .await;
    assert!(export.status.success(), "{}", text(&export.stderr));
    let jobs = text(&export.stdout);
    assert_eq!(jobs.lines().count() as u64, recordings + 1, "{jobs}");
    assert!(
        jobs.lines().skip(1).all(|l| l.contains(".mono16k.wav,")),
        "{jobs}"
    );

    let before = dump(loc, "derivatives", "task_id, recording_id, kind").await;
    let again = sync_with(&sim, &out, &["--derive", "mono16k,channels"]).await;
    assert_eq!(again["derived"], 0, "nothing derived twice: {again}");
    assert_eq!(again["stored"], 0);
    assert_eq!(
        dump(loc, "derivatives", "task_id, recording_id, kind").await,
        before
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derivation_switched_on_later_reads_the_stored_copies() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    let loc = out.to_str().unwrap();
    let first = sync_with(&sim, &out, &[]).await;
    assert_eq!(first["derived"], 0);
    let downloads = sim.stats().downloads;
    let recordings = sim.world().recordings().len() as u64;

    // The config file's [sync] derive works like the flag.
    std::fs::write(
        dir.path().join("wxcc.toml"),
        "[sync]\nderive = [\"mono16k\"]\n",
    )
    .unwrap();
    let later = sync_with(&sim, &out, &[]).await;
    assert_eq!(later["derived"], recordings, "{later}");
    assert_eq!(later["stored"], 0, "no download: {later}");
    assert_eq!(
        sim.stats().downloads,
        downloads,
        "derived from the stored copies"
    );

    // An original damaged in place (same size, so trusted without --verify-checksums) is caught
    // when read back to derive from: downloaded again, and derived from the fresh bytes.
    let originals = strings(
        loc,
        "SELECT object_uri FROM manifest ORDER BY task_id, recording_id",
    )
    .await;
    let victim = local(&originals[0]);
    let good = sha256_file(&victim);
    let size = std::fs::metadata(&victim).unwrap().len() as usize;
    std::fs::write(&victim, vec![b'x'; size]).unwrap();
    std::fs::remove_file(victim.with_extension("mono16k.wav")).unwrap();
    let third = sync_with(&sim, &out, &["--derive", "channels"]).await;
    assert_eq!(third["stored"], 1, "re-downloaded: {third}");
    assert_eq!(third["derived"], 2 * recordings, "{third}");
    assert_eq!(sha256_file(&victim), good);

    // --verify-checksums also checks that recorded derivatives are still there.
    let fourth = sync_with(
        &sim,
        &out,
        &["--derive", "mono16k,channels", "--verify-checksums"],
    )
    .await;
    assert_eq!(
        (&fourth["stored"], &fourth["derived"]),
        (&0.into(), &1.into()),
        "{fourth}"
    );
    assert!(victim.with_extension("mono16k.wav").exists());
    let stale = strings(
        loc,
        "SELECT d.recording_id FROM derivatives d JOIN manifest m USING (date, task_id, recording_id) \
         WHERE d.status <> 'ok' OR d.source_sha256 <> m.sha256",
    )
    .await;
    assert!(stale.is_empty(), "{stale:?}");

    // Audio found without a manifest row (a run killed before writing its tables) is taken as
    // it is only when it is as long as the recording listed: this is no WAV, so it is
    // downloaded again. (A commit writes the tasks table last, so a killed run leaves neither
    // row.)
    let bad = local(&originals[1]);
    let good = sha256_file(&bad);
    let junk = b"<html>AccessDenied</html>";
    std::fs::write(&bad, junk).unwrap();
    std::fs::remove_dir_all(out.join("manifest")).unwrap();
    std::fs::remove_dir_all(out.join("tasks")).unwrap();
    let again = sync_with(&sim, &out, &["--derive", "mono16k,channels"]).await;
    assert_eq!(again["stored"], 1, "{again}");
    assert_eq!(sha256_file(&bad), good);

    // Audio recorded as stored that cannot be decoded (as if the media host had served a page
    // instead of the recording): its derivatives say so, once, and the run still succeeds.
    std::fs::write(&bad, junk).unwrap();
    record_as_stored(&sim, loc, &originals[1], junk).await;
    std::fs::remove_dir_all(out.join("tasks")).unwrap();
    let (fifth, log) = sync_logged(&sim, &out, &["--derive", "mono16k,channels"]).await;
    assert!(log.contains("derivative not stored"), "{log}");
    assert_eq!(
        (&fifth["derived"], &fifth["derive_failed"]),
        (&0.into(), &0.into()),
        "{fifth}"
    );
    let unusable = strings(
        loc,
        "SELECT kind || ':' || error FROM derivatives WHERE status = 'unusable_source' ORDER BY kind",
    )
    .await;
    assert_eq!(unusable.len(), 3, "{unusable:?}");
    assert!(
        unusable[0].starts_with("ch1_16k:") && unusable[0].contains("RIFF"),
        "{unusable:?}"
    );
    let (sixth, log) = sync_logged(&sim, &out, &["--derive", "mono16k,channels"]).await;
    assert_eq!(sixth["derived"], 0, "{sixth}");
    assert!(
        !log.contains("derivative not stored"),
        "an unusable source is not retried: {log}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_derivative_or_scratch_dir_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(small_world()).await;
    let out = dir.path().join("lake");
    let extra = ["--derive", "mono8k"];
    let output = sync_small_world(out.to_str().unwrap(), &extra, &sim_env(&sim), dir.path()).await;
    assert_eq!(output.status.code(), Some(2));
    let err = text(&output.stderr);
    assert!(
        err.contains("\"mono8k\"") && err.contains("mono16k"),
        "{err}"
    );
    assert!(!out.join("tasks").exists(), "nothing synced");

    let mut env = sim_env(&sim);
    env.insert(
        "WXCC_SCRATCH_DIR".into(),
        "/nonexistent/wxcc-scratch".into(),
    );
    let extra = ["--derive", "mono16k"];
    let output = sync_small_world(out.to_str().unwrap(), &extra, &env, dir.path()).await;
    assert_eq!(output.status.code(), Some(2));
    let err = text(&output.stderr);
    assert!(
        err.contains("/nonexistent/wxcc-scratch") && err.contains("$TMPDIR"),
        "{err}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_can_show_derivatives() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let loc = out.to_str().unwrap();
    let args = [
        "demo",
        "--output",
        loc,
        "--days",
        "1",
        "--calls-per-day",
        "12",
        "--derive",
        "mono16k",
    ];
    let output = wxcc(&args, &Default::default(), dir.path()).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    // The suggested commands say which binary `wxcc` is: a demo run by `cargo run` is not on
    // PATH.
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_wxcc")).unwrap();
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!(
            "What to try next (wxcc here is {};",
            exe.display()
        )),
        "{stdout}"
    );
    let stored = strings(loc, "SELECT count(*) FROM manifest WHERE status = 'stored'").await;
    let derived = strings(
        loc,
        "SELECT count(*) FROM derivatives WHERE kind = 'mono16k' AND status = 'ok'",
    )
    .await;
    assert_ne!(stored[0], "0");
    assert_eq!(derived, stored);
}

/// A derivative that could not be made (here: the scratch space is gone) stays owed: a later
/// run that does not list its day (past the look-back, or a backfill of another range) still
/// makes it, and every run exits 4 until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_derivative_is_made_by_a_later_run_that_does_not_list_its_day() {
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lake");
    let loc = out.to_str().unwrap();
    let run = |from: &'static str, to: &'static str, tmpdir: std::path::PathBuf| {
        let (sim, out) = (&sim, &out);
        async move {
            let args = [
                "sync",
                "--from",
                from,
                "--to",
                to,
                "--output",
                out.to_str().unwrap(),
                "--derive",
                "mono16k",
            ];
            let output = wxcc_command(&args, &sim_env(sim), out.parent().unwrap())
                .env("TMPDIR", tmpdir)
                .output()
                .await
                .unwrap();
            let stdout = text(&output.stdout);
            let summary: serde_json::Value =
                serde_json::from_str(stdout.lines().last().expect("summary")).expect("JSON");
            (output.status.code(), summary, text(&output.stderr))
        }
    };
    let gone = dir.path().join("no-such-scratch");
    let (code, first, log) = run("2026-01-05", "2026-01-06", gone).await;
    assert_eq!(code, Some(4), "{first}\n{log}");
    let failed = first["derive_failed"].as_u64().unwrap();
    assert!(failed > 0, "{first}");
    // Owed per task (a task may have several recordings).
    let owed = first["pending"]["download_failed"].as_u64().unwrap();
    assert!((1..=failed).contains(&owed), "{first}");

    // The next day only: the first day is not listed again.
    let (code, second, log) = run("2026-01-06", "2026-01-07", dir.path().to_owned()).await;
    assert_eq!(code, Some(0), "{second}\n{log}");
    assert_eq!(second["pending"]["download_failed"], 0, "{second}");
    let left = strings(
        loc,
        "SELECT m.recording_id FROM manifest m LEFT JOIN derivatives d \
           ON d.date = m.date AND d.task_id = m.task_id AND d.recording_id = m.recording_id \
         WHERE d.status IS DISTINCT FROM 'ok'",
    )
    .await;
    assert!(left.is_empty(), "derivatives still missing: {left:?}");
    let made = strings(loc, "SELECT recording_id FROM derivatives").await;
    assert_eq!(made.len(), sim.world().recordings().len());
    sim.shutdown().await;
}
