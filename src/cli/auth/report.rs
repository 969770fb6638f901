//! What `wxcc auth status` (and every other `auth` command on success) prints: the store's
//! non-secret facts, and the exit code a scheduler can alert on.

use std::path::PathBuf;

use anyhow::Result;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use super::{StatusArgs, auth_config};
use crate::auth::flow::scope_coverage;
use crate::auth::{StoredTokens, TokenStore, find_store, org_from_token};
use crate::cli::exit;

pub(super) fn status(config_path: Option<PathBuf>, args: StatusArgs) -> Result<u8> {
    let cfg = auth_config(config_path, args.connection, None)?;
    let c = &cfg.credentials;
    if c.refresh_token.is_some() || c.access_token.is_some() {
        eprintln!(
            "note: WXCC_REFRESH_TOKEN or WXCC_ACCESS_TOKEN is set; while it is, runs use it \
             instead of the token store"
        );
    }
    let Some(store) = find_store(&cfg)? else {
        println!(
            "no stored tokens{} in {}: run `wxcc auth login`",
            c.client_id
                .as_deref()
                .map(|id| format!(" for client {id}"))
                .unwrap_or_default(),
            cfg.token_dir()?.display()
        );
        return Ok(exit::REAUTHORIZE);
    };
    let stored = store
        .read()?
        .ok_or_else(|| anyhow::anyhow!("{} vanished", store.path().display()))?;
    describe(&store, &stored);
    let now = Utc::now();
    let t = &stored.tokens;
    let token_org = t
        .access_token
        .as_ref()
        .or(t.refresh_token.as_ref())
        .and_then(|tok| org_from_token(tok.expose_secret()));
    match (&cfg.org_id, &token_org) {
        (Some(conf), Some(tok)) if !conf.eq_ignore_ascii_case(tok) => {
            println!("org check:      MISMATCH: WXCC_ORG_ID is {conf}, the token is for {tok}");
        }
        (Some(_), Some(_)) => println!("org check:      WXCC_ORG_ID matches the token"),
        _ => {}
    }
    let mut problems = Vec::new();
    let captures_ok = match t.scope.as_deref() {
        Some(granted) => scope_coverage(granted).1,
        None => true, // Webex may omit `scope`; nothing to check
    };
    if !captures_ok {
        problems.push("the grant lacks cjp:config_read, which the captures API requires");
    }
    match (&t.refresh_token, t.refresh_expires_at) {
        (None, _) => problems.push("there is no refresh token"),
        (Some(_), Some(at)) if at <= now => problems.push("the refresh token has expired"),
        _ => {}
    }
    if !problems.is_empty() {
        println!(
            "status:         RE-AUTHORIZATION NEEDED ({}): run `wxcc auth login`",
            problems.join("; ")
        );
        return Ok(exit::REAUTHORIZE);
    }
    let warn = chrono::Duration::days(i64::from(args.warn_days));
    if let Some(at) = t.refresh_expires_at
        && at - now <= warn
    {
        println!(
            "status:         REFRESH TOKEN EXPIRES SOON ({}): run `wxcc auth login` before then",
            when(Some(at), now)
        );
        return Ok(exit::REFRESH_EXPIRING);
    }
    println!("status:         ok");
    Ok(exit::OK)
}

/// `2026-01-05T10:00:00Z (in 11h 58m)`, `… (expired 3m ago)` or `unknown`.
fn when(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(at) = at else {
        return "unknown".to_owned();
    };
    let left = at - now;
    let span = |d: chrono::Duration| {
        let m = d.num_minutes().abs();
        match (m / 1440, (m % 1440) / 60, m % 60) {
            (0, 0, m) => format!("{m}m"),
            (0, h, m) => format!("{h}h {m}m"),
            (d, h, _) => format!("{d}d {h}h"),
        }
    };
    let stamp = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if left > chrono::Duration::zero() {
        format!("{stamp} (in {})", span(left))
    } else {
        format!("{stamp} (expired {} ago)", span(left))
    }
}

/// The store's non-secret facts, one per line on standard output.
pub(super) fn describe(store: &TokenStore, stored: &StoredTokens) {
    let now = Utc::now();
    let t = &stored.tokens;
    let encrypted = store.encrypted_on_disk().ok().flatten().unwrap_or(false);
    println!("token store:    {}", store.path().display());
    println!(
        "encrypted:      {}",
        if encrypted {
            "yes (XChaCha20-Poly1305)"
        } else {
            "no (set WXCC_TOKEN_KEY to encrypt at rest)"
        }
    );
    println!("client id:      {}", stored.client_id);
    println!(
        "org id:         {}",
        stored.org_id.as_deref().unwrap_or("unknown")
    );
    let scope = t.scope.as_deref().unwrap_or("not reported by Webex");
    println!("scopes:         {scope} (needed: cjp:config_read)");
    println!(
        "access token:   {}",
        if t.access_token.is_some() {
            when(t.expires_at, now)
        } else {
            "none".to_owned()
        }
    );
    println!(
        "refresh token:  {}",
        if t.refresh_token.is_some() {
            when(t.refresh_expires_at, now)
        } else {
            "none".to_owned()
        }
    );
    if stored.client_secret.is_some() {
        println!("client secret:  stored (imported with --store-client-secret)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_reads_naturally() {
        let now = Utc::now();
        assert!(when(Some(now + chrono::Duration::minutes(90)), now).contains("in 1h 30m"));
        assert!(when(Some(now - chrono::Duration::days(2)), now).contains("expired 2d 0h ago"));
        assert_eq!(when(None, now), "unknown");
    }
}
