//! `wxcc sim`: the simulator as a stand-alone server for any client (ours, curl, Cisco's samples).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Args;

use crate::sim::{RefreshTokens, SimConfig, Simulator, WebhookKnobs};

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
    /// What a refresh grant does to the refresh token: `same` (the evidence, REFERENCE.md §1.4),
    /// `rotate` (a new one each time, the old one refused) or `never-reset` (its lifetime
    /// runs out however often it is used).
    #[arg(long, value_enum, default_value_t = RefreshTokens::Same)]
    pub refresh_tokens: RefreshTokens,
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
    /// Serve at most this many tasks per /v1/tasks page whatever pageSize asks.
    #[arg(long, value_name = "N")]
    pub page_cap: Option<usize>,
    /// Ignore the undocumented `page` parameter of /v1/tasks (always serve page 0).
    #[arg(long)]
    pub no_page_param: bool,
    /// Select tasks created after `from` (exclusive) instead of at or after it.
    #[arg(long)]
    pub from_exclusive: bool,
    /// Junk (unparseable) records on every full /v1/tasks page, displacing tasks to the next page.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub junk_per_full_page: usize,
    /// Customer contact values in odd notations (tel:/sip: URIs, `Name <address>`), and junk
    /// records carrying them as numbers, objects and arrays (to check PII protection).
    #[arg(long)]
    pub odd_contacts: bool,
    /// Answer 400 to /v1/tasks when `to - from` exceeds this many days.
    #[arg(long, value_name = "DAYS")]
    pub max_range_days: Option<u32>,
    /// Answer 400 to /v1/tasks when `to - from` exceeds this many milliseconds
    /// (86399999: the sibling agent-activities API's "< 24 h").
    #[arg(long, value_name = "MS")]
    pub max_range_ms: Option<i64>,
    /// This many telephony tasks with recordings (picked from the seed, listed on stderr) make
    /// any captures query naming one of them fail.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub failing_capture_tasks: usize,
    /// Status of those failing captures queries: 500, 404 or 422.
    #[arg(long, value_name = "STATUS", default_value_t = 500)]
    pub failing_capture_status: u16,
    /// /v1/tasks requests overlapping this window of creation times answer 500,
    /// as FROM..TO (RFC 3339, e.g. 2026-01-05T10:00:00Z..2026-01-05T11:00:00Z).
    #[arg(long, value_name = "FROM..TO", value_parser = parse_window)]
    pub failing_tasks_window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Per mille of recordings that become available hours after their call.
    #[arg(long, value_name = "PER_MILLE", default_value_t = 30)]
    pub late_capture_per_mille: u64,
    /// Hours after the call such late recordings appear, as MIN-MAX.
    #[arg(long, value_name = "MIN-MAX", default_value = "2-6", value_parser = parse_hours)]
    pub late_capture_hours: (u32, u32),
    /// List recordings of calls still in progress (stopTime = now, audio so far).
    #[arg(long)]
    pub recordings_while_open: bool,
    /// Send signed `capture:available` webhooks to this URL (as if an admin had subscribed it).
    /// Subscriptions made through `POST /v1/subscriptions` are served too.
    #[arg(long, value_name = "URL", requires = "webhook_secret")]
    pub webhook_url: Option<String>,
    /// Secret that signs those webhooks (X-WebexCC-Signature).
    #[arg(
        long,
        env = "WXCC_SIM_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,
    /// Also announce every recording already available when a subscription is made.
    #[arg(long)]
    pub webhook_replay: bool,
    /// Share of webhook events never sent (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub webhook_loss: f64,
    /// Share of webhook events sent twice (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub webhook_duplicates: f64,
    /// Share of webhook events swapped with the next one (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub webhook_reorder: f64,
    /// Share of webhook deliveries signed with a wrong secret (0.0–1.0).
    #[arg(long, default_value_t = 0.0)]
    pub webhook_bad_signatures: f64,
    /// Each webhook delivery waits a random time up to this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub webhook_max_delay_ms: u64,
    /// Webhook deliveries started per second (0 = as fast as possible).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub webhook_rate: u32,
    /// Send only the confirmed `data` fields (taskId, filePath, createdTime).
    #[arg(long)]
    pub webhook_minimal: bool,
}

fn parse_window(s: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or("expected FROM..TO with RFC 3339 instants")?;
    let parse = |t: &str| {
        DateTime::parse_from_rfc3339(t.trim())
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| format!("'{t}' is not an RFC 3339 instant: {e}"))
    };
    let (a, b) = (parse(a)?, parse(b)?);
    if a >= b {
        return Err(format!("the window is empty: {a} is not before {b}"));
    }
    Ok((a, b))
}

fn parse_hours(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected MIN-MAX hours, e.g. 2-6")?;
    let num = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| format!("'{t}' is not a whole number of hours"))
    };
    let (a, b) = (num(a)?, num(b)?);
    if a > b {
        return Err(format!("MIN ({a}) must not exceed MAX ({b})"));
    }
    Ok((a, b))
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
            refresh_tokens: self.refresh_tokens,
            url_ttl: self.url_ttl.map(Duration::from_secs),
            download_bytes_per_sec: self.download_mb_per_sec.map(|mb| (mb * 1e6) as u64),
            page_cap: self.page_cap,
            honour_page_param: !self.no_page_param,
            from_exclusive: self.from_exclusive,
            junk_per_full_page: self.junk_per_full_page,
            odd_contacts: self.odd_contacts,
            max_range_days: self.max_range_days,
            max_range_ms: self.max_range_ms,
            failing_capture_tasks: self.failing_capture_tasks,
            failing_capture_status: self.failing_capture_status,
            failing_tasks_window: self.failing_tasks_window,
            late_capture_per_mille: self.late_capture_per_mille,
            late_capture_hours: self.late_capture_hours,
            recordings_while_open: self.recordings_while_open,
            webhooks: WebhookKnobs {
                loss_rate: self.webhook_loss,
                duplicate_rate: self.webhook_duplicates,
                reorder_rate: self.webhook_reorder,
                bad_signature_rate: self.webhook_bad_signatures,
                max_delay: Duration::from_millis(self.webhook_max_delay_ms),
                events_per_sec: self.webhook_rate,
                minimal: self.webhook_minimal,
                replay: self.webhook_replay,
            },
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
    let failing = sim.failing_capture_task_ids();
    if !failing.is_empty() {
        eprintln!(
            "# captures queries naming these tasks fail: {}",
            failing.join(",")
        );
    }
    if let (Some(url), Some(secret)) = (&args.webhook_url, &args.webhook_secret) {
        sim.subscribe_webhook(url, secret)
            .with_context(|| format!("cannot send webhooks to {url}"))?;
        eprintln!("# capture:available webhooks go to {url}");
    }
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn config(args: &[&str]) -> Result<SimConfig> {
        let cmd = Cmd::try_parse_from(std::iter::once("sim").chain(args.iter().copied()))?;
        cmd.sim.to_config()
    }

    #[test]
    fn without_flags_the_knobs_keep_their_defaults() {
        let (got, want) = (config(&[]).expect("config"), SimConfig::default());
        assert_eq!(got.page_cap, want.page_cap);
        assert_eq!(got.honour_page_param, want.honour_page_param);
        assert_eq!(got.from_exclusive, want.from_exclusive);
        assert_eq!(got.junk_per_full_page, want.junk_per_full_page);
        assert_eq!((got.max_range_days, got.max_range_ms), (None, None));
        assert_eq!(got.failing_capture_tasks, 0);
        assert_eq!(got.failing_capture_status, want.failing_capture_status);
        assert_eq!(got.failing_tasks_window, None);
        assert_eq!(got.late_capture_per_mille, want.late_capture_per_mille);
        assert_eq!(got.late_capture_hours, want.late_capture_hours);
        assert_eq!(got.recordings_while_open, want.recordings_while_open);
        assert_eq!(got.refresh_tokens, want.refresh_tokens);
    }

    #[test]
    fn reading_and_fault_flags_reach_the_config() {
        let cfg = config(&[
            "--page-cap=100",
            "--no-page-param",
            "--from-exclusive",
            "--junk-per-full-page=2",
            "--max-range-days=31",
            "--max-range-ms=86399999",
            "--failing-capture-tasks=3",
            "--failing-capture-status=404",
            "--failing-tasks-window=2026-01-05T10:00:00Z..2026-01-05T11:00:00+00:00",
            "--late-capture-per-mille=100",
            "--late-capture-hours=1-3",
            "--recordings-while-open",
            "--refresh-tokens=rotate",
        ])
        .expect("config");
        assert_eq!(cfg.refresh_tokens, RefreshTokens::Rotate);
        assert_eq!(cfg.page_cap, Some(100));
        assert!(!cfg.honour_page_param && cfg.from_exclusive && cfg.recordings_while_open);
        assert_eq!(cfg.junk_per_full_page, 2);
        assert_eq!(
            (cfg.max_range_days, cfg.max_range_ms),
            (Some(31), Some(86_399_999))
        );
        assert_eq!(
            (cfg.failing_capture_tasks, cfg.failing_capture_status),
            (3, 404)
        );
        let (a, b) = cfg.failing_tasks_window.expect("window");
        assert_eq!(b - a, chrono::Duration::hours(1));
        assert_eq!(
            (cfg.late_capture_per_mille, cfg.late_capture_hours),
            (100, (1, 3))
        );
        for bad in [
            "--failing-tasks-window=2026-01-05T11:00:00Z..2026-01-05T10:00:00Z",
            "--failing-tasks-window=yesterday",
            "--late-capture-hours=6-2",
        ] {
            assert!(config(&[bad]).is_err(), "{bad}");
        }
    }
}
