//! `wxcc auth …`: authorize the Integration in a browser (or import tokens from the old manual
//! process), keep them in the token store, and report on them for schedulers.
//!
//! Secrets never come from flags (shell history, `ps`): the client secret and tokens come from
//! the environment, `wxcc.toml`, standard input or the browser redirect.

use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use secrecy::{ExposeSecret, SecretString};

mod report;

use super::exit;
use crate::auth::flow;
use crate::auth::loopback::{self, LoopbackListener};
use crate::auth::{
    AuthError, OAuthClient, StoreKey, StoredTokens, TokenProvider, TokenSet, TokenStore,
    find_store, org_from_token,
};
use crate::config::{AuthConfig, Overrides};
use crate::net::{self, RetryPolicy};
use report::describe;

#[derive(Debug, Args)]
pub struct AuthArgs {
    #[command(subcommand)]
    pub command: AuthCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Print the authorize URL of the configured Integration (to check client id, redirect URI
    /// and scopes; `wxcc auth login` prints its own URL and completes the flow).
    Url(UrlArgs),
    /// Authorize wxcc in a browser and store the tokens.
    Login(LoginArgs),
    /// Check and store tokens obtained elsewhere (client id, client secret, org id, access and
    /// refresh token), read from WXCC_* environment variables or, with --stdin, KEY=VALUE lines.
    Import(ImportArgs),
    /// Token expiry, scopes and organization. Exit 0: fine; 3: re-authorization needed; 5: the
    /// refresh token expires within --warn-days.
    Status(StatusArgs),
    /// Refresh the access token now and store the result.
    Refresh(AuthConnection),
    /// Delete the stored tokens of the configured client.
    Logout(AuthConnection),
    /// Encrypt a plaintext token store once with the configured key (WXCC_TOKEN_KEY or
    /// token_key_file); while a key is set, a plaintext store is otherwise refused.
    Encrypt(AuthConnection),
}

/// Which Integration and where its tokens live. The client secret is deliberately not a flag.
#[derive(Debug, Args, Default)]
pub struct AuthConnection {
    /// Webex OAuth base URL.
    #[arg(long, env = "WXCC_OAUTH_BASE_URL")]
    pub oauth_base_url: Option<String>,
    /// The Integration's client id (the secret comes from WXCC_CLIENT_SECRET or wxcc.toml).
    #[arg(long, env = "WXCC_CLIENT_ID")]
    pub client_id: Option<String>,
    /// WxCC organization id (UUID); by default the one the token names.
    #[arg(long, env = "WXCC_ORG_ID")]
    pub org_id: Option<String>,
    /// Token store directory (default $XDG_CONFIG_HOME/wxcc/tokens or ~/.config/wxcc/tokens).
    #[arg(long, env = "WXCC_TOKEN_DIR")]
    pub token_dir: Option<String>,
}

#[derive(Debug, Args)]
pub struct UrlArgs {
    #[command(flatten)]
    pub connection: AuthConnection,
    /// Redirect URI registered for the Integration.
    #[arg(long, env = "WXCC_REDIRECT_URI")]
    pub redirect_uri: Option<String>,
    /// Scopes to ask for, space- or comma-separated (default: cjp:config_read).
    #[arg(long)]
    pub scopes: Option<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub url: UrlArgs,
    /// Listen on this port instead of the redirect URI's (0: any free port). The redirect URI
    /// with that port must be registered for the Integration.
    #[arg(long)]
    pub port: Option<u16>,
    /// Do not listen even for a loopback redirect URI: paste the redirect instead (e.g. when
    /// the browser runs on another machine).
    #[arg(long)]
    pub paste: bool,
    /// Seconds to wait for the browser's redirect.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub connection: AuthConnection,
    /// Read KEY=VALUE lines from standard input (WXCC_CLIENT_ID, WXCC_CLIENT_SECRET,
    /// WXCC_ORG_ID, WXCC_ACCESS_TOKEN, WXCC_REFRESH_TOKEN; the WXCC_ prefix is optional).
    #[arg(long)]
    pub stdin: bool,
    /// Also keep the client secret in the token store (encrypt it: set WXCC_TOKEN_KEY), so
    /// runs need no WXCC_CLIENT_SECRET.
    #[arg(long)]
    pub store_client_secret: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub connection: AuthConnection,
    /// Exit with 5 when the refresh token expires within this many days.
    #[arg(long, default_value_t = 14)]
    pub warn_days: u32,
}

pub async fn run(config_path: Option<PathBuf>, args: AuthArgs) -> Result<u8> {
    match args.command {
        AuthCommand::Url(a) => url(config_path, a),
        AuthCommand::Login(a) => login(config_path, a).await,
        AuthCommand::Import(a) => import(config_path, a).await,
        AuthCommand::Status(a) => report::status(config_path, a),
        AuthCommand::Refresh(a) => refresh(config_path, a).await,
        AuthCommand::Logout(a) => logout(config_path, a).await,
        AuthCommand::Encrypt(a) => encrypt(config_path, a).await,
    }
}

fn auth_config(
    config_path: Option<PathBuf>,
    c: AuthConnection,
    redirect_uri: Option<String>,
) -> Result<AuthConfig> {
    let flags = Overrides {
        oauth_base_url: c.oauth_base_url,
        client_id: c.client_id,
        org_id: c.org_id,
        token_dir: c.token_dir,
        redirect_uri,
        ..Default::default()
    };
    // The org's own `[[orgs]]` entry (its client, secret, OAuth URL), picked as `wxcc sync`
    // picks it, so tokens are stored where the sync looks; flags still win over the entry.
    let (values, _, orgs) = super::load_file_layers(config_path, Overrides::default())?;
    let wanted = flags.org_id.clone().or_else(|| values.org_id.clone());
    let values = match super::select_orgs(&orgs, wanted.as_deref())?.as_slice() {
        [one] => values.for_org(one, false)?,
        _ => values,
    };
    Ok(AuthConfig::resolve(&flags.over(values))?)
}

fn client_id(cfg: &AuthConfig) -> Result<String> {
    Ok(cfg.credentials.client_id.clone().ok_or_else(|| {
        AuthError::Missing("WXCC_CLIENT_ID is not set: the Integration's client id".into())
    })?)
}

fn scopes_with_warnings(value: Option<&str>) -> Vec<String> {
    let scopes = flow::parse_scopes(value);
    for w in flow::scope_warnings(&scopes) {
        eprintln!("warning: {w}");
    }
    scopes
}

fn url(config_path: Option<PathBuf>, args: UrlArgs) -> Result<u8> {
    let cfg = auth_config(config_path, args.connection, args.redirect_uri)?;
    let scopes = scopes_with_warnings(args.scopes.as_deref());
    let req = flow::authorization_request(
        &cfg.oauth_base_url,
        &client_id(&cfg)?,
        &cfg.redirect_uri,
        &scopes,
    )?;
    println!("{}", req.url);
    eprintln!(
        "note: this URL is for checking the Integration's settings; `wxcc auth login` prints a \
         fresh one and keeps the PKCE verifier needed to finish the login"
    );
    Ok(exit::OK)
}

async fn login(config_path: Option<PathBuf>, args: LoginArgs) -> Result<u8> {
    let cfg = auth_config(config_path, args.url.connection, args.url.redirect_uri)?;
    let client_id = client_id(&cfg)?;
    let secret = cfg.credentials.client_secret.clone().ok_or_else(|| {
        AuthError::Missing(
            "WXCC_CLIENT_SECRET is not set: the code exchange needs the Integration's client \
             secret (environment or wxcc.toml, never a flag)"
                .into(),
        )
    })?;
    let scopes = scopes_with_warnings(args.url.scopes.as_deref());
    let key = preflight(&cfg, &client_id)?;

    let listener = if !args.paste && loopback::is_loopback_redirect(&cfg.redirect_uri) {
        Some(LoopbackListener::bind(&cfg.redirect_uri, args.port).await?)
    } else {
        None
    };
    let redirect = listener
        .as_ref()
        .map_or_else(|| cfg.redirect_uri.clone(), |l| l.redirect_uri().clone());
    let req = flow::authorization_request(&cfg.oauth_base_url, &client_id, &redirect, &scopes)?;
    eprintln!(
        "Open this URL in a browser and approve as a Contact Center administrator:\n\n  {}\n",
        req.url
    );
    let code = match listener {
        Some(listener) => {
            eprintln!("Waiting for the redirect to {redirect} …");
            listener
                .wait(&req.state, Duration::from_secs(args.timeout))
                .await?
        }
        None => {
            eprintln!(
                "After approving, the browser goes to {redirect}. Paste that full address \
                 (or just the code) here and press Enter:"
            );
            let line = tokio::task::spawn_blocking(read_stdin_line)
                .await
                .context("reading standard input")??;
            flow::code_from_paste(line.expose_secret(), &req.state)?
        }
    };
    let oauth = OAuthClient::new(
        net::api_http_client(),
        &cfg.oauth_base_url,
        client_id.clone(),
        secret,
        RetryPolicy::default(),
    )?;
    let tokens = oauth
        .exchange_code(&code, redirect.as_str(), Some(&req.verifier))
        .await?;
    let (store, stored) = save(&cfg, key, client_id, tokens, None).await?;
    println!("Logged in.");
    describe(&store, &stored);
    Ok(exit::OK)
}

/// Fails before any round trip if the tokens could not be stored afterwards: a bad key, no
/// token directory, or an existing store the key cannot open.
fn preflight(cfg: &AuthConfig, client_id: &str) -> Result<Option<StoreKey>> {
    let key = StoreKey::from_config(&cfg.token_store)?;
    let dir = cfg.token_dir()?;
    if let Some(existing) =
        TokenStore::find(dir, key.clone(), Some(client_id), cfg.org_id.as_deref())?
    {
        existing.read()?;
    }
    Ok(key)
}

fn read_stdin_line() -> Result<SecretString> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading standard input")?;
    Ok(SecretString::from(line))
}

/// Writes freshly obtained tokens under the store lock. The org is the configured one, else
/// the token's; both known and different is refused.
async fn save(
    cfg: &AuthConfig,
    key: Option<StoreKey>,
    client_id: String,
    tokens: TokenSet,
    client_secret: Option<SecretString>,
) -> Result<(TokenStore, StoredTokens)> {
    let token_org = tokens
        .access_token
        .as_ref()
        .and_then(|t| org_from_token(t.expose_secret()));
    let org = match (&cfg.org_id, token_org) {
        (Some(configured), Some(token)) if !configured.eq_ignore_ascii_case(&token) => {
            return Err(AuthError::OrgMismatch {
                configured: configured.clone(),
                token,
            }
            .into());
        }
        (Some(configured), _) => Some(configured.to_ascii_lowercase()),
        (None, token) => token,
    };
    let store = TokenStore::open(cfg.token_dir()?, key, &client_id, org.as_deref())?;
    let lock = store.lock().await?;
    let previous = store.read()?;
    let mut stored = StoredTokens {
        client_id,
        org_id: org,
        tokens,
        client_secret: client_secret.or_else(|| previous.and_then(|p| p.client_secret)),
        ..Default::default()
    };
    store.write(&lock, &mut stored)?;
    Ok((store, stored))
}

const IMPORT_KEYS: [&str; 5] = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "ORG_ID",
    "ACCESS_TOKEN",
    "REFRESH_TOKEN",
];

/// `KEY=VALUE` lines; `export `, quotes, blank lines and `#` comments are tolerated.
fn parse_import_lines(text: &str) -> Result<HashMap<&'static str, SecretString>> {
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            bail!("standard input line {}: expected KEY=VALUE", n + 1);
        };
        let k = k.trim().to_ascii_uppercase();
        let k = k.strip_prefix("WXCC_").unwrap_or(&k);
        let Some(key) = IMPORT_KEYS.iter().find(|known| **known == k) else {
            // E.g. the WXCC_API_BASE_URL line of `wxcc sim` output; required keys are checked
            // later, so a misspelt one cannot slip through unnoticed.
            eprintln!(
                "warning: standard input line {}: ignoring {k:?} (import takes WXCC_{})",
                n + 1,
                IMPORT_KEYS.join(", WXCC_")
            );
            continue;
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        if !v.is_empty() {
            out.insert(*key, SecretString::from(v.to_owned()));
        }
    }
    Ok(out)
}

async fn import(config_path: Option<PathBuf>, args: ImportArgs) -> Result<u8> {
    let mut cfg = auth_config(config_path, args.connection, None)?;
    if args.stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        let text = SecretString::from(text);
        let mut values = parse_import_lines(text.expose_secret())?;
        let mut take = |k: &str| values.remove(k);
        let c = &mut cfg.credentials;
        if let Some(v) = take("CLIENT_ID") {
            c.client_id = Some(v.expose_secret().to_owned());
        }
        if let Some(v) = take("ORG_ID") {
            cfg.org_id = Some(v.expose_secret().to_owned());
        }
        c.client_secret = take("CLIENT_SECRET").or(c.client_secret.take());
        c.access_token = take("ACCESS_TOKEN").or(c.access_token.take());
        c.refresh_token = take("REFRESH_TOKEN").or(c.refresh_token.take());
    }
    let c = &cfg.credentials;
    let missing: Vec<&str> = [
        ("WXCC_CLIENT_ID", c.client_id.is_none()),
        ("WXCC_CLIENT_SECRET", c.client_secret.is_none()),
        ("WXCC_REFRESH_TOKEN", c.refresh_token.is_none()),
    ]
    .into_iter()
    .filter_map(|(k, absent)| absent.then_some(k))
    .collect();
    if !missing.is_empty() {
        return Err(AuthError::Missing(format!(
            "nothing to import: {} missing (environment, or KEY=VALUE lines with --stdin)",
            missing.join(", ")
        ))
        .into());
    }
    let (Some(client_id), Some(secret), Some(refresh)) = (
        c.client_id.clone(),
        c.client_secret.clone(),
        c.refresh_token.clone(),
    ) else {
        unreachable!("checked above");
    };
    let key = preflight(&cfg, &client_id)?;
    if args.store_client_secret && key.is_none() {
        // Never store the client secret in clear: it outlives every token.
        return Err(AuthError::Login(
            "--store-client-secret needs a token-store key: set WXCC_TOKEN_KEY (or \
             token_key_file) to the base64 of 32 random bytes, e.g. `openssl rand -base64 32`"
                .into(),
        )
        .into());
    }
    let oauth = OAuthClient::new(
        net::api_http_client(),
        &cfg.oauth_base_url,
        client_id.clone(),
        secret.clone(),
        RetryPolicy::default(),
    )?;
    // A token for another org is refused before the grant spends anything (`save` checks the
    // refreshed token again).
    let named = c
        .access_token
        .as_ref()
        .and_then(|t| org_from_token(t.expose_secret()))
        .or_else(|| org_from_token(refresh.expose_secret()));
    if let (Some(configured), Some(token)) = (&cfg.org_id, named)
        && !configured.eq_ignore_ascii_case(&token)
    {
        return Err(AuthError::OrgMismatch {
            configured: configured.clone(),
            token,
        }
        .into());
    }
    // The refresh grant is the check: it proves the client credentials and the refresh token.
    let fresh = oauth.refresh(&refresh).await?;
    let mut tokens = TokenSet {
        access_token: c.access_token.clone(),
        refresh_token: Some(refresh),
        ..Default::default()
    };
    tokens.absorb(fresh);
    let stored_secret = args.store_client_secret.then_some(secret);
    let (store, stored) = save(&cfg, key, client_id, tokens, stored_secret).await?;
    println!("Imported.");
    describe(&store, &stored);
    if !args.stdin {
        eprintln!(
            "note: unset WXCC_REFRESH_TOKEN and WXCC_ACCESS_TOKEN now: while they are set they \
             take precedence over the token store, and their refreshes are not saved"
        );
    }
    Ok(exit::OK)
}

async fn refresh(config_path: Option<PathBuf>, args: AuthConnection) -> Result<u8> {
    let cfg = auth_config(config_path, args, None)?;
    let provider =
        TokenProvider::from_store_config(&cfg, net::api_http_client(), RetryPolicy::default())?;
    provider.force_refresh().await?;
    let store = find_store(&cfg)?.context("the token store vanished")?;
    let stored = store.read()?.context("the token store vanished")?;
    println!("Refreshed.");
    describe(&store, &stored);
    Ok(exit::OK)
}

async fn logout(config_path: Option<PathBuf>, args: AuthConnection) -> Result<u8> {
    let cfg = auth_config(config_path, args, None)?;
    let Some(store) = find_store(&cfg)? else {
        println!("no stored tokens in {}", cfg.token_dir()?.display());
        return Ok(exit::OK);
    };
    let lock = store.lock().await?;
    if store.delete(&lock)? {
        println!("removed {}", store.path().display());
        eprintln!(
            "note: Webex still holds the grant until the refresh token expires; to revoke it now, \
             remove wxcc's access in the Webex user's settings or delete the Integration"
        );
    }
    Ok(exit::OK)
}

async fn encrypt(config_path: Option<PathBuf>, args: AuthConnection) -> Result<u8> {
    let cfg = auth_config(config_path, args, None)?;
    if StoreKey::from_config(&cfg.token_store)?.is_none() {
        return Err(AuthError::Missing(
            "no token-store key to encrypt with: set WXCC_TOKEN_KEY (or token_key_file) to the \
             base64 of 32 random bytes, e.g. `openssl rand -base64 32`, and keep it"
                .into(),
        )
        .into());
    }
    let Some(store) = find_store(&cfg)? else {
        println!("no stored tokens in {}", cfg.token_dir()?.display());
        return Ok(exit::OK);
    };
    let lock = store.lock().await?;
    if store.encrypt(&lock)? {
        println!("encrypted {}", store.path().display());
    } else {
        println!(
            "{} is already encrypted with this key",
            store.path().display()
        );
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_lines_accept_env_style_and_reject_unknown_keys() {
        let v = parse_import_lines(
            "# from the old email\nexport WXCC_CLIENT_ID=C1\nclient_secret='s e'\n\nREFRESH_TOKEN=\"r\"\n",
        )
        .unwrap();
        assert_eq!(v["CLIENT_ID"].expose_secret(), "C1");
        assert_eq!(v["CLIENT_SECRET"].expose_secret(), "s e");
        assert_eq!(v["REFRESH_TOKEN"].expose_secret(), "r");
        assert!(parse_import_lines("WXCC_REGION=us1").unwrap().is_empty());
        let err = parse_import_lines("no equals sign")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1") && err.contains("KEY=VALUE"), "{err}");
    }
}
