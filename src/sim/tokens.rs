//! The simulated Webex identity service's memory: authorization codes, refresh tokens and access
//! tokens, with the refresh semantics REFERENCE.md §1.4 describes (same refresh token every
//! time; a real refresh at most once per 24 h), or one of its other readings
//! ([`RefreshTokens`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use super::wav::mix64;
use super::{RefreshTokens, SimConfig};

/// Codes are short-lived (RFC 6749 recommends at most 10 minutes).
const CODE_TTL: Duration = Duration::from_secs(300);
/// Refreshing more often than this returns the same values (REFERENCE.md §1.4, S13).
const REAL_REFRESH_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// CI cluster code embedded in token strings (`<opaque>_P0A1_<orgId>`, REFERENCE.md §1.6).
const CLUSTER: &str = "P0A1";
/// Scopes of the refresh token printed at start.
pub const SEEDED_SCOPES: &str = "cjp:config cjp:config_read";
const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// PKCE challenge bound to a code (RFC 7636).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pkce {
    S256(String),
    Plain(String),
}

impl Pkce {
    fn verifies(&self, verifier: &str) -> bool {
        match self {
            Pkce::S256(challenge) => {
                URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == *challenge
            }
            Pkce::Plain(challenge) => verifier == challenge,
        }
    }
}

/// What an authorization code was issued for.
#[derive(Clone, Debug)]
pub struct CodeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub pkce: Option<Pkce>,
}

struct CodeState {
    request: CodeRequest,
    expires_at: Instant,
}

struct RefreshState {
    client_id: String,
    scopes: Vec<String>,
    expires_at: Instant,
    /// When the expiry was last pushed out to the full lifetime.
    last_real_refresh: Instant,
    current_access: Option<String>,
    revoked: bool,
}

struct AccessState {
    client_id: String,
    scopes: Vec<String>,
    issued_at: Instant,
    expires_at: Instant,
}

/// A successful grant, ready to be rendered as the token response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub refresh_token_expires_in: u64,
    pub scope: String,
}

/// Why a grant was refused; rendered as an RFC 6749 §5.2 error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantError {
    pub error: &'static str,
    pub description: &'static str,
}

const BAD_REFRESH: GrantError = GrantError {
    error: "invalid_grant",
    description: "The refresh token provided is expired, revoked, malformed, or invalid.",
};
const BAD_CODE: GrantError = GrantError {
    error: "invalid_grant",
    description: "The authorization code is invalid, expired, already used or was issued to another client or redirect_uri.",
};

/// Access granted to a bearer token.
#[derive(Clone, Debug)]
pub struct AccessGrant {
    pub client_id: String,
    pub scopes: Vec<String>,
}

struct Inner {
    rng: ChaCha8Rng,
    codes: HashMap<String, CodeState>,
    refresh: HashMap<String, RefreshState>,
    access: HashMap<String, AccessState>,
}

pub struct OAuthStore {
    client_id: String,
    client_secret: String,
    org_id: String,
    access_ttl: Duration,
    refresh_ttl: Duration,
    policy: RefreshTokens,
    seeded_refresh: String,
    inner: Mutex<Inner>,
}

/// `now + d`, saturating far in the future instead of overflowing.
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

fn remaining_secs(now: Instant, until: Instant) -> u64 {
    until.saturating_duration_since(now).as_secs()
}

fn random_string(rng: &mut ChaCha8Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(ALPHANUMERIC[rng.random_range(0..ALPHANUMERIC.len())]))
        .collect()
}

impl OAuthStore {
    /// A store with one registered client and one seeded refresh token valid from now.
    pub fn new(config: &SimConfig, client_id: &str, client_secret: &str, org_id: &str) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(mix64(config.seed ^ 0x0a07_4000));
        let seeded_refresh = format!("{}_{CLUSTER}_{org_id}", random_string(&mut rng, 64));
        let now = Instant::now();
        let mut refresh = HashMap::new();
        refresh.insert(
            seeded_refresh.clone(),
            RefreshState {
                client_id: client_id.to_string(),
                scopes: SEEDED_SCOPES.split(' ').map(str::to_string).collect(),
                expires_at: later(now, config.refresh_token_ttl),
                last_real_refresh: now,
                current_access: None,
                revoked: false,
            },
        );
        OAuthStore {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            org_id: org_id.to_string(),
            access_ttl: config.access_token_ttl,
            refresh_ttl: config.refresh_token_ttl,
            policy: config.refresh_tokens,
            seeded_refresh,
            inner: Mutex::new(Inner {
                rng,
                codes: HashMap::new(),
                refresh,
                access: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn seeded_refresh_token(&self) -> &str {
        &self.seeded_refresh
    }

    pub fn is_registered(&self, client_id: &str) -> bool {
        client_id == self.client_id
    }

    /// Client authentication (id and secret both right).
    pub fn authenticates(&self, client_id: &str, client_secret: &str) -> bool {
        client_id == self.client_id && client_secret == self.client_secret
    }

    /// Issues a single-use code valid for 5 minutes.
    pub fn issue_code(&self, request: CodeRequest, now: Instant) -> String {
        let mut inner = self.lock();
        let code = random_string(&mut inner.rng, 48);
        inner.codes.insert(
            code.clone(),
            CodeState {
                request,
                expires_at: later(now, CODE_TTL),
            },
        );
        code
    }

    /// `grant_type=authorization_code`: the code is consumed whatever the outcome.
    pub fn redeem_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
        now: Instant,
    ) -> Result<Issued, GrantError> {
        let mut inner = self.lock();
        let state = inner.codes.remove(code).ok_or(BAD_CODE)?;
        let req = &state.request;
        if now >= state.expires_at || req.client_id != client_id || req.redirect_uri != redirect_uri
        {
            return Err(BAD_CODE);
        }
        if let Some(pkce) = &req.pkce {
            let ok = verifier.is_some_and(|v| pkce.verifies(v));
            if !ok {
                return Err(GrantError {
                    error: "invalid_grant",
                    description: "PKCE verification failed: code_verifier missing or does not match code_challenge.",
                });
            }
        }
        let refresh_token = format!(
            "{}_{CLUSTER}_{}",
            random_string(&mut inner.rng, 64),
            self.org_id
        );
        let access_token = self.mint_access(&mut inner, client_id, &req.scopes, now);
        let scope = req.scopes.join(" ");
        inner.refresh.insert(
            refresh_token.clone(),
            RefreshState {
                client_id: client_id.to_string(),
                scopes: req.scopes.clone(),
                expires_at: later(now, self.refresh_ttl),
                last_real_refresh: now,
                current_access: Some(access_token.clone()),
                revoked: false,
            },
        );
        Ok(Issued {
            access_token,
            expires_in: self.access_ttl.as_secs(),
            refresh_token,
            refresh_token_expires_in: self.refresh_ttl.as_secs(),
            scope,
        })
    }

    /// `grant_type=refresh_token`: same refresh token back; same access token while it is valid
    /// and younger than 24 h; refresh-token expiry reset once its last real refresh is > 24 h old.
    /// [`RefreshTokens::Rotate`] answers with a new refresh token every time and forgets the
    /// old one; [`RefreshTokens::NeverReset`] never pushes the expiry out.
    pub fn refresh(
        &self,
        refresh_token: &str,
        client_id: &str,
        now: Instant,
    ) -> Result<Issued, GrantError> {
        let mut inner = self.lock();
        let state = inner.refresh.get(refresh_token).ok_or(BAD_REFRESH)?;
        if state.revoked || now >= state.expires_at || state.client_id != client_id {
            return Err(BAD_REFRESH);
        }
        let scopes = state.scopes.clone();
        let reusable = state.current_access.clone().filter(|token| {
            inner.access.get(token).is_some_and(|a| {
                now < a.expires_at
                    && now.saturating_duration_since(a.issued_at) < REAL_REFRESH_INTERVAL
            })
        });
        let (access_token, expires_in) = match reusable {
            Some(token) => {
                let left = inner
                    .access
                    .get(&token)
                    .map_or(0, |a| remaining_secs(now, a.expires_at));
                (token, left)
            }
            None => (
                self.mint_access(&mut inner, client_id, &scopes, now),
                self.access_ttl.as_secs(),
            ),
        };
        let refresh_token = match self.policy {
            RefreshTokens::Rotate => {
                let state = inner.refresh.remove(refresh_token).ok_or(BAD_REFRESH)?;
                let rotated = format!(
                    "{}_{CLUSTER}_{}",
                    random_string(&mut inner.rng, 64),
                    self.org_id
                );
                inner.refresh.insert(rotated.clone(), state);
                rotated
            }
            RefreshTokens::Same | RefreshTokens::NeverReset => refresh_token.to_string(),
        };
        let (refresh_ttl, resets) = (self.refresh_ttl, self.policy != RefreshTokens::NeverReset);
        let state = inner.refresh.get_mut(&refresh_token).ok_or(BAD_REFRESH)?;
        if resets && now.saturating_duration_since(state.last_real_refresh) > REAL_REFRESH_INTERVAL
        {
            state.expires_at = later(now, refresh_ttl);
            state.last_real_refresh = now;
        }
        state.current_access = Some(access_token.clone());
        Ok(Issued {
            access_token,
            expires_in,
            refresh_token_expires_in: remaining_secs(now, state.expires_at),
            refresh_token,
            scope: scopes.join(" "),
        })
    }

    fn mint_access(
        &self,
        inner: &mut Inner,
        client_id: &str,
        scopes: &[String],
        now: Instant,
    ) -> String {
        let token = format!(
            "{}_{CLUSTER}_{}",
            random_string(&mut inner.rng, 64),
            self.org_id
        );
        inner.access.insert(
            token.clone(),
            AccessState {
                client_id: client_id.to_string(),
                scopes: scopes.to_vec(),
                issued_at: now,
                expires_at: later(now, self.access_ttl),
            },
        );
        token
    }

    /// The grant behind a bearer token, if it is known and not expired.
    pub fn check_access(&self, token: &str) -> Option<AccessGrant> {
        let now = Instant::now();
        let inner = self.lock();
        inner
            .access
            .get(token)
            .filter(|a| now < a.expires_at)
            .map(|a| AccessGrant {
                client_id: a.client_id.clone(),
                scopes: a.scopes.clone(),
            })
    }

    pub fn revoke_refresh_token(&self, token: &str) {
        if let Some(state) = self.lock().refresh.get_mut(token) {
            state.revoked = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(access_secs: u64) -> OAuthStore {
        store_with(access_secs, RefreshTokens::Same)
    }

    fn store_with(access_secs: u64, refresh_tokens: RefreshTokens) -> OAuthStore {
        let cfg = SimConfig {
            access_token_ttl: Duration::from_secs(access_secs),
            refresh_tokens,
            ..SimConfig::default()
        };
        OAuthStore::new(&cfg, "Cclient", "secret", "org-1")
    }

    #[test]
    fn a_rotating_server_answers_each_refresh_with_a_new_token_and_forgets_the_old_one() {
        let s = store_with(10, RefreshTokens::Rotate);
        let first = s.seeded_refresh_token().to_string();
        let t0 = Instant::now();
        let one = s.refresh(&first, "Cclient", t0).expect("refresh");
        assert_ne!(one.refresh_token, first);
        assert!(one.refresh_token.ends_with("_P0A1_org-1"));
        assert_eq!(
            s.refresh(&first, "Cclient", t0),
            Err(BAD_REFRESH),
            "old one dead"
        );
        let two = s
            .refresh(&one.refresh_token, "Cclient", t0 + Duration::from_secs(1))
            .expect("the new one works");
        assert_ne!(two.refresh_token, one.refresh_token);
        assert_eq!(two.access_token, one.access_token, "still the 24 h rule");
        assert!(two.refresh_token_expires_in <= one.refresh_token_expires_in);
    }

    #[test]
    fn a_never_resetting_server_lets_the_refresh_token_run_out_however_often_it_is_used() {
        let s = store_with(1_209_599, RefreshTokens::NeverReset);
        let rt = s.seeded_refresh_token().to_string();
        let t0 = Instant::now();
        let day_later = t0 + Duration::from_secs(25 * 3600);
        let issued = s.refresh(&rt, "Cclient", day_later).expect("refresh");
        assert_eq!(issued.refresh_token, rt);
        // Counted from the store's creation, a moment before `t0`.
        let left = issued.refresh_token_expires_in;
        assert!(
            (7_776_000 - 25 * 3600 - 1..=7_776_000 - 25 * 3600).contains(&left),
            "{left}"
        );
        let past = t0 + Duration::from_secs(7_776_000 + 1);
        assert_eq!(s.refresh(&rt, "Cclient", past), Err(BAD_REFRESH));
    }

    #[test]
    fn refresh_within_a_day_returns_same_tokens_with_decreasing_lifetimes() {
        let s = store(43_199);
        let rt = s.seeded_refresh_token().to_string();
        let t0 = Instant::now();
        let first = s.refresh(&rt, "Cclient", t0).expect("first refresh");
        assert_eq!(first.refresh_token, rt);
        assert!(first.access_token.ends_with("_P0A1_org-1"));
        assert_eq!(first.expires_in, 43_199);
        let second = s
            .refresh(&rt, "Cclient", t0 + Duration::from_secs(20))
            .expect("second refresh");
        assert_eq!(second.access_token, first.access_token);
        assert_eq!(second.expires_in, 43_179);
        assert!(second.refresh_token_expires_in < first.refresh_token_expires_in);
    }

    #[test]
    fn refresh_after_access_expiry_mints_new_access_token() {
        let s = store(10);
        let rt = s.seeded_refresh_token().to_string();
        let t0 = Instant::now();
        let first = s.refresh(&rt, "Cclient", t0).expect("refresh");
        let later_one = s
            .refresh(&rt, "Cclient", t0 + Duration::from_secs(11))
            .expect("refresh");
        assert_ne!(first.access_token, later_one.access_token);
        assert_eq!(later_one.expires_in, 10);
        assert_eq!(later_one.refresh_token, rt);
    }

    #[test]
    fn refresh_after_a_day_resets_refresh_token_lifetime() {
        let s = store(1_209_599);
        let rt = s.seeded_refresh_token().to_string();
        let t0 = Instant::now();
        let day_later = t0 + Duration::from_secs(25 * 3600);
        let issued = s.refresh(&rt, "Cclient", day_later).expect("refresh");
        assert_eq!(issued.refresh_token_expires_in, 7_776_000);
        assert_ne!(issued.expires_in, 0);
    }

    #[test]
    fn revoked_or_unknown_refresh_token_is_invalid_grant() {
        let s = store(100);
        let rt = s.seeded_refresh_token().to_string();
        assert_eq!(
            s.refresh("nope", "Cclient", Instant::now()),
            Err(BAD_REFRESH)
        );
        s.revoke_refresh_token(&rt);
        assert_eq!(s.refresh(&rt, "Cclient", Instant::now()), Err(BAD_REFRESH));
    }

    #[test]
    fn code_is_single_use_and_bound_to_redirect_uri_and_pkce() {
        let s = store(100);
        let now = Instant::now();
        let verifier = "a".repeat(50);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let req = CodeRequest {
            client_id: "Cclient".into(),
            redirect_uri: "http://127.0.0.1:1/cb".into(),
            scopes: vec!["cjp:config_read".into()],
            pkce: Some(Pkce::S256(challenge)),
        };
        let code = s.issue_code(req.clone(), now);
        assert!(
            s.redeem_code(
                &code,
                "Cclient",
                "http://127.0.0.1:1/cb",
                Some("wrong"),
                now
            )
            .is_err()
        );
        let code = s.issue_code(req.clone(), now);
        assert!(
            s.redeem_code(
                &code,
                "Cclient",
                "http://127.0.0.1:2/cb",
                Some(&verifier),
                now
            )
            .is_err()
        );
        let code = s.issue_code(req, now);
        let issued = s.redeem_code(
            &code,
            "Cclient",
            "http://127.0.0.1:1/cb",
            Some(&verifier),
            now,
        );
        assert_eq!(issued.map(|i| i.scope), Ok("cjp:config_read".to_string()));
        assert_eq!(
            s.redeem_code(
                &code,
                "Cclient",
                "http://127.0.0.1:1/cb",
                Some(&verifier),
                now
            ),
            Err(BAD_CODE)
        );
    }
}
