//! Saved queries: the SQL files in `queries/`, embedded in the binary.
//!
//! Each file starts with a comment header: `-- <one line: what it answers>`, a few lines on how to
//! read the result, and one `-- param: <name> <TYPE> [default <value>] [-- <meaning>]` line per
//! parameter (see [`super::params`]). The SQL refers to parameters as `$name` placeholders, which
//! are bound as typed values, never spliced into the text.

use std::sync::LazyLock;

use datafusion::common::ParamValues;

use super::error::{QueryError, Result};
use super::params::{self, ParamDecl};

/// One embedded query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedQuery {
    /// File stem in `queries/`, e.g. `recordings_to_transcribe`.
    pub name: &'static str,
    /// The header comment's first line, without `--`.
    pub description: &'static str,
    /// The `-- param:` declarations, in file order.
    pub params: Vec<ParamDecl>,
    /// The whole file, comments included.
    pub sql: &'static str,
}

impl SavedQuery {
    /// Binds `--param name=value` pairs (and defaults) to this query's declared parameters.
    pub fn bind(&self, given: &[(String, String)]) -> Result<ParamValues> {
        params::bind(&self.params, given)
    }

    /// Reads an embedded query file in the same format (for query sets kept beside this one,
    /// such as the report's).
    pub fn parse(name: &'static str, sql: &'static str) -> std::result::Result<SavedQuery, String> {
        parse(name, sql)
    }
}

const FILES: [(&str, &str); 8] = [
    (
        "recordings_to_transcribe",
        include_str!("../../queries/recordings_to_transcribe.sql"),
    ),
    (
        "calls_per_queue_per_day",
        include_str!("../../queries/calls_per_queue_per_day.sql"),
    ),
    (
        "outcomes_per_day",
        include_str!("../../queries/outcomes_per_day.sql"),
    ),
    (
        "long_calls_by_queue",
        include_str!("../../queries/long_calls_by_queue.sql"),
    ),
    (
        "agent_talk_share",
        include_str!("../../queries/agent_talk_share.sql"),
    ),
    (
        "missing_recordings",
        include_str!("../../queries/missing_recordings.sql"),
    ),
    (
        "overdue_recordings",
        include_str!("../../queries/overdue_recordings.sql"),
    ),
    (
        "duration_mismatch",
        include_str!("../../queries/duration_mismatch.sql"),
    ),
];

static SAVED: LazyLock<Vec<SavedQuery>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, sql)| match parse(name, sql) {
            Ok(q) => q,
            // Embedded constant: only a broken commit gets here, and the tests catch it first.
            Err(e) => panic!("queries/{name}.sql: {e}"),
        })
        .collect()
});

/// Every saved query, in a fixed order.
pub fn saved_queries() -> &'static [SavedQuery] {
    SAVED.as_slice()
}

/// The saved query called `name` (file stem), if any.
pub fn saved_query(name: &str) -> Option<&'static SavedQuery> {
    saved_queries().iter().find(|q| q.name == name)
}

/// Like [`saved_query`], with an error that lists the available names.
pub fn find_saved_query(name: &str) -> Result<&'static SavedQuery> {
    saved_query(name).ok_or_else(|| QueryError::UnknownQuery {
        name: name.to_string(),
        available: saved_queries()
            .iter()
            .map(|q| q.name)
            .collect::<Vec<_>>()
            .join(", "),
    })
}

fn parse(name: &'static str, sql: &'static str) -> std::result::Result<SavedQuery, String> {
    let params = sql
        .lines()
        .take_while(|l| l.trim_start().starts_with("--"))
        .filter_map(|l| {
            l.trim_start()
                .trim_start_matches('-')
                .trim()
                .strip_prefix("param:")
        })
        .map(ParamDecl::parse)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(SavedQuery {
        name,
        description: header(sql),
        params,
        sql,
    })
}

/// First line of the leading comment, trimmed; empty when the file has no header.
fn header(sql: &'static str) -> &'static str {
    sql.lines()
        .next()
        .and_then(|l| l.trim().strip_prefix("--"))
        .map_or("", str::trim)
}

#[cfg(test)]
#[path = "saved_tests.rs"]
mod data_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::params::placeholders;

    #[test]
    fn every_saved_query_has_a_name_and_a_one_line_description() {
        assert_eq!(saved_queries().len(), FILES.len());
        for q in saved_queries() {
            assert!(!q.description.is_empty(), "{} lacks a `-- ` header", q.name);
            assert!(q.sql.contains("SELECT"), "{}", q.name);
            assert_eq!(saved_query(q.name), Some(q));
        }
        assert!(saved_query("nope").is_none());
        let err = find_saved_query("nope").expect_err("unknown");
        assert!(
            err.to_string().contains("recordings_to_transcribe"),
            "{err}"
        );
    }

    #[test]
    fn declared_parameters_are_exactly_the_placeholders_used() {
        for q in saved_queries() {
            let declared: std::collections::BTreeSet<String> =
                q.params.iter().map(|p| p.name.clone()).collect();
            assert_eq!(declared, placeholders(q.sql), "{}", q.name);
            // Every parameter has a default or is documented as required.
            for p in &q.params {
                assert!(
                    !p.description.is_empty(),
                    "{}: {} undocumented",
                    q.name,
                    p.name
                );
            }
        }
    }

    #[test]
    fn the_shipped_set_answers_the_common_questions() {
        for name in [
            "recordings_to_transcribe",
            "long_calls_by_queue",
            "outcomes_per_day",
            "agent_talk_share",
            "missing_recordings",
            "overdue_recordings",
            "duration_mismatch",
        ] {
            assert!(saved_query(name).is_some(), "{name}");
        }
        let rtt = saved_query("recordings_to_transcribe").expect("saved");
        let names: Vec<&str> = rtt.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["since", "until", "queue"]);
    }

    #[test]
    fn header_is_the_first_comment_line() {
        assert_eq!(
            header("-- What it answers.\n-- more\nSELECT 1"),
            "What it answers."
        );
        assert_eq!(header("SELECT 1"), "");
    }
}
