//! Hive partitions: one Parquet file per `(table, org_id, date)`, upserted as a whole.
//!
//! A day of one org's tasks is small (thousands to tens of thousands of rows), so the simplest
//! correct scheme is to read the partition, merge in memory and replace its single file with one
//! atomic put. No half-written file is ever visible, re-running a sync is idempotent, and readers
//! never see duplicates. Writers must not upsert the same partition concurrently (the last put
//! wins); the orchestrator serialises work per partition.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array, new_null_array};
use arrow::compute::{SortColumn, cast, concat_batches, lexsort_to_indices, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::row::{RowConverter, SortField};
use bytes::Bytes;
use chrono::NaiveDate;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::error::{LakeError, Result};
use super::schema::{Table, TableDef};
use super::store::Lake;

/// Name of the single data file in each partition folder.
pub const PART_FILE: &str = "part-0.parquet";

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

impl Lake {
    /// Upserts `batch` (with the table's file schema) into one partition and returns the number
    /// of rows in the rewritten file.
    ///
    /// Existing rows are unioned with `batch` and de-duplicated on the table key: rows of
    /// `batch` win over stored ones, and within `batch` a later row wins over an earlier one.
    /// The result is sorted by `sort_by` (which includes the key, so the order is total) and
    /// replaces `part-0.parquet` with one atomic put. Upserting the same rows again yields the
    /// same rows. An empty `batch` writes nothing and returns 0.
    pub async fn upsert_partition(
        &self,
        table: Table,
        org_id: &str,
        date: NaiveDate,
        batch: RecordBatch,
    ) -> Result<usize> {
        let relative = partition_file(table, org_id, date)?;
        let def = table.def();
        let schema = def.file_schema();
        if batch.schema_ref().fields() != schema.fields() {
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
        let existing = self.read_partition(table, org_id, date).await?;
        let incoming = batch.num_rows();

        let name = path.to_string();
        let encoded = tokio::task::spawn_blocking(move || -> Result<(usize, Vec<u8>)> {
            let merged = merge(def, schema, &batch, existing.as_ref()).map_err(|source| {
                LakeError::Merge {
                    path: name.clone(),
                    source,
                }
            })?;
            let bytes =
                encode(def, &merged).map_err(|source| LakeError::Parquet { path: name, source })?;
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
    /// Files written by an older schema version are conformed: missing nullable columns read as
    /// null, changed types are cast.
    pub async fn read_partition(
        &self,
        table: Table,
        org_id: &str,
        date: NaiveDate,
    ) -> Result<Option<RecordBatch>> {
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
        let schema = table.def().file_schema();
        let batch = tokio::task::spawn_blocking(move || decode(bytes, schema, &name))
            .await
            .map_err(|source| LakeError::Task {
                path: path.to_string(),
                source,
            })??;
        Ok(Some(batch))
    }
}

/// Union, de-duplicate (incoming wins) and sort; see [`Lake::upsert_partition`].
fn merge(
    def: &TableDef,
    schema: SchemaRef,
    incoming: &RecordBatch,
    existing: Option<&RecordBatch>,
) -> std::result::Result<RecordBatch, ArrowError> {
    let combined = concat_batches(&schema, std::iter::once(incoming).chain(existing))?;
    let key_columns = columns(&combined, &def.key)?;
    let fields = key_columns
        .iter()
        .map(|c| SortField::new(c.data_type().clone()))
        .collect();
    let keys = RowConverter::new(fields)?.convert_columns(&key_columns)?;

    let n_in = incoming.num_rows();
    let mut seen = HashSet::with_capacity(combined.num_rows());
    let keep: Vec<u32> = (0..n_in)
        .rev()
        .chain(n_in..combined.num_rows())
        .filter(|&i| seen.insert(keys.row(i)))
        .map(|i| {
            u32::try_from(i).map_err(|_| ArrowError::ComputeError("partition too large".into()))
        })
        .collect::<std::result::Result<_, _>>()?;
    let unique = take_record_batch(&combined, &UInt32Array::from(keep))?;

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
    let schema = def.file_schema();
    // Every declared column type maps to exactly one Parquet leaf, so leaf index = field index.
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
            KeyValue::new("wxcc.schema_version".to_string(), def.version.to_string()),
        ]))
        .build()
}

fn encode(def: &TableDef, batch: &RecordBatch) -> std::result::Result<Vec<u8>, ParquetError> {
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(writer_properties(def)))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(buf)
}

fn decode(bytes: Bytes, schema: SchemaRef, path: &str) -> Result<RecordBatch> {
    let parquet_err = |source| LakeError::Parquet {
        path: path.to_string(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet_err)?;
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
    conform(&all, &schema).map_err(merge_err)
}

/// Projects a stored batch onto the current file schema (by column name).
fn conform(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> std::result::Result<RecordBatch, ArrowError> {
    if batch.schema_ref().fields() == schema.fields() {
        return RecordBatch::try_new(Arc::clone(schema), batch.columns().to_vec());
    }
    let arrays = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(Arc::clone(c)),
            Some(c) => cast(c, f.data_type()),
            None if f.is_nullable() => Ok(new_null_array(f.data_type(), batch.num_rows())),
            None => Err(ArrowError::SchemaError(format!(
                "stored file lacks required column `{}`",
                f.name()
            ))),
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(schema), arrays)
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
