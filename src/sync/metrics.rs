//! Prometheus text exposition of finished runs, for node_exporter's textfile collector: one file
//! per scheduled command, replaced atomically (temp file + rename in the same folder) so the
//! collector never reads half a file. Every value is a gauge about the last run, labelled by org.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::{RunStatus, SyncSummary};

/// One org's outcome: its summary when the run got that far, and the exit code it earned.
pub struct OrgRun<'a> {
    /// The org label: the org id, or what identifies the failed attempt when none was resolved.
    pub org: String,
    pub summary: Option<&'a SyncSummary>,
    pub exit_code: u8,
}

struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

/// The exposition text for `runs`, measured at `now` (for the watermark lag).
pub fn render(runs: &[OrgRun<'_>], now: DateTime<Utc>) -> String {
    type Get = fn(&SyncSummary, DateTime<Utc>) -> Option<f64>;
    let per_summary: &[(&str, &str, Get)] = &[
        (
            "wxcc_sync_tasks",
            "Tasks listed by the last run.",
            |s, _| Some(s.tasks as f64),
        ),
        (
            "wxcc_sync_recordings",
            "Recordings seen by the last run.",
            |s, _| Some(s.recordings as f64),
        ),
        (
            "wxcc_sync_recordings_stored",
            "Recordings stored by the last run.",
            |s, _| Some(s.stored as f64),
        ),
        (
            "wxcc_sync_recordings_failed",
            "Recordings that could not be stored (retried later).",
            |s, _| Some(s.failed as f64),
        ),
        (
            "wxcc_sync_bytes",
            "Audio bytes stored by the last run.",
            |s, _| Some(s.bytes as f64),
        ),
        (
            "wxcc_sync_api_requests",
            "API requests made by the last run.",
            |s, _| s.api.map(|a| a.requests as f64),
        ),
        (
            "wxcc_sync_api_rate_limited",
            "API answers with HTTP 429 in the last run.",
            |s, _| s.api.map(|a| a.rate_limited as f64),
        ),
        (
            "wxcc_sync_api_retries",
            "API request retries in the last run.",
            |s, _| s.api.map(|a| a.retries as f64),
        ),
        (
            "wxcc_sync_rejects",
            "API records quarantined by the last run.",
            |s, _| Some(s.rejects as f64),
        ),
        (
            "wxcc_sync_failed_tasks",
            "Tasks whose captures could not be read, still owed.",
            |s, _| Some(s.failed_tasks.len() as f64),
        ),
        (
            "wxcc_sync_gaps",
            "Listing ranges that could not be read, still owed.",
            |s, _| Some(s.gaps.len() as f64),
        ),
        (
            "wxcc_sync_duration_seconds",
            "Wall time of the last run.",
            |s, _| Some(s.duration_ms as f64 / 1000.0),
        ),
        (
            "wxcc_sync_pending_ledger",
            "Ledger entries later runs will still ask about.",
            |s, _| {
                s.pending.map(|p| {
                    (p.no_recording_yet + p.captures_failed + p.download_failed + p.gaps) as f64
                })
            },
        ),
        (
            "wxcc_sync_refresh_token_expiry_timestamp_seconds",
            "When the refresh token stops working (Unix time; alert well before it).",
            |s, _| {
                let at = DateTime::parse_from_rfc3339(s.refresh_token_expires_at.as_deref()?);
                Some(at.ok()?.timestamp() as f64)
            },
        ),
        (
            "wxcc_sync_watermark_lag_seconds",
            "How far the synced range ends behind now (runs that finished their windows only).",
            |s, now| {
                let finished = matches!(s.status, RunStatus::Ok | RunStatus::Partial) && !s.dry_run;
                let to = DateTime::parse_from_rfc3339(&s.to)
                    .ok()
                    .filter(|_| finished)?;
                Some(((now - to.to_utc()).num_milliseconds() as f64 / 1000.0).max(0.0))
            },
        ),
    ];
    let mut families = vec![
        Family {
            name: "wxcc_sync_last_run_timestamp_seconds",
            help: "When the last run ended (Unix time).",
            samples: Vec::new(),
        },
        Family {
            name: "wxcc_sync_success",
            help: "1 when the last run exited 0, else 0.",
            samples: Vec::new(),
        },
        Family {
            name: "wxcc_sync_exit_code",
            help: "Exit code of the last run (see README: exit codes).",
            samples: Vec::new(),
        },
    ];
    families.extend(per_summary.iter().map(|(name, help, _)| Family {
        name,
        help,
        samples: Vec::new(),
    }));
    for run in runs {
        let label = format!("{{org=\"{}\"}}", escape(&run.org));
        let ended = now.timestamp_millis() as f64 / 1000.0;
        families[0].samples.push((label.clone(), ended));
        families[1]
            .samples
            .push((label.clone(), f64::from(u8::from(run.exit_code == 0))));
        families[2]
            .samples
            .push((label.clone(), f64::from(run.exit_code)));
        let Some(s) = run.summary else { continue };
        for (family, (_, _, get)) in families[3..].iter_mut().zip(per_summary) {
            if let Some(v) = get(s, now) {
                family.samples.push((label.clone(), v));
            }
        }
    }
    let mut out = String::new();
    for f in families.iter().filter(|f| !f.samples.is_empty()) {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} gauge", f.name);
        for (labels, v) in &f.samples {
            let _ = writeln!(out, "{}{labels} {v}", f.name);
        }
    }
    out
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes `text` to `path` atomically.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".wxcc-metrics")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.as_file().sync_all()?;
    // node_exporter runs as another user: world-readable like any other textfile.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_org_without_summary_still_reports_its_exit_code() {
        let ok = SyncSummary {
            tasks: 5,
            to: "2026-01-05T00:00:00+00:00".into(),
            refresh_token_expires_at: Some("2026-01-19T00:00:00Z".into()),
            ..Default::default()
        };
        let now = DateTime::parse_from_rfc3339("2026-01-05T00:10:00Z")
            .unwrap()
            .to_utc();
        let text = render(
            &[
                OrgRun {
                    org: "a".into(),
                    summary: Some(&ok),
                    exit_code: 0,
                },
                OrgRun {
                    org: "b\"x".into(),
                    summary: None,
                    exit_code: 3,
                },
            ],
            now,
        );
        assert!(text.contains("wxcc_sync_tasks{org=\"a\"} 5\n"), "{text}");
        assert!(
            text.contains("wxcc_sync_exit_code{org=\"b\\\"x\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("wxcc_sync_success{org=\"b\\\"x\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("wxcc_sync_watermark_lag_seconds{org=\"a\"} 600\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "wxcc_sync_refresh_token_expiry_timestamp_seconds{org=\"a\"} 1768780800\n"
            ),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE wxcc_sync_tasks gauge").count(), 1);
    }
}
