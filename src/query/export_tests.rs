//! Tests for transcription exports over the shared fixture lake.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::TimestampMillisecondType;
use futures::TryStreamExt;

use super::*;
use crate::query::fixtures::{lines, populate, populate_with_audio_in};
use crate::query::saved::find_saved_query;

fn request(sql: &str, sign: Option<Duration>) -> ExportRequest {
    ExportRequest {
        selection_sql: sql.to_string(),
        params: None,
        sign,
        audio: ExportAudio::Original,
    }
}

async fn jobs(session: &QuerySession, lake: &Lake, req: &ExportRequest) -> Vec<RecordBatch> {
    export_jobs(session, lake, req)
        .await
        .expect("export starts")
        .try_collect()
        .await
        .expect("export runs")
}

fn dummy_s3() -> Lake {
    let opts = [
        ("aws_access_key_id", "AKIDEXAMPLE"),
        ("aws_secret_access_key", "dummy-secret"),
        ("aws_region", "us-east-1"),
        ("aws_endpoint", "http://127.0.0.1:9"),
        ("aws_allow_http", "true"),
    ];
    Lake::open_with_options("s3://recordings/wxcc", opts).expect("s3 lake builds offline")
}

#[tokio::test]
async fn unsigned_export_lists_each_recording_once_in_a_stable_order() {
    let lake = Lake::open("memory://").expect("open");
    populate(&lake).await;
    let session = QuerySession::open(&lake).await.expect("open");
    let rtt = find_saved_query("recordings_to_transcribe").expect("saved");
    let req = ExportRequest {
        selection_sql: rtt.sql.to_string(),
        params: Some(rtt.bind(&[]).expect("defaults")),
        sign: None,
        audio: ExportAudio::Original,
    };
    let first = lines(&jobs(&session, &lake, &req).await);
    assert_eq!(
        first[0],
        "org_id,date,task_id,recording_id,created_time,queue_name,agent_name,call_type,object_uri,\
         url,url_expires_at,caller_channel,agent_channel,channel1,channel2,duration_ms,language,\
         size_bytes,sha256"
    );
    assert_eq!(first.len(), 3, "{first:#?}");
    assert!(first[1].contains(",t1,r1,"), "{}", first[1]);
    // Unsigned: no URL; caller on channel 1, agent on channel 2; audio duration preferred.
    assert!(
        first[1].contains("/t1/r1.wav,,,1,2,Caller,Agent,90000,,1024,"),
        "{}",
        first[1]
    );
    assert!(first[2].contains(",t1,r2,"), "{}", first[2]);
    // Re-running gives exactly the same list.
    assert_eq!(lines(&jobs(&session, &lake, &req).await), first);
}

#[tokio::test]
async fn duplicate_selection_rows_still_give_one_job_per_recording() {
    let lake = Lake::open("memory://").expect("open");
    populate(&lake).await;
    let session = QuerySession::open(&lake).await.expect("open");
    let sql = "SELECT org_id, task_id, recording_id FROM recordings \
               UNION ALL SELECT org_id, task_id, recording_id FROM recordings;";
    let rows = lines(&jobs(&session, &lake, &request(sql, None)).await);
    assert_eq!(rows.len(), 3, "{rows:#?}");
}

#[tokio::test]
async fn signed_export_has_a_presigned_https_url_and_its_expiry() {
    let s3 = dummy_s3();
    // Tables in memory, audio URIs in the (offline) S3 bucket: signing needs no network.
    let tables = Lake::open("memory://").expect("open");
    populate_with_audio_in(&tables, &s3).await;
    let session = QuerySession::open(&tables).await.expect("open");
    let before = Utc::now().timestamp_millis();
    let batches = jobs(
        &session,
        &s3,
        &request(
            "SELECT org_id, task_id, recording_id FROM recordings",
            Some(Duration::from_secs(3600)),
        ),
    )
    .await;
    let batch = &batches[0];
    assert_eq!(batch.num_rows(), 2);
    let urls = batch.column_by_name("url").expect("url").as_string::<i32>();
    let uris = batch
        .column_by_name("object_uri")
        .expect("uri")
        .as_string_view();
    for i in 0..batch.num_rows() {
        let url = urls.value(i);
        assert!(uris.value(i).starts_with("s3://recordings/wxcc/audio/"));
        assert!(
            url.starts_with("http://127.0.0.1:9/recordings/wxcc/audio/"),
            "{url}"
        );
        assert!(
            url.contains("X-Amz-Signature=") && url.contains("X-Amz-Expires=3600"),
            "{url}"
        );
        assert!(!url.contains("dummy-secret"));
    }
    let expiry = batch
        .column_by_name("url_expires_at")
        .expect("expiry")
        .as_primitive::<TimestampMillisecondType>();
    assert!(expiry.null_count() == 0);
    assert!((before + 3_600_000..before + 3_660_000).contains(&expiry.value(0)));
}

#[tokio::test]
async fn signing_on_a_local_store_is_refused_with_a_clear_message() {
    let lake = Lake::open("memory://").expect("open");
    let session = QuerySession::open(&lake).await.expect("open");
    let err = export_jobs(
        &session,
        &lake,
        &request(
            "SELECT org_id, task_id, recording_id FROM recordings",
            Some(Duration::from_secs(60)),
        ),
    )
    .await
    .err()
    .expect("refused");
    assert!(err.is_usage());
    assert!(
        err.to_string()
            .contains("pre-signed URLs need an S3, GCS or Azure store"),
        "{err}"
    );
}

#[tokio::test]
async fn selection_without_recording_keys_is_a_usage_error() {
    let lake = Lake::open("memory://").expect("open");
    let session = QuerySession::open(&lake).await.expect("open");
    let err = export_jobs(&session, &lake, &request("SELECT task_id FROM tasks", None))
        .await
        .err()
        .expect("refused");
    assert!(err.is_usage());
    assert!(err.to_string().contains("org_id, recording_id"), "{err}");
}

#[test]
fn url_lifetimes_parse_with_units_and_are_capped_at_seven_days() {
    assert_eq!(parse_ttl("1h").expect("1h"), Duration::from_secs(3600));
    assert_eq!(parse_ttl("15m").expect("15m"), Duration::from_secs(900));
    assert_eq!(parse_ttl("90").expect("90"), Duration::from_secs(90));
    assert_eq!(
        parse_ttl("7d").expect("7d"),
        Duration::from_secs(7 * 86_400)
    );
    for bad in ["0", "8d", "1w", "h", ""] {
        assert!(parse_ttl(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn mono16k_export_points_at_derivatives_made_from_the_stored_bytes() {
    let lake = Lake::open("memory://").expect("open");
    populate(&lake).await;
    let session = QuerySession::open(&lake).await.expect("open");
    let req = ExportRequest {
        audio: ExportAudio::Mono16k,
        ..request("SELECT org_id, task_id, recording_id FROM recordings", None)
    };
    let rows = lines(&jobs(&session, &lake, &req).await);
    // r2's only derivative was made from other bytes than those stored: not exported.
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(
        rows[1].contains(",t1,r1,")
            && rows[1].contains("/t1/r1.mono16k.wav,,,,,Caller,Agent,90000,,2880044,efef"),
        "mono: no caller or agent channel; the derivative's size and checksum: {}",
        rows[1]
    );
}

#[tokio::test]
async fn export_refuses_to_sign_a_manifest_row_outside_audio() {
    use datafusion::arrow::array::{StringArray, TimestampMillisecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let s3 = dummy_s3();
    let schema = Arc::new(Schema::new(vec![
        Field::new("object_uri", DataType::Utf8, false),
        Field::new("url", DataType::Utf8, true),
        Field::new(
            "url_expires_at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        ),
    ]));
    let batch_of = |uri: &str| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![uri])),
                Arc::new(StringArray::new_null(1)),
                Arc::new(TimestampMillisecondArray::new_null(1).with_timezone("UTC")),
            ],
        )
        .unwrap()
    };
    let ttl = Some(Duration::from_secs(60));
    let good = batch_of("s3://recordings/wxcc/audio/o/t/r.wav");
    assert!(sign_batch(&s3, &good, schema.clone(), ttl).await.is_ok());
    for uri in [
        "s3://recordings/wxcc/_state/org_id=o/watermark.json",
        "s3://recordings/wxcc/tasks/org_id=o/date=2026-01-05/part-0.parquet",
        "s3://recordings/elsewhere/audio/o/t/r.wav",
    ] {
        let err = sign_batch(&s3, &batch_of(uri), schema.clone(), ttl)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("only recordings under"), "{err}");
    }
}

#[test]
fn a_short_job_list_says_how_many_are_left_out_and_why() {
    let cov = super::Coverage {
        selected: 9,
        not_stored: 3,
    };
    assert_eq!(cov.shortfall(9, ExportAudio::Original), None);
    let why = cov.shortfall(6, ExportAudio::Original).expect("short");
    assert!(
        why.starts_with("3 of 9 selected") && why.contains("3 have no stored audio"),
        "{why}"
    );
    let why = cov.shortfall(4, ExportAudio::Mono16k).expect("short");
    assert!(
        why.contains("2 have no current mono16k derivative"),
        "{why}"
    );
    let why = cov.shortfall(5, ExportAudio::Original).expect("short");
    assert!(why.contains("1 could not be matched"), "{why}");
}
