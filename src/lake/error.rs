//! The lake's one error type: each variant names what failed and keeps its source.

use arrow::error::ArrowError;
use parquet::errors::ParquetError;

/// Everything that can go wrong opening a lake, building batches or reading/writing partitions.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The location string is not a path or URL we can store to.
    #[error(
        "unsupported lake location `{location}`: {reason}; use a local path, file:///abs/path, \
         s3://bucket[/prefix], gs://bucket[/prefix], az://container[/prefix] \
         (also azure://, adl://, abfs[s]://container@account.dfs.core.windows.net/prefix) or memory://"
    )]
    UnsupportedLocation { location: String, reason: String },

    /// A `schemas/*.toml` declaration is malformed or inconsistent (a bug in the repository,
    /// caught by the schema tests).
    #[error("invalid schema declaration schemas/{file}.toml: {reason}")]
    SchemaDecl { file: String, reason: String },

    /// The local lake folder could not be created or resolved.
    #[error("cannot use local lake folder `{path}`: {source}")]
    LocalDir {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A cloud store could not be configured (bad option, missing account, ...).
    #[error("cannot configure object store for `{location}`: {source}")]
    StoreConfig {
        location: String,
        #[source]
        source: object_store::Error,
    },

    /// A store option key is not known to the backend selected by the URL scheme.
    #[error(
        "unknown option `{key}` for {backend} store in [storage] of the config file (see the \
         object_store {backend} config keys)"
    )]
    UnknownOption { backend: &'static str, key: String },

    /// An org id from API data does not look like an id; refusing to build a path from it.
    #[error("invalid org id `{0}`: expected letters, digits and `-` only (a UUID)")]
    InvalidOrgId(String),

    /// A record batch handed to the lake does not have the table's file schema.
    #[error("batch for table `{table}` does not match schemas/{table}.toml: {detail}")]
    SchemaMismatch { table: &'static str, detail: String },

    /// A row could not be turned into Arrow data (e.g. a required value is missing).
    #[error("cannot build `{table}` batch: {source}")]
    Build {
        table: &'static str,
        #[source]
        source: ArrowError,
    },

    /// Arrow compute (concat, sort, take) failed while merging a partition.
    #[error("cannot merge rows of {path}: {source}")]
    Merge {
        path: String,
        #[source]
        source: ArrowError,
    },

    /// A stored partition cannot be carried over by this binary without losing data (a column
    /// of another type from a newer schema version, a value that does not convert exactly, a
    /// required column missing or null). Nothing is written.
    #[error("refusing {path}: column `{column}` {reason}; the file is left as it is")]
    IncompatibleFile {
        path: String,
        column: String,
        reason: String,
    },

    /// A stored partition's footer has a `wxcc.schema_version` that is not a number.
    #[error(
        "refusing {path}: footer wxcc.schema_version is `{value}`, not a version number; \
         the file is left as it is"
    )]
    UnreadableVersion { path: String, value: String },

    /// Encoding or decoding Parquet failed.
    #[error("parquet error on {path}: {source}")]
    Parquet {
        path: String,
        #[source]
        source: ParquetError,
    },

    /// The object store refused a read or write.
    #[error("object store error on {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },

    /// Pre-signed URLs were asked of a store that cannot make them (local disk, memory).
    #[error(
        "pre-signed URLs need an S3, GCS or Azure store; `{location}` is not one \
         (leave out --sign to export object URIs only)"
    )]
    SigningUnsupported { location: String },

    /// The store could not sign a URL (e.g. GCS without a service-account key, Azure without
    /// an account key).
    #[error("cannot pre-sign a URL for {path}: {source}")]
    Sign {
        path: String,
        #[source]
        source: object_store::Error,
    },

    /// A blocking encode/decode task panicked or was cancelled.
    #[error("background parquet task for {path} failed: {source}")]
    Task {
        path: String,
        #[source]
        source: tokio::task::JoinError,
    },
}

/// Result alias for the lake module.
pub type Result<T> = std::result::Result<T, LakeError>;
