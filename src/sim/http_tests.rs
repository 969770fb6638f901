//! Round trips over real HTTP on 127.0.0.1:0, with reqwest as the client.

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

#[tokio::test]
async fn refresh_grant_accepts_form_json_and_basic_auth_and_keeps_the_refresh_token() {
    let sim = start(small()).await;
    let http = client();
    let c = sim.credentials().clone();
    let form = refresh(&sim, &http).await;
    assert_eq!(form["token_type"], "Bearer");
    assert_eq!(form["expires_in"], 1_209_599);
    assert_eq!(form["refresh_token"], c.refresh_token.as_str());
    assert_eq!(form["scope"], "cjp:config cjp:config_read");
    let access = form["access_token"].as_str().expect("access token");
    assert!(access.ends_with(&format!("_P0A1_{}", c.org_id)));
    let url = format!("{}/v1/access_token", sim.base_url());
    let json_body: Value = http
        .post(&url)
        .json(&json!({"grant_type": "refresh_token", "client_id": c.client_id, "client_secret": c.client_secret, "refresh_token": c.refresh_token}))
        .send()
        .await
        .expect("json refresh")
        .json()
        .await
        .expect("json body");
    assert_eq!(
        json_body["access_token"], access,
        "same access token within 24 h"
    );
    let basic = http
        .post(&url)
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", c.refresh_token.as_str()),
        ])
        .send()
        .await
        .expect("basic refresh");
    assert_eq!(basic.status(), StatusCode::OK);
    assert_eq!(sim.stats().token_grants, 3);
}

#[tokio::test]
async fn bad_or_revoked_refresh_token_is_400_invalid_grant() {
    let sim = start(small()).await;
    let http = client();
    let c = sim.credentials().clone();
    let url = format!("{}/v1/access_token", sim.base_url());
    let send = |token: String| {
        let form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("client_id", c.client_id.clone()),
            ("client_secret", c.client_secret.clone()),
            ("refresh_token", token),
        ];
        http.post(&url).form(&form).send()
    };
    let resp = send("garbage_P0A1_x".into()).await.expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.expect("error JSON");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "The refresh token provided is expired, revoked, malformed, or invalid."
    );
    assert!(
        body["trackingId"]
            .as_str()
            .is_some_and(|t| t.starts_with("ROUTER_"))
    );
    sim.revoke_refresh_token(&c.refresh_token);
    let resp = send(c.refresh_token.clone()).await.expect("request");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let wrong_secret = http
        .post(&url)
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &c.client_id),
            ("client_secret", "x"),
            ("refresh_token", "y"),
        ])
        .send()
        .await
        .expect("request");
    let body: Value = wrong_secret.json().await.expect("error JSON");
    assert_eq!(body["error"], "invalid_client");
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
async fn authorization_code_flow_with_pkce_issues_tokens_once() {
    let sim = start(small()).await;
    let http = client();
    let c = sim.credentials().clone();
    let verifier = "v".repeat(20) + "erifier-0123456789-abcdefghijklmnop";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let redirect = "http://127.0.0.1:8123/callback";
    let resp = http
        .get(authorize_url(
            &sim,
            redirect,
            "cjp:config_read cjp:config",
            Some(&challenge),
        ))
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let params = location_params(&resp);
    assert_eq!(params["state"], "st-123");
    let code = params["code"].clone();
    let redeem = |verifier: &str, code: &str| {
        let form = vec![
            ("grant_type", "authorization_code".to_string()),
            ("client_id", c.client_id.clone()),
            ("client_secret", c.client_secret.clone()),
            ("code", code.to_string()),
            ("redirect_uri", redirect.to_string()),
            ("code_verifier", verifier.to_string()),
        ];
        http.post(format!("{}/v1/access_token", sim.base_url()))
            .form(&form)
            .send()
    };
    let ok = redeem(&verifier, &code).await.expect("redeem");
    assert_eq!(ok.status(), StatusCode::OK);
    let tokens: Value = ok.json().await.expect("tokens");
    assert_eq!(tokens["scope"], "cjp:config_read cjp:config");
    assert_eq!(tokens["refresh_token_expires_in"], 7_776_000);
    let again = redeem(&verifier, &code).await.expect("reuse");
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        again.json::<Value>().await.expect("error")["error"],
        "invalid_grant"
    );
    let resp = http
        .get(authorize_url(
            &sim,
            redirect,
            "cjp:config",
            Some(&challenge),
        ))
        .send()
        .await
        .expect("authorize");
    let code = location_params(&resp)["code"].clone();
    let wrong = redeem("not-the-verifier-but-long-enough-to-look-right-xx", &code)
        .await
        .expect("redeem");
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn authorize_reports_bad_scope_by_redirect_and_never_redirects_to_unknown_uris() {
    let sim = start(small()).await;
    let http = client();
    let resp = http
        .get(authorize_url(
            &sim,
            "http://localhost:9/cb",
            "cjp:config spark-admin:recordings_read",
            None,
        ))
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), StatusCode::FOUND);
    let params = location_params(&resp);
    assert_eq!(params["error"], "invalid_scope");
    assert_eq!(params["state"], "st-123");
    assert!(!params.contains_key("code"));
    let resp = http
        .get(authorize_url(
            &sim,
            "https://evil.example/cb",
            "cjp:config",
            None,
        ))
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get(reqwest::header::LOCATION).is_none());
}

#[tokio::test]
async fn api_requires_bearer_header_valid_token_and_scope() {
    let sim = start(small()).await;
    let http = client();
    let url = format!("{}/v1/tasks?from=0", sim.base_url());
    let missing = http.get(&url).send().await.expect("request");
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    let basic = http
        .get(&url)
        .basic_auth("a", Some("b"))
        .send()
        .await
        .expect("request");
    assert_eq!(basic.status(), StatusCode::BAD_REQUEST);
    let bad = http
        .get(&url)
        .bearer_auth("nope")
        .send()
        .await
        .expect("request");
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(bad.headers().contains_key("trackingid"));
    let body: Value = bad.json().await.expect("error body");
    assert_eq!(body["error"]["key"], "401");
    assert_eq!(
        body["error"]["message"][0]["description"],
        "Unauthorized, token is invalid"
    );
    assert!(body["trackingId"].is_string());
    // A user grant with only cjp:config may list tasks but not captures.
    let c = sim.credentials().clone();
    let redirect = "http://127.0.0.1:1/cb";
    let resp = http
        .get(authorize_url(&sim, redirect, "cjp:config", None))
        .send()
        .await
        .expect("authorize");
    let code = location_params(&resp)["code"].clone();
    let tokens: Value = http
        .post(format!("{}/v1/access_token", sim.base_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("code", &code),
            ("redirect_uri", redirect),
        ])
        .send()
        .await
        .expect("redeem")
        .json()
        .await
        .expect("tokens");
    let token = tokens["access_token"].as_str().expect("token");
    assert_eq!(
        get_tasks(&sim, &http, token, "from=0").await.status(),
        StatusCode::OK
    );
    let forbidden = captures(&sim, &http, token, json!({"query": {"taskIds": []}})).await;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let other_org = get_tasks(
        &sim,
        &http,
        token,
        "from=0&orgId=00000000-0000-0000-0000-000000000000",
    )
    .await;
    assert_eq!(other_org.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn tasks_rejects_missing_from_bad_page_size_and_inverted_range() {
    let sim = start(small()).await;
    let http = client();
    let token = bearer(&sim, &http).await;
    for query in [
        "to=5",
        "from=abc",
        "from=0&pageSize=0",
        "from=0&pageSize=1001",
        "from=10&to=5",
        "from=0&channelTypes=fax",
    ] {
        let resp = get_tasks(&sim, &http, &token, query).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = resp.json().await.expect("error body");
        assert_eq!(body["error"]["key"], "400", "{query}");
    }
    assert_eq!(
        get_tasks(&sim, &http, &token, "from=0&pageSize=1000")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn tasks_pages_with_page_size_and_page_in_created_time_order() {
    let sim = start(small()).await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let world = sim.world().clone();
    let to = world.tasks().last().map_or(0, |t| t.created_ms + 1);
    let mut ids = Vec::new();
    for page in 0.. {
        let body: Value = get_tasks(
            &sim,
            &http,
            &token,
            &format!("from=0&to={to}&pageSize=7&page={page}"),
        )
        .await
        .json()
        .await
        .expect("tasks JSON");
        assert_eq!(body["meta"]["orgId"], world.org_id());
        assert!(body.get("links").is_none());
        let data = body["data"].as_array().expect("data").clone();
        ids.extend(
            data.iter()
                .map(|t| t["id"].as_str().unwrap_or_default().to_string()),
        );
        if data.len() < 7 {
            break;
        }
    }
    let expected: Vec<String> = world.tasks().iter().map(|t| t.id.clone()).collect();
    assert_eq!(ids, expected);
    // `from` is inclusive and `to` exclusive; ties at the boundary are all returned.
    let tie = world
        .tasks()
        .windows(2)
        .find(|p| p[0].created_ms == p[1].created_ms)
        .expect("a tie")
        .to_vec();
    let at = tie[0].created_ms;
    let body: Value = get_tasks(&sim, &http, &token, &format!("from={at}&to={}", at + 1))
        .await
        .json()
        .await
        .expect("JSON");
    let n = world.tasks().iter().filter(|t| t.created_ms == at).count();
    assert_eq!(body["data"].as_array().map(Vec::len), Some(n));
    let body: Value = get_tasks(
        &sim,
        &http,
        &token,
        &format!("from=0&to={to}&channelTypes=chat,email&pageSize=1000"),
    )
    .await
    .json()
    .await
    .expect("JSON");
    let data = body["data"].as_array().expect("data");
    assert!(!data.is_empty());
    assert!(data.iter().all(|t| matches!(
        t["attributes"]["channelType"].as_str(),
        Some("chat" | "email")
    )));
}

#[tokio::test]
async fn captures_validates_the_query_and_returns_empty_arrays_for_unknown_tasks() {
    let sim = start(small()).await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let eleven: Vec<String> = (0..11)
        .map(|i| format!("00000000-0000-0000-0000-{i:012}"))
        .collect();
    for body in [
        json!({"query": {"taskIds": eleven}}),
        json!({"query": {"taskIds": ["a", "a"]}}),
        json!({"query": {"taskIds": ["a"], "urlExpiration": 0}}),
        json!({"query": {"taskIds": ["a"], "urlExpiration": 61}}),
        json!({"query": {}}),
        json!({"taskIds": ["a"]}),
    ] {
        let resp = captures(&sim, &http, &token, body.clone()).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        let err: Value = resp.json().await.expect("error body");
        assert_eq!(err["error"]["key"], "400");
    }
    let unknown = "11111111-2222-3333-4444-555555555555";
    let body: Value = captures(
        &sim,
        &http,
        &token,
        json!({"query": {"taskIds": [unknown], "urlExpiration": 30}}),
    )
    .await
    .json()
    .await
    .expect("captures JSON");
    assert_eq!(body["meta"]["urlExpiration"], 30);
    assert_eq!(
        body["data"],
        json!([{"taskId": unknown, "recording": [], "transcription": []}])
    );
}

#[tokio::test]
async fn recording_json_matches_the_sample_and_download_matches_world_sha() {
    let sim = start(small()).await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let fixture: Value = serde_json::from_str(include_str!(
        "../../fixtures/captures-response.derived-concrete.json"
    ))
    .expect("fixture");
    let sample = &fixture["data"][0]["recording"][0];
    let world = sim.world().clone();
    let mut ids: Vec<&str> = world
        .recordings()
        .iter()
        .map(|r| r.task_id.as_str())
        .collect();
    ids.dedup();
    ids.truncate(5);
    let body: Value = captures(&sim, &http, &token, json!({"query": {"taskIds": ids}}))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(key_types(&body["meta"]), key_types(&fixture["meta"]));
    let entries = body["data"].as_array().expect("data");
    assert_eq!(entries.len(), ids.len());
    for (entry, id) in entries.iter().zip(&ids) {
        assert_eq!(entry["taskId"], *id, "request order kept");
        for rec in entry["recording"].as_array().expect("recording") {
            assert_eq!(key_types(rec), key_types(sample));
        }
    }
    let (url, rec_id) = first_recording_url(&sim, &http, &token).await;
    assert!(url.contains("X-Amz-Signature="));
    let rec = world.recording(&rec_id).expect("recording");
    let resp = http.get(&url).send().await.expect("download");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[reqwest::header::CONTENT_TYPE], "audio/wav");
    assert_eq!(resp.content_length(), Some(world.wav_len(rec)));
    let bytes = resp.bytes().await.expect("body");
    assert_eq!(hex::encode(Sha256::digest(&bytes)), world.wav_sha256(rec));
    let wav = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).expect("wav");
    assert_eq!(wav.spec().channels, 2);
    let ranged = http
        .get(&url)
        .header(reqwest::header::RANGE, "bytes=40-99")
        .send()
        .await
        .expect("range");
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    let expected_range = format!("bytes 40-99/{}", world.wav_len(rec));
    assert_eq!(
        ranged.headers()[reqwest::header::CONTENT_RANGE],
        expected_range.as_str()
    );
    assert_eq!(
        ranged.bytes().await.expect("range body"),
        bytes.slice(40..100)
    );
    let tail = http
        .get(&url)
        .header(reqwest::header::RANGE, "bytes=100-")
        .send()
        .await
        .expect("range");
    assert_eq!(tail.bytes().await.expect("tail"), bytes.slice(100..));
    assert_eq!(sim.stats().downloads, 3);
}

#[tokio::test]
async fn download_urls_expire_and_reject_tampering_with_403() {
    let sim = start(SimConfig {
        url_ttl: Some(Duration::from_secs(1)),
        ..small()
    })
    .await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let (url, _) = first_recording_url(&sim, &http, &token).await;
    assert!(url.contains("X-Amz-Expires=1&"));
    let tampered = url.replace("X-Amz-Expires=1&", "X-Amz-Expires=9&");
    assert_eq!(
        http.get(&tampered).send().await.expect("get").status(),
        StatusCode::FORBIDDEN
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resp = http.get(&url).send().await.expect("get");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let text = resp.text().await.expect("xml");
    assert!(
        text.contains("<Code>AccessDenied</Code><Message>Request has expired</Message>"),
        "{text}"
    );
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_and_empty_body_until_it_elapses() {
    let sim = start(SimConfig {
        rate_limit_per_minute: 2,
        ..small()
    })
    .await;
    let http = client();
    let token = bearer(&sim, &http).await;
    for _ in 0..2 {
        assert_eq!(
            get_tasks(&sim, &http, &token, "from=0").await.status(),
            StatusCode::OK
        );
    }
    for _ in 0..2 {
        let resp = get_tasks(&sim, &http, &token, "from=0").await;
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = resp.headers()[reqwest::header::RETRY_AFTER]
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("secs");
        assert!(retry >= 1);
        assert!(resp.bytes().await.expect("body").is_empty());
    }
    let stats = sim.stats();
    assert_eq!((stats.api_requests, stats.rate_limited), (4, 2));
}

#[tokio::test]
async fn injected_errors_are_5xx_and_counted() {
    let sim = start(SimConfig {
        error_rate: 1.0,
        ..small()
    })
    .await;
    let http = client();
    let token = bearer(&sim, &http).await;
    for _ in 0..6 {
        let status = get_tasks(&sim, &http, &token, "from=0").await.status();
        assert!(matches!(status.as_u16(), 500 | 502 | 503), "{status}");
    }
    assert_eq!(sim.stats().injected_errors, 6);
}

#[tokio::test]
async fn truncated_download_announces_full_length_and_ends_early() {
    let sim = start(SimConfig {
        truncate_rate: 1.0,
        median_call_secs: 30,
        max_call_secs: 40,
        ..small()
    })
    .await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let (url, rec_id) = first_recording_url(&sim, &http, &token).await;
    let full = sim
        .world()
        .wav_len(sim.world().recording(&rec_id).expect("recording"));
    let resp = http.get(&url).send().await.expect("headers arrive");
    assert_eq!(resp.content_length(), Some(full));
    assert!(
        resp.bytes().await.is_err(),
        "body must fail before Content-Length is reached"
    );
    assert_eq!(sim.stats().truncated_downloads, 1);
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

#[tokio::test]
async fn tasks_boundary_paging_and_range_switches_follow_the_config() {
    let sim = start(SimConfig {
        from_exclusive: true,
        honour_page_param: false,
        max_range_days: Some(1),
        ..small()
    })
    .await;
    let http = client();
    let token = bearer(&sim, &http).await;
    let world = sim.world().clone();
    let at = world
        .tasks()
        .windows(2)
        .find(|p| p[0].created_ms == p[1].created_ms)
        .map(|p| p[0].created_ms)
        .expect("a tie");
    let query = format!("from={at}&to={}&pageSize=1000", at + 3_600_000);
    let body: Value = get_tasks(&sim, &http, &token, &query)
        .await
        .json()
        .await
        .expect("JSON");
    let data = body["data"].as_array().expect("data");
    assert!(
        data.iter()
            .all(|t| t["attributes"]["createdTime"].as_i64() > Some(at)),
        "from is exclusive"
    );
    let to = world.tasks()[10].created_ms + 1;
    let page0: Value = get_tasks(
        &sim,
        &http,
        &token,
        &format!("from={}&to={to}&pageSize=3", to - 86_400_000),
    )
    .await
    .json()
    .await
    .expect("JSON");
    let page1: Value = get_tasks(
        &sim,
        &http,
        &token,
        &format!("from={}&to={to}&pageSize=3&page=1", to - 86_400_000),
    )
    .await
    .json()
    .await
    .expect("JSON");
    assert_eq!(page0["data"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        page0["data"], page1["data"],
        "page is ignored when not honoured"
    );
    let too_long = get_tasks(
        &sim,
        &http,
        &token,
        &format!("from=0&to={}", 2 * 86_400_000),
    )
    .await;
    assert_eq!(too_long.status(), StatusCode::BAD_REQUEST);
}
