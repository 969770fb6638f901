//! The saved queries over the shared fixture lake: what each one answers, with its parameters.

use crate::lake::{Lake, Table, audio_facts_batch};
use crate::query::QuerySession;
use crate::query::fixtures::{ORG, day, facts, lines, populate};
use crate::query::params::parse_assignments;
use crate::query::saved::find_saved_query;

async fn session() -> QuerySession {
    let lake = Lake::open("memory://").expect("open");
    populate(&lake).await;
    // r2's audio is 10 s shorter than its capture says.
    let mut short = facts("t1", "r2", 20_000, 25_000);
    short.duration_ms = Some(80_000);
    lake.upsert_partition(
        Table::AudioFacts,
        ORG,
        day(5),
        audio_facts_batch(&[short]).expect("batch"),
    )
    .await
    .expect("upsert");
    QuerySession::open(&lake).await.expect("open")
}

/// Runs saved query `name` with `--param` style arguments; CSV lines, header first.
async fn run(session: &QuerySession, name: &str, args: &[&str]) -> Vec<String> {
    let q = find_saved_query(name).expect("saved query");
    let given = parse_assignments(args).expect("assignments");
    let params = q.bind(&given).expect("binds");
    let batches = session
        .sql_with_params(q.sql, params)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    lines(&batches)
}

#[tokio::test]
async fn recordings_to_transcribe_lists_stored_recordings_oldest_first() {
    let s = session().await;
    let rows = run(&s, "recordings_to_transcribe", &[]).await;
    assert_eq!(
        rows[0],
        "org_id,date,task_id,recording_id,created_time,queue,agent,call_type,duration_ms,channel1,channel2,object_uri,size_bytes,sha256"
    );
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert!(
        rows[1].starts_with(&format!("{ORG},2024-03-05,t1,r1,2024-03-05T09:00:00")),
        "{}",
        rows[1]
    );
    assert!(
        rows[1].contains(",Support,Alice,main,90000,Caller,Agent,memory:///audio/"),
        "{}",
        rows[1]
    );
    assert!(
        rows[2].contains(",t1,r2,") && rows[2].contains(",consult,"),
        "{}",
        rows[2]
    );
}

#[tokio::test]
async fn recordings_to_transcribe_filters_by_date_and_queue_parameters() {
    let s = session().await;
    assert_eq!(
        run(&s, "recordings_to_transcribe", &["since=2024-03-06"])
            .await
            .len(),
        1
    );
    assert_eq!(
        run(&s, "recordings_to_transcribe", &["until=2024-03-05"])
            .await
            .len(),
        1
    );
    assert_eq!(
        run(&s, "recordings_to_transcribe", &["queue=Sales"])
            .await
            .len(),
        1
    );
    assert_eq!(
        run(&s, "recordings_to_transcribe", &["queue=Support"])
            .await
            .len(),
        3
    );
    let hostile = run(
        &s,
        "recordings_to_transcribe",
        &["queue=x'; DROP TABLE tasks; --"],
    )
    .await;
    assert_eq!(
        hostile.len(),
        1,
        "a hostile value is a literal that matches nothing"
    );
    assert_eq!(
        run(&s, "recordings_to_transcribe", &[]).await.len(),
        3,
        "tables intact"
    );
}

#[tokio::test]
async fn calls_per_queue_per_day_counts_outcomes_and_recordings() {
    let s = session().await;
    assert_eq!(
        run(&s, "calls_per_queue_per_day", &[]).await,
        vec![
            "org_id,date,queue_id,queue_name,calls,completed,abandoned,capture_requested,recorded"
                .to_string(),
            format!("{ORG},2024-03-05,q-Sales,Sales,1,1,0,1,0"),
            format!("{ORG},2024-03-05,q-Support,Support,2,1,1,1,1"),
            format!("{ORG},2024-03-06,q-Support,Support,1,1,0,1,0"),
        ]
    );
}

#[tokio::test]
async fn outcomes_per_day_splits_abandoned_and_completed() {
    let s = session().await;
    assert_eq!(
        run(&s, "outcomes_per_day", &[]).await,
        vec![
            "org_id,date,calls,completed,abandoned,other,abandoned_share".to_string(),
            format!("{ORG},2024-03-05,3,2,1,0,0.3333"),
            format!("{ORG},2024-03-06,1,1,0,0,0.0"),
        ]
    );
    let support = run(
        &s,
        "outcomes_per_day",
        &["queue=Support", "since=2024-03-05", "until=2024-03-06"],
    )
    .await;
    assert_eq!(support[1..], [format!("{ORG},2024-03-05,2,1,1,0,0.5")]);
}

#[tokio::test]
async fn long_calls_by_queue_counts_main_recordings_over_the_threshold() {
    let s = session().await;
    assert_eq!(
        run(&s, "long_calls_by_queue", &["min_minutes=1"]).await,
        vec![
            "org_id,queue,calls,long_calls,avg_minutes,max_minutes".to_string(),
            format!("{ORG},Support,2,2,1.5,1.5"),
        ]
    );
    let none = run(&s, "long_calls_by_queue", &[]).await;
    assert_eq!(none[1], format!("{ORG},Support,2,0,1.5,1.5"));
}

#[tokio::test]
async fn agent_talk_share_uses_the_analysed_recordings() {
    let s = session().await;
    // r1: agent 45 s, caller 30 s; r2: agent 25 s, caller 20 s -> 70 / 120.
    assert_eq!(
        run(&s, "agent_talk_share", &[]).await,
        vec![
            "org_id,agent,recordings,analysed,agent_talk_ms,caller_talk_ms,agent_share,avg_crosstalk_share"
                .to_string(),
            format!("{ORG},Alice,2,2,70000,50000,0.5833,0.05"),
        ]
    );
}

#[tokio::test]
async fn missing_recordings_reports_unstored_requests_and_failed_downloads() {
    let lake = Lake::open("memory://").expect("open");
    populate(&lake).await;
    let mut corrupt = facts("t1", "r2", 0, 0);
    corrupt.status = "corrupt".into();
    corrupt.error = Some("truncated data chunk".into());
    lake.upsert_partition(
        Table::AudioFacts,
        ORG,
        day(5),
        audio_facts_batch(&[corrupt]).expect("batch"),
    )
    .await
    .expect("upsert");
    let s = QuerySession::open(&lake).await.expect("open");
    let rows = run(&s, "missing_recordings", &[]).await;
    assert_eq!(
        rows[0],
        "org_id,date,task_id,recording_id,created_time,queue,agent,reason,error"
    );
    assert_eq!(rows.len(), 5, "{rows:#?}");
    assert!(
        rows[1].contains(",t1,r2,") && rows[1].ends_with(",audio_corrupt,truncated data chunk"),
        "{}",
        rows[1]
    );
    // Chat t4 asked for a capture and has none: it is listed too (not only telephony).
    assert!(
        rows[2].contains(",t4,,") && rows[2].contains(",not_stored,"),
        "{}",
        rows[2]
    );
    assert!(
        rows[3].contains(",t3,,") && rows[3].contains(",not_stored,"),
        "{}",
        rows[3]
    );
    assert!(
        rows[4].contains(",t5,r9,") && rows[4].ends_with(",failed,HTTP 403 from download URL"),
        "{}",
        rows[4]
    );
    assert_eq!(
        run(&s, "missing_recordings", &["since=2024-03-06"])
            .await
            .len(),
        2
    );
}

#[tokio::test]
async fn overdue_recordings_lists_requested_captures_still_missing_after_n_hours() {
    let s = session().await;
    let rows = run(&s, "overdue_recordings", &["as_of=2024-03-07T12:00:00Z"]).await;
    assert_eq!(
        rows[0],
        "org_id,date,task_id,created_time,queue,agent,status,age_hours,failed_downloads"
    );
    let ids: Vec<&str> = rows[1..]
        .iter()
        .map(|r| r.split(',').nth(2).unwrap_or(""))
        .collect();
    assert_eq!(ids, ["t4", "t3", "t5"], "{rows:#?}");
    assert!(
        rows[3].ends_with(",Support,Alice,completed,28,1"),
        "{}",
        rows[3]
    );
    let later = run(
        &s,
        "overdue_recordings",
        &["as_of=2024-03-07T12:00:00Z", "hours=30"],
    )
    .await;
    assert_eq!(later.len(), 3, "t5 is only 28 hours old: {later:#?}");
}

#[tokio::test]
async fn duration_mismatch_lists_audio_that_disagrees_with_its_capture() {
    let s = session().await;
    let rows = run(&s, "duration_mismatch", &[]).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(
        rows[1].contains(",t1,r2,") && rows[1].ends_with(",consult,90000,80000,-10000"),
        "{}",
        rows[1]
    );
    assert_eq!(
        run(&s, "duration_mismatch", &["tolerance_ms=10000"])
            .await
            .len(),
        1
    );
}
