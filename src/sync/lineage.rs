//! OpenLineage run events (spec 2-0-2) for each org's sync: START before it, COMPLETE or FAIL
//! after, with the tables as output datasets (schema facet from `schemas/`, row counts from the
//! run summary). Sent as JSON lines to a file or POSTed to an HTTP endpoint (Marquez, DataHub,
//! OpenMetadata all take the same body). Lineage is an observer: a failure to send it is logged
//! and never fails the run.

use std::io::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use url::Url;

use super::{RunStatus, SyncSummary};
use crate::lake::Table;

const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const PRODUCER: &str = concat!("urn:wxcc:", env!("CARGO_PKG_VERSION"));

/// Where events go.
#[derive(Debug, Clone)]
pub enum Sink {
    /// Appended, one JSON event per line.
    File(PathBuf),
    /// POSTed one by one (e.g. `http://marquez:5000/api/v1/lineage`).
    Http(Url),
}

/// The job of one org's sync: namespace `wxcc`, name `sync.<org>`.
pub fn job_name(org: &str) -> String {
    format!("sync.{org}")
}

fn base(event_type: &str, time: DateTime<Utc>, run_id: &str, org: &str) -> Value {
    json!({
        "eventType": event_type,
        "eventTime": time.to_rfc3339_opts(SecondsFormat::Millis, true),
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
        "run": { "runId": run_id },
        "job": {
            "namespace": "wxcc",
            "name": job_name(org),
            "facets": {
                "jobType": {
                    "_producer": PRODUCER,
                    "_schemaURL": "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
                    "processingType": "BATCH",
                    "integration": "WXCC",
                    "jobType": "JOB"
                }
            }
        },
        "inputs": [],
        "outputs": []
    })
}

/// The START event, sent before the run begins.
pub fn start_event(run_id: &str, org: &str, time: DateTime<Utc>) -> Value {
    base("START", time, run_id, org)
}

/// COMPLETE (ok or partial) or FAIL, with the tables the run wrote to at `lake_root`.
pub fn end_event(
    run_id: &str,
    org: &str,
    summary: Option<&SyncSummary>,
    error: Option<&str>,
    lake_root: &Url,
    time: DateTime<Utc>,
) -> Value {
    let ok = error.is_none()
        && summary.is_none_or(|s| matches!(s.status, RunStatus::Ok | RunStatus::Partial));
    let mut event = base(if ok { "COMPLETE" } else { "FAIL" }, time, run_id, org);
    if let Some(message) = error
        .or(summary.and_then(|s| s.error.as_deref()))
        .filter(|_| !ok)
    {
        event["run"]["facets"] = json!({
            "errorMessage": {
                "_producer": PRODUCER,
                "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
                "message": message,
                "programmingLanguage": "Rust"
            }
        });
    }
    let namespace = lake_root.as_str().trim_end_matches('/');
    event["outputs"] = Value::Array(
        Table::ALL
            .into_iter()
            .map(|t| output(t, namespace, summary.and_then(|s| rows_written(t, s))))
            .collect(),
    );
    event
}

/// Rows the run upserted into `table`, as far as the summary tells.
fn rows_written(table: Table, s: &SyncSummary) -> Option<u64> {
    match table {
        Table::Tasks => Some(s.tasks),
        Table::Captures => Some(s.recordings),
        Table::Manifest | Table::AudioFacts => Some(s.stored),
        Table::Derivatives => Some(s.derived + s.derive_failed),
    }
}

fn output(table: Table, namespace: &str, rows: Option<u64>) -> Value {
    let def = table.def();
    let fields: Vec<Value> = def
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "name": c.name,
                "type": c.column_type.name(),
                "description": c.description,
                "ordinal_position": i + 1
            })
        })
        .collect();
    let mut dataset = json!({
        "namespace": namespace,
        "name": table.name(),
        "facets": {
            "schema": {
                "_producer": PRODUCER,
                "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
                "fields": fields
            }
        }
    });
    if let Some(rows) = rows {
        dataset["outputFacets"] = json!({
            "outputStatistics": {
                "_producer": PRODUCER,
                "_schemaURL": "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet",
                "rowCount": rows
            }
        });
    }
    dataset
}

/// Sends one event; failures are logged.
pub async fn emit(sink: &Sink, event: &Value) {
    let result = match sink {
        Sink::File(path) => append(path, event).map_err(|e| e.to_string()),
        Sink::Http(url) => post(url, event).await,
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot send the OpenLineage event");
    }
}

fn append(path: &std::path::Path, event: &Value) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(event)?;
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&line)
}

async fn post(url: &Url, event: &Value) -> Result<(), String> {
    let resp = crate::net::api_http_client()
        .post(url.clone())
        .json(event)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match resp.status() {
        s if s.is_success() => Ok(()),
        s => Err(format!("{url} answered {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_ends_with_fail_and_its_error() {
        let root = Url::parse("s3://bucket/wxcc/").unwrap();
        let e = end_event("r", "o", None, Some("boom"), &root, Utc::now());
        assert_eq!(e["eventType"], "FAIL");
        assert_eq!(e["run"]["facets"]["errorMessage"]["message"], "boom");
        assert_eq!(e["outputs"][0]["namespace"], "s3://bucket/wxcc");
        assert!(e["outputs"][0].get("outputFacets").is_none());
    }
}
