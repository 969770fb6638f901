//! `wxcc check`: a pre-flight for schedulers. Each check answers one question with one line
//! (configuration, token, scopes, API, output store, scratch space, clock), so a failing
//! deployment says what to fix before the first real run. The CLI maps the first failure's
//! [`Class`] to the documented exit code.

mod probes;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::api::{ApiClient, ApiError, ApiSettings};
use crate::auth::{AuthError, TokenProvider, TokenSet};
use crate::config::Config;
use crate::lake::Lake;
use crate::net::{self, RetryPolicy};
pub use probes::{clock_skew, free_bytes, scratch, store_roundtrip};

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Not run because an earlier check it depends on failed.
    Skip,
}

/// What kind of fix a failure needs; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// The configuration is wrong (exit 2).
    Config,
    /// A new authorization is needed (exit 3).
    Auth,
    /// Anything else: network, store, disk, clock (exit 1).
    Failure,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    /// Set when the check failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<Class>,
}

impl Check {
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Pass,
            detail: detail.into(),
            class: None,
        }
    }

    pub fn fail(name: &'static str, class: Class, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            class: Some(class),
        }
    }

    pub fn skip(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Skip,
            detail: detail.into(),
            class: None,
        }
    }
}

/// Thresholds of a check run.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Fail when the refresh token expires within this long.
    pub refresh_warn: chrono::Duration,
    /// Fail when the scratch directory has less free space than this.
    pub scratch_min_bytes: u64,
    /// Fail when a local lake's disk has less free space than this.
    pub lake_min_bytes: u64,
    /// Fail when the local clock and the API's `Date` differ by more than this.
    pub max_skew: Duration,
    /// Scratch directory when the configuration names none (the system's temporary directory).
    pub default_scratch: PathBuf,
}

/// The first failure's class, if anything failed.
pub fn first_failure(checks: &[Check]) -> Option<Class> {
    checks.iter().find_map(|c| c.class)
}

/// Runs every check for one org's configuration. Checks that depend on a failed one are skipped
/// (and say so) rather than piling up follow-on errors.
pub async fn run(cfg: &Config, opts: &CheckOptions) -> Vec<Check> {
    let mut out = Vec::new();
    // A check must answer in seconds: few retries, short waits.
    let retry = RetryPolicy {
        max_retries: 1,
        min_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(1),
        max_total_delay: Duration::from_secs(2),
        min_rate_limited_delay: Duration::from_secs(1),
    };
    let http = net::api_http_client();
    let api = match TokenProvider::from_config(cfg, http.clone(), retry.clone()) {
        Ok(tokens) => {
            let mut settings = ApiSettings::new(cfg.api_base_url.clone());
            settings.org_id = cfg.org_id.clone();
            settings.retry = retry;
            Some(ApiClient::new(http.clone(), settings, tokens))
        }
        Err(e) => {
            out.push(Check::fail("token", auth_class(&e), e.to_string()));
            None
        }
    };
    if let Some(api) = &api {
        match api.tokens().access_token().await {
            Ok(_) => {
                let tokens = api.tokens().snapshot().await;
                out.extend(token_checks(&tokens, Utc::now(), opts.refresh_warn));
            }
            Err(e) => out.push(Check::fail("token", auth_class(&e), e.to_string())),
        }
    }
    let token_ok = api.is_some() && out.iter().all(|c| c.status == Status::Pass);
    match (&api, token_ok) {
        (Some(api), true) => out.push(api_check(api).await),
        _ => out.push(Check::skip("api", "no usable token")),
    }
    out.push(probes::clock_check(&http, &cfg.api_base_url, Utc::now, opts.max_skew).await);
    out.push(
        match Lake::open_with_options(&cfg.output, cfg.storage_options.iter().cloned()) {
            Ok(lake) => store_roundtrip(&lake, opts.lake_min_bytes).await,
            Err(e) => Check::fail("store", Class::Failure, e.to_string()),
        },
    );
    let dir = cfg
        .scratch_dir
        .clone()
        .unwrap_or(opts.default_scratch.clone());
    out.push(scratch(&dir, opts.scratch_min_bytes));
    out
}

/// Presence, expiry and scopes of the token set, once a usable access token is in hand.
pub fn token_checks(
    t: &TokenSet,
    now: DateTime<Utc>,
    refresh_warn: chrono::Duration,
) -> Vec<Check> {
    let mut out = Vec::new();
    let stamp = |at: DateTime<Utc>| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    out.push(match (&t.refresh_token, t.refresh_expires_at) {
        (None, _) => Check::pass(
            "token",
            "access token only: runs stop when it expires (no refresh token)",
        ),
        (Some(_), Some(at)) if at - now <= refresh_warn => Check::fail(
            "token",
            Class::Auth,
            format!(
                "the refresh token expires {}: run `wxcc auth login` before then",
                stamp(at)
            ),
        ),
        (Some(_), at) => Check::pass(
            "token",
            format!(
                "access token valid{}; refresh token valid{}",
                t.expires_at
                    .map(|a| format!(" until {}", stamp(a)))
                    .unwrap_or_default(),
                at.map(|a| format!(" until {}", stamp(a)))
                    .unwrap_or_default()
            ),
        ),
    });
    out.push(scope_check(t.scope.as_deref()));
    out
}

/// Sufficient (`cjp:config_read`, which the captures API needs) and read-only.
pub fn scope_check(granted: Option<&str>) -> Check {
    let Some(granted) = granted else {
        return Check::pass(
            "scopes",
            "not reported by Webex; the API call below decides",
        );
    };
    let writes: Vec<&str> = granted
        .split_whitespace()
        .filter(|s| crate::auth::flow::WRITE_SCOPES.contains(s))
        .collect();
    if !crate::auth::flow::scope_coverage(granted).1 {
        Check::fail(
            "scopes",
            Class::Auth,
            format!(
                "granted `{granted}` lacks cjp:config_read, which the captures API requires: \
                 run `wxcc auth login`"
            ),
        )
    } else if !writes.is_empty() {
        Check::fail(
            "scopes",
            Class::Auth,
            format!(
                "granted `{granted}` allows changes ({}); wxcc only reads: authorize again \
                 without them",
                writes.join(", ")
            ),
        )
    } else {
        Check::pass("scopes", format!("{granted} (read-only, sufficient)"))
    }
}

/// One small, authenticated request: the last minute of the tasks list.
async fn api_check(api: &ApiClient) -> Check {
    match api.org_id().await {
        Ok(org) => Check::pass(
            "api",
            format!(
                "GET /v1/tasks answered{}",
                org.map(|o| format!(" (org {o})")).unwrap_or_default()
            ),
        ),
        Err(ApiError::Auth(e)) => Check::fail("api", auth_class(&e), e.to_string()),
        Err(e) => Check::fail("api", Class::Failure, e.to_string()),
    }
}

fn auth_class(e: &AuthError) -> Class {
    match e {
        AuthError::ReauthorizationRequired { .. } => Class::Auth,
        e if e.is_usage() => Class::Config,
        _ => Class::Failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn scopes_must_include_captures_read_and_nothing_that_writes() {
        assert_eq!(
            scope_check(Some("cjp:config cjp:config_read")).status,
            Status::Pass
        );
        let missing = scope_check(Some("cjp:config"));
        assert_eq!(missing.class, Some(Class::Auth));
        let writes = scope_check(Some("cjp:config_read cjp:config_write"));
        assert_eq!(writes.class, Some(Class::Auth));
        assert!(writes.detail.contains("cjp:config_write"));
    }

    #[test]
    fn a_refresh_token_inside_the_warning_period_fails() {
        let now = Utc::now();
        let tokens = |days| TokenSet {
            access_token: Some(SecretString::from("a")),
            refresh_token: Some(SecretString::from("r")),
            refresh_expires_at: Some(now + chrono::Duration::days(days)),
            scope: Some("cjp:config_read".into()),
            ..Default::default()
        };
        let warn = chrono::Duration::days(7);
        assert_eq!(
            token_checks(&tokens(3), now, warn)[0].class,
            Some(Class::Auth)
        );
        assert!(first_failure(&token_checks(&tokens(30), now, warn)).is_none());
    }
}
