//! The query module's error type.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

/// Errors from registering tables, running SQL and formatting results.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A table of the lake could not be registered with DataFusion.
    #[error("cannot register table `{table}` at {url}: {source}")]
    Register {
        table: &'static str,
        url: String,
        #[source]
        source: DataFusionError,
    },

    /// Planning or running the SQL failed; DataFusion's message says where and why.
    #[error("SQL error: {0}")]
    Sql(#[source] DataFusionError),

    /// Results could not be rendered in the requested format.
    #[error("cannot format results as {format}: {source}")]
    Format {
        format: &'static str,
        #[source]
        source: ArrowError,
    },
}

/// Result alias for the query module.
pub type Result<T> = std::result::Result<T, QueryError>;
