//! Optional protection of customer contact data before it reaches a table: phone numbers and
//! e-mail addresses in `origin`, `destination` and capture `participants` are replaced by a
//! keyed hash (analysts can still join and count them, nobody can read them back) or masked.
//!
//! A keyed hash (HMAC-SHA256 with a secret the customer keeps), not a plain hash: phone numbers
//! are few enough that an unkeyed hash is reversed by trying them all.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// What to do with contact data.
#[derive(Debug, Clone, Default)]
pub enum PiiMode {
    /// Store as received (WxCC already masks customer numbers in capture participants).
    #[default]
    Keep,
    /// Replace with `h:` + 16 hex digits of HMAC-SHA256(key, value).
    Hash(SecretString),
    /// Keep the last four digits of a number, the domain of an address.
    Mask,
}

impl PiiMode {
    /// Applies the mode to one value; values that are neither phone numbers nor addresses
    /// (queue names, chat page URLs, agent ids) pass unchanged.
    pub fn apply(&self, value: &str) -> String {
        let kind = classify(value);
        match (self, kind) {
            (PiiMode::Keep, _) | (_, Kind::Other) => value.to_owned(),
            (PiiMode::Hash(key), _) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret().as_bytes())
                    .expect("HMAC takes keys of any length");
                mac.update(normalise(value).as_bytes());
                let digest = mac.finalize().into_bytes();
                format!("h:{}", &hex::encode(digest)[..16])
            }
            (PiiMode::Mask, Kind::Phone) => {
                let digits: Vec<char> = value.chars().filter(char::is_ascii_digit).collect();
                let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
                format!("***{tail}")
            }
            (PiiMode::Mask, Kind::Email) => match value.rsplit_once('@') {
                Some((_, domain)) => format!("***@{domain}"),
                None => "***".into(),
            },
        }
    }

    pub fn apply_opt(&self, value: &Option<String>) -> Option<String> {
        value.as_deref().map(|v| self.apply(v))
    }

    /// The same protection inside a raw record kept for quarantine: contact fields (`origin`,
    /// `destination`, `participants`) at any depth. Text that is not JSON is withheld whole.
    pub fn apply_to_json(&self, raw: &str) -> String {
        if matches!(self, PiiMode::Keep) {
            return raw.to_owned();
        }
        match serde_json::from_str::<serde_json::Value>(raw) {
            Ok(mut v) => {
                self.walk(&mut v, false);
                v.to_string()
            }
            Err(_) => "[withheld: not JSON, PII protection is on]".into(),
        }
    }

    fn walk(&self, v: &mut serde_json::Value, contact: bool) {
        match v {
            serde_json::Value::String(s) if contact => *s = self.apply(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|i| self.walk(i, contact)),
            serde_json::Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    let is_contact =
                        matches!(k.as_str(), "origin" | "destination" | "participants");
                    self.walk(child, is_contact);
                }
            }
            _ => {}
        }
    }
}

enum Kind {
    Phone,
    Email,
    Other,
}

fn classify(value: &str) -> Kind {
    let v = value.trim();
    if v.contains('@') && !v.contains('/') && !v.contains(' ') {
        return Kind::Email;
    }
    let digits = v.chars().filter(char::is_ascii_digit).count();
    let phone_chars = v
        .chars()
        .all(|c| c.is_ascii_digit() || "+-() *.".contains(c));
    if phone_chars && digits >= 4 {
        Kind::Phone
    } else {
        Kind::Other
    }
}

/// The same number written differently hashes the same: digits (and a leading +) only, or a
/// lowercase address.
fn normalise(value: &str) -> String {
    let v = value.trim();
    if v.contains('@') {
        return v.to_ascii_lowercase();
    }
    v.chars()
        .filter(|c| c.is_ascii_digit() || *c == '+' || *c == '*')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash() -> PiiMode {
        PiiMode::Hash(SecretString::from("customer-secret"))
    }

    #[test]
    fn numbers_and_addresses_are_hashed_consistently() {
        let a = hash().apply("+1 (415) 555-0100");
        assert_eq!(
            a,
            hash().apply("+14155550100"),
            "formatting does not matter"
        );
        assert!(a.starts_with("h:") && a.len() == 18, "{a}");
        assert_ne!(a, hash().apply("+14155550101"));
        assert_eq!(
            hash().apply("Chat.User@Email.com"),
            hash().apply("chat.user@email.com")
        );
        let other_key = PiiMode::Hash(SecretString::from("another"));
        assert_ne!(a, other_key.apply("+14155550100"), "keyed");
    }

    #[test]
    fn other_values_pass_unchanged() {
        for v in [
            "https://example.com/chat",
            "e0c7611b-8035-443a-b7a8-dca9f8b8289b",
            "Sales Queue",
        ] {
            assert_eq!(hash().apply(v), v);
        }
    }

    #[test]
    fn quarantined_records_are_protected_too() {
        let raw = r#"{"id":"t1","attributes":{"origin":"+14155550100","queue":{"name":"Sales"},
            "participants":["+121****1219","agent-1"]}}"#;
        let out = hash().apply_to_json(raw);
        assert!(
            !out.contains("4155550100") && !out.contains("1219"),
            "{out}"
        );
        assert!(
            out.contains("Sales") && out.contains("agent-1") && out.contains("t1"),
            "{out}"
        );
        assert_eq!(PiiMode::Keep.apply_to_json(raw), raw);
    }

    #[test]
    fn masking_keeps_only_what_is_not_identifying() {
        assert_eq!(PiiMode::Mask.apply("+14155550100"), "***0100");
        assert_eq!(PiiMode::Mask.apply("+121****1219"), "***1219");
        assert_eq!(PiiMode::Mask.apply("jane@corp.example"), "***@corp.example");
        assert_eq!(PiiMode::Keep.apply("+14155550100"), "+14155550100");
    }
}
