//! The token store's file format: a small JSON envelope holding the tokens either in the clear
//! or sealed with XChaCha20-Poly1305 (random 24-byte nonce per write; the file name is the
//! associated data). Pure functions of bytes: the file handling lives in `store.rs`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use chrono::{DateTime, Utc};
use rand::RngCore;
use secrecy::zeroize::{Zeroize, Zeroizing};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::TokenSet;
use super::store::{Result, StoreError, StoredTokens};
use crate::config::TokenStoreConfig;

const FORMAT: &str = "wxcc-token-store";
const VERSION: u32 = 1;
const SEALED: &str = "xchacha20poly1305";
const PLAIN: &str = "none";

/// Why bytes could not be turned back into tokens.
#[derive(Debug)]
pub(super) enum FormatError {
    NeedsKey,
    WrongKey,
    /// A plaintext file while a key is configured: a downgrade, refused.
    PlainWithKey,
    Corrupt(String),
}

fn corrupt(reason: impl std::fmt::Display) -> FormatError {
    FormatError::Corrupt(reason.to_string())
}

/// A 256-bit key for the store; zeroed on drop, never printed.
#[derive(Clone)]
pub struct StoreKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey([REDACTED])")
    }
}

impl StoreKey {
    /// Parses base64 (standard or URL-safe, padding optional) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<StoreKey> {
        let text = text.trim();
        let mut bytes = Zeroizing::new(
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .map_err(|_| StoreError::BadKey {
                    reason: "not base64",
                })?,
        );
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::BadKey {
                reason: "not 32 bytes long",
            })?;
        bytes.zeroize();
        Ok(StoreKey(Zeroizing::new(key)))
    }

    /// `WXCC_TOKEN_KEY` if set, else the contents of `WXCC_TOKEN_KEY_FILE`, else no key.
    pub fn from_config(cfg: &TokenStoreConfig) -> Result<Option<StoreKey>> {
        if let Some(key) = &cfg.key {
            return StoreKey::from_base64(key.expose_secret()).map(Some);
        }
        let Some(path) = &cfg.key_file else {
            return Ok(None);
        };
        let text = Zeroizing::new(
            std::fs::read_to_string(path).map_err(StoreError::io("read the key file", path))?,
        );
        StoreKey::from_base64(&text).map(Some)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&Key::from(*self.0))
    }
}

/// The on-disk envelope; `tokens` (plain) or `nonce` + `ciphertext` (sealed `Wire` JSON).
#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    version: u32,
    encryption: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tokens: Option<Wire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ciphertext: Option<String>,
}

/// Serialized form of [`StoredTokens`]; lives only while (de)serializing and is zeroed on drop.
#[derive(Serialize, Deserialize, Default)]
struct Wire {
    client_id: String,
    org_id: Option<String>,
    access_token: Option<String>,
    access_expires_at: Option<DateTime<Utc>>,
    access_lifetime_secs: Option<u64>,
    refresh_token: Option<String>,
    refresh_expires_at: Option<DateTime<Utc>>,
    scope: Option<String>,
    client_secret: Option<String>,
    generation: u64,
    updated_at: Option<DateTime<Utc>>,
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.access_token.zeroize();
        self.refresh_token.zeroize();
        self.client_secret.zeroize();
    }
}

impl Wire {
    fn from_stored(s: &StoredTokens) -> Wire {
        let expose = |v: &Option<SecretString>| v.as_ref().map(|t| t.expose_secret().to_owned());
        Wire {
            client_id: s.client_id.clone(),
            org_id: s.org_id.clone(),
            access_token: expose(&s.tokens.access_token),
            access_expires_at: s.tokens.expires_at,
            access_lifetime_secs: s.tokens.lifetime.map(|d| d.as_secs()),
            refresh_token: expose(&s.tokens.refresh_token),
            refresh_expires_at: s.tokens.refresh_expires_at,
            scope: s.tokens.scope.clone(),
            client_secret: expose(&s.client_secret),
            generation: s.generation,
            updated_at: s.updated_at,
        }
    }

    fn into_stored(mut self) -> StoredTokens {
        let secret = |v: &mut Option<String>| v.take().map(SecretString::from);
        StoredTokens {
            client_id: std::mem::take(&mut self.client_id),
            org_id: self.org_id.take(),
            tokens: TokenSet {
                access_token: secret(&mut self.access_token),
                expires_at: self.access_expires_at,
                lifetime: self
                    .access_lifetime_secs
                    .map(std::time::Duration::from_secs),
                refresh_token: secret(&mut self.refresh_token),
                refresh_expires_at: self.refresh_expires_at,
                scope: self.scope.take(),
            },
            client_secret: secret(&mut self.client_secret),
            generation: self.generation,
            updated_at: self.updated_at,
        }
    }
}

/// The associated data of a sealed file: format, version and file stem.
pub(super) fn aad(stem: &str) -> String {
    format!("{FORMAT}/{VERSION}/{stem}")
}

fn envelope(bytes: &[u8]) -> Result<Envelope, FormatError> {
    let env: Envelope = serde_json::from_slice(bytes).map_err(corrupt)?;
    if env.format != FORMAT || env.version != VERSION {
        return Err(corrupt(format!(
            "format {:?} version {} is not {FORMAT} {VERSION}",
            env.format, env.version
        )));
    }
    Ok(env)
}

/// Whether the file is sealed (readable without the key).
pub(super) fn is_sealed(bytes: &[u8]) -> Result<bool, FormatError> {
    Ok(envelope(bytes)?.encryption == SEALED)
}

/// Bytes → tokens. A sealed file needs `key`; a plain one is read only without a key (with
/// one it is refused: whoever can write the token directory could otherwise swap the sealed,
/// authenticated file for a plaintext one of their choosing, see [`decode_plain`]).
pub(super) fn decode(
    bytes: &[u8],
    key: Option<&StoreKey>,
    aad: &str,
) -> Result<StoredTokens, FormatError> {
    let mut env = envelope(bytes)?;
    let wire = match env.encryption.as_str() {
        PLAIN if key.is_some() => return Err(FormatError::PlainWithKey),
        PLAIN => env.tokens.take().ok_or_else(|| corrupt("no tokens"))?,
        SEALED => {
            let key = key.ok_or(FormatError::NeedsKey)?;
            let field = |v: &Option<String>, name: &str| {
                v.as_deref()
                    .and_then(|t| STANDARD.decode(t).ok())
                    .ok_or_else(|| corrupt(format!("{name} missing or not base64")))
            };
            let nonce: [u8; 24] = field(&env.nonce, "nonce")?
                .try_into()
                .map_err(|_| corrupt("nonce is not 24 bytes"))?;
            let sealed = field(&env.ciphertext, "ciphertext")?;
            let plain = Zeroizing::new(
                key.cipher()
                    .decrypt(
                        &XNonce::from(nonce),
                        Payload {
                            msg: &sealed,
                            aad: aad.as_bytes(),
                        },
                    )
                    .map_err(|_| FormatError::WrongKey)?,
            );
            serde_json::from_slice(&plain).map_err(corrupt)?
        }
        other => return Err(corrupt(format!("unknown encryption {other:?}"))),
    };
    Ok(wire.into_stored())
}

/// A plaintext file's tokens, whatever key is configured: only for the explicit one-time
/// encryption the user asks for (`wxcc auth encrypt`).
pub(super) fn decode_plain(bytes: &[u8]) -> Result<StoredTokens, FormatError> {
    match envelope(bytes)?.encryption.as_str() {
        PLAIN => decode(bytes, None, ""),
        _ => Err(corrupt("it is already encrypted")),
    }
}

/// Tokens → bytes, sealed when there is a key.
pub(super) fn encode(
    stored: &StoredTokens,
    key: Option<&StoreKey>,
    aad: &str,
) -> Result<Zeroizing<Vec<u8>>, FormatError> {
    let wire = Wire::from_stored(stored);
    let env = match key {
        None => Envelope {
            format: FORMAT.into(),
            version: VERSION,
            encryption: PLAIN.into(),
            tokens: Some(wire),
            nonce: None,
            ciphertext: None,
        },
        Some(key) => {
            let plain = Zeroizing::new(serde_json::to_vec(&wire).map_err(corrupt)?);
            let mut nonce = [0u8; 24];
            rand::rng().fill_bytes(&mut nonce);
            let sealed = key
                .cipher()
                .encrypt(
                    &XNonce::from(nonce),
                    Payload {
                        msg: &plain,
                        aad: aad.as_bytes(),
                    },
                )
                .map_err(|_| corrupt("encryption failed"))?;
            Envelope {
                format: FORMAT.into(),
                version: VERSION,
                encryption: SEALED.into(),
                tokens: None,
                nonce: Some(STANDARD.encode(nonce)),
                ciphertext: Some(STANDARD.encode(sealed)),
            }
        }
    };
    let mut bytes = serde_json::to_vec_pretty(&env).map_err(corrupt)?;
    bytes.push(b'\n');
    Ok(Zeroizing::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_carry_no_plaintext_and_nonces_differ() {
        let key = StoreKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let stored = StoredTokens {
            client_id: "C".into(),
            tokens: TokenSet {
                refresh_token: Some(SecretString::from("sekrit")),
                ..Default::default()
            },
            ..Default::default()
        };
        let a = encode(&stored, Some(&key), "x").unwrap();
        let b = encode(&stored, Some(&key), "x").unwrap();
        assert_ne!(*a, *b);
        assert!(!String::from_utf8_lossy(&a).contains("sekrit"));
        assert!(is_sealed(&a).unwrap());
        assert!(matches!(decode(&a, None, "x"), Err(FormatError::NeedsKey)));
        assert!(matches!(
            decode(&a, Some(&key), "y"),
            Err(FormatError::WrongKey)
        ));
        let back = decode(&a, Some(&key), "x").unwrap();
        assert_eq!(back.tokens.refresh_token.unwrap().expose_secret(), "sekrit");
        assert!(matches!(
            decode(b"{}", None, "x"),
            Err(FormatError::Corrupt(_))
        ));
    }

    #[test]
    fn a_plain_file_is_refused_when_a_key_is_configured() {
        let key = StoreKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let stored = StoredTokens {
            client_id: "C".into(),
            ..Default::default()
        };
        let plain = encode(&stored, None, "x").unwrap();
        assert!(!is_sealed(&plain).unwrap());
        assert!(decode(&plain, None, "x").is_ok());
        assert!(matches!(
            decode(&plain, Some(&key), "x"),
            Err(FormatError::PlainWithKey)
        ));
        assert_eq!(decode_plain(&plain).unwrap().client_id, "C");
        let sealed = encode(&stored, Some(&key), "x").unwrap();
        assert!(matches!(
            decode_plain(&sealed),
            Err(FormatError::Corrupt(_))
        ));
    }
}
