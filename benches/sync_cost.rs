//! Requests per scheduled run (issue 11): a tenant of 2 days × 1000 calls ending now.
//!
//! 1. a first scheduled run;
//! 2. a second run straight after: goal, at most the task pages plus 5 % of the first run's
//!    captures queries;
//! 3. a run 13 hours later, after late recordings appeared without any change to their tasks
//!    (and past the 12 h settle check): goal, every recording available is stored.
//!
//! Run: `cargo bench --bench sync_cost` (add `-- --calls 5000` for a larger tenant).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use chrono::{Duration, Utc};
use wxcc::cli::demo::simulator_overrides;
use wxcc::config::{Config, Overrides, SyncFileConfig};
use wxcc::sim::{SimConfig, Simulator};
use wxcc::sync::{self, SyncContext, SyncOptions, SyncPolicy, SyncRange, SyncSummary};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let calls: u32 = std::env::args()
        .skip_while(|a| a != "--calls")
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000);
    let now = Utc::now();
    let sim_cfg = SimConfig {
        start: now.date_naive() - Duration::days(1),
        days: 2,
        calls_per_day: calls,
        median_call_secs: 2,
        max_call_secs: 20,
        rate_limit_per_minute: 0,
        now: Some(now),
        ..SimConfig::default()
    };
    let sim = Simulator::start(sim_cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let dir = tempfile::tempdir()?;
    let cfg = Config::resolve(
        Overrides {
            output: Some(dir.path().to_string_lossy().into_owned()),
            rate_limit_per_minute: Some(100_000),
            ..simulator_overrides(&sim)
        },
        &SyncFileConfig::default(),
    )?;
    let ctx = SyncContext::from_config(&cfg)?;
    let run = |at: chrono::DateTime<Utc>| {
        let opts = SyncOptions {
            range: SyncRange::Incremental {
                lookback: Duration::hours(24),
                initial: Duration::days(2),
            },
            download_concurrency: 8,
            org_id: cfg.org_id.clone(),
            dry_run: false,
            policy: SyncPolicy {
                now: Some(at),
                ..SyncPolicy::default()
            },
        };
        let ctx = &ctx;
        let sim = &sim;
        async move {
            sim.set_now(at);
            let before = sim.stats().api_requests;
            let began = Instant::now();
            let summary = sync::run(ctx, &opts).await?;
            let requests = sim.stats().api_requests - before;
            anyhow::Ok((summary, requests, began.elapsed().as_secs_f64()))
        }
    };
    println!("sync_cost: 2 days × {calls} calls ending now");
    let (first, r1, s1) = run(now).await?;
    show("first run", &first, r1, s1);
    let (second, r2, s2) = run(now + Duration::seconds(1)).await?;
    show("second run, straight after", &second, r2, s2);
    let budget = second.task_pages + (first.captures_queries as f64 * 0.05).floor() as u64;
    println!(
        "  goal: ≤ {} (task pages + 5 % of the first run's captures queries): {}",
        budget,
        if r2 <= budget { "met" } else { "NOT met" }
    );
    let later = now + Duration::hours(13);
    let (third, r3, s3) = run(later).await?;
    show("third run, 13 h later", &third, r3, s3);
    let available: std::collections::BTreeSet<String> = sim
        .world()
        .recordings_available_at(later)
        .iter()
        .map(|r| r.id.clone())
        .collect();
    let lake = &ctx.lake;
    let stored: std::collections::BTreeSet<String> = {
        let session = wxcc::query::QuerySession::open(lake).await?;
        let batches = session
            .sql("SELECT recording_id FROM manifest WHERE status = 'stored'")
            .await?;
        let mut out = std::collections::BTreeSet::new();
        for b in batches {
            let col = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
            let col = arrow::array::AsArray::as_string::<i32>(&col);
            out.extend(col.iter().flatten().map(str::to_owned));
        }
        out
    };
    let missing = available.difference(&stored).count();
    println!(
        "  recordings available {}, stored {}, missing {missing}: goal every late recording found: {}",
        available.len(),
        stored.len(),
        if missing == 0 { "met" } else { "NOT met" }
    );
    sim.shutdown().await;
    Ok(())
}

fn show(label: &str, s: &SyncSummary, requests: u64, secs: f64) {
    println!(
        "{label}: {requests} API requests ({} task pages, {} captures queries for {} tasks, {} of \
         them settle checks), {} recordings stored, {} already present, {secs:.1} s",
        s.task_pages, s.captures_queries, s.captures_asked, s.settled, s.stored, s.skipped_present
    );
}
