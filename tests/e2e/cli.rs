//! Bad input gets a clear message and a documented, non-zero exit code.

use std::collections::HashMap;

use crate::util::{text, wxcc};

const USAGE: i32 = 2;

async fn fails_with(args: &[&str], env: &[(&str, &str)], expect_in_stderr: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let out = wxcc(args, &env, dir.path()).await;
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(USAGE),
        "args {args:?}\nstderr: {stderr}"
    );
    for needle in expect_in_stderr {
        assert!(
            stderr.contains(needle),
            "{needle:?} not in stderr: {stderr}"
        );
    }
}

#[tokio::test]
async fn missing_credentials_are_named() {
    fails_with(
        &["sync", "--from", "2026-01-05", "--to", "2026-01-06"],
        &[("WXCC_REGION", "us1")],
        &["WXCC_CLIENT_ID", "WXCC_CLIENT_SECRET", "WXCC_REFRESH_TOKEN"],
    )
    .await;
}

#[tokio::test]
async fn unknown_region_lists_the_known_ones() {
    fails_with(
        &["sync", "--from", "2026-01-05", "--to", "2026-01-06"],
        &[("WXCC_REGION", "xx9")],
        &["unknown region", "xx9", "us1"],
    )
    .await;
}

#[tokio::test]
async fn from_after_to_is_refused() {
    fails_with(
        &["sync", "--from", "2026-01-07", "--to", "2026-01-06"],
        &[("WXCC_REGION", "us1")],
        &["--from", "before"],
    )
    .await;
}

#[tokio::test]
async fn malformed_dates_show_the_expected_format() {
    fails_with(
        &["sync", "--from", "yesterday"],
        &[("WXCC_REGION", "us1")],
        &["--from", "YYYY-MM-DD"],
    )
    .await;
    // chrono alone reads `26-01-05` as the year 26: a report over nothing, with exit 0.
    fails_with(
        &["report", "--from", "26-01-05"],
        &[],
        &["--from", "YYYY-MM-DD"],
    )
    .await;
}

#[tokio::test]
async fn unsupported_output_scheme_is_refused() {
    fails_with(
        &[
            "sync",
            "--from",
            "2026-01-05",
            "--to",
            "2026-01-06",
            "--output",
            "ftp://host/x",
        ],
        &[
            ("WXCC_API_BASE_URL", "http://127.0.0.1:9"),
            ("WXCC_CLIENT_ID", "c"),
            ("WXCC_CLIENT_SECRET", "s"),
            ("WXCC_REFRESH_TOKEN", "r"),
        ],
        &["ftp://host/x", "s3://"],
    )
    .await;
}

#[tokio::test]
async fn malformed_config_file_names_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("wxcc.toml"), "regoin = 'us1'\n").unwrap();
    let out = wxcc(&["sync"], &HashMap::new(), dir.path()).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(USAGE), "{stderr}");
    assert!(
        stderr.contains("wxcc.toml") && stderr.contains("regoin"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_mistyped_lake_location_is_refused_not_read_as_empty() {
    fails_with(
        &["sql", "SELECT 1", "--data", "no-such-lake"],
        &[],
        &["no lake at", "no-such-lake", "--data"],
    )
    .await;
    // A folder that exists but holds nothing a sync wrote (`--data ~`, `--data lake/tasks`):
    // every command that reads refuses it, and `duckdb-init` creates nothing there.
    let dir = tempfile::tempdir().unwrap();
    let not_a_lake = dir.path().join("notes");
    std::fs::create_dir_all(not_a_lake.join("2026")).unwrap();
    std::fs::write(not_a_lake.join("todo.txt"), "x").unwrap();
    let at = not_a_lake.to_str().unwrap();
    for args in [
        vec!["sql", "SELECT count(*) FROM tasks", "--data", at],
        vec!["query", "run", "recordings_to_transcribe", "--data", at],
        vec!["report", "--output", "r.html", "--data", at],
        vec!["duckdb-init", "--data", at],
    ] {
        let out = wxcc(&args, &HashMap::new(), dir.path()).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(USAGE), "{args:?}: {stderr}");
        assert!(stderr.contains("no lake at"), "{args:?}: {stderr}");
    }
    assert!(!dir.path().join("r.html").exists());
    assert!(!not_a_lake.join("tasks").exists());
}

#[tokio::test]
async fn an_existing_lake_given_as_a_file_url_is_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("my lake/_state")).unwrap();
    let url = url::Url::from_directory_path(dir.path().join("my lake")).unwrap();
    assert!(url.as_str().contains("%20"));
    let out = wxcc(
        &["sql", "SELECT 1 AS one", "--data", url.as_str()],
        &HashMap::new(),
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[tokio::test]
async fn a_storage_location_that_cannot_be_configured_is_a_usage_error() {
    fails_with(
        &["sql", "SELECT 1", "--data", "s3://"],
        &[],
        &["cannot configure object store for `s3://`"],
    )
    .await;
}

#[tokio::test]
async fn a_sql_syntax_error_reads_plainly_and_is_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tasks")).unwrap();
    let out = wxcc(
        &["sql", "selec", "--data", "."],
        &HashMap::new(),
        dir.path(),
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(USAGE), "{stderr}");
    assert!(stderr.contains("sql parser error: Expected"), "{stderr}");
    assert!(!stderr.contains("ParserError("), "no Debug dump: {stderr}");
    assert_eq!(stderr.matches("Expected").count(), 1, "said once: {stderr}");
}

#[tokio::test]
async fn a_report_day_given_as_an_instant_says_a_day_is_expected() {
    fails_with(
        &["report", "--from", "2026-01-01T00:00:00Z"],
        &[],
        &["--from", "YYYY-MM-DD", "whole days"],
    )
    .await;
}

#[tokio::test]
async fn observer_destinations_that_cannot_work_are_refused_before_the_run() {
    fails_with(
        &["sync", "--openlineage-url", "ftp://marquez/api"],
        &[],
        &["--openlineage-url", "http"],
    )
    .await;
    fails_with(
        &["sync", "--openlineage-file", "/no/such/folder/ol.jsonl"],
        &[],
        &["--openlineage-file", "/no/such/folder"],
    )
    .await;
    fails_with(
        &["sync", "--metrics-file", "/no/such/folder/wxcc.prom"],
        &[],
        &["--metrics-file", "does not exist"],
    )
    .await;
}

#[tokio::test]
async fn an_out_of_range_setting_names_the_flag_too() {
    fails_with(
        &["sync", "--concurrency", "0"],
        &[
            ("WXCC_REGION", "us1"),
            ("WXCC_CLIENT_ID", "id"),
            ("WXCC_CLIENT_SECRET", "secret"),
        ],
        &["download_concurrency", "--concurrency", "between 1 and 256"],
    )
    .await;
}
