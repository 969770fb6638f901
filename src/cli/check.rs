//! `wxcc check`: one line per check, exit 0 only when all pass. See `crate::check`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::{ConnectionArgs, exit, exit_code, load_org_configs};
use crate::check::{self, Check, CheckOptions, Class, Status};
use crate::config::Overrides;

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Output location to probe (as for `wxcc sync`).
    #[arg(long, short, env = "WXCC_OUTPUT")]
    pub output: Option<String>,
    /// One JSON object on standard output instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Fail when the refresh token expires within this many days.
    #[arg(long, default_value_t = 7)]
    pub warn_days: u32,
    /// Free space the scratch directory needs, in MiB (derivatives of a long call need a few
    /// hundred).
    #[arg(long, env = "WXCC_CHECK_SCRATCH_MIB", default_value_t = 1024)]
    pub scratch_mib: u64,
    /// Free space a lake on local disk needs, in MiB (a run that fills the disk stops).
    #[arg(long, env = "WXCC_CHECK_LAKE_MIB", default_value_t = 1024)]
    pub lake_mib: u64,
    /// Largest tolerated difference between the local clock and the API's, in seconds.
    #[arg(long, default_value_t = 60)]
    pub max_skew_secs: u64,
}

pub async fn run(config_path: Option<PathBuf>, args: CheckArgs) -> Result<u8> {
    let flags = Overrides {
        region: args.connection.region.clone(),
        api_base_url: args.connection.api_base_url.clone(),
        oauth_base_url: args.connection.oauth_base_url.clone(),
        org_id: args.connection.org_id.clone(),
        output: args.output.clone(),
        ..Default::default()
    };
    let configs = match load_org_configs(config_path, flags) {
        Ok(c) => c,
        Err(e) => {
            let code = exit_code(&e);
            let line = Check::fail(
                "config",
                if code == exit::USAGE {
                    Class::Config
                } else {
                    Class::Failure
                },
                super::describe(&e),
            );
            print(&args, &[(None, vec![line])], code);
            return Ok(code);
        }
    };
    let opts = CheckOptions {
        refresh_warn: chrono::Duration::days(i64::from(args.warn_days)),
        scratch_min_bytes: args.scratch_mib.saturating_mul(1024 * 1024),
        lake_min_bytes: args.lake_mib.saturating_mul(1024 * 1024),
        max_skew: Duration::from_secs(args.max_skew_secs),
        default_scratch: std::env::temp_dir(),
    };
    let mut reports = Vec::with_capacity(configs.len());
    for cfg in &configs {
        let mut checks = vec![Check::pass(
            "config",
            format!("parsed; output {}, API {}", cfg.output, cfg.api_base_url),
        )];
        checks.extend(check::run(cfg, &opts).await);
        reports.push((cfg.org_id.clone(), checks));
    }
    let code = reports
        .iter()
        .find_map(|(_, c)| check::first_failure(c))
        .map_or(exit::OK, class_code);
    print(&args, &reports, code);
    Ok(code)
}

fn class_code(class: Class) -> u8 {
    match class {
        Class::Config => exit::USAGE,
        Class::Auth => exit::REAUTHORIZE,
        Class::Failure => exit::FAILURE,
    }
}

fn print(args: &CheckArgs, reports: &[(Option<String>, Vec<Check>)], code: u8) {
    if args.json {
        let orgs: Vec<_> = reports
            .iter()
            .map(|(org, checks)| serde_json::json!({ "org_id": org, "checks": checks }))
            .collect();
        println!(
            "{}",
            serde_json::json!({ "ok": code == exit::OK, "exit_code": code, "orgs": orgs })
        );
        return;
    }
    for (org, checks) in reports {
        if reports.len() > 1 {
            println!("org {}", org.as_deref().unwrap_or("(from token)"));
        }
        for c in checks {
            let mark = match c.status {
                Status::Pass => "ok  ",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            println!("{mark} {:<8} {}", c.name, c.detail);
        }
    }
}
