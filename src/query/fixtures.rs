//! A small, hand-made lake shared by the query module's tests.

use chrono::NaiveDate;

use crate::lake::{
    AudioFactsRow, CaptureRow, DerivativeRow, Lake, ManifestRow, Table, TaskRow, audio_facts_batch,
    captures_batch, derivatives_batch, manifest_batch, tasks_batch,
};
use crate::query::{OutputFormat, QuerySession, format_batches};

pub const ORG: &str = "3dae8fdd-06e2-411a-9035-51f3719f5b65";

pub fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).expect("valid date")
}

pub fn at(d: u32, hour: u32) -> i64 {
    day(d)
        .and_hms_opt(hour, 0, 0)
        .expect("valid time")
        .and_utc()
        .timestamp_millis()
}

pub fn task(
    id: &str,
    d: u32,
    hour: u32,
    status: &str,
    requested: Option<bool>,
    queue: &str,
) -> TaskRow {
    TaskRow {
        task_id: id.into(),
        channel_type: Some("telephony".into()),
        status: Some(status.into()),
        created_time: at(d, hour),
        capture_requested: requested,
        queue_id: Some(format!("q-{queue}")),
        queue_name: Some(queue.into()),
        owner_name: Some("Alice".into()),
        direction: Some("inbound".into()),
        ..TaskRow::default()
    }
}

pub fn capture(task: &str, rec: &str, call_type: &str, start: i64) -> CaptureRow {
    CaptureRow {
        task_id: task.into(),
        recording_id: rec.into(),
        call_type: Some(call_type.into()),
        start_time: Some(start),
        stop_time: Some(start + 90_000),
        channel1: Some("Caller".into()),
        channel2: Some("Agent".into()),
        participants: vec!["agent-1".into()],
        ..CaptureRow::default()
    }
}

pub fn stored(audio: &Lake, task: &str, rec: &str) -> ManifestRow {
    ManifestRow {
        task_id: task.into(),
        recording_id: rec.into(),
        object_uri: audio.uri(&audio.path(&format!("audio/{ORG}/{task}/{rec}.wav"))),
        size_bytes: Some(1024),
        sha256: Some("ab".repeat(32)),
        content_type: Some("audio/wav".into()),
        status: "stored".into(),
        error: None,
    }
}

/// Facts for an analysed stereo recording, caller on channel 1 and agent on channel 2.
pub fn facts(task: &str, rec: &str, caller_ms: i64, agent_ms: i64) -> AudioFactsRow {
    AudioFactsRow {
        task_id: task.into(),
        recording_id: rec.into(),
        status: "ok".into(),
        format: Some("pcm".into()),
        sample_rate: Some(8000),
        channels: Some(2),
        bits_per_sample: Some(16),
        duration_ms: Some(90_000),
        expected_duration_ms: Some(90_000),
        channel1_label: Some("Caller".into()),
        channel2_label: Some("Agent".into()),
        ch1_talk_ms: Some(caller_ms),
        ch2_talk_ms: Some(agent_ms),
        crosstalk_share: Some(0.05),
        ..AudioFactsRow::default()
    }
}

/// A 16 kHz derivative of a stored fixture recording, made from the bytes with `source` hash.
pub fn derivative(audio: &Lake, task: &str, rec: &str, kind: &str, source: &str) -> DerivativeRow {
    DerivativeRow {
        task_id: task.into(),
        recording_id: rec.into(),
        kind: kind.into(),
        channel_label: match kind {
            "ch1_16k" => Some("Caller".into()),
            "ch2_16k" => Some("Agent".into()),
            _ => None,
        },
        object_uri: audio.uri(&audio.path(&format!("audio/{ORG}/{task}/{rec}.{kind}.wav"))),
        status: "ok".into(),
        sample_rate: Some(16_000),
        channels: Some(1),
        duration_ms: Some(90_000),
        size_bytes: Some(2_880_044),
        sha256: Some("ef".repeat(32)),
        source_sha256: Some(source.into()),
        ..DerivativeRow::default()
    }
}

/// Two days: t1 recorded twice (main + consult, main analysed), t2 abandoned, t3 requested but
/// never stored, a chat that telephony queries must ignore, and t5 whose download failed. t1's main
/// recording has its three 16 kHz derivatives; its consult leg only a stale one (made from other
/// bytes than those stored).
pub async fn populate(lake: &Lake) {
    populate_with_audio_in(lake, lake).await;
}

/// Like [`populate`], with the manifest's object URIs pointing into `audio` (e.g. an S3 lake).
pub async fn populate_with_audio_in(lake: &Lake, audio: &Lake) {
    let mut chat = task("t4", 5, 11, "completed", Some(true), "Support");
    chat.channel_type = Some("chat".into());
    let day5 = [
        task("t1", 5, 9, "completed", Some(true), "Support"),
        task("t2", 5, 10, "abandoned", Some(false), "Support"),
        task("t3", 5, 12, "completed", Some(true), "Sales"),
        chat,
    ];
    let mut failed = stored(audio, "t5", "r9");
    failed.status = "failed".into();
    failed.error = Some("HTTP 403 from download URL".into());
    failed.size_bytes = None;
    failed.sha256 = None;
    let writes = [
        (Table::Tasks, 5, tasks_batch(&day5)),
        (
            Table::Tasks,
            6,
            tasks_batch(&[task("t5", 6, 8, "completed", Some(true), "Support")]),
        ),
        (
            Table::Captures,
            5,
            captures_batch(&[
                capture("t1", "r2", "consult", at(5, 9) + 5),
                capture("t1", "r1", "main", at(5, 9)),
            ]),
        ),
        (
            Table::Captures,
            6,
            captures_batch(&[capture("t5", "r9", "main", at(6, 8))]),
        ),
        (
            Table::Manifest,
            5,
            manifest_batch(&[stored(audio, "t1", "r1"), stored(audio, "t1", "r2")]),
        ),
        (Table::Manifest, 6, manifest_batch(&[failed])),
        (
            Table::AudioFacts,
            5,
            audio_facts_batch(&[facts("t1", "r1", 30_000, 45_000)]),
        ),
        (
            Table::Derivatives,
            5,
            derivatives_batch(&[
                derivative(audio, "t1", "r1", "mono16k", &"ab".repeat(32)),
                derivative(audio, "t1", "r1", "ch1_16k", &"ab".repeat(32)),
                derivative(audio, "t1", "r1", "ch2_16k", &"ab".repeat(32)),
                derivative(audio, "t1", "r2", "mono16k", &"cd".repeat(32)),
            ]),
        ),
    ];
    for (table, d, batch) in writes {
        let batch = batch.expect("batch builds");
        lake.upsert_partition(table, ORG, day(d), batch)
            .await
            .expect("upsert");
    }
}

/// A query's result as CSV lines (header first).
pub async fn csv(session: &QuerySession, sql: &str) -> Vec<String> {
    let batches = session.sql(sql).await.expect("query runs");
    lines(&batches)
}

pub fn lines(batches: &[datafusion::arrow::array::RecordBatch]) -> Vec<String> {
    let text = format_batches(batches, OutputFormat::Csv).expect("csv");
    text.lines().map(str::to_string).collect()
}
