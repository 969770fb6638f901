//! Hive partitions: the Parquet files of one `(table, org_id, date)`, upserted by key.
//!
//! A day of one org's rows is usually one file, `part-0.parquet`; a busy day is spread over
//! `part-1`, `part-2`, … of at most [`MAX_FILE_ROWS`] rows each. Every key lives in exactly one
//! file, so an upsert rewrites only the files holding keys it replaces plus the last one (which
//! takes new keys), each merged in memory and replaced with one atomic put: no half-written file
//! is ever visible, re-running a sync is idempotent, readers never see duplicates, and a commit
//! costs memory and time bounded by the file size, not by the day. Writers must not upsert the
//! same partition concurrently (the last put wins); the orchestrator serialises work per
//! partition.
//!
//! Schema evolution never loses stored data, whichever binary rewrites a file (README, "Schema
//! changes"): columns this binary does not know are carried over as they are; declared columns
//! missing from a file read as null (nullable columns only); a stored column of another type is
//! converted only when no value changes (strict cast, checked by casting back), and not at all
//! when the file comes from a newer schema version. Anything else is refused with an error
//! naming the file and the column, before that file is written (files of the partition put
//! before it stay rewritten: no row is lost, as after a crash between two puts).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array, new_null_array};
use arrow::compute::{
    CastOptions, SortColumn, can_cast_types, cast_with_options, concat_batches, interleave,
    lexsort_to_indices, take_record_batch,
};
use arrow::datatypes::{DataType, FieldRef, Schema};
use arrow::error::ArrowError;
use arrow::row::{RowConverter, SortField};
use bytes::Bytes;
use chrono::NaiveDate;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::{
    ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{FileMetaData, KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use super::error::{LakeError, Result};
use super::schema::{Table, TableDef};
use super::store::Lake;

/// Name of a partition's first data file (for most days, its only one).
pub const PART_FILE: &str = "part-0.parquet";

/// Rows per partition file. A busy day is spread over several files (`part-0`, `part-1`, …),
/// so an upsert rewrites at most about this many rows whatever the day's volume: memory and
/// time per commit stay flat instead of growing with the day (issue #11). At 5,000 rows a
/// rewrite holds a few MiB (`sync_memory` bench: a 100,000-call day peaks within 1.5× of a
/// 1,000-call one) and a busy day is still only tens of files of a few hundred KB.
pub const MAX_FILE_ROWS: usize = 5_000;

/// Target size of a data page, and the most a column's dictionary may grow before the column
/// falls back to plain encoding. The writer holds a page and a dictionary per column until a row
/// group is done, so with parquet's 1 MiB defaults a rewrite of a wide table buffered tens of
/// MiB (heaptrack: 14 MiB of a 100,000-call sync's 71 MiB peak heap, most of it dictionaries
/// of id-like columns that never pay off). Columns with few distinct values (channels, queues,
/// statuses) still fit their dictionary; smaller pages also let page indexes prune finer.
pub const PAGE_BYTES: usize = 128 * 1024;

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

/// A day as the `date=` partitions name it: exactly `YYYY-MM-DD`. chrono's `%Y` alone also takes
/// `26-01-05` (the year 26), which would select everything or nothing without a word.
pub fn parse_day(value: &str) -> Option<NaiveDate> {
    let b = value.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    shaped
        .then(|| NaiveDate::parse_from_str(value, "%Y-%m-%d").ok())
        .flatten()
}

/// Folder of a partition relative to the lake root: `<table>/org_id=<org>/date=<YYYY-MM-DD>`.
pub fn partition_dir(table: Table, org_id: &str, date: NaiveDate) -> Result<String> {
    validate_org_id(org_id)?;
    Ok(format!(
        "{table}/org_id={org_id}/date={}",
        date.format("%Y-%m-%d")
    ))
}

/// Path of a partition's first file relative to the lake root:
/// `<table>/org_id=<org>/date=<YYYY-MM-DD>/part-0.parquet`.
pub fn partition_file(table: Table, org_id: &str, date: NaiveDate) -> Result<String> {
    Ok(format!(
        "{}/{PART_FILE}",
        partition_dir(table, org_id, date)?
    ))
}

/// The number `n` of a data file named `part-<n>.parquet`; `None` for any other name (a
/// store's temporary file, a file another tool left).
fn part_number(name: &str) -> Option<u32> {
    let n = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
}

/// A stored partition file as this binary sees it.
struct Stored {
    /// The file in reader-sized batches (never concatenated: a merge gathers from them
    /// directly), each with the declared file columns (conformed, in declaration order)
    /// followed by the columns this binary does not know, as stored but nullable.
    batches: Vec<RecordBatch>,
    /// How many leading columns of each batch are declared ones.
    known: usize,
    /// The file's schema version (0 when the footer has none).
    version: u32,
}

/// One stored file of a partition as an upsert found it: its rows, the incoming rows whose keys
/// it holds, and its bytes while it may be rewritten.
struct Located {
    number: u32,
    rows: usize,
    /// Indices into [`Incoming::rows`].
    owned: Vec<u32>,
    /// Kept for the files an upsert rewrites (one holding incoming keys, or the last file, where
    /// new keys go while it has room); the others are dropped as soon as their keys are read,
    /// so an upsert holds about one file, not the whole partition.
    bytes: Option<Bytes>,
}

impl Lake {
    /// Removes what a killed put left in a local partition. object_store writes a local file
    /// as `part-N.parquet#K` and renames it into place; a process killed in between leaves that
    /// file, which wxcc's own listing skips but pyarrow and Spark read as one more data file
    /// (a torn one fails their reads; a whole one duplicates rows). Writers of a partition hold
    /// the org's lease, so any such file found here is a leftover.
    fn sweep_staged_parts(&self, dir: &str) {
        let Some(local) = self.local_file(&self.path(dir)) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&local) else {
            return; // no partition yet
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("part-") && name.contains(".parquet#") {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => tracing::info!(
                        file = %entry.path().display(),
                        "removed the staging file of a write that was killed"
                    ),
                    Err(e) => tracing::warn!(
                        file = %entry.path().display(),
                        error = %e,
                        "cannot remove the staging file of a write that was killed; other \
                         engines may read it"
                    ),
                }
            }
        }
    }

    /// Upserts `batch` (with the table's file schema) into one partition and returns the number
    /// of rows the partition holds afterwards.
    ///
    /// A key is stored in exactly one of the partition's files: a row of `batch` whose key is
    /// stored replaces that row in its file; new keys fill the last file up to the lake's rows
    /// per file ([`MAX_FILE_ROWS`] by default) and then new files. Within `batch` a later row
    /// wins over an earlier one. Each file rewritten is sorted by `sort_by` (which includes the
    /// key, so the order is total) and replaced with one atomic put, so readers never see a
    /// duplicate or a half-written file; a crash between two files' puts leaves some rows of
    /// the batch written and others not, never a row lost. Upserting the same rows again yields
    /// the same rows. An empty `batch` writes nothing and returns 0.
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
        let dir = partition_dir(table, org_id, date)?;
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
        let incoming = batch.num_rows();
        self.sweep_staged_parts(&dir);
        let name = self.path(&dir).to_string();
        let cap = self.max_file_rows();
        let rows = blocking(&name, move || Incoming::new(def, batch)).await?;
        let rows = Arc::new(rows);
        let mut located: Vec<Located> = Vec::new();
        for (number, path) in self.part_paths(&dir).await? {
            let Some(bytes) = self.fetch_part(&path).await? else {
                continue;
            };
            let file = path.to_string();
            let keys = Arc::clone(&rows);
            let (count, owned) = blocking(&file.clone(), {
                let bytes = bytes.clone();
                move || keys.locate(def, bytes, &file)
            })
            .await?;
            if let Some(previous) = located.last_mut().filter(|l| l.owned.is_empty()) {
                previous.bytes = None;
            }
            located.push(Located {
                number,
                rows: count,
                owned,
                bytes: Some(bytes),
            });
        }
        let plan = blocking(&name, move || plan_upsert(&rows, located, cap)).await?;
        let mut total = plan.untouched_rows;
        for write in plan.writes {
            let relative = format!("{dir}/part-{}.parquet", write.number);
            let path = self.path(&relative);
            let existing = write.existing;
            let file = path.to_string();
            let (rows, bytes) = blocking(&file.clone(), move || {
                let stored = existing.map(|b| decode(b, def, &file)).transpose()?;
                let version = stored
                    .as_ref()
                    .map_or(def.version, |s| s.version.max(def.version));
                let merged = merge(def, &write.rows, stored.as_ref()).map_err(|source| {
                    LakeError::Merge {
                        path: file.clone(),
                        source,
                    }
                })?;
                // Only the merged rows are needed while they are encoded.
                drop((stored, write.rows));
                let bytes = encode(def, version, &merged)
                    .map_err(|source| LakeError::Parquet { path: file, source })?;
                Ok((merged.num_rows(), bytes))
            })
            .await?;
            total += rows;
            let size = bytes.len();
            self.store()
                .put(&path, PutPayload::from(bytes))
                .await
                .map_err(|source| LakeError::Store {
                    path: self.uri(&path),
                    source,
                })?;
            tracing::debug!(%table, org_id, %date, file = write.number, incoming, rows, size, "upserted partition file");
        }
        Ok(total)
    }

    /// Reads a whole partition as one batch with the table's current file schema, or `None`
    /// when the partition has no file yet. See [`Lake::read_partition_files`].
    pub async fn read_partition(
        &self,
        table: Table,
        org_id: &str,
        date: NaiveDate,
    ) -> Result<Option<RecordBatch>> {
        let batches = self.read_partition_files(table, org_id, date).await?;
        if batches.is_empty() {
            return Ok(None);
        }
        let path = self.path(&partition_dir(table, org_id, date)?);
        concat_batches(&table.def().file_schema(), &batches)
            .map(Some)
            .map_err(|source| LakeError::Merge {
                path: path.to_string(),
                source,
            })
    }

    /// Reads a partition file by file in the reader's batches (no copy of the whole day), each
    /// with the table's current file schema; empty when the partition has no file yet.
    ///
    /// Files written by another schema version are conformed as described in the module docs:
    /// missing nullable columns read as null, columns this binary does not know are left out of
    /// the batch (but never out of the file), and a file that cannot be conformed without losing
    /// data is an error.
    pub async fn read_partition_files(
        &self,
        table: Table,
        org_id: &str,
        date: NaiveDate,
    ) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        self.visit_partition_files(table, org_id, date, None, |batch| out.push(batch))
            .await?;
        Ok(out)
    }

    /// Like [`Lake::read_partition_files`], handing each batch to `each` as its file is read: a
    /// caller that keeps a few rows of a busy day holds one file's batches at a time, not the
    /// day's. With `tasks`, only the rows of those `task_id`s are decoded and handed over (the
    /// other columns are read for those rows only), so a part of a busy day looking up its own
    /// rows does not decode the whole day.
    pub async fn visit_partition_files(
        &self,
        table: Table,
        org_id: &str,
        date: NaiveDate,
        tasks: Option<&HashSet<String>>,
        mut each: impl FnMut(RecordBatch) + Send,
    ) -> Result<()> {
        let dir = partition_dir(table, org_id, date)?;
        let tasks = tasks.map(|t| Arc::new(t.clone()));
        for (_, path) in self.part_paths(&dir).await? {
            let Some(bytes) = self.fetch_part(&path).await? else {
                continue;
            };
            let name = path.to_string();
            let def = table.def();
            let tasks = tasks.clone();
            let stored = blocking(&name.clone(), move || match tasks {
                Some(tasks) => decode_rows_of(bytes, def, &tasks, &name),
                None => decode(bytes, def, &name),
            })
            .await?;
            for batch in stored.batches {
                let known = batch.columns()[..stored.known].to_vec();
                let batch = RecordBatch::try_new(def.file_schema(), known).map_err(|source| {
                    LakeError::Merge {
                        path: path.to_string(),
                        source,
                    }
                })?;
                each(batch);
            }
        }
        Ok(())
    }

    /// Reads only `columns` (declared names of `table`) of a partition in the reader's batches,
    /// each file fetched and decoded only after the one before it is done: the sync's look-ups
    /// of a busy day (a few key and time columns of up to 100,000 rows) then cost a few columns'
    /// worth of memory, not the whole partition's. Columns are conformed as in
    /// [`Lake::read_partition_files`].
    pub async fn read_partition_columns(
        &self,
        table: Table,
        org_id: &str,
        date: NaiveDate,
        columns: &[&str],
    ) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        self.visit_partition_columns(table, org_id, date, columns, |batch| out.push(batch))
            .await?;
        Ok(out)
    }

    /// Like [`Lake::read_partition_columns`], handing each batch to `each` as its file is read
    /// (see [`Lake::visit_partition_files`]).
    pub async fn visit_partition_columns(
        &self,
        table: Table,
        org_id: &str,
        date: NaiveDate,
        columns: &[&str],
        mut each: impl FnMut(RecordBatch) + Send,
    ) -> Result<()> {
        let dir = partition_dir(table, org_id, date)?;
        let def = table.def();
        let schema = def.file_schema();
        let indices = columns
            .iter()
            .map(|c| {
                schema.index_of(c).map_err(|_| LakeError::SchemaMismatch {
                    table: table.name(),
                    detail: format!("no column `{c}` is declared"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let projected = Arc::new(
            schema
                .project(&indices)
                .expect("indices come from index_of"),
        );
        for (_, path) in self.part_paths(&dir).await? {
            let Some(bytes) = self.fetch_part(&path).await? else {
                continue;
            };
            let name = path.to_string();
            let projected = Arc::clone(&projected);
            let batches = blocking(&name.clone(), move || {
                decode_columns(bytes, def, &projected, &name)
            })
            .await?;
            batches.into_iter().for_each(&mut each);
        }
        Ok(())
    }

    /// The data files of a partition folder, by number (not fetched).
    async fn part_paths(&self, dir: &str) -> Result<Vec<(u32, object_store::path::Path)>> {
        let prefix = self.path(dir);
        let listed = match self.store().list_with_delimiter(Some(&prefix)).await {
            Ok(listed) => listed.objects,
            Err(object_store::Error::NotFound { .. }) => Vec::new(),
            Err(source) => {
                return Err(LakeError::Store {
                    path: self.uri(&prefix),
                    source,
                });
            }
        };
        let mut numbered: Vec<(u32, object_store::path::Path)> = listed
            .into_iter()
            .filter_map(|m| Some((part_number(m.location.filename()?)?, m.location)))
            .collect();
        numbered.sort_by_key(|(n, _)| *n);
        Ok(numbered)
    }

    /// One listed data file's bytes; `None` when it was removed since it was listed (another
    /// tool's compaction, say: nothing to keep).
    async fn fetch_part(&self, path: &object_store::path::Path) -> Result<Option<Bytes>> {
        let store_err = |source| LakeError::Store {
            path: self.uri(path),
            source,
        };
        match self.store().get(path).await {
            Ok(got) => got.bytes().await.map(Some).map_err(store_err),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(e)),
        }
    }
}

/// Runs CPU work (decoding, merging, encoding) off the async runtime.
async fn blocking<T: Send + 'static>(
    path: &str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|source| LakeError::Task {
            path: path.to_string(),
            source,
        })?
}

/// Which files an upsert rewrites, and with which incoming rows.
struct UpsertPlan {
    writes: Vec<FileWrite>,
    /// Rows in files the upsert leaves as they are.
    untouched_rows: usize,
}

struct FileWrite {
    /// `part-<number>.parquet`; an existing file is merged with `rows`, a new one holds them.
    number: u32,
    rows: RecordBatch,
    /// The stored file's bytes; `None` for a new file.
    existing: Option<Bytes>,
}

/// Sends each incoming row to the file that stores its key, and new keys to the last file while
/// it has room, then to new files of at most `cap` rows.
fn plan_upsert(incoming: &Incoming, located: Vec<Located>, cap: usize) -> Result<UpsertPlan> {
    let cap = cap.max(1);
    let mut found = vec![false; incoming.rows.num_rows()];
    for i in located.iter().flat_map(|l| &l.owned) {
        found[*i as usize] = true;
    }
    let mut fresh: Vec<u32> = (0..found.len())
        .filter(|&i| !found[i])
        .map(|i| u32::try_from(i).expect("an upsert batch has fewer than 2^32 rows"))
        .collect();
    let first_new = located.last().map_or(0, |l| l.number + 1);
    let last = located.len().checked_sub(1);
    let take = |indices: Vec<u32>| {
        take_record_batch(&incoming.rows, &UInt32Array::from(indices)).map_err(|source| {
            LakeError::Merge {
                path: "incoming rows".into(),
                source,
            }
        })
    };
    let mut writes = Vec::new();
    let mut untouched_rows = 0;
    for (f, file) in located.into_iter().enumerate() {
        let mut indices = file.owned;
        if Some(f) == last && !fresh.is_empty() {
            let room = cap.saturating_sub(file.rows).min(fresh.len());
            indices.extend(fresh.drain(..room));
            indices.sort_unstable();
        }
        if indices.is_empty() {
            untouched_rows += file.rows;
        } else {
            writes.push(FileWrite {
                number: file.number,
                rows: take(indices)?,
                existing: file.bytes,
            });
        }
    }
    for (number, chunk) in (first_new..).zip(fresh.chunks(cap)) {
        writes.push(FileWrite {
            number,
            rows: take(chunk.to_vec())?,
            existing: None,
        });
    }
    Ok(UpsertPlan {
        writes,
        untouched_rows,
    })
}

/// An upsert's incoming rows (later rows winning) and their keys, to find which stored file
/// holds each.
struct Incoming {
    rows: RecordBatch,
    converter: RowConverter,
    /// Key bytes (row format) → index into `rows`.
    wanted: HashMap<Vec<u8>, u32>,
}

impl Incoming {
    fn new(def: &TableDef, batch: RecordBatch) -> Result<Incoming> {
        let merge_err = |source| LakeError::Merge {
            path: "incoming rows".into(),
            source,
        };
        let rows = merge(def, &batch, None).map_err(merge_err)?;
        let key_types: Vec<SortField> = def
            .key
            .iter()
            .map(|k| {
                let f = def.file_schema();
                let field = f.field_with_name(k).expect("key columns are declared");
                SortField::new(field.data_type().clone())
            })
            .collect();
        let converter = RowConverter::new(key_types).map_err(merge_err)?;
        let keys = converter
            .convert_columns(&columns(&rows, &def.key).map_err(merge_err)?)
            .map_err(merge_err)?;
        let wanted = (0..rows.num_rows())
            .map(|i| {
                let index = u32::try_from(i)
                    .map_err(|_| merge_err(ArrowError::ComputeError("batch too large".into())))?;
                Ok((keys.row(i).data().to_vec(), index))
            })
            .collect::<Result<_>>()?;
        Ok(Incoming {
            rows,
            converter,
            wanted,
        })
    }

    /// The number of rows of a stored file and which incoming rows it holds the keys of.
    fn locate(&self, def: &TableDef, bytes: Bytes, path: &str) -> Result<(usize, Vec<u32>)> {
        let keys = decode_keys(bytes, def, path)?;
        let count = keys.first().map_or(0, |k| k.len());
        let stored = self
            .converter
            .convert_columns(&keys)
            .map_err(|source| LakeError::Merge {
                path: path.to_string(),
                source,
            })?;
        let mut owned: Vec<u32> = stored
            .iter()
            .filter_map(|row| self.wanted.get(row.data()).copied())
            .collect();
        owned.sort_unstable();
        Ok((count, owned))
    }
}

/// Union, de-duplicate (incoming wins) and sort; see [`Lake::upsert_partition`].
///
/// Rows are gathered once, straight from `incoming` and the stored file's batches into the
/// sorted result (`interleave`): only the sort columns are copied on the way, so a rewrite
/// holds the stored file, the incoming rows and the result, not three copies of their union.
fn merge(
    def: &TableDef,
    incoming: &RecordBatch,
    existing: Option<&Stored>,
) -> std::result::Result<RecordBatch, ArrowError> {
    // Source 0 is `incoming`, sources 1.. the stored batches (their declared columns).
    const IN: usize = 0;
    let known: Vec<usize> = (0..existing.map_or(0, |s| s.known)).collect();
    let stored_known = existing
        .map_or(&[][..], |s| s.batches.as_slice())
        .iter()
        .map(|b| b.project(&known))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let sources: Vec<&RecordBatch> = std::iter::once(incoming).chain(&stored_known).collect();
    let key_columns = columns(incoming, &def.key)?;
    let fields = key_columns
        .iter()
        .map(|c| SortField::new(c.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields)?;
    let keys = sources
        .iter()
        .map(|b| converter.convert_columns(&columns(b, &def.key)?))
        .collect::<std::result::Result<Vec<_>, _>>()?;

    // Later incoming rows win over earlier ones, incoming rows over stored ones.
    let n_in = incoming.num_rows();
    let mut seen = HashSet::with_capacity(sources.iter().map(|b| b.num_rows()).sum());
    let mut keep: Vec<(usize, usize)> = (0..n_in)
        .rev()
        .filter(|&i| seen.insert(keys[IN].row(i)))
        .map(|i| (IN, i))
        .collect();
    for (src, rows) in keys.iter().enumerate().skip(1) {
        keep.extend(
            (0..rows.num_rows())
                .filter(|&i| seen.insert(rows.row(i)))
                .map(|i| (src, i)),
        );
    }
    drop(seen);

    let sort = def
        .sort_by
        .iter()
        .map(|name| {
            let arrays = sources
                .iter()
                .map(|b| column(b, name))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
            Ok(SortColumn {
                values: interleave(&refs, &keep)?,
                options: None,
            })
        })
        .collect::<std::result::Result<Vec<_>, ArrowError>>()?;
    let order = lexsort_to_indices(&sort, None)?;
    drop(sort);
    let sorted: Vec<(usize, usize)> = order.values().iter().map(|&i| keep[i as usize]).collect();
    drop(keep);

    let mut arrays = (0..incoming.num_columns())
        .map(|c| {
            let refs: Vec<&dyn Array> = sources.iter().map(|b| b.column(c).as_ref()).collect();
            interleave(&refs, &sorted)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;

    // Unknown stored columns follow their row by key: kept for stored rows and for the rows
    // that replace them, null for new keys.
    let Some(stored) =
        existing.filter(|s| s.batches.first().is_some_and(|b| b.num_columns() > s.known))
    else {
        return RecordBatch::try_new(incoming.schema(), arrays);
    };
    let mut by_key = HashMap::new();
    for (src, rows) in keys.iter().enumerate().skip(1).rev() {
        for i in (0..rows.num_rows()).rev() {
            by_key.insert(rows.row(i), (src, i));
        }
    }
    // Source 0 is a single null, sources 1.. the stored batches' column.
    let from: Vec<(usize, usize)> = sorted
        .iter()
        .map(|&(src, i)| match src {
            IN => by_key.get(&keys[IN].row(i)).copied().unwrap_or((0, 0)),
            _ => (src, i),
        })
        .collect();
    for c in stored.known..stored.batches[0].num_columns() {
        let null = new_null_array(stored.batches[0].column(c).data_type(), 1);
        let refs: Vec<&dyn Array> = std::iter::once(null.as_ref())
            .chain(stored.batches.iter().map(|b| b.column(c).as_ref()))
            .collect();
        arrays.push(interleave(&refs, &from)?);
    }
    RecordBatch::try_new(stored.batches[0].schema(), arrays)
}

/// A column of `batch` by name.
fn column(batch: &RecordBatch, name: &str) -> std::result::Result<ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| ArrowError::SchemaError(format!("no column `{name}`")))
}

fn columns(
    batch: &RecordBatch,
    names: &[String],
) -> std::result::Result<Vec<ArrayRef>, ArrowError> {
    names.iter().map(|n| column(batch, n)).collect()
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
        .set_data_page_size_limit(PAGE_BYTES)
        .set_dictionary_page_size_limit(PAGE_BYTES)
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
    decode_selected(bytes, def, path, None)
}

/// [`decode`] of the rows `selection` picks (all when `None`).
fn decode_selected(
    bytes: Bytes,
    def: &TableDef,
    path: &str,
    selection: Option<RowSelection>,
) -> Result<Stored> {
    let parquet_err = |source| LakeError::Parquet {
        path: path.to_string(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet_err)?;
    let version = stored_version(builder.metadata().file_metadata(), path)?;
    let builder = match selection {
        Some(selection) => builder.with_row_selection(selection),
        None => builder,
    };
    let reader = builder.build().map_err(parquet_err)?;
    let batches = read_batches(reader, path)?
        .iter()
        .map(|b| conform(b, def, version, path))
        .collect::<Result<Vec<_>>>()?;
    Ok(Stored {
        batches,
        known: def.file_schema().fields().len(),
        version,
    })
}

/// Like [`decode`], only the rows whose `task_id` is in `tasks`: the `task_id` column is read
/// first and the others only for the rows it selects.
fn decode_rows_of(
    bytes: Bytes,
    def: &TableDef,
    tasks: &HashSet<String>,
    path: &str,
) -> Result<Stored> {
    use arrow::array::AsArray;
    let parquet_err = |source| LakeError::Parquet {
        path: path.to_string(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).map_err(parquet_err)?;
    let version = stored_version(builder.metadata().file_metadata(), path)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), ["task_id"]);
    let reader = builder.with_projection(mask).build().map_err(parquet_err)?;
    let mut filters = Vec::new();
    for batch in read_batches(reader, path)? {
        let Some(ids) = batch.column_by_name("task_id") else {
            // No `task_id` stored (not a table of this lake): keep every row.
            return decode(bytes, def, path);
        };
        let ids =
            arrow::compute::cast(ids, &DataType::Utf8).map_err(|source| LakeError::Merge {
                path: path.to_string(),
                source,
            })?;
        let ids = ids.as_string::<i32>();
        filters.push(
            ids.iter()
                .map(|id| Some(id.is_some_and(|id| tasks.contains(id))))
                .collect::<arrow::array::BooleanArray>(),
        );
    }
    if !filters.iter().any(|f| f.true_count() > 0) {
        return Ok(Stored {
            batches: Vec::new(),
            known: def.file_schema().fields().len(),
            version,
        });
    }
    decode_selected(bytes, def, path, Some(RowSelection::from_filters(&filters)))
}

/// Every batch of `reader`, as read: concatenating them would hold the file twice.
fn read_batches(reader: ParquetRecordBatchReader, path: &str) -> Result<Vec<RecordBatch>> {
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|source| LakeError::Merge {
            path: path.to_string(),
            source,
        })
}

/// The `projected` columns (declared, in the declared types) of a file, conformed like
/// [`conform`] does for whole files.
fn decode_columns(
    bytes: Bytes,
    def: &TableDef,
    projected: &Schema,
    path: &str,
) -> Result<Vec<RecordBatch>> {
    let parquet_err = |source| LakeError::Parquet {
        path: path.to_string(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet_err)?;
    let version = stored_version(builder.metadata().file_metadata(), path)?;
    let mask = ProjectionMask::columns(
        builder.parquet_schema(),
        projected.fields().iter().map(|f| f.name().as_str()),
    );
    let reader = builder.with_projection(mask).build().map_err(parquet_err)?;
    read_batches(reader, path)?
        .iter()
        .map(|batch| {
            let columns = projected
                .fields()
                .iter()
                .map(|f| conform_column(batch, f, def, version, path))
                .collect::<Result<Vec<_>>>()?;
            RecordBatch::try_new_with_options(
                Arc::new(projected.clone()),
                columns,
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
            )
            .map_err(|source| LakeError::Merge {
                path: path.to_string(),
                source,
            })
        })
        .collect()
}

/// Only the key columns of a file, in the declared types (for finding which file holds a key
/// without decoding whole files).
fn decode_keys(bytes: Bytes, def: &TableDef, path: &str) -> Result<Vec<ArrayRef>> {
    let parquet_err = |source| LakeError::Parquet {
        path: path.to_string(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(parquet_err)?;
    let mask =
        ProjectionMask::columns(builder.parquet_schema(), def.key.iter().map(String::as_str));
    let reader = builder.with_projection(mask).build().map_err(parquet_err)?;
    let schema = arrow::array::RecordBatchReader::schema(&reader);
    let merge_err = |source| LakeError::Merge {
        path: path.to_string(),
        source,
    };
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(merge_err)?;
    let all = concat_batches(&schema, &batches).map_err(merge_err)?;
    let declared = def.file_schema();
    def.key
        .iter()
        .map(|k| {
            let refuse = |reason: String| LakeError::IncompatibleFile {
                path: path.to_string(),
                column: k.clone(),
                reason,
            };
            let column = all
                .column_by_name(k)
                .ok_or_else(|| refuse("is missing but declared non-null".to_string()))?;
            let to = declared
                .field_with_name(k)
                .expect("key columns are declared")
                .data_type();
            if column.data_type() == to {
                Ok(Arc::clone(column))
            } else {
                strict_cast(column, to).map_err(refuse)
            }
        })
        .collect()
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

/// Lays a stored batch out as [`Stored`] holds it: declared columns by name (converted or
/// null-filled where allowed), then the unknown ones.
fn conform(batch: &RecordBatch, def: &TableDef, version: u32, path: &str) -> Result<RecordBatch> {
    let schema = def.file_schema();
    let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    let mut arrays = Vec::with_capacity(batch.num_columns().max(fields.len()));
    for f in schema.fields() {
        arrays.push(conform_column(batch, f, def, version, path)?);
    }
    for (f, c) in batch.schema_ref().fields().iter().zip(batch.columns()) {
        if schema.index_of(f.name()).is_err() {
            // Nullable: rows this binary adds have no value for it.
            fields.push(Arc::new(f.as_ref().clone().with_nullable(true)));
            arrays.push(Arc::clone(c));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|source| LakeError::Merge {
        path: path.to_string(),
        source,
    })
}

/// One declared column of a stored batch: as stored, converted, or null-filled where allowed.
fn conform_column(
    batch: &RecordBatch,
    f: &FieldRef,
    def: &TableDef,
    version: u32,
    path: &str,
) -> Result<ArrayRef> {
    let refuse = |reason: String| LakeError::IncompatibleFile {
        path: path.to_string(),
        column: f.name().to_string(),
        reason,
    };
    let array = match batch.column_by_name(f.name()) {
        Some(c) if c.data_type() == f.data_type() => Arc::clone(c),
        Some(c) if version > def.version => {
            return Err(refuse(format!(
                "is {} in schema version {version}, newer than this binary's version {} \
                 which declares {}; upgrade wxcc to use this lake",
                c.data_type(),
                def.version,
                f.data_type()
            )));
        }
        Some(c) => strict_cast(c, f.data_type()).map_err(refuse)?,
        None if f.is_nullable() => new_null_array(f.data_type(), batch.num_rows()),
        None => return Err(refuse("is missing but declared non-null".to_string())),
    };
    if !f.is_nullable() && array.null_count() > 0 {
        return Err(refuse(format!(
            "holds {} null value(s) but is declared non-null",
            array.null_count()
        )));
    }
    Ok(array)
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
