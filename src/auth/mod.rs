//! Webex OAuth: the token endpoint client and a refreshing access-token provider.
//!
//! Tokens are `SecretString`s end to end, so they cannot reach a log line or an error message by
//! accident. Refresh is driven by `expires_in` as received (lifetimes differ between tenants:
//! 12 h and 14 d are both observed), and is single-flight: concurrent callers wait for one
//! refresh instead of each starting their own.

mod token;

pub use token::{OAuthClient, TokenSet};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use crate::config::Config;
use crate::net::RetryPolicy;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The refresh token (or the only configured access token) is no longer accepted. Only a new
    /// interactive authorization fixes this, so it gets its own exit code.
    #[error(
        "re-authorization required: {reason}. Run `wxcc auth login` (or provide a new WXCC_REFRESH_TOKEN)"
    )]
    ReauthorizationRequired { reason: String },
    #[error("token endpoint unavailable after retries: {0}")]
    Unavailable(String),
    #[error("token endpoint returned an unusable response: {0}")]
    Malformed(String),
    #[error("{0}")]
    Missing(String),
}

pub type Result<T, E = AuthError> = std::result::Result<T, E>;

/// Hands out valid access tokens, refreshing them ahead of expiry and after a 401.
pub struct TokenProvider {
    oauth: Option<OAuthClient>,
    current: Mutex<TokenSet>,
    refreshes: AtomicU64,
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenProvider")
            .field("can_refresh", &self.oauth.is_some())
            .field("refreshes", &self.refreshes.load(Ordering::Relaxed))
            .finish()
    }
}

impl TokenProvider {
    /// `oauth` is needed to refresh; without it the initial access token is used until rejected.
    pub fn new(oauth: Option<OAuthClient>, initial: TokenSet) -> Result<Arc<TokenProvider>> {
        if initial.access_token.is_none() && (oauth.is_none() || initial.refresh_token.is_none()) {
            return Err(AuthError::Missing(
                "no usable credentials: need WXCC_CLIENT_ID, WXCC_CLIENT_SECRET and WXCC_REFRESH_TOKEN, \
                 or a WXCC_ACCESS_TOKEN"
                    .into(),
            ));
        }
        Ok(Arc::new(TokenProvider {
            oauth,
            current: Mutex::new(initial),
            refreshes: AtomicU64::new(0),
        }))
    }

    /// The provider for the configured credentials: a refresh token with the Integration's
    /// client id and secret, or a bare access token.
    pub fn from_config(
        cfg: &Config,
        http: reqwest::Client,
        retry: RetryPolicy,
    ) -> Result<Arc<TokenProvider>> {
        let creds = &cfg.credentials;
        if creds.access_token.is_none() {
            let missing: Vec<&str> = [
                ("WXCC_CLIENT_ID", creds.client_id.is_none()),
                ("WXCC_CLIENT_SECRET", creds.client_secret.is_none()),
                ("WXCC_REFRESH_TOKEN", creds.refresh_token.is_none()),
            ]
            .into_iter()
            .filter_map(|(name, absent)| absent.then_some(name))
            .collect();
            if !missing.is_empty() {
                return Err(AuthError::Missing(format!(
                    "missing credentials: {}. Set them as environment variables or in wxcc.toml, \
                     or provide WXCC_ACCESS_TOKEN",
                    missing.join(", ")
                )));
            }
        }
        let oauth = match (&creds.client_id, &creds.client_secret) {
            (Some(id), Some(secret)) => Some(OAuthClient::new(
                http,
                &cfg.oauth_base_url,
                id.clone(),
                secret.clone(),
                retry,
            )?),
            _ => None,
        };
        TokenProvider::new(
            oauth,
            TokenSet {
                access_token: creds.access_token.clone(),
                refresh_token: creds.refresh_token.clone(),
                ..Default::default()
            },
        )
    }

    /// How many refresh grants this provider has made.
    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// A token that is valid for a while yet; refreshes first when it is close to expiry.
    pub async fn access_token(&self) -> Result<SecretString> {
        let mut current = self.current.lock().await;
        if let Some(token) = &current.access_token
            && !current.needs_refresh(Utc::now())
        {
            return Ok(token.clone());
        }
        if self.oauth.is_none() || current.refresh_token.is_none() {
            // A bare access token of unknown lifetime: use it until the API rejects it.
            return current.access_token.clone().ok_or_else(|| {
                AuthError::Missing("no access token and nothing to refresh it with".into())
            });
        }
        self.refresh_locked(&mut current).await
    }

    /// Called after the API answered 401 for `rejected`. Refreshes once; if another task already
    /// replaced that token, returns the replacement without a second refresh.
    pub async fn after_unauthorized(&self, rejected: &SecretString) -> Result<SecretString> {
        let mut current = self.current.lock().await;
        if let Some(token) = &current.access_token
            && token.expose_secret() != rejected.expose_secret()
        {
            return Ok(token.clone());
        }
        if self.oauth.is_none() || current.refresh_token.is_none() {
            return Err(AuthError::ReauthorizationRequired {
                reason: "the access token was rejected (401) and no refresh token is configured"
                    .into(),
            });
        }
        self.refresh_locked(&mut current).await
    }

    /// A copy of the current token set, e.g. to persist it.
    pub async fn snapshot(&self) -> TokenSet {
        self.current.lock().await.clone()
    }

    async fn refresh_locked(&self, current: &mut TokenSet) -> Result<SecretString> {
        let (Some(oauth), Some(refresh)) = (&self.oauth, &current.refresh_token) else {
            return Err(AuthError::Missing("nothing to refresh with".into()));
        };
        let fresh = oauth.refresh(refresh).await?;
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        current.absorb(fresh);
        tracing::debug!(
            expires_in_secs = current.remaining(Utc::now()).map(|d| d.as_secs()),
            "access token refreshed"
        );
        current
            .access_token
            .clone()
            .ok_or_else(|| AuthError::Malformed("no access_token in response".into()))
    }
}

/// Refresh when less than this share of the lifetime is left, capped so long-lived tokens are
/// not refreshed days early (Webex may return the same token within 24 h anyway).
pub(crate) fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(10 * 60))
}
