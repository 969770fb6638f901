//! The refreshing access-token provider every API call goes through.
//!
//! Within a process, refresh is single-flight (a `tokio` mutex). Across processes, a provider
//! bound to a [`TokenStore`] refreshes only while holding the store's file lock, re-reads the
//! file first (another process may have refreshed while it waited) and persists whatever the
//! token endpoint returned before releasing the lock.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use super::store::{StoreKey, StoredTokens, TokenStore};
use super::{AuthError, OAuthClient, Result, TokenSet};
use crate::config::{AuthConfig, Config};
use crate::net::RetryPolicy;

/// Hands out valid access tokens, refreshing them ahead of expiry and after a 401.
pub struct TokenProvider {
    oauth: Option<OAuthClient>,
    store: Option<TokenStore>,
    current: Mutex<Current>,
    refreshes: AtomicU64,
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
            current: Mutex::new(Current {
                tokens: initial,
                generation: 0,
            }),
            refreshes: AtomicU64::new(0),
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
            current: Mutex::new(Current {
                tokens,
                generation: stored.generation,
            }),
            refreshes: AtomicU64::new(0),
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
        let mut current = self.current.lock().await;
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
        self.refresh_locked(&mut current, None).await
    }

    /// Called after the API answered 401 for `rejected`. Refreshes once; if another task (or,
    /// through the store, another process) already replaced that token, returns the
    /// replacement without a second refresh.
    pub async fn after_unauthorized(&self, rejected: &SecretString) -> Result<SecretString> {
        let mut current = self.current.lock().await;
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
        self.refresh_locked(&mut current, Some(rejected)).await
    }

    /// Refreshes now, whatever the expiry (`wxcc auth refresh`), and persists the result; if
    /// another process refreshed while this one waited for the store lock, its result is taken
    /// instead.
    pub async fn force_refresh(&self) -> Result<TokenSet> {
        let mut current = self.current.lock().await;
        if self.oauth.is_none() || current.tokens.refresh_token.is_none() {
            return Err(AuthError::ReauthorizationRequired {
                reason: "there is no refresh token to refresh with".into(),
            });
        }
        self.refresh_locked(&mut current, None).await?;
        Ok(current.tokens.clone())
    }

    /// A copy of the current token set.
    pub async fn snapshot(&self) -> TokenSet {
        self.current.lock().await.tokens.clone()
    }

    /// The refresh itself. With a store: under its lock, adopt what another process wrote
    /// since we last looked if it is usable; otherwise refresh and persist before unlocking.
    async fn refresh_locked(
        &self,
        current: &mut Current,
        rejected: Option<&SecretString>,
    ) -> Result<SecretString> {
        let Some(oauth) = &self.oauth else {
            return Err(AuthError::Missing("nothing to refresh with".into()));
        };
        let Some(store) = &self.store else {
            return self.refresh_with(oauth, current).await;
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
            if let Some(token) = usable(&current.tokens, rejected) {
                tracing::debug!("another wxcc process refreshed the token; using its result");
                return Ok(token);
            }
        }
        let token = self.refresh_with(oauth, current).await?;
        let mut out = disk;
        out.tokens = current.tokens.clone();
        store.write(&lock, &mut out)?;
        current.generation = out.generation;
        drop(lock);
        Ok(token)
    }

    async fn refresh_with(
        &self,
        oauth: &OAuthClient,
        current: &mut Current,
    ) -> Result<SecretString> {
        let Some(refresh) = &current.tokens.refresh_token else {
            return Err(AuthError::Missing("nothing to refresh with".into()));
        };
        let fresh = oauth.refresh(refresh).await?;
        self.refreshes.fetch_add(1, Ordering::Relaxed);
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
