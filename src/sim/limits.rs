//! What stands in front of every WxCC API call: bearer-token check, per-client rate limit and
//! fault injection (REFERENCE.md §5), plus the `ApiErrorResponse` body those errors use.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::wav::mix64;
use super::{AppState, SimConfig};

/// Header carrying the request's tracking id on every API response.
pub const TRACKING_HEADER: &str = "TrackingId";

/// Which API is being called decides which scopes are enough.
#[derive(Clone, Copy, Debug)]
pub enum Endpoint {
    /// `GET /v1/tasks`: `cjp:config` or `cjp:config_read`.
    Tasks,
    /// `POST /v1/captures/query`: `cjp:config_read`.
    Captures,
    /// `/v1/subscriptions`: `cjp:config_write` (or the broad `cjp:config`).
    Subscriptions,
}

impl Endpoint {
    fn accepts(self, scopes: &[String]) -> bool {
        let has = |s: &str| scopes.iter().any(|x| x == s);
        match self {
            Endpoint::Tasks => has("cjp:config") || has("cjp:config_read"),
            Endpoint::Captures => has("cjp:config_read"),
            Endpoint::Subscriptions => has("cjp:config_write") || has("cjp:config"),
        }
    }
}

/// Rate limiter and fault dice shared by all API requests.
pub struct ApiGuard {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// Per client: no request is let through before this instant, so a retry that ignores
    /// `Retry-After` gets another 429 (REFERENCE.md §5.1).
    blocked_until: Mutex<HashMap<String, Instant>>,
    error_rate: f64,
    faults: Mutex<ChaCha8Rng>,
}

impl ApiGuard {
    pub fn new(config: &SimConfig) -> Self {
        let limiter = NonZeroU32::new(config.rate_limit_per_minute)
            .map(|n| RateLimiter::keyed(Quota::per_minute(n)));
        ApiGuard {
            limiter,
            blocked_until: Mutex::new(HashMap::new()),
            error_rate: config.error_rate,
            faults: Mutex::new(ChaCha8Rng::seed_from_u64(mix64(config.seed ^ 0xfa_0175))),
        }
    }

    /// `Some(wait)` when the client must back off for `wait` (rounded up to whole seconds).
    fn rate_limit(&self, client_id: &str) -> Option<u64> {
        let limiter = self.limiter.as_ref()?;
        let now = Instant::now();
        let mut blocked = self.blocked_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = blocked.get(client_id).filter(|u| **u > now) {
            return Some(ceil_secs(*until - now));
        }
        match limiter.check_key(&client_id.to_string()) {
            Ok(()) => None,
            Err(not_until) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                let secs = ceil_secs(wait);
                blocked.insert(client_id.to_string(), now + Duration::from_secs(secs));
                Some(secs)
            }
        }
    }

    /// Draws whether this request fails with an injected server error, and which one.
    fn injected_fault(&self) -> Option<StatusCode> {
        if self.error_rate <= 0.0 {
            return None;
        }
        let mut rng = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        if !rng.random_bool(self.error_rate.min(1.0)) {
            return None;
        }
        Some(match rng.random_range(0..3) {
            0 => StatusCode::INTERNAL_SERVER_ERROR,
            1 => StatusCode::BAD_GATEWAY,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        })
    }

    /// Whether a media download is cut short (same seeded dice as the API faults).
    pub fn truncate_download(&self, rate: f64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        let mut rng = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        rng.random_bool(rate.min(1.0))
    }
}

fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[derive(Serialize)]
struct ErrorMessage<'a> {
    description: &'a str,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    key: String,
    message: [ErrorMessage<'a>; 1],
}

/// `ApiErrorResponse` of the data APIs (REFERENCE.md §5.2).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiErrorResponse<'a> {
    tracking_id: &'a str,
    error: ErrorDetail<'a>,
}

/// An error answer with an `ApiErrorResponse` body and the tracking id header.
pub fn api_error(status: StatusCode, tracking_id: &str, description: &str) -> Response {
    let body = ApiErrorResponse {
        tracking_id,
        error: ErrorDetail {
            key: status.as_u16().to_string(),
            message: [ErrorMessage { description }],
        },
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response();
    set_tracking(&mut resp, tracking_id);
    resp
}

/// An answer without a body (429, 502, 503 send none).
fn empty(status: StatusCode, tracking_id: &str) -> Response {
    let mut resp = status.into_response();
    set_tracking(&mut resp, tracking_id);
    resp
}

/// The 403 for a request that names an `orgId` other than the world's (the token's)
/// organization; `None` when the request may go on.
pub fn foreign_org(
    requested: Option<&str>,
    world_org: &str,
    tracking_id: &str,
) -> Option<Response> {
    requested.filter(|org| *org != world_org).map(|_| {
        api_error(
            StatusCode::FORBIDDEN,
            tracking_id,
            "The token does not have access to the requested organization",
        )
    })
}

pub fn set_tracking(resp: &mut Response, tracking_id: &str) {
    if let Ok(v) = HeaderValue::from_str(tracking_id) {
        resp.headers_mut().insert(TRACKING_HEADER, v);
    }
}

/// The caller's own tracking id if it sent a usable one, else a fresh one.
fn tracking_id(state: &AppState, headers: &HeaderMap) -> String {
    headers
        .get(TRACKING_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_string)
        .unwrap_or_else(|| format!("wxccsim_{}", state.tracking_uuid()))
}

/// A request that passed the guard.
pub struct Admitted {
    pub tracking_id: String,
}

/// Runs the checks every API request goes through, in this order: `Authorization` header
/// present and `Bearer` (else 400), token known and unexpired (401), rate limit (429), injected
/// fault (5xx, request not processed), scope (403).
// The error is the finished HTTP answer, produced at most once per request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub fn admit(
    state: &AppState,
    headers: &HeaderMap,
    endpoint: Endpoint,
) -> Result<Admitted, Response> {
    AppState::bump(&state.counters.api_requests);
    let tracking_id = tracking_id(state, headers);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .map(|(_, token)| token.trim().to_string());
    let Some(token) = bearer else {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            &tracking_id,
            "Authorization header is missing or is not of the form 'Bearer <token>'",
        ));
    };
    let Some(grant) = state.oauth.check_access(&token) else {
        return Err(api_error(
            StatusCode::UNAUTHORIZED,
            &tracking_id,
            "Unauthorized, token is invalid",
        ));
    };
    if let Some(secs) = state.guard.rate_limit(&grant.client_id) {
        AppState::bump(&state.counters.rate_limited);
        tracing::debug!(client = %grant.client_id, retry_after = secs, "rate limited");
        let mut resp = empty(StatusCode::TOO_MANY_REQUESTS, &tracking_id);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        return Err(resp);
    }
    if let Some(status) = state
        .faults_on()
        .then(|| state.guard.injected_fault())
        .flatten()
    {
        AppState::bump(&state.counters.injected_errors);
        tracing::debug!(%status, "injected fault");
        return Err(if status == StatusCode::INTERNAL_SERVER_ERROR {
            api_error(status, &tracking_id, "Internal server error")
        } else {
            empty(status, &tracking_id)
        });
    }
    if !endpoint.accepts(&grant.scopes) {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            &tracking_id,
            "Forbidden, the token does not have the scope required for this API",
        ));
    }
    Ok(Admitted { tracking_id })
}
