//! The orchestration of [`super::DedupEventsExec`]: reads every input partition, finds the
//! repeated ids, and prepares the output partitions in memory or part by part from spills.

use super::*;

/// The output partitions, ready to be taken.
pub(super) enum Prepared {
    /// Each is taken by its stream, so that memory is released as the consumer reads.
    InMemory {
        partitions: Vec<Mutex<Option<Vec<RecordBatch>>>>,
        reservation: MemoryReservation,
    },
    /// Computed part by part from the spill files as the consumer reads.
    Spilled(Arc<SpilledParts>),
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Prepared::InMemory { .. } => write!(f, "Prepared::InMemory"),
            Prepared::Spilled(_) => write!(f, "Prepared::Spilled"),
        }
    }
}

pub(super) type BatchStream = futures::stream::BoxStream<'static, Result<RecordBatch>>;

impl Prepared {
    pub(super) fn stream(&self, partition: usize) -> Result<BatchStream> {
        match self {
            Prepared::InMemory {
                partitions,
                reservation,
            } => {
                let Some(slot) = partitions.get(partition) else {
                    return exec_err!("DedupEventsExec has no partition {partition}");
                };
                let taken = match slot.lock() {
                    Ok(mut batches) => batches.take(),
                    Err(_) => return exec_err!("DedupEventsExec: a task panicked"),
                };
                // An empty answer here would be a wrong one: a plan that runs a partition
                // twice must reset the node first (`reset_state`).
                let Some(batches) = taken else {
                    return exec_err!("DedupEventsExec: partition {partition} executed twice");
                };
                let bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
                reservation.shrink(bytes.min(reservation.size()));
                Ok(futures::stream::iter(batches.into_iter().map(Ok)).boxed())
            }
            Prepared::Spilled(spilled) => {
                let spilled = spilled.clone();
                let parts = (partition..spilled.files.len()).step_by(spilled.outputs.max(1));
                Ok(futures::stream::iter(parts)
                    .then(move |part| spilled.clone().part(part))
                    .map_ok(|batches| futures::stream::iter(batches.into_iter().map(Ok)))
                    .try_flatten()
                    .boxed())
            }
        }
    }
}

/// Everything [`Prepared`] is computed from.
pub(super) struct Job {
    pub(super) input: Arc<dyn ExecutionPlan>,
    pub(super) context: Arc<TaskContext>,
    pub(super) hash: HashFn,
    pub(super) columns: Vec<Column>,
    pub(super) schema: SchemaRef,
    pub(super) outputs: usize,
    pub(super) parts: usize,
    pub(super) spill_at: usize,
    pub(super) metrics: ExecutionPlanMetricsSet,
}

impl Job {
    /// Reads every input partition (a task each) with each row's key; finds the eventIds
    /// whose hash repeats (`repeated_ids`); then cuts the rows to the boundary and purchase
    /// events with a unique hash and orders the rows whose hash repeats exactly: in memory
    /// ([`Job::in_memory`]) or, when the events spilled, part by part as they are read back.
    pub(super) async fn run(self) -> Result<Prepared> {
        // Not registered as spilling: a fair pool would divide every spilling operator's share
        // by one more for as long as the plan lives, though this one gives its memory back
        // when the input ends. A refusal still makes it spill.
        let reservation =
            Arc::new(MemoryConsumer::new("DedupEventsExec").register(self.context.memory_pool()));
        let schema = held_schema(&self.input.schema());
        let env = self.context.runtime_env();
        let metrics = SpillMetrics::new(&self.metrics, 0);
        let spill = Arc::new(Spill {
            budget: Budget::new(self.spill_at, self.parts),
            chunk: (self.spill_at / 8).min(MAX_CHUNK),
            managers: Managers::new(env.clone(), metrics.clone(), schema),
            env,
            metrics,
            compact_rows: MetricBuilder::new(&self.metrics).counter("spilled_compact_rows", 0),
            parts: self.parts,
        });
        let inputs = self.input.output_partitioning().partition_count();
        let mut tasks = Vec::with_capacity(inputs);
        for i in 0..inputs {
            let stream = self.input.execute(i, self.context.clone())?;
            let metrics = BaselineMetrics::new(&self.metrics, i);
            let (reservation, spill, hash) = (reservation.clone(), spill.clone(), self.hash);
            tasks.push(SpawnedTask::spawn(async move {
                consume(stream, hash, &spill, &reservation, &metrics).await
            }));
        }
        let mut read = Vec::with_capacity(inputs);
        for task in tasks {
            read.push(joined(task.join().await)?);
        }
        let keys = read
            .iter_mut()
            .map(|r| std::mem::take(&mut r.keys))
            .collect();
        let repeated = Arc::new(repeated_ids(keys, inputs.max(1)).await?);
        if !spill.budget.spilling()? {
            let held = read.into_iter().map(|r| r.held).collect();
            return self.in_memory(held, repeated, reservation).await;
        }
        // Inputs that ended before the others gave up parts still hold their rows. Their
        // batches are split by part in as many tasks as there are inputs, whichever input
        // holds them: at 5M events under a 2 GiB cap one input held them all, and splitting
        // them in its task kept a core idle for a second.
        let groups = read.len().max(1);
        let mut shares: Vec<Vec<RecordBatch>> = vec![Vec::new(); groups];
        let unsplit = read.iter_mut().flat_map(|r| std::mem::take(&mut r.held));
        for (i, batch) in unsplit.enumerate() {
            shares[i % groups].push(batch);
        }
        let shares = shares.into_iter().map(Consumed::holding);
        let mut tasks = Vec::with_capacity(2 * groups);
        // The inputs themselves only write out the rows of parts given up since they split.
        for mut input in read.into_iter().chain(shares) {
            let spill = spill.clone();
            tasks.push(SpawnedTask::spawn_blocking(move || {
                let kept = write_parts(&mut input, &spill)?;
                Ok::<_, DataFusionError>((input, kept))
            }));
        }
        let mut files: Vec<Vec<SpilledFile>> = vec![Vec::new(); self.parts];
        let mut in_memory: Vec<Vec<Piece>> = vec![Vec::new(); self.parts];
        let mut kept_bytes = 0;
        for task in tasks {
            let (input, kept) = joined(task.join().await)?;
            kept_bytes += kept;
            for by_part in std::iter::once(input.files).chain(input.helped) {
                for (part, layouts) in by_part.into_iter().enumerate() {
                    for file in layouts.into_iter().flatten() {
                        files[part].push(file.finish()?);
                    }
                }
            }
            for (part, pieces) in input.in_memory.into_iter().enumerate() {
                in_memory[part].extend(pieces);
            }
        }
        // The keys are gone: what stays is the rows kept in memory.
        reservation.resize(kept_bytes);
        MetricBuilder::new(&self.metrics)
            .counter("parts_in_memory", 0)
            .add(spill.budget.kept()?);
        let sort_time = MetricBuilder::new(&self.metrics).subset_time("duplicates_sort_time", 0);
        let decided = self
            .crossing(&spill.managers, &files, &in_memory, &repeated, &sort_time)
            .await?;
        let spill = Arc::try_unwrap(spill).map_err(|_| exec_datafusion_err!("spill in use"))?;
        Ok(Prepared::Spilled(Arc::new(SpilledParts {
            files,
            in_memory: in_memory.into_iter().map(Mutex::new).collect(),
            reservation,
            decided: decided.into_iter().map(Mutex::new).collect(),
            repeated,
            managers: spill.managers,
            columns: self.columns,
            schema: self.schema,
            outputs: self.outputs,
            sort_time,
        })))
    }

    /// The rows of eventIds whose rows lie in more than one part, ordered exactly, by part:
    /// read back from the parts that hold them (on disk or in memory) before any part is cut.
    pub(super) async fn crossing(
        &self,
        managers: &Managers,
        files: &[Vec<SpilledFile>],
        in_memory: &[Vec<Piece>],
        repeated: &Repeated,
        sort_time: &Time,
    ) -> Result<Vec<Vec<RecordBatch>>> {
        let mut decided = vec![Vec::new(); self.parts];
        MetricBuilder::new(&self.metrics)
            .counter("crossing_parts", 0)
            .add(repeated.crossing_parts.len());
        if repeated.crossing_parts.is_empty() {
            return Ok(decided);
        }
        let mut candidates = Vec::new();
        let parts = repeated.crossing_parts.iter().copied();
        for batches in read_parts(managers, files, in_memory, parts) {
            for batch in batches.await? {
                let mask: BooleanArray = key_column(&batch)?
                    .iter()
                    .map(|&k| Some(repeated.get(k) == Some(true)))
                    .collect();
                if mask.true_count() > 0 {
                    candidates.push(filter_record_batch(&batch, &mask)?);
                }
            }
        }
        let started = sort_time.timer();
        let sorted = duplicated_rows(candidates)?;
        started.done();
        if let Some(rows) = sorted {
            add_all_by_part(&rows, &mut decided)?;
        }
        Ok(decided)
    }

    /// Cuts each input's rows (a task each) to the boundary and purchase events with a unique
    /// hash, gathered by part, setting aside the rows whose hash repeats, which are sorted in
    /// groups by hash (a task each). Each output partition gives its parts in ascending order,
    /// as when the events spilled, so the aggregation above emits one part's users at a time.
    pub(super) async fn in_memory(
        self,
        held: Vec<Vec<RecordBatch>>,
        repeated: Arc<Repeated>,
        reservation: Arc<MemoryReservation>,
    ) -> Result<Prepared> {
        let job = Arc::new(self);
        // Rule 4's order matters only among the rows of one eventId, so the repeated rows are
        // sorted in groups by hash, a task each: no step waits on one core (at 50M events
        // one sort of them all was 6 s with the other core idle).
        let groups = held.len().max(1);
        let mut tasks = Vec::with_capacity(held.len());
        for batches in held {
            let (job, repeated) = (job.clone(), repeated.clone());
            tasks.push(SpawnedTask::spawn(async move {
                let mut aside = vec![Vec::new(); groups];
                let mut out = vec![Vec::new(); job.parts];
                let mut pending: Vec<Vec<RecordBatch>> = vec![Vec::new(); job.parts];
                let mut pending_bytes = 0;
                let mut kept = Vec::new();
                for batch in batches {
                    kept.clear();
                    sort_out(&batch, &repeated, false, &mut aside, |r, k| {
                        kept.push(by_part(k, r))
                    })?;
                    pending_bytes += add_by_part(&batch, &kept, &mut pending)?;
                    // Concatenating a chunk at a time makes batches of a useful size while
                    // bounding the copies held beside the input.
                    if pending_bytes >= MAX_CHUNK {
                        job.gather(&mut pending, &mut out)?;
                        pending_bytes = 0;
                    }
                }
                job.gather(&mut pending, &mut out)?;
                Ok::<_, DataFusionError>((out, aside))
            }));
        }
        let mut unique = Vec::with_capacity(tasks.len());
        let mut duplicated: Vec<Vec<RecordBatch>> = vec![Vec::new(); groups];
        for task in tasks {
            let (out, aside) = joined(task.join().await)?;
            unique.push(out);
            for (group, batches) in duplicated.iter_mut().zip(aside) {
                group.extend(batches);
            }
        }
        let sort_time = MetricBuilder::new(&job.metrics).subset_time("duplicates_sort_time", 0);
        let mut sorts = Vec::with_capacity(groups);
        for candidates in duplicated {
            let (job, sort_time) = (job.clone(), sort_time.clone());
            sorts.push(SpawnedTask::spawn(async move {
                let started = sort_time.timer();
                let rows = duplicated_rows(candidates)?;
                started.done();
                let mut out = vec![Vec::new(); job.parts];
                if let Some(rows) = rows {
                    add_all_by_part(&rows, &mut out)?;
                    for (part, slices) in out.iter_mut().enumerate() {
                        for slice in slices.iter_mut() {
                            *slice = job.output(slice, part)?;
                        }
                    }
                }
                Ok::<_, DataFusionError>(out)
            }));
        }
        let mut by_part: Vec<Vec<RecordBatch>> = vec![Vec::new(); job.parts];
        let mut add = |split: Vec<Vec<RecordBatch>>| {
            for (part, batches) in split.into_iter().enumerate() {
                by_part[part].extend(batches);
            }
        };
        // A fixed order (duplicates, then each input's rows), whatever finishes first.
        for task in sorts {
            add(joined(task.join().await)?);
        }
        for split in unique {
            add(split);
        }
        let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); job.outputs];
        for (part, batches) in by_part.into_iter().enumerate() {
            partitions[part % job.outputs].extend(batches);
        }
        let bytes: usize = partitions
            .iter()
            .flatten()
            .map(RecordBatch::get_array_memory_size)
            .sum();
        let reservation = Arc::try_unwrap(reservation).unwrap_or_else(|shared| shared.new_empty());
        reservation.resize(bytes);
        Ok(Prepared::InMemory {
            partitions: partitions
                .into_iter()
                .map(|p| Mutex::new(Some(p)))
                .collect(),
            reservation,
        })
    }

    /// Concatenates each part's pending slices into one output batch and empties them.
    pub(super) fn gather(
        &self,
        pending: &mut [Vec<RecordBatch>],
        out: &mut [Vec<RecordBatch>],
    ) -> Result<()> {
        for (part, slices) in pending.iter_mut().enumerate() {
            if let Some(first) = slices.first() {
                let rows = concat_batches(&first.schema(), slices.iter())?;
                out[part].push(self.output(&rows, part)?);
                slices.clear();
            }
        }
        Ok(())
    }

    /// The output columns of held rows of part `part`.
    pub(super) fn output(&self, rows: &RecordBatch, part: usize) -> Result<RecordBatch> {
        output_batch(rows, &self.columns, &self.schema, bucket(part)?)
    }
}

/// The `userBucket` of a part.
pub(super) fn bucket(part: usize) -> Result<i32> {
    i32::try_from(part).map_err(|_| exec_datafusion_err!("DedupEventsExec: part {part} too large"))
}

/// Adds every row of held rows `batch` to `pending`, a slice per part (see [`add_by_part`]).
pub(super) fn add_all_by_part(
    batch: &RecordBatch,
    pending: &mut [Vec<RecordBatch>],
) -> Result<usize> {
    let keys = key_column(batch)?.iter().enumerate();
    let rows: Vec<u64> = keys.map(|(r, &k)| by_part(k, r)).collect();
    add_by_part(batch, &rows, pending)
}

pub(super) fn joined<T>(result: std::result::Result<Result<T>, JoinError>) -> Result<T> {
    result.map_err(|e| exec_datafusion_err!("DedupEventsExec: a task failed: {e}"))?
}
