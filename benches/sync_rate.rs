//! Sustained API request rate of a sync against the simulator's realistic 300 requests/minute
//! limit. Goal (issue 4): at least 95 % of the limit with under 1 % of requests answered 429.
//!
//! Run: `cargo bench --bench sync_rate` (add `-- --minutes 3` for a longer run).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use chrono::Duration;
use wxcc::cli::demo::simulator_overrides;
use wxcc::config::{Config, Overrides, SyncFileConfig};
use wxcc::sim::{SimConfig, Simulator};
use wxcc::sync::{self, SyncContext, SyncOptions, SyncRange};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let minutes: f64 = std::env::args()
        .skip_while(|a| a != "--minutes")
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(2.0);
    let limit = 300u32;
    // ~70 % of tasks are calls with captures: 10 ids per query, so calls_per_day/14 queries a
    // day. Size the world so the run needs about `minutes` minutes of requests.
    let days = 4u32;
    let calls_per_day = ((minutes * f64::from(limit) * 14.0) / f64::from(days)) as u32;
    let sim_cfg = SimConfig {
        days,
        calls_per_day,
        median_call_secs: 1,
        max_call_secs: 2,
        rate_limit_per_minute: limit,
        ..SimConfig::default()
    };
    let start = sim_cfg.start;
    let sim = Simulator::start(sim_cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let dir = tempfile::tempdir()?;
    let cfg = Config::resolve(
        Overrides {
            output: Some(dir.path().to_string_lossy().into_owned()),
            rate_limit_per_minute: Some(limit),
            ..simulator_overrides(&sim)
        },
        &SyncFileConfig::default(),
    )?;
    let ctx = SyncContext::from_config(&cfg)?;
    let from = start.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let began = Instant::now();
    let summary = sync::run(
        &ctx,
        &SyncOptions {
            range: SyncRange::Explicit {
                from,
                to: from + Duration::days(i64::from(days)),
            },
            download_concurrency: 16,
            org_id: cfg.org_id.clone(),
            dry_run: false,
            policy: Default::default(),
        },
    )
    .await?;
    let secs = began.elapsed().as_secs_f64();
    let api = summary.api.expect("api counts");
    let stats = sim.stats();
    let per_minute = stats.api_requests as f64 * 60.0 / secs;
    println!(
        "sync_rate: limit {limit}/min, {} tasks, {} recordings",
        summary.tasks, summary.recordings
    );
    println!(
        "  {} API requests in {secs:.1} s = {per_minute:.1}/min ({:.1} % of the limit)",
        stats.api_requests,
        100.0 * per_minute / f64::from(limit)
    );
    println!(
        "  429 answers: {} ({:.2} % of requests); client retries {}",
        stats.rate_limited,
        100.0 * stats.rate_limited as f64 / stats.api_requests.max(1) as f64,
        api.retries
    );
    sim.shutdown().await;
    Ok(())
}
