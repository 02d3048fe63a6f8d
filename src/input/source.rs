//! Input tables for DataFusion: files decoded in parallel, streamed as Arrow batches.
//!
//! Each table is a [`StreamingTable`] with one partition per group of files; a partition
//! decodes its files one after the other on a blocking thread and hands batches to DataFusion
//! through a bounded channel, so memory stays flat however large the input is. Row counts per
//! file are recorded in [`IngestStats`] for the run summary.
//!
//! Text is split into physical lines (`Lines`) before a line's fields are parsed
//! (`LineFields`, the `csv` crate's state machine): the exports never hold a line break in a
//! field, so a quote left open spoils its own row only, and line numbers and quarantined rows
//! are the file's own whatever its line breaks.

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
use super::rejects::{bad_row_reason, BadRowLimit, RejectSink};
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
    /// The file's size as read (compressed, as on disk).
    pub bytes: u64,
}

impl FileStats {
    /// Rows that decoded and reached the jobs.
    pub fn decoded(&self) -> u64 {
        self.rows - self.quarantined
    }
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// Rows per channel_id (`None`: the row has none), as the decoders count the `app_open` rows
/// (each distinct one opens a session, rule 2).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Opens {
    /// Keyed by the channel_id's text; a lookup borrows the row's value.
    by_channel: ahash::AHashMap<String, u64>,
    without_channel: u64,
}

impl Opens {
    pub fn add(&mut self, channel: Option<&str>, n: u64) {
        match channel {
            None => self.without_channel += n,
            Some(c) => match self.by_channel.get_mut(c) {
                Some(count) => *count += n,
                None => {
                    self.by_channel.insert(c.to_string(), n);
                }
            },
        }
    }

    /// Every channel with its count, in channel order (`None` first).
    pub fn counts(&self) -> BTreeMap<Option<String>, u64> {
        let mut out: BTreeMap<Option<String>, u64> = self
            .by_channel
            .iter()
            .map(|(c, n)| (Some(c.clone()), *n))
            .collect();
        if self.without_channel > 0 {
            out.insert(None, self.without_channel);
        }
        out
    }

    fn merge(&mut self, other: &Opens) {
        self.without_channel += other.without_channel;
        for (c, n) in &other.by_channel {
            self.add(Some(c), *n);
        }
    }
}

/// Rows read from each input file, keyed by path. Re-reading a file (a query that scans a
/// table twice) overwrites its counts rather than adding to them.
#[derive(Debug, Default)]
pub struct IngestStats {
    files: Mutex<BTreeMap<String, FileStats>>,
    opens: Mutex<BTreeMap<String, Opens>>,
}

impl IngestStats {
    fn record(&self, file: &str, stats: FileStats, opens: Opens) {
        if let Ok(mut m) = self.files.lock() {
            m.insert(file.to_string(), stats);
        }
        if let Ok(mut m) = self.opens.lock() {
            m.insert(file.to_string(), opens);
        }
    }

    /// The `app_open` rows of all files, per channel_id.
    pub fn opens(&self) -> Opens {
        let mut all = Opens::default();
        if let Ok(m) = self.opens.lock() {
            for opens in m.values() {
                all.merge(opens);
            }
        }
        all
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
                bytes: a.bytes + f.bytes,
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

impl Ingest {
    /// Finishes the reject sink (if any) and fails when the input held more bad rows than
    /// `limit` accepts (see [`BadRowLimit`]). Called once the input has been read.
    pub fn settle_bad_rows(&self, limit: Option<BadRowLimit>) -> Result<()> {
        if let Some(sink) = &self.rejects {
            sink.finish()?;
        }
        BadRowLimit::check(
            limit,
            self.kind.name(),
            self.stats.total(),
            self.rejects.as_deref(),
        )
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
    let mut stats = FileStats {
        bytes: file.size,
        ..FileStats::default()
    };
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
    ingest.stats.record(&name, stats, builder.take_opens());
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

/// Physical lines of a text stream: each ends at `\n`, `\r\n` or a lone `\r` (the end of the
/// stream ends the last). Line numbers count every line, empty ones included, from 1, as an
/// editor shows them.
pub(crate) struct Lines<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    line: u64,
}

const LINE_BUFFER: usize = 256 * 1024;

impl<R: std::io::Read> Lines<R> {
    pub(crate) fn new(inner: R) -> Self {
        Lines {
            inner,
            buf: vec![0; LINE_BUFFER],
            start: 0,
            end: 0,
            eof: false,
            line: 0,
        }
    }

    /// Reads more input after what is held, moving it to the front (and growing the buffer
    /// when one line fills it). Returns false at the end of the stream.
    fn fill(&mut self) -> std::io::Result<bool> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        loop {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next line's number and content (without its line break).
    pub(crate) fn next_line(&mut self) -> std::io::Result<Option<(u64, &[u8])>> {
        let mut searched = 0;
        loop {
            let held = &self.buf[self.start..self.end];
            if let Some(i) = memchr::memchr2(b'\n', b'\r', &held[searched..]).map(|i| i + searched)
            {
                let crlf = held[i] == b'\r' && held.get(i + 1) == Some(&b'\n');
                if held[i] == b'\r' && i + 1 == held.len() && !self.eof {
                    // A `\r` at the end of what is held: `\r\n` or a lone `\r`, the next byte says.
                    searched = i;
                    self.fill()?;
                    continue;
                }
                let from = self.start;
                self.start += i + if crlf { 2 } else { 1 };
                self.line += 1;
                return Ok(Some((self.line, &self.buf[from..from + i])));
            }
            if self.eof {
                if self.start == self.end {
                    return Ok(None);
                }
                let from = self.start;
                self.start = self.end;
                self.line += 1;
                return Ok(Some((self.line, &self.buf[from..self.end])));
            }
            searched = held.len();
            self.fill()?;
        }
    }
}

/// The fields of one line, parsed by the `csv` crate's own state machine (quotes, doubled
/// quotes, the delimiter), one line at a time.
pub(crate) struct LineFields {
    reader: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    fields: usize,
}

impl LineFields {
    pub(crate) fn new(delimiter: u8) -> Self {
        LineFields {
            reader: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            out: vec![0; 1024],
            ends: vec![0; 16],
            fields: 0,
        }
    }

    /// Parses `line`. Returns false when a quote opened on the line is still open at its end:
    /// the exports never hold a line break inside a field, so the row ends there, bad.
    pub(crate) fn parse(&mut self, line: &[u8]) -> bool {
        let (mut input, mut fed_break) = (line, false);
        let (mut written, mut fields) = (0, 0);
        loop {
            let (result, read, wrote, ended) =
                self.reader
                    .read_record(input, &mut self.out[written..], &mut self.ends[fields..]);
            input = &input[read..];
            written += wrote;
            fields += ended;
            match result {
                csv_core::ReadRecordResult::InputEmpty if fed_break => {
                    // The line break was taken into a quoted field.
                    self.reader.reset();
                    self.fields = 0;
                    return false;
                }
                csv_core::ReadRecordResult::InputEmpty => {
                    input = b"\n";
                    fed_break = true;
                }
                csv_core::ReadRecordResult::OutputFull => {
                    let len = self.out.len() * 2;
                    self.out.resize(len, 0);
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len() * 2;
                    self.ends.resize(len, 0);
                }
                csv_core::ReadRecordResult::Record | csv_core::ReadRecordResult::End => {
                    self.fields = fields;
                    return true;
                }
            }
        }
    }
}

impl RowFields for LineFields {
    fn width(&self) -> usize {
        self.fields
    }
    fn field(&self, i: usize) -> &[u8] {
        if i >= self.fields {
            return b"";
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.out[start..self.ends[i]]
    }
}

/// Decodes delimited text from any reader: files, and in-memory text in tests.
///
/// The text is split into physical lines first and each line is one row: a quote left open
/// ends with its line (one bad row, not the rows after it), and line numbers and quarantined
/// rows are the file's own, whatever its line breaks (LF, CRLF or CR). Empty lines are skipped.
pub fn decode_delimited(
    ctx: &FileContext,
    reader: impl std::io::Read,
    delimiter: u8,
    builder: &mut BatchBuilder,
    stats: &mut FileStats,
    emit: &mut dyn FnMut(RecordBatch) -> Result<bool>,
) -> Result<bool> {
    let name = ctx.name;
    let mut lines = Lines::new(reader);
    let mut fields = LineFields::new(delimiter);
    let read_error = |line: u64, e: std::io::Error| Error::BadFile {
        file: name.to_string(),
        reason: format!(
            "read failed near line {}: {e} (truncated or corrupt file?)",
            line + 1
        ),
    };
    let map = loop {
        let last = lines.line;
        match lines.next_line().map_err(|e| read_error(last, e))? {
            None => {
                return Err(Error::BadFile {
                    file: name.to_string(),
                    reason: "empty file: expected a header line".to_string(),
                })
            }
            Some((_, [])) => continue,
            Some((_, line)) => {
                fields.parse(line);
                let header: Vec<&str> = (0..fields.width())
                    .map(|i| std::str::from_utf8(fields.field(i)).unwrap_or("<invalid UTF-8>"))
                    .collect();
                break ColumnMap::from_header(ctx.kind, &header, name)?;
            }
        }
    };
    loop {
        let last = lines.line;
        let Some((number, line)) = lines.next_line().map_err(|e| read_error(last, e))? else {
            break;
        };
        if line.is_empty() {
            continue;
        }
        let raw = || line.to_vec();
        if fields.parse(line) {
            ctx.push(builder, &map, &fields, number, stats, &raw)?;
        } else {
            let unbalanced = Error::BadRow {
                file: name.to_string(),
                line: number,
                column: None,
                reason: "unbalanced quote: a quoted field is not closed on its line".to_string(),
            };
            ctx.settle(Err(unbalanced), number, stats, &raw)?;
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
            .zip(schema.fields())
            .map(|(c, field)| {
                let unreadable = |e: datafusion::arrow::error::ArrowError| Error::BadFile {
                    file: name.to_string(),
                    reason: format!(
                        "column {} is {}, which cannot be read as text ({e}); the export's \
                         columns are text, numbers, booleans or timestamps",
                        field.name(),
                        field.data_type()
                    ),
                };
                // Zoned timestamps are cast to naive UTC first, so their text has no zone.
                let c = match c.data_type() {
                    DataType::Timestamp(_, Some(_)) => {
                        cast(c, &schema::NAIVE_TIMESTAMP).map_err(unreadable)?
                    }
                    _ => c.clone(),
                };
                Ok(cast(&c, &DataType::Utf8)
                    .map_err(unreadable)?
                    .as_string::<i32>()
                    .clone())
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
