//! The client's handling of odd answers, against a tiny scripted server on 127.0.0.1:0 (the
//! pattern of object_store's `mock_server.rs`): quarantine, 429 with Retry-After, fatal 4xx.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use secrecy::SecretString;

use super::{ApiClient, ApiError, ApiSettings};
use crate::auth::{TokenProvider, TokenSet};
use crate::net::{self, RetryPolicy};

pub(super) async fn serve(app: Router) -> url::Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    url::Url::parse(&format!("http://{addr}/")).unwrap()
}

pub(super) fn client(base: url::Url) -> ApiClient {
    client_with(base, |_| {})
}

/// A client for a scripted server: fast retries, no real rate limit, then `tune`.
pub(super) fn client_with(base: url::Url, tune: impl FnOnce(&mut ApiSettings)) -> ApiClient {
    let tokens = TokenProvider::new(
        None,
        TokenSet {
            access_token: Some(SecretString::from("test-token")),
            ..Default::default()
        },
    )
    .unwrap();
    let mut settings = ApiSettings::new(base);
    settings.rate_limit_per_minute = 6000;
    settings.retry = RetryPolicy {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        min_rate_limited_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    };
    tune(&mut settings);
    ApiClient::new(net::api_http_client(), settings, tokens)
}

#[tokio::test]
async fn records_that_cannot_be_understood_are_quarantined_not_fatal() {
    let page = serde_json::json!({
        "meta": {"orgId": "o1"},
        "data": [
            {"id": "good", "attributes": {"createdTime": 5, "channelType": "telephony"}},
            {"id": "no-time", "attributes": {"channelType": "telephony"}},
            {"unexpected": true}
        ]
    });
    let app = Router::new().route("/v1/tasks", get(move || async move { axum::Json(page) }));
    let listing = client(serve(app).await).list_tasks(0, 10).await.unwrap();
    assert_eq!(listing.tasks.len(), 1);
    assert_eq!(listing.rejects.len(), 2);
    assert!(
        listing.rejects[0].reason.contains("createdTime"),
        "{:?}",
        listing.rejects
    );
    assert_eq!(listing.org_id.as_deref(), Some("o1"));
}

#[tokio::test]
async fn a_429_is_waited_out_and_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let app = Router::new().route(
        "/v1/tasks",
        get(move || {
            let seen = seen.clone();
            async move {
                if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                    let mut h = HeaderMap::new();
                    h.insert("retry-after", "1".parse().unwrap());
                    return (StatusCode::TOO_MANY_REQUESTS, h, "").into_response();
                }
                axum::Json(serde_json::json!({"data": []})).into_response()
            }
        }),
    );
    let api = client(serve(app).await);
    let started = std::time::Instant::now();
    api.list_tasks(0, 10).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After honoured"
    );
    let counts = api.stats();
    assert_eq!(
        (counts.rate_limited, counts.retries, counts.requests),
        (1, 1, 2)
    );
}

#[tokio::test]
async fn a_400_fails_at_once_with_the_api_message() {
    let body = include_str!("../../fixtures/error-response-config-api.json");
    let app = Router::new().route(
        "/v1/tasks",
        get(move || async move { (StatusCode::BAD_REQUEST, body) }),
    );
    let api = client(serve(app).await);
    let err = api.list_tasks(0, 10).await.unwrap_err();
    assert!(matches!(err, ApiError::Status { status: 400, .. }), "{err}");
    assert!(err.to_string().contains("Test error"), "{err}");
    assert_eq!(api.stats().requests, 1, "not retried");
}
