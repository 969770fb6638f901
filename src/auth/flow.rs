//! The authorization-code flow's pure parts (REFERENCE.md §1.1, §1.7): scopes, the authorize
//! URL with `state` and a PKCE S256 challenge, and reading the redirect back.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use url::Url;

use super::{AuthError, Result};

/// What wxcc asks for by default: captures need `cjp:config_read`, and it covers tasks too.
pub const DEFAULT_SCOPES: &[&str] = &["cjp:config_read"];

/// Scopes that do not help with WxCC captures (Webex Calling/Meetings recordings, messaging
/// encryption keys): asking for them only widens what a leaked token can do.
const NOT_FOR_CAPTURES: &[&str] = &[
    "spark-admin:recordings_read",
    "spark-admin:recordings_write",
    "spark:recordings_read",
    "spark:recordings_write",
    "spark-compliance:recordings_read",
    "spark-compliance:recordings_write",
    "spark:kms",
];
/// Scopes that allow changes; wxcc never writes.
pub const WRITE_SCOPES: &[&str] = &["cjp:config_write", "cjp:user"];

/// Splits a `--scopes` value on spaces and commas; empty means the defaults.
pub fn parse_scopes(value: Option<&str>) -> Vec<String> {
    let scopes: Vec<String> = value
        .unwrap_or_default()
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect()
    } else {
        scopes
    }
}

/// Warnings about a scope list: scopes that do not apply to WxCC captures, write scopes, and a
/// missing `cjp:config_read`.
pub fn scope_warnings(scopes: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for s in scopes {
        if NOT_FOR_CAPTURES.contains(&s.as_str()) {
            out.push(format!(
                "scope {s} does not apply to Webex Contact Center captures (it is for Webex \
                 Calling/Meetings or messaging); wxcc does not need it"
            ));
        } else if WRITE_SCOPES.contains(&s.as_str()) {
            out.push(format!(
                "scope {s} allows changes; wxcc never writes, so do not grant it"
            ));
        }
    }
    if !scopes.iter().any(|s| s == "cjp:config_read") {
        out.push(
            "scope cjp:config_read is missing: the captures API requires it (cjp:config alone \
             covers only the tasks list)"
                .to_owned(),
        );
    }
    out
}

/// Which of the APIs wxcc calls a granted scope string allows: `(tasks, captures)`.
pub fn scope_coverage(granted: &str) -> (bool, bool) {
    let has = |s: &str| granted.split_whitespace().any(|g| g == s);
    let captures = has("cjp:config_read");
    (captures || has("cjp:config"), captures)
}

/// One authorization attempt: the URL to open and what is needed to finish it.
pub struct AuthorizationRequest {
    pub url: Url,
    pub redirect_uri: Url,
    pub state: SecretString,
    pub verifier: SecretString,
}

impl std::fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("redirect_uri", &self.redirect_uri.as_str())
            .finish_non_exhaustive()
    }
}

/// 32 random bytes, base64url without padding (43 characters: a valid PKCE verifier).
fn random_token() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
}

/// `base64url(sha256(verifier))` (RFC 7636 S256).
pub fn pkce_challenge(verifier: &SecretString) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose_secret().as_bytes()))
}

/// `{oauth_base}/v1/authorize?response_type=code&client_id…&redirect_uri…&scope…&state…`
/// with a fresh random `state` and PKCE S256 challenge.
pub fn authorization_request(
    oauth_base: &Url,
    client_id: &str,
    redirect_uri: &Url,
    scopes: &[String],
) -> Result<AuthorizationRequest> {
    let mut url = oauth_base
        .join("v1/authorize")
        .map_err(|e| AuthError::Missing(format!("bad OAuth base URL: {e}")))?;
    let state = random_token();
    let verifier = random_token();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri.as_str())
        .append_pair("scope", &scopes.join(" "))
        .append_pair("state", state.expose_secret())
        .append_pair("code_challenge", &pkce_challenge(&verifier))
        .append_pair("code_challenge_method", "S256");
    Ok(AuthorizationRequest {
        url,
        redirect_uri: redirect_uri.clone(),
        state,
        verifier,
    })
}

/// The code from a redirect's query string, after checking `state` and `error`.
pub fn code_from_query(query: &str, expected_state: &SecretString) -> Result<SecretString> {
    let mut code = None;
    let mut state = None;
    let mut error = None;
    let mut description = None;
    for (k, v) in url::form_urlencoded::parse(query.trim_start_matches('?').as_bytes()) {
        match k.as_ref() {
            "code" => code = Some(SecretString::from(v.into_owned())),
            "state" => state = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            "error_description" => description = Some(v.into_owned()),
            _ => {}
        }
    }
    if state.as_deref() != Some(expected_state.expose_secret()) {
        return Err(AuthError::StateMismatch);
    }
    if let Some(error) = error {
        return Err(AuthError::Denied { error, description });
    }
    code.filter(|c| !c.expose_secret().is_empty())
        .ok_or_else(|| AuthError::Login("the redirect carries neither a code nor an error".into()))
}

/// What the user pasted: the full redirect URL (state checked), its query string, or the bare
/// code (state cannot be checked; the PKCE verifier still binds the code to this login).
pub fn code_from_paste(input: &str, expected_state: &SecretString) -> Result<SecretString> {
    let input = input.trim();
    if input.is_empty() {
        return Err(AuthError::Login("nothing was pasted".into()));
    }
    if let Ok(url) = Url::parse(input) {
        return code_from_query(url.query().unwrap_or_default(), expected_state);
    }
    if input.contains('=') {
        let query = input.rsplit_once('?').map_or(input, |(_, q)| q);
        return code_from_query(query, expected_state);
    }
    if input
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
    {
        return Ok(SecretString::from(input.to_owned()));
    }
    Err(AuthError::Login(
        "that is neither the redirect URL nor an authorization code".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> AuthorizationRequest {
        authorization_request(
            &Url::parse("https://webexapis.com").unwrap(),
            "Cabc",
            &Url::parse("http://127.0.0.1:8765/callback").unwrap(),
            &parse_scopes(None),
        )
        .unwrap()
    }

    #[test]
    fn authorize_url_carries_every_documented_parameter() {
        let r = req();
        assert_eq!(r.url.path(), "/v1/authorize");
        let q: std::collections::HashMap<String, String> =
            r.url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "Cabc");
        assert_eq!(q["redirect_uri"], "http://127.0.0.1:8765/callback");
        assert_eq!(q["scope"], "cjp:config_read");
        assert_eq!(q["state"], r.state.expose_secret());
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], pkce_challenge(&r.verifier));
        assert_eq!(r.verifier.expose_secret().len(), 43);
        assert_ne!(req().state.expose_secret(), r.state.expose_secret());
        assert!(!format!("{r:?}").contains(r.verifier.expose_secret()));
    }

    #[test]
    fn scopes_default_to_read_only_and_odd_ones_are_named() {
        assert_eq!(parse_scopes(Some(" ")), ["cjp:config_read"]);
        let s = parse_scopes(Some("cjp:config_read,spark:kms cjp:config_write"));
        assert_eq!(s.len(), 3);
        let w = scope_warnings(&s).join("\n");
        assert!(
            w.contains("spark:kms") && w.contains("cjp:config_write"),
            "{w}"
        );
        assert!(scope_warnings(&parse_scopes(None)).is_empty());
        assert!(scope_warnings(&parse_scopes(Some("cjp:config")))[0].contains("missing"));
        assert_eq!(scope_coverage("cjp:config"), (true, false));
        assert_eq!(scope_coverage("cjp:config cjp:config_read"), (true, true));
    }

    #[test]
    fn redirect_is_checked_for_state_and_error() {
        let state = SecretString::from("s1".to_owned());
        let ok = code_from_paste("https://x.example/cb?code=abc&state=s1", &state).unwrap();
        assert_eq!(ok.expose_secret(), "abc");
        assert!(matches!(
            code_from_paste("https://x.example/cb?code=abc&state=s2", &state),
            Err(AuthError::StateMismatch)
        ));
        assert!(matches!(
            code_from_paste("https://x.example/cb?code=abc", &state),
            Err(AuthError::StateMismatch)
        ));
        let denied = code_from_query(
            "error=access_denied&error_description=user+said+no&state=s1",
            &state,
        )
        .unwrap_err()
        .to_string();
        assert!(
            denied.contains("access_denied") && denied.contains("user said no"),
            "{denied}"
        );
        assert_eq!(
            code_from_paste("  bare-code_1 \n", &state)
                .unwrap()
                .expose_secret(),
            "bare-code_1"
        );
        assert!(code_from_paste("what is this?", &state).is_err());
    }
}
