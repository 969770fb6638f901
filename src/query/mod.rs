//! SQL over the lake with DataFusion: table registration, the `recordings` view, saved
//! parameterised queries, output formats and destinations, and transcription exports.
//!
//! The four tables (`tasks`, `captures`, `manifest`, `audio_facts`) are DataFusion
//! `ListingTable`s over the lake's Hive folders, with the schemas declared in `schemas/` (no
//! inference, so an empty or half-synced lake still has well-typed tables). The `recordings` view
//! (`queries/views/recordings.sql`) joins them into one row per stored recording. The saved
//! queries in `queries/` are embedded in the binary; their parameters are bound as typed values
//! through DataFusion placeholders (`$name`), never spliced into SQL text.

pub mod duckdb;
mod error;
pub mod export;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod format;
pub mod output;
pub mod params;
pub mod saved;
pub mod session;

pub use error::{QueryError, Result};
pub use export::{Coverage, ExportAudio, ExportRequest, coverage, export_jobs};
pub use format::{OutputFormat, format_batches};
pub use output::{Destination, write_stream};
pub use saved::{SavedQuery, find_saved_query, saved_queries, saved_query};
pub use session::{QuerySession, sql_schema};
