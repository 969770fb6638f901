//! `wxcc report`: an analyst's view of the lake, as one self-contained HTML page (inline SVG
//! charts, no script, no external resource) or as the same figures in JSON.
//!
//! Every figure comes from a saved query in `queries/report_*.sql`, run through the same
//! [`QuerySession`] as `wxcc sql`, so each chart names the query (and parameters) that reproduce
//! it. The pipeline-health queries also see the sync state as two tables (see [`state`]).

mod charts;
mod html;
mod state;
mod svg;

use chrono::{DateTime, Days, NaiveDate, SecondsFormat, Utc};
use datafusion::arrow::array::RecordBatch;
use serde::Serialize;
use serde_json::{Map, Value};

pub use charts::{CHARTS, ChartSpec, Kind, Shape, report_queries};
pub use html::render_html;
pub use state::SyncState;

use crate::lake::Lake;
use crate::query::{OutputFormat, QueryError, QuerySession, SavedQuery, format_batches};

/// Errors while building a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("cannot read the sync state: {0}")]
    State(#[source] object_store::Error),
    #[error("sync state file {path} is not valid JSON ({reason}); remove or repair it")]
    Corrupt { path: String, reason: String },
    #[error("cannot register the sync state tables: {0}")]
    Table(#[source] datafusion::error::DataFusionError),
    #[error("--from {from} must be before --to {to}")]
    Range { from: NaiveDate, to: NaiveDate },
    #[error("org {org} has no data or sync state in this lake (orgs here: {known}): check --org")]
    UnknownOrg { org: String, known: String },
    #[error(transparent)]
    Lake(#[from] crate::lake::LakeError),
}

impl ReportError {
    /// Whether the error is the caller's to fix (exit code 2).
    pub fn is_usage(&self) -> bool {
        match self {
            ReportError::Range { .. } | ReportError::UnknownOrg { .. } => true,
            ReportError::Query(q) => q.is_usage(),
            _ => false,
        }
    }
}

pub type Result<T, E = ReportError> = std::result::Result<T, E>;

/// A mistyped `--org` (or another case of it) would draw an empty report with exit 0.
async fn refuse_unknown_org(lake: &Lake, org: &str) -> Result<()> {
    let mut known = lake.org_ids("_state").await?;
    known.extend(lake.org_ids(crate::lake::Table::Tasks.name()).await?);
    known.sort();
    known.dedup();
    if known.iter().any(|k| k == org) {
        return Ok(());
    }
    Err(ReportError::UnknownOrg {
        org: org.to_owned(),
        known: if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        },
    })
}

/// Days covered when `from` is not given.
pub const DEFAULT_DAYS: u64 = 30;

/// What to report on: tasks created in `[from, to)` (UTC days), of one org or all.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    /// Default: [`DEFAULT_DAYS`] before `to`.
    pub from: Option<NaiveDate>,
    /// Default: the day after the newest task in the lake (today's tomorrow when it is empty),
    /// so a lake that stopped syncing still shows its last month, not an empty page.
    pub to: Option<NaiveDate>,
    pub org: Option<String>,
    /// The instant lags are measured from (the time the report is made).
    pub as_of: DateTime<Utc>,
}

/// The figures of one chart: the query that made them and its result.
#[derive(Debug, Clone, Serialize)]
pub struct ChartData {
    pub id: &'static str,
    pub title: &'static str,
    /// Saved query name: `queries/<query>.sql`.
    pub query: &'static str,
    /// The query's one-line description.
    pub description: &'static str,
    /// The parameters it ran with, as `--param` values.
    pub params: Vec<(String, String)>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl ChartData {
    /// Index of a result column.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// A whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub from: NaiveDate,
    /// First day not included.
    pub to: NaiveDate,
    pub org: Option<String>,
    pub generated_at: String,
    pub charts: Vec<ChartData>,
}

impl Report {
    pub fn chart(&self, id: &str) -> Option<&ChartData> {
        self.charts.iter().find(|c| c.id == id)
    }
}

/// Runs every report query over the lake.
pub async fn build(lake: &Lake, request: &ReportRequest) -> Result<Report> {
    if let Some(org) = &request.org {
        refuse_unknown_org(lake, org).await?;
    }
    let session = QuerySession::open(lake).await?;
    let to = match request.to {
        Some(to) => to,
        None => {
            newest_day(&session, request.org.as_deref())
                .await?
                .unwrap_or(request.as_of.date_naive())
                + Days::new(1)
        }
    };
    let from = request.from.unwrap_or(to - Days::new(DEFAULT_DAYS));
    if from >= to {
        return Err(ReportError::Range { from, to });
    }
    let request = &Resolved {
        from,
        to,
        org: request.org.clone(),
        as_of: request.as_of,
    };
    SyncState::read(lake).await?.register(&session)?;
    let mut charts = Vec::with_capacity(CHARTS.len());
    for spec in CHARTS {
        charts.push(run_chart(&session, spec, request).await?);
    }
    Ok(Report {
        from,
        to,
        org: request.org.clone(),
        generated_at: request.as_of.to_rfc3339_opts(SecondsFormat::Secs, true),
        charts,
    })
}

/// A request with its range decided.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub org: Option<String>,
    pub as_of: DateTime<Utc>,
}

/// The newest task day in the lake (of `org`, if given).
async fn newest_day(session: &QuerySession, org: Option<&str>) -> Result<Option<NaiveDate>> {
    let given: Vec<(String, String)> = org
        .map(|o| vec![("org".to_owned(), o.to_owned())])
        .unwrap_or_default();
    let params = crate::query::params::bind_text(&given);
    let sql = if org.is_some() {
        "SELECT MAX(date) AS d FROM tasks WHERE org_id = $org"
    } else {
        "SELECT MAX(date) AS d FROM tasks"
    };
    let (_, rows) = rows_of(&session.sql_with_params(sql, params).await?)?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .and_then(Value::as_str)
        .and_then(|d| d.parse().ok()))
}

/// The `--param` values a report query runs with: the range, the org and `as_of`, each only if
/// the query declares it.
pub fn params_for(query: &SavedQuery, request: &Resolved) -> Vec<(String, String)> {
    let mut given = vec![
        ("since".to_owned(), request.from.to_string()),
        ("until".to_owned(), request.to.to_string()),
        (
            "as_of".to_owned(),
            request.as_of.to_rfc3339_opts(SecondsFormat::Secs, true),
        ),
    ];
    if let Some(org) = &request.org {
        given.push(("org".to_owned(), org.clone()));
    }
    given.retain(|(name, _)| query.params.iter().any(|p| &p.name == name));
    given
}

async fn run_chart(
    session: &QuerySession,
    spec: &ChartSpec,
    request: &Resolved,
) -> Result<ChartData> {
    let query = spec.saved();
    let params = params_for(query, request);
    let started = std::time::Instant::now();
    let batches = session
        .sql_with_params(query.sql, query.bind(&params)?)
        .await?;
    tracing::debug!(
        query = spec.query,
        ms = started.elapsed().as_millis() as u64,
        "report query"
    );
    let (columns, rows) = rows_of(&batches)?;
    Ok(ChartData {
        id: spec.id,
        title: spec.title,
        query: spec.query,
        description: query.description,
        params,
        columns,
        rows,
    })
}

/// Column names and rows as JSON values, in column order (via the query layer's JSON encoder,
/// so values read exactly as `wxcc query run --format json` prints them).
pub fn rows_of(batches: &[RecordBatch]) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
    let columns: Vec<String> = batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default();
    let json = format_batches(batches, OutputFormat::Json)?;
    let objects: Vec<Map<String, Value>> = serde_json::from_str(&json)
        .map_err(|e| QueryError::Usage(format!("report query result is not JSON: {e}")))?;
    let rows = objects
        .into_iter()
        .map(|mut o| {
            columns
                .iter()
                .map(|c| o.remove(c).unwrap_or(Value::Null))
                .collect()
        })
        .collect();
    Ok((columns, rows))
}
