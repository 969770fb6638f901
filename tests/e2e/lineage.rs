//! OpenLineage run events from `wxcc sync`, validated with Python's `jsonschema` against the
//! OpenLineage spec 2-0-2 and the facet schemas copied into `fixtures/openlineage/`.

use std::path::Path;

use crate::s3::test_python;
use crate::util::{run_ok, sim_env, small_world, start_sim, sync_small_world, text};

/// Validates every line of `events` (the event against RunEvent, each facet against the schema
/// its `_schemaURL` names); prints the error and exits non-zero on the first invalid one.
const VALIDATE: &str = r#"
import glob, json, os, sys
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
schemas = [json.load(open(p)) for p in glob.glob(os.path.join(sys.argv[1], "*.json"))]
registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas)
def check(instance, ref):
    Draft202012Validator({"$ref": ref}, registry=registry,
                         format_checker=Draft202012Validator.FORMAT_CHECKER).validate(instance)
def facets(event):
    yield from event["run"].get("facets", {}).values()
    yield from event["job"].get("facets", {}).values()
    for d in event.get("outputs", []):
        yield from d.get("facets", {}).values()
        yield from d.get("outputFacets", {}).values()
for line in open(sys.argv[2]):
    event = json.loads(line)
    check(event, event["schemaURL"])
    for f in facets(event):
        check(f, f["_schemaURL"])
print("valid")
"#;

async fn validate(python: &str, events: &Path) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/openlineage");
    run_ok(tokio::process::Command::new(python).args([
        "-c",
        VALIDATE,
        fixtures.to_str().unwrap(),
        events.to_str().unwrap(),
    ]))
    .await;
}

fn events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_emits_start_and_complete_with_the_tables_that_validate_against_openlineage() {
    let Some(python) = test_python() else { return };
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lineage.jsonl");
    let out = sync_small_world(
        dir.path().join("out").to_str().unwrap(),
        &["--openlineage-file", file.to_str().unwrap()],
        &sim_env(&sim),
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ev = events(&file);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0]["eventType"], "START");
    assert_eq!(ev[1]["eventType"], "COMPLETE");
    for e in &ev {
        assert_eq!(
            e["run"]["runId"], summary["run_id"],
            "one run id everywhere"
        );
        assert_eq!(
            e["job"]["name"],
            format!("sync.{}", sim.credentials().org_id)
        );
    }
    let outputs = ev[1]["outputs"].as_array().unwrap();
    let names: Vec<&str> = outputs
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "tasks",
            "captures",
            "manifest",
            "audio_facts",
            "derivatives"
        ]
    );
    let tasks = &outputs[0];
    assert_eq!(
        tasks["outputFacets"]["outputStatistics"]["rowCount"],
        summary["tasks"]
    );
    let fields = tasks["facets"]["schema"]["fields"].as_array().unwrap();
    assert!(fields.iter().any(|f| f["name"] == "task_id"), "{tasks}");
    assert!(
        tasks["namespace"].as_str().unwrap().starts_with("file:///"),
        "{tasks}"
    );
    validate(&python, &file).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_emits_fail_with_its_error_and_validates() {
    let Some(python) = test_python() else { return };
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lineage.jsonl");
    sim.revoke_refresh_token(&sim.credentials().refresh_token);
    let out = sync_small_world(
        dir.path().join("out").to_str().unwrap(),
        &["--openlineage-file", file.to_str().unwrap()],
        &sim_env(&sim),
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let ev = events(&file);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1]["eventType"], "FAIL");
    let message = ev[1]["run"]["facets"]["errorMessage"]["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("re-authorization"), "{message}");
    assert!(!message.contains(&sim.credentials().refresh_token));
    validate(&python, &file).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_posted_to_an_openlineage_endpoint() {
    use axum::{Json, Router, extract::State, routing::post};
    use std::sync::{Arc, Mutex};
    type Seen = Arc<Mutex<Vec<serde_json::Value>>>;
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route(
            "/api/v1/lineage",
            post(
                |State(seen): State<Seen>, Json(v): Json<serde_json::Value>| async move {
                    seen.lock().unwrap().push(v);
                },
            ),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/lineage", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let sim = start_sim(small_world()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = sync_small_world(
        dir.path().join("out").to_str().unwrap(),
        &["--openlineage-url", &url],
        &sim_env(&sim),
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let types: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["START", "COMPLETE"]);
    server.abort();
    sim.shutdown().await;
}
