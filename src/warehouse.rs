//! The warehouse: raw exports converted once into date-partitioned Parquet, then queried for
//! any period reading only the partitions it needs.
//!
//! Layout (Hive style): `WAREHOUSE/clickstream/date=YYYY-MM-DD/part-00000.parquet` partitioned by
//! the date of eventTime and sorted by userId, eventTime inside a partition;
//! `WAREHOUSE/purchases/date=YYYY-MM-DD/part-00000.parquet` partitioned by the date of
//! purchaseTime and sorted by purchaseTime. Columns are the decoded inputs' (see
//! `input::schema`): typed timestamps, billingCost as decimal, isConfirmed as bool, and the
//! attributes parsed into campaignId, channelId and purchaseId next to the raw text. Row groups
//! carry min/max statistics. A conversion replaces exactly the dates its input touches, each in
//! one atomic step, and leaves the other dates alone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Date32Type, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use tracing::{info, info_span, Instrument};

use crate::context::session_context_with_limit;
use crate::error::{Error, Result};
use crate::input::values::civil_from_days;
use crate::input::{resolve, schema, BadRows, TableKind};
use crate::jobs::attribution;
use crate::output::{ColumnParallelWriter, Staging, PART_FILE};
use crate::pipeline::{layout, Settings};

/// Folder of each table in a warehouse.
pub fn table_dir(warehouse: &Path, kind: TableKind) -> PathBuf {
    warehouse.join(kind.name())
}

/// Rows per row group: small enough for statistics to skip most of a partition in a narrow
/// query, large enough to compress well.
const ROW_GROUP_ROWS: usize = 128 * 1024;

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by("marketing-analytics".to_string())
        .build()
}

/// What a conversion wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConvertReport {
    /// Dates written per table, with their rows.
    pub clickstream_dates: Vec<(String, u64)>,
    pub purchases_dates: Vec<(String, u64)>,
    pub quarantined: u64,
}

/// `YYYY-MM-DD` of a day number since 1970-01-01.
pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Day number of a `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Result<i32> {
    crate::input::values::parse_timestamp_micros(format!("{} 00:00:00", s.trim()).as_bytes())
        .map(|us| us.div_euclid(86_400_000_000) as i32)
        .ok_or_else(|| Error::Config(format!("{s:?} is not a date YYYY-MM-DD")))
}

/// Converts raw exports into the warehouse, replacing the dates they touch.
pub async fn convert(
    settings: &Settings,
    clickstream: &str,
    purchases: &str,
    warehouse: &Path,
) -> Result<ConvertReport> {
    let span = info_span!("job", name = %"convert");
    async {
        let inputs = attribution::Inputs {
            clickstream: resolve(clickstream, "clickstream", settings.delimiter)?,
            purchases: resolve(purchases, "purchases", settings.delimiter)?,
        };
        let ctx = session_context_with_limit(settings.threads, settings.memory_limit)?;
        let quarantine = (settings.on_bad_rows == BadRows::Quarantine)
            .then(|| warehouse.join(layout::REJECTED).join(&settings.run_id));
        let extracted =
            attribution::extract(&ctx, &inputs, settings.threads, None, quarantine.as_deref())?;
        let mut report = ConvertReport::default();
        for (kind, order) in [
            (
                TableKind::Clickstream,
                "userId, eventTime, eventId, sourceRow",
            ),
            (TableKind::Purchases, "purchaseTime, purchaseId, sourceRow"),
        ] {
            let (table, time) = match kind {
                TableKind::Clickstream => ("events", "eventTime"),
                TableKind::Purchases => ("purchases", "purchaseTime"),
            };
            let sql = format!(
                "SELECT *, CAST({time} AS DATE) AS date FROM {table} ORDER BY date, {order}"
            );
            let df = ctx.sql(&sql).await?;
            let file_schema = match kind {
                TableKind::Clickstream => schema::EVENTS.clone(),
                TableKind::Purchases => schema::PURCHASES.clone(),
            };
            let dates = write_partitioned(df, &table_dir(warehouse, kind), file_schema)
                .await
                .map_err(Error::unwrap_datafusion)?;
            info!(table = kind.name(), dates = dates.len(), "converted");
            match kind {
                TableKind::Clickstream => report.clickstream_dates = dates,
                TableKind::Purchases => report.purchases_dates = dates,
            }
        }
        for ingest in [&extracted.clickstream, &extracted.purchases] {
            if let Some(r) = &ingest.rejects {
                r.finish()?;
            }
            report.quarantined += ingest.stats.total().quarantined;
        }
        Ok(report)
    }
    .instrument(span)
    .await
}

/// Writes a stream sorted by its last column `date` (a Date32) as one `date=YYYY-MM-DD/`
/// dataset per date under `dir`, each committed atomically; the files hold `file_schema`, the
/// other columns. Returns the dates written with their rows.
pub async fn write_partitioned(
    df: datafusion::dataframe::DataFrame,
    dir: &Path,
    file_schema: SchemaRef,
) -> Result<Vec<(String, u64)>> {
    let mut stream = df.execute_stream().await?;
    let mut current: Option<(i32, Staging, ColumnParallelWriter, u64)> = None;
    let mut written = Vec::new();
    let finish = |(day, staging, writer, rows): (i32, Staging, ColumnParallelWriter, u64),
                  written: &mut Vec<(String, u64)>|
     -> Result<()> {
        writer.close()?;
        staging.commit()?;
        written.push((format_date(day), rows));
        Ok(())
    };
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let dates = batch
            .column(batch.num_columns() - 1)
            .as_primitive::<Date32Type>()
            .clone();
        let data = RecordBatch::try_new(
            file_schema.clone(),
            batch.columns()[..batch.num_columns() - 1].to_vec(),
        )?;
        let mut start = 0;
        while start < data.num_rows() {
            let day = dates.value(start);
            let mut end = start + 1;
            while end < data.num_rows() && dates.value(end) == day {
                end += 1;
            }
            if current.as_ref().is_none_or(|c| c.0 != day) {
                if let Some(done) = current.take() {
                    finish(done, &mut written)?;
                }
                let staging = Staging::new(&dir.join(format!("date={}", format_date(day))))?;
                let path = staging.path().join(PART_FILE);
                let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
                let writer = ColumnParallelWriter::try_new(
                    file,
                    &path,
                    file_schema.clone(),
                    writer_properties(),
                )?;
                current = Some((day, staging, writer, 0));
            }
            if let Some(c) = current.as_mut() {
                c.2.write(&data.slice(start, end - start))?;
                c.3 += (end - start) as u64;
            }
            start = end;
        }
    }
    if let Some(done) = current.take() {
        finish(done, &mut written)?;
    }
    Ok(written)
}

fn local_table_url(dir: &Path, warehouse: &Path) -> Result<ListingTableUrl> {
    if !dir.is_dir() {
        return Err(Error::Config(format!(
            "{} is not a warehouse table: run `marketing-analytics convert --warehouse {}` first",
            dir.display(),
            warehouse.display()
        )));
    }
    Ok(ListingTableUrl::parse(format!(
        "{}/",
        dir.canonicalize().map_err(|e| Error::io(dir, e))?.display()
    ))?)
}

/// Registers a warehouse table under `name`, with its `date` partition column. The warehouse
/// is a local directory or an object-store URL such as `s3://bucket/warehouse`.
pub async fn register_table(
    ctx: &SessionContext,
    warehouse: &Path,
    kind: TableKind,
    name: &str,
) -> Result<()> {
    let dir = table_dir(warehouse, kind);
    let location = dir.display().to_string();
    let url = if crate::scratch::is_url(&location) {
        // An object store (s3://…): checked when the table is first listed.
        ListingTableUrl::parse(format!("{}/", location.trim_end_matches('/')))?
    } else {
        local_table_url(&dir, warehouse)?
    };
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![("date".to_string(), DataType::Utf8)]);
    let file_schema = match kind {
        TableKind::Clickstream => schema::EVENTS.clone(),
        TableKind::Purchases => schema::PURCHASES.clone(),
    };
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(file_schema);
    attribution::replace_table(ctx, name, Arc::new(ListingTable::try_new(config)?))
}
