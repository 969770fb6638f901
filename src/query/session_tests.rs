//! Tests for the query session over real lakes: tables, the recordings view, pruning, binding.

use super::*;
use crate::query::fixtures::{ORG, csv, lines, populate};
use crate::query::saved_queries;
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;

#[tokio::test]
async fn empty_lake_has_empty_tables_and_every_saved_query_runs_with_defaults() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for lake in [
        Lake::open("memory://").expect("memory"),
        Lake::open(tmp.path().to_str().expect("utf8")).expect("dir"),
    ] {
        let session = QuerySession::open(&lake).await.expect("open");
        for table in Table::ALL {
            let batches = session
                .sql(&format!("SELECT * FROM {table}"))
                .await
                .expect("select");
            assert_eq!(
                batches.iter().map(|b| b.num_rows()).sum::<usize>(),
                0,
                "{table}"
            );
            assert_eq!(batches[0].schema(), sql_schema(table), "{table}");
        }
        for q in saved_queries() {
            let params = q.bind(&[]).expect("defaults bind");
            let batches = session
                .sql_with_params(q.sql, params)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", q.name));
            assert_eq!(
                batches.iter().map(|b| b.num_rows()).sum::<usize>(),
                0,
                "{}",
                q.name
            );
        }
    }
}

#[tokio::test]
async fn registered_tables_have_the_declared_table_schema() {
    let lake = Lake::open("memory://").expect("open");
    let session = QuerySession::open(&lake).await.expect("open");
    for table in Table::ALL {
        let df = session
            .context()
            .table(table.name())
            .await
            .expect("table registered");
        assert_eq!(df.schema().inner(), &sql_schema(table), "{table}");
        let declared = table.def().table_schema();
        let names = |s: &datafusion::arrow::datatypes::Schema| {
            s.fields()
                .iter()
                .map(|f| f.name().clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(df.schema().as_arrow()), names(&declared), "{table}");
    }
}

#[tokio::test]
async fn partition_columns_are_visible_and_filterable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(tmp.path().to_str().expect("utf8")).expect("open");
    populate(&lake).await;
    let session = QuerySession::open(&lake).await.expect("open");
    let rows = csv(
        &session,
        "SELECT task_id, org_id, date FROM tasks WHERE date = '2024-03-06'",
    )
    .await;
    assert_eq!(
        rows,
        vec![
            "task_id,org_id,date".to_string(),
            format!("t5,{ORG},2024-03-06")
        ]
    );
    let rows = csv(
        &session,
        &format!(
            "SELECT count(*) AS n FROM captures WHERE org_id = '{ORG}' AND date = '2024-03-05'"
        ),
    )
    .await;
    assert_eq!(rows, vec!["n", "2"]);
}

#[tokio::test]
async fn queries_cannot_write_to_the_lake() {
    let lake = Lake::open("memory://").expect("open");
    let session = QuerySession::open(&lake).await.expect("open");
    assert!(
        session
            .sql("CREATE TABLE x AS SELECT 1 AS a")
            .await
            .is_err()
    );
    assert!(
        session
            .sql("COPY (SELECT 1 AS a) TO 'memory:///x.parquet'")
            .await
            .is_err()
    );
    assert!(
        session
            .sql("INSERT INTO tasks SELECT * FROM tasks")
            .await
            .is_err()
    );
}

#[tokio::test]
async fn sql_errors_carry_datafusions_message() {
    let lake = Lake::open("memory://").expect("open");
    let session = QuerySession::open(&lake).await.expect("open");
    let err = session
        .sql("SELECT no_such_column FROM tasks")
        .await
        .expect_err("bad column");
    assert!(matches!(err, QueryError::Sql(_)));
    assert!(err.to_string().contains("no_such_column"), "{err}");
}

#[tokio::test]
async fn recordings_view_has_one_row_per_stored_recording_with_friendly_columns() {
    let lake = Lake::open("memory://").expect("open");
    populate(&lake).await;
    let session = QuerySession::open(&lake).await.expect("open");
    let rows = csv(
        &session,
        "SELECT task_id, recording_id, date, queue_name, agent_name, direction, call_type, \
         duration_ms, channel1, channel2, audio_status, audio_duration_ms, caller_talk_ms, \
         agent_talk_ms FROM recordings ORDER BY task_id, recording_id",
    )
    .await;
    assert_eq!(
        rows,
        vec![
            "task_id,recording_id,date,queue_name,agent_name,direction,call_type,duration_ms,\
             channel1,channel2,audio_status,audio_duration_ms,caller_talk_ms,agent_talk_ms",
            // r1 analysed: caller on channel 1 (30 s of talk), agent on channel 2 (45 s).
            "t1,r1,2024-03-05,Support,Alice,inbound,main,90000,Caller,Agent,ok,90000,30000,45000",
            // r2 not analysed yet: audio columns null; the failed t5 download is not a recording.
            "t1,r2,2024-03-05,Support,Alice,inbound,consult,90000,Caller,Agent,,,,",
        ]
    );
}

#[tokio::test]
async fn recordings_view_points_at_current_derivatives_by_party() {
    let lake = Lake::open("memory://").expect("open");
    populate(&lake).await;
    let session = QuerySession::open(&lake).await.expect("open");
    let rows = csv(
        &session,
        "SELECT recording_id, regexp_replace(mono16k_uri, '.*/', ''), \
         regexp_replace(caller_16k_uri, '.*/', ''), regexp_replace(agent_16k_uri, '.*/', '') \
         FROM recordings ORDER BY recording_id",
    )
    .await;
    // r1: the caller is on channel 1. r2's derivative is stale (other source bytes): none.
    assert_eq!(&rows[1], "r1,r1.mono16k.wav,r1.ch1_16k.wav,r1.ch2_16k.wav");
    assert_eq!(&rows[2], "r2,,,");
}

#[tokio::test]
async fn talk_time_follows_the_channel_labels_not_the_channel_number() {
    let lake = Lake::open("memory://").expect("open");
    populate(&lake).await;
    let mut swapped = crate::query::fixtures::facts("t1", "r2", 10_000, 20_000);
    swapped.channel1_label = Some("Agent".into());
    swapped.channel2_label = Some("Caller".into());
    lake.upsert_partition(
        Table::AudioFacts,
        ORG,
        crate::query::fixtures::day(5),
        crate::lake::audio_facts_batch(&[swapped]).expect("batch"),
    )
    .await
    .expect("upsert");
    let session = QuerySession::open(&lake).await.expect("open");
    let rows = csv(
        &session,
        "SELECT caller_talk_ms, agent_talk_ms FROM recordings WHERE recording_id = 'r2'",
    )
    .await;
    assert_eq!(rows, vec!["caller_talk_ms,agent_talk_ms", "20000,10000"]);
}

/// The physical plan's file list, from EXPLAIN.
async fn plan(session: &QuerySession, sql: &str) -> String {
    let batches = session
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .expect("explain");
    lines(&batches).join("\n")
}

#[tokio::test]
async fn joins_build_one_hash_table_without_repartitioning_up_to_millions_of_rows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(tmp.path().to_str().expect("utf8")).expect("open");
    populate(&lake).await;
    let session = QuerySession::open(&lake).await.expect("open");
    let config = session.context().copied_config();
    let optimizer = &config.options().optimizer;
    assert_eq!(
        optimizer.hash_join_single_partition_threshold,
        COLLECT_LEFT_MAX_BYTES
    );
    assert_eq!(
        optimizer.hash_join_single_partition_threshold_rows,
        COLLECT_LEFT_MAX_ROWS
    );
    const { assert!(COLLECT_LEFT_MAX_ROWS >= 1_000_000) };
    let join = plan(
        &session,
        "SELECT t.queue_name, count(*) FROM manifest AS m JOIN tasks AS t \
         ON t.org_id = m.org_id AND t.date = m.date AND t.task_id = m.task_id \
         GROUP BY t.queue_name",
    )
    .await;
    assert!(join.contains("mode=CollectLeft"), "{join}");
}

#[tokio::test]
async fn date_filter_prunes_other_partitions_from_the_plan() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(tmp.path().to_str().expect("utf8")).expect("open");
    populate(&lake).await;
    let session = QuerySession::open(&lake).await.expect("open");

    let all = plan(&session, "SELECT task_id FROM tasks").await;
    assert!(all.contains("date=2024-03-05/part-0.parquet"), "{all}");
    assert!(all.contains("date=2024-03-06/part-0.parquet"), "{all}");

    let one = plan(
        &session,
        "SELECT task_id FROM tasks WHERE date = '2024-03-06'",
    )
    .await;
    assert!(one.contains("tasks/org_id="), "{one}");
    assert!(one.contains("date=2024-03-06/part-0.parquet"), "{one}");
    assert!(!one.contains("date=2024-03-05"), "pruned: {one}");

    // Through the view, every joined table is pruned, not only the manifest.
    let view = plan(
        &session,
        "SELECT task_id, queue_name, caller_talk_ms FROM recordings WHERE date = '2024-03-06'",
    )
    .await;
    for table in ["manifest", "tasks", "captures"] {
        assert!(
            view.contains(&format!(
                "{table}/org_id={ORG}/date=2024-03-06/part-0.parquet"
            )),
            "{table}: {view}"
        );
    }
    assert!(!view.contains("date=2024-03-05"), "pruned: {view}");
}

#[tokio::test]
async fn placeholders_bind_typed_values_and_a_hostile_value_is_only_a_literal() {
    let lake = Lake::open("memory://").expect("open");
    populate(&lake).await;
    let session = QuerySession::open(&lake).await.expect("open");
    let sql =
        "SELECT task_id FROM tasks WHERE date >= $since AND queue_name = $queue ORDER BY task_id";
    let bind = |queue: &str| {
        ParamValues::from(vec![
            ("since", ScalarValue::Utf8(Some("2024-03-05".into()))),
            ("queue", ScalarValue::Utf8(Some(queue.into()))),
        ])
    };
    let rows = lines(
        &session
            .sql_with_params(sql, bind("Support"))
            .await
            .expect("runs"),
    );
    assert_eq!(rows, vec!["task_id", "t1", "t2", "t4", "t5"]);

    for hostile in ["x'; DROP TABLE tasks; --", "Support' OR '1'='1", "$since"] {
        let rows = lines(
            &session
                .sql_with_params(sql, bind(hostile))
                .await
                .expect("runs"),
        );
        assert_eq!(rows, vec!["task_id"], "{hostile} matched rows");
    }
    // The table is still there and whole.
    assert_eq!(
        csv(&session, "SELECT count(*) AS n FROM tasks").await,
        vec!["n", "5"]
    );
}

#[tokio::test]
async fn missing_parameter_value_is_an_error_naming_it() {
    let lake = Lake::open("memory://").expect("open");
    let session = QuerySession::open(&lake).await.expect("open");
    let err = session
        .sql_with_params(
            "SELECT task_id FROM tasks WHERE date >= $since",
            ParamValues::from(vec![("other", ScalarValue::Utf8(None))]),
        )
        .await
        .expect_err("unbound placeholder");
    assert!(err.to_string().contains("since"), "{err}");
}

/// A part file cut to 0 bytes (a write lost after its rename) is an error naming it, not a
/// silent loss of its rows: DataFusion's listing skips such files.
#[tokio::test]
async fn a_table_file_of_zero_bytes_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(tmp.path().to_str().expect("utf8")).expect("open");
    populate(&lake).await;
    QuerySession::open(&lake).await.expect("a whole lake opens");
    let part = tmp.path().join(format!(
        "manifest/org_id={ORG}/date=2024-03-06/part-0.parquet"
    ));
    assert!(part.exists(), "{}", part.display());
    std::fs::write(&part, b"").expect("truncate");
    let err = QuerySession::open(&lake)
        .await
        .err()
        .expect("an empty file is refused")
        .to_string();
    assert!(
        err.contains("date=2024-03-06/part-0.parquet") && err.contains("0 bytes"),
        "{err}"
    );
}
