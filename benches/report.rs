//! Report benchmark (a report, not a timed test): `wxcc report` over a synthetic lake of
//! 100 days × 1000 calls (tasks, captures, manifest and audio facts written with the lake API),
//! printing the time to build the report and the size of the HTML page.
//!
//! ```sh
//! cargo bench --bench report   # WXCC_BENCH_DAYS, WXCC_BENCH_CALLS: size; WXCC_BENCH_DIR: keep the lake
//! ```

mod common;

use common::env_usize;
use common::report_lake::generate;
use std::time::Instant;

use chrono::{NaiveDate, Utc};
use wxcc::lake::Lake;
use wxcc::report::{ReportRequest, build, render_html};

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must stay fast.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("report bench: run with `cargo bench --bench report`");
        return;
    }
    let days = env_usize("WXCC_BENCH_DAYS", 100).max(1);
    let calls = env_usize("WXCC_BENCH_CALLS", 1000).max(1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = std::env::var("WXCC_BENCH_DIR").map_or_else(|_| tmp.path().join("lake"), Into::into);
    let start = NaiveDate::from_ymd_opt(2026, 1, 1).expect("date");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let lake = Lake::open(root.to_str().expect("utf8 path")).expect("lake");
        if root.join("tasks").is_dir() {
            eprintln!("reusing the lake in {}", root.display());
        } else {
            let t = Instant::now();
            generate(&lake, start, days, calls).await;
            eprintln!("wrote {days} days x {calls} tasks in {:.1} s", t.elapsed().as_secs_f64());
        }
        let request = ReportRequest {
            from: Some(start),
            to: Some(start + chrono::Days::new(days as u64)),
            org: None,
            as_of: Utc::now(),
        };
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let report = build(&lake, &request).await.expect("report builds");
            let html = render_html(&report);
            times.push(t.elapsed());
            size = html.len();
        }
        times.sort();
        println!(
            "\nwxcc report over {days} days x {calls} tasks: median {:.2} s of 3 (min {:.2} s), HTML {:.0} KB (limit 2 MB)",
            times[1].as_secs_f64(),
            times[0].as_secs_f64(),
            size as f64 / 1024.0
        );
        assert!(size < 2 * 1024 * 1024, "HTML {size} bytes exceeds 2 MB");
    });
}
