//! `wxcc demo`: the whole product in one command, against the built-in simulator.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context, Result};
use chrono::Duration;
use clap::Args;

use crate::config::{Config, Overrides, SyncFileConfig};
#[cfg(feature = "query")]
use crate::lake::Lake;
#[cfg(feature = "query")]
use crate::query::{self, OutputFormat, QuerySession};
use crate::sim::{SimConfig, Simulator};
use crate::sync::{self, SyncContext, SyncOptions, SyncRange};

use super::exit;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the demo data (a path or object store URL).
    #[arg(long, short, default_value = "./wxcc-demo")]
    pub output: String,
    /// Days of simulated history to sync.
    #[arg(long, default_value_t = 3)]
    pub days: u32,
    /// Simulated tasks per day.
    #[arg(long, default_value_t = 100)]
    pub calls_per_day: u32,
    /// Seed of the simulated world.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Also write ML-ready derivatives: mono16k, channels (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub derive: Option<Vec<String>>,
    /// Write Prometheus metrics of the sync here (as `wxcc sync --metrics-file`).
    #[arg(long)]
    pub metrics_file: Option<std::path::PathBuf>,
}

/// Connection settings and credentials that point a client at a running simulator (used by
/// the demo and the benchmarks). Never touches the token store: the tokens are the simulator's.
pub fn simulator_overrides(sim: &Simulator) -> Overrides {
    let c = sim.credentials();
    Overrides {
        api_base_url: Some(sim.base_url()),
        oauth_base_url: Some(sim.base_url()),
        client_id: Some(c.client_id.clone()),
        client_secret: Some(c.client_secret.clone()),
        refresh_token: Some(c.refresh_token.clone()),
        org_id: Some(c.org_id.clone()),
        ..Default::default()
    }
}

pub async fn run(args: DemoArgs) -> Result<u8> {
    anyhow::ensure!(args.days >= 1, "--days must be at least 1");
    // Realistic API behaviour (the 300 requests/minute limit stays on), but short calls so
    // the demo moves tens of megabytes of audio, not gigabytes.
    let sim_cfg = SimConfig {
        seed: args.seed,
        days: args.days,
        calls_per_day: args.calls_per_day,
        median_call_secs: 30,
        max_call_secs: 300,
        ..SimConfig::default()
    };
    let start = sim_cfg.start;
    let sim = Simulator::start(sim_cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .context("cannot start the simulator")?;
    let creds = sim.credentials();
    eprintln!(
        "▶ simulator up at {} (org {})",
        sim.base_url(),
        creds.org_id
    );

    let cfg = Config::resolve(
        Overrides {
            output: Some(args.output.clone()),
            derive: args.derive.clone(),
            ..simulator_overrides(&sim)
        },
        &SyncFileConfig::default(),
    )?;
    let ctx = SyncContext::from_config(&cfg)?;
    let from = start.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let to = from + Duration::days(i64::from(args.days));
    eprintln!("▶ syncing {from} .. {to} into {}", ctx.lake.url());
    let report = sync::run_report(
        &ctx,
        &SyncOptions {
            range: SyncRange::Explicit { from, to },
            dry_run: false,
            download_concurrency: cfg.download_concurrency,
            org_id: cfg.org_id.clone(),
            policy: Default::default(),
        },
    )
    .await;
    let (summary, error) = (report.summary, report.error.map(anyhow::Error::from));
    let code = match &error {
        Some(e) => super::exit_code(e),
        None if summary.is_partial() => exit::PARTIAL,
        None => exit::OK,
    };
    let org = summary.org_id.clone().unwrap_or_default();
    super::observe::write_metrics(
        args.metrics_file.as_deref(),
        &[(org, Some(summary.clone()), code)],
    );
    if let Some(e) = error {
        return Err(e);
    }
    sim.shutdown().await;

    print_per_queue(&ctx.lake).await?;
    let root = ctx.lake.url();
    println!(
        "\nWhat just happened:\n  \
         a simulated Webex Contact Center served {tasks} tasks; wxcc paged them by time window,\n  \
         asked for captures of the calls that can have recordings, and streamed {stored} recordings\n  \
         ({mb:.1} MB, SHA-256 recorded) into storage, in {secs:.1} s with {requests} API requests\n  \
         under the real 300 requests/minute limit.\n\n\
         Where your files are ({root}):\n  \
         tasks/org_id=…/date=…/part-0.parquet     one row per task\n  \
         captures/org_id=…/date=…/part-0.parquet  one row per recording (no signed URLs)\n  \
         manifest/org_id=…/date=…/part-0.parquet  one row per stored audio object\n  \
         audio_facts/org_id=…/date=…/part-0.parquet  levels, silence, talk time per recording\n  \
         audio/<org_id>/<task_id>/<recording_id>.wav\n\n\
         What to try next ({wxcc}):\n  \
         wxcc sql --data {out} \"SELECT channel_type, status, count(*) FROM tasks GROUP BY 1, 2 ORDER BY 3 DESC\"\n  \
         wxcc query run recordings_to_transcribe --data {out} --format csv\n  \
         wxcc export --data {out} --query recordings_to_transcribe --format jsonl\n  \
         duckdb -c \"SELECT * FROM read_parquet('{out}/tasks/*/*/*.parquet', hive_partitioning = true) LIMIT 5\"",
        tasks = summary.tasks,
        stored = summary.stored + summary.skipped_present,
        mb = summary.bytes as f64 / 1e6,
        secs = summary.duration_ms as f64 / 1000.0,
        requests = summary.api.map(|a| a.requests).unwrap_or(0),
        out = args.output,
        wxcc = where_wxcc_is(),
    );
    Ok(code)
}

/// The per-queue table of the saved query `calls_per_queue_per_day`, through DataFusion.
#[cfg(feature = "query")]
async fn print_per_queue(lake: &Lake) -> Result<()> {
    let session = QuerySession::open(lake).await?;
    let per_queue = query::saved_query("calls_per_queue_per_day").context("saved query missing")?;
    let sql = format!(
        "SELECT date, queue_name, calls, completed, abandoned, recorded FROM ({}) AS q \
         ORDER BY date, queue_name",
        per_queue.sql.trim().trim_end_matches(';')
    );
    println!(
        "\n{} (queries/{}.sql):",
        per_queue.description.trim_end_matches('.'),
        per_queue.name
    );
    println!(
        "{}",
        query::format_batches(&session.sql(&sql).await?, OutputFormat::Table)?
    );
    Ok(())
}

/// A build without DataFusion shows no SQL results; say how to get them.
#[cfg(not(feature = "query"))]
async fn print_per_queue(_lake: &crate::lake::Lake) -> Result<()> {
    println!(
        "\n(This wxcc was built without the `query` feature, so there is no SQL table of calls per \
         queue here: scripts/test.sh or `cargo install --path .` builds the full wxcc.)"
    );
    Ok(())
}

/// Where the `wxcc` of the suggestions is: a demo run through `cargo run` is not on `PATH`.
fn where_wxcc_is() -> String {
    let Ok(exe) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "`cargo install --locked --path .` puts wxcc on your PATH".to_owned();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .any(|dir| std::fs::canonicalize(dir.join("wxcc")).is_ok_and(|p| p == exe))
    });
    if on_path {
        "wxcc is on your PATH".to_owned()
    } else {
        format!(
            "wxcc here is {}; `cargo install --locked --path .` puts it on your PATH",
            exe.display()
        )
    }
}
