//! `--metrics-file`: Prometheus text exposition, read back with Prometheus' own Python parser.

use std::collections::HashMap;
use std::path::Path;

use crate::s3::test_python;
use crate::util::{sim_env, small_world, start_sim, sync_small_world, text};

/// Parses the file with `prometheus_client.parser`: `{sample name: {org: value}}`, and the
/// type of every family.
async fn parse(
    python: &str,
    file: &Path,
) -> (
    HashMap<String, HashMap<String, f64>>,
    HashMap<String, String>,
) {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples, types = {}, {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    types[family.name] = family.type
    for s in family.samples:
        samples.setdefault(s.name, {})[s.labels["org"]] = s.value
print(json.dumps({"samples": samples, "types": types}))
"#;
    let out = tokio::process::Command::new(python)
        .args(["-c", script, file.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        serde_json::from_value(v["samples"].clone()).unwrap(),
        serde_json::from_value(v["types"].clone()).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_writes_prometheus_metrics_per_org_that_prometheus_parses() {
    let Some(python) = test_python() else { return };
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("textfile").join("wxcc.prom");
    std::fs::create_dir(prom.parent().unwrap()).unwrap();
    let out_dir = dir.path().join("out");
    let env = sim_env(&sim);
    let out = sync_small_world(
        out_dir.to_str().unwrap(),
        &["--metrics-file", prom.to_str().unwrap()],
        &env,
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (samples, types) = parse(&python, &prom).await;
    let org = &sim.credentials().org_id;
    let get = |name: &str| samples.get(name).and_then(|m| m.get(org)).copied();
    assert_eq!(get("wxcc_sync_success"), Some(1.0));
    assert_eq!(get("wxcc_sync_exit_code"), Some(0.0));
    assert!(get("wxcc_sync_tasks").unwrap() > 0.0);
    assert!(get("wxcc_sync_recordings_stored").unwrap() > 0.0);
    assert!(get("wxcc_sync_bytes").unwrap() > 0.0);
    assert!(get("wxcc_sync_api_requests").unwrap() > 0.0);
    for name in [
        "wxcc_sync_api_rate_limited",
        "wxcc_sync_api_retries",
        "wxcc_sync_rejects",
        "wxcc_sync_recordings_failed",
        "wxcc_sync_duration_seconds",
        "wxcc_sync_watermark_lag_seconds",
        "wxcc_sync_pending_ledger",
        "wxcc_sync_last_run_timestamp_seconds",
        "wxcc_sync_refresh_token_expiry_timestamp_seconds",
    ] {
        assert!(get(name).is_some(), "{name} missing: {samples:?}");
    }
    assert!(types.values().all(|t| t == "gauge"), "{types:?}");
    let leftovers: Vec<_> = std::fs::read_dir(prom.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_still_writes_metrics_with_its_exit_code() {
    let Some(python) = test_python() else { return };
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("wxcc.prom");
    sim.revoke_refresh_token(&sim.credentials().refresh_token);
    let out = sync_small_world(
        dir.path().join("out").to_str().unwrap(),
        &["--metrics-file", prom.to_str().unwrap()],
        &sim_env(&sim),
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let (samples, _) = parse(&python, &prom).await;
    let org = &sim.credentials().org_id;
    assert_eq!(samples["wxcc_sync_success"][org], 0.0, "{samples:?}");
    assert_eq!(samples["wxcc_sync_exit_code"][org], 3.0, "{samples:?}");
    sim.shutdown().await;
}
