//! `X-WebexCC-Signature`: lowercase hex HMAC-SHA256 of the raw body with the subscription
//! secret (REFERENCE.md §6.3). Several secrets may be configured during a rotation; the
//! comparison with each is constant-time (`Mac::verify_slice`).

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Why a delivery was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No signature header (401).
    Missing,
    /// A signature that matches no configured secret (403).
    Mismatch,
}

/// Checks `header` (hex, optionally prefixed `sha256=`) against every secret.
pub fn verify(secrets: &[SecretString], header: Option<&str>, body: &[u8]) -> Result<(), Refusal> {
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(Refusal::Missing)?;
    let hex_part = header.strip_prefix("sha256=").unwrap_or(header);
    let Ok(sig) = hex::decode(hex_part) else {
        return Err(Refusal::Mismatch);
    };
    let mut ok = false;
    // Every secret is tried, so the time taken does not say which one matched.
    for secret in secrets {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
            continue;
        };
        mac.update(body);
        ok |= mac.verify_slice(&sig).is_ok();
    }
    if ok { Ok(()) } else { Err(Refusal::Mismatch) }
}

/// Secrets from a comma-separated list (`WXCC_WEBHOOK_SECRET`), blanks dropped.
pub fn parse_secrets(list: &str) -> Vec<SecretString> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| SecretString::from(s.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn any_configured_secret_verifies_during_a_rotation() {
        let secrets =
            parse_secrets(" old-secret-0123456789abcdef0123 , new-secret-0123456789abcdef0123,");
        assert_eq!(secrets.len(), 2);
        let body = br#"{"id":"1"}"#;
        for s in [
            "old-secret-0123456789abcdef0123",
            "new-secret-0123456789abcdef0123",
        ] {
            assert_eq!(verify(&secrets, Some(&sign(s, body)), body), Ok(()));
        }
        let prefixed = format!("sha256={}", sign("new-secret-0123456789abcdef0123", body));
        assert_eq!(verify(&secrets, Some(&prefixed), body), Ok(()));
    }

    #[test]
    fn missing_wrong_or_garbled_signatures_are_refused() {
        let secrets = parse_secrets("right-secret-0123456789abcdef0123");
        let body = b"{}";
        assert_eq!(verify(&secrets, None, body), Err(Refusal::Missing));
        assert_eq!(verify(&secrets, Some(""), body), Err(Refusal::Missing));
        assert_eq!(
            verify(&secrets, Some(&sign("wrong", body)), body),
            Err(Refusal::Mismatch)
        );
        assert_eq!(verify(&secrets, Some("zz"), body), Err(Refusal::Mismatch));
        let good = sign("right-secret-0123456789abcdef0123", body);
        assert_eq!(
            verify(&secrets, Some(&good), b"{ }"),
            Err(Refusal::Mismatch)
        );
    }
}
