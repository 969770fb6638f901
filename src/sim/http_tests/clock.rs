//! The simulated clock over HTTP: the API answers as of `Simulator::now`.

use chrono::{DateTime, Utc};

use super::*;
use crate::sim::world::SimRecording;

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).expect("instant in range")
}

async fn task_data(sim: &Simulator, http: &Client, token: &str, query: &str) -> Vec<Value> {
    let resp = get_tasks(sim, http, token, query).await;
    assert_eq!(resp.status(), StatusCode::OK, "{query}");
    let body: Value = resp.json().await.expect("tasks JSON");
    body["data"].as_array().expect("data").clone()
}

fn ids(data: &[Value]) -> Vec<String> {
    data.iter()
        .map(|t| t["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Recording ids listed for one task by the default captures query.
async fn capture_ids(sim: &Simulator, http: &Client, token: &str, task_id: &str) -> Vec<String> {
    let resp = captures(sim, http, token, json!({"query": {"taskIds": [task_id]}})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("captures JSON");
    body["data"][0]["recording"]
        .as_array()
        .expect("recording array")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Removes the pre-signed URLs, which carry the wall-clock signing time.
fn without_file_paths(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.remove("filePath");
            o.values_mut().for_each(without_file_paths);
        }
        Value::Array(a) => a.iter_mut().for_each(without_file_paths),
        _ => {}
    }
}

#[tokio::test]
async fn tasks_created_after_now_are_invisible_and_appear_after_advance() {
    let sim = start(small()).await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let world = sim.world().clone();
    let task = world.tasks()[world.tasks().len() / 2].clone();
    sim.set_now(at(task.created_ms - 1));
    assert_eq!(sim.now(), at(task.created_ms - 1));
    let before = task_data(&sim, &http, &token, "from=0&pageSize=1000").await;
    let expected: Vec<String> = world
        .tasks_as_of(sim.now())
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids(&before), expected, "`to` defaults to the simulated now");
    assert!(!ids(&before).contains(&task.id));
    let future_to = format!("from=0&to={}&pageSize=1000", task.created_ms + 86_400_000);
    let explicit = task_data(&sim, &http, &token, &future_to).await;
    assert_eq!(
        ids(&explicit),
        expected,
        "a later `to` does not reveal the future"
    );
    sim.advance(chrono::Duration::milliseconds(1));
    let after = task_data(&sim, &http, &token, "from=0&pageSize=1000").await;
    assert!(ids(&after).contains(&task.id));
    assert!(after.len() > before.len());
}

#[tokio::test]
async fn an_open_call_has_null_capture_requested_and_its_recording_appears_after_the_delay() {
    let sim = start(small()).await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let world = sim.world().clone();
    let rec: SimRecording = world.recordings()[0].clone();
    let task = world.task(&rec.task_id).expect("task").clone();
    let one = format!("from={}&to={}", task.created_ms, task.created_ms + 1);
    let find = |data: Vec<Value>| {
        data.into_iter()
            .find(|t| t["id"] == task.id.as_str())
            .expect("task listed")
    };

    sim.set_now(at(rec.stop_ms - 1));
    let open = find(task_data(&sim, &http, &token, &one).await);
    assert_eq!(open["attributes"]["status"], "assigned");
    assert_eq!(open["attributes"]["captureRequested"], Value::Null);
    let updated = open["attributes"]["lastUpdatedTime"].as_i64().expect("ms");
    assert!(updated < rec.stop_ms - 1 && updated >= task.created_ms);
    assert!(capture_ids(&sim, &http, &token, &task.id).await.is_empty());

    sim.set_now(at(rec.available_ms - 1));
    let ended = find(task_data(&sim, &http, &token, &one).await);
    assert_eq!(ended["attributes"]["captureRequested"], true);
    assert!(ended["attributes"]["lastUpdatedTime"].as_i64() > Some(updated));
    assert!(capture_ids(&sim, &http, &token, &task.id).await.is_empty());

    sim.advance(chrono::Duration::milliseconds(1));
    assert!(
        capture_ids(&sim, &http, &token, &task.id)
            .await
            .contains(&rec.id)
    );
    sim.set_now(world.default_now());
    let done = find(task_data(&sim, &http, &token, &one).await);
    assert_eq!(done["attributes"]["status"], task.status.as_str());
    assert_eq!(done["attributes"]["lastUpdatedTime"], task.last_updated_ms);
}

#[tokio::test]
async fn default_now_serves_the_final_world() {
    let sim = start(small()).await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let world = sim.world().clone();
    assert_eq!(sim.now(), world.default_now());
    let data = task_data(&sim, &http, &token, "from=0&pageSize=1000").await;
    let expected: Value = serde_json::from_slice(&crate::sim::wxcc::render_tasks(
        world.org_id(),
        world.tasks(),
    ))
    .expect("JSON");
    assert_eq!(Value::Array(data), expected["data"]);
    let mut recorded: Vec<&str> = world
        .recordings()
        .iter()
        .map(|r| r.task_id.as_str())
        .collect();
    recorded.dedup();
    for task_id in recorded.into_iter().take(5) {
        let want: Vec<String> = world
            .recordings_for(task_id, false, false)
            .iter()
            .map(|r| r.id.clone())
            .collect();
        assert_eq!(capture_ids(&sim, &http, &token, task_id).await, want);
    }
}

#[tokio::test]
async fn same_seed_and_same_now_give_the_same_answers() {
    let probe = start(small()).await;
    let world = probe.world().clone();
    let now = at(world.tasks()[0].created_ms + 86_400_000 + 3_600_000);
    probe.shutdown().await;
    let cfg = SimConfig {
        now: Some(now),
        ..small()
    };
    let (a, b) = (start(cfg.clone()).await, start(cfg).await);
    assert_eq!(
        (a.now(), b.now()),
        (now, now),
        "SimConfig::now sets the clock"
    );
    let http = client();
    let (ta, tb) = (bearer(&a, &http).await, bearer(&b, &http).await);
    let body = |resp: reqwest::Response| async move { resp.bytes().await.expect("body") };
    let query = "from=0&pageSize=1000";
    assert_eq!(
        body(get_tasks(&a, &http, &ta, query).await).await,
        body(get_tasks(&b, &http, &tb, query).await).await
    );
    let task_ids: Vec<String> = world
        .tasks_as_of(now)
        .iter()
        .filter(|t| t.channel_type == "telephony")
        .rev()
        .take(10)
        .map(|t| t.id.clone())
        .collect();
    let request = json!({"query": {"taskIds": task_ids, "includeSegments": true, "includeVARecordings": true}});
    let mut ca: Value = captures(&a, &http, &ta, request.clone())
        .await
        .json()
        .await
        .expect("JSON");
    let mut cb: Value = captures(&b, &http, &tb, request)
        .await
        .json()
        .await
        .expect("JSON");
    without_file_paths(&mut ca);
    without_file_paths(&mut cb);
    assert_eq!(ca, cb);
}
