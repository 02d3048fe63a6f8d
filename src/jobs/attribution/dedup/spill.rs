//! The dedup's spilled form: the events written to disk by userId part (Arrow IPC, in the
//! compact layout of `compact.rs` where it applies), read back and cut one part at a time (see
//! the parent module's docs).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::{exec_err, DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SpillFile, SpillWriter};
use datafusion::physical_plan::metrics::{Count, SpillMetrics, Time};
use datafusion::physical_plan::spill::SpillManager;
use futures::{FutureExt, TryStreamExt};

use super::compact::{compact, compact_schema, expand, with_event_type_text, Layout};
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
    pub(super) managers: Managers,
    pub(super) env: Arc<RuntimeEnv>,
    pub(super) metrics: SpillMetrics,
    /// Rows written in the compact layout (of `spilled_rows`).
    pub(super) compact_rows: Count,
    pub(super) parts: usize,
}

/// A spill file and the layout of its rows.
#[derive(Clone)]
pub(super) struct SpilledFile {
    file: Arc<dyn SpillFile>,
    layout: Layout,
}

/// Reads spill files of either layout back as held rows.
pub(super) struct Managers {
    held: SpillManager,
    compact: SpillManager,
}

impl Managers {
    /// `held` is the schema of held rows.
    pub(super) fn new(env: Arc<RuntimeEnv>, metrics: SpillMetrics, held: SchemaRef) -> Self {
        let compact = compact_schema(&held);
        Managers {
            held: SpillManager::new(env.clone(), metrics.clone(), held),
            compact: SpillManager::new(env, metrics, compact),
        }
    }

    fn of(&self, layout: Layout) -> &SpillManager {
        match layout {
            Layout::Held => &self.held,
            Layout::Compact => &self.compact,
        }
    }

    /// The batches of `file`, as held rows.
    async fn read(&self, file: &SpilledFile) -> Result<Vec<RecordBatch>> {
        let batches = self.read_as_written(file).await?;
        match file.layout {
            Layout::Held => Ok(batches),
            Layout::Compact => {
                let held = self.held.schema();
                batches.iter().map(|b| expand(b, held)).collect()
            }
        }
    }

    /// The batches of `file` in its own layout.
    async fn read_as_written(&self, file: &SpilledFile) -> Result<Vec<RecordBatch>> {
        self.of(file.layout)
            .read_spill_as_stream(file.file.clone(), None)?
            .try_collect::<Vec<_>>()
            .await
    }
}

/// A part's spill file of one input in one layout, being written (Arrow IPC, as DataFusion's
/// own spills, so that its `SpillManager` reads it back).
pub(super) struct PartFile {
    file: Arc<dyn SpillFile>,
    layout: Layout,
    writer: StreamWriter<std::io::BufWriter<Box<dyn SpillWriter>>>,
}

/// An input's spill files of one part, one per layout it wrote.
pub(super) type PartFiles = [Option<PartFile>; 2];

impl PartFile {
    fn create(spill: &Spill, layout: Layout) -> Result<Self> {
        let file = spill.env.disk_manager.create_tmp_file("DedupEventsExec")?;
        let out = std::io::BufWriter::with_capacity(256 << 10, file.open_writer()?);
        spill.metrics.spill_file_count.add(1);
        Ok(PartFile {
            writer: StreamWriter::try_new(out, spill.managers.of(layout).schema())?,
            file,
            layout,
        })
    }

    pub(super) fn finish(self) -> Result<SpilledFile> {
        let out = self.writer.into_inner()?;
        let mut out = out
            .into_inner()
            .map_err(|e| DataFusionError::IoError(e.into_error()))?;
        out.finish()?;
        Ok(SpilledFile {
            file: self.file,
            layout: self.layout,
        })
    }
}

/// Writes the held batches of an input to the spill files of their parts, one batch per part
/// (so the batches read back are as large as a chunk allows).
pub(super) fn write_parts(read: &mut Consumed, spill: &Spill) -> Result<()> {
    if read.held.is_empty() {
        return Ok(());
    }
    // Each batch is encoded before it is split by part: the split and the concatenation of
    // each part's slices then copy 16 bytes an id instead of 36 and an offset, and a key
    // instead of each text (they were 4 % of a capped run's CPU when they copied the text).
    let mut pending: [Vec<Vec<RecordBatch>>; 2] =
        [vec![Vec::new(); spill.parts], vec![Vec::new(); spill.parts]];
    for batch in read.held.drain(..) {
        let (layout, batch) = match compact(&batch, spill.managers.compact.schema())? {
            Some(compact) => (Layout::Compact, compact),
            None => (Layout::Held, batch),
        };
        add_all_by_part(&batch, &mut pending[layout as usize])?;
    }
    if read.files.is_empty() {
        read.files = (0..spill.parts).map(|_| [None, None]).collect();
    }
    for layout in [Layout::Held, Layout::Compact] {
        for (part, slices) in pending[layout as usize].iter().enumerate() {
            let Some(first) = slices.first() else {
                continue;
            };
            let piece = concat_batches(&first.schema(), slices)?;
            let file = match &mut read.files[part][layout as usize] {
                Some(file) => file,
                slot => slot.insert(PartFile::create(spill, layout)?),
            };
            file.writer.write(&piece)?;
            spill.metrics.spilled_rows.add(piece.num_rows());
            if layout == Layout::Compact {
                spill.compact_rows.add(piece.num_rows());
            }
            spill
                .metrics
                .spilled_bytes
                .add(piece.get_array_memory_size());
        }
    }
    Ok(())
}

/// The events written out by part, and what is needed to cut each part.
pub(super) struct SpilledParts {
    /// Per part, its spill files (one per input and layout that had rows of it).
    pub(super) files: Vec<Vec<SpilledFile>>,
    /// Per part, the decided rows of crossing eventIds (with `copy`).
    pub(super) decided: Vec<Mutex<Vec<RecordBatch>>>,
    pub(super) repeated: Arc<Repeated>,
    pub(super) managers: Managers,
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
        // The rows of this part's repeated eventIds, as held rows, to be ordered exactly.
        let mut aside = Vec::new();
        let held = self.managers.held.schema();
        for file in &self.files[part] {
            for batch in self.managers.read_as_written(file).await? {
                // A compact batch is cut by its keys and event types, and only the rows kept
                // (about half) and those set aside are expanded back to text.
                let batch = match file.layout {
                    Layout::Held => batch,
                    Layout::Compact => with_event_type_text(&batch)?,
                };
                let mut kept = Vec::new();
                // One group: this part's repeated eventIds are ordered together.
                let mut set_aside = vec![Vec::new()];
                sort_out(&batch, &self.repeated, true, &mut set_aside, |r, _| {
                    kept.push(r as u32)
                })?;
                let expanded = |rows: RecordBatch| match file.layout {
                    Layout::Held => Ok(rows),
                    Layout::Compact => expand(&rows, held),
                };
                for rows in set_aside.into_iter().flatten() {
                    aside.push(expanded(rows)?);
                }
                if !kept.is_empty() {
                    let kept = expanded(take_record_batch(&batch, &UInt32Array::from(kept))?)?;
                    out.push(output_batch(&kept, &self.columns, &self.schema, bucket)?);
                }
            }
        }
        let started = self.sort_time.timer();
        let sorted = duplicated_rows(aside)?;
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

/// Reads the spill files of `parts`, one future per file that yields its batches (as held
/// rows).
pub(super) fn read_parts<'a>(
    managers: &'a Managers,
    files: &'a [Vec<SpilledFile>],
    parts: impl IntoIterator<Item = usize> + 'a,
) -> impl Iterator<Item = futures::future::BoxFuture<'a, Result<Vec<RecordBatch>>>> + 'a {
    parts
        .into_iter()
        .flat_map(move |part| files[part].iter())
        .map(move |file| managers.read(file).boxed())
}
