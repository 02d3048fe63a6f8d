//! The warehouse layout: one Hive-style folder per table, `WAREHOUSE/TABLE/date=YYYY-MM-DD/`,
//! each date a dataset of its own committed in one atomic step; how its tables are listed,
//! registered (with their `date` partition column, for pruning) and written. What goes into
//! the tables, and when, is `app::convert`'s business.

use std::path::{Path, PathBuf};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Date32Type, Int64Type, SchemaRef};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::error::DataFusionError;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};

use crate::calendar::format_date;
use crate::error::{Error, Result};
use crate::input::{schema, TableKind};
use crate::storage::claim::Marker;
use crate::storage::output::{ColumnParallelWriter, Staging, PART_FILE};

/// Folder of each table in a warehouse.
pub fn table_dir(warehouse: &Path, kind: TableKind) -> PathBuf {
    warehouse.join(kind.name())
}

/// Folder of the projection a conversion stores.
pub const PROJECTION_DIR: &str = "projection";

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
        let marker = Marker::read(&partition.join(crate::storage::output::SUCCESS_MARKER));
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

pub fn not_a_table(dir: &Path, warehouse: &Path) -> Error {
    Error::Config(format!(
        "{} is not a warehouse table: run `marketing-analytics convert --warehouse {}` first",
        dir.display(),
        warehouse.display()
    ))
}

/// The URL of a table's folder: an object store's (s3://…, checked when first listed), or a
/// local directory's (`None` if it does not exist).
pub fn table_url(dir: &Path) -> Result<Option<ListingTableUrl>> {
    let location = dir.display().to_string();
    if crate::input::is_url(&location) {
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
pub fn register_listing(
    ctx: &SessionContext,
    url: ListingTableUrl,
    file_schema: SchemaRef,
    name: &str,
) -> Result<()> {
    let options = super::tables::parquet_options(ctx, vec![("date".to_string(), DataType::Utf8)]);
    super::replace_table(
        ctx,
        name,
        super::tables::listing_table(vec![url], options, file_schema)?,
    )
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
