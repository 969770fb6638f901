//! SQL over the lake with DataFusion: table registration, saved queries and output formats.
//!
//! The three tables (`tasks`, `captures`, `manifest`) are DataFusion `ListingTable`s over the
//! lake's Hive folders, with the schemas declared in `schemas/` (no inference, so an empty or
//! half-synced lake still has well-typed tables). The saved queries in `queries/` are embedded
//! in the binary and are plain SQL that DuckDB or Trino can run over the same files.

mod error;
pub mod format;
pub mod saved;
pub mod session;

pub use error::{QueryError, Result};
pub use format::{OutputFormat, format_batches};
pub use saved::{SavedQuery, saved_queries, saved_query};
pub use session::QuerySession;
