//! Recording transfer on loopback (issue 5): sync throughput against a plain concurrent
//! download of the same recordings (goal ≥ 90 %), and the release binary's peak RSS while it
//! moves 8 concurrent ~500 MB recordings (goal ≤ 64 MiB above idle).
//!
//! The simulator synthesises the audio on the same cores, on its own runtime whose threads are
//! named `sim-worker`, so its CPU time can be told apart from the client's.
//!
//! Part 1 runs twice: with downloads as fast as loopback allows (every variant CPU-bound, the
//! simulator synthesising audio on the same 2 cores), and with each download held to a link
//! speed (`--links`, MB/s per download; default `0,20`, 0 = unlimited) as from a storage host
//! over a WAN, where the question is whether the sync keeps up with the network.
//!
//! Run: `cargo bench --bench transfer` (options: `--recs 16 --rec-secs 3125` for part 1,
//! `--reps 3`, `--links 0,20`, `--rss-recs 8 --rss-secs 15600 --rss-concurrency 8` for part 2
//! (`--rss-derive` to also write the 16 kHz derivatives),
//! `--only throughput|rss`, `--wxcc-bin PATH`).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;
use wxcc::audio::{Derivative, Processing};
use wxcc::cli::demo::simulator_overrides;
use wxcc::config::{Config, Overrides, SyncFileConfig};
use wxcc::sim::{SimConfig, Simulator};
use wxcc::sync::{self, SyncContext, SyncOptions, SyncRange};

const CONCURRENCY: usize = 8;
/// 8 kHz, 16-bit, stereo.
const BYTES_PER_AUDIO_SEC: f64 = 32_000.0;
/// `sysconf(_SC_CLK_TCK)` on Linux.
const CLK_TCK: f64 = 100.0;
const MB: f64 = 1e6;
const MIB: f64 = 1024.0 * 1024.0;

fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn num(name: &str, default: u32) -> u32 {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sim-worker")
        .enable_all()
        .build()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let only = arg("--only");
    let sim = sim_rt.handle().clone();
    rt.block_on(async {
        if only.as_deref() != Some("rss") {
            let (recs, secs) = (num("--recs", 16) as usize, num("--rec-secs", 3125));
            let links = arg("--links").unwrap_or_else(|| "0,20".into());
            for link in links.split(',') {
                let mb: f64 = link.trim().parse().context("--links: MB/s per download")?;
                let link = (mb > 0.0).then_some((mb * MB) as u64);
                throughput(&sim, recs, secs, num("--reps", 3) as usize, link).await?;
            }
        }
        if only.as_deref() != Some("throughput") {
            let (recs, secs) = (num("--rss-recs", 8) as usize, num("--rss-secs", 15_600));
            let concurrency = num("--rss-concurrency", 8) as usize;
            let derive = std::env::args().any(|a| a == "--rss-derive");
            peak_rss(&sim, recs, secs, concurrency, derive).await?;
        }
        anyhow::Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Simulator worlds and CPU accounting

/// A simulator (on `rt`) whose world holds exactly `want` recordings, all about `secs` long.
/// The median is far above the cap, so nearly every call is clamped to `secs`; seeds are tried
/// until one gives exactly `want` recordings with none short (no consult legs).
async fn start_sim(
    rt: &Handle,
    want: usize,
    secs: u32,
    link: Option<u64>,
) -> anyhow::Result<Simulator> {
    for seed in 1..500u64 {
        let cfg = SimConfig {
            download_bytes_per_sec: link,
            seed,
            days: 1,
            calls_per_day: (want as f64 / 0.62).ceil() as u32,
            median_call_secs: secs.saturating_mul(10),
            max_call_secs: secs,
            rate_limit_per_minute: 0,
            ..SimConfig::default()
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let sim = rt.spawn(Simulator::start(cfg, addr)).await??;
        let world = sim.world();
        let recs = world.recordings();
        let min = f64::from(secs) * BYTES_PER_AUDIO_SEC * 0.99;
        if recs.len() == want && recs.iter().all(|r| world.wav_len(r) as f64 >= min) {
            return Ok(sim);
        }
        sim.shutdown().await;
    }
    bail!("no seed below 500 gives exactly {want} recordings of {secs} s")
}

fn day_start(sim: &Simulator) -> DateTime<Utc> {
    let first = sim.world().tasks().first().map_or(0, |t| t.created_ms);
    let day = DateTime::from_timestamp_millis(first).unwrap_or_default();
    day.date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
}

/// utime + stime in seconds from a `/proc/.../stat` line (fields after the `(comm)`).
fn stat_cpu(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / CLK_TCK)
}

/// CPU seconds of this whole process and of its live `sim-worker` threads.
fn cpu_now() -> (f64, f64) {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let total = read(Path::new("/proc/self/stat"))
        .and_then(|s| stat_cpu(&s))
        .unwrap_or(0.0);
    let mut sim = 0.0;
    for entry in std::fs::read_dir("/proc/self/task").into_iter().flatten() {
        let dir = entry.map(|e| e.path()).unwrap_or_default();
        if read(&dir.join("comm")).is_some_and(|c| c.trim() == "sim-worker") {
            sim += read(&dir.join("stat"))
                .and_then(|s| stat_cpu(&s))
                .unwrap_or(0.0);
        }
    }
    (total, sim)
}

/// A temporary directory with room for `bytes` of audio plus 2 GiB.
fn scratch_for(bytes: u64) -> anyhow::Result<tempfile::TempDir> {
    let scratch = tempfile::tempdir()?;
    let free = free_bytes(scratch.path()).unwrap_or(0);
    ensure!(
        free > bytes + (2 << 30),
        "need {bytes} B plus 2 GiB free in {}, have {free}",
        scratch.path().display()
    );
    Ok(scratch)
}

/// Available bytes on the file system holding `dir`, from `df -Pk`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kb: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

// ---------------------------------------------------------------------------------------------
// Part 1: sync vs plain download, in-process

struct Run {
    name: &'static str,
    bytes: u64,
    secs: f64,
    cpu: f64,
    sim_cpu: f64,
}

impl Run {
    fn mbps(&self) -> f64 {
        self.bytes as f64 / MB / self.secs
    }
    fn client_cpu(&self) -> f64 {
        (self.cpu - self.sim_cpu).max(0.0)
    }
}

fn config(sim: &Simulator, output: &Path, token_dir: &Path) -> anyhow::Result<Config> {
    Ok(Config::resolve(
        Overrides {
            output: Some(output.to_string_lossy().into_owned()),
            token_dir: Some(token_dir.to_string_lossy().into_owned()),
            // The simulator has no limit here; the client's ceiling must not pace anything.
            rate_limit_per_minute: Some(1_000_000),
            download_concurrency: Some(CONCURRENCY),
            ..simulator_overrides(sim)
        },
        &SyncFileConfig::default(),
    )?)
}

async fn measured<F: Future<Output = anyhow::Result<u64>>>(
    name: &'static str,
    f: F,
) -> anyhow::Result<Run> {
    let (cpu0, sim0) = cpu_now();
    let began = Instant::now();
    let bytes = f.await?;
    let secs = began.elapsed().as_secs_f64();
    let (cpu1, sim1) = cpu_now();
    Ok(Run {
        name,
        bytes,
        secs,
        cpu: cpu1 - cpu0,
        sim_cpu: sim1 - sim0,
    })
}

/// Signed URLs through the library's captures query (10 tasks a query), then `CONCURRENCY`
/// plain GETs with the media client: bytes counted and dropped, or (with `to`) hashed with
/// SHA-256 and written to a file there, the least any verified copy has to do.
async fn plain_download(sim: &Simulator, cfg: &Config, to: Option<&Path>) -> anyhow::Result<u64> {
    let ctx = SyncContext::from_config(cfg)?;
    let mut ids: Vec<String> = sim
        .world()
        .recordings()
        .iter()
        .map(|r| r.task_id.clone())
        .collect();
    ids.dedup();
    let mut urls: Vec<SecretString> = Vec::new();
    for chunk in ids.chunks(wxcc::api::MAX_CAPTURE_IDS) {
        let (captures, _) = ctx.api.query_captures(chunk).await?;
        urls.extend(
            captures
                .into_iter()
                .flat_map(|c| c.recording)
                .filter_map(|r| r.attributes.file_path),
        );
    }
    if let Some(dir) = to {
        std::fs::create_dir_all(dir)?;
    }
    let http = wxcc::net::MediaClient::new(wxcc::net::MediaPolicy { loopback: true });
    let sizes: Vec<u64> = futures::stream::iter(urls.into_iter().enumerate())
        .map(|(i, url)| {
            let http = http.clone();
            let file = to.map(|d| d.join(format!("{i}.wav")));
            async move {
                let resp = http.get(url.expose_secret()).await?;
                ensure!(resp.status().is_success(), "download: {}", resp.status());
                let mut sink = match &file {
                    Some(path) => Some((
                        Sha256::new(),
                        tokio::io::BufWriter::with_capacity(
                            8 << 20,
                            tokio::fs::File::create(path).await?,
                        ),
                    )),
                    None => None,
                };
                let mut n = 0u64;
                let mut body = resp.bytes_stream();
                while let Some(chunk) = body.next().await {
                    let chunk = chunk?;
                    n += chunk.len() as u64;
                    if let Some((hasher, out)) = &mut sink {
                        hasher.update(&chunk);
                        out.write_all(&chunk).await?;
                    }
                }
                if let Some((hasher, mut out)) = sink {
                    out.flush().await?;
                    std::hint::black_box(hasher.finalize());
                }
                Ok(n)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    Ok(sizes.iter().sum())
}

async fn library_sync(
    sim: &Simulator,
    cfg: &Config,
    processing: Processing,
    recordings: u64,
) -> anyhow::Result<u64> {
    let mut ctx = SyncContext::from_config(cfg)?;
    ctx.processing = processing;
    let from = day_start(sim);
    let summary = sync::run(
        &ctx,
        &SyncOptions {
            range: SyncRange::Explicit {
                from,
                to: from + chrono::Duration::days(1),
            },
            download_concurrency: CONCURRENCY,
            org_id: cfg.org_id.clone(),
            dry_run: false,
            policy: Default::default(),
        },
    )
    .await?;
    ensure!(
        summary.stored == recordings && summary.failed == 0,
        "sync stored {} of {recordings} recordings ({} failed)",
        summary.stored,
        summary.failed
    );
    Ok(summary.bytes)
}

const VARIANTS: [&str; 5] = [
    "plain GET → sink",
    "plain GET → sha256+file",
    "sync, analysis on",
    "sync, analysis off",
    "sync, analysis + derive",
];

/// What the sync variants compute on the way (index into [`VARIANTS`]).
fn processing(variant: usize) -> Processing {
    Processing {
        analyze: variant != 3,
        derive: if variant == 4 {
            Derivative::ALL.to_vec()
        } else {
            Vec::new()
        },
        ..Processing::default()
    }
}

async fn throughput(
    rt: &Handle,
    recs: usize,
    secs: u32,
    reps: usize,
    link: Option<u64>,
) -> anyhow::Result<()> {
    let sim = start_sim(rt, recs, secs, link).await?;
    let world = sim.world().clone();
    let total: u64 = world.recordings().iter().map(|r| world.wav_len(r)).sum();
    let scratch = scratch_for(total)?;
    let tokens = scratch.path().join("tokens");
    let cfg = config(&sim, &scratch.path().join("lake"), &tokens)?;
    let n = recs as u64;

    // Interleaved repetitions, so drift in the machine's load hits every variant alike.
    let mut runs: [Vec<Run>; 5] = Default::default();
    for _ in 0..reps.max(1) {
        for (v, name) in VARIANTS.iter().enumerate() {
            let out = scratch.path().join("lake");
            let run = match v {
                0 => measured(name, plain_download(&sim, &cfg, None)).await?,
                1 => measured(name, plain_download(&sim, &cfg, Some(&out))).await?,
                _ => measured(name, library_sync(&sim, &cfg, processing(v), n)).await?,
            };
            ensure!(
                run.bytes == total,
                "{name}: moved {} of {total} B",
                run.bytes
            );
            if out.exists() {
                std::fs::remove_dir_all(&out)?;
            }
            runs[v].push(run);
        }
    }
    sim.shutdown().await;
    // The median run of each variant by throughput.
    for r in runs.iter_mut() {
        r.sort_by(|a, b| a.mbps().total_cmp(&b.mbps()));
    }
    let median = |v: usize| &runs[v][runs[v].len() / 2];

    let base = median(0).mbps();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "transfer (1): {recs} recordings × {secs} s audio ({:.1} MB each, {:.2} GB, {:.1} audio-h), \
         concurrency {CONCURRENCY}, loopback {}, output on local disk ({}); median of {} interleaved runs",
        total as f64 / recs as f64 / MB,
        total as f64 / 1e9,
        audio_hours(total),
        match link {
            Some(rate) => format!("held to {:.0} MB/s per download", rate as f64 / MB),
            None => "unlimited".to_string(),
        },
        scratch.path().display(),
        reps.max(1)
    );
    println!(
        "  {cores} cores shared by the simulator (synthesising the WAVs) and the client; \
         CPU = process utime+stime, sim = its sim-worker threads, client = CPU − sim"
    );
    println!(
        "  {:<24} {:>7} {:>7} {:>13} {:>9} {:>7} {:>7} {:>9}",
        "run", "wall s", "MB/s", "MB/s range", "vs plain", "CPU s", "sim s", "client s"
    );
    for (v, all) in runs.iter().enumerate() {
        let r = median(v);
        println!(
            "  {:<24} {:>7.2} {:>7.1} {:>13} {:>8.1}% {:>7.2} {:>7.2} {:>9.2}",
            r.name,
            r.secs,
            r.mbps(),
            format!("{:.0}–{:.0}", all[0].mbps(), all[all.len() - 1].mbps()),
            100.0 * r.mbps() / base,
            r.cpu,
            r.sim_cpu,
            r.client_cpu()
        );
    }
    let (on, off, derive) = (median(2), median(3), median(4));
    let hours = audio_hours(total);
    let extra = on.client_cpu() - off.client_cpu();
    println!(
        "  analysis: {hours:.1} audio-h / {:.2} client CPU-s of the analysing sync = {:.1} audio-h per CPU-s; \
         marginal (on − off) {extra:.2} CPU-s = {} audio-h per CPU-s",
        on.client_cpu(),
        hours / on.client_cpu().max(1e-9),
        if extra > 0.05 {
            format!("{:.1}", hours / extra)
        } else {
            "n/a (within noise)".to_string()
        }
    );
    let derive_extra = derive.client_cpu() - on.client_cpu();
    println!(
        "  derivatives (mono16k + ch1_16k + ch2_16k): marginal {derive_extra:.2} CPU-s = {} audio-h per CPU-s",
        if derive_extra > 0.05 {
            format!("{:.1}", hours / derive_extra)
        } else {
            "n/a (within noise)".to_string()
        }
    );
    println!(
        "  client CPU-s per GB moved: plain GET {:.2} s, sync analysis off {:.2} s, on {:.2} s, + derive {:.2} s",
        median(0).client_cpu() / (total as f64 / 1e9),
        off.client_cpu() / (total as f64 / 1e9),
        on.client_cpu() / (total as f64 / 1e9),
        derive.client_cpu() / (total as f64 / 1e9),
    );
    println!(
        "  goal: sync ≥ 90 % of plain download → analysis on {:.1} %, off {:.1} %, + derive {:.1} % \
         (vs GET → sha256+file: {:.1} %, {:.1} %)",
        100.0 * on.mbps() / base,
        100.0 * off.mbps() / base,
        100.0 * derive.mbps() / base,
        100.0 * on.mbps() / median(1).mbps(),
        100.0 * off.mbps() / median(1).mbps()
    );
    Ok(())
}

fn audio_hours(bytes: u64) -> f64 {
    bytes as f64 / BYTES_PER_AUDIO_SEC / 3600.0
}

// ---------------------------------------------------------------------------------------------
// Part 2: peak RSS of the release binary

/// The `wxcc` binary built alongside this bench (`--wxcc-bin` to use another).
fn wxcc_bin() -> PathBuf {
    arg("--wxcc-bin").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wxcc")), PathBuf::from)
}

#[derive(Clone, Copy, Default)]
struct Sample {
    at: Duration,
    rss_kib: u64,
    hwm_kib: u64,
    cpu: f64,
}

fn sample(pid: u32, began: Instant) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| stat_cpu(&s))
        .unwrap_or(0.0);
    Some(Sample {
        at: began.elapsed(),
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        cpu,
    })
}

/// Peak RSS of `wxcc sync` moving `recs` recordings; with `derive`, also writing all three
/// 16 kHz derivatives of each.
async fn peak_rss(
    rt: &Handle,
    recs: usize,
    secs: u32,
    concurrency: usize,
    derive: bool,
) -> anyhow::Result<()> {
    let bin = wxcc_bin();
    ensure!(bin.exists(), "no wxcc binary at {}", bin.display());
    let sim = start_sim(rt, recs, secs, None).await?;
    let world = sim.world().clone();
    let total: u64 = world.recordings().iter().map(|r| world.wav_len(r)).sum();
    let scratch = scratch_for(total)?;
    let out = scratch.path().join("lake");
    let from = day_start(&sim);
    let c = sim.credentials().clone();
    let mut cmd = tokio::process::Command::new(&bin);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("WXCC_")) {
        cmd.env_remove(k);
    }
    let stderr = std::fs::File::create(scratch.path().join("stderr.log"))?;
    cmd.current_dir(scratch.path())
        .args(["sync", "--from", &from.to_rfc3339()])
        .args(["--to", &(from + chrono::Duration::days(1)).to_rfc3339()])
        .arg("--output")
        .arg(&out)
        .args(["--concurrency", &concurrency.to_string()])
        .args(
            derive
                .then_some(["--derive", "mono16k,channels"])
                .into_iter()
                .flatten(),
        )
        .env("WXCC_API_BASE_URL", sim.base_url())
        .env("WXCC_OAUTH_BASE_URL", sim.base_url())
        .env("WXCC_CLIENT_ID", &c.client_id)
        .env("WXCC_CLIENT_SECRET", &c.client_secret)
        .env("WXCC_REFRESH_TOKEN", &c.refresh_token)
        .env("WXCC_ORG_ID", &c.org_id)
        .env("WXCC_TOKEN_DIR", scratch.path().join("tokens"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true);

    let began = Instant::now();
    let mut child = cmd.spawn().context("starting wxcc")?;
    let pid = child.id().context("child pid")?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(s) = sample(pid, began) {
                    samples.push(s);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            samples
        }
    });
    let child_stdout = child.stdout.take();
    let mut first_download: Option<Duration> = None;
    let wait = child.wait();
    tokio::pin!(wait);
    let deadline = tokio::time::sleep(Duration::from_secs(900));
    tokio::pin!(deadline);
    let status = loop {
        tokio::select! {
            status = &mut wait => break status?,
            _ = tokio::time::sleep(Duration::from_millis(2)) => {
                if first_download.is_none() && sim.stats().downloads > 0 {
                    first_download = Some(began.elapsed());
                }
            }
            _ = &mut deadline => {
                stop.store(true, Ordering::Relaxed);
                bail!("wxcc sync still running after 900 s");
            }
        }
    };
    let wall = began.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler thread");
    let mut stdout = String::new();
    if let Some(mut s) = child_stdout {
        tokio::io::AsyncReadExt::read_to_string(&mut s, &mut stdout).await?;
    }
    sim.shutdown().await;
    if !status.success() {
        let log = std::fs::read_to_string(scratch.path().join("stderr.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        bail!(
            "wxcc sync exited with {status}: {stdout}\n{}",
            tail.join("\n")
        );
    }
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).context("summary")?;
    let bytes = summary["bytes"].as_u64().unwrap_or(0);
    ensure!(
        summary["stored"].as_u64() == Some(recs as u64) && bytes == total,
        "unexpected summary: {stdout}"
    );
    drop(scratch); // ~4 GB of audio

    let first_dl = first_download.unwrap_or_default();
    let idle = samples
        .iter()
        .rev()
        .find(|s| s.at <= first_dl)
        .or(samples.first())
        .copied()
        .unwrap_or_default();
    let at_200ms = samples
        .iter()
        .find(|s| s.at >= Duration::from_millis(200))
        .copied()
        .unwrap_or_default();
    let peak_rss = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let hwm = samples.iter().map(|s| s.hwm_kib).max().unwrap_or(0);
    let peak = peak_rss.max(hwm);
    let cpu = samples.last().map_or(0.0, |s| s.cpu);
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "transfer (2): `{} sync --concurrency {concurrency}{}` (release) → local disk, \
         {recs} recordings × {secs} s audio ({:.0} MB each, {:.2} GB), simulator in the bench process",
        bin.display(),
        if derive {
            " --derive mono16k,channels"
        } else {
            ""
        },
        total as f64 / recs as f64 / MB,
        total as f64 / 1e9
    );
    println!(
        "  {} samples every 20 ms; first download at {:.0} ms",
        samples.len(),
        first_dl.as_secs_f64() * 1e3
    );
    println!(
        "  idle RSS (last sample before the first download)  {:>8.1} MiB   (at 200 ms: {:.1} MiB)",
        mib(idle.rss_kib),
        mib(at_200ms.rss_kib)
    );
    println!(
        "  peak RSS (max VmRSS {:.1}, VmHWM {:.1})             {:>8.1} MiB",
        mib(peak_rss),
        mib(hwm),
        mib(peak)
    );
    println!(
        "  peak − idle                                        {:>8.1} MiB   (goal ≤ 64 MiB)",
        mib(peak.saturating_sub(idle.rss_kib))
    );
    println!(
        "  wall {wall:.1} s, {:.1} MB/s ({:.1} MiB/s), child CPU {cpu:.1} s",
        bytes as f64 / MB / wall,
        bytes as f64 / MIB / wall
    );
    Ok(())
}
