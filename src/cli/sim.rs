//! `wxcc sim`: the simulator as a stand-alone server for any client (ours, curl, Cisco's samples).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::Args;

use crate::sim::{SimConfig, Simulator};

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Seed of the simulated world: the same seed gives byte-identical data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Days of simulated history.
    #[arg(long, default_value_t = 3)]
    pub days: u32,
    /// Tasks per day, all channels.
    #[arg(long, default_value_t = 100)]
    pub calls_per_day: u32,
    /// First simulated day (UTC), YYYY-MM-DD.
    #[arg(long)]
    pub start: Option<NaiveDate>,
    /// API requests per minute before 429 (0 = unlimited).
    #[arg(long, default_value_t = 300)]
    pub rate_limit: u32,
    /// Share of API requests answered with an injected 5xx (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share of recording downloads cut short (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub truncate_rate: f64,
    /// Access-token lifetime in seconds.
    #[arg(long)]
    pub token_ttl: Option<u64>,
    /// Download-URL lifetime in seconds, overriding the requested urlExpiration.
    #[arg(long)]
    pub url_ttl: Option<u64>,
    /// Hold each recording download to this many megabytes per second (a storage host over a
    /// WAN); default: as fast as loopback allows.
    #[arg(long, value_name = "MB_PER_SEC")]
    pub download_mb_per_sec: Option<f64>,
    /// Median talk time of simulated calls, seconds.
    #[arg(long)]
    pub median_call_secs: Option<u32>,
}

impl SimArgs {
    pub fn to_config(&self) -> Result<SimConfig> {
        if let Some(mb) = self.download_mb_per_sec {
            anyhow::ensure!(
                mb.is_finite() && mb >= 0.001,
                "--download-mb-per-sec must be at least 0.001, got {mb}"
            );
        }
        for (name, rate) in [
            ("--error-rate", self.error_rate),
            ("--truncate-rate", self.truncate_rate),
        ] {
            anyhow::ensure!(
                (0.0..=1.0).contains(&rate),
                "{name} must be between 0 and 1, got {rate}"
            );
        }
        let mut cfg = SimConfig {
            seed: self.seed,
            days: self.days,
            calls_per_day: self.calls_per_day,
            rate_limit_per_minute: self.rate_limit,
            error_rate: self.error_rate,
            truncate_rate: self.truncate_rate,
            url_ttl: self.url_ttl.map(Duration::from_secs),
            download_bytes_per_sec: self.download_mb_per_sec.map(|mb| (mb * 1e6) as u64),
            ..SimConfig::default()
        };
        if let Some(start) = self.start {
            cfg.start = start;
        }
        if let Some(ttl) = self.token_ttl {
            cfg.access_token_ttl = Duration::from_secs(ttl);
        }
        if let Some(m) = self.median_call_secs {
            cfg.median_call_secs = m;
        }
        Ok(cfg)
    }
}

pub async fn run(args: SimArgs) -> Result<()> {
    let cfg = args.to_config()?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let sim = Simulator::start(cfg, addr)
        .await
        .with_context(|| format!("cannot start the simulator on {addr}"))?;
    eprintln!(
        "wxcc simulator listening on {} (Ctrl-C to stop)",
        sim.base_url()
    );
    eprintln!("# point any client at it:");
    // Credentials go to stdout so `eval "$(wxcc sim ...)"`-style tooling can capture them;
    // they are the simulator's own, not a real tenant's.
    print!("{}", sim.env_lines());
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    sim.shutdown().await;
    Ok(())
}
