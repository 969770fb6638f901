//! Protection of customer contact data before it reaches a table, a quarantined record or a
//! log: with `hash` or `mask`, every non-empty value of a contact field is replaced by a keyed
//! hash (analysts can still join and count, nobody can read it back) or masked, whatever its
//! shape (`+1 (415) 555-0100`, `tel:` and `sip:` URIs, `Name <address>`, extensions, free
//! text) or JSON type (numbers, objects and arrays are transformed value by value).
//!
//! Fail closed: the only values left as they are inside a contact field are empty strings and
//! canonical UUIDs (the CI user ids of agents in capture `participants`, which cannot be
//! contact data). Shape only decides how a value is *normalised* before hashing (so
//! `tel:+14155550100`, `sip:+14155550100@host` and `+1 (415) 555-0100` hash the same) and what
//! `mask` keeps (last four digits of a long number, the domain of an address).
//!
//! A keyed hash (HMAC-SHA256 with a secret the customer keeps), not a plain hash: phone numbers
//! are few enough that an unkeyed hash is reversed by trying them all.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;

/// Keys whose values are customer contact data wherever they appear in a record (matched
/// without regard to case): the task's `origin` (ANI, customer address) and `destination`
/// (DNIS, address contacted), capture `participants`, and the names the API uses for the
/// customer elsewhere (REFERENCE.md §6: `customer{phoneNumber, email, name}`, ANI/DNIS), in
/// case such fields appear in a record that ends up in quarantine.
pub const CONTACT_KEYS: [&str; 9] = [
    "origin",
    "destination",
    "participants",
    "ani",
    "dnis",
    "customer",
    "phoneNumber",
    "email",
    "customerName",
];

/// What to do with contact data.
#[derive(Debug, Clone, Default)]
pub enum PiiMode {
    /// Store as received (WxCC already masks customer numbers in capture participants).
    #[default]
    Keep,
    /// Replace with `h:` + 16 hex digits of HMAC-SHA256(key, normalised value).
    Hash(SecretString),
    /// Keep the last four digits of a long number, the domain of an address; `***` otherwise.
    Mask,
}

impl PiiMode {
    /// Whether values are transformed at all.
    pub fn protects(&self) -> bool {
        !matches!(self, PiiMode::Keep)
    }

    /// Applies the mode to one value of a contact field, whatever its shape.
    pub fn apply(&self, value: &str) -> String {
        let v = value.trim();
        if !self.protects() || v.is_empty() || is_agent_id(v) {
            return value.to_owned();
        }
        if matches!(self, PiiMode::Hash(_)) && is_hash(v) {
            // Already ours (a record quarantined by an earlier run): hashing is idempotent.
            return value.to_owned();
        }
        let contact = Contact::parse(v);
        match self {
            PiiMode::Keep => value.to_owned(),
            PiiMode::Hash(key) => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key.expose_secret().as_bytes())
                    .expect("HMAC takes keys of any length");
                mac.update(contact.canonical().as_bytes());
                let digest = mac.finalize().into_bytes();
                format!("h:{}", &hex::encode(digest)[..16])
            }
            PiiMode::Mask => contact.mask(),
        }
    }

    pub fn apply_opt(&self, value: &Option<String>) -> Option<String> {
        value.as_deref().map(|v| self.apply(v))
    }

    /// The value of a contact field, of any JSON type: strings and numbers are transformed,
    /// arrays and objects element by element (object keys too, unless they read like a field
    /// name such as `uri` or `phoneNumber`); `true`/`false`/`null` stay.
    pub fn apply_to_value(&self, v: &mut Value) {
        if !self.protects() {
            return;
        }
        match v {
            Value::String(s) => *s = self.apply(s),
            Value::Number(n) => *v = Value::String(self.apply(&n.to_string())),
            Value::Array(items) => items.iter_mut().for_each(|i| self.apply_to_value(i)),
            Value::Object(map) => {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, mut child)| {
                        self.apply_to_value(&mut child);
                        let k = if is_field_name(&k) { k } else { self.apply(&k) };
                        (k, child)
                    })
                    .collect();
            }
            Value::Bool(_) | Value::Null => {}
        }
    }

    /// The same protection inside a raw record kept for quarantine: every contact field
    /// ([`CONTACT_KEYS`]) at any depth, whatever its type. Text that is not JSON is withheld
    /// whole.
    pub fn apply_to_json(&self, raw: &str) -> String {
        if !self.protects() {
            return raw.to_owned();
        }
        match serde_json::from_str::<Value>(raw) {
            Ok(mut v) => {
                self.walk(&mut v);
                v.to_string()
            }
            Err(_) => "[withheld: not JSON, PII protection is on]".into(),
        }
    }

    fn walk(&self, v: &mut Value) {
        match v {
            Value::Array(items) => items.iter_mut().for_each(|i| self.walk(i)),
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if is_contact_key(k) {
                        self.apply_to_value(child);
                    } else {
                        self.walk(child);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Whether `key` names a contact field ([`CONTACT_KEYS`], any case).
pub fn is_contact_key(key: &str) -> bool {
    CONTACT_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
}

/// A canonical hyphenated UUID: an agent's CI user id, never a customer's number or address.
fn is_agent_id(v: &str) -> bool {
    v.len() == 36 && v.as_bytes()[8] == b'-' && uuid::Uuid::try_parse(v).is_ok()
}

/// A key like `uri`, `displayName` or `number_2`: a letter, then letters, digits or `_`, at
/// most two digits (a key with more could be a number).
fn is_field_name(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_alphabetic())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && k.chars().filter(char::is_ascii_digit).count() <= 2
}

/// `h:` + 16 lowercase hex digits: what [`PiiMode::Hash`] writes.
fn is_hash(v: &str) -> bool {
    v.len() == 18
        && v.starts_with("h:")
        && v[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What a contact value identifies, once its decoration is removed.
enum Contact {
    /// Digits with `+` and `*` (a masked number keeps its stars).
    Phone(String),
    /// A lowercase `local@domain` (e-mail or SIP address with a non-numeric user).
    Address { local: String, domain: String },
    /// Anything else (a social handle, a chat page URL, free text), trimmed.
    Other(String),
}

/// URI schemes a contact value may carry; what follows `;` or `?` is parameters.
const SCHEMES: [&str; 4] = ["tel", "sip", "sips", "mailto"];

impl Contact {
    fn parse(value: &str) -> Contact {
        let mut s = value.trim();
        // `Jane Doe <jane@corp.example>`, `"Doe, Jane" <sip:+1415…@host>`: the address.
        if s.ends_with('>')
            && let Some(open) = s.rfind('<')
        {
            s = s[open + 1..s.len() - 1].trim();
        }
        if let Some((scheme, rest)) = s.split_once(':')
            && SCHEMES
                .iter()
                .any(|k| k.eq_ignore_ascii_case(scheme.trim()))
        {
            s = rest.split([';', '?']).next().unwrap_or_default().trim();
        }
        if let Some((user, host)) = s.rsplit_once('@') {
            if phone_like(user) {
                return Contact::Phone(digits(user));
            }
            let domain = host.split(':').next().unwrap_or_default();
            return Contact::Address {
                local: user.to_lowercase(),
                domain: domain.to_lowercase(),
            };
        }
        if phone_like(s) {
            Contact::Phone(digits(s))
        } else {
            Contact::Other(s.to_owned())
        }
    }

    /// What is hashed: the same number or address written differently hashes the same.
    fn canonical(&self) -> String {
        match self {
            Contact::Phone(d) => d.clone(),
            Contact::Address { local, domain } => format!("{local}@{domain}"),
            Contact::Other(s) => s.clone(),
        }
    }

    fn mask(&self) -> String {
        match self {
            Contact::Phone(d) => {
                let digits: Vec<char> = d.chars().filter(char::is_ascii_digit).collect();
                if digits.len() >= 7 {
                    let tail: String = digits[digits.len() - 4..].iter().collect();
                    format!("***{tail}")
                } else {
                    "***".into()
                }
            }
            Contact::Address { domain, .. } if !domain.is_empty() => format!("***@{domain}"),
            Contact::Address { .. } | Contact::Other(_) => "***".into(),
        }
    }
}

/// Written like a phone number or extension: at least three digits, and only digits and the
/// punctuation people put in numbers.
fn phone_like(s: &str) -> bool {
    s.chars().filter(char::is_ascii_digit).count() >= 3
        && s.chars()
            .all(|c| c.is_ascii_digit() || "+-() *.#/".contains(c))
}

/// Digits, a leading `+` and the stars of a masked number.
fn digits(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_digit() || *c == '+' || *c == '*')
        .collect()
}

#[cfg(test)]
#[path = "pii_tests.rs"]
mod tests;
