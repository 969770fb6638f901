//! `wxcc schema` (column documentation from `schemas/`) and `wxcc duckdb-init` (DuckDB views
//! over a lake).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use super::query::DataArgs;
use crate::lake::docs;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// md: a Markdown page; json: for programs; dbt: a dbt `sources.yml`.
    #[arg(long, value_enum, default_value_t = SchemaFormat::Md)]
    pub format: SchemaFormat,
    /// Write to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaFormat {
    Md,
    Json,
    Dbt,
}

#[derive(Debug, Args)]
pub struct DuckdbInitArgs {
    /// Write the statements to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn run_schema(args: SchemaArgs) -> Result<()> {
    let text = match args.format {
        SchemaFormat::Md => docs::markdown(),
        SchemaFormat::Json => serde_json::to_string_pretty(&docs::json())? + "\n",
        SchemaFormat::Dbt => docs::dbt_sources(),
    };
    write_out(args.output.as_deref(), &text)
}

pub async fn run_duckdb_init(
    config_path: Option<std::path::PathBuf>,
    args: DuckdbInitArgs,
) -> Result<()> {
    #[cfg(feature = "query")]
    {
        let storage = super::query::storage(config_path, args.data)?;
        let lake = super::query::open_existing_lake(&storage).await?;
        let sql = crate::query::duckdb::init_sql(&lake).await?;
        write_out(args.output.as_deref(), &sql)
    }
    #[cfg(not(feature = "query"))]
    {
        let _ = (config_path, args);
        Err(super::query::missing("duckdb-init").into())
    }
}

/// Writes `text` to `path` whole (temp file + rename) or to standard output.
pub fn write_out(path: Option<&Path>, text: &str) -> Result<()> {
    let Some(path) = path else {
        std::io::stdout().lock().write_all(text.as_bytes())?;
        return Ok(());
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
