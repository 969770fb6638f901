//! Latency of `wxcc listen`: from the simulator sending a `capture:available` event to the
//! recording's manifest row being committed (audio stored, analysed), at 10 and 100 events/s;
//! and the API requests it made versus what polling with `sync` needs for the same recordings.
//! Goal (issue 14): p95 <= 5 s at 100 events/s.
//!
//! Run: `cargo bench --bench listen_latency` (add `-- --events 600` for longer runs;
//! `--profile dev` runs it without a release build).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use wxcc::cli::demo::simulator_overrides;
use wxcc::config::{Config, Overrides, SyncFileConfig};
use wxcc::listen::queue::Queue;
use wxcc::listen::server::{self, Receiver, ReceiverCounters};
use wxcc::listen::{WorkerCounters, signature};
use wxcc::sim::{SimConfig, Simulator, WebhookKnobs};
use wxcc::sync::listen::{ListenOptions, run_workers};
use wxcc::sync::{self, SyncContext, SyncOptions, SyncRange};

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// One run at `rate` events/s over a world of about `events` recordings.
async fn run(rate: u32, events: u32) -> anyhow::Result<()> {
    // About 0.6 recordings per task in the simulated world.
    let calls_per_day = (f64::from(events) / 0.6) as u32;
    let sim_cfg = SimConfig {
        days: 1,
        calls_per_day,
        median_call_secs: 30,
        max_call_secs: 120,
        rate_limit_per_minute: 300,
        webhooks: WebhookKnobs {
            replay: true,
            events_per_sec: rate,
            ..WebhookKnobs::default()
        },
        ..SimConfig::default()
    };
    let start = sim_cfg.start;
    let sim = Simulator::start(sim_cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let dir = tempfile::tempdir()?;
    let cfg = Config::resolve(
        Overrides {
            output: Some(dir.path().join("lake").to_string_lossy().into_owned()),
            ..simulator_overrides(&sim)
        },
        &SyncFileConfig::default(),
    )?;
    let mut ctx = SyncContext::from_config(&cfg)?;
    let stop = tokio_util::sync::CancellationToken::new();
    ctx.stop = stop.clone();
    let queue = Arc::new(Queue::open(&dir.path().join("queue"))?);
    let workers = Arc::new(WorkerCounters::default());
    let receiver = Arc::new(Receiver {
        queue: queue.clone(),
        secrets: signature::parse_secrets(SECRET),
        counters: ReceiverCounters::default(),
        workers: workers.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/webhook", listener.local_addr()?);
    let serving = tokio::spawn(server::serve(
        listener,
        server::router(receiver, "/webhook"),
        stop.clone(),
    ));
    let opts = ListenOptions {
        concurrency: 16,
        commit_interval: Duration::from_millis(1000),
        org_id: cfg.org_id.clone(),
    };
    let api_before = sim.stats().api_requests;
    let total = sim.world().recordings().len();
    let ctx = Arc::new(ctx);
    let worker = {
        let (ctx, queue, workers) = (ctx.clone(), queue.clone(), workers.clone());
        tokio::spawn(async move { run_workers(ctx, queue, workers, &opts).await })
    };
    sim.subscribe_webhook(&url, SECRET)?;
    let began = std::time::Instant::now();
    while (workers.snapshot().committed as usize) < total
        && began.elapsed() < Duration::from_secs(600)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listen_api = sim.stats().api_requests - api_before;
    stop.cancel();
    let _ = worker.await;
    let _ = serving.await;

    // Sent instant per recording, committed instant per recording (from the journal).
    let sent: HashMap<String, i64> = sim
        .webhook_deliveries()
        .into_iter()
        .map(|d| (format!("{}/{}", d.task_id, d.recording_id), d.sent_ms))
        .collect();
    let journal = std::fs::read_to_string(dir.path().join("queue/journal.jsonl"))?;
    let mut key_of: HashMap<u64, (String, i64)> = HashMap::new();
    let mut latencies = Vec::new();
    // Where it went: sent -> queued (fsynced, answered 2xx), queued -> committed.
    let mut queued = Vec::new();
    for line in journal.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        match v["op"].as_str() {
            Some("accept") => {
                key_of.insert(
                    v["seq"].as_u64().unwrap_or_default(),
                    (
                        v["key"].as_str().unwrap_or_default().to_owned(),
                        v["accepted_ms"].as_i64().unwrap_or_default(),
                    ),
                );
            }
            Some("done") => {
                let seq = v["seq"].as_u64().unwrap_or_default();
                if let Some((key, accepted)) = key_of.get(&seq)
                    && let Some(at) = sent.get(key)
                {
                    latencies.push(v["at_ms"].as_i64().unwrap_or_default() - at);
                    queued.push(accepted - at);
                }
            }
            _ => {}
        }
    }
    latencies.sort_unstable();
    queued.sort_unstable();

    // Polling the same recordings with sync, for the request count.
    let poll_dir = tempfile::tempdir()?;
    let poll_cfg = Config::resolve(
        Overrides {
            output: Some(poll_dir.path().to_string_lossy().into_owned()),
            ..simulator_overrides(&sim)
        },
        &SyncFileConfig::default(),
    )?;
    let poll_ctx = SyncContext::from_config(&poll_cfg)?;
    let from = start.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let summary = sync::run(
        &poll_ctx,
        &SyncOptions {
            range: SyncRange::Explicit {
                from,
                to: from + chrono::Duration::days(1),
            },
            download_concurrency: 16,
            org_id: poll_cfg.org_id.clone(),
            dry_run: false,
            policy: Default::default(),
        },
    )
    .await?;
    let w = workers.snapshot();
    println!(
        "rate {rate:>3}/s  recordings {total:>4} committed {:>4}  latency sent->committed p50 {:>5} ms  p95 {:>5} ms  max {:>5} ms (sent->queued p95 {:>4} ms, {} commits) | listen API requests {listen_api} (captures queries {}) vs sync captures queries {} + task pages {}",
        latencies.len(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.95),
        latencies.last().copied().unwrap_or(0),
        percentile(&queued, 0.95),
        w.commits,
        w.captures_queries,
        summary.captures_queries,
        summary.task_pages,
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `RUST_LOG=wxcc=info` shows each commit's timings on stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let events: u32 = std::env::args()
        .skip_while(|a| a != "--events")
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(300);
    for rate in [10u32, 100] {
        // At 10/s a shorter stream keeps the run under a minute.
        let n = if rate == 10 { events.min(150) } else { events };
        run(rate, n).await?;
    }
    Ok(())
}
