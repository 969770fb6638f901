//! `wxcc report` on a synced simulator lake, rendered by headless Chromium (Debian's
//! `chromium`): every chart drew its series, every number on the page is what the page's own
//! query and parameters return, and the page cannot fetch anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use wxcc::lake::Lake;
use wxcc::query::QuerySession;
use wxcc::report::{CHARTS, Kind, SyncState, report_queries, rows_of};

use crate::util::{sim_env, small_world, start_sim, sync_small_world, text, wxcc};

/// Headless Chromium, or `None` to skip locally; in CI a missing browser is a failure.
fn chromium() -> Option<&'static str> {
    let found = std::process::Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    match found {
        true => Some("chromium"),
        false if std::env::var_os("CI").is_some() => {
            panic!("chromium is not installed: run the suite through scripts/test.sh")
        }
        false => {
            eprintln!("skipping: chromium not installed (scripts/test.sh installs it)");
            None
        }
    }
}

/// Runs headless Chromium on `page` with `args` and returns its standard output.
async fn headless(browser: &str, profile: &Path, page: &Path, args: &[String]) -> String {
    let mut cmd = tokio::process::Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(format!("file://{}", page.display()))
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("chromium finishes")
        .expect("chromium runs");
    assert!(out.status.success(), "chromium: {}", text(&out.stderr));
    text(&out.stdout)
}

/// The text between `start` (first occurrence at or after `from`) and the next `end`.
fn between<'a>(haystack: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = haystack.find(start)? + start.len();
    let j = haystack[i..].find(end)? + i;
    Some(&haystack[i..j])
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// A result cell as the page prints it.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "\u{2013}".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The `<td>` texts of a `<table data-table=id>`, row by row (header row left out).
fn table_cells(section: &str) -> Vec<Vec<String>> {
    section
        .split("<tr>")
        .skip(2)
        .map(|row| {
            row.split("<td>")
                .skip(1)
                .map(|c| unescape(c.split("</td>").next().unwrap_or("")))
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn report_page_draws_every_chart_from_its_named_query_and_fetches_nothing() {
    let Some(browser) = chromium() else { return };
    let sim = start_sim(small_world()).await;
    let env = sim_env(&sim);
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let lake_str = lake_dir.to_str().unwrap();
    let out = sync_small_world(lake_str, &[], &env, dir.path()).await;
    assert!(out.status.success(), "sync: {}", text(&out.stderr));

    let page: PathBuf = dir.path().join("report.html");
    let args = [
        "report",
        "--data",
        lake_str,
        "--from",
        "2026-01-05",
        "--to",
        "2026-01-07",
        "--output",
        page.to_str().unwrap(),
    ];
    let out = wxcc(&args, &env, dir.path()).await;
    assert!(out.status.success(), "report: {}", text(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();

    // The synced org by name draws; a mistyped one is refused, not drawn empty with exit 0.
    let org = sim.credentials().org_id.clone();
    for (who, code) in [
        (org.as_str(), 0),
        ("33333333-3333-4333-8333-333333333333", 2),
    ] {
        let one = [
            "report", "--data", lake_str, "--org", who, "--format", "json",
        ];
        let out = wxcc(&one, &env, dir.path()).await;
        assert_eq!(out.status.code(), Some(code), "{}", text(&out.stderr));
        if code == 2 {
            assert!(
                text(&out.stderr).contains(&format!("org {who} has no data or sync state"))
                    && text(&out.stderr).contains(&org),
                "{}",
                text(&out.stderr)
            );
        }
    }

    // Nothing to fetch: a CSP that forbids it, and no URL but the SVG namespace.
    assert!(html.contains(
        r#"<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">"#
    ));
    let urls = html.matches("http://").count() + html.matches("https://").count();
    let namespaces = html
        .matches(r#"xmlns="http://www.w3.org/2000/svg""#)
        .count();
    assert_eq!(urls, namespaces, "only SVG namespaces may look like URLs");
    for tag in [
        "<script", "<link", "<img", "<iframe", "src=", "href=", "url(",
    ] {
        assert!(!html.contains(tag), "page contains {tag}");
    }

    // What the browser built, and what it looks like.
    let profile = dir.path().join("chromium-profile");
    let dom = headless(browser, &profile, &page, &["--dump-dom".to_owned()]).await;
    let shot = std::env::var_os("WXCC_REPORT_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("report.png"));
    headless(
        browser,
        &profile,
        &page,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1000,3600".to_owned(),
        ],
    )
    .await;
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );

    // The numbers: each section's own query and parameters, run again through the query layer.
    let lake = Lake::open(lake_str).unwrap();
    let session = QuerySession::open(&lake).await.unwrap();
    SyncState::read(&lake)
        .await
        .unwrap()
        .register(&session)
        .unwrap();
    for spec in CHARTS {
        let section = between(&dom, &format!(r#"<section id="{}""#, spec.id), "</section>")
            .unwrap_or_else(|| panic!("section {} missing", spec.id));
        let named = between(section, r#"data-query=""#, "\"").unwrap();
        assert_eq!(named, spec.query);
        assert!(section.contains(&format!("queries/{}.sql", spec.query)));
        let params_text = between(section, "</code> <code>", "</code>").unwrap_or("");
        let params: Vec<(String, String)> = params_text
            .split_whitespace()
            .filter(|w| *w != "--param")
            .map(|w| {
                let (k, v) = w.split_once('=').expect("NAME=VALUE");
                (k.to_owned(), v.to_owned())
            })
            .collect();
        let query = report_queries()
            .iter()
            .find(|q| q.name == spec.query)
            .unwrap();
        let batches = session
            .sql_with_params(query.sql, query.bind(&params).unwrap())
            .await
            .unwrap();
        let (_, rows) = rows_of(&batches).unwrap();
        assert!(!rows.is_empty(), "{}: no rows on a synced lake", spec.id);
        let expected: Vec<Vec<String>> =
            rows.iter().map(|r| r.iter().map(cell).collect()).collect();
        let table = between(section, &format!(r#"data-table="{}""#, spec.id), "</table>")
            .unwrap_or_else(|| panic!("{}: no table", spec.id));
        assert_eq!(table_cells(table), expected, "{}: page vs query", spec.id);

        if spec.kind == Kind::Tiles {
            continue;
        }
        let svg = between(section, &format!(r#"data-chart="{}""#, spec.id), "</svg>")
            .unwrap_or_else(|| panic!("{}: no chart", spec.id));
        let names = match spec.shape {
            wxcc::report::Shape::Columns { values, .. } => {
                values.iter().map(|v| v.to_string()).collect::<Vec<_>>()
            }
            wxcc::report::Shape::Pivot { key, .. } => {
                let (cols, _) = rows_of(&batches).unwrap();
                let k = cols.iter().position(|c| c == key).unwrap();
                rows.iter().map(|r| cell(&r[k])).collect()
            }
        };
        for name in names {
            let group = between(svg, &format!(r#"data-series="{name}""#), "</g>")
                .unwrap_or_else(|| panic!("{}: series {name} not drawn", spec.id));
            let marks = group.matches("<rect").count() + group.matches("<circle").count();
            assert!(marks > 0, "{}: series {name} has no marks", spec.id);
        }
    }

    // Headline tiles are sums of the charts' columns.
    let calls: i64 = between(
        &dom,
        r#"data-tile="calls" data-source="calls_per_day"><div class="n">"#,
        "<",
    )
    .unwrap()
    .parse()
    .unwrap();
    let counted = crate::util::strings(
        lake_str,
        "SELECT CAST(COUNT(*) AS VARCHAR) FROM tasks WHERE date >= '2026-01-05' AND date < '2026-01-07'",
    )
    .await;
    assert_eq!(calls.to_string(), counted[0]);
}
