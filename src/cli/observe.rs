//! What `wxcc sync` (and `demo`) report to the operator's tools besides logs: the Prometheus
//! metrics file and OpenLineage run events. Both are observers: failing to write them is logged
//! and never changes a run's exit code.

use anyhow::Result;
use chrono::Utc;
use url::Url;

use super::SyncArgs;
use crate::config::Config;
use crate::sync::{self, RunReport, SyncSummary, lineage};

/// One org's lineage run: announced by START before the sync, closed by COMPLETE or FAIL.
pub(super) struct Lineage {
    sink: lineage::Sink,
    job_org: String,
    pub run_id: String,
}

impl Lineage {
    /// Sends START when `--openlineage-file` or `--openlineage-url` is given.
    pub async fn start(args: &SyncArgs, cfg: &Config) -> Option<Lineage> {
        let sink = match (&args.openlineage_file, &args.openlineage_url) {
            (Some(path), _) => lineage::Sink::File(path.clone()),
            (None, Some(url)) => lineage::Sink::Http(url.clone()),
            (None, None) => return None,
        };
        let run = Lineage {
            sink,
            job_org: cfg.org_id.clone().unwrap_or_else(|| "default".into()),
            run_id: uuid::Uuid::new_v4().to_string(),
        };
        let event = lineage::start_event(&run.run_id, &run.job_org, Utc::now());
        lineage::emit(&run.sink, &event).await;
        Some(run)
    }

    /// Sends COMPLETE or FAIL for the sync's outcome; `lake_root` names the output datasets.
    pub async fn end(&self, outcome: &Result<RunReport>, lake_root: Option<&Url>) {
        let (summary, error) = match outcome {
            Ok(r) => (Some(&r.summary), r.error.as_ref().map(ToString::to_string)),
            Err(e) => (None, Some(super::describe(e))),
        };
        let fallback = Url::parse("file:///").expect("static URL");
        let event = lineage::end_event(
            &self.run_id,
            &self.job_org,
            summary,
            error.as_deref(),
            lake_root.unwrap_or(&fallback),
            Utc::now(),
        );
        lineage::emit(&self.sink, &event).await;
    }
}

/// `--metrics-file`: every org's outcome as (label, summary if any, exit code).
pub(crate) fn write_metrics(
    path: Option<&std::path::Path>,
    runs: &[(String, Option<SyncSummary>, u8)],
) {
    let Some(path) = path else { return };
    let runs: Vec<sync::metrics::OrgRun<'_>> = runs
        .iter()
        .map(|(org, summary, code)| sync::metrics::OrgRun {
            org: org.clone(),
            summary: summary.as_ref(),
            exit_code: *code,
        })
        .collect();
    let text = sync::metrics::render(&runs, Utc::now());
    if let Err(e) = sync::metrics::write(path, &text) {
        tracing::warn!(path = %path.display(), error = %e, "cannot write the metrics file");
    }
}
