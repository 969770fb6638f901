//! The report as one HTML page: inline CSS and SVG only, and a Content-Security-Policy that
//! forbids every fetch, so it opens the same offline, in an air-gapped tenant, or as a mail
//! attachment.

use std::fmt::Write;

use super::charts::{self, CHARTS, Kind, label, number};
use super::svg::{self, PALETTE, escape};
use super::{ChartData, Report};

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:900px;color:#222}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 4px}\
.meta,.desc,.query{color:#555;font-size:13px;margin:2px 0}.query code{background:#f3f3f3;padding:1px 4px}\
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0}\
.tile{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:100px}\
.tile .n{font-size:22px;font-weight:600}.tile .l{font-size:12px;color:#555}\
.legend{font-size:12px;margin:4px 0}.legend span{margin-right:14px}\
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}\
svg.chart{max-width:100%;height:auto}svg .tick,svg .value{font-size:11px;fill:#444;stroke:none}\
table{border-collapse:collapse;font-size:12px;margin:6px 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}\
th{background:#f6f6f6}.empty{color:#888;font-style:italic}details summary{cursor:pointer;font-size:13px;color:#555}";

/// The whole page.
pub fn render_html(report: &Report) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let org = report.org.as_deref().unwrap_or("all organizations");
    let _ = write!(
        h,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{CSP}"><meta name="viewport" content="width=device-width,initial-scale=1"><title>wxcc report {} to {}</title><style>{STYLE}</style></head><body><h1>Webex Contact Center: calls and recordings</h1><p class="meta">Tasks created from {} up to (not including) {}, {}. Made {} by wxcc {}.</p>"#,
        report.from,
        report.to,
        report.from,
        report.to,
        escape(org),
        escape(&report.generated_at),
        env!("CARGO_PKG_VERSION"),
    );
    summary_tiles(&mut h, report);
    for (spec, data) in CHARTS.iter().zip(&report.charts) {
        section(&mut h, spec, data);
    }
    h.push_str("</body></html>\n");
    h
}

/// Headline totals, each the sum of a column of a chart's query.
fn summary_tiles(h: &mut String, report: &Report) {
    let total = |chart: &str, column: &str| -> f64 {
        report.chart(chart).map_or(0.0, |c| {
            c.column(column)
                .map_or(0.0, |i| c.rows.iter().map(|r| number(&r[i])).sum())
        })
    };
    h.push_str(r#"<div class="tiles">"#);
    for (id, text, chart, column) in [
        ("calls", "tasks", "calls_per_day", "calls"),
        (
            "requested",
            "asked for a recording",
            "coverage_per_day",
            "requested",
        ),
        ("listed", "recordings listed", "coverage_per_day", "listed"),
        ("stored", "recordings stored", "coverage_per_day", "stored"),
        ("failed", "downloads failed", "coverage_per_day", "failed"),
        (
            "mismatched",
            "length mismatches",
            "mismatch_per_day",
            "mismatched",
        ),
    ] {
        tile(h, id, &format_total(total(chart, column)), text, chart);
    }
    h.push_str("</div>");
}

fn format_total(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

fn tile(h: &mut String, id: &str, value: &str, text: &str, source: &str) {
    let _ = write!(
        h,
        r#"<div class="tile" data-tile="{}" data-source="{}"><div class="n">{}</div><div class="l">{}</div></div>"#,
        escape(id),
        escape(source),
        escape(value),
        escape(text)
    );
}

fn section(h: &mut String, spec: &charts::ChartSpec, data: &ChartData) {
    let _ = write!(
        h,
        r#"<section id="{}" data-query="{}"><h2>{}</h2><p class="desc">{}</p>"#,
        spec.id,
        spec.query,
        escape(spec.title),
        escape(&capitalized(
            data.description.trim_start_matches("Report: ")
        ))
    );
    if data.rows.is_empty() {
        h.push_str(r#"<p class="empty">No data in this range.</p>"#);
    } else if spec.kind == Kind::Tiles {
        let (orgs, series) = charts::series(data, spec.shape);
        h.push_str(r#"<div class="tiles">"#);
        for (oi, org) in orgs.iter().enumerate() {
            for (name, _) in &series {
                let text = if orgs.len() > 1 {
                    format!("{name} ({org})")
                } else {
                    name.replace('_', " ")
                };
                let col = data
                    .column(name)
                    .map_or(serde_json::Value::Null, |i| data.rows[oi][i].clone());
                tile(h, name, &label(&col), &text, spec.id);
            }
        }
        h.push_str("</div>");
    } else {
        let (cats, series) = charts::series(data, spec.shape);
        h.push_str(&svg::chart(spec.id, spec.kind, &cats, &series));
        h.push_str(r#"<div class="legend">"#);
        for (i, (name, _)) in series.iter().enumerate() {
            let _ = write!(
                h,
                r#"<span><i style="background:{}"></i>{}</span>"#,
                PALETTE[i % PALETTE.len()],
                escape(name)
            );
        }
        h.push_str("</div>");
    }
    let params: Vec<String> = data
        .params
        .iter()
        .map(|(k, v)| format!("--param {k}={v}"))
        .collect();
    let _ = write!(
        h,
        r#"<p class="query">Query: <code>queries/{}.sql</code> <code>{}</code></p>"#,
        spec.query,
        escape(&params.join(" "))
    );
    table(h, data);
    h.push_str("</section>");
}

/// The query's result, exactly, under the chart.
fn table(h: &mut String, data: &ChartData) {
    let _ = write!(
        h,
        r#"<details><summary>Numbers ({} rows)</summary><table data-table="{}"><tr>"#,
        data.rows.len(),
        data.id
    );
    for c in &data.columns {
        let _ = write!(h, "<th>{}</th>", escape(c));
    }
    h.push_str("</tr>");
    for row in &data.rows {
        h.push_str("<tr>");
        for v in row {
            let _ = write!(h, "<td>{}</td>", escape(&label(v)));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table></details>");
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
