//! Writing outputs: Parquet datasets and the JSON summary.
//!
//! A dataset is a directory with one `part-00000.parquet` and a `_SUCCESS` marker. It is
//! written to a temporary sibling directory and renamed into place only when complete, so a
//! reader never sees a half-written dataset. Writer settings are fixed and rows arrive sorted,
//! so the same inputs give the same bytes.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrame;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use futures::StreamExt;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

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

/// A dataset being written into a temporary directory.
pub struct DatasetWriter {
    tmp: PathBuf,
    dest: PathBuf,
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    rows: u64,
}

impl DatasetWriter {
    pub fn create(dest: &Path, schema: SchemaRef) -> Result<Self> {
        let tmp = temp_sibling(dest, "tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let path = tmp.join(PART_FILE);
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(writer_properties()))?;
        Ok(DatasetWriter {
            tmp,
            dest: dest.to_path_buf(),
            writer,
            schema,
            rows: 0,
        })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let batch = conform(batch, &self.schema)?;
        self.rows += batch.num_rows() as u64;
        self.writer.write(&batch)?;
        Ok(())
    }

    /// Finishes the file and moves the dataset into place. Returns the rows written.
    pub fn commit(self) -> Result<u64> {
        self.writer.close()?;
        let marker = self.tmp.join(SUCCESS_MARKER);
        File::create(&marker).map_err(|e| Error::io(&marker, e))?;
        replace_path(&self.tmp, &self.dest)?;
        Ok(self.rows)
    }
}

/// Writes a DataFrame's rows, in its order, as the dataset `dest`.
pub async fn write_dataframe(df: DataFrame, dest: &Path, schema: SchemaRef) -> Result<u64> {
    let mut writer = DatasetWriter::create(dest, schema)?;
    let mut stream = df.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        writer.write(&batch?)?;
    }
    writer.commit()
}

/// Writes batches as the dataset `dest`.
pub fn write_batches(batches: &[RecordBatch], dest: &Path, schema: SchemaRef) -> Result<u64> {
    let mut writer = DatasetWriter::create(dest, schema)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.commit()
}

/// Writes a JSON file through a temporary file and a rename.
pub fn write_json(dest: &Path, value: &impl serde::Serialize) -> Result<()> {
    let tmp = temp_sibling(dest, "tmp");
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(&tmp, text + "\n").map_err(|e| Error::io(&tmp, e))?;
    replace_path(&tmp, dest)
}

fn temp_sibling(dest: &Path, what: &str) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".to_string());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    dest.with_file_name(format!(".{name}.{what}-{}-{nanos}", std::process::id()))
}

/// Moves `from` to `to`, replacing what was at `to`: the old content is renamed aside first
/// and removed only once the new one is in place.
pub fn replace_path(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
    }
    let old = if to.exists() {
        let aside = temp_sibling(to, "old");
        std::fs::rename(to, &aside).map_err(|e| Error::io(to, e))?;
        Some(aside)
    } else {
        None
    };
    std::fs::rename(from, to).map_err(|e| Error::io(to, e))?;
    if let Some(old) = old {
        let removed = if old.is_dir() {
            std::fs::remove_dir_all(&old)
        } else {
            std::fs::remove_file(&old)
        };
        removed.map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
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
