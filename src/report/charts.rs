//! Which charts the report has, which saved query feeds each, and how its rows become series.

use std::sync::LazyLock;

use serde_json::Value;

use super::ChartData;
use crate::query::SavedQuery;

/// How a chart is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Vertical bars, one stack per category.
    Stacked,
    /// Vertical bars side by side per category.
    Grouped,
    /// One line per series.
    Lines,
    /// Horizontal bars side by side per category (long labels: queues, agents).
    Horizontal,
    /// Big numbers, no chart (one tile per value column and row).
    Tiles,
}

/// How rows become (categories, series).
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// Each value column is a series over the `x` column.
    Columns {
        x: &'static str,
        values: &'static [&'static str],
    },
    /// Long rows: the `key` column's values are the series, `value` the numbers, over `x`.
    Pivot {
        x: &'static str,
        key: &'static str,
        value: &'static str,
    },
}

/// One chart of the report.
#[derive(Debug)]
pub struct ChartSpec {
    pub id: &'static str,
    pub title: &'static str,
    /// Saved query (file stem in `queries/`).
    pub query: &'static str,
    pub kind: Kind,
    pub shape: Shape,
}

impl ChartSpec {
    /// The saved query behind this chart.
    pub fn saved(&self) -> &'static SavedQuery {
        report_queries()
            .iter()
            .find(|q| q.name == self.query)
            .expect("every chart's query is embedded (tested)")
    }
}

/// The charts, in page order.
pub const CHARTS: &[ChartSpec] = &[
    ChartSpec {
        id: "health",
        title: "Pipeline health",
        query: "report_health",
        kind: Kind::Tiles,
        shape: Shape::Columns {
            x: "org_id",
            values: &["lag_hours", "pending", "failed"],
        },
    },
    ChartSpec {
        id: "calls_per_day",
        title: "Calls per day by channel",
        query: "report_calls_per_day",
        kind: Kind::Stacked,
        shape: Shape::Pivot {
            x: "date",
            key: "channel",
            value: "calls",
        },
    },
    ChartSpec {
        id: "coverage_per_day",
        title: "Recording coverage per day",
        query: "report_coverage_per_day",
        kind: Kind::Lines,
        shape: Shape::Columns {
            x: "date",
            values: &["requested", "listed", "stored", "failed"],
        },
    },
    ChartSpec {
        id: "duration_histogram",
        title: "Recording length",
        query: "report_duration_histogram",
        kind: Kind::Grouped,
        shape: Shape::Columns {
            x: "duration",
            values: &["recordings"],
        },
    },
    ChartSpec {
        id: "mismatch_per_day",
        title: "Audio vs metadata per day",
        query: "report_mismatch_per_day",
        kind: Kind::Grouped,
        shape: Shape::Columns {
            x: "date",
            values: &["mismatched", "missing_leg", "unreadable"],
        },
    },
    ChartSpec {
        id: "audio_by_queue",
        title: "Audio facts by queue",
        query: "report_audio_by_queue",
        kind: Kind::Horizontal,
        shape: Shape::Columns {
            x: "queue",
            values: &["silence_share", "agent_share", "crosstalk_share"],
        },
    },
    ChartSpec {
        id: "runs",
        title: "Sync runs: API requests and 429 answers",
        query: "report_runs",
        kind: Kind::Grouped,
        shape: Shape::Columns {
            x: "started_at",
            values: &["requests", "rate_limited"],
        },
    },
    ChartSpec {
        id: "top_queues",
        title: "Top queues",
        query: "report_top_queues",
        kind: Kind::Horizontal,
        shape: Shape::Columns {
            x: "queue",
            values: &["calls", "recorded"],
        },
    },
    ChartSpec {
        id: "top_agents",
        title: "Top agents",
        query: "report_top_agents",
        kind: Kind::Horizontal,
        shape: Shape::Columns {
            x: "agent",
            values: &["calls", "recorded"],
        },
    },
];

const FILES: [(&str, &str); 9] = [
    (
        "report_health",
        include_str!("../../queries/report_health.sql"),
    ),
    (
        "report_calls_per_day",
        include_str!("../../queries/report_calls_per_day.sql"),
    ),
    (
        "report_coverage_per_day",
        include_str!("../../queries/report_coverage_per_day.sql"),
    ),
    (
        "report_duration_histogram",
        include_str!("../../queries/report_duration_histogram.sql"),
    ),
    (
        "report_mismatch_per_day",
        include_str!("../../queries/report_mismatch_per_day.sql"),
    ),
    (
        "report_audio_by_queue",
        include_str!("../../queries/report_audio_by_queue.sql"),
    ),
    ("report_runs", include_str!("../../queries/report_runs.sql")),
    (
        "report_top_queues",
        include_str!("../../queries/report_top_queues.sql"),
    ),
    (
        "report_top_agents",
        include_str!("../../queries/report_top_agents.sql"),
    ),
];

static QUERIES: LazyLock<Vec<SavedQuery>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, sql)| match SavedQuery::parse(name, sql) {
            Ok(q) => q,
            // Embedded constant: only a broken commit gets here, and the tests catch it first.
            Err(e) => panic!("queries/{name}.sql: {e}"),
        })
        .collect()
});

/// The report's saved queries (`queries/report_*.sql`), in page order.
pub fn report_queries() -> &'static [SavedQuery] {
    QUERIES.as_slice()
}

/// A cell as a number for drawing (NULL and text count as 0).
pub fn number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// A cell as text for labels and tables (NULL as an en dash).
pub fn label(v: &Value) -> String {
    match v {
        Value::Null => "\u{2013}".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The chart's categories and named series.
pub fn series(chart: &ChartData, shape: Shape) -> (Vec<String>, Vec<(String, Vec<f64>)>) {
    match shape {
        Shape::Columns { x, values } => {
            let xi = chart.column(x);
            let cats = chart
                .rows
                .iter()
                .map(|r| xi.map_or_else(String::new, |i| label(&r[i])))
                .collect();
            let series = values
                .iter()
                .map(|&name| {
                    let vi = chart.column(name);
                    let nums = chart
                        .rows
                        .iter()
                        .map(|r| vi.map_or(0.0, |i| number(&r[i])))
                        .collect();
                    (name.to_owned(), nums)
                })
                .collect();
            (cats, series)
        }
        Shape::Pivot { x, key, value } => {
            let (Some(xi), Some(ki), Some(vi)) =
                (chart.column(x), chart.column(key), chart.column(value))
            else {
                return (Vec::new(), Vec::new());
            };
            let mut cats: Vec<String> = Vec::new();
            let mut keys: Vec<String> = Vec::new();
            for r in &chart.rows {
                let (c, k) = (label(&r[xi]), label(&r[ki]));
                if !cats.contains(&c) {
                    cats.push(c);
                }
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            keys.sort();
            let mut series: Vec<(String, Vec<f64>)> = keys
                .into_iter()
                .map(|k| (k, vec![0.0; cats.len()]))
                .collect();
            for r in &chart.rows {
                let c = cats.iter().position(|c| *c == label(&r[xi]));
                let s = series.iter().position(|(k, _)| *k == label(&r[ki]));
                if let (Some(c), Some(s)) = (c, s) {
                    series[s].1[c] += number(&r[vi]);
                }
            }
            (cats, series)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::params::placeholders;

    #[test]
    fn every_chart_names_an_embedded_query_whose_parameters_are_declared() {
        assert_eq!(report_queries().len(), CHARTS.len());
        for spec in CHARTS {
            let q = spec.saved();
            assert!(!q.description.is_empty(), "{}", q.name);
            let declared: std::collections::BTreeSet<String> =
                q.params.iter().map(|p| p.name.clone()).collect();
            assert_eq!(declared, placeholders(q.sql), "{}", q.name);
        }
    }

    #[test]
    fn pivot_turns_long_rows_into_one_series_per_key() {
        let chart = ChartData {
            id: "t",
            title: "t",
            query: "q",
            description: "d",
            params: vec![],
            columns: vec!["date".into(), "channel".into(), "calls".into()],
            rows: vec![
                vec!["d1".into(), "telephony".into(), 3.into()],
                vec!["d1".into(), "chat".into(), 1.into()],
                vec!["d2".into(), "telephony".into(), 5.into()],
            ],
        };
        let shape = Shape::Pivot {
            x: "date",
            key: "channel",
            value: "calls",
        };
        let (cats, series) = super::series(&chart, shape);
        assert_eq!(cats, ["d1", "d2"]);
        assert_eq!(
            series,
            [
                ("chat".to_owned(), vec![1.0, 0.0]),
                ("telephony".to_owned(), vec![3.0, 5.0])
            ]
        );
    }

    #[tokio::test]
    async fn coverage_counts_every_day_any_table_has_and_reads_each_table_once() {
        use crate::lake::{Lake, Table, captures_batch};
        use crate::query::QuerySession;
        use crate::query::fixtures::{ORG, at, capture, day, lines, populate};
        let lake = Lake::open("memory://").expect("open");
        populate(&lake).await;
        // A day with a listed recording but no task or manifest row yet.
        let late = captures_batch(&[capture("t9", "r7", "main", at(7, 8))]).expect("batch");
        lake.upsert_partition(Table::Captures, ORG, day(7), late)
            .await
            .expect("upsert");
        let session = QuerySession::open(&lake).await.expect("open");
        let q = report_queries()
            .iter()
            .find(|q| q.name == "report_coverage_per_day")
            .expect("query");
        let params = || q.bind(&[]).expect("defaults bind");
        let rows = session
            .sql_with_params(q.sql, params())
            .await
            .expect("runs");
        assert_eq!(
            lines(&rows),
            [
                "date,requested,listed,stored,failed",
                "2024-03-05,3,2,2,0",
                "2024-03-06,1,1,0,1",
                "2024-03-07,0,1,0,0",
            ]
        );
        let explain = format!("EXPLAIN {}", q.sql);
        let plan = session
            .sql_with_params(&explain, params())
            .await
            .expect("explain");
        let plan = lines(&plan).join("\n");
        for table in ["tasks", "captures", "manifest"] {
            let scans = plan.matches(&format!("TableScan: {table} ")).count();
            assert_eq!(scans, 1, "{table} read {scans} times:\n{plan}");
        }
    }
}
