//! `wxcc report`: flags into a [`ReportRequest`], the page or JSON to a file or standard output.

use anyhow::Result;
use chrono::{NaiveDate, Utc};
use clap::{Args, ValueEnum};

use super::query::DataArgs;
use crate::report::{self, ReportError, ReportRequest};

/// A report covers whole days: an instant (as `sync --from` takes) is refused with that reason.
fn parse_day(value: &str) -> std::result::Result<NaiveDate, String> {
    crate::lake::partition::parse_day(value.trim()).ok_or_else(|| {
        "expected a UTC day as YYYY-MM-DD, e.g. 2026-01-05 (a report covers whole days)".to_owned()
    })
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// First UTC day (YYYY-MM-DD) of tasks to report on. Default: 30 days before --to.
    #[arg(long, value_parser = parse_day)]
    pub from: Option<NaiveDate>,
    /// First UTC day not included (YYYY-MM-DD). Default: the day after the newest task in the
    /// lake.
    #[arg(long, value_parser = parse_day)]
    pub to: Option<NaiveDate>,
    /// Only this organization (default: every org in the lake).
    #[arg(long)]
    pub org: Option<String>,
    /// html: one self-contained page; json: the same figures, for dashboards.
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub format: ReportFormat,
    /// Write to FILE (replaced whole, or left untouched on error) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Html,
    Json,
}

/// Whether an error in the chain is the user's to fix (exit code 2).
pub fn is_usage_error(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<ReportError>()
        .is_some_and(ReportError::is_usage)
}

pub async fn run(config_path: Option<std::path::PathBuf>, args: ReportArgs) -> Result<()> {
    let as_of = Utc::now();
    let lake =
        super::query::open_existing_lake(&super::query::storage(config_path, args.data)?).await?;
    let request = ReportRequest {
        from: args.from,
        to: args.to,
        org: args.org,
        as_of,
    };
    let report = report::build(&lake, &request).await?;
    let body = match args.format {
        ReportFormat::Html => report::render_html(&report),
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
    };
    super::schema::write_out(args.output.as_deref(), &body)?;
    if let Some(path) = &args.output {
        tracing::info!(path = %path.display(), bytes = body.len(), "report written");
    }
    Ok(())
}
