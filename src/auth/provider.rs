//! The refreshing access-token provider every API call goes through.
//!
//! Within a process, refresh is single-flight (a `tokio` mutex). Across processes, a provider
//! bound to a [`TokenStore`] refreshes only while holding the store's file lock, re-reads the
//! file first (another process may have refreshed while it waited) and persists whatever the
//! token endpoint returned before releasing the lock.
//!
//! A refresh runs as a task of its own that holds the in-process lock: a caller cancelled
//! mid-refresh (a timeout, a run that is stopping) never drops what the token endpoint answered,
//! which matters where the server rotates refresh tokens (REFERENCE.md §1.4 leaves that open):
//! the old one is dead as soon as the server has answered.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::store::{StoreKey, StoredTokens, TokenStore};
use super::{AuthError, OAuthClient, Result, TokenSet};
use crate::config::{AuthConfig, Config};
use crate::net::RetryPolicy;

/// Hands out valid access tokens, refreshing them ahead of expiry and after a 401.
pub struct TokenProvider {
    oauth: Option<OAuthClient>,
    store: Option<TokenStore>,
    current: Arc<Mutex<Current>>,
    refreshes: Arc<AtomicU64>,
}

struct Current {
    tokens: TokenSet,
    /// Generation of the store file these tokens were read from or written as.
    generation: u64,
}

impl std::fmt::Debug for TokenProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenProvider")
            .field("can_refresh", &self.oauth.is_some())
            .field("store", &self.store.as_ref().map(TokenStore::path))
            .field("refreshes", &self.refreshes.load(Ordering::Relaxed))
            .finish()
    }
}

impl TokenProvider {
    /// `oauth` is needed to refresh; without it the initial access token is used until rejected.
    /// Nothing is persisted.
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
            store: None,
            current: Arc::new(Mutex::new(Current {
                tokens: initial,
                generation: 0,
            })),
            refreshes: Arc::default(),
        }))
    }

    /// A provider that reads from and persists every refresh to `store`.
    pub fn with_store(
        oauth: Option<OAuthClient>,
        store: TokenStore,
        stored: StoredTokens,
    ) -> Result<Arc<TokenProvider>> {
        let tokens = stored.tokens;
        if tokens.access_token.is_none() && tokens.refresh_token.is_none() {
            return Err(AuthError::ReauthorizationRequired {
                reason: format!("{} holds no tokens", store.path().display()),
            });
        }
        Ok(Arc::new(TokenProvider {
            oauth,
            store: Some(store),
            current: Arc::new(Mutex::new(Current {
                tokens,
                generation: stored.generation,
            })),
            refreshes: Arc::default(),
        }))
    }

    /// The provider for the configured credentials. See [`TokenProvider::from_auth_config`].
    pub fn from_config(
        cfg: &Config,
        http: reqwest::Client,
        retry: RetryPolicy,
    ) -> Result<Arc<TokenProvider>> {
        TokenProvider::from_auth_config(&cfg.auth(), http, retry)
    }

    /// Tokens given explicitly (WXCC_REFRESH_TOKEN / WXCC_ACCESS_TOKEN or the config file) are
    /// used as they are and never persisted. Otherwise the token store of the configured client
    /// (as written by `wxcc auth login` / `import`) is used and kept up to date.
    pub fn from_auth_config(
        cfg: &AuthConfig,
        http: reqwest::Client,
        retry: RetryPolicy,
    ) -> Result<Arc<TokenProvider>> {
        let creds = &cfg.credentials;
        let explicit = creds.access_token.is_some() || creds.refresh_token.is_some();
        if !explicit && let Some(store) = find_store(cfg)? {
            return TokenProvider::from_store(cfg, store, http, retry);
        }
        if !explicit {
            let missing: Vec<&str> = [
                ("WXCC_CLIENT_ID", creds.client_id.is_none()),
                ("WXCC_CLIENT_SECRET", creds.client_secret.is_none()),
                ("WXCC_REFRESH_TOKEN", true),
            ]
            .into_iter()
            .filter_map(|(name, absent)| absent.then_some(name))
            .collect();
            let store = match &cfg.token_store.dir {
                Some(dir) => format!("no stored tokens in {}", dir.display()),
                None => "no token store configured".to_owned(),
            };
            return Err(AuthError::Missing(format!(
                "missing credentials ({store}): run `wxcc auth login` (needs WXCC_CLIENT_ID and \
                 WXCC_CLIENT_SECRET), or set {} as environment variables or in wxcc.toml, or \
                 provide WXCC_ACCESS_TOKEN",
                missing.join(", ")
            )));
        }
        if creds.access_token.is_none() {
            let missing: Vec<&str> = [
                ("WXCC_CLIENT_ID", creds.client_id.is_none()),
                ("WXCC_CLIENT_SECRET", creds.client_secret.is_none()),
            ]
            .into_iter()
            .filter_map(|(name, absent)| absent.then_some(name))
            .collect();
            if !missing.is_empty() {
                return Err(AuthError::Missing(format!(
                    "missing credentials: {} (needed with WXCC_REFRESH_TOKEN). Set them as \
                     environment variables or in wxcc.toml",
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

    /// The provider over the configured token store, whatever the environment holds; for
    /// `wxcc auth refresh`. No store is a re-authorization case.
    pub fn from_store_config(
        cfg: &AuthConfig,
        http: reqwest::Client,
        retry: RetryPolicy,
    ) -> Result<Arc<TokenProvider>> {
        let store = find_store(cfg)?.ok_or_else(|| no_store(cfg))?;
        TokenProvider::from_store(cfg, store, http, retry)
    }

    fn from_store(
        cfg: &AuthConfig,
        store: TokenStore,
        http: reqwest::Client,
        retry: RetryPolicy,
    ) -> Result<Arc<TokenProvider>> {
        let stored = store.read()?.ok_or_else(|| no_store(cfg))?;
        let creds = &cfg.credentials;
        let client_id = creds
            .client_id
            .clone()
            .unwrap_or_else(|| stored.client_id.clone());
        let secret = creds
            .client_secret
            .clone()
            .or_else(|| stored.client_secret.clone());
        let oauth = match secret {
            Some(secret) => Some(OAuthClient::new(
                http,
                &cfg.oauth_base_url,
                client_id,
                secret,
                retry,
            )?),
            None if stored.tokens.refresh_token.is_some() => {
                return Err(AuthError::Missing(format!(
                    "WXCC_CLIENT_SECRET is needed to refresh the tokens stored in {}: set it, or \
                     import it with `wxcc auth import --store-client-secret`",
                    store.path().display()
                )));
            }
            None => None,
        };
        tracing::debug!(path = %store.path().display(), "using stored tokens");
        TokenProvider::with_store(oauth, store, stored)
    }

    /// The token store this provider persists to, if any.
    pub fn store_path(&self) -> Option<&Path> {
        self.store.as_ref().map(TokenStore::path)
    }

    /// How many refresh grants this provider has made.
    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// A token that is valid for a while yet; refreshes first when it is close to expiry.
    pub async fn access_token(&self) -> Result<SecretString> {
        let current = self.current.clone().lock_owned().await;
        if let Some(token) = &current.tokens.access_token
            && !current.tokens.needs_refresh(Utc::now())
        {
            return Ok(token.clone());
        }
        if self.oauth.is_none() || current.tokens.refresh_token.is_none() {
            // A bare access token of unknown lifetime: use it until the API rejects it.
            return current.tokens.access_token.clone().ok_or_else(|| {
                AuthError::Missing("no access token and nothing to refresh it with".into())
            });
        }
        self.refresh(current, None).await
    }

    /// Called after the API answered 401 for `rejected`. Refreshes once; if another task (or,
    /// through the store, another process) already replaced that token, returns the
    /// replacement without a second refresh.
    pub async fn after_unauthorized(&self, rejected: &SecretString) -> Result<SecretString> {
        let current = self.current.clone().lock_owned().await;
        if let Some(token) = &current.tokens.access_token
            && token.expose_secret() != rejected.expose_secret()
        {
            return Ok(token.clone());
        }
        if self.oauth.is_none() || current.tokens.refresh_token.is_none() {
            return Err(AuthError::ReauthorizationRequired {
                reason: "the access token was rejected (401) and no refresh token is configured"
                    .into(),
            });
        }
        self.refresh(current, Some(rejected.clone())).await
    }

    /// Refreshes now, whatever the expiry (`wxcc auth refresh`), and persists the result; if
    /// another process refreshed while this one waited for the store lock, its result is taken
    /// instead.
    pub async fn force_refresh(&self) -> Result<TokenSet> {
        let current = self.current.clone().lock_owned().await;
        if self.oauth.is_none() || current.tokens.refresh_token.is_none() {
            return Err(AuthError::ReauthorizationRequired {
                reason: "there is no refresh token to refresh with".into(),
            });
        }
        self.refresh(current, None).await?;
        Ok(self.snapshot().await)
    }

    /// A copy of the current token set.
    pub async fn snapshot(&self) -> TokenSet {
        self.current.lock().await.tokens.clone()
    }

    /// When the refresh token expires, as last heard, without waiting: `None` when unknown or
    /// while a refresh is in flight (a stopping run must not wait behind its retries).
    pub fn refresh_expires_at(&self) -> Option<chrono::DateTime<Utc>> {
        let current = self.current.try_lock().ok()?;
        current.tokens.refresh_token.as_ref()?;
        current.tokens.refresh_expires_at
    }

    /// Refreshes in a task of its own that takes over `current`'s lock, so that what the token
    /// endpoint answered is kept (in memory and in the store) even if this caller is cancelled.
    async fn refresh(
        &self,
        current: OwnedMutexGuard<Current>,
        rejected: Option<SecretString>,
    ) -> Result<SecretString> {
        let Some(oauth) = self.oauth.clone() else {
            return Err(AuthError::Missing("nothing to refresh with".into()));
        };
        let (store, refreshes) = (self.store.clone(), self.refreshes.clone());
        tokio::spawn(async move {
            let mut current = current;
            refresh_locked(&oauth, store.as_ref(), &refreshes, &mut current, rejected).await
        })
        .await
        .unwrap_or_else(|e| match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => Err(AuthError::Unavailable(format!(
                "the token refresh stopped: {e}"
            ))),
        })
    }
}

/// The refresh itself. With a store: under its lock, adopt what another process wrote since we
/// last looked if it is usable; otherwise refresh and persist before unlocking.
async fn refresh_locked(
    oauth: &OAuthClient,
    store: Option<&TokenStore>,
    refreshes: &AtomicU64,
    current: &mut Current,
    rejected: Option<SecretString>,
) -> Result<SecretString> {
    let Some(store) = store else {
        return refresh_with(oauth, refreshes, current, false).await;
    };
    let lock = store.lock().await?;
    let disk = store
        .read()?
        .ok_or_else(|| AuthError::ReauthorizationRequired {
            reason: format!(
                "the token store {} was removed (`wxcc auth logout`?)",
                store.path().display()
            ),
        })?;
    if disk.generation != current.generation {
        current.tokens = disk.tokens.clone();
        current.generation = disk.generation;
        if let Some(token) = usable(&current.tokens, rejected.as_ref()) {
            tracing::debug!("another wxcc process refreshed the token; using its result");
            return Ok(token);
        }
    }
    let token = refresh_with(oauth, refreshes, current, true).await?;
    let mut out = disk;
    out.tokens = current.tokens.clone();
    store.write(&lock, &mut out)?;
    current.generation = out.generation;
    drop(lock);
    Ok(token)
}

/// One refresh grant, taken into `current`. Without a store (`persisted` false), a new refresh
/// token lives only in this process: the next run starts from the configured one again, which a
/// server that rotates refresh tokens refuses, so the user is told how to keep it.
async fn refresh_with(
    oauth: &OAuthClient,
    refreshes: &AtomicU64,
    current: &mut Current,
    persisted: bool,
) -> Result<SecretString> {
    let Some(refresh) = current.tokens.refresh_token.clone() else {
        return Err(AuthError::Missing("nothing to refresh with".into()));
    };
    let fresh = oauth.refresh(&refresh).await?;
    refreshes.fetch_add(1, Ordering::Relaxed);
    let rotated = fresh
        .refresh_token
        .as_ref()
        .is_some_and(|new| new.expose_secret() != refresh.expose_secret());
    if rotated && !persisted {
        tracing::warn!(
            "the token endpoint answered with a new refresh token; it is not saved, because the \
             tokens come from the environment or wxcc.toml. If the old one stops working, keep \
             tokens in a token store instead (`wxcc auth import`, then unset WXCC_REFRESH_TOKEN)"
        );
    }
    current.tokens.absorb(fresh);
    tracing::debug!(
        expires_in_secs = current.tokens.remaining(Utc::now()).map(|d| d.as_secs()),
        "access token refreshed"
    );
    current
        .tokens
        .access_token
        .clone()
        .ok_or_else(|| AuthError::Malformed("no access_token in response".into()))
}

/// The access token of `tokens` if it is valid for a while yet and is not the rejected one.
fn usable(tokens: &TokenSet, rejected: Option<&SecretString>) -> Option<SecretString> {
    let token = tokens.access_token.as_ref()?;
    let is_rejected = rejected.is_some_and(|r| r.expose_secret() == token.expose_secret());
    (!is_rejected && !tokens.needs_refresh(Utc::now())).then(|| token.clone())
}

/// The existing store for the configured client and org, if a store directory is configured.
pub(crate) fn find_store(cfg: &AuthConfig) -> Result<Option<TokenStore>> {
    let Some(dir) = &cfg.token_store.dir else {
        return Ok(None);
    };
    let key = StoreKey::from_config(&cfg.token_store)?;
    Ok(TokenStore::find(
        dir,
        key,
        cfg.credentials.client_id.as_deref(),
        cfg.org_id.as_deref(),
    )?)
}

fn no_store(cfg: &AuthConfig) -> AuthError {
    let place = cfg.token_store.dir.as_ref().map_or_else(
        || "(no token directory)".to_owned(),
        |d| d.display().to_string(),
    );
    let client = cfg
        .credentials
        .client_id
        .as_deref()
        .map_or_else(String::new, |c| format!(" for client {c}"));
    AuthError::ReauthorizationRequired {
        reason: format!("no tokens stored{client} in {place}"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};
    use std::time::Duration;

    use super::*;

    /// A token endpoint that rotates refresh tokens, as REFERENCE.md §1.4 allows: it answers
    /// after `delay` with a new one, and refuses a refresh token it has answered for before.
    async fn slow_rotating_endpoint(delay: Duration) -> url::Url {
        let spent = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let app = axum::Router::new().route(
            "/v1/access_token",
            axum::routing::post(move |body: String| async move {
                let used = url::form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "refresh_token")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let reused = {
                    let mut spent = spent.lock().expect("lock");
                    let reused = spent.contains(&used);
                    spent.push(used);
                    reused
                };
                tokio::time::sleep(delay).await;
                if reused {
                    let body = serde_json::json!({"error": "invalid_grant"});
                    return (axum::http::StatusCode::BAD_REQUEST, axum::Json(body));
                }
                let body = serde_json::json!({
                    "access_token": "new-access",
                    "expires_in": 43_199,
                    "refresh_token": format!("rotated-{}", spent.lock().expect("lock").len()),
                    "refresh_token_expires_in": 7_776_000,
                    "token_type": "Bearer",
                });
                (axum::http::StatusCode::OK, axum::Json(body))
            }),
        );
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .expect("binds a free port");
        let addr = listener.local_addr().expect("bound");
        tokio::spawn(async move { axum::serve(listener, app).await });
        url::Url::parse(&format!("http://{addr}/")).expect("url")
    }

    #[tokio::test]
    async fn a_refresh_whose_caller_gave_up_still_keeps_what_the_server_answered() {
        let base = slow_rotating_endpoint(Duration::from_millis(1000)).await;
        let oauth = OAuthClient::new(
            reqwest::Client::new(),
            &base,
            "client".into(),
            SecretString::from("secret"),
            RetryPolicy::default(),
        )
        .expect("client");
        let provider = TokenProvider::new(
            Some(oauth),
            TokenSet {
                refresh_token: Some(SecretString::from("first-refresh")),
                ..Default::default()
            },
        )
        .expect("provider");
        let gave_up =
            tokio::time::timeout(Duration::from_millis(50), provider.access_token()).await;
        assert!(gave_up.is_err(), "the caller stopped waiting");
        // The refresh goes on without it; the next caller waits for it and gets its result.
        let token = provider.access_token().await.expect("token");
        assert_eq!(token.expose_secret(), "new-access");
        let kept = provider
            .snapshot()
            .await
            .refresh_token
            .expect("refresh token");
        assert_eq!(kept.expose_secret(), "rotated-1");
        assert_eq!(provider.refresh_count(), 1, "one grant, not a second one");
    }
}
