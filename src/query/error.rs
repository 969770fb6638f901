//! The query module's error type.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

use crate::lake::LakeError;

/// Errors from registering tables, running SQL, formatting and writing results, and exports.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A table or view of the lake could not be registered with DataFusion.
    #[error("cannot register table `{table}` at {url}: {source}")]
    Register {
        table: &'static str,
        url: String,
        #[source]
        source: DataFusionError,
    },

    /// A table file of 0 bytes: a write cut off after its rename (power loss). DataFusion skips
    /// such files without a word, so its rows would be missing from every answer.
    #[error(
        "{uri} is empty (0 bytes), so its rows cannot be read: a write to it was cut off. \
         Remove it and sync its day again with `wxcc sync --from DAY --to NEXT_DAY --full-refresh`"
    )]
    EmptyFile { uri: String },

    /// The lake's store could not be listed to check its files.
    #[error("cannot list {uri}: {source}")]
    List {
        uri: String,
        #[source]
        source: object_store::Error,
    },

    /// Planning or running the SQL failed; DataFusion's message says where and why.
    #[error("SQL error: {0}")]
    Sql(#[source] SqlError),

    /// Results could not be rendered in the requested format.
    #[error("cannot format results as {format}: {source}")]
    Format {
        format: &'static str,
        #[source]
        source: ArrowError,
    },

    /// Results could not be written as Parquet.
    #[error("cannot write Parquet output to {destination}: {source}")]
    Parquet {
        destination: String,
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// Writing the results to their destination failed.
    #[error("cannot write results to {destination}: {source}")]
    Write {
        destination: String,
        #[source]
        source: std::io::Error,
    },

    /// A query parameter is unknown, missing or not of its declared type (bad usage).
    #[error("{0}")]
    Param(String),

    /// No saved query has this name (bad usage).
    #[error("no saved query `{name}`; available: {available} (see `wxcc query list`)")]
    UnknownQuery { name: String, available: String },

    /// The request cannot be carried out as given (bad usage), e.g. binary output to a terminal
    /// or an export query without the key columns.
    #[error("{0}")]
    Usage(String),

    /// The lake refused something (opening an output location, signing URLs).
    #[error(transparent)]
    Lake(#[from] LakeError),
}

impl QueryError {
    /// [`QueryError::Sql`] of a DataFusion error.
    pub fn sql(e: DataFusionError) -> QueryError {
        QueryError::Sql(SqlError(e))
    }

    /// Whether the error is the caller's to fix (exit code 2) rather than a failure.
    pub fn is_usage(&self) -> bool {
        match self {
            QueryError::Param(_) | QueryError::UnknownQuery { .. } | QueryError::Usage(_) => true,
            // The statement is wrong, not the lake or the machine: running it again cannot help.
            QueryError::Sql(SqlError(e)) => matches!(
                e.find_root(),
                DataFusionError::SQL(..)
                    | DataFusionError::Plan(_)
                    | DataFusionError::SchemaError(..)
            ),
            QueryError::Lake(l) => matches!(
                l,
                LakeError::SigningUnsupported { .. }
                    | LakeError::UnsupportedLocation { .. }
                    | LakeError::StoreConfig { .. }
                    | LakeError::UnknownOption { .. }
            ),
            _ => false,
        }
    }
}

/// A DataFusion error shown without its `Debug` dumps: a parse error reads "sql parser error:
/// Expected: …", once, not `ParserError("…")` followed by the same text. Other errors keep
/// their causes (an error of ours inside DataFusion still decides the exit code).
#[derive(Debug)]
pub struct SqlError(pub DataFusionError);

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.find_root() {
            DataFusionError::SQL(parse, _) => write!(f, "{parse}"),
            _ => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for SqlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.0.find_root() {
            DataFusionError::SQL(..) => None,
            _ => Some(&self.0),
        }
    }
}

/// Result alias for the query module.
pub type Result<T> = std::result::Result<T, QueryError>;
