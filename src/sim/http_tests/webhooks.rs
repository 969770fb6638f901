//! Subscriptions over HTTP and the `capture:available` sender against a local receiver.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxStatus};
use axum::routing::post;

use super::*;
use crate::sim::webhooks::{SIGNATURE_HEADER, sign};
use crate::sim::{WebhookDelivery, WebhookKnobs};

const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

type Received = Arc<Mutex<Vec<Value>>>;

/// A receiver that keeps every well-signed event and answers 401 to the others.
async fn receiver() -> (String, Received, tokio::task::JoinHandle<()>) {
    async fn hook(State(got): State<Received>, headers: HeaderMap, body: Bytes) -> AxStatus {
        let sig = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if sig != sign(SECRET.as_bytes(), &body) {
            return AxStatus::UNAUTHORIZED;
        }
        let v: Value = serde_json::from_slice(&body).expect("event JSON");
        got.lock().expect("lock").push(v);
        AxStatus::OK
    }
    let got: Received = Arc::default();
    let app = Router::new()
        .route("/webhook", post(hook))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let url = format!("http://{}/webhook", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, got, task)
}

fn faulty() -> SimConfig {
    SimConfig {
        webhooks: WebhookKnobs {
            loss_rate: 0.2,
            duplicate_rate: 0.2,
            reorder_rate: 0.3,
            bad_signature_rate: 0.1,
            max_delay: Duration::from_millis(20),
            replay: true,
            ..WebhookKnobs::default()
        },
        ..small()
    }
}

/// Runs the sender until every planned delivery finished; returns what it reports.
async fn deliveries(cfg: SimConfig) -> (Simulator, Vec<WebhookDelivery>, Vec<Value>) {
    let (url, got, task) = receiver().await;
    let sim = start(cfg).await;
    sim.subscribe_webhook(&url, SECRET).expect("subscribe");
    let expected = sim.world().recordings().len() as u64;
    for _ in 0..600 {
        let s = sim.webhook_stats();
        if s.events == expected
            && s.accepted + s.refused + s.failed == s.events - s.lost + s.duplicated
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let d = sim.webhook_deliveries();
    task.abort();
    let got = got.lock().expect("lock").clone();
    (sim, d, got)
}

#[tokio::test]
async fn capture_events_are_signed_enveloped_and_faulty_by_the_seed() {
    let (sim, d, got) = deliveries(faulty()).await;
    let s = sim.webhook_stats();
    let recordings: HashSet<(String, String)> = sim
        .world()
        .recordings()
        .iter()
        .map(|r| (r.task_id.clone(), r.id.clone()))
        .collect();
    assert_eq!(s.events, recordings.len() as u64);
    assert!(
        s.lost > 0 && s.duplicated > 0 && s.bad_signatures > 0,
        "{s:?}"
    );
    assert_eq!(s.refused, s.bad_signatures, "{s:?}");
    assert_eq!(s.accepted as usize, got.len());
    for v in &got {
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "capture:available");
        assert_eq!(v["comciscoorgid"], sim.world().org_id());
        assert!(
            v["source"]
                .as_str()
                .is_some_and(|s| s.starts_with("/com/cisco/wxcc/"))
        );
        let key = (
            v["data"]["taskId"].as_str().unwrap_or_default().to_string(),
            v["data"]["recordingId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        assert!(recordings.contains(&key), "{key:?}");
        assert!(
            v["data"]["filePath"]
                .as_str()
                .is_some_and(|p| p.contains("/media/"))
        );
        assert!(v["data"]["createdTime"].is_i64());
    }
    // Duplicates come both as the same event id again and under a new id.
    let ids: Vec<&str> = got.iter().filter_map(|v| v["id"].as_str()).collect();
    let distinct: HashSet<&&str> = ids.iter().collect();
    assert!(distinct.len() <= ids.len());

    // The same seed loses and duplicates the same recordings.
    let (_, again, _) = deliveries(faulty()).await;
    let keyset = |d: &[WebhookDelivery]| -> BTreeSet<(String, String, bool)> {
        d.iter()
            .map(|x| (x.task_id.clone(), x.recording_id.clone(), x.bad_signature))
            .collect()
    };
    assert_eq!(keyset(&d), keyset(&again));
}

#[tokio::test]
async fn minimal_events_carry_only_the_confirmed_fields() {
    let cfg = SimConfig {
        webhooks: WebhookKnobs {
            minimal: true,
            replay: true,
            ..WebhookKnobs::default()
        },
        ..small()
    };
    let (_, _, got) = deliveries(cfg).await;
    assert!(!got.is_empty());
    for v in got {
        let mut keys: Vec<&String> = v["data"].as_object().expect("data").keys().collect();
        keys.sort();
        assert_eq!(keys, ["createdTime", "filePath", "taskId"]);
    }
}

#[tokio::test]
async fn without_replay_only_recordings_that_become_available_later_are_announced() {
    let cfg = SimConfig {
        now: Some(
            chrono::DateTime::parse_from_rfc3339("2026-01-05T12:00:00Z")
                .expect("t")
                .into(),
        ),
        ..small()
    };
    let (url, got, task) = receiver().await;
    let sim = start(cfg).await;
    sim.subscribe_webhook(&url, SECRET).expect("subscribe");
    let before = sim.now();
    sim.advance(chrono::Duration::hours(2));
    let due: HashSet<String> = sim
        .world()
        .recordings()
        .iter()
        .filter(|r| {
            r.available_ms > before.timestamp_millis()
                && r.available_ms <= sim.now().timestamp_millis()
        })
        .map(|r| r.id.clone())
        .collect();
    assert!(!due.is_empty());
    for _ in 0..600 {
        if got.lock().expect("lock").len() >= due.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen: HashSet<String> = got
        .lock()
        .expect("lock")
        .iter()
        .filter_map(|v| v["data"]["recordingId"].as_str().map(str::to_string))
        .collect();
    assert_eq!(seen, due);
    task.abort();
}

#[tokio::test]
async fn subscriptions_are_created_listed_and_deleted() {
    let sim = start(small()).await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let base = sim.base_url();
    let body = json!({
        "name": "Capture Recordings Event",
        "description": "Send Event when recording is available",
        "eventTypes": ["capture:available"],
        "destinationUrl": "https://example.com/webhook",
        "secret": SECRET,
        "orgId": sim.world().org_id(),
    });
    let resp = http
        .post(format!("{base}/v1/subscriptions"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .expect("create");
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created: Value = resp.json().await.expect("json");
    let id = created["data"]["id"].as_str().expect("id").to_string();
    assert_eq!(created["data"]["status"], "active");
    let listed: Value = http
        .get(format!("{base}/v1/subscriptions"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["data"][0]["id"], id.as_str());
    assert!(
        !listed.to_string().contains(SECRET),
        "secrets are never echoed"
    );
    let del = http
        .delete(format!("{base}/v1/subscriptions/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    let again = http
        .get(format!("{base}/v1/subscriptions/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let bad = http
        .post(format!("{base}/v1/subscriptions"))
        .bearer_auth(&token)
        .json(&json!({"name": "x", "eventTypes": [], "destinationUrl": "http://example.com"}))
        .send()
        .await
        .expect("create");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
