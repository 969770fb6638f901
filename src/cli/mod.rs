//! Command-line interface: clap commands that turn flags, environment and `wxcc.toml` into
//! plain config structs and call the library. No business logic lives here.

mod demo;
mod sim;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{Duration, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::ApiError;
use crate::auth::AuthError;
use crate::config::{self, Config, ConfigError, FileConfig, Overrides};
use crate::lake::Lake;
use crate::query::{self, OutputFormat, QuerySession};
use crate::sync::{self, SyncContext, SyncError, SyncOptions, SyncSummary};

/// Documented exit codes, for schedulers.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const REAUTHORIZE: u8 = 3;
    pub const PARTIAL: u8 = 4;
}

#[derive(Debug, Parser)]
#[command(
    name = "wxcc",
    version,
    about = "Export Webex Contact Center recordings and metadata to Parquet and object storage"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Configuration file (default: ./wxcc.toml if present).
    #[arg(long, global = true, env = "WXCC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More logging (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy tasks, capture metadata and recordings for a time range into the output store.
    Sync(SyncArgs),
    /// Run SQL over the tasks, captures and manifest tables.
    Sql(SqlArgs),
    /// Serve the built-in WxCC API simulator on 127.0.0.1.
    Sim(sim::SimArgs),
    /// Simulator → sync → Parquet + audio → SQL, in one command.
    Demo(demo::DemoArgs),
}

/// Connection settings shared by the commands that call the API. Secrets are deliberately not
/// flags: they come from the environment or wxcc.toml.
#[derive(Debug, Args, Default)]
pub struct ConnectionArgs {
    /// WxCC region (us1, eu1, eu2, anz1, ca1, jp1, sg1, in1).
    #[arg(long, env = "WXCC_REGION")]
    pub region: Option<String>,
    /// WxCC API base URL (overrides --region).
    #[arg(long, env = "WXCC_API_BASE_URL")]
    pub api_base_url: Option<String>,
    /// Webex OAuth base URL.
    #[arg(long, env = "WXCC_OAUTH_BASE_URL")]
    pub oauth_base_url: Option<String>,
    /// WxCC organization id (UUID).
    #[arg(long, env = "WXCC_ORG_ID")]
    pub org_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Start of the range, inclusive: YYYY-MM-DD (UTC midnight) or RFC 3339. Default: 24 h ago.
    #[arg(long)]
    pub from: Option<String>,
    /// End of the range, exclusive: YYYY-MM-DD (UTC midnight) or RFC 3339. Default: now.
    #[arg(long)]
    pub to: Option<String>,
    /// Output location: a path, file://, s3://, gs:// or az:// URL. Default ./wxcc-data.
    #[arg(long, short, env = "WXCC_OUTPUT")]
    pub output: Option<String>,
    /// Concurrent recording downloads.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// API requests per minute (a ceiling; the documented limit is 300).
    #[arg(long)]
    pub rate_limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The SQL statement, or @NAME for a saved query from queries/.
    pub sql: String,
    /// Data location (as written by sync). Default: WXCC_OUTPUT or ./wxcc-data.
    #[arg(long, env = "WXCC_OUTPUT")]
    pub data: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

impl From<Format> for OutputFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Table => OutputFormat::Table,
            Format::Csv => OutputFormat::Csv,
            Format::Json => OutputFormat::Json,
        }
    }
}

/// Runs a parsed command line and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Sync(args) => run_sync(cli.config, args).await,
        Command::Sql(args) => run_sql(args).await.map(|()| exit::OK),
        Command::Sim(args) => sim::run(args).await.map(|()| exit::OK),
        Command::Demo(args) => demo::run(args).await,
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}

/// Maps an error chain to a documented exit code.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<ConfigError>().is_some()
            || matches!(cause.downcast_ref(), Some(SyncError::Config(_)))
        {
            return exit::USAGE;
        }
        if let Some(crate::lake::LakeError::UnsupportedLocation { .. }) = lake_error(cause) {
            return exit::USAGE;
        }
        match auth_error(cause) {
            Some(AuthError::ReauthorizationRequired { .. }) => return exit::REAUTHORIZE,
            Some(AuthError::Missing(_)) => return exit::USAGE,
            _ => {}
        }
    }
    exit::FAILURE
}

/// Finds a lake error, alone or wrapped (transparently) in a sync error.
fn lake_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a crate::lake::LakeError> {
    match e.downcast_ref::<SyncError>() {
        Some(SyncError::Lake(l)) => Some(l),
        _ => e.downcast_ref(),
    }
}

/// Finds an auth error wrapped (transparently) in the API or sync errors.
fn auth_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a AuthError> {
    let api = |a: &'a ApiError| match a {
        ApiError::Auth(auth) => Some(auth),
        _ => None,
    };
    if let Some(a) = e.downcast_ref::<AuthError>() {
        return Some(a);
    }
    if let Some(a) = e.downcast_ref::<ApiError>() {
        return api(a);
    }
    match e.downcast_ref::<SyncError>() {
        Some(SyncError::Api(a)) => api(a),
        Some(SyncError::Auth(a)) => Some(a),
        _ => None,
    }
}

/// Layers wxcc.toml < environment < flags.
fn load_config(config_path: Option<PathBuf>, flags: Overrides) -> Result<Config> {
    let (path, explicit) = match config_path {
        Some(p) => (p, true),
        None => (PathBuf::from("wxcc.toml"), false),
    };
    let file = FileConfig::load(&path, explicit)?;
    let sync_file = file.sync.clone();
    let env: HashMap<String, String> = std::env::vars().collect();
    let values = flags.over(Overrides::from_env(&env).over(file.into()));
    Ok(Config::resolve(values, &sync_file)?)
}

async fn run_sync(config_path: Option<PathBuf>, args: SyncArgs) -> Result<u8> {
    let now = Utc::now();
    let to = match &args.to {
        Some(t) => config::parse_time("--to", t)?,
        None => now,
    };
    let from = match &args.from {
        Some(f) => config::parse_time("--from", f)?,
        None => to - Duration::hours(24),
    };
    let (from, to) = config::time_range(from, to)?;
    let flags = Overrides {
        region: args.connection.region,
        api_base_url: args.connection.api_base_url,
        oauth_base_url: args.connection.oauth_base_url,
        org_id: args.connection.org_id,
        output: args.output,
        rate_limit_per_minute: args.rate_limit,
        download_concurrency: args.concurrency,
        ..Default::default()
    };
    let cfg = load_config(config_path, flags)?;
    let ctx = SyncContext::from_config(&cfg)?;
    let opts = SyncOptions {
        from,
        to,
        download_concurrency: cfg.download_concurrency,
        org_id: cfg.org_id.clone(),
    };
    tracing::info!(output = %ctx.lake.url(), %from, %to, "sync starting");
    let summary = sync::run(&ctx, &opts).await?;
    print_summary(&summary)?;
    Ok(if summary.is_partial() {
        exit::PARTIAL
    } else {
        exit::OK
    })
}

/// The run summary as one JSON line on standard output, for schedulers to collect.
fn print_summary(summary: &SyncSummary) -> Result<()> {
    println!("{}", serde_json::to_string(summary)?);
    Ok(())
}

async fn run_sql(args: SqlArgs) -> Result<()> {
    let location = args
        .data
        .unwrap_or_else(|| config::DEFAULT_OUTPUT.to_owned());
    let sql = match args.sql.strip_prefix('@') {
        Some(name) => query::saved_query(name)
            .with_context(|| {
                let names: Vec<&str> = query::saved_queries().iter().map(|q| q.name).collect();
                format!("no saved query {name:?}; available: {}", names.join(", "))
            })?
            .sql
            .to_owned(),
        None => args.sql,
    };
    let lake = Lake::open(&location)?;
    let session = QuerySession::open(&lake).await?;
    let batches = session.sql(&sql).await?;
    print!("{}", query::format_batches(&batches, args.format.into())?);
    Ok(())
}
