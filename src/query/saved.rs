//! Saved queries: the SQL files in `queries/`, embedded in the binary.
//!
//! Each file starts with `-- <one line: what it answers>` followed by a few comment lines on
//! how to use it; the first line is the description shown by the CLI. The files stay plain SQL
//! so the same text runs in DuckDB or Trino over the lake's Parquet files.

use std::sync::LazyLock;

/// One embedded query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedQuery {
    /// File stem in `queries/`, e.g. `recordings_to_transcribe`.
    pub name: &'static str,
    /// The header comment's first line, without `--`.
    pub description: &'static str,
    /// The whole file, comments included.
    pub sql: &'static str,
}

const FILES: [(&str, &str); 3] = [
    (
        "recordings_to_transcribe",
        include_str!("../../queries/recordings_to_transcribe.sql"),
    ),
    (
        "calls_per_queue_per_day",
        include_str!("../../queries/calls_per_queue_per_day.sql"),
    ),
    (
        "missing_recordings",
        include_str!("../../queries/missing_recordings.sql"),
    ),
];

static SAVED: LazyLock<Vec<SavedQuery>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, sql)| SavedQuery {
            name,
            description: header(sql),
            sql,
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

/// First line of the leading comment, trimmed; empty when the file has no header.
fn header(sql: &'static str) -> &'static str {
    sql.lines()
        .next()
        .and_then(|l| l.trim().strip_prefix("--"))
        .map_or("", str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_saved_query_has_a_name_and_a_one_line_description() {
        assert_eq!(saved_queries().len(), 3);
        for q in saved_queries() {
            assert!(!q.description.is_empty(), "{} lacks a `-- ` header", q.name);
            assert!(q.sql.contains("SELECT"), "{}", q.name);
            assert_eq!(saved_query(q.name), Some(q));
        }
        assert!(saved_query("nope").is_none());
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
