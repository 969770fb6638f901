//! API: authentication, tasks paging and validation, captures validation, limits and faults.

use super::*;

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
