//! The synthetic lake of the report: `days` × `calls` tasks with their captures, manifest rows and
//! audio facts, written with the lake API (shared by the `report` and `query` benches).

use super::{ORG, QUEUES, mix};

use chrono::NaiveDate;
use wxcc::lake::{
    AudioFactsRow, CaptureRow, Lake, ManifestRow, Table, TaskRow, audio_facts_batch,
    captures_batch, manifest_batch, tasks_batch,
};

const CHANNELS: [&str; 4] = ["telephony", "telephony", "chat", "email"];

pub async fn generate(lake: &Lake, start: NaiveDate, days: usize, calls: usize) {
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
