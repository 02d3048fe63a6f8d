//! Input tables for DataFusion: files decoded in parallel, streamed as Arrow batches.
//!
//! Each table is a [`StreamingTable`] with one partition per group of files; a partition
//! decodes its files one after the other on a blocking thread and hands batches to DataFusion
//! through a bounded channel, so memory stays flat however large the input is. Row counts per
//! file are recorded in [`IngestStats`] for the run summary.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
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
pub const BATCH_ROWS: usize = 8 * 1024;

/// What was read from one input file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FileStats {
    /// Data rows read (the header excluded), quarantined ones included.
    pub rows: u64,
    /// Rows that were bad and written to `_rejected/` instead (`--on-bad-rows quarantine`).
    pub quarantined: u64,
    /// Decoded clickstream rows whose eventType is `purchase`.
    #[serde(skip_serializing_if = "is_zero")]
    pub purchase_type_rows: u64,
}

impl FileStats {
    /// Rows that decoded and reached the jobs.
    pub fn decoded(&self) -> u64 {
        self.rows - self.quarantined
    }
}

/// What to do with a bad row.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum BadRows {
    /// Stop at the first bad row, naming file, line, column and reason; write nothing.
    #[default]
    Fail,
    /// Write each bad row verbatim, with file, line and reason, to `_rejected/` and go on.
    Quarantine,
}

/// Where quarantined rows go: a CSV file with columns `file,line,reason,row`, `row` being the
/// row's text exactly as read (without its line break).
#[derive(Debug)]
pub struct RejectSink {
    path: PathBuf,
    out: Mutex<Option<BufWriter<File>>>,
}

impl RejectSink {
    pub fn new(path: PathBuf) -> Self {
        RejectSink {
            path,
            out: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn reject(&self, file: &str, line: u64, reason: &str, raw: &[u8]) -> Result<()> {
        let mut guard = self
            .out
            .lock()
            .map_err(|_| Error::Accounting("reject sink poisoned".into()))?;
        if guard.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            let f = File::create(&self.path).map_err(|e| Error::io(&self.path, e))?;
            let mut w = BufWriter::new(f);
            w.write_all(b"file,line,reason,row\n")
                .map_err(|e| Error::io(&self.path, e))?;
            *guard = Some(w);
        }
        if let Some(w) = guard.as_mut() {
            let raw = String::from_utf8_lossy(raw);
            let raw = raw.trim_end_matches(['\r', '\n']);
            let row = format!(
                "{},{line},{},{}\n",
                crate::canonical::field(file),
                crate::canonical::field(reason),
                crate::canonical::field(raw)
            );
            w.write_all(row.as_bytes())
                .map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }

    /// Flushes what was written.
    pub fn finish(&self) -> Result<()> {
        if let Ok(mut guard) = self.out.lock() {
            if let Some(w) = guard.as_mut() {
                w.flush().map_err(|e| Error::io(&self.path, e))?;
            }
        }
        Ok(())
    }
}

/// The reason of a bad-row error, for the quarantine file.
fn bad_row_reason(e: &Error) -> Option<String> {
    match e {
        Error::BadRow { column, reason, .. } => Some(match column {
            Some(c) => format!("column {c}: {reason}"),
            None => reason.clone(),
        }),
        _ => None,
    }
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
                quarantined: a.quarantined + f.quarantined,
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
    /// `Some` to quarantine bad rows there, `None` to fail on the first.
    pub rejects: Option<Arc<RejectSink>>,
}

impl Ingest {
    pub fn new(kind: TableKind, files: Vec<InputFile>) -> Self {
        Ingest {
            kind,
            files,
            stats: Arc::default(),
            progress: None,
            rejects: None,
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
                let keep_going = decode_file(&ingest, file, &mut |batch| {
                    // A closed channel means the query was cancelled or finished early.
                    Ok(tx.blocking_send(Ok(batch)).is_ok())
                });
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
    ingest: &Ingest,
    file: &InputFile,
    emit: &mut dyn FnMut(RecordBatch) -> Result<bool>,
) -> Result<bool> {
    let name = file.display();
    let mut builder = BatchBuilder::new(ingest.kind, BATCH_ROWS);
    let mut stats = FileStats::default();
    let ctx = FileContext {
        kind: ingest.kind,
        name: &name,
        file_index: file.index,
        rejects: ingest.rejects.as_deref(),
    };
    let completed = match file.format {
        FileFormat::Delimited { delimiter } => {
            let reader = open_text(file, ingest.progress.clone())?;
            decode_delimited(&ctx, reader, delimiter, &mut builder, &mut stats, emit)?
        }
        FileFormat::Parquet => {
            if let Some(p) = &ingest.progress {
                p.inc(file.size);
            }
            decode_parquet(&ctx, file, &mut builder, &mut stats, emit)?
        }
    };
    if !completed {
        return Ok(false);
    }
    if !builder.is_empty() && !emit(builder.finish()?)? {
        return Ok(false);
    }
    stats.purchase_type_rows = builder.purchase_type_rows();
    ingest.stats.record(&name, stats);
    Ok(true)
}

/// What the decoders need to know about the file at hand.
pub struct FileContext<'a> {
    pub kind: TableKind,
    /// The file's name in messages.
    pub name: &'a str,
    /// The file's number in the input set.
    pub file_index: u32,
    /// Where bad rows go; `None` fails on the first.
    pub rejects: Option<&'a RejectSink>,
}

impl FileContext<'_> {
    /// Decodes one row, or quarantines it. Errors other than a bad row are always returned.
    fn push(
        &self,
        builder: &mut BatchBuilder,
        map: &ColumnMap,
        row: &dyn RowFields,
        line: u64,
        stats: &mut FileStats,
        raw: &dyn Fn() -> Vec<u8>,
    ) -> Result<()> {
        let decoded = builder.push(map, row, self.name, self.file_index, line);
        self.settle(decoded, line, stats, raw)
    }

    /// Counts a row read and applies the bad-row mode to its outcome: a bad row is quarantined
    /// (`--on-bad-rows quarantine`) or returned; any other error is always returned.
    fn settle(
        &self,
        outcome: Result<()>,
        line: u64,
        stats: &mut FileStats,
        raw: &dyn Fn() -> Vec<u8>,
    ) -> Result<()> {
        stats.rows += 1;
        match (outcome, self.rejects) {
            (Ok(()), _) => Ok(()),
            (Err(e), Some(sink)) => match bad_row_reason(&e) {
                Some(reason) => {
                    stats.quarantined += 1;
                    sink.reject(self.name, line, &reason, &raw())
                }
                None => Err(e),
            },
            (Err(e), None) => Err(e),
        }
    }
}

/// Keeps the bytes a CSV reader consumed, so a bad row can be quarantined exactly as it was
/// written. Only used in quarantine mode.
#[derive(Clone, Default)]
struct Tap(Rc<RefCell<(u64, Vec<u8>)>>);

impl Tap {
    /// The bytes between two offsets of the stream, if still held.
    fn slice(&self, start: u64, end: u64) -> Vec<u8> {
        let t = self.0.borrow();
        let (base, bytes) = (t.0, &t.1);
        if start < base {
            return Vec::new();
        }
        let (s, e) = (
            (start - base) as usize,
            ((end.max(start) - base) as usize).min(bytes.len()),
        );
        bytes.get(s..e).map(<[u8]>::to_vec).unwrap_or_default()
    }

    /// Forgets bytes before `offset`, in large steps so the cost stays linear.
    fn forget_before(&self, offset: u64) {
        let mut t = self.0.borrow_mut();
        let drop = offset.saturating_sub(t.0) as usize;
        if drop > 1 << 20 && drop <= t.1.len() {
            t.1.drain(..drop);
            t.0 += drop as u64;
        }
    }
}

struct TapReader<R> {
    inner: R,
    tap: Tap,
}

impl<R: std::io::Read> std::io::Read for TapReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tap.0.borrow_mut().1.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// Decodes delimited text from any reader: files, and in-memory text in tests.
pub fn decode_delimited(
    ctx: &FileContext,
    reader: impl std::io::Read,
    delimiter: u8,
    builder: &mut BatchBuilder,
    stats: &mut FileStats,
    emit: &mut dyn FnMut(RecordBatch) -> Result<bool>,
) -> Result<bool> {
    let name = ctx.name;
    let tap = ctx.rejects.map(|_| Tap::default());
    let reader: Box<dyn std::io::Read + '_> = match &tap {
        Some(t) => Box::new(TapReader {
            inner: reader,
            tap: t.clone(),
        }),
        None => Box::new(reader),
    };
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
    let map = ColumnMap::from_header(ctx.kind, &header, name)?;
    while csv.read_byte_record(&mut record).map_err(read_error)? {
        let (line, start) = record
            .position()
            .map(|p| (p.line(), p.byte()))
            .unwrap_or((0, 0));
        let end = csv.position().byte();
        let raw = || {
            tap.as_ref()
                .map(|t| t.slice(start, end))
                .unwrap_or_default()
        };
        if record.as_slice().iter().any(|&b| b == b'\n' || b == b'\r') {
            // The exports never have line breaks inside fields: this is an opening quote
            // without its closing quote, which swallowed the following lines.
            let unbalanced = Error::BadRow {
                file: name.to_string(),
                line,
                column: None,
                reason: "unbalanced quote: a quoted field runs past the end of its line"
                    .to_string(),
            };
            ctx.settle(Err(unbalanced), line, stats, &raw)?;
        } else {
            ctx.push(builder, &map, &record, line, stats, &raw)?;
        }
        if let Some(t) = &tap {
            t.forget_before(end);
        }
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
    ctx: &FileContext,
    file: &InputFile,
    builder: &mut BatchBuilder,
    stats: &mut FileStats,
    emit: &mut dyn FnMut(RecordBatch) -> Result<bool>,
) -> Result<bool> {
    let (kind, name) = (ctx.kind, ctx.name);
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
            let text = TextRow {
                columns: &columns,
                row,
            };
            let raw = || {
                let fields: Vec<&[u8]> = (0..text.width()).map(|i| text.field(i)).collect();
                fields.join(&b',')
            };
            ctx.push(builder, map, &text, line, stats, &raw)?;
            if builder.len() >= BATCH_ROWS && !emit(builder.finish()?)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Decodes delimited text held in memory, as if it were the file `name`: for tests, examples
/// and fuzzing. Returns the batches and what was read; with `rejects`, bad rows are quarantined.
pub fn decode_text(
    kind: TableKind,
    text: &[u8],
    delimiter: u8,
    name: &str,
    rejects: Option<&RejectSink>,
) -> Result<(Vec<RecordBatch>, FileStats)> {
    let mut builder = BatchBuilder::new(kind, BATCH_ROWS);
    let mut stats = FileStats::default();
    let mut out = Vec::new();
    let ctx = FileContext {
        kind,
        name,
        file_index: 0,
        rejects,
    };
    decode_delimited(&ctx, text, delimiter, &mut builder, &mut stats, &mut |b| {
        out.push(b);
        Ok(true)
    })?;
    if !builder.is_empty() {
        out.push(builder.finish()?);
    }
    stats.purchase_type_rows = builder.purchase_type_rows();
    if let Some(r) = rejects {
        r.finish()?;
    }
    Ok((out, stats))
}
