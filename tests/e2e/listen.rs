//! `wxcc listen` against the simulator's webhook sender: lossy, duplicated, reordered,
//! sometimes badly signed deliveries; every acknowledged event ends up stored exactly once,
//! a later `sync` fills in what no webhook delivered, and a `kill -9` loses nothing acked.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::util::{
    a_call_going_on, dump, sim_env, small_world, start_sim, strings, text, wxcc, wxcc_command,
};
use wxcc::sim::{SimConfig, Simulator, WebhookKnobs};

const SECRET: &str = "listen-e2e-secret-0123456789abcdef";

struct Listener {
    child: tokio::process::Child,
    base: String,
}

/// Starts `wxcc listen` on a free port and waits for the line naming it.
async fn start_listen(sim: &Simulator, dir: &Path, lake: &str) -> Listener {
    let mut env = sim_env(sim);
    // The old secret is still accepted during a rotation; the simulator signs with the new one.
    env.insert(
        "WXCC_WEBHOOK_SECRET".into(),
        format!("old-secret-0123456789abcdef0123456789,{SECRET}"),
    );
    let queue = dir.join("queue");
    let args = [
        "listen",
        "--bind",
        "127.0.0.1:0",
        "--output",
        lake,
        "--queue-dir",
        queue.to_str().unwrap(),
        "--commit-ms",
        "500",
    ];
    let mut child = wxcc_command(&args, &env, dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut base = None;
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(rest) = line.strip_prefix("wxcc listen on ") {
            let url = rest.split_whitespace().next().unwrap();
            base = Some(url.trim_end_matches("/webhook").to_owned());
            break;
        }
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Listener {
        child,
        base: base.expect("listen announces its address"),
    }
}

async fn healthz(base: &str) -> serde_json::Value {
    reqwest::get(format!("{base}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits (bounded) until the simulator finished every delivery it planned.
async fn deliveries_finished(sim: &Simulator) {
    let expected = sim.world().recordings().len() as u64;
    for _ in 0..1200 {
        let s = sim.webhook_stats();
        if s.events == expected
            && s.accepted + s.refused + s.failed == s.events - s.lost + s.duplicated
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deliveries did not finish: {:?}", sim.webhook_stats());
}

/// Waits (bounded) until the queue is empty and everything accepted is committed.
async fn drained(base: &str) -> serde_json::Value {
    for _ in 0..1200 {
        let h = healthz(base).await;
        // Depth counts events accepted (by this process or before a restart) and not committed.
        if h["queue"]["depth"] == 0 {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("queue never drained: {}", healthz(base).await);
}

/// Recordings whose delivery was acknowledged 2xx.
fn acked(sim: &Simulator) -> HashSet<(String, String)> {
    sim.webhook_deliveries()
        .into_iter()
        .filter(|d| d.status.is_some_and(|s| (200..300).contains(&s)))
        .map(|d| (d.task_id, d.recording_id))
        .collect()
}

async fn manifest_keys(lake: &str) -> Vec<String> {
    strings(
        lake,
        "SELECT task_id || '/' || recording_id FROM manifest WHERE status = 'stored' ORDER BY 1",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_duplicated_webhooks_store_each_recording_once_and_sync_reconciles_to_the_truth() {
    let sim = start_sim(SimConfig {
        webhooks: WebhookKnobs {
            loss_rate: 0.1,
            duplicate_rate: 0.1,
            reorder_rate: 0.2,
            bad_signature_rate: 0.01,
            max_delay: Duration::from_millis(50),
            replay: true,
            ..WebhookKnobs::default()
        },
        ..small_world()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake").to_str().unwrap().to_owned();
    let listen = start_listen(&sim, dir.path(), &lake).await;
    sim.subscribe_webhook(&format!("{}/webhook", listen.base), SECRET)
        .unwrap();
    deliveries_finished(&sim).await;
    // A forged delivery is refused and counted, whatever the dice did.
    let forged = reqwest::Client::new()
        .post(format!("{}/webhook", listen.base))
        .header("X-WebexCC-Signature", "00".repeat(32))
        .body(r#"{"id":"x","type":"capture:available","data":{"taskId":"t","recordingId":"r"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);
    let h = drained(&listen.base).await;
    let stats = sim.webhook_stats();
    assert!(stats.lost > 0 && stats.duplicated > 0, "{stats:?}");
    assert_eq!(
        h["refused"]["bad_signature"].as_u64().unwrap(),
        stats.bad_signatures + 1,
        "{h}"
    );
    assert_eq!(stats.refused, stats.bad_signatures);

    // Every acknowledged recording is stored exactly once; nothing else is.
    let acked = acked(&sim);
    let stored = manifest_keys(&lake).await;
    let distinct: HashSet<&String> = stored.iter().collect();
    assert_eq!(distinct.len(), stored.len(), "no duplicate rows");
    let want: HashSet<String> = acked.iter().map(|(t, r)| format!("{t}/{r}")).collect();
    assert_eq!(distinct, want.iter().collect::<HashSet<_>>());
    assert_eq!(
        h["workers"]["committed"].as_u64().unwrap() as usize,
        want.len()
    );

    // The scheduled sync finds what no webhook delivered, and the tables equal a sync-only lake.
    let env = sim_env(&sim);
    let args = |out: &str| {
        [
            "sync",
            "--from",
            "2026-01-05",
            "--to",
            "2026-01-07",
            "--output",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.to_owned()])
        .collect::<Vec<_>>()
    };
    let a = args(&lake);
    let out = wxcc(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        &env,
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let truth = sim.world().recordings().len();
    assert_eq!(
        summary["not_from_webhook"].as_u64().unwrap() as usize,
        truth - want.len(),
        "{summary}"
    );
    assert_eq!(
        summary["skipped_present"].as_u64().unwrap() as usize,
        want.len()
    );
    let plain = dir.path().join("plain").to_str().unwrap().to_owned();
    let b = args(&plain);
    let out = wxcc(
        &b.iter().map(String::as_str).collect::<Vec<_>>(),
        &env,
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for (table, order) in [
        ("tasks", "task_id"),
        ("captures", "task_id, recording_id"),
        ("manifest", "task_id, recording_id"),
        ("audio_facts", "task_id, recording_id"),
    ] {
        assert_eq!(
            dump(&lake, table, order).await,
            dump(&plain, table, order).await,
            "{table}"
        );
    }
    assert_eq!(manifest_keys(&lake).await.len(), truth);
    drop(listen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_acknowledging_loses_no_event_and_a_restart_drains_the_queue() {
    let sim = start_sim(SimConfig {
        // Slow downloads: events are acknowledged long before their recordings are stored.
        download_bytes_per_sec: Some(100_000),
        median_call_secs: 8,
        max_call_secs: 20,
        webhooks: WebhookKnobs {
            replay: true,
            duplicate_rate: 0.1,
            ..WebhookKnobs::default()
        },
        ..small_world()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake").to_str().unwrap().to_owned();
    let mut listen = start_listen(&sim, dir.path(), &lake).await;
    sim.subscribe_webhook(&format!("{}/webhook", listen.base), SECRET)
        .unwrap();
    let mut accepted = 0;
    for _ in 0..600 {
        accepted = healthz(&listen.base).await["queue"]["accepted"]
            .as_u64()
            .unwrap_or(0);
        if accepted >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(accepted >= 10);
    let pid = listen.child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    let _ = listen.child.wait().await;
    // Deliveries made while it is down fail (after the sender's retries) and are not acked.
    deliveries_finished(&sim).await;
    // Some answers were lost with the process (queued, but the sender saw no 2xx): only what
    // the sender saw acknowledged is owed, though those are stored too.
    let acked = acked(&sim);
    assert!(!acked.is_empty());
    let restarted = start_listen(&sim, dir.path(), &lake).await;
    drained(&restarted.base).await;
    let stored: HashSet<String> = manifest_keys(&lake).await.into_iter().collect();
    for (t, r) in &acked {
        assert!(stored.contains(&format!("{t}/{r}")), "acked {t}/{r} lost");
    }
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for k in manifest_keys(&lake).await {
        *per_key.entry(k).or_default() += 1;
    }
    assert!(per_key.values().all(|&n| n == 1));
}

/// An event whose captures `listen` cannot read (or whose recording it cannot store) is owed to
/// the next `sync` through the ledger: that sync asks about the task again even though it does
/// not list the task's day, names it and exits 4 while it fails, and stores it once it can.
/// Dropped instead, a task `sync` had already settled (a consult leg that appeared hours
/// later) would never be asked about again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_listen_cannot_store_is_owed_to_the_next_sync() {
    let sim = start_sim(SimConfig {
        failing_capture_tasks: 1,
        failing_capture_status: 422,
        webhooks: WebhookKnobs {
            // Only the confirmed fields: listen must ask the captures API which recording.
            minimal: true,
            replay: true,
            ..WebhookKnobs::default()
        },
        ..small_world()
    })
    .await;
    let bad = sim.failing_capture_task_ids();
    assert_eq!(bad.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake").to_str().unwrap().to_owned();
    let listen = start_listen(&sim, dir.path(), &lake).await;
    sim.subscribe_webhook(&format!("{}/webhook", listen.base), SECRET)
        .unwrap();
    deliveries_finished(&sim).await;
    drained(&listen.base).await;
    drop(listen);
    let bad_task = bad[0].as_str();
    assert!(
        !manifest_keys(&lake)
            .await
            .iter()
            .any(|k| k.starts_with(&format!("{bad_task}/"))),
        "its captures could not be read"
    );

    // A day after the simulated ones: the listing does not reach the failing task.
    let sync = |now: Option<chrono::DateTime<chrono::Utc>>| {
        let mut env = sim_env(&sim);
        if let Some(now) = now {
            env.insert("WXCC_NOW".into(), now.to_rfc3339());
        }
        let (dir, lake) = (dir.path().to_owned(), lake.clone());
        async move {
            let args = [
                "sync",
                "--from",
                "2026-01-07",
                "--to",
                "2026-01-08",
                "--output",
                lake.as_str(),
            ];
            let out = wxcc(&args, &env, &dir).await;
            let summary: serde_json::Value =
                serde_json::from_str(text(&out.stdout).lines().last().expect("summary"))
                    .expect("JSON");
            (out.status.code(), summary, text(&out.stderr))
        }
    };
    let (code, summary, log) = sync(None).await;
    assert_eq!(code, Some(4), "{summary}\n{log}");
    assert_eq!(summary["failed_tasks"][0]["task_id"], bad_task, "{summary}");

    // Retried with backoff once the fault is gone: stored, and the run is clean.
    sim.lift_faults();
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let (code, summary, log) = sync(Some(later)).await;
    assert_eq!(code, Some(0), "{summary}\n{log}");
    let stored = manifest_keys(&lake).await;
    let want = sim
        .world()
        .recordings()
        .iter()
        .filter(|r| r.task_id == bad_task)
        .count();
    assert!(want > 0);
    assert_eq!(
        stored
            .iter()
            .filter(|k| k.starts_with(&format!("{bad_task}/")))
            .count(),
        want,
        "{stored:?}"
    );
    sim.shutdown().await;
}

/// A recording `sync` stored while its call was going, announced to `listen` once the call has
/// ended, is downloaded again: the stored copy is shorter than the recording listed now. Taken
/// as it was, its rows would carry the final `stopTime`, and no later run would see it grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_stored_while_its_call_was_going_is_stored_again_by_listen() {
    let now = chrono::Utc::now();
    let (cfg, during) = a_call_going_on(now).await;
    let sim = start_sim(SimConfig {
        now: Some(during),
        webhooks: WebhookKnobs {
            replay: true,
            ..WebhookKnobs::default()
        },
        ..cfg
    })
    .await;
    let world = sim.world();
    // (recording id, sha-256 stored at `during`, sha-256 of the whole recording)
    let grown: Vec<(String, String, String)> = world
        .recordings_as_of(during)
        .iter()
        .zip(world.recordings_available_at(during))
        .filter(|(cut, full)| cut.stop_ms != full.stop_ms)
        .map(|(cut, full)| {
            (
                cut.id.clone(),
                world.wav_sha256(cut),
                world.wav_sha256(full),
            )
        })
        .collect();
    assert!(!grown.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake").to_str().unwrap().to_owned();
    let mut env = sim_env(&sim);
    env.insert("WXCC_NOW".into(), during.to_rfc3339());
    let out = wxcc(&["sync", "--output", &lake], &env, dir.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stored = || {
        strings(
            &lake,
            "SELECT recording_id || ' ' || sha256 FROM manifest WHERE status = 'stored'",
        )
    };
    let first = stored().await;
    for (id, cut, _) in &grown {
        assert!(
            first.contains(&format!("{id} {cut}")),
            "{id} stored as it was: {first:?}"
        );
    }

    // The calls end; listen hears of every recording available by now.
    sim.set_now(now);
    let listen = start_listen(&sim, dir.path(), &lake).await;
    sim.subscribe_webhook(&format!("{}/webhook", listen.base), SECRET)
        .unwrap();
    for _ in 0..1200 {
        let s = sim.webhook_stats();
        if s.events > 0 && s.accepted + s.refused + s.failed == s.events - s.lost + s.duplicated {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drained(&listen.base).await;
    drop(listen);
    let last = stored().await;
    for (id, _, whole) in &grown {
        assert!(
            last.contains(&format!("{id} {whole}")),
            "{id} stored whole: {last:?}"
        );
    }
    sim.shutdown().await;
}
