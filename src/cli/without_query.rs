//! The DataFusion commands (`sql`, `query`, `export`, `report`, `duckdb-init`) in a build
//! without the `query` cargo feature: they still parse (any arguments), then exit 2 with a
//! message that says how to get them.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

/// A command left out of this build.
#[derive(Debug, thiserror::Error)]
#[error(
    "`wxcc {command}` needs the `query` feature, and this wxcc was built without it: rebuild \
     with `cargo install --path . --features query`"
)]
pub struct FeatureMissing {
    pub command: &'static str,
}

pub fn missing(command: &'static str) -> FeatureMissing {
    FeatureMissing { command }
}

/// Any arguments, accepted and ignored.
#[derive(Debug, Args)]
pub struct Disabled {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<String>,
}

pub type SqlArgs = Disabled;
pub type QueryArgs = Disabled;
pub type ExportArgs = Disabled;
pub type ReportArgs = Disabled;

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Data location, as written by sync: a path, file://, s3://, gs:// or az:// URL.
    #[arg(long, env = "WXCC_OUTPUT")]
    pub data: Option<String>,
}

/// Whether an error in the chain is the user's to fix (exit code 2).
pub fn is_usage_error(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<FeatureMissing>().is_some()
}

pub async fn run_sql(_config: Option<PathBuf>, _args: SqlArgs) -> Result<()> {
    Err(missing("sql").into())
}

pub async fn run_query(_config: Option<PathBuf>, _args: QueryArgs) -> Result<()> {
    Err(missing("query").into())
}

pub async fn run_export(_config: Option<PathBuf>, _args: ExportArgs) -> Result<u8> {
    Err(missing("export").into())
}

/// `wxcc report`.
pub async fn run(_config: Option<PathBuf>, _args: ReportArgs) -> Result<()> {
    Err(missing("report").into())
}
