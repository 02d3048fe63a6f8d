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
//!
//! A conversion also stores the attribution projection of everything the warehouse then holds
//! (`WAREHOUSE/projection/date=YYYY-MM-DD/`, by the date of purchaseTime, sorted by
//! purchaseId), with the list of partition files it was computed from (in its `_SUCCESS`). A
//! period then reads only its dates of that projection ([`register_stored_projection`]):
//! exactly the full pipeline filtered to the period, without sessionizing again. Should the
//! partitions no longer be the listed ones (a conversion that did not finish, files copied in
//! by hand), the period computes the projection from the partitions instead, and says so.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Date32Type, Int64Type, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::object_store::ObjectStoreExt;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::prelude::{cast, col, ident, lit, SessionContext};
use futures::{StreamExt, TryStreamExt};
use tracing::{info, info_span, Instrument};

use crate::claim::{claim, Destination, Input, Marker};
use crate::context::session_context_with_limit;
use crate::error::{Error, Result};
use crate::input::values::civil_from_days;
use crate::input::{resolve, schema, BadRows, TableKind};
use crate::jobs::attribution;
use crate::output::{ColumnParallelWriter, Staging, PART_FILE};
use crate::pipeline::{layout, Settings};
use crate::scratch::Scratch;

/// Folder of each table in a warehouse.
pub fn table_dir(warehouse: &Path, kind: TableKind) -> PathBuf {
    warehouse.join(kind.name())
}

/// Folder of the projection a conversion stores.
pub const PROJECTION_DIR: &str = "projection";

/// The partition files a stored projection was computed from: per table, each file's path
/// under the table's folder and its size (sizes survive a copy of the warehouse to an object
/// store; modification times do not).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProjectionInputs {
    pub clickstream: Vec<(String, u64)>,
    pub purchases: Vec<(String, u64)>,
}

impl ProjectionInputs {
    /// The partition files `warehouse` holds now.
    pub async fn list(ctx: &SessionContext, warehouse: &Path) -> Result<Self> {
        Ok(ProjectionInputs {
            clickstream: table_files(ctx, warehouse, TableKind::Clickstream).await?,
            purchases: table_files(ctx, warehouse, TableKind::Purchases).await?,
        })
    }
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
    /// Rows of the projection stored for the whole warehouse.
    pub projection_rows: u64,
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
        let claim = claim(
            warehouse,
            Destination::Warehouse,
            &Input::exports(clickstream, purchases),
            settings.overwrite,
        )?;
        let settings = &settings.claimed(&claim);
        // What a killed conversion left: its date and projection stagings, its scratch.
        for dir in [
            warehouse.to_path_buf(),
            table_dir(warehouse, TableKind::Clickstream),
            table_dir(warehouse, TableKind::Purchases),
        ] {
            crate::output::reclaim_all_in(&dir)?;
        }
        let inputs = attribution::Inputs {
            clickstream: resolve(clickstream, "clickstream", settings.delimiter)?,
            purchases: resolve(purchases, "purchases", settings.delimiter)?,
        };
        let absolute = |files: &[crate::input::InputFile]| -> Result<Vec<String>> {
            files
                .iter()
                .map(|f| Ok(crate::claim::absolute(&f.path)?.display().to_string()))
                .collect()
        };
        let clickstream_files = absolute(&inputs.clickstream)?;
        let purchases_files = absolute(&inputs.purchases)?;
        let ctx = session_context_with_limit(
            settings.threads,
            settings.memory_limit,
            settings.spill_dir.as_deref(),
        )?;
        let quarantine = (settings.on_bad_rows == BadRows::Quarantine)
            .then(|| warehouse.join(layout::REJECTED).join(&settings.run_id));
        let extracted =
            attribution::extract(&ctx, &inputs, settings.threads, None, quarantine.as_deref())?;
        // From the first partition replaced until the new projection is in place, the stored
        // one no longer matches the partitions: without its list of inputs no period reads it.
        forget_projection_inputs(warehouse)?;
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
            let files = match kind {
                TableKind::Clickstream => &clickstream_files,
                TableKind::Purchases => &purchases_files,
            };
            let ingest = match kind {
                TableKind::Clickstream => &extracted.clickstream,
                TableKind::Purchases => &extracted.purchases,
            };
            let limit = || ingest.settle_bad_rows(settings.max_bad_rows);
            let sources = DateSources {
                table: kind.name(),
                files,
                replace_dates: settings.replace_dates,
                before_commit: &limit,
            };
            let dates =
                write_partitioned(df, &table_dir(warehouse, kind), file_schema, Some(&sources))
                    .await
                    .map_err(Error::unwrap_datafusion)?;
            info!(table = kind.name(), dates = dates.len(), "converted");
            match kind {
                TableKind::Clickstream => report.clickstream_dates = dates,
                TableKind::Purchases => report.purchases_dates = dates,
            }
        }
        // Each table's rejects were finished before its dates were committed.
        for ingest in [&extracted.clickstream, &extracted.purchases] {
            report.quarantined += ingest.stats.total().quarantined;
        }
        drop(ctx);
        report.projection_rows = store_projection(settings, warehouse).await?;
        info!(rows = report.projection_rows, "stored the projection");
        // The conversion's summary, in the warehouse's marker: what it read and wrote.
        let marker_path = warehouse.join(crate::claim::WAREHOUSE_MARKER);
        let marker = Marker::read(&marker_path).unwrap_or_else(|| Marker::ours(Vec::new()));
        let input_files = crate::summary::InputFiles::new(
            &extracted.clickstream.stats,
            &extracted.purchases.stats,
        );
        Marker {
            summary: Some(serde_json::json!({
                "last_conversion": {
                    "run_id": settings.run_id,
                    "input_files": input_files,
                    "written": report,
                }
            })),
            ..marker
        }
        .replace(&marker_path)?;
        Ok(report)
    }
    .instrument(span)
    .await
}

/// Computes the projection of everything `warehouse` holds and replaces its stored projection
/// with it, in one atomic step, beside the list of the partition files it read. Returns its
/// rows.
async fn store_projection(settings: &Settings, warehouse: &Path) -> Result<u64> {
    use crate::period::{register_period_inputs, Period, Source};
    let ctx = session_context_with_limit(
        settings.threads,
        settings.memory_limit,
        settings.spill_dir.as_deref(),
    )?;
    let tables = [TableKind::Clickstream, TableKind::Purchases].map(|k| table_dir(warehouse, k));
    if let Some(missing) = tables.iter().find(|dir| !dir.is_dir()) {
        // Exports without a single row of one table: there is nothing to attribute, and a
        // period would say the table is missing.
        info!(missing = %missing.display(), "no projection stored");
        return Ok(0);
    }
    let inputs = ProjectionInputs::list(&ctx, warehouse).await?;
    let dest = warehouse.join(PROJECTION_DIR);
    let scratch = Scratch::new(settings.scratch.as_deref(), &dest, &ctx)?;
    let staging = Staging::new(&dest)?;
    let outcome = async {
        let source = Source::Warehouse(warehouse.to_path_buf());
        register_period_inputs(&ctx, settings, &source, &Period::all(), None).await?;
        let result = attribution::transform_with(
            &ctx,
            settings.engine,
            &crate::pipeline::materialize(settings, &scratch),
            crate::pipeline::dedup(settings),
        )
        .await?;
        let rows = write_projection_by_date(result.projection, staging.path()).await?;
        Ok::<_, Error>(rows)
    }
    .await;
    let removed = scratch.remove().await;
    let rows = outcome.map_err(Error::unwrap_datafusion)?;
    removed?;
    staging.commit_with(&Marker {
        inputs: Some(serde_json::to_value(&inputs)?),
        ..Marker::ours(Vec::new())
    })?;
    Ok(rows)
}

/// Takes the list of inputs out of the stored projection's marker: until a conversion stores
/// a new projection, no period reads the old one.
pub fn forget_projection_inputs(warehouse: &Path) -> Result<()> {
    let marker = warehouse
        .join(PROJECTION_DIR)
        .join(crate::output::SUCCESS_MARKER);
    match Marker::read(&marker) {
        Some(m) if m.inputs.is_some() => Marker { inputs: None, ..m }.replace(&marker),
        _ => Ok(()),
    }
}

/// Writes a projection (schema `schema::PROJECTION`) as `date=YYYY-MM-DD/` partitions of
/// purchaseTime under `dir`, each sorted by purchaseId; returns its rows.
pub async fn write_projection_by_date(
    projection: datafusion::dataframe::DataFrame,
    dir: &Path,
) -> Result<u64> {
    let df = projection
        .with_column("date", cast(ident("purchaseTime"), DataType::Date32))?
        .sort(vec![
            ident("date").sort(true, false),
            ident("purchaseId").sort(true, false),
        ])?;
    let dates = write_partitioned(df, dir, schema::PROJECTION.clone(), None).await?;
    Ok(dates.iter().map(|(_, rows)| rows).sum())
}

/// Registers, as table `projection`, the dates of `period` of the projection a conversion
/// stored in `warehouse`, and returns `true`; or returns `false` (and says why) when there is
/// none or it was computed from other partition files than the warehouse holds now.
pub async fn register_stored_projection(
    ctx: &SessionContext,
    warehouse: &Path,
    period: &crate::period::Period,
) -> Result<bool> {
    let dir = warehouse.join(PROJECTION_DIR);
    let Some(url) = table_url(&dir)? else {
        info!(warehouse = %warehouse.display(), "no stored projection: computing it from the partitions (a conversion stores one)");
        return Ok(false);
    };
    let store = ctx.runtime_env().object_store(&url)?;
    let marker = match store
        .get(&url.prefix().clone().join(crate::output::SUCCESS_MARKER))
        .await
    {
        Ok(got) => got.bytes().await.map_err(DataFusionError::from)?,
        Err(datafusion::object_store::Error::NotFound { .. }) => {
            info!(warehouse = %warehouse.display(), "the stored projection has no _SUCCESS (a conversion did not finish): computing the projection from the partitions");
            return Ok(false);
        }
        Err(e) => return Err(DataFusionError::from(e).into()),
    };
    let unreadable = |e: String| {
        Error::Config(format!(
            "{}/_SUCCESS: {e}. Run `marketing-analytics convert` again to rewrite it",
            dir.display()
        ))
    };
    let marker: Marker = serde_json::from_slice(&marker).map_err(|e| unreadable(e.to_string()))?;
    let Some(listed) = marker.inputs else {
        info!(warehouse = %warehouse.display(), "the stored projection lists no inputs (a conversion did not finish, or an older version wrote it): computing the projection from the partitions");
        return Ok(false);
    };
    let listed: ProjectionInputs =
        serde_json::from_value(listed).map_err(|e| unreadable(e.to_string()))?;
    let now = ProjectionInputs::list(ctx, warehouse).await?;
    if listed != now {
        tracing::warn!(
            warehouse = %warehouse.display(),
            "the stored projection was computed from other partition files than the warehouse \
             holds now: computing the projection from the partitions (convert again to store \
             an up-to-date one)"
        );
        return Ok(false);
    }
    const STORED: &str = "stored_projection";
    register_listing(ctx, url, schema::PROJECTION.clone(), STORED)?;
    let columns: Vec<_> = schema::PROJECTION
        .fields()
        .iter()
        .map(|f| ident(f.name()))
        .collect();
    let rows = ctx
        .table(STORED)
        .await?
        .filter(
            col("date")
                .gt_eq(lit(format_date(period.from)))
                .and(col("date").lt_eq(lit(format_date(period.to)))),
        )?
        .select(columns)?;
    attribution::replace_table(ctx, crate::jobs::tables::PROJECTION, rows.into_view())?;
    info!(period = %period.describe(), "reading the stored projection");
    Ok(true)
}

/// The Parquet files of a warehouse table (a local directory or an object store URL), as
/// (path under the table's folder, size), sorted; an error naming `warehouse` when a local
/// table's folder does not exist.
pub async fn table_files(
    ctx: &SessionContext,
    warehouse: &Path,
    kind: TableKind,
) -> Result<Vec<(String, u64)>> {
    let dir = table_dir(warehouse, kind);
    let Some(url) = table_url(&dir)? else {
        return Err(not_a_table(&dir, warehouse));
    };
    let store = ctx.runtime_env().object_store(&url)?;
    let prefix = url.prefix().as_ref().to_string();
    let mut files: Vec<(String, u64)> = store
        .list(Some(url.prefix()))
        .map_ok(|meta| {
            let path = meta.location.as_ref();
            let under = path.strip_prefix(prefix.as_str()).unwrap_or(path);
            (under.trim_start_matches('/').to_string(), meta.size)
        })
        .try_collect::<Vec<_>>()
        .await
        .map_err(DataFusionError::from)?
        .into_iter()
        // Staging directories of a conversion under way or killed are hidden.
        .filter(|(path, _)| {
            path.ends_with(".parquet") && !path.split('/').any(|part| part.starts_with('.'))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The input files of a conversion, for the partitions' markers and the check that a date
/// replaced holds no rows of other files.
pub struct DateSources<'a> {
    /// The table, in messages.
    pub table: &'a str,
    /// Absolute path of each input file, by its number in the input set (`sourceRow >> 40`).
    pub files: &'a [String],
    /// Replace dates holding rows of other files all the same (`--replace-dates`).
    pub replace_dates: bool,
    /// Run once every date is written, before any is committed (the bad-row limit).
    pub before_commit: &'a (dyn Fn() -> Result<()> + Sync),
}

impl DateSources<'_> {
    /// Refuses to replace `partition` when it holds rows of files not in this conversion
    /// (or of files no marker names: written by hand or by an older version).
    fn check(&self, partition: &Path) -> Result<()> {
        if self.replace_dates || !partition.exists() {
            return Ok(());
        }
        let marker = Marker::read(&partition.join(crate::output::SUCCESS_MARKER));
        let others: Vec<&String> = match &marker {
            Some(m) => m
                .sources
                .iter()
                .filter(|s| !self.files.contains(s))
                .collect(),
            None => Vec::new(),
        };
        if marker.is_some() && others.is_empty() {
            return Ok(());
        }
        let held = match others.as_slice() {
            [] => "rows of files it does not name (no marker of ours)".to_string(),
            [one] => format!("rows of {one}, which this conversion does not include"),
            [one, rest @ ..] => format!(
                "rows of {one} and {} more file(s) this conversion does not include",
                rest.len()
            ),
        };
        Err(Error::Config(format!(
            "{}: this {} date holds {held}; replacing it would drop them. Convert those files \
             together with these, or give --replace-dates to replace every date these files \
             touch with their rows only",
            partition.display(),
            self.table
        )))
    }
}

/// Writes a stream sorted by its last column `date` (a Date32) as one `date=YYYY-MM-DD/`
/// dataset per date under `dir`; the files hold `file_schema`, the other columns. With
/// `sources`, each date's marker lists the input files its rows came from, and a date that
/// holds rows of other files is not replaced (see [`DateSources`]). The dates are committed,
/// each in one atomic step, once all are written: an error leaves every date as it was.
/// Returns the dates written with their rows.
pub async fn write_partitioned(
    df: datafusion::dataframe::DataFrame,
    dir: &Path,
    file_schema: SchemaRef,
    sources: Option<&DateSources<'_>>,
) -> Result<Vec<(String, u64)>> {
    struct Date {
        day: i32,
        staging: Staging,
        writer: ColumnParallelWriter,
        rows: u64,
        /// Whether each input file (by its number) has rows in this date: a flag per file,
        /// set row by row, as cheap as it gets on convert's path.
        files: Vec<bool>,
    }
    // Only a conversion records the files of its dates.
    let source_column = sources.and_then(|_| file_schema.index_of(schema::SOURCE_ROW).ok());
    let file_count = sources.map_or(0, |s| s.files.len());
    let mut stream = df.execute_stream().await?;
    let mut current: Option<Date> = None;
    let mut done: Vec<(Staging, Marker, String, u64)> = Vec::new();
    let finish = |date: Date, done: &mut Vec<(Staging, Marker, String, u64)>| -> Result<()> {
        date.writer.close()?;
        let files = sources
            .map(|s| {
                date.files
                    .iter()
                    .zip(s.files)
                    .filter(|(has, _)| **has)
                    .map(|(_, file)| file.clone())
                    .collect()
            })
            .unwrap_or_default();
        done.push((
            date.staging,
            Marker::ours(files),
            format_date(date.day),
            date.rows,
        ));
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
        let source_rows = source_column
            .and_then(|i| data.column(i).as_primitive_opt::<Int64Type>())
            .cloned();
        let mut start = 0;
        while start < data.num_rows() {
            let day = dates.value(start);
            let mut end = start + 1;
            while end < data.num_rows() && dates.value(end) == day {
                end += 1;
            }
            if current.as_ref().is_none_or(|c| c.day != day) {
                if let Some(date) = current.take() {
                    finish(date, &mut done)?;
                }
                let dest = dir.join(format!("date={}", format_date(day)));
                if let Some(s) = sources {
                    s.check(&dest)?;
                }
                let staging = Staging::new(&dest)?;
                let path = staging.path().join(PART_FILE);
                let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
                let writer = ColumnParallelWriter::try_new(
                    file,
                    &path,
                    file_schema.clone(),
                    writer_properties(),
                )?;
                current = Some(Date {
                    day,
                    staging,
                    writer,
                    rows: 0,
                    files: vec![false; file_count],
                });
            }
            if let Some(c) = current.as_mut() {
                c.writer.write(&data.slice(start, end - start))?;
                c.rows += (end - start) as u64;
                if let Some(rows) = &source_rows {
                    for i in start..end {
                        if let Some(has) = c.files.get_mut((rows.value(i) >> 40) as usize) {
                            *has = true;
                        }
                    }
                }
            }
            start = end;
        }
    }
    if let Some(date) = current.take() {
        finish(date, &mut done)?;
    }
    if let Some(s) = sources {
        (s.before_commit)()?;
    }
    let mut written = Vec::new();
    for (staging, marker, date, rows) in done {
        staging.commit_with(&marker)?;
        written.push((date, rows));
    }
    Ok(written)
}

fn not_a_table(dir: &Path, warehouse: &Path) -> Error {
    Error::Config(format!(
        "{} is not a warehouse table: run `marketing-analytics convert --warehouse {}` first",
        dir.display(),
        warehouse.display()
    ))
}

/// The URL of a table's folder: an object store's (s3://…, checked when first listed), or a
/// local directory's (`None` if it does not exist).
fn table_url(dir: &Path) -> Result<Option<ListingTableUrl>> {
    let location = dir.display().to_string();
    if crate::scratch::is_url(&location) {
        return Ok(Some(ListingTableUrl::parse(format!(
            "{}/",
            location.trim_end_matches('/')
        ))?));
    }
    if !dir.is_dir() {
        return Ok(None);
    }
    Ok(Some(ListingTableUrl::parse(format!(
        "{}/",
        dir.canonicalize().map_err(|e| Error::io(dir, e))?.display()
    ))?))
}

/// Registers the Parquet files under `url`, with their `date` partition column, as `name`.
fn register_listing(
    ctx: &SessionContext,
    url: ListingTableUrl,
    file_schema: SchemaRef,
    name: &str,
) -> Result<()> {
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![("date".to_string(), DataType::Utf8)]);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(file_schema);
    attribution::replace_table(ctx, name, Arc::new(ListingTable::try_new(config)?))
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
    let url = table_url(&dir)?.ok_or_else(|| not_a_table(&dir, warehouse))?;
    let file_schema = match kind {
        TableKind::Clickstream => schema::EVENTS.clone(),
        TableKind::Purchases => schema::PURCHASES.clone(),
    };
    register_listing(ctx, url, file_schema, name)
}
