//! `wxcc listen`: the webhook receiver and its worker pool in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use super::{ConnectionArgs, exit, load_org_configs};
use crate::config::{FileConfig, Overrides};
use crate::listen::queue::Queue;
use crate::listen::server::{self, Receiver, ReceiverCounters};
use crate::listen::{WorkerCounters, signature};
use crate::sync::SyncContext;
use crate::sync::lease::LeaseConfig;
use crate::sync::listen::{ListenOptions, run_workers};

#[derive(Debug, Args)]
pub struct ListenArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// Address and port to listen on (put TLS in front: a reverse proxy or ingress).
    #[arg(long, env = "WXCC_LISTEN_BIND", default_value = "127.0.0.1:8790")]
    pub bind: SocketAddr,
    /// Path the webhooks are POSTed to.
    #[arg(long, env = "WXCC_LISTEN_PATH", default_value = "/webhook")]
    pub path: String,
    /// Directory of the durable event queue (keep it on a persistent local disk).
    #[arg(long, env = "WXCC_LISTEN_QUEUE", default_value = "wxcc-listen-queue")]
    pub queue_dir: PathBuf,
    /// Output location: a path, file://, s3://, gs:// or az:// URL. Default ./wxcc-data.
    #[arg(long, short, env = "WXCC_OUTPUT")]
    pub output: Option<String>,
    /// Concurrent recording downloads.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Commit stored recordings this often, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub commit_ms: u64,
    /// Length of the org lease taken for each commit, in seconds.
    #[arg(long, env = "WXCC_LEASE_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub lease_secs: u64,
}

/// Secrets from `WXCC_WEBHOOK_SECRET` (comma-separated for a rotation), else `[listen]
/// webhook_secret` of wxcc.toml.
fn secrets(config_path: Option<&PathBuf>) -> Result<Vec<SecretString>> {
    if let Ok(list) = std::env::var("WXCC_WEBHOOK_SECRET") {
        let s = signature::parse_secrets(&list);
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let (path, explicit) = match config_path {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from("wxcc.toml"), false),
    };
    let file = FileConfig::load(&path, explicit)?;
    let s = file
        .listen
        .webhook_secret
        .map(|s| signature::parse_secrets(s.expose_secret()))
        .unwrap_or_default();
    anyhow::ensure!(
        !s.is_empty(),
        "no webhook secret: set WXCC_WEBHOOK_SECRET (comma-separated during a rotation) or \
         [listen] webhook_secret in wxcc.toml"
    );
    Ok(s)
}

pub async fn run(config_path: Option<PathBuf>, args: ListenArgs) -> Result<u8> {
    let secrets = secrets(config_path.as_ref())?;
    let flags = Overrides {
        region: args.connection.region.clone(),
        api_base_url: args.connection.api_base_url.clone(),
        oauth_base_url: args.connection.oauth_base_url.clone(),
        org_id: args.connection.org_id.clone(),
        output: args.output.clone(),
        ..Default::default()
    };
    let mut configs = load_org_configs(config_path, flags)?;
    anyhow::ensure!(
        configs.len() == 1,
        "wxcc listen serves one organization: name it with --org-id"
    );
    let cfg = configs.remove(0);
    super::create_files_with_mode(cfg.file_mode);
    let mut ctx = SyncContext::from_config(&cfg)?;
    ctx.lease = LeaseConfig::with_duration(Duration::from_secs(args.lease_secs));
    let stop = tokio_util::sync::CancellationToken::new();
    ctx.stop = stop.clone();
    let queue = Arc::new(
        Queue::open(&args.queue_dir)
            .with_context(|| format!("opening the queue in {}", args.queue_dir.display()))?,
    );
    let workers = Arc::new(WorkerCounters::default());
    let receiver = Arc::new(Receiver {
        queue: queue.clone(),
        secrets,
        counters: ReceiverCounters::default(),
        workers: workers.clone(),
    });
    anyhow::ensure!(args.path.starts_with('/'), "--path must start with /");
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let local = server::shown(listener.local_addr()?);
    // Tests and supervisors read this line to learn the port.
    eprintln!(
        "wxcc listen on http://{local}{} (healthz: /healthz)",
        args.path
    );
    let app = server::router(receiver, &args.path);
    let serving = tokio::spawn(server::serve(listener, app, stop.clone()));
    let signals = tokio::spawn(super::watch_signals(stop.clone()));
    let progress = {
        let (queue, workers, stop) = (queue.clone(), workers.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => {
                        let q = queue.stats();
                        let w = workers.snapshot();
                        tracing::info!(depth = q.depth, oldest_ms = q.oldest_ms, accepted = q.accepted, duplicates = q.duplicates, committed = w.committed, last_lag_ms = w.last_lag_ms, "listen: queue");
                    }
                }
            }
        })
    };
    let opts = ListenOptions {
        concurrency: args.concurrency,
        commit_interval: Duration::from_millis(args.commit_ms),
        org_id: cfg.org_id.clone(),
    };
    let worked = run_workers(Arc::new(ctx), queue.clone(), workers, &opts).await;
    stop.cancel();
    let _ = serving.await;
    signals.abort();
    progress.abort();
    worked?;
    Ok(exit::OK)
}
