//! A DataFusion session with the lake's tables and the `recordings` view registered.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

use super::error::{QueryError, Result};
use crate::lake::{Lake, Table};

/// `CREATE VIEW recordings AS ...`: one row per stored recording with friendly columns.
pub const RECORDINGS_VIEW: &str = include_str!("../../queries/views/recordings.sql");

/// Largest build side (estimated bytes) joined without repartitioning both sides.
pub const COLLECT_LEFT_MAX_BYTES: usize = 1024 * 1024 * 1024;

/// Largest build side (rows, when no byte estimate is known) joined without repartitioning.
pub const COLLECT_LEFT_MAX_ROWS: usize = 4 * 1024 * 1024;

/// SQL over one lake: `tasks`, `captures`, `manifest`, `audio_facts` and `derivatives`, each with its stored
/// columns plus the partition columns `org_id` and `date` (`'YYYY-MM-DD'`, UTC), and the
/// `recordings` view joining them. Filters on `org_id` and `date` skip whole folders.
///
/// Stored string columns are read as `Utf8View` (see [`sql_schema`]): same values, but Parquet
/// strings decode without copying, which roughly halves scan time on string-heavy queries.
pub struct QuerySession {
    ctx: SessionContext,
}

impl QuerySession {
    /// Registers the lake's object store, its tables and the `recordings` view.
    ///
    /// Schemas come from `schemas/`, not from the files, so a table whose folder does not exist
    /// yet (e.g. `audio_facts` before any analysis) is simply empty, and files never disagree
    /// with the declared types.
    pub async fn open(lake: &Lake) -> Result<QuerySession> {
        let mut config = SessionConfig::new().with_information_schema(true);
        // Joins over the lake (manifest × tasks on org, day, task) build one hash table from the
        // whole smaller side instead of hash-repartitioning both sides first: at a million rows a
        // side that saves about a fifth of the join's CPU (`cargo bench --bench query`), and a
        // lake's sides fit in memory (the repartitioned join holds the same build rows anyway).
        let optimizer = &mut config.options_mut().optimizer;
        optimizer.hash_join_single_partition_threshold = COLLECT_LEFT_MAX_BYTES;
        optimizer.hash_join_single_partition_threshold_rows = COLLECT_LEFT_MAX_ROWS;
        let ctx = SessionContext::new_with_config(config);
        ctx.register_object_store(lake.url(), Arc::clone(lake.store()));
        // The tables' listings at once: on a cloud store each is a round trip or more.
        futures::future::try_join_all(Table::ALL.map(|t| refuse_empty_files(lake, t))).await?;
        for table in Table::ALL {
            register(&ctx, lake, table)?;
        }
        // Our own DDL, run before the session refuses DDL to its callers.
        ctx.sql(RECORDINGS_VIEW)
            .await
            .map_err(|source| QueryError::Register {
                table: "recordings",
                url: lake.url().to_string(),
                source,
            })?;
        tracing::debug!(lake = %lake.url(), "query session ready");
        Ok(QuerySession { ctx })
    }

    /// Plans one read-only SQL statement, with `$name` placeholders bound to `params`.
    ///
    /// DDL and DML (`CREATE`, `COPY`, `INSERT`, ...) are refused: a query must not write into
    /// the lake behind the sync's back. Parameter values become typed literals in the plan,
    /// never SQL text, so no value can change what the statement does.
    pub async fn dataframe(&self, sql: &str, params: Option<ParamValues>) -> Result<DataFrame> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false);
        let df = self
            .ctx
            .sql_with_options(sql, options)
            .await
            .map_err(QueryError::sql)?;
        match params {
            Some(p) => df.with_param_values(p).map_err(QueryError::sql),
            None => Ok(df),
        }
    }

    /// Runs one read-only SQL statement and collects the result (see [`QuerySession::dataframe`]).
    ///
    /// An empty result still carries its schema (one empty batch), so formatted output keeps
    /// its header.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        collect(self.dataframe(sql, None).await?).await
    }

    /// Like [`QuerySession::sql`], with `$name` placeholders bound to `params`.
    pub async fn sql_with_params(
        &self,
        sql: &str,
        params: ParamValues,
    ) -> Result<Vec<RecordBatch>> {
        collect(self.dataframe(sql, Some(params)).await?).await
    }

    /// The DataFusion context, for callers that need more than [`QuerySession::sql`]
    /// (streaming, DataFrame API, registering more tables).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }
}

async fn collect(df: DataFrame) -> Result<Vec<RecordBatch>> {
    let schema = Arc::clone(df.schema().inner());
    let batches = df.collect().await.map_err(QueryError::sql)?;
    if batches.is_empty() {
        Ok(vec![RecordBatch::new_empty(schema)])
    } else {
        Ok(batches)
    }
}

/// Fails on a table file of 0 bytes, which DataFusion's listing drops silently (DuckDB and
/// pyarrow report it): a query must not answer without a file's rows as if they never were.
async fn refuse_empty_files(lake: &Lake, table: Table) -> Result<()> {
    use futures::TryStreamExt;
    let prefix = lake.path(table.name());
    let mut files = lake.store().list(Some(&prefix));
    while let Some(meta) = files.try_next().await.map_err(|source| QueryError::List {
        uri: lake.uri(&prefix),
        source,
    })? {
        if meta.size == 0 && meta.location.extension() == Some("parquet") {
            return Err(QueryError::EmptyFile {
                uri: lake.uri(&meta.location),
            });
        }
    }
    Ok(())
}

fn register(ctx: &SessionContext, lake: &Lake, table: Table) -> Result<()> {
    let def = table.def();
    let url = format!("{}{}/", lake.url(), table.name());
    let err = |source: DataFusionError| QueryError::Register {
        table: table.name(),
        url: url.clone(),
        source,
    };
    let table_url = ListingTableUrl::parse(&url).map_err(err)?;
    // Only Parquet files: stray temp files or notes dropped in the folders are ignored.
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(partition_columns(table));
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(view_types(&def.file_schema()));
    let provider = ListingTable::try_new(config).map_err(err)?;
    ctx.register_table(table.name(), Arc::new(provider))
        .map_err(err)?;
    Ok(())
}

/// The schema SQL sees for `table`: its declared table schema with strings as `Utf8View`.
pub fn sql_schema(table: Table) -> SchemaRef {
    let def = table.def();
    let stored = view_types(&def.file_schema());
    let partitions = partition_columns(table)
        .into_iter()
        .map(|(name, data_type)| Field::new(name, data_type, false));
    let fields: Vec<Field> = stored
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .chain(partitions)
        .collect();
    Arc::new(Schema::new(fields))
}

/// The partition columns (`org_id`, `date`) as SQL sees them: strings as `Utf8View`, like the
/// stored ones. A partition value is one string per file; as a view column each row holds a
/// 16-byte view of that one copy (a `date` fits inside the view), so joins on the partition
/// columns hash and compare views instead of copying and hashing one string per row.
pub fn partition_columns(table: Table) -> Vec<(String, DataType)> {
    table
        .def()
        .partition_columns()
        .into_iter()
        .map(|(name, data_type)| match data_type {
            DataType::Utf8 => (name, DataType::Utf8View),
            other => (name, other),
        })
        .collect()
}

/// The file schema with strings read as `Utf8View`, DataFusion's native string type: Parquet
/// strings decode into views without copying, and the values are the same.
fn view_types(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
