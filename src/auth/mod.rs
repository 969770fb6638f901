//! Webex OAuth: the token endpoint client, the authorization-code flow (PKCE, state, loopback
//! listener), the on-disk token store and a refreshing access-token provider.
//!
//! Tokens are `SecretString`s end to end, so they cannot reach a log line or an error message by
//! accident. Refresh is driven by `expires_in` as received (lifetimes differ between tenants:
//! 12 h and 14 d are both observed), and is single-flight: concurrent callers wait for one
//! refresh instead of each starting their own, and processes sharing a token store take turns
//! through its file lock.
//!
//! Read-only by construction: the only OAuth calls are `GET /v1/authorize` (in the user's
//! browser) and `POST /v1/access_token`; nothing here can call a WxCC write endpoint, and the
//! default scope is `cjp:config_read`.

pub mod flow;
pub mod loopback;
mod provider;
mod sealed;
pub mod store;
mod token;

pub use provider::TokenProvider;
pub use store::{StoreError, StoreKey, StoredTokens, TokenStore};
pub use token::{OAuthClient, TokenSet};

pub(crate) use provider::find_store;

use std::time::Duration;

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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the redirect's state does not match this login (a stale, reused or forged redirect); \
         nothing was stored. Run `wxcc auth login` again and open the URL it prints"
    )]
    StateMismatch,
    #[error("Webex did not authorize wxcc: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied {
        error: String,
        description: Option<String>,
    },
    #[error("login failed: {0}")]
    Login(String),
    #[error(
        "the token belongs to organization {token} but WXCC_ORG_ID is {configured}: nothing was \
         stored. Log in as a user of {configured}, or fix WXCC_ORG_ID"
    )]
    OrgMismatch { configured: String, token: String },
}

impl AuthError {
    /// Errors the user's configuration must fix (exit code 2).
    pub fn is_usage(&self) -> bool {
        match self {
            AuthError::Missing(_) | AuthError::OrgMismatch { .. } => true,
            AuthError::Store(e) => e.is_usage(),
            _ => false,
        }
    }
}

pub type Result<T, E = AuthError> = std::result::Result<T, E>;

/// Refresh when less than this share of the lifetime is left, capped so long-lived tokens are
/// not refreshed days early (Webex may return the same token within 24 h anyway).
pub(crate) fn refresh_margin(lifetime: Duration) -> Duration {
    (lifetime / 5).min(Duration::from_secs(10 * 60))
}

/// The organization a Webex token was issued in: its last `_`-separated part, if that is a
/// UUID (`<opaque>_<cluster>_<orgId>`, REFERENCE.md §1.6 — a convention, not a contract).
pub fn org_from_token(token: &str) -> Option<String> {
    let last = token.rsplit('_').next()?;
    let uuid_like = last.len() == 36
        && last.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        && last.matches('-').count() == 4;
    uuid_like.then(|| last.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_comes_from_a_uuid_suffix_only() {
        assert_eq!(
            org_from_token("abc_P0A1_3dae8fdd-06e2-411a-9035-51f3719f5b65").as_deref(),
            Some("3dae8fdd-06e2-411a-9035-51f3719f5b65")
        );
        assert_eq!(org_from_token("opaque"), None);
        assert_eq!(org_from_token("a_b_../../etc"), None);
    }
}
