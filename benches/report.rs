//! Report benchmark (a report, not a timed test): `wxcc report` over a synthetic lake of
//! 100 days × 1000 calls (tasks, captures, manifest and audio facts written with the lake API),
//! printing the time to build the report and the size of the HTML page.
//!
//! ```sh
//! cargo bench --bench report   # WXCC_BENCH_DAYS, WXCC_BENCH_CALLS: size; WXCC_BENCH_DIR: keep the lake
//! ```

mod common;

use common::{ORG, QUEUES, env_usize, mix};
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use wxcc::lake::{
    AudioFactsRow, CaptureRow, Lake, ManifestRow, Table, TaskRow, audio_facts_batch,
    captures_batch, manifest_batch, tasks_batch,
};
use wxcc::report::{ReportRequest, build, render_html};

const CHANNELS: [&str; 4] = ["telephony", "telephony", "chat", "email"];

async fn generate(lake: &Lake, start: NaiveDate, days: usize, calls: usize) {
    for d in 0..days {
        let date = start + chrono::Days::new(d as u64);
        let midnight = date
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_millis();
        let (mut tasks, mut caps, mut man, mut facts) = (vec![], vec![], vec![], vec![]);
        for i in 0..calls {
            let r = mix((d * calls + i) as u64);
            let task_id = format!("t-{d:03}-{i:05}-{:08x}", r >> 32);
            let channel = CHANNELS[(r % 4) as usize];
            let created = midnight + (i as i64) * (86_400_000 / calls as i64);
            let voice = channel == "telephony";
            tasks.push(TaskRow {
                task_id: task_id.clone(),
                channel_type: Some(channel.into()),
                status: Some(
                    if r.is_multiple_of(10) {
                        "abandoned"
                    } else {
                        "completed"
                    }
                    .into(),
                ),
                created_time: created,
                capture_requested: Some(voice),
                owner_name: Some(format!("Agent {}", (r >> 8) % 200)),
                queue_name: Some(QUEUES[((r >> 4) % 8) as usize].into()),
                ..TaskRow::default()
            });
            if !voice {
                continue;
            }
            let rec = format!("r-{:016x}", mix(r));
            let length = 20_000 + (r >> 20) as i64 % 1_200_000;
            caps.push(CaptureRow {
                task_id: task_id.clone(),
                recording_id: rec.clone(),
                call_type: Some("main".into()),
                start_time: Some(created),
                stop_time: Some(created + length),
                channel1: Some("Caller".into()),
                channel2: Some("Agent".into()),
                ..CaptureRow::default()
            });
            let failed = r.is_multiple_of(97);
            man.push(ManifestRow {
                object_uri: lake.uri(&lake.path(&format!("audio/{ORG}/{task_id}/{rec}.wav"))),
                task_id: task_id.clone(),
                recording_id: rec.clone(),
                size_bytes: (!failed).then_some(length * 32),
                sha256: (!failed).then(|| format!("{:064x}", r)),
                content_type: Some("audio/wav".into()),
                status: if failed { "failed" } else { "stored" }.into(),
                error: failed.then(|| "HTTP 403 from download URL".to_owned()),
            });
            if failed {
                continue;
            }
            let talk = |k: u64| length * (20 + (mix(r ^ k) % 40) as i64) / 100;
            facts.push(AudioFactsRow {
                task_id,
                recording_id: rec,
                status: "ok".into(),
                format: Some("pcm".into()),
                sample_rate: Some(8000),
                channels: Some(if r.is_multiple_of(211) { 1 } else { 2 }),
                bits_per_sample: Some(16),
                duration_ms: Some(length + if r.is_multiple_of(53) { -5_000 } else { 0 }),
                expected_duration_ms: Some(length),
                channel1_label: Some("Caller".into()),
                channel2_label: Some("Agent".into()),
                ch1_rms_dbfs: Some(-20.0 - (r % 10) as f64),
                ch2_rms_dbfs: Some(-22.0 - (r % 7) as f64),
                ch1_silence_share: Some(0.3 + (r % 30) as f64 / 100.0),
                ch2_silence_share: Some(0.4 + (r % 20) as f64 / 100.0),
                ch1_talk_ms: Some(talk(1)),
                ch2_talk_ms: Some(talk(2)),
                crosstalk_share: Some((r % 5) as f64 / 100.0),
                ..AudioFactsRow::default()
            });
        }
        for (table, batch) in [
            (Table::Tasks, tasks_batch(&tasks)),
            (Table::Captures, captures_batch(&caps)),
            (Table::Manifest, manifest_batch(&man)),
            (Table::AudioFacts, audio_facts_batch(&facts)),
        ] {
            let batch = batch.expect("batch");
            lake.upsert_partition(table, ORG, date, batch)
                .await
                .expect("write");
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must stay fast.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("report bench: run with `cargo bench --bench report`");
        return;
    }
    let days = env_usize("WXCC_BENCH_DAYS", 100).max(1);
    let calls = env_usize("WXCC_BENCH_CALLS", 1000).max(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = std::env::var("WXCC_BENCH_DIR").map_or_else(|_| tmp.path().join("lake"), Into::into);
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let lake = Lake::open(root.to_str().expect("utf8 path")).expect("lake");
        if root.join("tasks").is_dir() {
            eprintln!("reusing the lake in {}", root.display());
        } else {
            let t = Instant::now();
            generate(&lake, start, days, calls).await;
            eprintln!("wrote {days} days x {calls} tasks in {:.1} s", t.elapsed().as_secs_f64());
        }
        let request = ReportRequest {
            from: Some(start),
            to: Some(start + chrono::Days::new(days as u64)),
            org: None,
            as_of: Utc::now(),
        };
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let report = build(&lake, &request).await.expect("report builds");
            let html = render_html(&report);
            times.push(t.elapsed());
            size = html.len();
        }
        times.sort();
        println!(
            "\nwxcc report over {days} days x {calls} tasks: median {:.2} s of 3 (min {:.2} s), HTML {:.0} KB (limit 2 MB)",
            times[1].as_secs_f64(),
            times[0].as_secs_f64(),
            size as f64 / 1024.0
        );
        assert!(size < 2 * 1024 * 1024, "HTML {size} bytes exceeds 2 MB");
    });
}
