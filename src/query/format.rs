//! Rendering query results as a text table, CSV, JSON or JSON Lines.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::{
    LineDelimitedWriter, WriterBuilder as JsonWriterBuilder, writer::LineDelimited,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches;

use super::error::{QueryError, Result};

/// How results are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// Boxed text table for people at a terminal (needs every row before it prints).
    #[default]
    Table,
    /// RFC 4180 CSV with a header row; nested values (lists) are rendered as text.
    Csv,
    /// One JSON array of objects, nulls written explicitly, times as ISO 8601 strings.
    Json,
    /// Newline-delimited JSON (JSON Lines): one object per line, nulls written explicitly.
    Ndjson,
    /// A Parquet file (ZSTD), readable by any Parquet reader. Binary: see [`super::output`].
    Parquet,
}

impl OutputFormat {
    /// The format's name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Table => "table",
            OutputFormat::Csv => "csv",
            OutputFormat::Json => "json",
            OutputFormat::Ndjson => "ndjson",
            OutputFormat::Parquet => "parquet",
        }
    }

    /// Whether the output is binary (must not be printed to a terminal).
    pub fn is_binary(self) -> bool {
        self == OutputFormat::Parquet
    }
}

/// Renders `batches` (all with the same schema) in a text format; Parquet is refused here
/// (write it with [`super::output::write_stream`]).
pub fn format_batches(batches: &[RecordBatch], format: OutputFormat) -> Result<String> {
    let mut encoder = TextEncoder::new(format);
    let mut out = encoder.begin();
    for batch in batches {
        out.extend(encoder.batch(batch)?);
    }
    out.extend(encoder.finish()?);
    String::from_utf8(out).map_err(|e| QueryError::Format {
        format: format.name(),
        source: ArrowError::ExternalError(Box::new(e)),
    })
}

/// Incremental text encoding, so results can be written batch by batch as they arrive
/// (except `table`, which needs every row to size its columns, and holds them until `finish`).
#[derive(Debug)]
pub struct TextEncoder {
    format: OutputFormat,
    rows_written: usize,
    batches_seen: usize,
    held: Vec<RecordBatch>,
}

impl TextEncoder {
    /// An encoder for a text format (`Parquet` yields an error on the first batch).
    pub fn new(format: OutputFormat) -> TextEncoder {
        TextEncoder {
            format,
            rows_written: 0,
            batches_seen: 0,
            held: Vec::new(),
        }
    }

    /// Bytes that open the output.
    pub fn begin(&mut self) -> Vec<u8> {
        match self.format {
            OutputFormat::Json => b"[".to_vec(),
            _ => Vec::new(),
        }
    }

    /// Bytes for one more batch.
    pub fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        let first_batch = self.batches_seen == 0;
        self.batches_seen += 1;
        let encoded = match self.format {
            OutputFormat::Table => {
                self.held.push(batch.clone());
                Ok(Vec::new())
            }
            // The header comes with the first batch, even an empty one.
            OutputFormat::Csv => csv(batch, first_batch),
            OutputFormat::Ndjson => ndjson(batch),
            OutputFormat::Json => ndjson(batch).map(|lines| {
                let mut out = Vec::with_capacity(lines.len() + 2);
                for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    out.extend_from_slice(if self.rows_written == 0 {
                        b"\n"
                    } else {
                        b",\n"
                    });
                    out.extend_from_slice(line);
                    self.rows_written += 1;
                }
                out
            }),
            OutputFormat::Parquet => Err(ArrowError::InvalidArgumentError(
                "parquet is a binary format; write it to a file or object".into(),
            )),
        };
        encoded.map_err(|source| self.error(source))
    }

    /// Bytes that close the output.
    pub fn finish(&mut self) -> Result<Vec<u8>> {
        match self.format {
            OutputFormat::Json if self.rows_written == 0 => Ok(b"]\n".to_vec()),
            OutputFormat::Json => Ok(b"\n]\n".to_vec()),
            OutputFormat::Table => {
                let table = pretty_format_batches(&self.held).map_err(|e| self.error(e))?;
                self.held.clear();
                Ok(format!("{table}\n").into_bytes())
            }
            _ => Ok(Vec::new()),
        }
    }

    fn error(&self, source: ArrowError) -> QueryError {
        QueryError::Format {
            format: self.format.name(),
            source,
        }
    }
}

fn csv(batch: &RecordBatch, header: bool) -> std::result::Result<Vec<u8>, ArrowError> {
    let mut buf = Vec::new();
    {
        let mut writer = CsvWriterBuilder::new().with_header(header).build(&mut buf);
        writer.write(&flatten_nested(batch)?)?;
    }
    Ok(buf)
}

fn ndjson(batch: &RecordBatch) -> std::result::Result<Vec<u8>, ArrowError> {
    let mut buf = Vec::new();
    {
        let mut writer: LineDelimitedWriter<_> = JsonWriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, LineDelimited>(&mut buf);
        writer.write(batch)?;
        writer.finish()?;
    }
    Ok(buf)
}

/// CSV has no nested values: lists, structs and maps become their display text (`[a, b]`).
fn flatten_nested(batch: &RecordBatch) -> std::result::Result<RecordBatch, ArrowError> {
    let schema = batch.schema_ref();
    if !schema.fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if field.data_type().is_nested() {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            let text: StringArray = (0..column.len())
                .map(|i| column.is_valid(i).then(|| formatter.value(i).to_string()))
                .collect();
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(text));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(Arc::clone(column));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Int64Array, ListBuilder, StringBuilder, TimestampMillisecondArray,
    };

    fn sample() -> RecordBatch {
        let mut list = ListBuilder::new(StringBuilder::new());
        list.values().append_value("agent-1");
        list.values().append_value("+121****1219");
        list.append(true);
        list.append(true);
        let batch = RecordBatch::try_from_iter([
            (
                "task_id",
                Arc::new(StringArray::from(vec![Some("t1"), Some("t,2")])) as ArrayRef,
            ),
            (
                "calls",
                Arc::new(Int64Array::from(vec![Some(3), None])) as ArrayRef,
            ),
            (
                "created_time",
                Arc::new(
                    TimestampMillisecondArray::from(vec![1_709_600_000_000, 0])
                        .with_timezone("UTC"),
                ) as ArrayRef,
            ),
            ("participants", Arc::new(list.finish()) as ArrayRef),
        ]);
        batch.expect("sample batch")
    }

    #[test]
    fn table_format_draws_a_boxed_table_with_headers() {
        let out = format_batches(&[sample()], OutputFormat::Table).expect("table");
        assert!(out.starts_with("+"), "{out}");
        assert!(out.contains("| task_id |"), "{out}");
        assert!(out.contains("2024-03-05T00:53:20Z"), "{out}");
    }

    #[test]
    fn csv_has_one_header_then_rows_with_quoting_and_lists_as_text() {
        let out = format_batches(&[sample(), sample()], OutputFormat::Csv).expect("csv");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "task_id,calls,created_time,participants");
        assert_eq!(lines.len(), 5, "{out}");
        assert!(lines[1].starts_with("t1,3,2024-03-05T00:53:20Z"), "{out}");
        assert!(lines[1].contains("agent-1"), "{out}");
        assert!(lines[2].starts_with("\"t,2\","), "{out}");
    }

    #[test]
    fn json_is_one_array_of_objects_with_explicit_nulls() {
        let out = format_batches(&[sample()], OutputFormat::Json).expect("json");
        let value: serde_json::Value = serde_json::from_str(&out).expect("valid json");
        let rows = value.as_array().expect("array");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["task_id"], "t1");
        assert_eq!(rows[0]["calls"], 3);
        assert!(rows[1]["calls"].is_null() && rows[1].get("calls").is_some());
        assert_eq!(rows[0]["participants"][1], "+121****1219");
    }

    #[test]
    fn empty_results_still_render_in_every_format() {
        let empty = RecordBatch::new_empty(sample().schema());
        assert_eq!(
            format_batches(std::slice::from_ref(&empty), OutputFormat::Csv)
                .expect("csv")
                .trim(),
            "task_id,calls,created_time,participants"
        );
        let json: serde_json::Value = serde_json::from_str(
            &format_batches(std::slice::from_ref(&empty), OutputFormat::Json).expect("json"),
        )
        .expect("valid");
        assert_eq!(json, serde_json::json!([]));
        assert!(
            format_batches(&[empty], OutputFormat::Table)
                .expect("table")
                .contains("task_id")
        );
        assert_eq!(
            format_batches(&[], OutputFormat::Json)
                .expect("json")
                .trim(),
            "[]"
        );
    }
}
