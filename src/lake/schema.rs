//! Table declarations from `schemas/*.toml`, and the Arrow schemas derived from them.
//!
//! The TOML files are embedded at compile time and parsed once: they are constants of the
//! program, so a malformed file is a bug (caught by the tests below), not a runtime condition.
//! Every consumer (batch builders, the partition writer, DataFusion tables) takes its schema from
//! here, so code and declaration cannot disagree silently.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::Deserialize;

use super::error::{LakeError, Result};

/// The tables of the lake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Tasks,
    Captures,
    Manifest,
    AudioFacts,
    Derivatives,
}

impl Table {
    /// Every table, in the order data flows (tasks, then their captures, then stored audio, then
    /// what was measured on that audio and the files derived from it).
    pub const ALL: [Table; 5] = [
        Table::Tasks,
        Table::Captures,
        Table::Manifest,
        Table::AudioFacts,
        Table::Derivatives,
    ];

    /// Table name: the SQL table name, the top-level folder and the `schemas/<name>.toml` stem.
    pub fn name(self) -> &'static str {
        match self {
            Table::Tasks => "tasks",
            Table::Captures => "captures",
            Table::Manifest => "manifest",
            Table::AudioFacts => "audio_facts",
            Table::Derivatives => "derivatives",
        }
    }

    /// The table named `name`, if any.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The parsed declaration from `schemas/<name>.toml`.
    pub fn def(self) -> &'static TableDef {
        &REGISTRY[self as usize]
    }

    fn source(self) -> &'static str {
        match self {
            Table::Tasks => include_str!("../../schemas/tasks.toml"),
            Table::Captures => include_str!("../../schemas/captures.toml"),
            Table::Manifest => include_str!("../../schemas/manifest.toml"),
            Table::AudioFacts => include_str!("../../schemas/audio_facts.toml"),
            Table::Derivatives => include_str!("../../schemas/derivatives.toml"),
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parsed once on first use; indexed by `Table as usize` (same order as [`Table::ALL`]).
static REGISTRY: LazyLock<Vec<TableDef>> = LazyLock::new(|| {
    Table::ALL
        .into_iter()
        .map(|t| match TableDef::parse(t.name(), t.source()) {
            Ok(def) => def,
            // Embedded constant: only a broken commit gets here, and the tests catch it first.
            Err(e) => panic!("{e}"),
        })
        .collect()
});

/// Column types the declarations may use; deliberately few and standard so every Parquet
/// reader maps them the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ColumnType {
    #[serde(rename = "string")]
    String,
    #[serde(rename = "bool")]
    Bool,
    #[serde(rename = "int64")]
    Int64,
    #[serde(rename = "float64")]
    Float64,
    /// `Timestamp(Millisecond, "UTC")`: Parquet `TIMESTAMP(MILLIS, isAdjustedToUTC=true)`.
    #[serde(rename = "timestamp_ms")]
    TimestampMs,
    /// `List<Utf8>` with nullable items named `item` (the Arrow/pyarrow default).
    #[serde(rename = "list<string>")]
    ListString,
}

impl ColumnType {
    /// The name used in `schemas/*.toml` (`string`, `timestamp_ms`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Bool => "bool",
            ColumnType::Int64 => "int64",
            ColumnType::Float64 => "float64",
            ColumnType::TimestampMs => "timestamp_ms",
            ColumnType::ListString => "list<string>",
        }
    }

    /// The Arrow type stored for this column.
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::String => DataType::Utf8,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::TimestampMs => {
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
            }
            ColumnType::ListString => {
                DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
            }
        }
    }
}

/// One `[[columns]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    pub name: String,
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    pub nullable: bool,
    /// Partition columns live only in the folder names (`org_id=.../date=...`), never in files.
    #[serde(default)]
    pub partition: bool,
    pub description: String,
}

impl ColumnDef {
    /// The Arrow field for this column, with its description as field metadata
    /// ([`DESCRIPTION_KEY`]): written into each Parquet file's Arrow schema, where pyarrow,
    /// Polars and Spark show it; readers that ignore it read the file unchanged.
    pub fn field(&self) -> Field {
        Field::new(&self.name, self.column_type.data_type(), self.nullable).with_metadata(
            std::collections::HashMap::from([(
                DESCRIPTION_KEY.to_owned(),
                self.description.clone(),
            )]),
        )
    }
}

/// Field metadata key holding a column's description.
pub const DESCRIPTION_KEY: &str = "description";

/// What a `schemas/<table>.toml` file holds, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    table: String,
    version: u32,
    description: String,
    key: Vec<String>,
    partition_by: Vec<String>,
    sort_by: Vec<String>,
    columns: Vec<ColumnDef>,
}

/// A validated table declaration with its derived Arrow schemas.
///
/// Invariants checked at parse time: column names are unique snake_case; `partition_by` lists
/// exactly the `partition = true` columns, all non-null strings; `key` columns are stored,
/// non-null columns; `sort_by` contains every key column, so sorting gives one total order and a
/// rewritten partition is byte-for-byte reproducible.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: String,
    pub version: u32,
    pub description: String,
    pub key: Vec<String>,
    pub partition_by: Vec<String>,
    pub sort_by: Vec<String>,
    pub columns: Vec<ColumnDef>,
    file_schema: SchemaRef,
    table_schema: SchemaRef,
}

impl TableDef {
    /// Parses and validates a declaration; `file` names it in errors (e.g. `tasks`).
    pub fn parse(file: &str, toml_text: &str) -> Result<TableDef> {
        let bad = |reason: String| LakeError::SchemaDecl {
            file: file.to_string(),
            reason,
        };
        let raw: TableFile = toml::from_str(toml_text).map_err(|e| bad(e.to_string()))?;
        if raw.table != file {
            return Err(bad(format!("declares table `{}`", raw.table)));
        }
        let mut seen = HashSet::new();
        for c in &raw.columns {
            let snake = !c.name.is_empty()
                && c.name
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
            if !snake {
                return Err(bad(format!("column `{}` is not snake_case", c.name)));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(bad(format!("column `{}` declared twice", c.name)));
            }
        }
        let column = |name: &str| raw.columns.iter().find(|c| c.name == name);
        let declared_partitions: Vec<&str> = raw
            .columns
            .iter()
            .filter(|c| c.partition)
            .map(|c| c.name.as_str())
            .collect();
        if declared_partitions
            != raw
                .partition_by
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
        {
            return Err(bad(format!(
                "partition_by {:?} differs from the partition = true columns {declared_partitions:?}",
                raw.partition_by
            )));
        }
        for c in raw.columns.iter().filter(|c| c.partition) {
            if c.column_type != ColumnType::String || c.nullable {
                return Err(bad(format!(
                    "partition column `{}` must be a non-null string",
                    c.name
                )));
            }
        }
        for k in &raw.key {
            match column(k) {
                Some(c) if !c.partition && !c.nullable => {}
                _ => {
                    return Err(bad(format!(
                        "key column `{k}` must be a stored, non-null column"
                    )));
                }
            }
        }
        for s in &raw.sort_by {
            if column(s).is_none_or(|c| c.partition) {
                return Err(bad(format!("sort_by column `{s}` is not a stored column")));
            }
        }
        if let Some(k) = raw.key.iter().find(|k| !raw.sort_by.contains(k)) {
            return Err(bad(format!(
                "sort_by must include key column `{k}` (for a total order)"
            )));
        }

        let file_fields: Vec<Field> = raw
            .columns
            .iter()
            .filter(|c| !c.partition)
            .map(ColumnDef::field)
            .collect();
        // Partition columns go last, as DataFusion's ListingTable appends them.
        let table_fields: Vec<Field> = file_fields
            .iter()
            .cloned()
            .chain(
                raw.columns
                    .iter()
                    .filter(|c| c.partition)
                    .map(ColumnDef::field),
            )
            .collect();
        Ok(TableDef {
            name: raw.table,
            version: raw.version,
            description: raw.description,
            key: raw.key,
            partition_by: raw.partition_by,
            sort_by: raw.sort_by,
            columns: raw.columns,
            file_schema: Arc::new(Schema::new(file_fields)),
            table_schema: Arc::new(Schema::new(table_fields)),
        })
    }

    /// Schema of each Parquet file: the stored (non-partition) columns, in declaration order.
    pub fn file_schema(&self) -> SchemaRef {
        Arc::clone(&self.file_schema)
    }

    /// Schema seen by SQL: file columns followed by the partition columns.
    pub fn table_schema(&self) -> SchemaRef {
        Arc::clone(&self.table_schema)
    }

    /// Partition columns with their Arrow type, in folder order (for `ListingOptions`).
    pub fn partition_columns(&self) -> Vec<(String, DataType)> {
        self.partition_by
            .iter()
            .filter_map(|p| self.columns.iter().find(|c| &c.name == p))
            .map(|c| (c.name.clone(), c.column_type.data_type()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_file_parses_and_names_its_table() {
        for t in Table::ALL {
            let def = TableDef::parse(t.name(), t.source()).expect("schema parses");
            assert_eq!(def.name, t.name());
            assert_eq!(t.def().name, t.name());
            assert!(def.version >= 1);
            assert_eq!(Table::from_name(t.name()), Some(t));
        }
    }

    #[test]
    fn file_schema_excludes_partition_columns_and_table_schema_appends_them() {
        for t in Table::ALL {
            let def = t.def();
            let file = def.file_schema();
            assert!(file.field_with_name("org_id").is_err());
            assert!(file.field_with_name("date").is_err());
            let table = def.table_schema();
            let n = table.fields().len();
            assert_eq!(n, file.fields().len() + 2);
            assert_eq!(table.field(n - 2).name(), "org_id");
            assert_eq!(table.field(n - 1).name(), "date");
            assert_eq!(table.field(n - 1).data_type(), &DataType::Utf8);
            assert_eq!(
                def.partition_columns(),
                vec![
                    ("org_id".to_string(), DataType::Utf8),
                    ("date".to_string(), DataType::Utf8)
                ]
            );
        }
    }

    #[test]
    fn times_are_millisecond_utc_timestamps() {
        let tasks = Table::Tasks.def().file_schema();
        let created = tasks.field_with_name("created_time").expect("created_time");
        assert_eq!(
            created.data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
        );
        assert!(!created.is_nullable());
        let cap = tasks
            .field_with_name("capture_requested")
            .expect("capture_requested");
        assert!(cap.is_nullable(), "null means not yet known");
    }

    #[test]
    fn captures_have_no_url_or_path_column() {
        for f in Table::Captures.def().file_schema().fields() {
            assert!(
                !f.name().contains("path") && !f.name().contains("url"),
                "{}",
                f.name()
            );
        }
    }

    #[test]
    fn audio_facts_are_keyed_like_captures_and_analysis_columns_are_nullable() {
        let def = Table::AudioFacts.def();
        assert_eq!(def.key, vec!["task_id", "recording_id"]);
        assert_eq!(def.partition_by, vec!["org_id", "date"]);
        for c in def.columns.iter().filter(|c| !c.partition) {
            let required = ["task_id", "recording_id", "status"].contains(&c.name.as_str());
            assert_eq!(c.nullable, !required, "{}", c.name);
        }
        let file = def.file_schema();
        for name in ["ch1_rms_dbfs", "crosstalk_share", "ch2_silence_share"] {
            let f = file.field_with_name(name).expect(name);
            assert_eq!(f.data_type(), &DataType::Float64, "{name}");
        }
        for name in [
            "sample_rate",
            "duration_ms",
            "ch1_talk_ms",
            "duration_mismatch_ms",
        ] {
            let f = file.field_with_name(name).expect(name);
            assert_eq!(f.data_type(), &DataType::Int64, "{name}");
        }
        assert!(
            file.fields().iter().all(|f| !f.name().starts_with("ch3")),
            "only two channels are represented"
        );
    }

    #[test]
    fn declaration_with_key_missing_from_sort_by_is_rejected() {
        let text = r#"
            table = "t"
            version = 1
            description = "x"
            key = ["id"]
            partition_by = []
            sort_by = []
            [[columns]]
            name = "id"
            type = "string"
            nullable = false
            description = "x"
        "#;
        let err = TableDef::parse("t", text).expect_err("must fail");
        assert!(
            err.to_string()
                .contains("sort_by must include key column `id`"),
            "{err}"
        );
    }

    #[test]
    fn declaration_with_unknown_type_or_field_is_rejected() {
        let base = "table = \"t\"\nversion = 1\ndescription = \"x\"\nkey = []\npartition_by = []\nsort_by = []\n";
        let bad_type = format!(
            "{base}[[columns]]\nname = \"a\"\ntype = \"uuid\"\nnullable = true\ndescription = \"\"\n"
        );
        assert!(TableDef::parse("t", &bad_type).is_err());
        let typo = format!(
            "{base}[[columns]]\nname = \"a\"\ntype = \"string\"\nnulable = true\ndescription = \"\"\n"
        );
        assert!(TableDef::parse("t", &typo).is_err());
    }
}
