//! Round trips over real HTTP on 127.0.0.1:0, with reqwest as the client.

mod api;
mod clock;
mod knobs;
mod media;
mod oauth;
mod webhooks;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Client, StatusCode, redirect::Policy};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{SimConfig, Simulator};

fn small() -> SimConfig {
    SimConfig {
        days: 2,
        calls_per_day: 60,
        median_call_secs: 4,
        max_call_secs: 10,
        ..SimConfig::default()
    }
}

async fn start(cfg: SimConfig) -> Simulator {
    let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
    Simulator::start(cfg, addr).await.expect("simulator starts")
}

fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("http client")
}

async fn refresh(sim: &Simulator, http: &Client) -> Value {
    let c = sim.credentials();
    let resp = http
        .post(format!("{}/v1/access_token", sim.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", c.client_id.as_str()),
            ("client_secret", c.client_secret.as_str()),
            ("refresh_token", c.refresh_token.as_str()),
        ])
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.expect("token JSON")
}

async fn bearer(sim: &Simulator, http: &Client) -> String {
    refresh(sim, http).await["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

async fn get_tasks(sim: &Simulator, http: &Client, token: &str, query: &str) -> reqwest::Response {
    http.get(format!("{}/v1/tasks?{query}", sim.base_url()))
        .bearer_auth(token)
        .send()
        .await
        .expect("tasks request")
}

async fn captures(sim: &Simulator, http: &Client, token: &str, body: Value) -> reqwest::Response {
    http.post(format!("{}/v1/captures/query", sim.base_url()))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("captures request")
}

/// First captured recording's `filePath`, plus the recording's id.
async fn first_recording_url(sim: &Simulator, http: &Client, token: &str) -> (String, String) {
    let rec = sim.world().recordings()[0].clone();
    let body: Value = captures(
        sim,
        http,
        token,
        json!({"query": {"taskIds": [rec.task_id]}}),
    )
    .await
    .json()
    .await
    .expect("captures JSON");
    let url = body["data"][0]["recording"][0]["attributes"]["filePath"]
        .as_str()
        .expect("filePath")
        .to_string();
    (url, rec.id)
}

fn key_types(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    let t = match v {
                        Value::Object(_) => format!("{:?}", key_types(v)),
                        Value::Array(_) => "array".into(),
                        Value::String(_) => "string".into(),
                        Value::Number(_) => "number".into(),
                        Value::Bool(_) => "bool".into(),
                        Value::Null => "null".into(),
                    };
                    (k.clone(), t)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn authorize_url(sim: &Simulator, redirect: &str, scope: &str, challenge: Option<&str>) -> String {
    let mut url = url::Url::parse(&format!("{}/v1/authorize", sim.base_url())).expect("url");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &sim.credentials().client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", scope)
        .append_pair("state", "st-123");
    if let Some(ch) = challenge {
        url.query_pairs_mut()
            .append_pair("code_challenge", ch)
            .append_pair("code_challenge_method", "S256");
    }
    url.to_string()
}

fn location_params(resp: &reqwest::Response) -> HashMap<String, String> {
    let loc = resp.headers()[reqwest::header::LOCATION]
        .to_str()
        .expect("location");
    url::Url::parse(loc)
        .expect("redirect url")
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test]
async fn env_lines_point_a_client_at_the_simulator() {
    let sim = start(small()).await;
    let lines = sim.env_lines();
    for var in [
        "WXCC_API_BASE_URL",
        "WXCC_OAUTH_BASE_URL",
        "WXCC_CLIENT_ID",
        "WXCC_CLIENT_SECRET",
        "WXCC_ORG_ID",
        "WXCC_REFRESH_TOKEN",
    ] {
        assert!(lines.contains(&format!("export {var}=")), "{var}");
    }
    assert!(sim.base_url().starts_with("http://127.0.0.1:") && !sim.base_url().ends_with('/'));
    assert!(
        sim.credentials().client_id.starts_with('C') && sim.credentials().client_id.len() == 65
    );
    sim.shutdown().await;
}
