//! The dedup's spilled form: the events written to disk by userId part (Arrow IPC), read back
//! and cut one part at a time (see the parent module's docs).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::{exec_err, DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SpillFile, SpillWriter};
use datafusion::physical_plan::metrics::{SpillMetrics, Time};
use datafusion::physical_plan::spill::SpillManager;
use futures::{FutureExt, TryStreamExt};

use super::{
    add_all_by_part, bucket, duplicated_rows, output_batch, sort_out, Column, Consumed, Repeated,
};

/// What the input tasks share while they read.
pub(super) struct Spill {
    /// Held bytes (of all inputs) above which the inputs spill.
    pub(super) spill_at: usize,
    /// Held bytes an input collects before it writes them out, once spilling.
    pub(super) chunk: usize,
    /// Set once the held events outgrow `spill_at` or the pool refuses more: from then on every
    /// input writes its rows to disk.
    pub(super) spilling: AtomicBool,
    /// Reads the spill files back.
    pub(super) manager: SpillManager,
    pub(super) env: Arc<RuntimeEnv>,
    pub(super) metrics: SpillMetrics,
    pub(super) parts: usize,
}

/// A part's spill file of one input, being written (Arrow IPC, as DataFusion's own spills,
/// so that its `SpillManager` reads it back).
pub(super) struct PartFile {
    pub(super) file: Arc<dyn SpillFile>,
    pub(super) writer: StreamWriter<std::io::BufWriter<Box<dyn SpillWriter>>>,
}

impl PartFile {
    pub(super) fn create(spill: &Spill) -> Result<Self> {
        let file = spill.env.disk_manager.create_tmp_file("DedupEventsExec")?;
        let out = std::io::BufWriter::with_capacity(256 << 10, file.open_writer()?);
        spill.metrics.spill_file_count.add(1);
        Ok(PartFile {
            writer: StreamWriter::try_new(out, spill.manager.schema())?,
            file,
        })
    }

    pub(super) fn finish(self) -> Result<Arc<dyn SpillFile>> {
        let out = self.writer.into_inner()?;
        let mut out = out
            .into_inner()
            .map_err(|e| DataFusionError::IoError(e.into_error()))?;
        out.finish()?;
        Ok(self.file)
    }
}

/// Writes the held batches of an input to the spill files of their parts, one batch per part
/// (so the batches read back are as large as a chunk allows).
pub(super) fn write_parts(read: &mut Consumed, spill: &Spill) -> Result<()> {
    if read.held.is_empty() {
        return Ok(());
    }
    let mut pending: Vec<Vec<RecordBatch>> = vec![Vec::new(); spill.parts];
    for batch in read.held.drain(..) {
        add_all_by_part(&batch, &mut pending)?;
    }
    if read.files.is_empty() {
        read.files = (0..spill.parts).map(|_| None).collect();
    }
    for (part, slices) in pending.iter().enumerate() {
        let Some(first) = slices.first() else {
            continue;
        };
        let piece = concat_batches(&first.schema(), slices)?;
        let file = match &mut read.files[part] {
            Some(file) => file,
            slot => slot.insert(PartFile::create(spill)?),
        };
        file.writer.write(&piece)?;
        spill.metrics.spilled_rows.add(piece.num_rows());
        spill
            .metrics
            .spilled_bytes
            .add(piece.get_array_memory_size());
    }
    Ok(())
}

/// The events written out by part, and what is needed to cut each part.
pub(super) struct SpilledParts {
    /// Per part, its spill files (one per input that had rows of it).
    pub(super) files: Vec<Vec<Arc<dyn SpillFile>>>,
    /// Per part, the decided rows of crossing eventIds (with `copy`).
    pub(super) decided: Vec<Mutex<Vec<RecordBatch>>>,
    pub(super) repeated: Arc<Repeated>,
    pub(super) manager: SpillManager,
    pub(super) columns: Vec<Column>,
    pub(super) schema: SchemaRef,
    pub(super) outputs: usize,
    pub(super) sort_time: Time,
}

impl SpilledParts {
    /// A part's output rows: its unique boundary and purchase events, its repeated eventIds
    /// ordered exactly, and its share of the crossing eventIds decided before.
    pub(super) async fn part(self: Arc<Self>, part: usize) -> Result<Vec<RecordBatch>> {
        let bucket = bucket(part)?;
        let mut out = Vec::new();
        let mut aside = vec![Vec::new()];
        for file in read_parts(&self.manager, &self.files, [part]) {
            for batch in file.await? {
                let mut kept = Vec::new();
                sort_out(&batch, &self.repeated, true, &mut aside, |r, _| {
                    kept.push(r as u32)
                })?;
                if !kept.is_empty() {
                    let kept = take_record_batch(&batch, &UInt32Array::from(kept))?;
                    out.push(output_batch(&kept, &self.columns, &self.schema, bucket)?);
                }
            }
        }
        let started = self.sort_time.timer();
        let sorted = duplicated_rows(aside.pop().unwrap_or_default())?;
        started.done();
        if let Some(rows) = sorted {
            out.push(output_batch(&rows, &self.columns, &self.schema, bucket)?);
        }
        let decided = match self.decided[part].lock() {
            Ok(mut rows) => std::mem::take(&mut *rows),
            Err(_) => return exec_err!("DedupEventsExec: a task panicked"),
        };
        for rows in decided {
            out.push(output_batch(&rows, &self.columns, &self.schema, bucket)?);
        }
        Ok(out)
    }
}

/// Reads the spill files of `parts`, one future per file that yields its batches.
pub(super) fn read_parts<'a>(
    manager: &'a SpillManager,
    files: &'a [Vec<Arc<dyn SpillFile>>],
    parts: impl IntoIterator<Item = usize> + 'a,
) -> impl Iterator<Item = futures::future::BoxFuture<'a, Result<Vec<RecordBatch>>>> + 'a {
    parts
        .into_iter()
        .flat_map(move |part| files[part].iter())
        .map(move |file| {
            async move {
                manager
                    .read_spill_as_stream(file.clone(), None)?
                    .try_collect::<Vec<_>>()
                    .await
            }
            .boxed()
        })
}
