//! `wxcc sql`, `wxcc query list|run` and `wxcc export`: flags into calls of the query library.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};

use crate::config;
use crate::query::params::{ParamDefault, bind_text, parse_assignments};
use crate::query::{
    self, Destination, ExportRequest, OutputFormat, QueryError, QuerySession, export,
};

/// The selection `wxcc export` uses when given neither --query nor --sql.
const DEFAULT_EXPORT_QUERY: &str = "recordings_to_transcribe";

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Data location, as written by sync: a path, file://, s3://, gs:// or az:// URL.
    /// Default: WXCC_OUTPUT or ./wxcc-data.
    #[arg(long, env = "WXCC_OUTPUT")]
    pub data: Option<String>,
}

#[derive(Debug, Args)]
pub struct ResultArgs {
    /// Output format (parquet needs --output unless standard output is a pipe or file).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the results to FILE or an object URL (s3://bucket/out.csv) instead of standard
    /// output; written whole or not at all.
    #[arg(long, value_name = "FILE|URL")]
    pub output: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    #[value(alias = "jsonl")]
    Ndjson,
    Parquet,
}

impl From<Format> for OutputFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Table => OutputFormat::Table,
            Format::Csv => OutputFormat::Csv,
            Format::Json => OutputFormat::Json,
            Format::Ndjson => OutputFormat::Ndjson,
            Format::Parquet => OutputFormat::Parquet,
        }
    }
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The SQL statement (tables tasks, captures, manifest, audio_facts; view recordings), or
    /// @NAME for a saved query (same as `wxcc query run NAME`).
    pub sql: String,
    /// A `$name` placeholder value, NAME=VALUE (repeatable). Bound as data, never spliced into
    /// the SQL; in ad-hoc SQL values are text (CAST them), in saved queries they take the
    /// declared type.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub result: ResultArgs,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(subcommand)]
    pub command: QueryCommand,
}

#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// List the saved queries with what each answers and its parameters.
    List,
    /// Run a saved query with parameters.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Saved query name (see `wxcc query list`).
    pub name: String,
    /// A parameter value, NAME=VALUE (repeatable), checked against its declared type.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub result: ResultArgs,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Saved query selecting the recordings (default: recordings_to_transcribe).
    #[arg(long, conflicts_with = "sql")]
    pub query: Option<String>,
    /// Ad-hoc SQL selecting the recordings; must return org_id, task_id and recording_id.
    #[arg(long)]
    pub sql: Option<String>,
    /// A parameter value for the selection, NAME=VALUE (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Job list format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
    /// Write the job list to FILE or an object URL instead of standard output.
    #[arg(long, value_name = "FILE|URL")]
    pub output: Option<String>,
    /// Audio each job points at: the stored original, or its 16 kHz mono derivative (made by
    /// `wxcc sync --derive mono16k`; recordings without one are left out).
    #[arg(long, value_enum, default_value_t = ExportAudioArg::Original)]
    pub audio: ExportAudioArg,
    /// Add a pre-signed HTTPS URL valid this long (e.g. 15m, 1h, 2d; at most 7d). Needs an S3,
    /// GCS or Azure store; computed locally, no request is sent.
    #[arg(long, value_name = "DURATION")]
    pub sign: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportAudioArg {
    Original,
    Mono16k,
}

impl From<ExportAudioArg> for query::ExportAudio {
    fn from(a: ExportAudioArg) -> Self {
        match a {
            ExportAudioArg::Original => query::ExportAudio::Original,
            ExportAudioArg::Mono16k => query::ExportAudio::Mono16k,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    #[value(alias = "ndjson")]
    Jsonl,
    Csv,
    Parquet,
}

impl From<ExportFormat> for OutputFormat {
    fn from(f: ExportFormat) -> Self {
        match f {
            ExportFormat::Jsonl => OutputFormat::Ndjson,
            ExportFormat::Csv => OutputFormat::Csv,
            ExportFormat::Parquet => OutputFormat::Parquet,
        }
    }
}

/// Whether an error in the chain is the user's to fix (exit code 2).
pub fn is_usage_error(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<QueryError>()
        .is_some_and(QueryError::is_usage)
}

/// `wxcc sql`.
pub async fn run_sql(config_path: Option<PathBuf>, args: SqlArgs) -> Result<()> {
    let given = parse_assignments(&args.params)?;
    let (sql, params) = match args.sql.strip_prefix('@') {
        Some(name) => {
            let q = query::find_saved_query(name)?;
            (q.sql.to_string(), Some(q.bind(&given)?))
        }
        None => {
            let params = (!given.is_empty()).then(|| bind_text(&given));
            (args.sql, params)
        }
    };
    execute(config_path, args.data, &sql, params, args.result).await
}

/// `wxcc query list|run`.
pub async fn run_query(config_path: Option<PathBuf>, args: QueryArgs) -> Result<()> {
    match args.command {
        QueryCommand::List => {
            print!("{}", list_text());
            Ok(())
        }
        QueryCommand::Run(run) => {
            let q = query::find_saved_query(&run.name)?;
            let params = q.bind(&parse_assignments(&run.params)?)?;
            execute(config_path, run.data, q.sql, Some(params), run.result).await
        }
    }
}

/// `wxcc export`.
/// Exits 4 when the job list leaves selected recordings out (no stored audio, no derivative).
pub async fn run_export(config_path: Option<PathBuf>, args: ExportArgs) -> Result<u8> {
    let given = parse_assignments(&args.params)?;
    let (selection_sql, params) = match (args.sql, args.query.as_deref()) {
        (Some(sql), _) => {
            let params = (!given.is_empty()).then(|| bind_text(&given));
            (sql, params)
        }
        (None, name) => {
            let q = query::find_saved_query(name.unwrap_or(DEFAULT_EXPORT_QUERY))?;
            (q.sql.to_string(), Some(q.bind(&given)?))
        }
    };
    let sign = args.sign.as_deref().map(export::parse_ttl).transpose()?;
    let format = OutputFormat::from(args.format);
    let storage = storage(config_path, args.data)?;
    let destination = Destination::parse(args.output.as_deref(), &storage.options)?;
    destination.check_format(format)?;
    let lake = open_existing_lake(&storage).await?;
    let session = QuerySession::open(&lake).await?;
    let request = ExportRequest {
        selection_sql,
        params,
        sign,
        audio: args.audio.into(),
    };
    let jobs = query::export_jobs(&session, &lake, &request).await?;
    // After `export_jobs` checked the selection's columns; the stream has not run yet.
    let coverage = query::coverage(&session, &request).await?;
    let rows = query::write_stream(jobs, format, &destination).await?;
    tracing::info!(rows, signed = sign.is_some(), "export written");
    // The list is written either way; a short one says so and exits 4, like a partial sync.
    Ok(match coverage.shortfall(rows as u64, request.audio) {
        Some(why) => {
            tracing::warn!("{why}");
            super::exit::PARTIAL
        }
        None => super::exit::OK,
    })
}

/// [`super::open_lake`] for commands that only read: a location that holds nothing wxcc wrote
/// (a mistyped `--data`, local or in a bucket, or a folder that is not a lake) is refused rather
/// than read as an empty lake, which would answer every query with nothing and exit 0.
pub(super) async fn open_existing_lake(
    storage: &config::StorageConfig,
) -> Result<crate::lake::Lake> {
    let location = storage.location.as_str();
    // As the lake reads them: `file://` URLs decoded (`%20`, `localhost`), plain paths as given.
    let local = if location.starts_with("file://") {
        url::Url::parse(location)
            .ok()
            .and_then(|u| u.to_file_path().ok())
    } else {
        (!location.contains("://")).then(|| PathBuf::from(location))
    };
    let no_lake = |at: String| {
        QueryError::Usage(format!(
            "no lake at {at}: check --data (or WXCC_OUTPUT, or [storage] location in the config \
             file); it must be the folder or prefix `wxcc sync --output` wrote, which holds \
             tasks/, manifest/ and _state/"
        ))
    };
    if let Some(dir) = local.as_ref().filter(|d| !d.exists()) {
        return Err(no_lake(dir.display().to_string()).into());
    }
    let lake = super::open_lake(storage)?;
    if !lake.holds_a_lake().await? {
        let at = local.map_or_else(|| location.to_owned(), |d| d.display().to_string());
        return Err(no_lake(at).into());
    }
    Ok(lake)
}

async fn execute(
    config_path: Option<PathBuf>,
    data: DataArgs,
    sql: &str,
    params: Option<datafusion::common::ParamValues>,
    result: ResultArgs,
) -> Result<()> {
    let format = OutputFormat::from(result.format);
    let storage = storage(config_path, data)?;
    let destination = Destination::parse(result.output.as_deref(), &storage.options)?;
    // Refuse binary-to-terminal before any work is done.
    destination.check_format(format)?;
    let lake = open_existing_lake(&storage).await?;
    let session = QuerySession::open(&lake).await?;
    let df = session.dataframe(sql, params).await?;
    let stream = df.execute_stream().await.map_err(QueryError::sql)?;
    let rows = query::write_stream(stream, format, &destination).await?;
    tracing::debug!(rows, "query results written");
    Ok(())
}

/// The lake as sync writes it: `--data` over WXCC_OUTPUT over wxcc.toml's `output`, with the
/// file's `[storage]` options and TLS check.
/// The lake a read command works on: `--data`, else `output` and `[storage]` of wxcc.toml.
pub(super) fn storage(
    config_path: Option<PathBuf>,
    data: DataArgs,
) -> Result<config::StorageConfig> {
    let flags = config::Overrides {
        output: data.data,
        ..Default::default()
    };
    let (values, _) = super::load_layers(config_path, flags)?;
    Ok(config::StorageConfig::resolve(&values)?)
}

/// `query list`: each query's name and description, then its parameters.
fn list_text() -> String {
    let mut out = String::new();
    for q in query::saved_queries() {
        out.push_str(&format!("{}\n    {}\n", q.name, q.description));
        let rows: Vec<(String, String, &str)> = q
            .params
            .iter()
            .map(|p| {
                let default = match &p.default {
                    ParamDefault::Required => "required".to_string(),
                    ParamDefault::Null => "default NULL".to_string(),
                    ParamDefault::Value(v) => format!("default {v}"),
                };
                let flag = format!("--param {}=<{}>", p.name, p.param_type);
                (flag, default, p.description.as_str())
            })
            .collect();
        let w1 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let w2 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        for (flag, default, description) in rows {
            out.push_str(&format!("    {flag:w1$}  {default:w2$}  {description}\n"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_shows_every_query_with_its_parameters() {
        let text = list_text();
        for q in query::saved_queries() {
            assert!(
                text.contains(q.name) && text.contains(q.description),
                "{}",
                q.name
            );
        }
        assert!(
            text.contains("--param since=<DATE>  default 1970-01-01"),
            "{text}"
        );
        assert!(
            text.contains("--param queue=<TEXT>  default NULL"),
            "{text}"
        );
    }
}
