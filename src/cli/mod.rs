//! Command-line interface: clap commands that turn flags, environment and `wxcc.toml` into
//! plain config structs and call the library. No business logic lives here.

mod audio;
mod auth;
mod check;
pub mod demo;
mod listen;
mod observe;
#[cfg(feature = "query")]
mod query;
/// Stand-ins for the DataFusion commands in a build without the `query` feature.
#[cfg(not(feature = "query"))]
#[path = "without_query.rs"]
mod query;
#[cfg(feature = "query")]
mod report;
#[cfg(not(feature = "query"))]
use query as report;
mod schema;
mod sim;
mod state;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use chrono::{Duration, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tracing::Instrument;

use crate::api::ApiError;
use crate::auth::AuthError;
use crate::config::{self, Config, ConfigError, FileConfig, Overrides};
use crate::sync::lease::LeaseConfig;
use crate::sync::{self, SyncContext, SyncError, SyncOptions, SyncRange, SyncSummary};

/// Documented exit codes, for schedulers.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const REAUTHORIZE: u8 = 3;
    pub const PARTIAL: u8 = 4;
    /// Stopped by SIGTERM/SIGINT: what was complete is committed, the next run continues.
    pub const STOPPED: u8 = 6;
    /// `wxcc auth status`: the refresh token expires within `--warn-days`.
    pub const REFRESH_EXPIRING: u8 = 5;
    /// Another run holds the org's lease; nothing was written (EX_TEMPFAIL: try again later).
    pub const LOCKED: u8 = 75;
}

/// The exit codes of [`exit`], as `wxcc --help` shows them (README: "Exit codes").
const EXIT_CODES_HELP: &str = "\
Exit codes:
   0  ok
   1  failure (network, API, storage, lease lost mid-run)
   2  bad usage or configuration
   3  re-authorization needed: run `wxcc auth login`
   4  partial: something is left for the next run (sync, demo; several orgs: some ok, some
      partial or locked; an export that leaves selected recordings out)
   5  `wxcc auth status`: the refresh token expires within --warn-days
   6  stopped by SIGTERM/SIGINT; what was complete is committed
  75  another run holds the org's lease; nothing written, try again later";

#[derive(Debug, Parser)]
#[command(
    name = "wxcc",
    version,
    about = "Export Webex Contact Center recordings and metadata to Parquet and object storage",
    after_help = EXIT_CODES_HELP
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
    /// Run SQL over the tables (tasks, captures, manifest, audio_facts) and the recordings view.
    Sql(query::SqlArgs),
    /// List or run the saved, parameterised queries (queries/*.sql).
    Query(query::QueryArgs),
    /// Write a transcription job list: one line per recording, optionally with pre-signed URLs.
    Export(query::ExportArgs),
    /// Receive `capture:available` webhooks and store each recording within seconds
    /// (a durable local queue, the same tables as sync; sync stays the source of truth).
    Listen(listen::ListenArgs),
    /// Serve the built-in WxCC API simulator on 127.0.0.1.
    Sim(sim::SimArgs),
    /// Simulator → sync → Parquet + audio → SQL, in one command.
    Demo(demo::DemoArgs),
    /// Authorize wxcc with Webex and manage the stored tokens.
    Auth(auth::AuthArgs),
    /// Show an org's sync state (watermark, lease, last runs), or move its watermark.
    State(state::StateArgs),
    /// Analyse local WAV files: the audio facts the sync stores, as JSON.
    Audio(audio::AudioArgs),
    /// Pre-flight for a scheduled run: configuration, token and scopes, one API call, the
    /// output store, scratch space and the clock, one line each. Exit 0 only if all pass.
    Check(check::CheckArgs),
    /// Write an HTML report (charts of calls, recording coverage, audio facts, sync health) or
    /// its figures as JSON.
    Report(report::ReportArgs),
    /// Print the tables' column documentation (from schemas/) as Markdown, JSON or a dbt
    /// sources.yml.
    Schema(schema::SchemaArgs),
    /// Print DuckDB statements that define the tables and the recordings view over a lake.
    DuckdbInit(schema::DuckdbInitArgs),
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
    /// Start of a backfill, inclusive: YYYY-MM-DD (UTC midnight) or RFC 3339. Without --from
    /// and --to, sync continues from the stored watermark (minus the look-back window).
    #[arg(long)]
    pub from: Option<String>,
    /// End of a backfill, exclusive: YYYY-MM-DD (UTC midnight) or RFC 3339. Default: now.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Plan only: print the windows that would be synced and the requests they need at least,
    /// call no data API.
    #[arg(long)]
    pub dry_run: bool,
    /// Ask for the captures of every listed call again, not only new, changed and due ones
    /// (an audit or repair of a range).
    #[arg(long)]
    pub full_refresh: bool,
    /// Re-hash stored audio before trusting it (default: a matching size is enough).
    #[arg(long)]
    pub verify_checksums: bool,
    /// Customer contact fields (origin, destination, participants) in any notation: keep, hash
    /// (keyed with WXCC_PII_KEY) or mask.
    #[arg(long, env = "WXCC_PII")]
    pub pii: Option<String>,
    /// ML-ready files beside each recording: mono16k (16 kHz mono mix), channels (one 16 kHz
    /// file per party), or none. Comma-separated; recorded in the `derivatives` table.
    #[arg(long, value_delimiter = ',', env = "WXCC_DERIVE")]
    pub derive: Option<Vec<String>>,
    /// Output location: a path, file://, s3://, gs:// or az:// URL. Default ./wxcc-data.
    #[arg(long, short, env = "WXCC_OUTPUT")]
    pub output: Option<String>,
    /// Concurrent recording downloads.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// API requests per minute (a ceiling; the documented limit is 300).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Length of the org lease in seconds; renewed every third of it while the run goes on.
    #[arg(long, env = "WXCC_LEASE_SECS", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_secs: u64,
    /// Write Prometheus metrics of the run here at its end, failed or not (node_exporter
    /// textfile collector: the file is replaced atomically).
    #[arg(long, env = "WXCC_METRICS_FILE", value_parser = file_in_a_folder)]
    pub metrics_file: Option<PathBuf>,
    /// Append OpenLineage run events (START, then COMPLETE or FAIL) to this file, one JSON
    /// event per line.
    #[arg(
        long,
        env = "WXCC_OPENLINEAGE_FILE",
        conflicts_with = "openlineage_url",
        value_parser = file_in_a_folder
    )]
    pub openlineage_file: Option<PathBuf>,
    /// POST OpenLineage run events to this endpoint (e.g. http://marquez:5000/api/v1/lineage).
    #[arg(long, env = "WXCC_OPENLINEAGE_URL", value_parser = http_url)]
    pub openlineage_url: Option<url::Url>,
}

/// Observers never fail a run once it started (see `observe`), so what can be checked before
/// it is: a scheduled job would otherwise lose every event with only a warning.
fn file_in_a_folder(value: &str) -> std::result::Result<PathBuf, String> {
    let path = PathBuf::from(value);
    let folder = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if folder.is_dir() {
        Ok(path)
    } else {
        Err(format!("its folder {} does not exist", folder.display()))
    }
}

fn http_url(value: &str) -> std::result::Result<url::Url, String> {
    let url = url::Url::parse(value).map_err(|e| e.to_string())?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!(
            "expected an http:// or https:// URL, not {other}://"
        )),
    }
}

/// Runs a parsed command line and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let log_format = cli.log_format;
    let result = match cli.command {
        Command::Sync(args) => run_sync(cli.config, args, log_format).await,
        Command::Sql(args) => query::run_sql(cli.config, args).await.map(|()| exit::OK),
        Command::Query(args) => query::run_query(cli.config, args).await.map(|()| exit::OK),
        Command::Export(args) => query::run_export(cli.config, args).await,
        Command::Sim(args) => sim::run(args).await.map(|()| exit::OK),
        Command::Listen(args) => listen::run(cli.config, args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Auth(args) => auth::run(cli.config, args).await,
        Command::State(args) => state::run(cli.config, args).await,
        Command::Audio(args) => audio::run(args).await,
        Command::Check(args) => check::run(cli.config, args).await,
        Command::Report(args) => report::run(cli.config, args).await.map(|()| exit::OK),
        Command::Schema(args) => schema::run_schema(args).map(|()| exit::OK),
        Command::DuckdbInit(args) => schema::run_duckdb_init(cli.config, args)
            .await
            .map(|()| exit::OK),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let code = exit_code(&err);
            report_error(log_format, None, &err, code);
            ExitCode::from(code)
        }
    }
}

/// The error that ends a command (or one org's sync), in the configured log format: a plain
/// `error: …` line, or one JSON log line for schedulers.
fn report_error(format: LogFormat, org: Option<&str>, err: &anyhow::Error, code: u8) {
    let message = describe(err);
    match (format, org) {
        (LogFormat::Text, None) => eprintln!("error: {message}"),
        (LogFormat::Text, Some(org)) => eprintln!("error: org {org}: {message}"),
        (LogFormat::Json, org) => {
            tracing::error!(error = %message, exit_code = code, org, "wxcc failed")
        }
    }
}

/// The error and its causes on one line. Most errors (ours and object_store's) already name
/// their cause in their own message, so a cause is added only when it says something new: a
/// full disk once read "… No space left on device (os error 28)" three times over.
pub(crate) fn describe(err: &anyhow::Error) -> String {
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !text.is_empty() && !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

/// Maps an error chain to a documented exit code.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if matches!(
            cause.downcast_ref(),
            Some(sync::state::StateError::Locked { .. })
        ) || cause
            .downcast_ref::<SyncError>()
            .is_some_and(SyncError::is_locked)
        {
            return exit::LOCKED;
        }
        if state::is_usage_error(cause) {
            return exit::USAGE;
        }
        if cause.downcast_ref::<ConfigError>().is_some()
            || matches!(
                cause.downcast_ref(),
                Some(SyncError::Config(_) | SyncError::OrgMismatch { .. })
            )
        {
            return exit::USAGE;
        }
        if let Some(
            crate::lake::LakeError::UnsupportedLocation { .. }
            | crate::lake::LakeError::StoreConfig { .. }
            | crate::lake::LakeError::UnknownOption { .. },
        ) = lake_error(cause)
        {
            return exit::USAGE;
        }
        if query::is_usage_error(cause) || report::is_usage_error(cause) {
            return exit::USAGE;
        }
        if let Some(e) = cause.downcast_ref::<crate::auth::StoreError>()
            && e.is_usage()
        {
            return exit::USAGE;
        }
        match auth_error(cause) {
            Some(AuthError::ReauthorizationRequired { .. }) => return exit::REAUTHORIZE,
            Some(a) if a.is_usage() => return exit::USAGE,
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
/// One configuration per organization to sync: the `[[orgs]]` of wxcc.toml (only the one named
/// by --org-id / WXCC_ORG_ID when given), or the single top-level org.
fn load_org_configs(config_path: Option<PathBuf>, flags: Overrides) -> Result<Vec<Config>> {
    let (values, sync_file, orgs) = load_file_layers(config_path, flags)?;
    if orgs.is_empty() {
        return Ok(vec![Config::resolve(values, &sync_file)?]);
    }
    // `values.org_id` comes from --org-id or WXCC_ORG_ID only: the file's own top-level org_id
    // is refused next to [[orgs]] (by `load_file_layers`).
    let selected = select_orgs(&orgs, values.org_id.as_deref())?;
    let several = selected.len() > 1;
    selected
        .into_iter()
        .map(|org| Ok(Config::resolve(values.for_org(org, several)?, &sync_file)?))
        .collect()
}

/// The `[[orgs]]` entries a command is for: the one `wanted` names (without case), else all.
/// Each entry must name a plain org id, once: two spellings of one org would get two leases and
/// two sets of partitions, and a repeated entry would be synced twice.
fn select_orgs<'a>(
    orgs: &'a [config::OrgFileConfig],
    wanted: Option<&str>,
) -> std::result::Result<Vec<&'a config::OrgFileConfig>, ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for org in orgs {
        crate::lake::partition::validate_org_id(&org.org_id)
            .map_err(|_| ConfigError::BadOrgId(org.org_id.clone()))?;
        if !seen.insert(org.org_id.to_ascii_lowercase()) {
            return Err(ConfigError::DuplicateOrg(org.org_id.clone()));
        }
    }
    let Some(wanted) = wanted else {
        return Ok(orgs.iter().collect());
    };
    let matching: Vec<_> = orgs
        .iter()
        .filter(|o| o.org_id.eq_ignore_ascii_case(wanted))
        .collect();
    if matching.is_empty() && !orgs.is_empty() {
        let listed: Vec<&str> = orgs.iter().map(|o| o.org_id.as_str()).collect();
        return Err(ConfigError::UnknownOrg(
            wanted.to_owned(),
            listed.join(", "),
        ));
    }
    Ok(matching)
}

/// The merged values of wxcc.toml < environment < flags, and the file's `[sync]` table.
fn load_layers(
    config_path: Option<PathBuf>,
    flags: Overrides,
) -> Result<(Overrides, config::SyncFileConfig)> {
    let (values, sync, _) = load_file_layers(config_path, flags)?;
    Ok((values, sync))
}

fn load_file_layers(
    config_path: Option<PathBuf>,
    flags: Overrides,
) -> Result<(
    Overrides,
    config::SyncFileConfig,
    Vec<config::OrgFileConfig>,
)> {
    let (path, explicit) = match config_path {
        Some(p) => (p, true),
        None => (PathBuf::from("wxcc.toml"), false),
    };
    let file = FileConfig::load(&path, explicit)?;
    if !file.orgs.is_empty() && file.org_id.is_some() {
        return Err(ConfigError::OrgBesideOrgs.into());
    }
    let sync_file = file.sync.clone();
    let orgs = file.orgs.clone();
    let env: HashMap<String, String> = std::env::vars().collect();
    Ok((
        flags.over(Overrides::from_env(&env).over(file.into())),
        sync_file,
        orgs,
    ))
}

async fn run_sync(
    config_path: Option<PathBuf>,
    args: SyncArgs,
    log_format: LogFormat,
) -> Result<u8> {
    let from = args
        .from
        .as_deref()
        .map(|f| config::parse_time("--from", f))
        .transpose()?;
    let to = args
        .to
        .as_deref()
        .map(|t| config::parse_time("--to", t))
        .transpose()?;
    let flags = Overrides {
        region: args.connection.region.clone(),
        api_base_url: args.connection.api_base_url.clone(),
        oauth_base_url: args.connection.oauth_base_url.clone(),
        org_id: args.connection.org_id.clone(),
        output: args.output.clone(),
        rate_limit_per_minute: args.rate_limit,
        download_concurrency: args.concurrency,
        pii: args.pii.clone(),
        derive: args.derive.clone(),
        ..Default::default()
    };
    let configs = match load_org_configs(config_path, flags) {
        Ok(c) => c,
        Err(err) => {
            let org = args.connection.org_id.clone().unwrap_or_default();
            observe::write_metrics(
                args.metrics_file.as_deref(),
                &[(org, None, exit_code(&err))],
            );
            return Err(err);
        }
    };
    let mut runs: Vec<(String, Option<SyncSummary>, u8)> = Vec::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let signals = tokio::spawn(watch_signals(stop.clone()));
    let mut codes = Vec::with_capacity(configs.len());
    for cfg in &configs {
        let org = cfg.org_id.as_deref().unwrap_or("(from token)");
        if stop.is_cancelled() {
            // Still a metrics series: a skipped org must not vanish from "last run" alerts.
            runs.push((org.to_owned(), None, exit::STOPPED));
            codes.push(exit::STOPPED);
            continue;
        }
        let span = tracing::info_span!("org", org);
        let lineage = observe::Lineage::start(&args, cfg).await;
        let mut lake_root = None;
        let run_id = lineage.as_ref().map(|l| l.run_id.clone());
        let outcome = sync_org(cfg, from, to, &args, &stop, run_id, &mut lake_root)
            .instrument(span)
            .await;
        if let Some(lineage) = &lineage {
            lineage.end(&outcome, lake_root.as_ref()).await;
        }
        // A run that got as far as a summary prints it, failed or not.
        let mut summary = None;
        let outcome = outcome.and_then(|report| {
            print_summary(&report.summary)?;
            summary = Some(report.summary.clone());
            match report.error {
                None => Ok(report.summary),
                Some(e) => Err(e.into()),
            }
        });
        let label = summary
            .as_ref()
            .and_then(|s| s.org_id.clone())
            .unwrap_or_else(|| org.to_owned());
        let code = match &outcome {
            Ok(summary) if summary.stopped => exit::STOPPED,
            Ok(summary) if summary.is_partial() => exit::PARTIAL,
            Ok(_) => exit::OK,
            Err(err) => exit_code(err),
        };
        runs.push((label, summary, code));
        codes.push(code);
        match outcome {
            // One org failing does not stop the others; a single org fails as usual.
            Err(err) if configs.len() > 1 => report_error(log_format, Some(org), &err, code),
            Err(err) => {
                observe::write_metrics(args.metrics_file.as_deref(), &runs);
                return Err(err);
            }
            Ok(_) => {}
        }
    }
    signals.abort();
    observe::write_metrics(args.metrics_file.as_deref(), &runs);
    Ok(combine_exit_codes(&codes))
}

/// First SIGTERM or SIGINT: a graceful stop (no new work, transfers in flight aborted with their
/// uploads, what is complete committed, the lease released). A second one exits at once.
async fn watch_signals(stop: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::warn!(
        signal = name,
        "stopping: committing what is complete and releasing the lease (a second signal exits at once)"
    );
    stop.cancel();
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::error!("second signal: exiting at once; the next run redoes what was in flight");
    std::process::exit(i32::from(exit::STOPPED));
}

/// Several orgs: all alike → that code. Otherwise the code a person or a scheduler must act on
/// wins: bad configuration (2), then a login (3), then a failure (1), then a stop (6); any other
/// mix (some ok, partial or locked) → 4. A mix must not hide an org that needs a login behind a
/// 4, which schedulers count as "the next run finishes it".
fn combine_exit_codes(codes: &[u8]) -> u8 {
    const FIRST: [u8; 4] = [exit::USAGE, exit::REAUTHORIZE, exit::FAILURE, exit::STOPPED];
    match codes {
        [] => exit::OK,
        [first, rest @ ..] if rest.iter().all(|c| c == first) => *first,
        _ => FIRST
            .into_iter()
            .find(|c| codes.contains(c))
            .unwrap_or(exit::PARTIAL),
    }
}

/// The run policy from configuration; `WXCC_NOW` (RFC 3339) pins the run's notion of now, for
/// replays and for tests against the simulator's clock.
pub fn sync_policy(cfg: &Config, full_refresh: bool) -> Result<sync::SyncPolicy> {
    let now = match std::env::var("WXCC_NOW") {
        Ok(v) if !v.trim().is_empty() => Some(config::parse_time("WXCC_NOW", v.trim())?),
        _ => None,
    };
    Ok(sync::SyncPolicy {
        full_refresh,
        settle_after: Duration::hours(i64::from(cfg.settle_hours)),
        give_up_after: Duration::days(i64::from(cfg.give_up_days)),
        commit_every: cfg.commit_every_recordings,
        commit_interval: std::time::Duration::from_secs(cfg.commit_every_secs),
        tasks_per_part: cfg.tasks_per_part,
        now,
    })
}

async fn sync_org(
    cfg: &Config,
    from: Option<chrono::DateTime<Utc>>,
    to: Option<chrono::DateTime<Utc>>,
    args: &SyncArgs,
    stop: &tokio_util::sync::CancellationToken,
    run_id: Option<String>,
    lake_root: &mut Option<url::Url>,
) -> Result<sync::RunReport> {
    // Verifying checksums re-reads every stored recording, so every task is asked about again
    // (a damaged one needs a fresh download URL).
    let policy = sync_policy(cfg, args.full_refresh || args.verify_checksums)?;
    let range = match (from, to) {
        (None, None) => SyncRange::Incremental {
            lookback: Duration::hours(i64::from(cfg.lookback_hours)),
            initial: Duration::days(i64::from(cfg.initial_days)),
        },
        (from, to) => {
            let now = policy.now.unwrap_or_else(Utc::now);
            let to = to.unwrap_or(now);
            let from = from.ok_or(ConfigError::MissingFrom)?;
            let (from, to) = config::time_range(from, to, now)?;
            SyncRange::Explicit { from, to }
        }
    };
    create_files_with_mode(cfg.file_mode);
    let mut ctx = SyncContext::from_config(cfg)?;
    *lake_root = Some(ctx.lake.url().clone());
    ctx.run_id = run_id;
    ctx.verify_checksums = args.verify_checksums;
    ctx.stop = stop.clone();
    ctx.lease = LeaseConfig::with_duration(std::time::Duration::from_secs(args.lease_secs));
    if std::io::stderr().is_terminal() && !args.dry_run {
        // Days done of the range; indicatif draws nothing when stderr is not a terminal.
        ctx.progress = indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} days  {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        ctx.progress
            .enable_steady_tick(std::time::Duration::from_millis(200));
    }
    let opts = SyncOptions {
        range,
        download_concurrency: cfg.download_concurrency,
        org_id: cfg.org_id.clone(),
        dry_run: args.dry_run,
        policy,
    };
    tracing::info!(output = %ctx.lake.url(), "sync starting");
    let report = sync::run_report(&ctx, &opts).await;
    ctx.progress.finish_and_clear();
    Ok(report)
}

/// The one way commands open the lake: `[storage]` options already TLS-checked by
/// [`config::StorageConfig::resolve`], and local files created with the configured mode.
pub(crate) fn open_lake(storage: &config::StorageConfig) -> Result<crate::lake::Lake> {
    create_files_with_mode(storage.file_mode);
    Ok(
        crate::lake::Lake::open_with_options(&storage.location, storage.options.iter().cloned())?
            .with_max_file_rows(storage.rows_per_file),
    )
}

/// Sets the process umask so every file this command creates (lake files through
/// object_store, lease files, export files) gets `file_mode` and every folder the matching
/// search bits: private (0600/0700) unless configured for a shared host.
pub(crate) fn create_files_with_mode(file_mode: u32) {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(
        config::StorageConfig::umask(file_mode) as rustix::fs::RawMode,
    ));
}

/// The run summary as one JSON line on standard output, for schedulers to collect. A reader
/// that went away (`wxcc sync | head -0`) must not turn the run's exit code into a panic's.
fn print_summary(summary: &SyncSummary) -> Result<()> {
    use std::io::Write;
    let line = serde_json::to_string(summary)?;
    match writeln!(std::io::stdout(), "{line}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            tracing::warn!("standard output is closed; the run summary was not printed");
            Ok(())
        }
        other => Ok(other?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_each_cause_once() {
        let disk = std::io::Error::from_raw_os_error(28);
        let store = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(disk),
        };
        let err = anyhow::Error::new(crate::lake::LakeError::Store {
            path: "file:///lake/tasks/part-0.parquet".into(),
            source: store,
        })
        .context("syncing org o1");
        let message = describe(&err);
        assert_eq!(
            message.matches("No space left on device").count(),
            1,
            "{message}"
        );
        assert!(
            message.starts_with("syncing org o1: object store error on file:///lake/"),
            "{message}"
        );
        assert!(!message.ends_with(": "), "{message}");
    }

    #[test]
    fn several_orgs_report_partial_success_unless_one_needs_a_person() {
        assert_eq!(combine_exit_codes(&[0, 0]), exit::OK);
        assert_eq!(combine_exit_codes(&[3, 3]), exit::REAUTHORIZE);
        assert_eq!(combine_exit_codes(&[4]), exit::PARTIAL);
        assert_eq!(combine_exit_codes(&[0, 4]), exit::PARTIAL);
        assert_eq!(combine_exit_codes(&[0, 75]), exit::PARTIAL);
        // An org that needs a login or a fix is not hidden behind a retryable 4.
        assert_eq!(combine_exit_codes(&[0, 3]), exit::REAUTHORIZE);
        assert_eq!(combine_exit_codes(&[4, 1, 3, 2]), exit::USAGE);
        assert_eq!(combine_exit_codes(&[0, 1, 4]), exit::FAILURE);
        assert_eq!(combine_exit_codes(&[0, 6]), exit::STOPPED);
    }

    #[test]
    fn org_entries_are_picked_strictly_and_refused_when_ambiguous() {
        let orgs = |toml: &str| FileConfig::parse(toml).expect("parses").orgs;
        let ids = |picked: Vec<&config::OrgFileConfig>| -> Vec<String> {
            picked.into_iter().map(|o| o.org_id.clone()).collect()
        };
        let one = orgs("[[orgs]]\norg_id = \"org-a\"\n");
        let two = orgs("[[orgs]]\norg_id = \"org-a\"\n[[orgs]]\norg_id = \"org-b\"\n");
        assert_eq!(ids(select_orgs(&two, None).unwrap()), ["org-a", "org-b"]);
        assert_eq!(ids(select_orgs(&two, Some("ORG-B")).unwrap()), ["org-b"]);
        // One entry and another org asked for: refused, not the entry synced in its place.
        let err = select_orgs(&one, Some("org-z")).unwrap_err().to_string();
        assert!(
            err.contains("org-z") && err.contains("lists org-a"),
            "{err}"
        );
        let mut dup = two.clone();
        dup.push(config::OrgFileConfig {
            org_id: "Org-A".into(),
            ..two[0].clone()
        });
        let err = select_orgs(&dup, None).unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
        let err = select_orgs(&orgs("[[orgs]]\norg_id = \"a_b\"\n"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a plain id"), "{err}");
    }

    #[test]
    fn a_top_level_org_id_next_to_org_entries_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wxcc.toml");
        std::fs::write(&path, "org_id = \"org-a\"\n[[orgs]]\norg_id = \"org-b\"\n").unwrap();
        let err = load_file_layers(Some(path), Overrides::default())
            .expect_err("refused")
            .to_string();
        assert!(err.contains("top-level org_id"), "{err}");
    }

    #[test]
    fn help_lists_every_exit_code() {
        use exit::*;
        for code in [
            OK,
            FAILURE,
            USAGE,
            REAUTHORIZE,
            PARTIAL,
            REFRESH_EXPIRING,
            STOPPED,
            LOCKED,
        ] {
            assert!(
                EXIT_CODES_HELP.contains(&format!("{code:>4}  ")),
                "{code} missing from --help"
            );
        }
    }
}
