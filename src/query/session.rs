//! A DataFusion session with the lake's tables registered.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

use super::error::{QueryError, Result};
use crate::lake::{Lake, Table};

/// SQL over one lake: `tasks`, `captures` and `manifest`, each with its stored columns plus the
/// partition columns `org_id` and `date` (`'YYYY-MM-DD'`, UTC). Filters on those two skip
/// whole folders.
pub struct QuerySession {
    ctx: SessionContext,
}

impl QuerySession {
    /// Registers the lake's object store and its three tables.
    ///
    /// Schemas come from `schemas/`, not from the files, so a table whose folder does not exist
    /// yet is simply empty, and files never disagree with the declared types.
    pub async fn open(lake: &Lake) -> Result<QuerySession> {
        let config = SessionConfig::new().with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        ctx.register_object_store(lake.url(), Arc::clone(lake.store()));
        for table in Table::ALL {
            register(&ctx, lake, table)?;
        }
        tracing::debug!(lake = %lake.url(), "query session ready");
        Ok(QuerySession { ctx })
    }

    /// Runs one read-only SQL statement and collects the result.
    ///
    /// DDL and DML (`CREATE`, `COPY`, `INSERT`, ...) are refused: a query must not write into
    /// the lake behind the sync's back. An empty result still carries its schema (one empty
    /// batch), so formatted output keeps its header.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false);
        let df = self
            .ctx
            .sql_with_options(sql, options)
            .await
            .map_err(QueryError::Sql)?;
        let schema = Arc::clone(df.schema().inner());
        let batches = df.collect().await.map_err(QueryError::Sql)?;
        if batches.is_empty() {
            Ok(vec![RecordBatch::new_empty(schema)])
        } else {
            Ok(batches)
        }
    }

    /// The DataFusion context, for callers that need more than [`QuerySession::sql`]
    /// (streaming, DataFrame API, registering more tables).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }
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
        .with_table_partition_cols(def.partition_columns());
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(def.file_schema());
    let provider = ListingTable::try_new(config).map_err(err)?;
    ctx.register_table(table.name(), Arc::new(provider))
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
