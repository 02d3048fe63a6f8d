//! Input tables for DataFusion: files decoded in parallel, streamed as Arrow batches.
//!
//! Each table is a [`StreamingTable`] with one partition per group of files; a partition
//! decodes its files one after the other on a blocking thread and hands batches to DataFusion
//! through a bounded channel, so memory stays flat however large the input is. Row counts per
//! file are recorded in [`IngestStats`] for the run summary.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::TableProvider;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use datafusion::physical_plan::streaming::PartitionStream;
use indicatif::ProgressBar;

use super::decode::{BatchBuilder, ColumnMap, RowFields, TableKind};
use super::files::{open_text, FileFormat, InputFile};
use super::schema;
use crate::error::{to_datafusion, Error, Result};

/// Rows per Arrow batch handed to DataFusion.
pub const BATCH_ROWS: usize = 16 * 1024;

/// What was read from one input file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FileStats {
    /// Data rows (the header excluded).
    pub rows: u64,
    /// Clickstream rows whose eventType is `purchase`.
    #[serde(skip_serializing_if = "is_zero")]
    pub purchase_type_rows: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Rows read from each input file, keyed by path. Re-reading a file (a query that scans a
/// table twice) overwrites its counts rather than adding to them.
#[derive(Debug, Default)]
pub struct IngestStats {
    files: Mutex<BTreeMap<String, FileStats>>,
}

impl IngestStats {
    fn record(&self, file: &str, stats: FileStats) {
        if let Ok(mut m) = self.files.lock() {
            m.insert(file.to_string(), stats);
        }
    }

    /// Counts per file, in path order.
    pub fn per_file(&self) -> BTreeMap<String, FileStats> {
        self.files.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Counts over all files.
    pub fn total(&self) -> FileStats {
        self.per_file()
            .values()
            .fold(FileStats::default(), |a, f| FileStats {
                rows: a.rows + f.rows,
                purchase_type_rows: a.purchase_type_rows + f.purchase_type_rows,
            })
    }
}

/// Options for decoding a set of input files.
#[derive(Debug, Clone)]
pub struct Ingest {
    pub kind: TableKind,
    pub files: Vec<InputFile>,
    pub stats: Arc<IngestStats>,
    pub progress: Option<ProgressBar>,
}

impl Ingest {
    pub fn new(kind: TableKind, files: Vec<InputFile>) -> Self {
        Ingest {
            kind,
            files,
            stats: Arc::default(),
            progress: None,
        }
    }

    pub fn schema(&self) -> SchemaRef {
        match self.kind {
            TableKind::Clickstream => schema::EVENTS.clone(),
            TableKind::Purchases => schema::PURCHASES.clone(),
        }
    }

    /// A DataFusion table over the files, decoded by up to `partitions` threads.
    pub fn table(&self, partitions: usize) -> Result<Arc<dyn TableProvider>> {
        let groups = group_files(&self.files, partitions.max(1));
        let streams: Vec<Arc<dyn PartitionStream>> = groups
            .into_iter()
            .map(|files| {
                Arc::new(FilesPartition {
                    ingest: Ingest {
                        files,
                        ..self.clone()
                    },
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTable::try_new(self.schema(), streams)?))
    }

    /// Decodes every file on this thread and returns all batches: for small inputs and tests.
    pub fn read_all(&self) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for file in &self.files {
            decode_file(
                self.kind,
                file,
                self.progress.clone(),
                &self.stats,
                &mut |b| {
                    out.push(b);
                    Ok(true)
                },
            )?;
        }
        Ok(out)
    }
}

/// Splits files into at most `n` groups of similar total size, keeping path order in a group.
fn group_files(files: &[InputFile], n: usize) -> Vec<Vec<InputFile>> {
    let mut by_size: Vec<&InputFile> = files.iter().collect();
    by_size.sort_by(|a, b| b.size.cmp(&a.size).then(a.index.cmp(&b.index)));
    let mut groups: Vec<(u64, Vec<InputFile>)> = vec![(0, Vec::new()); n.min(files.len()).max(1)];
    for f in by_size {
        if let Some(g) = groups.iter_mut().min_by_key(|g| g.0) {
            g.0 += f.size;
            g.1.push(f.clone());
        }
    }
    groups
        .into_iter()
        .map(|(_, mut g)| {
            g.sort_by_key(|f| f.index);
            g
        })
        .filter(|g| !g.is_empty())
        .collect()
}

#[derive(Debug)]
struct FilesPartition {
    ingest: Ingest,
}

impl PartitionStream for FilesPartition {
    fn schema(&self) -> &SchemaRef {
        match self.ingest.kind {
            TableKind::Clickstream => &schema::EVENTS,
            TableKind::Purchases => &schema::PURCHASES,
        }
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut builder = RecordBatchReceiverStream::builder(self.ingest.schema(), 2);
        let tx = builder.tx();
        let ingest = self.ingest.clone();
        builder.spawn_blocking(move || {
            for file in &ingest.files {
                let keep_going = decode_file(
                    ingest.kind,
                    file,
                    ingest.progress.clone(),
                    &ingest.stats,
                    &mut |batch| {
                        // A closed channel means the query was cancelled or finished early.
                        Ok(tx.blocking_send(Ok(batch)).is_ok())
                    },
                );
                match keep_going {
                    Ok(true) => {}
                    Ok(false) => return Ok(()),
                    Err(e) => return Err(to_datafusion(e)),
                }
            }
            Ok(())
        });
        builder.build()
    }
}

/// Decodes one file, handing each batch to `emit`; `emit` returns false to stop early.
/// Returns false when stopped early.
pub fn decode_file(
    kind: TableKind,
    file: &InputFile,
    progress: Option<ProgressBar>,
    stats: &IngestStats,
    emit: &mut dyn FnMut(RecordBatch) -> Result<bool>,
) -> Result<bool> {
    let name = file.display();
    let mut builder = BatchBuilder::new(kind, BATCH_ROWS);
    let mut rows = 0u64;
    let completed = match file.format {
        FileFormat::Delimited { delimiter } => {
            let reader = open_text(file, progress)?;
            decode_delimited(
                kind,
                reader,
                delimiter,
                &name,
                file.index,
                &mut builder,
                &mut rows,
                emit,
            )?
        }
        FileFormat::Parquet => {
            if let Some(p) = &progress {
                p.inc(file.size);
            }
            decode_parquet(kind, file, &name, &mut builder, &mut rows, emit)?
        }
    };
    if !completed {
        return Ok(false);
    }
    if !builder.is_empty() && !emit(builder.finish()?)? {
        return Ok(false);
    }
    stats.record(
        &name,
        FileStats {
            rows,
            purchase_type_rows: builder.purchase_type_rows(),
        },
    );
    Ok(true)
}

/// Decodes delimited text from any reader: files, and in-memory text in tests.
#[allow(clippy::too_many_arguments)]
pub fn decode_delimited(
    kind: TableKind,
    reader: impl std::io::Read,
    delimiter: u8,
    name: &str,
    file_index: u32,
    builder: &mut BatchBuilder,
    rows: &mut u64,
    emit: &mut dyn FnMut(RecordBatch) -> Result<bool>,
) -> Result<bool> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();
    let read_error = |e: csv::Error| -> Error {
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        match e.into_kind() {
            csv::ErrorKind::Io(io) => Error::BadFile {
                file: name.to_string(),
                reason: format!("read failed near line {line}: {io} (truncated or corrupt file?)"),
            },
            other => Error::BadFile {
                file: name.to_string(),
                reason: format!("not readable as delimited text near line {line}: {other:?}"),
            },
        }
    };
    if !csv.read_byte_record(&mut record).map_err(read_error)? {
        return Err(Error::BadFile {
            file: name.to_string(),
            reason: "empty file: expected a header line".to_string(),
        });
    }
    let header: Vec<&str> = record
        .iter()
        .map(|f| std::str::from_utf8(f).unwrap_or("<invalid UTF-8>"))
        .collect();
    let map = ColumnMap::from_header(kind, &header, name)?;
    while csv.read_byte_record(&mut record).map_err(read_error)? {
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        builder.push(&map, &record, name, file_index, line)?;
        *rows += 1;
        if builder.len() >= BATCH_ROWS && !emit(builder.finish()?)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A row of a Parquet batch whose columns were cast to text.
struct TextRow<'a> {
    columns: &'a [datafusion::arrow::array::StringArray],
    row: usize,
}

impl RowFields for TextRow<'_> {
    fn width(&self) -> usize {
        self.columns.len()
    }
    fn field(&self, i: usize) -> &[u8] {
        let c = &self.columns[i];
        if c.is_null(self.row) {
            b""
        } else {
            c.value(self.row).as_bytes()
        }
    }
}

/// Parquet inputs with the export's columns go through the same row decoder as text, so a
/// value is valid or not whatever format it arrived in. Line numbers are row numbers + 1.
fn decode_parquet(
    kind: TableKind,
    file: &InputFile,
    name: &str,
    builder: &mut BatchBuilder,
    rows: &mut u64,
    emit: &mut dyn FnMut(RecordBatch) -> Result<bool>,
) -> Result<bool> {
    let f = File::open(&file.path).map_err(|e| Error::io(&file.path, e))?;
    let not_parquet = |e: datafusion::parquet::errors::ParquetError| Error::BadFile {
        file: name.to_string(),
        reason: format!("not a readable Parquet file: {e}"),
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(not_parquet)?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(not_parquet)?;
    let mut map: Option<ColumnMap> = None;
    let mut line = 1u64;
    for batch in reader {
        let batch = batch.map_err(|e| Error::BadFile {
            file: name.to_string(),
            reason: format!("Parquet read failed: {e}"),
        })?;
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let map = match &map {
            Some(m) => m,
            None => map.insert(ColumnMap::from_header(kind, &names, name)?),
        };
        let columns = batch
            .columns()
            .iter()
            .map(|c| {
                // Zoned timestamps are cast to naive UTC first, so their text has no zone.
                let c = match c.data_type() {
                    DataType::Timestamp(_, Some(_)) => cast(c, &schema::TIMESTAMP)?,
                    _ => c.clone(),
                };
                Ok(cast(&c, &DataType::Utf8)?.as_string::<i32>().clone())
            })
            .collect::<Result<Vec<_>>>()?;
        for row in 0..batch.num_rows() {
            line += 1;
            builder.push(
                map,
                &TextRow {
                    columns: &columns,
                    row,
                },
                name,
                file.index,
                line,
            )?;
            *rows += 1;
            if builder.len() >= BATCH_ROWS && !emit(builder.finish()?)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Decodes delimited text held in memory, as if it were the file `name`: for tests, examples
/// and fuzzing. Returns the batches and what was read.
pub fn decode_text(
    kind: TableKind,
    text: &[u8],
    delimiter: u8,
    name: &str,
) -> Result<(Vec<RecordBatch>, FileStats)> {
    let mut builder = BatchBuilder::new(kind, BATCH_ROWS);
    let mut rows = 0;
    let mut out = Vec::new();
    decode_delimited(
        kind,
        text,
        delimiter,
        name,
        0,
        &mut builder,
        &mut rows,
        &mut |b| {
            out.push(b);
            Ok(true)
        },
    )?;
    if !builder.is_empty() {
        out.push(builder.finish()?);
    }
    Ok((
        out,
        FileStats {
            rows,
            purchase_type_rows: builder.purchase_type_rows(),
        },
    ))
}
