//! Typed configuration: `wxcc.toml`, then `WXCC_*` environment variables, then flags.
//!
//! The file and the environment are read once at the binary's edge (`cli`) and turned into a
//! plain [`Config`] that is passed down by reference; nothing deeper reads the environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::audio::Derivative;

/// Where the OAuth endpoints live for every Webex data centre.
pub const DEFAULT_OAUTH_BASE_URL: &str = "https://webexapis.com";
/// Where the output goes when nothing else is configured.
pub const DEFAULT_OUTPUT: &str = "./wxcc-data";
/// Redirect URI of `wxcc auth login` when none is configured: register exactly this in the
/// Integration (Webex compares redirect URIs literally).
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8765/callback";
/// The documented per-client limit of the WxCC API.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 300;

/// WxCC data-centre regions and their API hosts (REFERENCE.md §2).
pub const REGIONS: &[(&str, &str)] = &[
    ("us1", "https://api.wxcc-us1.cisco.com"),
    ("eu1", "https://api.wxcc-eu1.cisco.com"),
    ("eu2", "https://api.wxcc-eu2.cisco.com"),
    ("anz1", "https://api.wxcc-anz1.cisco.com"),
    ("ca1", "https://api.wxcc-ca1.cisco.com"),
    ("jp1", "https://api.wxcc-jp1.cisco.com"),
    ("sg1", "https://api.wxcc-sg1.cisco.com"),
    ("in1", "https://api.wxcc-in1.cisco.com"),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("unknown region {0:?}: use one of {known} or set WXCC_API_BASE_URL", known = region_names())]
    UnknownRegion(String),
    #[error("{name} is not a valid URL ({value:?}): {reason}")]
    BadUrl {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("no WxCC API host configured: set WXCC_REGION (e.g. us1) or WXCC_API_BASE_URL")]
    MissingApiBase,
    #[error(
        "bad {name} {value:?}: expected a date YYYY-MM-DD (UTC midnight) or an RFC 3339 time such as 2026-01-05T10:00:00Z"
    )]
    BadTime { name: &'static str, value: String },
    #[error(
        "org {0} has no token of its own, but several orgs are configured: a WXCC_REFRESH_TOKEN or \
         WXCC_ACCESS_TOKEN would be sent to every org. Give each [[orgs]] entry its token, or run \
         `wxcc auth login` once per org"
    )]
    SharedToken(String),
    #[error("org {0} is not among the [[orgs]] of the configuration file (it lists {1})")]
    UnknownOrg(String, String),
    #[error(
        "the configuration file sets a top-level org_id next to [[orgs]] entries, which would \
         pick that one org for every run: remove it, and choose an org per run with --org-id or \
         WXCC_ORG_ID"
    )]
    OrgBesideOrgs,
    #[error(
        "org {0} appears twice among the [[orgs]] of the configuration file (org ids are \
         compared without case): keep one entry"
    )]
    DuplicateOrg(String),
    #[error("org_id {0:?} is not a plain id (letters, digits and '-'): check the configuration")]
    BadOrgId(String),
    #[error(
        "pii = \"hash\" needs a key: set WXCC_PII_KEY to a secret of at least 16 characters and keep it (the same key gives the same hashes)"
    )]
    PiiKey,
    #[error("{name} = {value:?}: {reason}")]
    BadStorageOption {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("unknown pii setting {0:?}: use keep, hash or mask")]
    BadPii(String),
    #[error(
        "unknown derivative {0:?}: use mono16k (16 kHz mono mix), channels (one 16 kHz file per \
         channel) or none, comma-separated"
    )]
    BadDerive(String),
    #[error(
        "scratch_dir {0:?} is not a directory: create it (on a disk with room for the \
         derivatives in flight) or unset it to use $TMPDIR"
    )]
    BadScratchDir(PathBuf),
    #[error("--to needs --from: give the start of the range to backfill")]
    MissingFrom,
    #[error("--from ({from}) must be before --to ({to})")]
    EmptyRange {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    #[error(
        "--from ({from}) is before {EARLIEST_FROM}-01-01: Webex Contact Center holds nothing that \
         old, and the run would list every day since. Check the year"
    )]
    AncientFrom { from: DateTime<Utc> },
    #[error(
        "--to ({to}) is more than {LATEST_TO_DAYS} days after now ({now}): nothing is created in \
         the future, and the run would list every day until then. Check the year, or leave --to \
         out (= now)"
    )]
    FarFutureTo {
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error(
        "cannot tell where to keep tokens: set WXCC_TOKEN_DIR (neither XDG_CONFIG_HOME nor HOME is set)"
    )]
    NoTokenDir,
    #[error("{name} must be {rule}, got {value}")]
    OutOfRange {
        name: &'static str,
        rule: &'static str,
        value: i64,
    },
}

pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

fn region_names() -> String {
    REGIONS
        .iter()
        .map(|(r, _)| *r)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `wxcc.toml` file. Every field is optional; unknown keys are an error so typos are caught.
/// `Debug` is redacted (see [`redacted_debug`]).
#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub region: Option<String>,
    pub api_base_url: Option<String>,
    pub oauth_base_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub org_id: Option<String>,
    pub refresh_token: Option<String>,
    pub access_token: Option<String>,
    pub output: Option<String>,
    /// Directory of the token store (`wxcc auth login`).
    pub token_dir: Option<String>,
    /// File holding the token-store encryption key (base64 of 32 bytes).
    pub token_key_file: Option<String>,
    /// Redirect URI registered for the Integration.
    pub redirect_uri: Option<String>,
    #[serde(default)]
    pub sync: SyncFileConfig,
    /// Several organizations (and regions) synced by one run, each with its own state and token.
    #[serde(default)]
    pub orgs: Vec<OrgFileConfig>,
    /// object_store options for the output store, e.g. `aws_server_side_encryption = "aws:kms"`,
    /// `aws_sse_kms_key_id`, `aws_endpoint`, `google_service_account`,
    /// `azure_storage_account_name`. Applied over each cloud's standard environment variables.
    /// Also wxcc's own `shared = true` and `file_mode = "0640"` (see [`StorageConfig`]).
    #[serde(default, deserialize_with = "scalar_map")]
    pub storage: std::collections::BTreeMap<String, String>,
    /// `wxcc listen` settings (`[listen]`).
    #[serde(default)]
    pub listen: ListenFileConfig,
}

/// The `[listen]` table: `webhook_secret` (comma-separated during a rotation), overridden by
/// `WXCC_WEBHOOK_SECRET`.
#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenFileConfig {
    pub webhook_secret: Option<secrecy::SecretString>,
}

/// One `[[orgs]]` entry: its values override the top-level ones for that org.
#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgFileConfig {
    pub org_id: String,
    pub region: Option<String>,
    pub api_base_url: Option<String>,
    pub oauth_base_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub refresh_token: Option<String>,
    pub access_token: Option<String>,
}

/// `[sync]` table of `wxcc.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncFileConfig {
    pub rate_limit_per_minute: Option<u32>,
    pub download_concurrency: Option<usize>,
    pub url_expiration_minutes: Option<u32>,
    pub lookback_hours: Option<u32>,
    pub initial_days: Option<u32>,
    /// `keep` (default), `hash` (keyed, needs WXCC_PII_KEY) or `mask`.
    pub pii: Option<String>,
    /// ML-ready derivatives written beside each recording: `mono16k`, `channels`.
    pub derive: Option<Vec<String>>,
    /// Where derivatives are made before upload (default `$TMPDIR`).
    pub scratch_dir: Option<String>,
    /// The settle check: hours after its creation when a voice task is asked about once more.
    pub settle_hours: Option<u32>,
    /// Days a task waits for its first recording before it is no longer asked about.
    pub give_up_days: Option<u32>,
    /// Commit every this many recordings...
    pub commit_every_recordings: Option<usize>,
    /// ...or every this many seconds.
    pub commit_every_secs: Option<u64>,
    /// Tasks listed and processed at a time within a busy day (memory follows this).
    pub tasks_per_part: Option<usize>,
    /// Retries of one failing request (429, 5xx, a dropped connection) before it counts as
    /// failed (a task listing then narrows its span, a captures batch splits).
    pub max_retries: Option<u32>,
    /// Longest wait between two retries of one request, in seconds (waits grow from 0.5 s,
    /// with jitter; a `Retry-After` is honoured whatever this says).
    pub retry_max_delay_secs: Option<u64>,
}

impl FileConfig {
    /// Reads `path`; a missing file is only an error when the user named it explicitly.
    pub fn load(path: &Path, explicit: bool) -> Result<FileConfig> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let file = FileConfig::parse(&text).map_err(|message| ConfigError::Parse {
                    path: path.to_owned(),
                    message,
                })?;
                warn_if_readable_by_others(path, &file);
                Ok(file)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok(FileConfig::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    fn holds_secrets(&self) -> bool {
        let own = [&self.client_secret, &self.refresh_token, &self.access_token];
        own.iter().any(|s| s.is_some())
            || self.orgs.iter().any(|o| {
                [&o.client_secret, &o.refresh_token, &o.access_token]
                    .iter()
                    .any(|s| s.is_some())
            })
    }

    /// Parse errors name the line and column and what was wrong, never the text there: the
    /// offending line may hold a client secret or token.
    pub fn parse(text: &str) -> std::result::Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| {
            let position = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                format!("line {line}, column {column}: ")
            });
            format!(
                "{}{}",
                position.unwrap_or_default(),
                without_quotes(e.message())
            )
        })
    }
}

/// `Debug` for the structs that hold secrets as plain strings: the secret fields print as
/// `Some("[redacted]")`, so a `{:?}` in a log or panic cannot leak them.
macro_rules! redacted_debug {
    ($ty:ty { $($field:ident),* } secret { $($secret:ident),* }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))*
                    $(.field(stringify!($secret), &self.$secret.as_ref().map(|_| "[redacted]")))*
                    .finish_non_exhaustive()
            }
        }
    };
}

redacted_debug!(FileConfig {
    region, api_base_url, oauth_base_url, client_id, org_id, output, token_dir, redirect_uri
} secret { client_secret, refresh_token, access_token });
redacted_debug!(OrgFileConfig {
    org_id, region, api_base_url, oauth_base_url, client_id
} secret { client_secret, refresh_token, access_token });
redacted_debug!(Overrides {
    region, api_base_url, oauth_base_url, client_id, org_id, output, token_dir, redirect_uri, pii
} secret { client_secret, refresh_token, access_token, token_key, pii_key });

/// A config file holding secrets should be private to its owner: warn (not fail, so a
/// scheduled run keeps working) when the group or others may read it.
fn warn_if_readable_by_others(path: &Path, file: &FileConfig) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777);
        if let Ok(mode) = mode
            && mode & 0o077 != 0
            && file.holds_secrets()
        {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{mode:o}"),
                "the config file holds secrets and is readable by others: chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, file);
}

/// A table of strings, booleans or integers, each kept as its text.
fn scalar_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<std::collections::BTreeMap<String, String>, D::Error> {
    let raw = std::collections::BTreeMap::<String, toml::Value>::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| match v {
            toml::Value::String(s) => Ok((k, s)),
            toml::Value::Boolean(b) => Ok((k, b.to_string())),
            toml::Value::Integer(i) => Ok((k, i.to_string())),
            _ => Err(serde::de::Error::custom(format!(
                "[storage] {k} must be a string, boolean or integer"
            ))),
        })
        .collect()
}

/// `message` with every quoted value (`"…"`, `'…'`) blanked; key names in backticks stay.
fn without_quotes(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None if c == '"' || c == '\'' => {
                out.push(c);
                open = Some(c);
            }
            None => out.push(c),
        }
    }
    out
}

/// Values from flags and `WXCC_*` environment variables; each wins over the file.
#[derive(Default, Clone)]
pub struct Overrides {
    pub region: Option<String>,
    pub api_base_url: Option<String>,
    pub oauth_base_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub org_id: Option<String>,
    pub refresh_token: Option<String>,
    pub access_token: Option<String>,
    pub output: Option<String>,
    pub rate_limit_per_minute: Option<u32>,
    pub download_concurrency: Option<usize>,
    pub token_dir: Option<String>,
    /// `WXCC_TOKEN_KEY`: environment only (a key belongs in neither a flag nor the config file).
    pub token_key: Option<String>,
    pub token_key_file: Option<String>,
    pub redirect_uri: Option<String>,
    /// object_store options from `[storage]`.
    pub storage_options: Vec<(String, String)>,
    /// `keep`, `hash` or `mask` for customer contact fields (any notation).
    pub pii: Option<String>,
    /// Key of the PII hash (environment only: it is a secret).
    pub pii_key: Option<String>,
    /// Derivatives to write (`mono16k`, `channels`, `none`).
    pub derive: Option<Vec<String>>,
    /// Directory for derivatives being made.
    pub scratch_dir: Option<String>,
    /// Storage endpoints from the environment (`AWS_ENDPOINT`, ...), checked for TLS.
    pub storage_endpoints_env: Vec<String>,
    /// `$XDG_CONFIG_HOME/wxcc/tokens` or `~/.config/wxcc/tokens`, used when no layer names a
    /// token directory. Kept apart so a default from the environment never beats the file.
    pub default_token_dir: Option<PathBuf>,
}

impl Overrides {
    /// Picks the `WXCC_*` variables out of an environment snapshot. Secrets are only ever taken
    /// from here or the file, never from flags, which leak into shell history and `ps`.
    pub fn from_env(env: &HashMap<String, String>) -> Overrides {
        let get = |k: &str| env.get(k).filter(|v| !v.trim().is_empty()).cloned();
        Overrides {
            region: get("WXCC_REGION"),
            api_base_url: get("WXCC_API_BASE_URL"),
            oauth_base_url: get("WXCC_OAUTH_BASE_URL"),
            client_id: get("WXCC_CLIENT_ID"),
            client_secret: get("WXCC_CLIENT_SECRET"),
            org_id: get("WXCC_ORG_ID"),
            refresh_token: get("WXCC_REFRESH_TOKEN"),
            access_token: get("WXCC_ACCESS_TOKEN"),
            output: get("WXCC_OUTPUT"),
            rate_limit_per_minute: None,
            download_concurrency: None,
            token_dir: get("WXCC_TOKEN_DIR"),
            token_key: get("WXCC_TOKEN_KEY"),
            token_key_file: get("WXCC_TOKEN_KEY_FILE"),
            redirect_uri: get("WXCC_REDIRECT_URI"),
            default_token_dir: default_token_dir(env),
            storage_options: Vec::new(),
            pii: get("WXCC_PII"),
            pii_key: get("WXCC_PII_KEY"),
            derive: get("WXCC_DERIVE").map(|v| v.split(',').map(str::to_owned).collect()),
            scratch_dir: get("WXCC_SCRATCH_DIR"),
            storage_endpoints_env: ["AWS_ENDPOINT", "AWS_ENDPOINT_URL", "AZURE_STORAGE_ENDPOINT"]
                .iter()
                .filter_map(|k| get(k))
                .collect(),
        }
    }

    /// The values for one `[[orgs]]` entry: what the entry sets wins. A token shared by every
    /// org (from the environment or the top level) would be sent to the wrong org, so several
    /// orgs must each bring their own (entry, or token store via `wxcc auth login`).
    pub fn for_org(&self, org: &OrgFileConfig, several: bool) -> Result<Overrides> {
        if several
            && org.refresh_token.is_none()
            && org.access_token.is_none()
            && (self.refresh_token.is_some() || self.access_token.is_some())
        {
            return Err(ConfigError::SharedToken(org.org_id.clone()));
        }
        let mut base = self.clone();
        // An entry with only one of the two must not inherit the other from the shared layers.
        if several {
            base.refresh_token = None;
            base.access_token = None;
        }
        let entry = Overrides {
            org_id: Some(org.org_id.clone()),
            region: org.region.clone(),
            api_base_url: org.api_base_url.clone(),
            oauth_base_url: org.oauth_base_url.clone(),
            client_id: org.client_id.clone(),
            client_secret: org.client_secret.clone(),
            refresh_token: org.refresh_token.clone(),
            access_token: org.access_token.clone(),
            ..Default::default()
        };
        // A region in the entry must not be shadowed by a top-level API URL.
        if org.region.is_some() && org.api_base_url.is_none() {
            base.api_base_url = None;
        }
        Ok(entry.over(base))
    }

    /// `self` wins field by field over `lower`.
    pub fn over(self, lower: Overrides) -> Overrides {
        Overrides {
            region: self.region.or(lower.region),
            api_base_url: self.api_base_url.or(lower.api_base_url),
            oauth_base_url: self.oauth_base_url.or(lower.oauth_base_url),
            client_id: self.client_id.or(lower.client_id),
            client_secret: self.client_secret.or(lower.client_secret),
            org_id: self.org_id.or(lower.org_id),
            refresh_token: self.refresh_token.or(lower.refresh_token),
            access_token: self.access_token.or(lower.access_token),
            output: self.output.or(lower.output),
            rate_limit_per_minute: self.rate_limit_per_minute.or(lower.rate_limit_per_minute),
            download_concurrency: self.download_concurrency.or(lower.download_concurrency),
            token_dir: self.token_dir.or(lower.token_dir),
            token_key: self.token_key.or(lower.token_key),
            token_key_file: self.token_key_file.or(lower.token_key_file),
            redirect_uri: self.redirect_uri.or(lower.redirect_uri),
            default_token_dir: self.default_token_dir.or(lower.default_token_dir),
            storage_options: {
                // Keys set here win; the lower layer fills in the rest.
                let mut merged = lower.storage_options;
                merged.retain(|(k, _)| !self.storage_options.iter().any(|(s, _)| s == k));
                merged.extend(self.storage_options);
                merged
            },
            pii: self.pii.or(lower.pii),
            pii_key: self.pii_key.or(lower.pii_key),
            derive: self.derive.or(lower.derive),
            scratch_dir: self.scratch_dir.or(lower.scratch_dir),
            storage_endpoints_env: if self.storage_endpoints_env.is_empty() {
                lower.storage_endpoints_env
            } else {
                self.storage_endpoints_env
            },
        }
    }
}

/// `$XDG_CONFIG_HOME/wxcc/tokens`, else `$HOME/.config/wxcc/tokens` (XDG base directories).
pub fn default_token_dir(env: &HashMap<String, String>) -> Option<PathBuf> {
    let get = |k: &str| {
        env.get(k)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty() && Path::new(v).is_absolute())
            .map(PathBuf::from)
    };
    get("XDG_CONFIG_HOME")
        .or_else(|| get("HOME").map(|h| h.join(".config")))
        .map(|base| base.join("wxcc").join("tokens"))
}

impl From<FileConfig> for Overrides {
    fn from(f: FileConfig) -> Overrides {
        Overrides {
            region: f.region,
            api_base_url: f.api_base_url,
            oauth_base_url: f.oauth_base_url,
            client_id: f.client_id,
            client_secret: f.client_secret,
            org_id: f.org_id,
            refresh_token: f.refresh_token,
            access_token: f.access_token,
            output: f.output,
            rate_limit_per_minute: f.sync.rate_limit_per_minute,
            download_concurrency: f.sync.download_concurrency,
            token_dir: f.token_dir,
            token_key: None,
            token_key_file: f.token_key_file,
            redirect_uri: f.redirect_uri,
            default_token_dir: None,
            storage_options: f.storage.into_iter().collect(),
            pii: f.sync.pii,
            pii_key: None,
            derive: f.sync.derive,
            scratch_dir: f.sync.scratch_dir,
            storage_endpoints_env: Vec::new(),
        }
    }
}

/// Credentials for the Webex OAuth client (an Integration).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    pub access_token: Option<SecretString>,
}

/// Where `wxcc auth` keeps tokens, and the key that encrypts them.
#[derive(Debug, Clone, Default)]
pub struct TokenStoreConfig {
    /// `None`: no token store (e.g. the demo, or a library caller that passes tokens itself).
    pub dir: Option<PathBuf>,
    /// `WXCC_TOKEN_KEY` (base64 of 32 bytes); wins over `key_file`.
    pub key: Option<SecretString>,
    /// `WXCC_TOKEN_KEY_FILE` / `token_key_file`.
    pub key_file: Option<PathBuf>,
}

/// What the `wxcc auth` commands and the token provider need. Resolvable without a WxCC API
/// host: authorizing talks only to the (global) Webex OAuth service.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub oauth_base_url: Url,
    pub org_id: Option<String>,
    pub credentials: Credentials,
    pub token_store: TokenStoreConfig,
    /// Where Webex sends the browser back to after authorization.
    pub redirect_uri: Url,
}

impl AuthConfig {
    /// Resolves the auth-related values; the token directory falls back to the XDG default.
    pub fn resolve(values: &Overrides) -> Result<AuthConfig> {
        let oauth_base = parse_url(
            "WXCC_OAUTH_BASE_URL",
            values
                .oauth_base_url
                .as_deref()
                .unwrap_or(DEFAULT_OAUTH_BASE_URL),
        )?;
        let redirect_uri = parse_url(
            "WXCC_REDIRECT_URI",
            values
                .redirect_uri
                .as_deref()
                .unwrap_or(DEFAULT_REDIRECT_URI),
        )?;
        let secret = |v: &Option<String>| v.clone().map(SecretString::from);
        Ok(AuthConfig {
            oauth_base_url: oauth_base,
            org_id: values.org_id.clone(),
            credentials: Credentials {
                client_id: values.client_id.clone(),
                client_secret: secret(&values.client_secret),
                refresh_token: secret(&values.refresh_token),
                access_token: secret(&values.access_token),
            },
            token_store: TokenStoreConfig {
                dir: values
                    .token_dir
                    .as_deref()
                    .map(PathBuf::from)
                    .or_else(|| values.default_token_dir.clone()),
                key: secret(&values.token_key),
                key_file: values.token_key_file.as_deref().map(PathBuf::from),
            },
            redirect_uri,
        })
    }

    /// The token directory, or a clear error when there is none.
    pub fn token_dir(&self) -> Result<&Path> {
        self.token_store
            .dir
            .as_deref()
            .ok_or(ConfigError::NoTokenDir)
    }
}

/// Fully resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub api_base_url: Url,
    pub oauth_base_url: Url,
    pub org_id: Option<String>,
    pub credentials: Credentials,
    pub token_store: TokenStoreConfig,
    pub redirect_uri: Url,
    pub output: String,
    pub rate_limit_per_minute: u32,
    pub download_concurrency: usize,
    pub url_expiration_minutes: u32,
    /// Incremental runs re-read this much before the watermark, for late changes.
    pub lookback_hours: u32,
    /// How far back the first incremental run goes.
    pub initial_days: u32,
    /// See [`SyncFileConfig::settle_hours`].
    pub settle_hours: u32,
    pub give_up_days: u32,
    pub commit_every_recordings: usize,
    pub commit_every_secs: u64,
    /// See [`SyncFileConfig::tasks_per_part`].
    pub tasks_per_part: usize,
    /// See [`SyncFileConfig::max_retries`].
    pub max_retries: u32,
    /// See [`SyncFileConfig::retry_max_delay_secs`].
    pub retry_max_delay_secs: u64,
    /// See [`StorageConfig::rows_per_file`].
    pub rows_per_file: usize,
    /// object_store options for the output store (`[storage]`, without wxcc's own keys).
    pub storage_options: Vec<(String, String)>,
    /// Mode of the local files wxcc creates (see [`StorageConfig::file_mode`]).
    pub file_mode: u32,
    /// What happens to customer contact fields (any notation).
    pub pii: PiiSetting,
    /// ML-ready files written beside each recording, in [`Derivative`] order, no repeats.
    pub derive: Vec<Derivative>,
    /// Directory for derivatives being made; `None`: the system's temporary directory.
    pub scratch_dir: Option<PathBuf>,
}

/// Parses derivative names (`mono16k`, `channels`, `none`; case and blanks ignored).
pub fn parse_derive(names: &[String]) -> Result<Vec<Derivative>> {
    let mut out = Vec::new();
    for name in names {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "none" => {}
            "mono16k" => out.push(Derivative::Mono16k),
            "channels" => out.extend([Derivative::Channel1, Derivative::Channel2]),
            _ => return Err(ConfigError::BadDerive(name.trim().to_owned())),
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Protection of customer contact data in the tables.
#[derive(Debug, Clone, Default)]
pub enum PiiSetting {
    #[default]
    Keep,
    /// Keyed hash with this secret key.
    Hash(SecretString),
    Mask,
}

impl PiiSetting {
    fn resolve(mode: Option<&str>, key: Option<&str>) -> Result<PiiSetting> {
        match mode.map(|m| m.trim().to_ascii_lowercase()).as_deref() {
            None | Some("keep") => Ok(PiiSetting::Keep),
            Some("mask") => Ok(PiiSetting::Mask),
            Some("hash") => match key {
                Some(k) if k.len() >= 16 => Ok(PiiSetting::Hash(SecretString::from(k.to_owned()))),
                _ => Err(ConfigError::PiiKey),
            },
            Some(other) => Err(ConfigError::BadPii(other.to_owned())),
        }
    }
}

impl Config {
    /// Resolves layered values into a validated configuration.
    pub fn resolve(values: Overrides, file_sync: &SyncFileConfig) -> Result<Config> {
        let api_base = match (&values.api_base_url, &values.region) {
            (Some(url), _) => parse_url("WXCC_API_BASE_URL", url)?,
            (None, Some(region)) => region_url(region)?,
            (None, None) => return Err(ConfigError::MissingApiBase),
        };
        if let (Some(_), Some(region)) = (&values.api_base_url, &values.region) {
            region_url(region)?; // still reject a misspelt region
        }
        let auth = AuthConfig::resolve(&values)?;
        let storage = StorageConfig::resolve(&values)?;
        let rate = values
            .rate_limit_per_minute
            .unwrap_or(DEFAULT_RATE_LIMIT_PER_MINUTE);
        if rate == 0 {
            return Err(ConfigError::OutOfRange {
                name: "rate_limit_per_minute ([sync] in the config file, or --rate-limit)",
                rule: "at least 1",
                value: 0,
            });
        }
        let concurrency = values.download_concurrency.unwrap_or(8);
        if !(1..=256).contains(&concurrency) {
            return Err(ConfigError::OutOfRange {
                name: "download_concurrency ([sync] in the config file, or --concurrency)",
                rule: "between 1 and 256",
                value: concurrency as i64,
            });
        }
        let url_expiration = file_sync.url_expiration_minutes.unwrap_or(60);
        if !(1..=60).contains(&url_expiration) {
            return Err(ConfigError::OutOfRange {
                name: "url_expiration_minutes",
                rule: "between 1 and 60 (the API maximum)",
                value: url_expiration as i64,
            });
        }
        let max_retries = file_sync.max_retries.unwrap_or(10);
        if max_retries > 20 {
            return Err(ConfigError::OutOfRange {
                name: "max_retries ([sync] in the config file)",
                rule: "between 0 and 20",
                value: i64::from(max_retries),
            });
        }
        let retry_max_delay_secs = file_sync.retry_max_delay_secs.unwrap_or(60);
        if !(1..=600).contains(&retry_max_delay_secs) {
            return Err(ConfigError::OutOfRange {
                name: "retry_max_delay_secs ([sync] in the config file)",
                rule: "between 1 and 600",
                value: i64::try_from(retry_max_delay_secs).unwrap_or(i64::MAX),
            });
        }
        Ok(Config {
            api_base_url: api_base,
            oauth_base_url: auth.oauth_base_url,
            org_id: auth.org_id,
            credentials: auth.credentials,
            token_store: auth.token_store,
            redirect_uri: auth.redirect_uri,
            output: values.output.unwrap_or_else(|| DEFAULT_OUTPUT.to_owned()),
            rate_limit_per_minute: rate,
            download_concurrency: concurrency,
            url_expiration_minutes: url_expiration,
            lookback_hours: file_sync.lookback_hours.unwrap_or(24),
            initial_days: file_sync.initial_days.unwrap_or(7).clamp(1, 1095),
            settle_hours: file_sync.settle_hours.unwrap_or(12),
            give_up_days: file_sync.give_up_days.unwrap_or(7).max(1),
            commit_every_recordings: file_sync.commit_every_recordings.unwrap_or(500).max(1),
            commit_every_secs: file_sync.commit_every_secs.unwrap_or(60).max(1),
            tasks_per_part: file_sync.tasks_per_part.unwrap_or(1_000).max(1),
            max_retries,
            retry_max_delay_secs,
            rows_per_file: storage.rows_per_file,
            pii: PiiSetting::resolve(values.pii.as_deref(), values.pii_key.as_deref())?,
            derive: parse_derive(values.derive.as_deref().unwrap_or_default())?,
            scratch_dir: match values.scratch_dir.as_deref().map(PathBuf::from) {
                Some(dir) if !dir.is_dir() => return Err(ConfigError::BadScratchDir(dir)),
                other => other,
            },
            storage_options: storage.options,
            file_mode: storage.file_mode,
        })
    }
}

impl Config {
    /// The auth part of the configuration (for the token provider).
    pub fn auth(&self) -> AuthConfig {
        AuthConfig {
            oauth_base_url: self.oauth_base_url.clone(),
            org_id: self.org_id.clone(),
            credentials: self.credentials.clone(),
            token_store: self.token_store.clone(),
            redirect_uri: self.redirect_uri.clone(),
        }
    }
}

/// Mode of local files by default: the lake holds customer contact data and recordings.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode with `[storage] shared = true`: readable by the owner's group (a shared analytics host).
pub const SHARED_FILE_MODE: u32 = 0o640;

/// Where the lake lives and how every command opens it (sync, sql, query, export, state): the
/// same location, the same `[storage]` options, the same TLS check, the same file mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    pub location: String,
    /// object_store options (`[storage]` minus wxcc's own keys `file_mode` and `shared`).
    pub options: Vec<(String, String)>,
    /// Mode of local files wxcc creates (lake files, export files); folders get the matching
    /// search bits. Default 0600/0700; `[storage] shared = true` gives 0640/0750 and
    /// `[storage] file_mode = "0660"` any mode without world access.
    pub file_mode: u32,
    /// Rows per Parquet file within a day's partition (`[storage] rows_per_file`, default
    /// 5,000): a busy day is spread over several files so that a commit rewrites at most one.
    pub rows_per_file: usize,
}

impl StorageConfig {
    /// Checks TLS and splits wxcc's keys from the object_store options.
    pub fn resolve(values: &Overrides) -> Result<StorageConfig> {
        check_storage_tls(&values.storage_options, &values.storage_endpoints_env)?;
        let mut options = Vec::new();
        let (mut shared, mut explicit) = (false, None);
        let mut rows_per_file = crate::lake::partition::MAX_FILE_ROWS;
        for (k, v) in &values.storage_options {
            match k.to_ascii_lowercase().as_str() {
                "shared" => shared = parse_bool("[storage] shared", v)?,
                "rows_per_file" => {
                    rows_per_file = v.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        ConfigError::BadStorageOption {
                            name: "[storage] rows_per_file",
                            value: v.clone(),
                            reason: "expected a whole number above 0".into(),
                        }
                    })?
                }
                "file_mode" => explicit = Some(parse_file_mode(v)?),
                _ => options.push((k.clone(), v.clone())),
            }
        }
        let file_mode = explicit.unwrap_or(if shared {
            SHARED_FILE_MODE
        } else {
            PRIVATE_FILE_MODE
        });
        Ok(StorageConfig {
            location: values
                .output
                .clone()
                .unwrap_or_else(|| DEFAULT_OUTPUT.to_owned()),
            options,
            file_mode,
            rows_per_file,
        })
    }

    /// The process umask that creates files with [`StorageConfig::file_mode`] and folders with
    /// the matching search bits.
    pub fn umask(file_mode: u32) -> u32 {
        let dir_mode = file_mode | ((file_mode & 0o444) >> 2);
        0o777 & !dir_mode
    }
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(ConfigError::BadStorageOption {
            name,
            value: value.to_owned(),
            reason: "expected true or false".into(),
        }),
    }
}

/// An octal mode such as `0640`; world access is refused (the lake holds personal data).
fn parse_file_mode(value: &str) -> Result<u32> {
    let bad = |reason: &str| ConfigError::BadStorageOption {
        name: "[storage] file_mode",
        value: value.to_owned(),
        reason: reason.into(),
    };
    let mode = u32::from_str_radix(value.trim().trim_start_matches("0o"), 8)
        .map_err(|_| bad("expected an octal mode such as \"0640\""))?;
    if mode & !0o660 != 0 || mode & 0o600 != 0o600 {
        return Err(bad(
            "owner read/write required; group read/write allowed; no execute or world access",
        ));
    }
    Ok(mode)
}

/// Recordings and call metadata only travel encrypted: a storage endpoint must be `https`,
/// except on loopback (a local S3-compatible server for tests or development).
pub fn check_storage_tls(options: &[(String, String)], env_endpoints: &[String]) -> Result<()> {
    let from_options = options
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().contains("endpoint"))
        .map(|(_, v)| v);
    for endpoint in from_options.chain(env_endpoints) {
        let url = Url::parse(endpoint).map_err(|e| ConfigError::BadUrl {
            name: "storage endpoint",
            value: endpoint.clone(),
            reason: e.to_string(),
        })?;
        if url.scheme() != "https" && !is_loopback(&url) {
            return Err(ConfigError::BadUrl {
                name: "storage endpoint",
                value: endpoint.clone(),
                reason: "storage endpoints must use https unless they are on loopback".into(),
            });
        }
    }
    Ok(())
}

/// The API host of a WxCC region.
pub fn region_url(region: &str) -> Result<Url> {
    let wanted = region.trim().to_ascii_lowercase();
    REGIONS
        .iter()
        .find(|(r, _)| *r == wanted)
        .map(|(_, url)| Url::parse(url).expect("built-in region URLs are valid"))
        .ok_or_else(|| ConfigError::UnknownRegion(region.to_owned()))
}

fn parse_url(name: &'static str, value: &str) -> Result<Url> {
    let url = Url::parse(value.trim()).map_err(|e| ConfigError::BadUrl {
        name,
        value: value.to_owned(),
        reason: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::BadUrl {
            name,
            value: value.to_owned(),
            reason: "only http and https are supported".into(),
        });
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(ConfigError::BadUrl {
            name,
            value: value.to_owned(),
            reason:
                "plain http is only allowed for loopback hosts (127.0.0.1, localhost); use https"
                    .into(),
        });
    }
    Ok(url)
}

/// True for 127.0.0.0/8, ::1 and localhost.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Parses `YYYY-MM-DD` (UTC midnight) or RFC 3339.
pub fn parse_time(name: &'static str, value: &str) -> Result<DateTime<Utc>> {
    let v = value.trim();
    if let Some(d) = crate::lake::partition::parse_day(v) {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ConfigError::BadTime {
            name,
            value: value.to_owned(),
        })
}

/// The earliest year a sync range may start in, and how many days after now it may end: a
/// mistyped year (`0026-01-05`, `3026-01-05`) would otherwise cost one listing request for each
/// day in between. A few weeks ahead is allowed (windows beyond now list nothing and the
/// watermark never passes the run's start).
pub const EARLIEST_FROM: i32 = 2000;
pub const LATEST_TO_DAYS: i64 = 31;

/// A validated `[from, to)` range to sync, as of `now`.
pub fn time_range(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>)> {
    use chrono::Datelike;
    if from >= to {
        return Err(ConfigError::EmptyRange { from, to });
    }
    if from.year() < EARLIEST_FROM {
        return Err(ConfigError::AncientFrom { from });
    }
    if to > now + chrono::Duration::days(LATEST_TO_DAYS) {
        return Err(ConfigError::FarFutureTo { to, now });
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(o: Overrides) -> Result<Config> {
        Config::resolve(o, &SyncFileConfig::default())
    }

    #[test]
    fn region_selects_api_host() {
        let c = resolve(Overrides {
            region: Some("EU1".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.api_base_url.as_str(), "https://api.wxcc-eu1.cisco.com/");
        assert_eq!(c.oauth_base_url.as_str(), "https://webexapis.com/");
        assert_eq!(c.output, DEFAULT_OUTPUT);
    }

    #[test]
    fn unknown_region_names_the_known_ones() {
        let err = resolve(Overrides {
            region: Some("mars1".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("mars1") && err.contains("us1") && err.contains("anz1"),
            "{err}"
        );
    }

    #[test]
    fn env_wins_over_file_and_flags_win_over_env() {
        let file: Overrides =
            FileConfig::parse("region = \"us1\"\noutput = \"file-out\"\norg_id = \"a\"")
                .unwrap()
                .into();
        let env = Overrides::from_env(&HashMap::from([
            ("WXCC_OUTPUT".to_string(), "env-out".to_string()),
            ("WXCC_ORG_ID".to_string(), "b".to_string()),
        ]));
        let flags = Overrides {
            output: Some("flag-out".into()),
            ..Default::default()
        };
        let c = resolve(flags.over(env.over(file))).unwrap();
        assert_eq!(c.output, "flag-out");
        assert_eq!(c.org_id.as_deref(), Some("b"));
    }

    #[test]
    fn malformed_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wxcc.toml");
        std::fs::write(&p, "regoin = \"us1\"").unwrap();
        let err = FileConfig::load(&p, false).unwrap_err().to_string();
        assert!(err.contains("wxcc.toml") && err.contains("regoin"), "{err}");
        assert!(FileConfig::load(&dir.path().join("absent.toml"), false).is_ok());
        assert!(FileConfig::load(&dir.path().join("absent.toml"), true).is_err());
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        let err = resolve(Overrides {
            api_base_url: Some("http://api.example.com".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("loopback"));
        assert!(
            resolve(Overrides {
                api_base_url: Some("http://127.0.0.1:8080".into()),
                ..Default::default()
            })
            .is_ok()
        );
    }

    #[test]
    fn token_dir_follows_xdg_and_never_beats_an_explicit_one() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert_eq!(
            default_token_dir(&env(&[("HOME", "/home/a"), ("XDG_CONFIG_HOME", "/x")])),
            Some(PathBuf::from("/x/wxcc/tokens"))
        );
        assert_eq!(
            default_token_dir(&env(&[("HOME", "/home/a"), ("XDG_CONFIG_HOME", "rel")])),
            Some(PathBuf::from("/home/a/.config/wxcc/tokens"))
        );
        assert_eq!(default_token_dir(&env(&[])), None);
        let file: Overrides = FileConfig::parse("token_dir = \"/from/file\"")
            .unwrap()
            .into();
        let values = Overrides::from_env(&env(&[("HOME", "/home/a")])).over(file);
        let auth = AuthConfig::resolve(&values).unwrap();
        assert_eq!(auth.token_dir().unwrap(), Path::new("/from/file"));
        assert_eq!(auth.redirect_uri.as_str(), DEFAULT_REDIRECT_URI);
    }

    #[test]
    fn redirect_uri_must_be_https_or_loopback() {
        let bad = AuthConfig::resolve(&Overrides {
            redirect_uri: Some("http://example.com/cb".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(bad.contains("WXCC_REDIRECT_URI"), "{bad}");
    }

    #[test]
    fn times_accept_dates_and_rfc3339() {
        let d = parse_time("--from", "2026-01-05").unwrap();
        assert_eq!(d.to_rfc3339(), "2026-01-05T00:00:00+00:00");
        let t = parse_time("--to", "2026-01-05T10:30:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-05T08:30:00+00:00");
        let err = parse_time("--from", "05/01/2026").unwrap_err().to_string();
        assert!(
            err.contains("--from") && err.contains("YYYY-MM-DD"),
            "{err}"
        );
        assert!(time_range(t, d, t).is_err());
    }

    #[test]
    fn a_sync_range_with_a_mistyped_year_is_refused() {
        let now = parse_time("now", "2026-12-08T10:00:00Z").unwrap();
        let at = |v| parse_time("t", v).unwrap();
        assert!(time_range(at("2025-01-01"), at("2026-12-09"), now).is_ok());
        let ancient = time_range(at("0026-01-05"), at("2026-01-06"), now).unwrap_err();
        assert!(ancient.to_string().contains("Check the year"), "{ancient}");
        let future = time_range(at("2026-01-05"), at("3026-01-06"), now).unwrap_err();
        assert!(future.to_string().contains("Check the year"), "{future}");
        assert!(time_range(at("2026-12-07"), at("2027-01-08T09:00:00Z"), now).is_ok());
        assert!(time_range(at("2026-12-07"), at("2027-01-09T11:00:00Z"), now).is_err());
    }

    #[test]
    fn several_orgs_refuse_a_shared_token_and_keep_their_own_region() {
        let file = FileConfig::parse(
            "region = \"us1\"\n[[orgs]]\norg_id = \"a\"\n[[orgs]]\norg_id = \"b\"\nregion = \"eu1\"\n",
        )
        .unwrap();
        let orgs = file.orgs.clone();
        let mut base: Overrides = file.into();
        let b =
            Config::resolve(base.for_org(&orgs[1], true).unwrap(), &Default::default()).unwrap();
        assert_eq!(b.api_base_url.as_str(), "https://api.wxcc-eu1.cisco.com/");
        assert_eq!(b.org_id.as_deref(), Some("b"));
        base.refresh_token = Some("from-env".into());
        let err = base.for_org(&orgs[0], true).unwrap_err().to_string();
        assert!(err.contains("auth login"), "{err}");
        assert!(
            base.for_org(&orgs[0], false).is_ok(),
            "one org may use the env token"
        );
        // An entry with only a refresh token does not pick up the environment's access token.
        base.refresh_token = None;
        base.access_token = Some("someone-elses".into());
        let own = OrgFileConfig {
            refresh_token: Some("own".into()),
            ..orgs[0].clone()
        };
        let merged = base.for_org(&own, true).unwrap();
        assert_eq!(merged.refresh_token.as_deref(), Some("own"));
        assert_eq!(merged.access_token, None, "never another org's token");
    }

    #[test]
    fn retry_settings_are_taken_within_bounds() {
        let base = Overrides {
            region: Some("us1".into()),
            ..Default::default()
        };
        let sync = |max_retries, retry_max_delay_secs| SyncFileConfig {
            max_retries,
            retry_max_delay_secs,
            ..Default::default()
        };
        let cfg = Config::resolve(base.clone(), &sync(None, None)).unwrap();
        assert_eq!((cfg.max_retries, cfg.retry_max_delay_secs), (10, 60));
        let cfg = Config::resolve(base.clone(), &sync(Some(0), Some(1))).unwrap();
        assert_eq!((cfg.max_retries, cfg.retry_max_delay_secs), (0, 1));
        for (bad, name) in [
            (sync(Some(21), None), "max_retries"),
            (sync(None, Some(0)), "retry_max_delay_secs"),
            (sync(None, Some(601)), "retry_max_delay_secs"),
        ] {
            let err = Config::resolve(base.clone(), &bad).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn debug_of_config_structs_hides_secrets() {
        let file = FileConfig::parse(
            "client_secret = \"s3cr3t\"\n[[orgs]]\norg_id = \"o\"\nrefresh_token = \"s3cr3t\"\n",
        )
        .unwrap();
        let shown = format!(
            "{file:?} {:?} {:?}",
            file.orgs,
            Overrides::from(file.clone())
        );
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(file.holds_secrets());
    }

    #[test]
    fn parse_errors_name_the_place_not_the_secret() {
        for text in [
            "client_id = \"x\"\nclient_secret = s3cr3t-value\n",
            "client_secret = \"s3cr3t-value\"\nrate_limit_per_minute = \"s3cr3t-value\"\n",
            "client_secret = \"s3cr3t-value\n",
        ] {
            let err = FileConfig::parse(text).unwrap_err();
            assert!(!err.contains("s3cr3t"), "{err}");
            assert!(err.contains("line 2") || err.contains("line 1"), "{err}");
            assert!(err.contains("column"), "{err}");
        }
    }

    #[test]
    fn storage_is_private_unless_shared_or_given_a_mode() {
        let with = |opts: &[(&str, &str)]| {
            StorageConfig::resolve(&Overrides {
                storage_options: opts
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            })
        };
        let private = with(&[("aws_region", "us-east-1")]).unwrap();
        assert_eq!(private.file_mode, 0o600);
        assert_eq!(private.options.len(), 1);
        assert_eq!(StorageConfig::umask(0o600), 0o077);
        let shared = with(&[("shared", "true")]).unwrap();
        assert_eq!((shared.file_mode, shared.options.len()), (0o640, 0));
        // rows_per_file is wxcc's own key, not passed to object_store.
        let sized = with(&[("rows_per_file", "1000")]).unwrap();
        assert_eq!((sized.rows_per_file, sized.options.len()), (1000, 0));
        assert_eq!(private.rows_per_file, crate::lake::partition::MAX_FILE_ROWS);
        assert!(with(&[("rows_per_file", "0")]).is_err());
        assert_eq!(StorageConfig::umask(0o640), 0o027);
        assert_eq!(with(&[("file_mode", "0660")]).unwrap().file_mode, 0o660);
        assert!(with(&[("file_mode", "0644")]).is_err());
        assert!(with(&[("file_mode", "0400")]).is_err());
        assert!(with(&[("shared", "maybe")]).is_err());
    }

    #[test]
    fn storage_endpoints_need_tls_off_loopback() {
        let opts = |v: &str| vec![("aws_endpoint".to_string(), v.to_string())];
        assert!(check_storage_tls(&opts("https://s3.example.com"), &[]).is_ok());
        assert!(check_storage_tls(&opts("http://127.0.0.1:9000"), &[]).is_ok());
        let err = check_storage_tls(&opts("http://minio.internal:9000"), &[]).unwrap_err();
        assert!(err.to_string().contains("https"), "{err}");
        assert!(check_storage_tls(&[], &["http://10.0.0.5:9000".into()]).is_err());
    }

    #[test]
    fn storage_table_passes_object_store_options_through() {
        let file = FileConfig::parse(
            "region = \"us1\"\n[storage]\naws_server_side_encryption = \"aws:kms\"\naws_sse_kms_key_id = \"k1\"\n",
        )
        .unwrap();
        let c = Config::resolve(file.into(), &Default::default()).unwrap();
        assert!(
            c.storage_options
                .contains(&("aws_sse_kms_key_id".into(), "k1".into()))
        );
    }
}
