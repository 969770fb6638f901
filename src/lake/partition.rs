//! Hive partitions: one Parquet file per `(table, org_id, date)`, upserted as a whole.
//!
//! A day of one org's tasks is small (thousands to tens of thousands of rows), so the simplest
//! correct scheme is to read the partition, merge in memory and replace its single file with one
//! atomic put. No half-written file is ever visible, re-running a sync is idempotent, and readers
//! never see duplicates. Writers must not upsert the same partition concurrently (the last put
//! wins); the orchestrator serialises work per partition.
//!
//! Schema evolution never loses stored data, whichever binary rewrites a file (README, "Schema
//! changes"): columns this binary does not know are carried over as they are; declared columns
//! missing from a file read as null (nullable columns only); a stored column of another type is
//! converted only when no value changes (strict cast, checked by casting back), and not at all
//! when the file comes from a newer schema version. Anything else is refused with an error
//! naming the file and the column, before anything is written.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array, new_null_array};
use arrow::compute::{
    CastOptions, SortColumn, can_cast_types, cast_with_options, concat_batches, lexsort_to_indices,
    take, take_record_batch,
};
use arrow::datatypes::{DataType, FieldRef, Schema};
use arrow::error::ArrowError;
use arrow::row::{RowConverter, SortField};
use bytes::Bytes;
use chrono::NaiveDate;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{FileMetaData, KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::error::{LakeError, Result};
use super::schema::{Table, TableDef};
use super::store::Lake;

/// Name of the single data file in each partition folder.
pub const PART_FILE: &str = "part-0.parquet";

/// Footer key holding the `version` of the `schemas/<table>.toml` a file was written with.
pub const SCHEMA_VERSION_KEY: &str = "wxcc.schema_version";

/// Rows per row group: enough for good compression, small enough that page/row-group
/// statistics still prune within a busy day (same order as DuckDB's default of 122 880).
pub const MAX_ROW_GROUP_ROWS: usize = 128 * 1024;

/// Checks that an org id is a plain id token (`[A-Za-z0-9-]+`) before it becomes part of an
/// object path, so API data can never steer a write outside its partition.
pub fn validate_org_id(org_id: &str) -> Result<()> {
    let ok = !org_id.is_empty()
        && org_id.len() <= 128
        && org_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(LakeError::InvalidOrgId(org_id.to_string()))
    }
}

/// Path of a partition's file relative to the lake root:
/// `<table>/org_id=<org>/date=<YYYY-MM-DD>/part-0.parquet`.
pub fn partition_file(table: Table, org_id: &str, date: NaiveDate) -> Result<String> {
    validate_org_id(org_id)?;
    Ok(format!(
        "{table}/org_id={org_id}/date={}/{PART_FILE}",
        date.format("%Y-%m-%d")
    ))
}

/// A stored partition as this binary sees it.
struct Stored {
    /// The declared file columns (conformed, in declaration order) followed by the columns this
    /// binary does not know, as stored but nullable.
    batch: RecordBatch,
    /// How many leading columns of `batch` are declared ones.
    known: usize,
    /// The file's schema version (0 when the footer has none).
    version: u32,
}

impl Lake {
    /// Upserts `batch` (with the table's file schema) into one partition and returns the number
    /// of rows in the rewritten file.
    ///
    /// Existing rows are unioned with `batch` and de-duplicated on the table key: rows of
    /// `batch` win over stored ones, and within `batch` a later row wins over an earlier one.
    /// The result is sorted by `sort_by` (which includes the key, so the order is total) and
    /// replaces `part-0.parquet` with one atomic put. Upserting the same rows again yields the
    /// same rows. An empty `batch` writes nothing and returns 0.
    ///
    /// Stored columns this binary does not know (written by a newer version) are kept after the
    /// declared ones: rows that stay or are replaced keep their stored values, new rows get null.
    /// A file this binary cannot carry over without losing data is refused
    /// ([`LakeError::IncompatibleFile`]) and left as it is.
    pub async fn upsert_partition(
        &self,
        table: Table,
        org_id: &str,
        date: NaiveDate,
        batch: RecordBatch,
    ) -> Result<usize> {
        let relative = partition_file(table, org_id, date)?;
        let def = table.def();
        if batch.schema_ref().fields() != def.file_schema().fields() {
            return Err(LakeError::SchemaMismatch {
                table: table.name(),
                detail: format!(
                    "got columns {:?}",
                    batch
                        .schema_ref()
                        .fields()
                        .iter()
                        .map(|f| f.name())
                        .collect::<Vec<_>>()
                ),
            });
        }
        if batch.num_rows() == 0 {
            return Ok(0);
        }
        let path = self.path(&relative);
        let existing = self.read_stored(table, org_id, date).await?;
        let incoming = batch.num_rows();
        // A file from a newer version keeps saying so: it still holds that version's columns.
        let version = existing
            .as_ref()
            .map_or(def.version, |s| s.version.max(def.version));

        let name = path.to_string();
        let encoded = tokio::task::spawn_blocking(move || -> Result<(usize, Vec<u8>)> {
            let merged =
                merge(def, &batch, existing.as_ref()).map_err(|source| LakeError::Merge {
                    path: name.clone(),
                    source,
                })?;
            let bytes = encode(def, version, &merged)
                .map_err(|source| LakeError::Parquet { path: name, source })?;
            Ok((merged.num_rows(), bytes))
        })
        .await
        .map_err(|source| LakeError::Task {
            path: path.to_string(),
            source,
        })??;
        let (rows, bytes) = encoded;
        let size = bytes.len();

        self.store()
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|source| LakeError::Store {
                path: path.to_string(),
                source,
            })?;
        tracing::debug!(%table, org_id, %date, incoming, rows, size, "upserted partition");
        Ok(rows)
    }

    /// Reads a whole partition as one batch with the table's current file schema, or `None`
    /// when the partition has no file yet.
    ///
    /// Files written by another schema version are conformed as described in the module docs:
    /// missing nullable columns read as null, columns this binary does not know are left out of
    /// the batch (but never out of the file), and a file that cannot be conformed without losing
    /// data is an error.
    pub async fn read_partition(
        &self,
        table: Table,
        org_id: &str,
        date: NaiveDate,
    ) -> Result<Option<RecordBatch>> {
        let path = self.path(&partition_file(table, org_id, date)?);
        let Some(stored) = self.read_stored(table, org_id, date).await? else {
            return Ok(None);
        };
        let known = stored.batch.columns()[..stored.known].to_vec();
        RecordBatch::try_new(table.def().file_schema(), known)
            .map(Some)
            .map_err(|source| LakeError::Merge {
                path: path.to_string(),
                source,
            })
    }

    /// Reads and conforms a partition file, keeping the columns this binary does not know.
    async fn read_stored(
        &self,
        table: Table,
        org_id: &str,
        date: NaiveDate,
    ) -> Result<Option<Stored>> {
        let path = self.path(&partition_file(table, org_id, date)?);
        let store_err = |source| LakeError::Store {
            path: path.to_string(),
            source,
        };
        let bytes = match self.store().get(&path).await {
            Ok(got) => got.bytes().await.map_err(store_err)?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_err(e)),
        };
        let name = path.to_string();
        let def = table.def();
        let stored = tokio::task::spawn_blocking(move || decode(bytes, def, &name))
            .await
            .map_err(|source| LakeError::Task {
                path: path.to_string(),
                source,
            })??;
        Ok(Some(stored))
    }
}

/// Union, de-duplicate (incoming wins) and sort; see [`Lake::upsert_partition`].
fn merge(
    def: &TableDef,
    incoming: &RecordBatch,
    existing: Option<&Stored>,
) -> std::result::Result<RecordBatch, ArrowError> {
    let schema = incoming.schema();
    let stored_known = existing
        .map(|s| s.batch.project(&(0..s.known).collect::<Vec<_>>()))
        .transpose()?;
    let combined = concat_batches(&schema, std::iter::once(incoming).chain(&stored_known))?;
    let key_columns = columns(&combined, &def.key)?;
    let fields = key_columns
        .iter()
        .map(|c| SortField::new(c.data_type().clone()))
        .collect();
    let keys = RowConverter::new(fields)?.convert_columns(&key_columns)?;

    let index = |i: usize| {
        u32::try_from(i).map_err(|_| ArrowError::ComputeError("partition too large".into()))
    };
    let n_in = incoming.num_rows();
    let mut seen = HashSet::with_capacity(combined.num_rows());
    let keep: Vec<u32> = (0..n_in)
        .rev()
        .chain(n_in..combined.num_rows())
        .filter(|&i| seen.insert(keys.row(i)))
        .map(index)
        .collect::<std::result::Result<_, _>>()?;
    let mut unique = take_record_batch(&combined, &UInt32Array::from(keep.clone()))?;

    // Unknown stored columns follow their row by key: kept for stored rows and for the rows
    // that replace them, null for new keys.
    if let Some(stored) = existing.filter(|s| s.batch.num_columns() > s.known) {
        let mut by_key = HashMap::with_capacity(stored.batch.num_rows());
        for i in (n_in..combined.num_rows()).rev() {
            by_key.insert(keys.row(i), index(i - n_in)?);
        }
        let source_rows: UInt32Array = keep
            .iter()
            .map(|&i| by_key.get(&keys.row(i as usize)).copied())
            .collect();
        let mut arrays = unique.columns().to_vec();
        for extra in &stored.batch.columns()[stored.known..] {
            arrays.push(take(extra.as_ref(), &source_rows, None)?);
        }
        unique = RecordBatch::try_new(stored.batch.schema(), arrays)?;
    }

    let sort: Vec<SortColumn> = columns(&unique, &def.sort_by)?
        .into_iter()
        .map(|values| SortColumn {
            values,
            options: None,
        })
        .collect();
    take_record_batch(&unique, &lexsort_to_indices(&sort, None)?)
}

fn columns(
    batch: &RecordBatch,
    names: &[String],
) -> std::result::Result<Vec<ArrayRef>, ArrowError> {
    names
        .iter()
        .map(|n| {
            batch
                .column_by_name(n)
                .cloned()
                .ok_or_else(|| ArrowError::SchemaError(format!("no column `{n}`")))
        })
        .collect()
}

/// Writer settings shared by every file: ZSTD, page-level statistics (which also writes the
/// column and offset indexes readers use to skip pages), bounded row groups, and the sort order
/// and schema version recorded in the footer for other tools.
pub fn writer_properties(def: &TableDef) -> WriterProperties {
    properties(def, def.version)
}

/// [`writer_properties`] recording `version` (the newer one when a file from a newer binary is
/// rewritten).
fn properties(def: &TableDef, version: u32) -> WriterProperties {
    let schema = def.file_schema();
    // Every declared column type maps to exactly one Parquet leaf, so leaf index = field index
    // (columns kept from newer versions come after the declared ones).
    let sorting = def
        .sort_by
        .iter()
        .filter_map(|name| schema.index_of(name).ok())
        .filter_map(|i| i32::try_from(i).ok())
        .map(|column_idx| SortingColumn {
            column_idx,
            descending: false,
            nulls_first: true,
        })
        .collect();
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_sorting_columns(Some(sorting))
        .set_key_value_metadata(Some(vec![
            KeyValue::new("wxcc.table".to_string(), def.name.clone()),
            KeyValue::new(SCHEMA_VERSION_KEY.to_string(), version.to_string()),
        ]))
        .build()
}

fn encode(
    def: &TableDef,
    version: u32,
    batch: &RecordBatch,
) -> std::result::Result<Vec<u8>, ParquetError> {
    let mut buf = Vec::new();
    let props = properties(def, version);
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(buf)
}

fn decode(bytes: Bytes, def: &TableDef, path: &str) -> Result<Stored> {
    let parquet_err = |source| LakeError::Parquet {
        path: path.to_string(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet_err)?;
    let version = stored_version(builder.metadata().file_metadata(), path)?;
    let stored = Arc::clone(builder.schema());
    let reader = builder.build().map_err(parquet_err)?;
    let merge_err = |source| LakeError::Merge {
        path: path.to_string(),
        source,
    };
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(merge_err)?;
    let all = concat_batches(&stored, &batches).map_err(merge_err)?;
    conform(&all, def, version, path)
}

/// The footer's schema version; 0 for a file without one (written by another tool).
fn stored_version(meta: &FileMetaData, path: &str) -> Result<u32> {
    let value = meta
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == SCHEMA_VERSION_KEY))
        .and_then(|k| k.value.as_deref());
    match value {
        None => Ok(0),
        Some(v) => v.trim().parse().map_err(|_| LakeError::UnreadableVersion {
            path: path.to_string(),
            value: v.to_string(),
        }),
    }
}

/// Lays a stored batch out as [`Stored`]: declared columns by name (converted or null-filled
/// where allowed), then the unknown ones.
fn conform(batch: &RecordBatch, def: &TableDef, version: u32, path: &str) -> Result<Stored> {
    let schema = def.file_schema();
    let refuse = |column: &str, reason: String| LakeError::IncompatibleFile {
        path: path.to_string(),
        column: column.to_string(),
        reason,
    };
    let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    let mut arrays = Vec::with_capacity(batch.num_columns().max(fields.len()));
    for f in schema.fields() {
        let array = match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Arc::clone(c),
            Some(c) if version > def.version => {
                return Err(refuse(
                    f.name(),
                    format!(
                        "is {} in schema version {version}, newer than this binary's version {} \
                         which declares {}; upgrade wxcc to use this lake",
                        c.data_type(),
                        def.version,
                        f.data_type()
                    ),
                ));
            }
            Some(c) => strict_cast(c, f.data_type()).map_err(|reason| refuse(f.name(), reason))?,
            None if f.is_nullable() => new_null_array(f.data_type(), batch.num_rows()),
            None => {
                return Err(refuse(
                    f.name(),
                    "is missing but declared non-null".to_string(),
                ));
            }
        };
        if !f.is_nullable() && array.null_count() > 0 {
            return Err(refuse(
                f.name(),
                format!(
                    "holds {} null value(s) but is declared non-null",
                    array.null_count()
                ),
            ));
        }
        arrays.push(array);
    }
    for (f, c) in batch.schema_ref().fields().iter().zip(batch.columns()) {
        if schema.index_of(f.name()).is_err() {
            // Nullable: rows this binary adds have no value for it.
            fields.push(Arc::new(f.as_ref().clone().with_nullable(true)));
            arrays.push(Arc::clone(c));
        }
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|source| {
        LakeError::Merge {
            path: path.to_string(),
            source,
        }
    })?;
    Ok(Stored {
        batch,
        known: schema.fields().len(),
        version,
    })
}

/// Converts a stored column to its declared type without changing any value: a value that does
/// not parse or fit is an error (never a silent null), and a number or time that would be
/// rounded or truncated is caught by converting back and comparing.
fn strict_cast(array: &ArrayRef, to: &DataType) -> std::result::Result<ArrayRef, String> {
    let from = array.data_type();
    if !can_cast_types(from, to) {
        return Err(format!(
            "is {from}, which cannot be converted to the declared {to}"
        ));
    }
    let strict = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let cast = cast_with_options(array, to, &strict)
        .map_err(|e| format!("is {from} and does not convert to the declared {to}: {e}"))?;
    // Text is parsed, so its spelling may differ on the way back ("1.0" vs "1"); anything
    // else must survive the round trip unchanged.
    let text = matches!(
        from,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    if !text {
        let back = cast_with_options(&cast, from, &strict);
        if !back.is_ok_and(|b| b.as_ref() == array.as_ref() as &dyn Array) {
            return Err(format!(
                "is {from} and converting it to the declared {to} would change values"
            ));
        }
    }
    Ok(cast)
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
