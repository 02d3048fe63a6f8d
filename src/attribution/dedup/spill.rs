//! The dedup's spilled form: the events written to disk by userId part (Arrow IPC, in the
//! compact layout of `compact.rs` where it applies), read back and cut one part at a time (see
//! the parent module's docs). The first time the held events pass `spill_at` only some parts
//! go to disk ([`Budget`]); the others stay in memory, split by part in the same layout, and
//! are cut the same way.

use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::{exec_err, DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryReservation;
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
    /// Which parts stay in memory.
    pub(super) budget: Budget,
    /// Held bytes an input collects before it splits them by part, once spilling.
    pub(super) chunk: usize,
    /// Reads the spill files back.
    pub(super) managers: Managers,
    pub(super) env: Arc<RuntimeEnv>,
    pub(super) metrics: SpillMetrics,
    /// Rows written in the compact layout (of `spilled_rows`).
    pub(super) compact_rows: Count,
    pub(super) parts: usize,
}

/// Decides how many parts the inputs keep in memory. Parts are userId hashes, so each holds
/// about the same share of the events; giving up the highest parts first keeps in memory the
/// ones each output partition gives first, so their memory is freed first.
///
/// Spilling every part once the held events passed `spill_at` made a run whose events only
/// just pass it write them all (5M events under a 2 GiB cap wrote 498 MB where 3 GiB wrote
/// 29 MB, and took 40 % longer). Now the first time the events pass `spill_at`, the highest
/// parts are given up until the others take half of it, and each row is written at most
/// once. The second time, the input is at least one and a half times `spill_at` and still
/// growing: every part goes, as before, and the input holds only its keys and a chunk. (Cutting
/// again each time kept about 1 GiB in the pool through the whole input of 50M events under a
/// 2 GiB cap where spilling all held 300 MiB, for the few parts still kept at the end; beside
/// the memory the pool does not see, the decoders' and the allocator's, the process then went
/// above the cap.)
pub(super) struct Budget {
    spill_at: usize,
    parts: usize,
    held: Mutex<Held>,
}

/// The bytes the inputs hold, as [`Budget`] counts them.
struct Held {
    /// Parts below this stay in memory; the others go to disk.
    kept: usize,
    /// The rows' keys, which stay in memory whatever happens.
    keys: usize,
    /// Held rows not yet split by part: of every part, in about equal shares.
    unsplit: usize,
    /// Per part, its rows split and kept in memory.
    by_part: Vec<usize>,
}

impl Held {
    /// The bytes the parts kept in memory take (or will, once split).
    fn committed(&self) -> usize {
        let kept = self.by_part[..self.kept].iter().sum::<usize>();
        self.keys + kept + self.unsplit / self.by_part.len().max(1) * self.kept
    }
}

impl Budget {
    pub(super) fn new(spill_at: usize, parts: usize) -> Self {
        Budget {
            spill_at,
            parts,
            held: Mutex::new(Held {
                kept: parts,
                keys: 0,
                unsplit: 0,
                by_part: vec![0; parts],
            }),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Held>> {
        match self.held.lock() {
            Ok(held) => Ok(held),
            Err(_) => exec_err!("DedupEventsExec: a task panicked"),
        }
    }

    /// Whether any part goes to disk.
    pub(super) fn spilling(&self) -> Result<bool> {
        Ok(self.kept()? < self.parts)
    }

    /// The parts kept in memory: `0..kept`.
    pub(super) fn kept(&self) -> Result<usize> {
        Ok(self.lock()?.kept)
    }

    /// An input read `keys` bytes of keys and a batch of `bytes`, which the pool `granted` or
    /// not. Gives up parts if the events kept in memory now pass `spill_at` (all of them if
    /// the pool said no) and returns the parts kept.
    pub(super) fn read(&self, keys: usize, bytes: usize, granted: bool) -> Result<usize> {
        let mut held = self.lock()?;
        held.keys += keys;
        held.unsplit += bytes;
        let over = held.committed() > self.spill_at;
        if !granted || (over && held.kept < self.parts) {
            held.kept = 0;
        } else if over {
            // The parts from the lowest, each with its share of the rows not yet split, while
            // they fit in half of `spill_at` beside the keys.
            let share = held.unsplit / self.parts.max(1);
            let mut total = held.keys;
            let kept = held.by_part.iter().take_while(|&&bytes| {
                total += bytes + share;
                total <= self.spill_at / 2
            });
            held.kept = kept.count();
        }
        Ok(held.kept)
    }

    /// An input split `unsplit` bytes of held rows by part.
    fn split(&self, unsplit: usize) -> Result<()> {
        let mut held = self.lock()?;
        held.unsplit = held.unsplit.saturating_sub(unsplit);
        Ok(())
    }

    /// `bytes` of part `part` were kept in memory (`kept`) or written out.
    fn kept_in_memory(&self, part: usize, bytes: usize, kept: bool) -> Result<()> {
        let mut held = self.lock()?;
        let Some(total) = held.by_part.get_mut(part) else {
            return exec_err!("DedupEventsExec: part {part} of {}", self.parts);
        };
        *total = match kept {
            true => *total + bytes,
            false => total.saturating_sub(bytes),
        };
        Ok(())
    }
}

/// Rows of one part kept in memory once the events spill, in the layout they would have on
/// disk.
#[derive(Clone)]
pub(super) struct Piece {
    layout: Layout,
    batch: RecordBatch,
}

impl Piece {
    pub(super) fn bytes(&self) -> usize {
        self.batch.get_array_memory_size()
    }
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
        batches
            .into_iter()
            .map(|b| self.as_held(file.layout, b))
            .collect()
    }

    /// Rows `batch` in `layout`, as held rows.
    fn as_held(&self, layout: Layout, batch: RecordBatch) -> Result<RecordBatch> {
        match layout {
            Layout::Held => Ok(batch),
            Layout::Compact => expand(&batch, self.held.schema()),
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
/// (so the batches read back are as large as a chunk allows), keeping the parts the [`Budget`]
/// keeps in memory instead; and writes out the rows this input kept of parts given up since.
/// Returns the bytes of the rows this input now keeps in memory.
pub(super) fn write_parts(read: &mut Consumed, spill: &Spill) -> Result<usize> {
    let kept = spill.budget.kept()?;
    if read.files.is_empty() {
        read.files = (0..spill.parts).map(|_| [None, None]).collect();
        read.in_memory = vec![Vec::new(); spill.parts];
    }
    for part in kept..spill.parts {
        for piece in std::mem::take(&mut read.in_memory[part]) {
            spill.budget.kept_in_memory(part, piece.bytes(), false)?;
            write_piece(read, spill, part, &piece)?;
        }
    }
    if !read.held.is_empty() {
        // Each batch is encoded before it is split by part: the split and the concatenation
        // of each part's slices then copy 16 bytes an id instead of 36 and an offset, and a
        // key instead of each text (they were 4 % of a capped run's CPU when they copied the
        // text).
        let mut pending: [Vec<Vec<RecordBatch>>; 2] =
            [vec![Vec::new(); spill.parts], vec![Vec::new(); spill.parts]];
        let mut split = 0;
        for batch in read.held.drain(..) {
            split += batch.get_array_memory_size();
            let (layout, batch) = match compact(&batch, spill.managers.compact.schema())? {
                Some(compact) => (Layout::Compact, compact),
                None => (Layout::Held, batch),
            };
            add_all_by_part(&batch, &mut pending[layout as usize])?;
        }
        for layout in [Layout::Held, Layout::Compact] {
            for (part, slices) in pending[layout as usize].iter().enumerate() {
                let Some(first) = slices.first() else {
                    continue;
                };
                let piece = Piece {
                    layout,
                    batch: concat_batches(&first.schema(), slices)?,
                };
                if part < kept {
                    spill.budget.kept_in_memory(part, piece.bytes(), true)?;
                    read.in_memory[part].push(piece);
                } else {
                    write_piece(read, spill, part, &piece)?;
                }
            }
        }
        spill.budget.split(split)?;
    }
    Ok(read.in_memory.iter().flatten().map(Piece::bytes).sum())
}

/// Appends `piece` to this input's spill file of its part and layout.
fn write_piece(read: &mut Consumed, spill: &Spill, part: usize, piece: &Piece) -> Result<()> {
    let Some(files) = read.files.get_mut(part) else {
        return exec_err!("DedupEventsExec: part {part} of {}", spill.parts);
    };
    let file = match &mut files[piece.layout as usize] {
        Some(file) => file,
        slot => slot.insert(PartFile::create(spill, piece.layout)?),
    };
    file.writer.write(&piece.batch)?;
    let rows = piece.batch.num_rows();
    spill.metrics.spilled_rows.add(rows);
    if piece.layout == Layout::Compact {
        spill.compact_rows.add(rows);
    }
    spill.metrics.spilled_bytes.add(piece.bytes());
    Ok(())
}

/// The events written out by part, and what is needed to cut each part.
pub(super) struct SpilledParts {
    /// Per part, its spill files (one per input and layout that had rows of it).
    pub(super) files: Vec<Vec<SpilledFile>>,
    /// Per part, its rows kept in memory (taken when the part is cut).
    pub(super) in_memory: Vec<Mutex<Vec<Piece>>>,
    /// Holds the bytes of `in_memory`.
    pub(super) reservation: Arc<MemoryReservation>,
    /// Per part, the decided rows of crossing eventIds (with `copy`).
    pub(super) decided: Vec<Mutex<Vec<RecordBatch>>>,
    pub(super) repeated: Arc<Repeated>,
    pub(super) managers: Managers,
    pub(super) columns: Vec<Column>,
    pub(super) schema: SchemaRef,
    pub(super) outputs: usize,
    pub(super) sort_time: Time,
}

impl Drop for SpilledParts {
    /// Deleting the spill files makes the kernel drop their cached pages: at 50M events under
    /// a 2 GiB cap (4.5 GB of files) over a second with the cores all but idle, before the next
    /// step could start. A thread of its own deletes them while that step runs (inline if no
    /// thread can be started).
    fn drop(&mut self) {
        let files = std::mem::take(&mut self.files);
        if files.iter().any(|f| !f.is_empty()) {
            let _ = std::thread::Builder::new()
                .name("spill-cleanup".into())
                .spawn(move || drop(files));
        }
    }
}

impl SpilledParts {
    /// A part's output rows: its unique boundary and purchase events, its repeated eventIds
    /// ordered exactly, and its share of the crossing eventIds decided before.
    pub(super) async fn part(self: Arc<Self>, part: usize) -> Result<Vec<RecordBatch>> {
        let bucket = bucket(part)?;
        let mut out = Vec::new();
        // The rows of this part's repeated eventIds, as held rows, to be ordered exactly.
        let mut aside = Vec::new();
        for file in &self.files[part] {
            for batch in self.managers.read_as_written(file).await? {
                self.cut(file.layout, &batch, bucket, &mut out, &mut aside)?;
            }
        }
        let pieces = match self.in_memory[part].lock() {
            Ok(mut pieces) => std::mem::take(&mut *pieces),
            Err(_) => return exec_err!("DedupEventsExec: a task panicked"),
        };
        let mut bytes = 0;
        for piece in pieces {
            self.cut(piece.layout, &piece.batch, bucket, &mut out, &mut aside)?;
            bytes += piece.bytes();
        }
        self.reservation.shrink(bytes.min(self.reservation.size()));
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

    /// Cuts a batch of a part in `layout`: the boundary and purchase events with a unique
    /// hash go to `out` as output rows, the rows whose hash repeats to `aside` as held rows.
    fn cut(
        &self,
        layout: Layout,
        batch: &RecordBatch,
        bucket: i32,
        out: &mut Vec<RecordBatch>,
        aside: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        // A compact batch is cut by its keys and event types, and only the rows kept (about
        // half) and those set aside are expanded back to text.
        let batch = match layout {
            Layout::Held => batch.clone(),
            Layout::Compact => with_event_type_text(batch)?,
        };
        let mut kept = Vec::new();
        // One group: this part's repeated eventIds are ordered together.
        let mut set_aside = vec![Vec::new()];
        sort_out(&batch, &self.repeated, true, &mut set_aside, |r, _| {
            kept.push(r as u32)
        })?;
        for rows in set_aside.into_iter().flatten() {
            aside.push(self.managers.as_held(layout, rows)?);
        }
        if !kept.is_empty() {
            let rows = take_record_batch(&batch, &UInt32Array::from(kept))?;
            let kept = self.managers.as_held(layout, rows)?;
            out.push(output_batch(&kept, &self.columns, &self.schema, bucket)?);
        }
        Ok(())
    }
}

/// The rows of `parts`, as held rows: one future per spill file, then one per piece kept in
/// memory, each yielding its batches.
pub(super) fn read_parts<'a>(
    managers: &'a Managers,
    files: &'a [Vec<SpilledFile>],
    in_memory: &'a [Vec<Piece>],
    parts: impl IntoIterator<Item = usize> + Clone + 'a,
) -> impl Iterator<Item = futures::future::BoxFuture<'a, Result<Vec<RecordBatch>>>> + 'a {
    let from_files = parts
        .clone()
        .into_iter()
        .flat_map(move |part| files[part].iter())
        .map(move |file| managers.read(file).boxed());
    let from_memory = parts
        .into_iter()
        .flat_map(move |part| in_memory[part].iter())
        .map(move |piece| {
            let rows = managers.as_held(piece.layout, piece.batch.clone());
            futures::future::ready(rows.map(|rows| vec![rows])).boxed()
        });
    from_files.chain(from_memory)
}

#[cfg(test)]
mod tests {
    use super::Budget;

    /// The first time the bytes kept in memory (keys, rows split and kept, and the kept
    /// parts' share of rows not yet split) pass `spill_at`, parts are given up from the
    /// highest until they take half of it; the second time, all of them; a part never comes
    /// back; a refusal of the pool gives up all.
    #[test]
    fn parts_are_given_up_from_the_highest_until_half_is_free_then_all() {
        let budget = Budget::new(1000, 10);
        assert_eq!(budget.read(100, 800, true).unwrap(), 10, "900 of 1000");
        assert!(!budget.spilling().unwrap());
        // 110 of keys and 1000 unsplit, 100 a part: 110 + 3 × 100 ≤ 500 < 110 + 4 × 100.
        assert_eq!(budget.read(10, 200, true).unwrap(), 3, "1110 of 1000");
        assert!(budget.spilling().unwrap());
        // Split: each kept part keeps 50 bytes (compact); the given-up ones went to disk.
        budget.split(1000).unwrap();
        for part in 0..3 {
            budget.kept_in_memory(part, 50, true).unwrap();
        }
        // 110 + 150 + 3 × 200 = 860: nothing more to give up.
        assert_eq!(budget.read(0, 2000, true).unwrap(), 3, "860 of 1000");
        // Written out, a part's bytes no longer count.
        budget.kept_in_memory(2, 50, false).unwrap();
        assert_eq!(budget.read(0, 0, true).unwrap(), 3, "810 of 1000");
        // 110 + 100 + 3 × 260 = 990, then 1050 with part 2's rows kept again.
        assert_eq!(budget.read(0, 600, true).unwrap(), 3, "990 of 1000");
        budget.kept_in_memory(2, 60, true).unwrap();
        assert_eq!(budget.read(0, 0, true).unwrap(), 0, "1050 of 1000, again");
        assert!(budget.kept_in_memory(10, 1, true).is_err(), "no part 10");
        let refused = Budget::new(1000, 10);
        assert_eq!(refused.read(0, 10, false).unwrap(), 0, "the pool refused");
        assert!(refused.spilling().unwrap());
    }
}
