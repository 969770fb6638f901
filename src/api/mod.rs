//! The WxCC API client. Every request goes through [`ApiClient::send`], which applies the
//! process-wide rate limit, the bearer token (refreshed on 401), and the retry policy, so no
//! other module has its own retry loop.
//!
//! Read-only by construction: the only calls are `GET /v1/tasks` and `POST /v1/captures/query`
//! (a query, not a write).

mod listing;
#[cfg(test)]
mod mock_tests;
pub mod model;
#[cfg(test)]
mod paging_tests;
mod spans;
mod tasks;

pub use listing::{ListingGap, TaskListing};
pub use spans::RANGE_REFUSAL_MIN_SPAN_MS;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::Retryable;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::auth::{AuthError, TokenProvider};
use crate::net::{self, RetryPolicy};
use model::{CapturesResponse, TaskCaptures};

/// Most task ids one captures query accepts (REFERENCE.md §4.1).
pub const MAX_CAPTURE_IDS: usize = 10;
/// Largest page `/v1/tasks` serves.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Default for [`ApiSettings::max_request_span_ms`]: under 24 h, the limit the sibling
/// agent-activities API documents (the tasks API documents none).
pub const DEFAULT_MAX_REQUEST_SPAN_MS: i64 = 86_399_999;
/// Default for [`ApiSettings::min_gap_span_ms`].
pub const DEFAULT_MIN_GAP_SPAN_MS: i64 = 60_000;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{endpoint} answered HTTP {status}{detail}")]
    Status {
        endpoint: &'static str,
        status: u16,
        detail: String,
    },
    #[error("{endpoint} unreachable after retries: {reason}")]
    Transport {
        endpoint: &'static str,
        /// The status of the last answer when the server did answer (5xx, 429).
        status: Option<u16>,
        reason: String,
    },
    #[error("{endpoint} returned a malformed response: {reason}")]
    Malformed {
        endpoint: &'static str,
        reason: String,
    },
    #[error("cannot page /v1/tasks: {0}")]
    Paging(String),
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Settings for the API client.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub base_url: Url,
    /// Sent as `orgId` when set; otherwise the API infers it from the token.
    pub org_id: Option<String>,
    /// A ceiling: requests are spaced evenly so no 60 s window exceeds it.
    pub rate_limit_per_minute: u32,
    pub page_size: u32,
    pub url_expiration_minutes: u32,
    pub retry: RetryPolicy,
    /// Longest `to - from` of one `/v1/tasks` request (its `from` is 1 ms before the span it
    /// lists). Lowered at run time, for the rest of the process, when the API refuses a range.
    pub max_request_span_ms: i64,
    /// A task span that keeps failing is halved until no longer than this, then recorded as a
    /// [`ListingGap`] instead of failing the listing.
    pub min_gap_span_ms: i64,
}

impl ApiSettings {
    pub fn new(base_url: Url) -> ApiSettings {
        ApiSettings {
            base_url,
            org_id: None,
            rate_limit_per_minute: crate::config::DEFAULT_RATE_LIMIT_PER_MINUTE,
            page_size: MAX_PAGE_SIZE,
            url_expiration_minutes: 60,
            retry: RetryPolicy::default(),
            max_request_span_ms: DEFAULT_MAX_REQUEST_SPAN_MS,
            min_gap_span_ms: DEFAULT_MIN_GAP_SPAN_MS,
        }
    }
}

/// Counters for the run summary.
#[derive(Debug, Default)]
pub struct ApiStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    pub server_errors: AtomicU64,
    pub unauthorized: AtomicU64,
    /// Task spans narrowed: a range refused, a span failing or its pages out of order.
    pub narrowed: AtomicU64,
    /// Task ranges given up on and reported as [`ListingGap`]s.
    pub task_gaps: AtomicU64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ApiCounts {
    pub requests: u64,
    pub retries: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub unauthorized: u64,
    pub narrowed: u64,
    pub task_gaps: u64,
}

impl ApiStats {
    pub fn counts(&self) -> ApiCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ApiCounts {
            requests: get(&self.requests),
            retries: get(&self.retries),
            rate_limited: get(&self.rate_limited),
            server_errors: get(&self.server_errors),
            unauthorized: get(&self.unauthorized),
            narrowed: get(&self.narrowed),
            task_gaps: get(&self.task_gaps),
        }
    }
}

/// Cheap to clone; clones share the limiter, token provider and counters.
#[derive(Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    settings: Arc<ApiSettings>,
    tokens: Arc<TokenProvider>,
    limiter: Arc<DefaultDirectRateLimiter>,
    backpressure: Arc<Backpressure>,
    stats: Arc<ApiStats>,
    learned: Arc<spans::Learned>,
}

/// What the client learnt from 429s, shared by every request of the process: a pause until the
/// server's `Retry-After` has passed (one request's 429 holds back all of them, instead of each
/// finding out on its own), and extra spacing that grows with each 429 and decays with each
/// success, because the configured rate is only a ceiling (Cisco's pages say 300/min and 50/min).
#[derive(Debug, Default)]
struct Backpressure {
    paused_until: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// Extra spacing as a percentage of the nominal interval between requests.
    slowdown_percent: std::sync::atomic::AtomicU32,
}

impl Backpressure {
    const STEP: u32 = 25;
    const MAX: u32 = 400;

    async fn wait(&self, interval: Duration) {
        let until = *self.paused_until.lock().expect("not poisoned");
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
        let slow = self.slowdown_percent.load(Ordering::Relaxed);
        if slow > 0 {
            tokio::time::sleep(interval * slow / 100).await;
        }
    }

    fn rate_limited(&self, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let mut paused = self.paused_until.lock().expect("not poisoned");
        *paused = Some(paused.map_or(until, |p| p.max(until)));
        let _ = self
            .slowdown_percent
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some((s + Self::STEP).min(Self::MAX))
            });
    }

    fn succeeded(&self) {
        let _ = self
            .slowdown_percent
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| s.checked_sub(1));
    }
}

impl ApiClient {
    pub fn new(
        http: reqwest::Client,
        settings: ApiSettings,
        tokens: Arc<TokenProvider>,
    ) -> ApiClient {
        let per_minute = NonZeroU32::new(settings.rate_limit_per_minute).unwrap_or(NonZeroU32::MIN);
        // Burst of one: evenly spaced requests never exceed the limit in any 60 s window,
        // whatever window the server counts in.
        let quota = Quota::per_minute(per_minute).allow_burst(NonZeroU32::MIN);
        ApiClient {
            http,
            learned: Arc::new(spans::Learned::new(settings.max_request_span_ms)),
            settings: Arc::new(settings),
            tokens,
            limiter: Arc::new(RateLimiter::direct(quota)),
            backpressure: Arc::new(Backpressure::default()),
            stats: Arc::new(ApiStats::default()),
        }
    }

    pub fn stats(&self) -> ApiCounts {
        self.stats.counts()
    }

    pub fn settings(&self) -> &ApiSettings {
        &self.settings
    }

    pub fn tokens(&self) -> &Arc<TokenProvider> {
        &self.tokens
    }

    fn url(&self, path: &str) -> Url {
        self.settings
            .base_url
            .join(path)
            .expect("static API paths join onto a valid base URL")
    }

    /// `POST /v1/captures/query` for at most [`MAX_CAPTURE_IDS`] tasks. Entries that cannot be
    /// understood come back as rejects instead of failing the batch.
    pub async fn query_captures(
        &self,
        task_ids: &[String],
    ) -> Result<(Vec<TaskCaptures>, Vec<Reject>)> {
        assert!(
            task_ids.len() <= MAX_CAPTURE_IDS,
            "captures query takes at most {MAX_CAPTURE_IDS} ids"
        );
        let mut query = serde_json::json!({
            "taskIds": task_ids,
            "urlExpiration": self.settings.url_expiration_minutes,
            "includeSegments": false,
            "includeVARecordings": false,
        });
        if let Some(org) = &self.settings.org_id {
            query["orgId"] = org.clone().into();
        }
        let body = serde_json::json!({ "query": query });
        let url = self.url("v1/captures/query");
        let resp: CapturesResponse = self
            .send("POST /v1/captures/query", |http, token| {
                http.post(url.clone())
                    .bearer_auth(token.expose_secret())
                    .json(&body)
            })
            .await?;
        let mut out = Vec::with_capacity(resp.data.len());
        let mut rejects = Vec::new();
        for raw in resp.data {
            match serde_json::from_value::<TaskCaptures>(raw.clone()) {
                Ok(c) => out.push(c),
                Err(e) => rejects.push(Reject::new(CAPTURES_SOURCE, e, &raw)),
            }
        }
        Ok((out, rejects))
    }

    /// Sends one request with rate limiting, auth and retries, and decodes the JSON body.
    async fn send<T, B>(&self, endpoint: &'static str, build: B) -> Result<T>
    where
        T: DeserializeOwned,
        B: Fn(&reqwest::Client, &SecretString) -> reqwest::RequestBuilder,
    {
        self.send_with(endpoint, &self.settings.retry, build).await
    }

    /// [`Self::send`] with a retry policy of the caller's choosing.
    async fn send_with<T, B>(
        &self,
        endpoint: &'static str,
        policy: &RetryPolicy,
        build: B,
    ) -> Result<T>
    where
        T: DeserializeOwned,
        B: Fn(&reqwest::Client, &SecretString) -> reqwest::RequestBuilder,
    {
        let refreshed_once = std::sync::atomic::AtomicBool::new(false);
        let interval = Duration::from_secs(60) / self.settings.rate_limit_per_minute.max(1);
        let attempt = || async {
            self.backpressure.wait(interval).await;
            self.limiter.until_ready().await;
            let token = self.tokens.access_token().await.map_err(Attempt::auth)?;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let resp = build(&self.http, &token)
                .send()
                .await
                .map_err(|e| Attempt::transport(endpoint, e))?;
            let status = resp.status();
            if status.is_success() {
                self.backpressure.succeeded();
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| Attempt::transport(endpoint, e))?;
                return serde_json::from_slice::<T>(&body).map_err(|e| {
                    Attempt::Fatal(ApiError::Malformed {
                        endpoint,
                        reason: e.to_string(),
                    })
                });
            }
            let retry_after = net::retry_after(resp.headers());
            let body = resp.bytes().await.unwrap_or_default();
            match status.as_u16() {
                401 => {
                    self.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
                    if refreshed_once.swap(true, Ordering::Relaxed) {
                        return Err(Attempt::Fatal(ApiError::Auth(
                            AuthError::ReauthorizationRequired {
                                reason: format!(
                                    "{endpoint} rejected a freshly refreshed token (401)"
                                ),
                            },
                        )));
                    }
                    self.tokens
                        .after_unauthorized(&token)
                        .await
                        .map_err(Attempt::auth)?;
                    Err(Attempt::Retry {
                        reason: "401, token refreshed".into(),
                        status: Some(401),
                        after: Some(Duration::ZERO),
                        rate_limited: false,
                    })
                }
                429 => {
                    self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                    let floor = self.settings.retry.min_rate_limited_delay;
                    self.backpressure
                        .rate_limited(retry_after.unwrap_or(floor).max(floor));
                    Err(Attempt::Retry {
                        reason: "429 rate limited".into(),
                        status: Some(429),
                        after: retry_after,
                        rate_limited: true,
                    })
                }
                s if net::is_transient(status) => {
                    self.stats.server_errors.fetch_add(1, Ordering::Relaxed);
                    Err(Attempt::Retry {
                        reason: format!("HTTP {s}"),
                        status: Some(s),
                        after: retry_after,
                        rate_limited: false,
                    })
                }
                s => Err(Attempt::Fatal(ApiError::Status {
                    endpoint,
                    status: s,
                    detail: format!("{}{}", error_detail(&body), status_hint(s)),
                })),
            }
        };
        attempt
            .retry(policy.backoff())
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, Attempt::Retry { .. }))
            .adjust(|e, backoff| match e {
                Attempt::Retry { after: Some(d), .. } if d.is_zero() => {
                    backoff.map(|_| Duration::ZERO)
                }
                Attempt::Retry {
                    after,
                    rate_limited,
                    ..
                } => policy.next_delay(backoff, *rate_limited, *after),
                Attempt::Fatal(_) => backoff,
            })
            .notify(|e, wait| {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                if let Attempt::Retry { reason, .. } = e {
                    tracing::debug!(endpoint, %reason, ?wait, "retrying");
                }
            })
            .await
            .map_err(|e| match e {
                Attempt::Retry { reason, status, .. } => ApiError::Transport {
                    endpoint,
                    status,
                    reason,
                },
                Attempt::Fatal(e) => e,
            })
    }
}

enum Attempt {
    Retry {
        reason: String,
        /// The HTTP status that asked for the retry; `None` for connection failures.
        status: Option<u16>,
        after: Option<Duration>,
        rate_limited: bool,
    },
    Fatal(ApiError),
}

impl Attempt {
    fn auth(e: AuthError) -> Attempt {
        Attempt::Fatal(ApiError::Auth(e))
    }

    /// Connection-level failures; the URL is stripped from the message (API URLs carry no
    /// secrets, but one rule for every URL is easier to keep).
    fn transport(endpoint: &'static str, e: reqwest::Error) -> Attempt {
        if net::is_transient_transport(&e) {
            Attempt::Retry {
                reason: e.without_url().to_string(),
                status: None,
                after: None,
                rate_limited: false,
            }
        } else {
            Attempt::Fatal(ApiError::Transport {
                endpoint,
                status: None,
                reason: e.without_url().to_string(),
            })
        }
    }
}

/// What a person can do about a refusal the reference explains (REFERENCE §3, §4: both reads
/// need `cjp:config_read` and an Admin or Supervisor).
fn status_hint(status: u16) -> &'static str {
    match status {
        403 => {
            "; the token lacks the cjp:config_read scope or the user is not an Admin or \
             Supervisor of this org: check with `wxcc check`, then `wxcc auth login` as such a user"
        }
        404 => "; check the org id and region (`wxcc check`)",
        _ => "",
    }
}

/// The human part of an `ApiErrorResponse` (REFERENCE.md §5.2), if the body is one.
fn error_detail(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let descriptions: Vec<&str> = v["error"]["message"]
        .as_array()
        .map(|m| m.iter().filter_map(|d| d["description"].as_str()).collect())
        .unwrap_or_default();
    let tracking = v["trackingId"].as_str().unwrap_or_default();
    let mut out = String::new();
    if !descriptions.is_empty() {
        out.push_str(": ");
        out.push_str(&descriptions.join("; "));
    }
    if !tracking.is_empty() {
        out.push_str(&format!(" (trackingId {tracking})"));
    }
    out
}

/// [`Reject::source`] of a captures entry that could not be parsed.
pub const CAPTURES_SOURCE: &str = "captures";

/// A record the client could not understand: kept with the reason, never silently dropped.
#[derive(Debug, Clone, Serialize)]
pub struct Reject {
    pub source: &'static str,
    pub reason: String,
    /// The record as received, with any `filePath` removed (signed URLs are secrets).
    pub raw: String,
}

impl Reject {
    pub fn new(
        source: &'static str,
        err: impl std::fmt::Display,
        raw: &serde_json::Value,
    ) -> Reject {
        let mut clean = raw.clone();
        scrub_file_paths(&mut clean);
        Reject {
            source,
            reason: reason_without_values(&err.to_string()),
            raw: clean.to_string(),
        }
    }
}

/// A parse error as a reject reason, without the offending value: serde quotes it
/// (`invalid type: string "+1415…", expected a string`), and a record's values may be customer
/// contact data. Field names and what was expected stay, so the reason still says what is
/// wrong; the value itself is in the quarantined record (under the PII setting).
pub fn reason_without_values(msg: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            // `integer `5``, `string "x"`, `map`, `floating point `1.5``: the kind only.
            let kind: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphabetic() || *c == ' ')
                .collect();
            let kind = kind.trim();
            return match rest.rsplit_once(", expected ") {
                Some((_, expected)) => format!("{prefix}{kind}, expected {expected}"),
                None => format!("{prefix}{kind} (value withheld)"),
            };
        }
    }
    // `missing field `x``, `duplicate field `x``: names, not values.
    if msg.starts_with("missing field ") || msg.starts_with("duplicate field ") {
        return msg.to_owned();
    }
    match msg.find(['`', '"', '\'']) {
        Some(at) => format!("{} (value withheld)", msg[..at].trim_end()),
        None => msg.to_owned(),
    }
}

fn scrub_file_paths(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k.eq_ignore_ascii_case("filePath") {
                    *child = serde_json::Value::String("[REDACTED]".into());
                } else {
                    scrub_file_paths(child);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(scrub_file_paths),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_detail_reads_api_error_bodies() {
        let d = error_detail(include_bytes!(
            "../../fixtures/error-response-config-api.json"
        ));
        assert!(d.contains("Test error") && d.contains("ccconfig_"), "{d}");
        assert_eq!(error_detail(b"<html>"), "");
        assert!(status_hint(403).contains("cjp:config_read"));
        assert_eq!(status_hint(500), "");
    }

    #[test]
    fn reject_reasons_never_quote_values() {
        let parse = |raw: &str| {
            let v: serde_json::Value = serde_json::from_str(raw).unwrap();
            let err = serde_json::from_value::<model::Task>(v.clone()).unwrap_err();
            Reject::new("tasks", err, &v).reason
        };
        for (raw, clear, says) in [
            (
                r#"{"id":"t","attributes":{"origin":14155550100}}"#,
                "4155550100",
                "invalid type: integer, expected a string",
            ),
            (
                r#"{"id":"t","attributes":{"createdTime":"Jane, expected <jane@x.example>"}}"#,
                "jane",
                "invalid type: string, expected i64",
            ),
            (
                r#"{"id":"t","attributes":{"createdTime":"+14155550100"}}"#,
                "4155550100",
                "invalid type: string, expected i64",
            ),
            (
                r#"{"id":"t","attributes":{"destination":"tel:+14155550100"}}"#,
                "4155550100",
                "missing field `createdTime`",
            ),
        ] {
            let reason = parse(raw);
            assert!(!reason.contains(clear), "{reason}");
            assert!(reason.contains(says), "{reason}");
        }
        assert_eq!(
            reason_without_values("unknown variant `+14155550100`, expected one of `a`"),
            "unknown variant (value withheld)"
        );
        assert_eq!(reason_without_values("empty task id"), "empty task id");
        assert_eq!(
            reason_without_values(
                "invalid value: string \"a, expected b\", expected x at line 1 column 5"
            ),
            "invalid value: string, expected x at line 1 column 5"
        );
    }

    #[test]
    fn rejects_never_keep_signed_urls() {
        let raw = serde_json::json!({"taskId": 5, "recording": [{"attributes": {"filePath": "https://x/?sig=abc"}}]});
        let r = Reject::new("captures", "bad", &raw);
        assert!(!r.raw.contains("sig=abc"), "{}", r.raw);
    }
}
