use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wxcc::cli::{self, Cli, LogFormat};

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(cli::exit::FAILURE);
        }
    };
    runtime.block_on(cli::run(cli))
}

/// Logs go to standard error (data goes to standard output). `RUST_LOG` overrides the level.
fn init_logging(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,wxcc={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_target(false).compact().init(),
    }
}

/// glibc's malloc keeps up to 8 arenas per core, and the commits' large, short-lived Arrow
/// buffers, freed on other threads, leave each of them holding memory it never returns: a
/// 10,000-call day grew to 198 MiB resident while its live heap peaked near 21 MiB (heaptrack).
/// Two arenas keep that to 129 MiB (`benches/sync_memory.rs`) for no measurable loss of
/// speed, where jemalloc reached 148 MiB and mimalloc more, each adding a C build. Measured
/// again with both in 2026-12 (README, "Crates we lean on"): mimalloc saves 10–15 % of the
/// sync's CPU but peaks at 133 MiB or more on a 100,000-call day, twice its 1,000-call day.
///
/// A fixed mmap threshold stops glibc from raising it (up to 32 MiB) after the first large
/// buffer is freed: buffers above it are mapped and unmapped on their own instead of being
/// carved from an arena they then fragment; the trim threshold gives freed tops back sooner.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets allocator parameters; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// glibc's own starting value (128 KiB), kept fixed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
