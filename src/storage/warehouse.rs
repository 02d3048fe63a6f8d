//! The warehouse layout: one Delta Lake table per dataset (`WAREHOUSE/TABLE/`, partitioned by
//! `date`, see [`delta`]); which versions of them a job reads ([`Snapshot`]), how they are
//! registered (with their `date` partition column, for pruning) and how their data files are
//! written. What goes into the tables, and when, is `app::convert`'s business. A run's
//! `--partition-by-date` projection uses the same writer with plain `date=` datasets.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Date32Type, Int64Type, SchemaRef};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::calendar::format_date;
use crate::error::{Error, Result};
use crate::input::{schema, TableKind};
use crate::storage::claim::Marker;
use crate::storage::delta::{self, AsOf, DataFile, SnapshotTable};
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

/// Where [`write_by_date`] puts each date's rows.
trait DateSink {
    /// The writer of a new date's file.
    fn open(&mut self, day: i32) -> Result<ColumnParallelWriter>;
    /// The date's file is written: its rows, and the numbers of the input files they came
    /// from (`sourceRow >> 40`; empty when the rows have no sourceRow).
    fn close(&mut self, day: i32, rows: u64, sources: Vec<u32>) -> Result<()>;
}

/// Streams `df`, sorted by its last column `date` (a Date32), into one file per date of
/// `sink`; the files hold `file_schema`, the other columns.
async fn write_by_date<S: DateSink>(
    df: datafusion::dataframe::DataFrame,
    file_schema: SchemaRef,
    sink: &mut S,
) -> Result<()> {
    struct Date {
        day: i32,
        writer: ColumnParallelWriter,
        rows: u64,
        /// Whether each input file (by its number) has rows in this date: a flag per file,
        /// set row by row, as cheap as it gets on convert's path.
        files: Vec<bool>,
    }
    let finish = |date: Date, sink: &mut S| -> Result<()> {
        date.writer.close()?;
        let sources = (0..date.files.len() as u32)
            .filter(|n| date.files[*n as usize])
            .collect();
        sink.close(date.day, date.rows, sources)
    };
    let source_column = file_schema.index_of(schema::SOURCE_ROW).ok();
    let mut stream = df.execute_stream().await?;
    let mut current: Option<Date> = None;
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
                    finish(date, sink)?;
                }
                current = Some(Date {
                    day,
                    writer: sink.open(day)?,
                    rows: 0,
                    files: Vec::new(),
                });
            }
            if let Some(c) = current.as_mut() {
                c.writer.write(&data.slice(start, end - start))?;
                c.rows += (end - start) as u64;
                if let Some(rows) = &source_rows {
                    for i in start..end {
                        let n = (rows.value(i) >> 40) as usize;
                        if n >= c.files.len() {
                            c.files.resize(n + 1, false);
                        }
                        c.files[n] = true;
                    }
                }
            }
            start = end;
        }
    }
    if let Some(date) = current.take() {
        finish(date, sink)?;
    }
    Ok(())
}

fn date_writer(path: &Path, file_schema: &SchemaRef) -> Result<ColumnParallelWriter> {
    // A new file, never one that exists: a data file is written once and only read after.
    let file = std::fs::File::create_new(path).map_err(|e| Error::io(path, e))?;
    ColumnParallelWriter::try_new(file, path, file_schema.clone(), writer_properties())
}

/// Writes a stream sorted by its last column `date` (a Date32) as one `date=YYYY-MM-DD/`
/// dataset per date under `dir`; the files hold `file_schema`, the other columns. The dates
/// are committed, each in one atomic step, once all are written: an error leaves every date
/// as it was. Returns the dates written with their rows.
pub async fn write_partitioned(
    df: datafusion::dataframe::DataFrame,
    dir: &Path,
    file_schema: SchemaRef,
) -> Result<Vec<(String, u64)>> {
    struct Staged<'a> {
        dir: &'a Path,
        file_schema: SchemaRef,
        open: Option<Staging>,
        done: Vec<(Staging, String, u64)>,
    }
    impl DateSink for Staged<'_> {
        fn open(&mut self, day: i32) -> Result<ColumnParallelWriter> {
            let staging = Staging::new(&self.dir.join(format!("date={}", format_date(day))))?;
            let writer = date_writer(&staging.path().join(PART_FILE), &self.file_schema)?;
            self.open = Some(staging);
            Ok(writer)
        }
        fn close(&mut self, day: i32, rows: u64, _: Vec<u32>) -> Result<()> {
            if let Some(staging) = self.open.take() {
                self.done.push((staging, format_date(day), rows));
            }
            Ok(())
        }
    }
    let mut sink = Staged {
        dir,
        file_schema: file_schema.clone(),
        open: None,
        done: Vec::new(),
    };
    write_by_date(df, file_schema, &mut sink).await?;
    let mut written = Vec::new();
    for (staging, date, rows) in sink.done {
        staging.commit_with(&Marker::ours(Vec::new()))?;
        written.push((date, rows));
    }
    Ok(written)
}

/// Writes a stream sorted by its last column `date` (a Date32) as new data files of the Delta
/// table at `dir`, one per date (`date=YYYY-MM-DD/part-RUN-UUID.parquet`, a new name), for a
/// commit to add. Until then no reader sees them.
pub async fn write_data_files(
    df: datafusion::dataframe::DataFrame,
    dir: &Path,
    file_schema: SchemaRef,
    run_id: &str,
) -> Result<Vec<DataFile>> {
    struct Files<'a> {
        dir: &'a Path,
        file_schema: SchemaRef,
        run_id: &'a str,
        open: Option<String>,
        done: Vec<DataFile>,
    }
    impl DateSink for Files<'_> {
        fn open(&mut self, day: i32) -> Result<ColumnParallelWriter> {
            let folder = format!("date={}", format_date(day));
            std::fs::create_dir_all(self.dir.join(&folder))
                .map_err(|e| Error::io(self.dir.join(&folder), e))?;
            let rel = format!(
                "{folder}/part-{}-{}.parquet",
                self.run_id,
                uuid::Uuid::new_v4().simple()
            );
            let writer = date_writer(&self.dir.join(&rel), &self.file_schema)?;
            self.open = Some(rel);
            Ok(writer)
        }
        fn close(&mut self, day: i32, rows: u64, sources: Vec<u32>) -> Result<()> {
            if let Some(rel) = self.open.take() {
                let path = self.dir.join(&rel);
                let size = std::fs::metadata(&path)
                    .map_err(|e| Error::io(&path, e))?
                    .len();
                let has_sources = self.file_schema.index_of(schema::SOURCE_ROW).is_ok();
                self.done.push(DataFile {
                    path: rel,
                    date: day,
                    size,
                    rows,
                    sources: has_sources.then_some(sources),
                });
            }
            Ok(())
        }
    }
    let mut sink = Files {
        dir,
        file_schema: file_schema.clone(),
        run_id,
        open: None,
        done: Vec::new(),
    };
    write_by_date(df, file_schema, &mut sink).await?;
    Ok(sink.done)
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

/// The property of the projection table naming the versions of the input tables it was
/// computed from (JSON: `{"clickstream": 3, "purchases": 3}`).
pub const INPUTS_PROPERTY: &str = "marketing-analytics.inputs";

/// Which state of a warehouse a job reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// As a complete conversion left it (the last one, or the one current at `AsOf`): its
    /// projection, and the input tables at the versions the projection names.
    Converted(AsOf),
    /// The input tables' newest versions: what a conversion computes the projection of.
    Newest,
}

impl Default for Read {
    fn default() -> Self {
        Read::Converted(AsOf::Latest)
    }
}

/// The versions of a warehouse's tables a job reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    pub clickstream: u64,
    pub purchases: u64,
    /// The stored projection's version (none before a conversion stored one).
    #[serde(skip)]
    pub projection: Option<u64>,
}

impl Snapshot {
    /// The versions `read` asks for.
    pub async fn resolve(ctx: &SessionContext, warehouse: &Path, read: Read) -> Result<Snapshot> {
        refuse_old_layout(warehouse)?;
        let as_of = match read {
            Read::Newest => return Snapshot::latest_inputs(ctx, warehouse).await,
            Read::Converted(as_of) => as_of,
        };
        let location = location(warehouse, PROJECTION_DIR);
        let Some(projection) = delta::open(ctx, &location, as_of).await? else {
            if as_of != AsOf::Latest {
                return Err(Error::Config(format!(
                    "{}: no conversion had finished at {as_of:?}",
                    warehouse.display()
                )));
            }
            return Snapshot::latest_inputs(ctx, warehouse).await;
        };
        let properties = delta::properties(&projection)?;
        let Some(text) = properties.get(INPUTS_PROPERTY) else {
            if as_of != AsOf::Latest {
                return Err(Error::Config(format!(
                    "{}: no conversion had finished at {as_of:?} (its projection table was \
                     created, not yet written)",
                    warehouse.display()
                )));
            }
            // Created by a conversion that stopped before its first projection was stored.
            return Snapshot::latest_inputs(ctx, warehouse).await;
        };
        let mut snapshot: Snapshot = serde_json::from_str(text).map_err(|e| Error::BadFile {
            file: location.clone(),
            reason: format!("its property {INPUTS_PROPERTY} is not a pair of versions ({e})"),
        })?;
        snapshot.projection = projection.version();
        Ok(snapshot)
    }

    /// The newest versions of the input tables.
    pub async fn latest_inputs(ctx: &SessionContext, warehouse: &Path) -> Result<Snapshot> {
        let mut versions = [0u64; 2];
        for (i, kind) in [TableKind::Clickstream, TableKind::Purchases]
            .into_iter()
            .enumerate()
        {
            let location = table_dir(warehouse, kind).display().to_string();
            let table = delta::open(ctx, &location, AsOf::Latest)
                .await?
                .ok_or_else(|| not_a_table(&table_dir(warehouse, kind), warehouse))?;
            versions[i] = table.version().unwrap_or(0);
        }
        Ok(Snapshot {
            clickstream: versions[0],
            purchases: versions[1],
            projection: None,
        })
    }

    /// The projection's property naming these input versions.
    pub fn versions_property(&self) -> Result<(String, String)> {
        Ok((INPUTS_PROPERTY.to_string(), serde_json::to_string(self)?))
    }

    /// The version of `kind`'s table.
    pub fn version(&self, kind: TableKind) -> u64 {
        match kind {
            TableKind::Clickstream => self.clickstream,
            TableKind::Purchases => self.purchases,
        }
    }
}

fn location(warehouse: &Path, table: &str) -> String {
    warehouse.join(table).display().to_string()
}

/// The columns of `kind`'s data files (the table adds `date`).
pub fn file_schema(kind: TableKind) -> SchemaRef {
    match kind {
        TableKind::Clickstream => schema::EVENTS.clone(),
        TableKind::Purchases => schema::PURCHASES.clone(),
    }
}

/// Refuses a warehouse an earlier version wrote (a table of `date=` folders, no Delta log),
/// saying what to do.
pub fn refuse_old_layout(warehouse: &Path) -> Result<()> {
    if crate::input::is_url(&warehouse.display().to_string()) {
        return Ok(());
    }
    for table in ["clickstream", "purchases", PROJECTION_DIR] {
        let dir = warehouse.join(table);
        if dir.is_dir() && !dir.join(delta::LOG_DIR).is_dir() {
            return Err(Error::Config(format!(
                "{} was written by an earlier version of marketing-analytics (date folders, no                  Delta log in {}): convert the raw exports again into a new warehouse                  (`marketing-analytics convert --warehouse NEW_DIR`), then remove this one",
                warehouse.display(),
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Registers `kind`'s table of `warehouse` at the version of `snapshot` under `name`, with
/// its `date` partition column (a filter on it reads only its dates' files).
pub async fn register_table(
    ctx: &SessionContext,
    warehouse: &Path,
    kind: TableKind,
    name: &str,
    snapshot: &Snapshot,
) -> Result<()> {
    let dir = table_dir(warehouse, kind);
    let table = delta::open(
        ctx,
        &dir.display().to_string(),
        AsOf::Version(snapshot.version(kind)),
    )
    .await?
    .ok_or_else(|| not_a_table(&dir, warehouse))?;
    let provider = SnapshotTable::new(ctx, &table, file_schema(kind)).await?;
    super::replace_table(ctx, name, Arc::new(provider))
}

/// Registers under `name` the data files of `kind`'s table that one of versions `from` and
/// `to` holds and the other does not: the rows a change between them added or removed (a
/// rewritten file's rows count as both). Returns how many files that is; `None` when version
/// `from` cannot be read any more.
pub async fn register_changes(
    ctx: &SessionContext,
    warehouse: &Path,
    kind: TableKind,
    name: &str,
    from: u64,
    to: u64,
) -> Result<Option<usize>> {
    let dir = table_dir(warehouse, kind);
    let location = dir.display().to_string();
    let Ok(Some(before)) = delta::open(ctx, &location, AsOf::Version(from)).await else {
        return Ok(None);
    };
    let after = delta::open(ctx, &location, AsOf::Version(to))
        .await?
        .ok_or_else(|| not_a_table(&dir, warehouse))?;
    let (old, new) = (delta::files(&before).await?, delta::files(&after).await?);
    let paths =
        |files: &[DataFile]| -> BTreeSet<String> { files.iter().map(|f| f.path.clone()).collect() };
    let (old_paths, new_paths) = (paths(&old), paths(&new));
    let mut changed: Vec<DataFile> = old
        .into_iter()
        .filter(|f| !new_paths.contains(&f.path))
        .collect();
    changed.extend(new.into_iter().filter(|f| !old_paths.contains(&f.path)));
    let n = changed.len();
    let provider = SnapshotTable::of(ctx, &after, file_schema(kind), changed)?;
    super::replace_table(ctx, name, Arc::new(provider))?;
    Ok(Some(n))
}

/// Registers the stored projection of `snapshot` (its files' columns: `schema`) under `name`;
/// `false` when there is none.
pub async fn register_projection(
    ctx: &SessionContext,
    warehouse: &Path,
    name: &str,
    snapshot: &Snapshot,
    schema: SchemaRef,
) -> Result<bool> {
    let Some(version) = snapshot.projection else {
        return Ok(false);
    };
    let location = location(warehouse, PROJECTION_DIR);
    let Some(table) = delta::open(ctx, &location, AsOf::Version(version)).await? else {
        return Ok(false);
    };
    let provider = SnapshotTable::new(ctx, &table, schema).await?;
    super::replace_table(ctx, name, Arc::new(provider))?;
    Ok(true)
}

/// Writes `file`'s rows but those of the source files `drop` (by number) as a new data file
/// of the same date (`part-NAME.parquet`); `None` when no row is left.
pub fn rewrite_without(
    dir: &Path,
    file: &DataFile,
    drop: &BTreeSet<u32>,
    file_schema: &SchemaRef,
    name: &str,
) -> Result<Option<DataFile>> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let path = dir.join(&file.path);
    let reader = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
    let batches = ParquetRecordBatchReaderBuilder::try_new(reader)?.build()?;
    let source = file_schema.index_of(schema::SOURCE_ROW)?;
    let rel = format!(
        "date={}/part-{name}-{}.parquet",
        format_date(file.date),
        uuid::Uuid::new_v4().simple()
    );
    let out = dir.join(&rel);
    let mut writer: Option<ColumnParallelWriter> = None;
    let mut rows = 0u64;
    let mut kept_sources = BTreeSet::new();
    for batch in batches {
        let batch = batch?;
        let numbers = batch.column(source).as_primitive::<Int64Type>();
        let keep: datafusion::arrow::array::BooleanArray = numbers
            .iter()
            .map(|v| Some(v.is_some_and(|v| !drop.contains(&((v >> 40) as u32)))))
            .collect();
        let kept = datafusion::arrow::compute::filter_record_batch(&batch, &keep)?;
        if kept.num_rows() == 0 {
            continue;
        }
        for v in kept.column(source).as_primitive::<Int64Type>().values() {
            kept_sources.insert((v >> 40) as u32);
        }
        if writer.is_none() {
            writer = Some(date_writer(&out, file_schema)?);
        }
        if let Some(w) = writer.as_mut() {
            w.write(&RecordBatch::try_new(
                file_schema.clone(),
                kept.columns().to_vec(),
            )?)?;
        }
        rows += kept.num_rows() as u64;
    }
    let Some(writer) = writer else {
        return Ok(None);
    };
    writer.close()?;
    let size = std::fs::metadata(&out)
        .map_err(|e| Error::io(&out, e))?
        .len();
    Ok(Some(DataFile {
        path: rel,
        date: file.date,
        size,
        rows,
        sources: Some(kept_sources.into_iter().collect()),
    }))
}
