//! Writing outputs: Parquet datasets, the JSON summary, and the atomic commit of a whole run.
//!
//! A dataset is a directory with one `part-00000.parquet` and a `_SUCCESS` marker. Everything a
//! command writes goes to a temporary sibling of its destination ([`Staging`]) and is moved into
//! place only when complete, by an atomic exchange of the two directories (Linux
//! `renameat2(RENAME_EXCHANGE)`), like Hadoop's output committer. A run killed at any moment
//! leaves either the previous complete output or the new complete output, never a mix; its
//! leftover temporary directory is removed by the next run. Writer settings are fixed and rows
//! arrive sorted, so the same inputs give the same bytes whatever the thread count.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::parquet::arrow::arrow_writer::{
    compute_leaves, ArrowColumnChunk, ArrowLeafColumn, ArrowRowGroupWriterFactory,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::file::writer::SerializedFileWriter;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::storage::claim::Marker;

/// Name of the single data file of an output dataset.
pub const PART_FILE: &str = "part-00000.parquet";
/// Marker written last into a complete dataset, as Hadoop's output committer does.
pub const SUCCESS_MARKER: &str = "_SUCCESS";

fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_created_by("marketing-analytics".to_string())
        .build()
}

/// Gives a batch the output schema (names, types and nullability promised to users). Fails
/// if a column has another type or a null where none is allowed: a bug, caught before writing.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        schema.clone(),
        batch.columns().to_vec(),
    )?)
}

/// Writes batches as the Parquet file of a dataset being staged in `dir` (it becomes visible
/// with the staging's commit). Returns the rows written.
pub fn write_part(batches: &[RecordBatch], dir: &Path, schema: SchemaRef) -> Result<u64> {
    let path = dir.join(PART_FILE);
    let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(writer_properties()))?;
    let mut rows = 0;
    for batch in batches {
        let batch = conform(batch, &schema)?;
        rows += batch.num_rows() as u64;
        writer.write(&batch)?;
    }
    writer.close()?;
    Ok(rows)
}

/// Writes a DataFrame's rows, in its order, as one Parquet file at `path` (inside a staging
/// directory). Returns the rows written.
///
/// Encoding and compressing run on threads of their own (a column each, see
/// [`ColumnParallelWriter`]) while the plan produces the next batches: at the end of a job (the
/// projection's final merge) nothing else would use the other cores.
pub async fn write_dataframe_file(df: DataFrame, path: &Path, schema: SchemaRef) -> Result<u64> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut writer =
        ColumnParallelWriter::try_new(file, path, schema.clone(), writer_properties())?;
    let (send, mut receive) = tokio::sync::mpsc::channel::<RecordBatch>(4);
    let encoder = tokio::task::spawn_blocking(move || -> Result<u64> {
        let mut rows = 0;
        while let Some(batch) = receive.blocking_recv() {
            rows += batch.num_rows() as u64;
            writer.write(&batch)?;
        }
        writer.close()?;
        Ok(rows)
    });
    let produced = async {
        let mut stream = df.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            if send.send(conform(&batch?, &schema)?).await.is_err() {
                break; // the encoder stopped: its error is reported below
            }
        }
        Ok::<_, Error>(())
    }
    .await;
    drop(send);
    let encoded = encoder
        .await
        .map_err(|e| Error::io(path, std::io::Error::other(e)))?;
    produced?;
    encoded
}

/// A Parquet file writer that encodes each row group's columns on threads of their own, one
/// per leaf column, as the batches arrive. The projection's file was encoded on one thread while
/// the other core mostly waited (a CPU timeline of 50M events: about 1.4 cores busy for the
/// 2.5 s of the write; 1.6 cores for 2 s this way, the sort's merge feeding it being the
/// limit). The file is the one [`ArrowWriter`] writes, byte for byte: the same
/// settings and metadata (taken from an `ArrowWriter`), the same row group boundaries.
pub struct ColumnParallelWriter {
    writer: SerializedFileWriter<File>,
    factory: ArrowRowGroupWriterFactory,
    path: PathBuf,
    schema: SchemaRef,
    row_group_rows: usize,
    current: Option<RowGroupInProgress>,
}

type ColumnWorker = (
    std::sync::mpsc::SyncSender<ArrowLeafColumn>,
    std::thread::JoinHandle<datafusion::parquet::errors::Result<ArrowColumnChunk>>,
);

struct RowGroupInProgress {
    workers: Vec<ColumnWorker>,
    rows: usize,
}

impl ColumnParallelWriter {
    /// A writer of `file`, created at `path` (named in errors).
    pub fn try_new(
        file: File,
        path: &Path,
        schema: SchemaRef,
        props: WriterProperties,
    ) -> Result<Self> {
        let row_group_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        let (writer, factory) =
            ArrowWriter::try_new(file, schema.clone(), Some(props))?.into_serialized_writer()?;
        Ok(ColumnParallelWriter {
            writer,
            factory,
            path: path.to_path_buf(),
            schema,
            row_group_rows,
            current: None,
        })
    }

    fn start_row_group(&mut self) -> Result<RowGroupInProgress> {
        let index = self.writer.flushed_row_groups().len();
        let mut workers = Vec::new();
        for mut column in self.factory.create_column_writers(index)? {
            // Two leaves queued per column: enough to keep the threads busy, few enough to
            // bound what waits in memory.
            let (send, receive) = std::sync::mpsc::sync_channel(2);
            let thread = std::thread::Builder::new()
                .name("parquet-column".into())
                .spawn(move || {
                    for leaf in receive {
                        column.write(&leaf)?;
                    }
                    column.close()
                })
                .map_err(|e| Error::io(&self.path, e))?;
            workers.push((send, thread));
        }
        Ok(RowGroupInProgress { workers, rows: 0 })
    }

    /// Writes `batch`, closing row groups where [`ArrowWriter`] would.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut batch = batch.clone();
        while batch.num_rows() > 0 {
            let mut group = match self.current.take() {
                Some(group) => group,
                None => self.start_row_group()?,
            };
            let take = batch.num_rows().min(self.row_group_rows - group.rows);
            let part = batch.slice(0, take);
            batch = batch.slice(take, batch.num_rows() - take);
            let mut workers = group.workers.iter();
            for (field, column) in self.schema.fields().iter().zip(part.columns()) {
                for leaf in compute_leaves(field, column)? {
                    let Some((send, _)) = workers.next() else {
                        return Err(Error::io(
                            &self.path,
                            std::io::Error::other("more Parquet leaf columns than writers"),
                        ));
                    };
                    // A worker that stopped on an error no longer receives: its error is
                    // reported when the group closes.
                    let _ = send.send(leaf);
                }
            }
            group.rows += take;
            if group.rows == self.row_group_rows {
                self.close_row_group(group)?;
            } else {
                self.current = Some(group);
            }
        }
        Ok(())
    }

    fn close_row_group(&mut self, group: RowGroupInProgress) -> Result<()> {
        let mut row_group = self.writer.next_row_group()?;
        for (send, thread) in group.workers {
            drop(send);
            let chunk = thread.join().map_err(|_| {
                Error::io(
                    &self.path,
                    std::io::Error::other("a Parquet column encoder panicked"),
                )
            })??;
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        Ok(())
    }

    /// Closes the last row group and writes the footer.
    pub fn close(mut self) -> Result<()> {
        if let Some(group) = self.current.take() {
            self.close_row_group(group)?;
        }
        self.writer.close()?;
        Ok(())
    }
}

/// Registers the Parquet files under `location` (an absolute directory path or object-store
/// URL ending in `/`, written by this program) as table `name` with `schema`.
pub fn register_parquet_dir(
    ctx: &SessionContext,
    name: &str,
    location: &str,
    schema: SchemaRef,
) -> Result<()> {
    let url = ListingTableUrl::parse(location)?;
    let options = super::tables::parquet_options(ctx, Vec::new());
    super::replace_table(
        ctx,
        name,
        super::tables::listing_table(vec![url], options, schema)?,
    )
}

/// Streams `df` into one Parquet file under `location`, with a writer outside the memory pool
/// that holds at most one row group (DataFusion's own sink reserves its buffers from the pool
/// without being able to spill them, which makes a tight cap fail).
pub async fn write_parquet_stream(
    ctx: &SessionContext,
    df: DataFrame,
    location: &str,
    schema: datafusion::arrow::datatypes::SchemaRef,
) -> Result<()> {
    use datafusion::datasource::listing::ListingTableUrl;
    use datafusion::object_store::buffered::BufWriter;
    use datafusion::parquet::arrow::async_writer::AsyncArrowWriter;
    use futures::StreamExt;
    let url = ListingTableUrl::parse(location)?;
    let store = ctx.runtime_env().object_store(url.object_store())?;
    let path = url.prefix().clone().join(PART_FILE);
    // The settings of `intermediate_parquet_options`, which the executors' writer uses in
    // cluster mode. Deriving them from it (ParquetWriterOptions::try_from) fails here: that
    // path expects DataFusion's sink to have put the Arrow schema in the file metadata.
    let props = datafusion::parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(INTERMEDIATE_ROW_GROUP))
        .set_compression(datafusion::parquet::basic::Compression::LZ4_RAW)
        .build();
    let mut writer = AsyncArrowWriter::try_new(BufWriter::new(store, path), schema, Some(props))?;
    let mut stream = df.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        writer.write(&batch?).await?;
    }
    writer.close().await?;
    Ok(())
}

/// Rows per row group of intermediate Parquet.
pub const INTERMEDIATE_ROW_GROUP: usize = 32 * 1024;

/// Writer settings of intermediate Parquet: small row groups, because a writer holds its row
/// group in memory (inside the memory pool) until it is full; fast compression; one writer
/// thread per file.
pub fn intermediate_parquet_options() -> datafusion::config::TableParquetOptions {
    let mut options = datafusion::config::TableParquetOptions::default();
    options.global.max_row_group_size = INTERMEDIATE_ROW_GROUP;
    options.global.compression = Some("lz4_raw".into());
    options.global.allow_single_file_parallelism = false;
    options
}

/// Writes a JSON file (into a staging directory: it becomes visible with the commit).
pub fn write_json_file(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").map_err(|e| Error::io(path, e))
}

/// The prefix of the hidden siblings of `dest` (its staging directories and lock file):
/// `.NAME.`, with a long name cut and a hash of it added so that the siblings' names stay
/// within the file system's 255 bytes.
pub(crate) fn sibling_prefix(dest: &Path) -> String {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".to_string());
    if name.len() <= 64 {
        return format!(".{name}.");
    }
    let mut cut = 40;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    // FNV-1a: stable across builds, so a later run finds what a killed one left.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    format!(".{}~{hash:016x}.", &name[..cut])
}

/// The directory `dest` is in (`.` for a bare name).
pub(crate) fn parent_dir(dest: &Path) -> PathBuf {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A fresh hidden sibling of `dest`, `.NAME.WHAT-PID-NANOS`: the pid tells a live run's
/// from a killed one's, which `Staging::new` reclaims.
pub(crate) fn temp_sibling(dest: &Path, what: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    dest.with_file_name(format!(
        "{}{what}-{}-{nanos}",
        sibling_prefix(dest),
        std::process::id()
    ))
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// Moves `from` to `to`, replacing what was at `to` in one atomic step where the file system
/// allows it (an exchange of the two paths); the old content is then removed.
pub fn replace_path(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
    }
    if !to.exists() {
        return std::fs::rename(from, to).map_err(|e| Error::io(to, e));
    }
    if exchange(from, to).is_ok() {
        // `from` now holds the old content.
        return remove_any(from).map_err(|e| Error::io(from, e));
    }
    // No atomic exchange here (file system or OS): rename the old content aside first. A crash
    // between the two renames leaves the old content under a `.NAME.old-*` name, which the next
    // run restores (see `Staging::new`).
    let aside = temp_sibling(to, "old");
    std::fs::rename(to, &aside).map_err(|e| Error::io(to, e))?;
    std::fs::rename(from, to).map_err(|e| Error::io(to, e))?;
    remove_any(&aside).map_err(|e| Error::io(&aside, e))
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "no atomic exchange",
    ))
}

/// Removes what killed runs left beside `dest`: their staging, scratch and spill directories
/// (`.NAME.KIND-PID-…` of a process no longer alive); an old output renamed aside by a run
/// killed in the middle of a non-atomic replace is put back.
pub(crate) fn reclaim(dest: &Path) -> Result<()> {
    let parent = parent_dir(dest);
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let prefix = sibling_prefix(dest);
    let entries = std::fs::read_dir(&parent).map_err(|e| Error::io(&parent, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        let kind_and_pid = rest.split_once('-').map(|(_, after)| after);
        if !kind_and_pid.is_some_and(owner_gone) {
            continue; // a live run's (this one's too), or not ours
        }
        let path = entry.path();
        if rest.starts_with("old-") && !dest.exists() {
            std::fs::rename(&path, dest).map_err(|e| Error::io(dest, e))?;
        } else if ["tmp-", "old-", "scratch-", "spill-"]
            .iter()
            .any(|kind| rest.starts_with(kind))
        {
            remove_any(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// Whether `PID-…` (what follows the kind in a sibling's name, see [`temp_sibling`]) names a
/// process that is no longer alive.
fn owner_gone(pid_and_rest: &str) -> bool {
    pid_and_rest
        .split('-')
        .next()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// Removes every staging, scratch and spill directory that a killed run left in `dir`,
/// whichever destination it was for (a conversion killed while writing dates the next one does
/// not touch). An old output renamed aside is left to [`reclaim`], which knows its destination.
pub(crate) fn reclaim_all_in(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            continue;
        }
        let dead = ["tmp-", "scratch-", "spill-"].iter().any(|kind| {
            name.rfind(&format!(".{kind}"))
                .is_some_and(|at| owner_gone(&name[at + kind.len() + 1..]))
        });
        if dead {
            let path = entry.path();
            remove_any(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// A temporary directory next to a destination, moved into place by [`Staging::commit`].
/// Dropped without a commit (an error), it is removed; killed, it is removed by the next run.
pub struct Staging {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl Staging {
    /// Creates the temporary directory, after cleaning up what killed runs left next to `dest`:
    /// their temporary directories are removed, and an old output renamed aside by a run killed
    /// in the middle of a non-atomic replace is put back.
    pub fn new(dest: &Path) -> Result<Staging> {
        reclaim(dest)?;
        let tmp = temp_sibling(dest, "tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        crate::storage::cleanup::register(&tmp);
        Ok(Staging {
            tmp,
            dest: dest.to_path_buf(),
            committed: false,
        })
    }

    /// Where to write what will be committed.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Marks the output complete (a `_SUCCESS` saying this program wrote it, which is what
    /// lets a later run replace it) and moves it into place.
    pub fn commit(self) -> Result<()> {
        self.commit_with(&Marker::ours(Vec::new()))
    }

    /// [`Staging::commit`] with the given marker in `_SUCCESS`.
    pub fn commit_with(mut self, marker: &Marker) -> Result<()> {
        marker.write(&self.tmp.join(SUCCESS_MARKER))?;
        replace_path(&self.tmp, &self.dest)?;
        self.committed = true;
        crate::storage::cleanup::unregister(&self.tmp);
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
            crate::storage::cleanup::unregister(&self.tmp);
        }
    }
}

/// Reads every batch of a Parquet dataset written by [`DatasetWriter`] (or any Parquet file).
pub fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>> {
    let file_path = if path.is_dir() {
        path.join(PART_FILE)
    } else {
        path.to_path_buf()
    };
    let file = File::open(&file_path).map_err(|e| Error::io(&file_path, e))?;
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?
            .build()?;
    Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
}

/// Writes `bytes` to `path` whole: into a hidden sibling first, then [`publish`]ed.
pub fn publish_file(path: &Path, bytes: &[u8], replaceable: impl Fn(&Path) -> bool) -> Result<()> {
    refuse_unless_replaceable(path, &replaceable)?;
    let tmp = temp_sibling(path, "tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    publish(&tmp, path, replaceable)
}

/// Writes the rows of `frame` to the new Parquet file `path` whole (a failed query leaves
/// nothing there, and nothing there is replaced); returns the rows written.
pub async fn write_new_parquet(frame: DataFrame, path: &Path) -> Result<u64> {
    refuse_unless_replaceable(path, &|_| false)?;
    let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let tmp = temp_sibling(path, "tmp");
    match write_dataframe_file(frame, &tmp, schema).await {
        Ok(rows) => publish(&tmp, path, |_| false).map(|()| rows),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn refuse_unless_replaceable(path: &Path, replaceable: &impl Fn(&Path) -> bool) -> Result<()> {
    if (path.exists() || path.is_symlink()) && !replaceable(path) {
        return Err(Error::Config(format!(
            "{} exists and was not written by this program: give another --out, or move it away",
            path.display()
        )));
    }
    Ok(())
}

/// Moves the complete file `tmp` to `path`: linked there when nothing is (failing, not
/// replacing, should something appear meanwhile), or swapped in when `replaceable` says what
/// is there may be replaced. `tmp` is gone afterwards; a failure leaves `path` as it was.
pub fn publish(tmp: &Path, path: &Path, replaceable: impl Fn(&Path) -> bool) -> Result<()> {
    let published = if path.exists() && replaceable(path) {
        replace_path(tmp, path)
    } else {
        std::fs::hard_link(tmp, path).map_err(|e| Error::io(path, e))
    };
    if tmp.exists() {
        let _ = std::fs::remove_file(tmp);
    }
    published
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(schema: &SchemaRef, from: i64, rows: i64) -> RecordBatch {
        let ids: Vec<i64> = (from..from + rows).collect();
        let names: Vec<Option<String>> = ids
            .iter()
            .map(|i| (i % 7 != 0).then(|| format!("name-{}", i % 13)))
            .collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)) as ArrayRef,
                Arc::new(StringArray::from(names)) as ArrayRef,
            ],
        )
        .unwrap()
    }

    #[test]
    fn column_parallel_writer_writes_the_bytes_arrow_writer_writes() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        // Row groups of 1,000 rows, batches that straddle them, an empty batch, a short end.
        let props = || {
            WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .set_max_row_group_row_count(Some(1000))
                .build()
        };
        let batches = [
            batch(&schema, 0, 700),
            batch(&schema, 700, 0),
            batch(&schema, 700, 2600),
            batch(&schema, 3300, 1),
            batch(&schema, 3301, 333),
        ];
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        let mut serial =
            ArrowWriter::try_new(File::create(&a).unwrap(), schema.clone(), Some(props())).unwrap();
        let mut parallel =
            ColumnParallelWriter::try_new(File::create(&b).unwrap(), &b, schema.clone(), props())
                .unwrap();
        for batch in &batches {
            serial.write(batch).unwrap();
            parallel.write(batch).unwrap();
        }
        serial.close().unwrap();
        parallel.close().unwrap();
        let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
        assert!(a.len() > 1000);
        assert!(
            a == b,
            "the files differ ({} and {} bytes)",
            a.len(),
            b.len()
        );
    }
}
