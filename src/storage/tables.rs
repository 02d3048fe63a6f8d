//! Datasets registered as tables, the same way everywhere: listing options from DataFusion's
//! read options (`ParquetReadOptions`, `ArrowReadOptions`) with the session's own table options
//! (strings as Utf8, not Utf8View, whatever wrote the files), and a `ListingTable` over them.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::file_format::options::{
    ArrowReadOptions, ParquetReadOptions, ReadOptions,
};
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;

use crate::error::Result;

/// Parquet files, with `partition_cols` (Hive-style `name=value` folders).
pub fn parquet_options(
    ctx: &SessionContext,
    partition_cols: Vec<(String, DataType)>,
) -> ListingOptions {
    ParquetReadOptions::default()
        .table_partition_cols(partition_cols)
        .to_listing_options(&ctx.copied_config(), ctx.copied_table_options())
}

/// Arrow IPC files ending in `extension`.
pub fn arrow_options(ctx: &SessionContext, extension: &str) -> ListingOptions {
    ArrowReadOptions {
        file_extension: extension,
        ..Default::default()
    }
    .to_listing_options(&ctx.copied_config(), ctx.copied_table_options())
}

/// A table of the files under `urls` (directories end in `/`) whose schema is `schema`.
pub fn listing_table(
    urls: Vec<ListingTableUrl>,
    options: ListingOptions,
    schema: SchemaRef,
) -> Result<Arc<ListingTable>> {
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// A table of the files under `urls`, with the schema they hold.
pub async fn inferred_listing_table(
    ctx: &SessionContext,
    urls: Vec<ListingTableUrl>,
    options: ListingOptions,
) -> Result<Arc<ListingTable>> {
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .infer_schema(&ctx.state())
        .await?;
    Ok(Arc::new(ListingTable::try_new(config)?))
}
