//! `wxcc state show|reset`: read an org's sync state (watermark, lease, last runs) from the
//! output store, and move its watermark on purpose.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Result;
use chrono::Utc;
use clap::{Args, Subcommand};
use serde_json::json;

use super::exit;
use crate::config::{self, Overrides};
use crate::lake::Lake;
use crate::sync::lease::LeaseConfig;
use crate::sync::ledger::Ledger;
use crate::sync::state::{self, OrgState};

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub command: StateCommand,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Print an org's watermark, lease (holder, expiry) and last runs as JSON.
    Show(ShowArgs),
    /// Move an org's watermark on purpose (takes the lease, so never under a running sync).
    Reset(ResetArgs),
}

#[derive(Debug, Args)]
pub struct Target {
    /// Organization id (default: WXCC_ORG_ID, the config file, or the only org in the output).
    #[arg(long, env = "WXCC_ORG_ID")]
    pub org: Option<String>,
    /// Output location, as given to sync. Default: WXCC_OUTPUT, the config file, ./wxcc-data.
    #[arg(long, short, env = "WXCC_OUTPUT")]
    pub output: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub target: Target,
    /// How many of the latest run summaries to include.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    #[command(flatten)]
    pub target: Target,
    /// New watermark: YYYY-MM-DD (UTC midnight) or RFC 3339. The next scheduled sync continues
    /// from here (minus the look-back).
    #[arg(long)]
    pub to: String,
    /// Do not ask for confirmation (required when standard input is not a terminal).
    #[arg(long)]
    pub yes: bool,
}

/// A refusal that is the caller's to fix (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(String);

pub async fn run(config_path: Option<PathBuf>, args: StateArgs) -> Result<u8> {
    match args.command {
        StateCommand::Show(a) => show(config_path, a).await,
        StateCommand::Reset(a) => reset(config_path, a).await,
    }
}

async fn open(config_path: Option<PathBuf>, target: Target) -> Result<(Lake, OrgState)> {
    let flags = Overrides {
        org_id: target.org,
        output: target.output,
        ..Default::default()
    };
    let (values, _) = super::load_layers(config_path, flags)?;
    let lake = super::open_lake(&config::StorageConfig::resolve(&values)?)?;
    let org = match values.org_id {
        Some(org) => org,
        None => only_org(&lake).await?,
    };
    crate::lake::partition::validate_org_id(&org).map_err(|_| {
        Usage(format!(
            "organization id {org:?} is not a plain UUID-like token"
        ))
    })?;
    let state = OrgState::new(&lake, &org);
    Ok((lake, state))
}

/// The orgs an output holds sync state for.
async fn orgs_with_state(lake: &Lake) -> Result<Vec<String>> {
    Ok(lake.org_ids("_state").await?)
}

/// The org of an output that holds state for exactly one.
async fn only_org(lake: &Lake) -> Result<String> {
    let orgs = orgs_with_state(lake).await?;
    match orgs.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Usage(format!(
            "no sync state in {}: name the org with --org (or WXCC_ORG_ID)",
            lake.url()
        ))
        .into()),
        several => Err(Usage(format!(
            "{} holds state for several orgs ({}): pick one with --org",
            lake.url(),
            several.join(", ")
        ))
        .into()),
    }
}

async fn show(config_path: Option<PathBuf>, args: ShowArgs) -> Result<u8> {
    let (lake, state) = open(config_path, args.target).await?;
    // A mistyped org (or another case of it) would show as a blank state with exit 0.
    let known = orgs_with_state(&lake).await?;
    if !known.iter().any(|o| o == state.org()) {
        return Err(Usage(format!(
            "no sync state for org {} in {} (orgs with state: {}): check --org",
            state.org(),
            lake.url(),
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))
        .into());
    }
    let watermark = state.watermark().await?;
    let lease = state.lease().await?.map(|l| {
        let status = if l.released {
            "released"
        } else if l.is_dead(Utc::now()) {
            "expired"
        } else {
            "held"
        };
        let mut v = serde_json::to_value(&l).expect("lease serializes");
        v["status"] = json!(status);
        v
    });
    let runs = state.runs(args.runs).await?;
    // The give-up age only matters when entries are recorded; reading needs none.
    let ledger = Ledger::load(&lake, state.org(), chrono::Duration::days(7)).await?;
    let failures: Vec<serde_json::Value> = ledger
        .failures()
        .into_iter()
        .map(|(task_id, e)| json!({"task_id": task_id, "entry": e}))
        .collect();
    let out = json!({
        "org_id": state.org(),
        "output": lake.url().as_str(),
        "watermark": watermark,
        "lease": lease,
        "runs": runs,
        "ledger": {
            "counts": ledger.counts(),
            "settled_until": ledger.settled_until(),
            "gaps": ledger.gaps(),
            "failures": failures,
        },
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(exit::OK)
}

async fn reset(config_path: Option<PathBuf>, args: ResetArgs) -> Result<u8> {
    let to = config::parse_time("--to", &args.to)?;
    let (lake, state) = open(config_path, args.target).await?;
    // An unreadable watermark is what a reset repairs: shown as such, then overwritten.
    let before = match state.watermark().await {
        Ok(w) => Ok(w.map(|w| w.synced_until)),
        Err(state::StateError::Corrupt { reason, .. }) => {
            tracing::warn!(%reason, "the current watermark is unreadable; it will be replaced");
            Err(())
        }
        Err(e) => return Err(e.into()),
    };
    let shown = match before {
        Ok(Some(b)) => b.to_rfc3339(),
        Ok(None) => "unset".to_owned(),
        Err(()) => "an unreadable value".to_owned(),
    };
    let before = before.ok().flatten();
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Usage(format!(
                "refusing to move the watermark of org {} from {shown} to {} without \
                 confirmation: add --yes",
                state.org(),
                to.to_rfc3339()
            ))
            .into());
        }
        eprint!(
            "Move the watermark of org {} in {} from {shown} to {}? [y/N] ",
            state.org(),
            lake.url(),
            to.to_rfc3339()
        );
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Err(Usage("not confirmed; the watermark is unchanged".into()).into());
        }
    }
    let run_id = uuid::Uuid::new_v4().to_string();
    let lease = state
        .lock(&state::holder_label(), &run_id, LeaseConfig::default())
        .await?;
    let moved = state.reset(&lease.fence(), to).await;
    lease.release().await?;
    moved?;
    tracing::info!(org = state.org(), from = %shown, to = %to, "watermark reset");
    let out = json!({
        "org_id": state.org(),
        "watermark_before": before,
        "watermark": to,
    });
    println!("{}", serde_json::to_string(&out)?);
    Ok(exit::OK)
}

/// Whether an error is a refusal of this module (exit code 2).
pub fn is_usage_error(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<Usage>().is_some()
}
