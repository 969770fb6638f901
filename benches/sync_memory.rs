//! Peak memory of `wxcc sync` over one day, by the day's volume. Goal (issue 11): a
//! 100,000-call day within 1.5× the peak RSS of a 1,000-call day, and under 256 MiB.
//!
//! Runs the real binary against `wxcc sim` in another process, so the figure is the sync's own;
//! the peak is the `peak_rss_bytes` of the run summary (Linux `VmHWM`). The limiter is lifted on
//! both sides (the simulator's, and the client's raised to 100,000 requests/minute), so the
//! large day takes minutes rather than the ~20 min of captures queries at 300/min; what the
//! client holds does not depend on the pace.
//!
//! Run: `cargo bench --bench sync_memory` (`-- --calls 20000` for a quicker large day).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

const WXCC: &str = env!("CARGO_BIN_EXE_wxcc");

fn main() -> anyhow::Result<()> {
    let large: u32 = std::env::args()
        .skip_while(|a| a != "--calls")
        .nth(1)
        .map(|c| c.parse())
        .transpose()
        .context("--calls takes a number")?
        .unwrap_or(100_000);
    let small = day(1_000)?;
    let big = day(large)?;
    let ratio = big.peak_mib / small.peak_mib;
    println!(
        "peak RSS: {} calls {:.0} MiB; {} calls {:.0} MiB; ratio {ratio:.2} (goal ≤ 1.5 and < 256 MiB: {})",
        small.calls,
        small.peak_mib,
        big.calls,
        big.peak_mib,
        if ratio <= 1.5 && big.peak_mib < 256.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}

struct Day {
    calls: u32,
    peak_mib: f64,
}

/// Syncs one simulated day of `calls` calls into a fresh lake and reads the run's peak memory.
fn day(calls: u32) -> anyhow::Result<Day> {
    let mut sim = Command::new(WXCC)
        .args(["sim", "--port", "0", "--days", "1", "--start", "2026-11-01"])
        .args(["--rate-limit", "0", "--median-call-secs", "1", "-q"])
        .args(["--calls-per-day", &calls.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting wxcc sim")?;
    let mut env = Vec::new();
    for line in BufReader::new(sim.stdout.take().context("sim stdout")?).lines() {
        let line = line?;
        if let Some((k, v)) = line
            .strip_prefix("export ")
            .and_then(|kv| kv.split_once('='))
        {
            env.push((k.to_owned(), v.to_owned()));
            if k == "WXCC_REFRESH_TOKEN" {
                break;
            }
        }
    }
    let dir = tempfile::tempdir()?;
    let began = Instant::now();
    let out = Command::new(WXCC)
        .args(["sync", "--from", "2026-11-01", "--to", "2026-11-02", "-q"])
        .args(["--rate-limit", "100000"])
        .args(["--log-format", "json", "--output"])
        .arg(dir.path().join("lake"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env)
        .output()
        .context("running wxcc sync")?;
    let _ = sim.kill();
    let _ = sim.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("null")).context("run summary")?;
    if !out.status.success() {
        bail!("sync of {calls} calls failed: {summary}");
    }
    let peak = summary["peak_rss_bytes"]
        .as_u64()
        .context("peak_rss_bytes (Linux only)")?;
    let peak_mib = peak as f64 / (1024.0 * 1024.0);
    println!(
        "{calls} calls: {} tasks, {} recordings stored in {:.1} s, peak RSS {peak_mib:.0} MiB",
        summary["tasks"],
        summary["stored"],
        began.elapsed().as_secs_f64()
    );
    Ok(Day { calls, peak_mib })
}
