//! `GET /v1/authorize` and `POST /v1/access_token` of the simulated Webex identity service
//! (REFERENCE.md §1). There is no login page: the user is an administrator who always approves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use url::Url;

use super::AppState;
use super::limits::set_tracking;
use super::tokens::{CodeRequest, GrantError, Issued, Pkce};

/// Scopes registered for the simulated integration.
pub const REGISTERED_SCOPES: [&str; 5] = [
    "cjp:config",
    "cjp:config_read",
    "cjp:config_write",
    "cjp:user",
    "spark:people_read",
];
/// The one non-loopback redirect URI registered for the integration.
pub const REGISTERED_REDIRECT: &str = "https://wxcc.example/callback";

/// Loopback redirect URIs on any port (RFC 8252 §7.3) plus the registered callback.
fn redirect_allowed(uri: &str) -> Option<Url> {
    let url = Url::parse(uri).ok()?;
    if url.fragment().is_some() {
        return None;
    }
    let loopback =
        url.scheme() == "http" && matches!(url.host_str(), Some("127.0.0.1" | "localhost"));
    (loopback || uri == REGISTERED_REDIRECT).then_some(url)
}

fn bad_request_page(message: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html><head><title>Bad Request</title></head><body><h1>Bad Request</h1><p>{message}</p></body></html>"
    );
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn redirect(mut to: Url, pairs: &[(&str, &str)]) -> Response {
    {
        let mut query = to.query_pairs_mut();
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, to.to_string())]).into_response()
}

fn query_map(raw: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// `GET /v1/authorize`: auto-approves and redirects with a code, or with `error` when the request
/// is wrong in a way the redirect may report. Never redirects to an unregistered URI.
pub async fn authorize(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Response {
    let params = query_map(raw.as_deref());
    let get = |k: &str| params.get(k).map(String::as_str);
    let client_id = get("client_id").unwrap_or_default();
    if !state.oauth.is_registered(client_id) {
        return bad_request_page("Unknown client_id: the integration is not registered.");
    }
    let redirect_uri = get("redirect_uri").unwrap_or_default();
    let Some(target) = redirect_allowed(redirect_uri) else {
        return bad_request_page(
            "redirect_uri does not match a redirect URI registered for this integration.",
        );
    };
    let st = get("state");
    let fail = |error: &str, description: &str| {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(s) = st {
            pairs.push(("state", s));
        }
        redirect(target.clone(), &pairs)
    };
    if get("response_type") != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let scopes: Vec<String> = get("scope")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    if scopes.is_empty() {
        return fail("invalid_scope", "scope is required");
    }
    if let Some(bad) = scopes
        .iter()
        .find(|s| !REGISTERED_SCOPES.contains(&s.as_str()))
    {
        return fail(
            "invalid_scope",
            &format!("The requested scope {bad} is invalid or not registered for this integration"),
        );
    }
    if st.is_none() {
        return fail("invalid_request", "state is required");
    }
    let pkce = match (get("code_challenge"), get("code_challenge_method")) {
        (None, None) => None,
        (Some(c), _) if !(43..=128).contains(&c.len()) => {
            return fail(
                "invalid_request",
                "code_challenge must be 43 to 128 characters",
            );
        }
        (Some(c), Some("S256")) => Some(Pkce::S256(c.to_string())),
        (Some(c), None | Some("plain")) => Some(Pkce::Plain(c.to_string())),
        _ => {
            return fail(
                "invalid_request",
                "unsupported code_challenge_method (use S256)",
            );
        }
    };
    let request = CodeRequest {
        client_id: client_id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        scopes,
        pkce,
    };
    let code = state.oauth.issue_code(request, Instant::now());
    tracing::debug!(client_id, "authorization code issued");
    redirect(
        target,
        &[("code", code.as_str()), ("state", st.unwrap_or_default())],
    )
}

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    expires_in: u64,
    refresh_token: &'a str,
    refresh_token_expires_in: u64,
    token_type: &'static str,
    scope: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(rename = "error_description")]
    error_description: &'a str,
    tracking_id: &'a str,
}

fn token_error(state: &AppState, error: &str, description: &str) -> Response {
    let tracking_id = format!("ROUTER_{}", state.tracking_uuid());
    let body = ErrorBody {
        error,
        error_description: description,
        tracking_id: &tracking_id,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    tracing::debug!(error, description, "token request refused");
    let mut resp = (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response();
    set_tracking(&mut resp, &tracking_id);
    resp
}

fn token_ok(state: &AppState, issued: &Issued) -> Response {
    AppState::bump(&state.counters.token_grants);
    let body = TokenResponse {
        access_token: &issued.access_token,
        expires_in: issued.expires_in,
        refresh_token: &issued.refresh_token,
        refresh_token_expires_in: issued.refresh_token_expires_in,
        token_type: "Bearer",
        scope: &issued.scope,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut resp = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        bytes,
    )
        .into_response();
    set_tracking(&mut resp, &format!("ROUTER_{}", state.tracking_uuid()));
    resp
}

/// Token request fields from a form or JSON body, completed by HTTP Basic client credentials.
fn token_fields(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, &'static str> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-www-form-urlencoded")
        .to_ascii_lowercase();
    let mut fields: HashMap<String, String> = if content_type.starts_with("application/json") {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| "the JSON body could not be parsed")?;
        let obj = value.as_object().ok_or("the JSON body must be an object")?;
        obj.iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k.clone(), s.clone())),
                serde_json::Value::Number(n) => Some((k.clone(), n.to_string())),
                _ => None,
            })
            .collect()
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        url::form_urlencoded::parse(body).into_owned().collect()
    } else {
        return Err("unsupported Content-Type: use application/x-www-form-urlencoded");
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    if let Some((_, encoded)) = basic {
        let decoded = STANDARD
            .decode(encoded.trim())
            .map_err(|_| "malformed Basic authorization header")?;
        let text =
            String::from_utf8(decoded).map_err(|_| "malformed Basic authorization header")?;
        let (id, secret) = text
            .split_once(':')
            .ok_or("malformed Basic authorization header")?;
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("v={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        for (key, value) in [("client_id", decode(id)), ("client_secret", decode(secret))] {
            if fields.get(key).is_some_and(|existing| *existing != value) {
                return Err("client credentials in the body and the Authorization header differ");
            }
            fields.insert(key.to_string(), value);
        }
    }
    Ok(fields)
}

/// `POST /v1/access_token`: `authorization_code` and `refresh_token` grants.
pub async fn access_token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = match token_fields(&headers, &body) {
        Ok(f) => f,
        Err(description) => return token_error(&state, "invalid_request", description),
    };
    let get = |k: &str| fields.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let Some(grant_type) = get("grant_type") else {
        return token_error(&state, "invalid_request", "grant_type is required");
    };
    if !matches!(grant_type, "authorization_code" | "refresh_token") {
        return token_error(
            &state,
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        );
    }
    let (Some(client_id), Some(client_secret)) = (get("client_id"), get("client_secret")) else {
        return token_error(
            &state,
            "invalid_request",
            "client_id and client_secret are required",
        );
    };
    if !state.oauth.authenticates(client_id, client_secret) {
        return token_error(
            &state,
            "invalid_client",
            "Client authentication failed: unknown client_id or wrong client_secret.",
        );
    }
    let now = Instant::now();
    let result: Result<Issued, GrantError> = if grant_type == "authorization_code" {
        let (Some(code), Some(redirect_uri)) = (get("code"), get("redirect_uri")) else {
            return token_error(
                &state,
                "invalid_request",
                "code and redirect_uri are required",
            );
        };
        state
            .oauth
            .redeem_code(code, client_id, redirect_uri, get("code_verifier"), now)
    } else {
        let Some(refresh_token) = get("refresh_token") else {
            return token_error(&state, "invalid_request", "refresh_token is required");
        };
        state.oauth.refresh(refresh_token, client_id, now)
    };
    match result {
        Ok(issued) => token_ok(&state, &issued),
        Err(e) => token_error(&state, e.error, e.description),
    }
}
