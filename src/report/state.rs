//! The sync state as two in-memory tables, so the report's pipeline-health queries are SQL like
//! the rest: `runs` (one row per run summary under `_state/org_id=<org>/runs/`) and `watermarks`
//! (one row per org: its watermark and the ledger counts of its latest run).
//!
//! The files are read as plain JSON by field name, not through `sync`'s types, so the report
//! depends on the query layer and the lake only; a field a run did not write reads as NULL/0.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::datasource::MemTable;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde_json::Value;

use super::{ReportError, Result};
use crate::lake::Lake;
use crate::query::QuerySession;

/// The run summaries and watermarks of every org found under `_state/`.
#[derive(Debug, Default)]
pub struct SyncState {
    /// (org, summary), in the order the files sort (start time).
    runs: Vec<(String, Value)>,
    watermarks: BTreeMap<String, Option<DateTime<Utc>>>,
}

impl SyncState {
    pub async fn read(lake: &Lake) -> Result<SyncState> {
        let store = lake.store();
        let prefix = lake.path("_state");
        let mut paths: Vec<Path> = store
            .list(Some(&prefix))
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .map_err(ReportError::State)?;
        paths.sort();
        let mut state = SyncState::default();
        for path in paths {
            let text = path.as_ref();
            let Some(org) = text
                .split('/')
                .find_map(|part| part.strip_prefix("org_id="))
                .map(str::to_owned)
            else {
                continue;
            };
            let is_run = text.contains("/runs/") && text.ends_with(".json");
            let is_mark = text.ends_with("/watermark.json");
            if !is_run && !is_mark {
                continue;
            }
            let bytes = store
                .get(&path)
                .await
                .map_err(ReportError::State)?
                .bytes()
                .await
                .map_err(ReportError::State)?;
            let value: Value =
                serde_json::from_slice(&bytes).map_err(|e| ReportError::Corrupt {
                    path: text.to_owned(),
                    reason: e.to_string(),
                })?;
            if is_run {
                state.watermarks.entry(org.clone()).or_insert(None);
                state.runs.push((org, value));
            } else {
                let mark = value["synced_until"]
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map(|t| t.with_timezone(&Utc));
                state.watermarks.insert(org, mark);
            }
        }
        Ok(state)
    }

    /// Registers `runs` and `watermarks` in the session.
    pub fn register(&self, session: &QuerySession) -> Result<()> {
        let ctx = session.context();
        let runs = self.runs_batch()?;
        let marks = self.watermarks_batch()?;
        for (name, batch) in [("runs", runs), ("watermarks", marks)] {
            let table =
                MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(ReportError::Table)?;
            ctx.register_table(name, Arc::new(table))
                .map_err(ReportError::Table)?;
        }
        Ok(())
    }

    fn runs_batch(&self) -> Result<RecordBatch> {
        let text = |f: &dyn Fn(&Value) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from_iter(self.runs.iter().map(|(_, v)| f(v))))
        };
        let int = |pointer: &str| -> ArrayRef {
            Arc::new(Int64Array::from_iter(
                self.runs
                    .iter()
                    .map(|(_, v)| v.pointer(pointer).and_then(Value::as_i64)),
            ))
        };
        let field_str = |name: &'static str| move |v: &Value| v[name].as_str().map(str::to_owned);
        let mut columns: Vec<(&str, ArrayRef)> = vec![
            (
                "org_id",
                Arc::new(StringArray::from_iter_values(
                    self.runs.iter().map(|(o, _)| o.as_str()),
                )),
            ),
            ("run_id", text(&field_str("run_id"))),
            ("started_at", text(&field_str("started_at"))),
            ("status", text(&field_str("status"))),
            ("error", text(&field_str("error"))),
        ];
        for (name, pointer) in [
            ("duration_ms", "/duration_ms"),
            ("tasks", "/tasks"),
            ("recordings", "/recordings"),
            ("stored", "/stored"),
            ("failed", "/failed"),
            ("bytes", "/bytes"),
            ("rejects", "/rejects"),
            ("requests", "/api/requests"),
            ("rate_limited", "/api/rate_limited"),
            ("server_errors", "/api/server_errors"),
        ] {
            columns.push((name, int(pointer)));
        }
        batch(columns)
    }

    fn watermarks_batch(&self) -> Result<RecordBatch> {
        // The ledger counts of each org's latest run (runs are in start order).
        let mut pending: BTreeMap<&str, &Value> = BTreeMap::new();
        for (org, v) in &self.runs {
            if v["pending"].is_object() {
                pending.insert(org.as_str(), &v["pending"]);
            }
        }
        let orgs: Vec<&str> = self.watermarks.keys().map(String::as_str).collect();
        let count = |key: &str| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(orgs.iter().map(|o| {
                pending.get(o).and_then(|p| p[key].as_i64()).unwrap_or(0)
            })))
        };
        let marks = TimestampMillisecondArray::from_iter(
            self.watermarks
                .values()
                .map(|m| m.map(|t| t.timestamp_millis())),
        )
        .with_timezone("UTC");
        batch(vec![
            (
                "org_id",
                Arc::new(StringArray::from_iter_values(orgs.iter().copied())),
            ),
            ("synced_until", Arc::new(marks)),
            ("no_recording_yet", count("no_recording_yet")),
            ("captures_failed", count("captures_failed")),
            ("download_failed", count("download_failed")),
            ("gaps", count("gaps")),
        ])
    }
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, a)| {
            let dt = match a.data_type() {
                DataType::Timestamp(_, _) => {
                    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
                }
                other => other.clone(),
            };
            Field::new(*name, dt, true)
        })
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| ReportError::Table(e.into()))
}
