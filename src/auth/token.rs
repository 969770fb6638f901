//! The Webex token endpoint (`POST /v1/access_token`, REFERENCE.md §1.2–1.5) and the token set.

use std::time::Duration;

use backon::Retryable;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::{AuthError, Result, refresh_margin};
use crate::net::{self, RetryPolicy};

/// Access and refresh token with their absolute expiry times.
#[derive(Clone, Default)]
pub struct TokenSet {
    pub access_token: Option<SecretString>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Lifetime as granted, to refresh at a share of it.
    pub lifetime: Option<Duration>,
    pub refresh_token: Option<SecretString>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("expires_at", &self.expires_at)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

impl TokenSet {
    /// Time left on the access token, if its expiry is known.
    pub fn remaining(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.expires_at
            .map(|t| (t - now).to_std().unwrap_or_default())
    }

    /// True when the access token is missing or inside its refresh margin.
    pub fn needs_refresh(&self, now: DateTime<Utc>) -> bool {
        match (&self.access_token, self.remaining(now), self.lifetime) {
            (None, _, _) => true,
            (Some(_), None, _) => false,
            (Some(_), Some(left), Some(lifetime)) => left <= refresh_margin(lifetime),
            (Some(_), Some(left), None) => left <= Duration::from_secs(60),
        }
    }

    /// Takes a token response: keeps the old refresh token when none is returned (Webex
    /// normally returns the same one; REFERENCE.md §1.4).
    pub fn absorb(&mut self, fresh: TokenSet) {
        self.access_token = fresh.access_token;
        self.expires_at = fresh.expires_at;
        self.lifetime = fresh.lifetime;
        if fresh.refresh_token.is_some() {
            self.refresh_token = fresh.refresh_token;
            self.refresh_expires_at = fresh.refresh_expires_at;
        }
        if fresh.scope.is_some() {
            self.scope = fresh.scope;
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    expires_in: Option<i64>,
    refresh_token: Option<String>,
    refresh_token_expires_in: Option<i64>,
    scope: Option<String>,
}

#[derive(Deserialize, Default)]
struct GrantError {
    error: Option<String>,
    error_description: Option<String>,
}

/// Client credentials of a Webex Integration plus the token endpoint URL.
#[derive(Clone)]
pub struct OAuthClient {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    client_secret: SecretString,
    retry: RetryPolicy,
}

impl OAuthClient {
    pub fn new(
        http: reqwest::Client,
        oauth_base: &Url,
        client_id: String,
        client_secret: SecretString,
        retry: RetryPolicy,
    ) -> Result<OAuthClient> {
        let token_url = oauth_base
            .join("v1/access_token")
            .map_err(|e| AuthError::Missing(format!("bad OAuth base URL: {e}")))?;
        Ok(OAuthClient {
            http,
            token_url,
            client_id,
            client_secret,
            retry,
        })
    }

    /// `grant_type=refresh_token`.
    pub async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet> {
        self.grant(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
        ])
        .await
    }

    /// `grant_type=authorization_code`, with the PKCE verifier when one was used.
    pub async fn exchange_code(
        &self,
        code: &SecretString,
        redirect_uri: &str,
        code_verifier: Option<&SecretString>,
    ) -> Result<TokenSet> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.expose_secret()),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(v) = code_verifier {
            form.push(("code_verifier", v.expose_secret()));
        }
        self.grant(&form).await
    }

    /// Posts a grant (form-encoded, as documented), retrying only what is transient: 429 and
    /// 5xx are the token service's problem, any 400 means the grant itself is dead.
    async fn grant(&self, fields: &[(&str, &str)]) -> Result<TokenSet> {
        let mut form: Vec<(&str, &str)> = vec![
            ("client_id", &self.client_id),
            ("client_secret", self.client_secret.expose_secret()),
        ];
        form.extend_from_slice(fields);
        let attempt = || async {
            let resp = self
                .http
                .post(self.token_url.clone())
                .form(&form)
                .send()
                .await
                .map_err(|e| Attempt::Transient(e.without_url().to_string(), None, false))?;
            let status = resp.status();
            let retry_after = net::retry_after(resp.headers());
            let body = resp
                .bytes()
                .await
                .map_err(|e| Attempt::Transient(e.without_url().to_string(), None, false))?;
            if status.is_success() {
                return parse_token_response(&body).map_err(Attempt::Fatal);
            }
            if net::is_transient(status) {
                return Err(Attempt::Transient(
                    format!("HTTP {status}"),
                    retry_after,
                    status.as_u16() == 429,
                ));
            }
            let err: GrantError = serde_json::from_slice(&body).unwrap_or_default();
            let detail = format!(
                "token endpoint answered HTTP {} {}{}",
                status.as_u16(),
                err.error.as_deref().unwrap_or("(no error code)"),
                err.error_description
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            );
            if status.as_u16() == 400 || status.as_u16() == 401 {
                Err(Attempt::Fatal(AuthError::ReauthorizationRequired {
                    reason: detail,
                }))
            } else {
                Err(Attempt::Fatal(AuthError::Unavailable(detail)))
            }
        };
        attempt
            .retry(self.retry.backoff())
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, Attempt::Transient(..)))
            .adjust(|e, backoff| match e {
                Attempt::Transient(_, after, limited) => {
                    self.retry.next_delay(backoff, *limited, *after)
                }
                Attempt::Fatal(_) => backoff,
            })
            .notify(|e, wait| tracing::warn!(error = %e, ?wait, "token request failed; retrying"))
            .await
            .map_err(|e| match e {
                Attempt::Transient(msg, ..) => AuthError::Unavailable(msg),
                Attempt::Fatal(e) => e,
            })
    }
}

#[derive(Debug)]
enum Attempt {
    Transient(String, Option<Duration>, bool),
    Fatal(AuthError),
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::Transient(m, ..) => f.write_str(m),
            Attempt::Fatal(e) => write!(f, "{e}"),
        }
    }
}

fn parse_token_response(body: &[u8]) -> Result<TokenSet> {
    let r: TokenResponse = serde_json::from_slice(body)
        .map_err(|e| AuthError::Malformed(format!("not a token response: {e}")))?;
    let access = r
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AuthError::Malformed("no access_token in response".into()))?;
    let now = Utc::now();
    let lifetime = r
        .expires_in
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s as u64));
    Ok(TokenSet {
        access_token: Some(SecretString::from(access)),
        expires_at: lifetime.map(|l| now + l),
        lifetime,
        refresh_token: r
            .refresh_token
            .filter(|t| !t.is_empty())
            .map(SecretString::from),
        refresh_expires_at: r
            .refresh_token_expires_in
            .filter(|s| *s > 0)
            .map(|s| now + chrono::Duration::seconds(s)),
        scope: r.scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cisco_token_samples() {
        for sample in [
            include_str!("../../fixtures/token-response.json"),
            include_str!("../../fixtures/token-response.service-app-spec.json"),
        ] {
            let t = parse_token_response(sample.as_bytes()).unwrap();
            assert!(t.access_token.is_some() && t.refresh_token.is_some());
            assert!(t.expires_at.unwrap() > Utc::now());
            assert!(t.scope.is_none(), "scope is optional");
        }
    }

    #[test]
    fn refresh_happens_inside_the_margin_only() {
        let now = Utc::now();
        let mut t = parse_token_response(br#"{"access_token":"a","expires_in":43199}"#).unwrap();
        assert!(!t.needs_refresh(now));
        assert!(t.needs_refresh(now + chrono::Duration::seconds(43199 - 300)));
        t.expires_at = Some(now - chrono::Duration::seconds(1));
        assert!(t.needs_refresh(now));
    }

    #[test]
    fn missing_refresh_token_in_response_keeps_the_old_one() {
        let mut t = TokenSet {
            refresh_token: Some(SecretString::from("old")),
            ..Default::default()
        };
        t.absorb(parse_token_response(br#"{"access_token":"a","expires_in":10}"#).unwrap());
        assert_eq!(t.refresh_token.unwrap().expose_secret(), "old");
    }

    #[test]
    fn debug_output_never_shows_tokens() {
        let t = parse_token_response(
            br#"{"access_token":"sekrit-a","refresh_token":"sekrit-r","expires_in":10}"#,
        )
        .unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains("sekrit"), "{shown}");
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        assert!(matches!(
            parse_token_response(b"<html>"),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            parse_token_response(br#"{"expires_in":10}"#),
            Err(AuthError::Malformed(_))
        ));
    }
}
