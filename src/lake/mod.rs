//! The lake: WxCC tasks, capture metadata and the audio manifest as Hive-partitioned Parquet
//! in object storage (local disk, S3, GCS, Azure or memory).
//!
//! - `schemas/*.toml` declare each table once ([`schema`]); Arrow schemas, batch builders, the
//!   writer and the query layer all derive from that declaration, so they cannot drift apart.
//! - [`rows`] turns plain row structs (filled by the orchestrator from API payloads; this module
//!   knows nothing of HTTP) into record batches with exactly the file schema.
//! - [`store`] opens a location as an [`object_store::ObjectStore`] plus a root prefix.
//! - [`partition`] upserts one `(org_id, date)` partition at a time: one Parquet file per
//!   partition (several of bounded size on a busy day), each replaced atomically, every key in
//!   exactly one file.
//! - [`audio_facts`] holds the rows the audio analysis writes (levels and talk time per channel),
//!   [`derivatives`] those of the ML-ready files made from each recording.
//!
//! Layout: `<root>/<table>/org_id=<org>/date=<YYYY-MM-DD>/part-<n>.parquet`, partition columns
//! only in the folder names, so DuckDB, pyarrow, Spark and Trino read it unchanged.

pub mod audio_facts;
pub mod derivatives;
pub mod docs;
mod error;
pub mod partition;
pub mod rows;
pub mod schema;
pub mod store;

pub use audio_facts::{AudioFactsRow, audio_facts_batch};
pub use derivatives::{DerivativeRow, derivatives_batch};
pub use error::{LakeError, Result};
pub use rows::{CaptureRow, ManifestRow, TaskRow, captures_batch, manifest_batch, tasks_batch};
pub use schema::{ColumnDef, ColumnType, Table, TableDef};
pub use store::Lake;
