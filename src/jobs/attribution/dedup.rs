//! Rule 4 for events by hashing: the in-process twin of `dedup.sql`.
//!
//! `dedup.sql` sorts every event by eventId to find the rows that share one. On one machine
//! with no memory cap that sort was the largest cost of the job (concatenating, comparing and
//! gathering every row: about 40 % of the CPU time on 5M events, docs/performance.md), although
//! almost every eventId occurs once. [`DedupEventsExec`] instead hashes each eventId and keeps
//! the rows: an eventId whose hash occurs once is unique, and its row passes with `copy = 1`
//! if it is a boundary or purchase event. Only the rows whose hash occurs more than once (the
//! duplicates, and in theory distinct eventIds whose hashes collide) are sorted, exactly as
//! `dedup.sql` orders them, so the result is the same row for row whatever the hash does.
//!
//! It reads every input partition itself, a task each; at the end of the input the hashes of
//! all partitions are sorted, by ranges of values in parallel, to find those that repeat. So
//! the events need no repartitioning by eventId; and it splits what it passes by userId with
//! DataFusion's own hash partitioning, so the `sessionize` aggregation above it runs in one
//! phase instead of partial states repartitioned and merged (docs/performance.md). The first
//! output partition polled computes all of them, as a `RepartitionExec` does, so no partition
//! waits for another to be polled.
//!
//! It holds every event until its input ends, as the sort does, but cannot spill: it is used
//! only when the job runs in this process without a memory cap (`pipeline::dedup`); under a
//! cap and on a cluster `dedup.sql` runs instead. [`RelevantEvents`] is the table the session
//! step reads, with the schema of `dedup.sql`'s view.

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, RecordBatchOptions,
    StringArray,
};
use datafusion::arrow::compute::{
    concat_batches, filter, filter_record_batch, lexsort_to_indices, take_record_batch, SortColumn,
    SortOptions,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_datafusion_err, exec_err, plan_err, DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::expressions::col;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;
use tokio::task::JoinError;

/// How rule 4 finds the events that share an eventId.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dedup {
    /// `dedup.sql`: a sort, which spills under a memory cap and runs on a cluster.
    Sort,
    /// [`DedupEventsExec`]: hashing, in memory, in this process.
    Hash,
}

/// The columns of `events` that rule 4 reads, in the order [`DedupEventsExec`] expects them.
const INPUT: [&str; 9] = [
    "userId",
    "eventId",
    "eventType",
    "eventTime",
    "attributes",
    "campaignId",
    "channelId",
    "purchaseId",
    crate::input::schema::SOURCE_ROW,
];
const USER_ID: usize = 0;
const EVENT_ID: usize = 1;
const EVENT_TYPE: usize = 2;
const EVENT_TIME: usize = 3;
const ATTRIBUTES: usize = 4;
const SOURCE_ROW: usize = 8;

/// How an eventId is hashed. Replaceable so that tests can make every eventId collide.
type HashFn = fn(&[u8]) -> u64;

/// The eventId hash: fixed seeds, so the same eventIds are candidates in every run (the result
/// does not depend on the hash, only the work done).
fn event_id_hash(id: &[u8]) -> u64 {
    static STATE: std::sync::LazyLock<ahash::RandomState> = std::sync::LazyLock::new(|| {
        ahash::RandomState::with_seeds(
            0x6d61_726b_6574,
            0x696e_672d_616e,
            0x616c_7974_6963,
            0x7320_6465_6475,
        )
    });
    STATE.hash_one(id)
}

/// The session step's view of the events: `dedup.sql`'s columns, computed by hashing.
#[derive(Debug)]
pub struct RelevantEvents {
    events: Arc<dyn TableProvider>,
    /// The schema of `dedup.sql`'s view, which this table reproduces.
    schema: SchemaRef,
    hash: HashFn,
}

impl RelevantEvents {
    /// `schema` is the schema of `dedup.sql`'s view over `events`.
    pub fn new(events: Arc<dyn TableProvider>, schema: SchemaRef) -> Self {
        RelevantEvents {
            events,
            schema,
            hash: event_id_hash,
        }
    }
}

#[async_trait]
impl TableProvider for RelevantEvents {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let events_schema = self.events.schema();
        let input_columns = INPUT
            .iter()
            .map(|name| events_schema.index_of(name))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let input = self
            .events
            .scan(state, Some(&input_columns), &[], None)
            .await?;
        let outputs = match projection {
            Some(indices) => indices.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        Ok(Arc::new(DedupEventsExec::try_new(
            input,
            &self.schema,
            &outputs,
            self.hash,
            state.config().target_partitions().max(1),
        )?))
    }
}

/// Where an output column comes from.
#[derive(Debug, Clone, Copy)]
enum Column {
    Input(usize),
    TieRank,
    Copy,
}

/// Rule 4 over the events, however they are partitioned (see the module docs).
#[derive(Debug)]
pub struct DedupEventsExec {
    input: Arc<dyn ExecutionPlan>,
    hash: HashFn,
    columns: Vec<Column>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    /// The output partitions, computed once, for all of them, by the first one polled (as a
    /// `RepartitionExec` does): no partition waits for another to be polled.
    prepared: Arc<OnceCell<std::result::Result<Arc<Prepared>, Arc<DataFusionError>>>>,
}

impl DedupEventsExec {
    /// `input` has the columns [`INPUT`]; the output has the fields `outputs` of `view` (the
    /// schema of `dedup.sql`'s view) in `partitions` partitions, by userId when it has it.
    fn try_new(
        input: Arc<dyn ExecutionPlan>,
        view: &SchemaRef,
        outputs: &[usize],
        hash: HashFn,
        partitions: usize,
    ) -> Result<Self> {
        let input_schema = input.schema();
        let mut columns = Vec::with_capacity(outputs.len());
        for &i in outputs {
            let field = view.field(i);
            columns.push(match field.name().as_str() {
                "tieRank" => Column::TieRank,
                "copy" => Column::Copy,
                name => match INPUT.iter().position(|c| *c == name) {
                    Some(j) if input_schema.field(j).data_type() == field.data_type() => {
                        Column::Input(j)
                    }
                    _ => return plan_err!("dedup: no input column for output column {name}"),
                },
            });
        }
        let schema = Arc::new(view.project(outputs)?);
        let partitioning = match schema.index_of(INPUT[USER_ID]) {
            Ok(_) => Partitioning::Hash(vec![col(INPUT[USER_ID], &schema)?], partitions),
            Err(_) => Partitioning::RoundRobinBatch(partitions),
        };
        Ok(Self::with_input(input, hash, columns, schema, partitioning))
    }

    fn with_input(
        input: Arc<dyn ExecutionPlan>,
        hash: HashFn,
        columns: Vec<Column>,
        schema: SchemaRef,
        partitioning: Partitioning,
    ) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            partitioning,
            EmissionType::Final,
            Boundedness::Bounded,
        );
        DedupEventsExec {
            input,
            hash,
            columns,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
            prepared: Arc::new(OnceCell::new()),
        }
    }
}

impl DisplayAs for DedupEventsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "DedupEventsExec: rule 4 by eventId hash, partitioning={}",
            self.properties.output_partitioning()
        )
    }
}

impl ExecutionPlan for DedupEventsExec {
    fn name(&self) -> &str {
        "DedupEventsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    /// It reads every input partition itself: more partitions would only add copies.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return exec_err!("DedupEventsExec takes one input");
        }
        Ok(Arc::new(DedupEventsExec::with_input(
            children.swap_remove(0),
            self.hash,
            self.columns.clone(),
            self.schema(),
            self.properties.output_partitioning().clone(),
        )))
    }

    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(DedupEventsExec::with_input(
            self.input.clone(),
            self.hash,
            self.columns.clone(),
            self.schema(),
            self.properties.output_partitioning().clone(),
        )))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let prepared = self.prepared.clone();
        let job = Job {
            input: self.input.clone(),
            context,
            hash: self.hash,
            columns: self.columns.clone(),
            schema: self.schema(),
            partitioning: self.properties.output_partitioning().clone(),
            metrics: self.metrics.clone(),
        };
        let output_metrics = BaselineMetrics::new(&self.metrics, partition);
        let batches = futures::stream::once(async move {
            let prepared = prepared
                .get_or_init(|| async move { job.run().await.map(Arc::new).map_err(Arc::new) })
                .await
                .clone()
                .map_err(DataFusionError::Shared)?;
            let batches = prepared.take(partition)?;
            output_metrics.record_output(batches.iter().map(RecordBatch::num_rows).sum());
            Ok::<_, DataFusionError>(futures::stream::iter(batches.into_iter().map(Ok)))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            batches,
        )))
    }
}

/// The eventId hashes are already uniform: the set of repeated ones uses them as they are.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type HashSet64 = HashSet<u64, BuildHasherDefault<IdentityHasher>>;

/// Ranges of hash values, sorted separately (and in parallel) to find the repeated hashes.
const SHARDS: usize = 64;

/// The shard of a hash: its top bits, so that each shard is a range of values.
fn shard_of(h: u64) -> usize {
    (h >> 58) as usize
}

/// An input partition's eventId hashes, by shard.
type HashesByShard = Vec<Vec<u64>>;

/// An input partition's batches, with the hash of each row's eventId.
type HeldBatches = Vec<(RecordBatch, Vec<u64>)>;

/// The output partitions, ready to be taken.
#[derive(Debug)]
struct Prepared {
    /// Each is taken by its stream, so that memory is released as the consumer reads.
    partitions: Vec<Mutex<Option<Vec<RecordBatch>>>>,
    reservation: MemoryReservation,
}

impl Prepared {
    fn take(&self, partition: usize) -> Result<Vec<RecordBatch>> {
        let Some(slot) = self.partitions.get(partition) else {
            return exec_err!("DedupEventsExec has no partition {partition}");
        };
        let taken = match slot.lock() {
            Ok(mut batches) => batches.take(),
            Err(_) => return exec_err!("DedupEventsExec: a task panicked"),
        };
        // An empty answer here would be a wrong one: a plan that runs a partition twice
        // must reset the node first (`reset_state`).
        let Some(batches) = taken else {
            return exec_err!("DedupEventsExec: partition {partition} executed twice");
        };
        let bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        self.reservation.shrink(bytes.min(self.reservation.size()));
        Ok(batches)
    }
}

/// Everything [`Prepared`] is computed from.
struct Job {
    input: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    hash: HashFn,
    columns: Vec<Column>,
    schema: SchemaRef,
    partitioning: Partitioning,
    metrics: ExecutionPlanMetricsSet,
}

impl Job {
    /// Reads every input partition (a task each) into memory with each eventId's hash; finds
    /// the hashes that repeat (`repeated_hashes`); then cuts each input's rows (a task each)
    /// to the boundary and purchase events with a unique hash, setting aside the rows whose
    /// hash repeats, which are sorted in groups by hash (a task each); everything is split by
    /// output partition.
    async fn run(self) -> Result<Prepared> {
        let reservation =
            Arc::new(MemoryConsumer::new("DedupEventsExec").register(self.context.memory_pool()));
        let inputs = self.input.output_partitioning().partition_count();
        let mut tasks = Vec::with_capacity(inputs);
        for i in 0..inputs {
            let stream = self.input.execute(i, self.context.clone())?;
            let metrics = BaselineMetrics::new(&self.metrics, i);
            let (reservation, hash) = (reservation.clone(), self.hash);
            tasks.push(SpawnedTask::spawn(async move {
                consume(stream, hash, &reservation, &metrics).await
            }));
        }
        let mut held = Vec::with_capacity(inputs);
        let mut hashes = Vec::with_capacity(inputs);
        for task in tasks {
            let (batches, by_shard) = joined(task.join().await)?;
            held.push(batches);
            hashes.push(by_shard);
        }
        let repeated = repeated_hashes(hashes, inputs.max(1)).await?;
        let repeated = Arc::new(repeated);
        let job = Arc::new(self);
        // Rule 4's order matters only among the rows of one eventId, so the repeated rows are
        // sorted in groups by hash, a task each: no step waits on one core (at 50M events
        // one sort of them all was 6 s with the other core idle).
        let groups = held.len().max(1);
        let count = held.len() + groups;
        let mut tasks = Vec::with_capacity(held.len());
        for (i, batches) in held.into_iter().enumerate() {
            let (job, repeated) = (job.clone(), repeated.clone());
            tasks.push(SpawnedTask::spawn(async move {
                let mut duplicated = vec![Vec::new(); groups];
                let rows = batches.into_iter().map(|(batch, hashes)| {
                    cut(
                        &batch,
                        &hashes,
                        &repeated,
                        &mut duplicated,
                        &job.columns,
                        &job.schema,
                    )
                });
                let split = job.split(rows, i, count)?;
                Ok::<_, DataFusionError>((split, duplicated))
            }));
        }
        let mut unique = Vec::with_capacity(tasks.len());
        let mut duplicated: Vec<Vec<RecordBatch>> = vec![Vec::new(); groups];
        for task in tasks {
            let (split, rows) = joined(task.join().await)?;
            unique.push(split);
            for (group, batches) in duplicated.iter_mut().zip(rows) {
                group.extend(batches);
            }
        }
        let sort_time = MetricBuilder::new(&job.metrics).subset_time("duplicates_sort_time", 0);
        let mut sorts = Vec::with_capacity(groups);
        for (g, candidates) in duplicated.into_iter().enumerate() {
            let (job, sort_time) = (job.clone(), sort_time.clone());
            sorts.push(SpawnedTask::spawn(async move {
                let started = sort_time.timer();
                let rows = duplicated_rows(candidates, &job.columns, &job.schema)?;
                started.done();
                job.split(rows.into_iter().map(Ok), count - groups + g, count)
            }));
        }
        let mut partitions: Vec<Vec<RecordBatch>> =
            vec![Vec::new(); job.partitioning.partition_count()];
        let mut add = |split: Vec<Vec<RecordBatch>>| {
            for (p, batches) in split.into_iter().enumerate() {
                partitions[p].extend(batches);
            }
        };
        // A fixed order (duplicates, then each input's rows), whatever finishes first.
        for task in sorts {
            add(joined(task.join().await)?);
        }
        for split in unique {
            add(split);
        }
        let bytes: usize = partitions
            .iter()
            .flatten()
            .map(RecordBatch::get_array_memory_size)
            .sum();
        let reservation = Arc::try_unwrap(reservation).unwrap_or_else(|shared| shared.new_empty());
        reservation.resize(bytes);
        Ok(Prepared {
            partitions: partitions
                .into_iter()
                .map(|p| Mutex::new(Some(p)))
                .collect(),
            reservation,
        })
    }

    /// Splits output batches by output partition (DataFusion's own hash partitioning of
    /// userId, so the plan above may rely on it).
    fn split(
        &self,
        batches: impl Iterator<Item = Result<RecordBatch>>,
        task: usize,
        tasks: usize,
    ) -> Result<Vec<Vec<RecordBatch>>> {
        let mut partitioner = BatchPartitioner::try_new(
            self.partitioning.clone(),
            BaselineMetrics::new(&self.metrics, task)
                .elapsed_compute()
                .clone(),
            task,
            tasks,
        )?;
        let mut out = vec![Vec::new(); self.partitioning.partition_count()];
        for batch in batches {
            let batch = batch?;
            if batch.num_rows() > 0 {
                partitioner.partition(batch, |p, b| {
                    out[p].push(b);
                    Ok(())
                })?;
            }
        }
        Ok(out)
    }
}

fn joined<T>(result: std::result::Result<Result<T>, JoinError>) -> Result<T> {
    result.map_err(|e| exec_datafusion_err!("DedupEventsExec: a task failed: {e}"))?
}

/// Reads an input partition into memory, with the hash of each eventId (also by shard).
async fn consume(
    mut input: SendableRecordBatchStream,
    hash: HashFn,
    reservation: &MemoryReservation,
    metrics: &BaselineMetrics,
) -> Result<(HeldBatches, HashesByShard)> {
    let mut held = Vec::new();
    let mut by_shard: HashesByShard = vec![Vec::new(); SHARDS];
    while let Some(batch) = input.next().await {
        let batch = batch?;
        let timer = metrics.elapsed_compute().timer();
        let ids = string_column(&batch, EVENT_ID)?;
        let hashes: Vec<u64> = ids
            .iter()
            .map(|id| hash(id.unwrap_or_default().as_bytes()))
            .collect();
        for &h in &hashes {
            by_shard[shard_of(h)].push(h);
        }
        reservation.try_grow(batch.get_array_memory_size() + hashes.len() * 16)?;
        held.push((batch, hashes));
        timer.done();
    }
    Ok((held, by_shard))
}

/// The hashes that occur more than once in `inputs`: each shard's hashes, from every input,
/// sorted, by `tasks` tasks. Sorting walks memory in order where inserting every event's hash
/// into a set jumped around a table of hundreds of MiB (4.4 % of the CPU time at 50M events,
/// docs/performance.md).
async fn repeated_hashes(inputs: Vec<HashesByShard>, tasks: usize) -> Result<HashSet64> {
    let mut work: Vec<Vec<Vec<Vec<u64>>>> = (0..tasks).map(|_| Vec::new()).collect();
    let mut shards: Vec<Vec<Vec<u64>>> = (0..SHARDS).map(|_| Vec::new()).collect();
    for by_shard in inputs {
        for (shard, part) in shards.iter_mut().zip(by_shard) {
            shard.push(part);
        }
    }
    for (s, parts) in shards.into_iter().enumerate() {
        work[s % tasks].push(parts);
    }
    let handles: Vec<_> = work
        .into_iter()
        .map(|shards| {
            SpawnedTask::spawn_blocking(move || {
                let mut repeated = Vec::new();
                for parts in shards {
                    let mut all = parts.concat();
                    drop(parts);
                    all.sort_unstable();
                    for pair in all.windows(2) {
                        if pair[0] == pair[1] && repeated.last() != Some(&pair[0]) {
                            repeated.push(pair[0]);
                        }
                    }
                }
                Ok(repeated)
            })
        })
        .collect();
    let mut repeated = HashSet64::default();
    for handle in handles {
        repeated.extend(joined(handle.join().await)?);
    }
    Ok(repeated)
}

/// Rows whose eventId hash occurs more than once (all the rows of each such eventId), ordered
/// as `dedup.sql` orders them, with `copy`, cut to the rows the session step needs (boundary
/// and purchase events, and every duplicate).
fn duplicated_rows(
    candidates: Vec<RecordBatch>,
    columns: &[Column],
    schema: &SchemaRef,
) -> Result<Option<RecordBatch>> {
    let Some(first) = candidates.first() else {
        return Ok(None);
    };
    let all = concat_batches(&first.schema(), &candidates)?;
    let ranks = tie_ranks(string_column(&all, EVENT_TYPE)?);
    let ascending = SortOptions {
        descending: false,
        // SQL's default for ascending order, as in dedup.sql.
        nulls_first: false,
    };
    let keys = [
        all.column(EVENT_ID).clone(),
        all.column(EVENT_TIME).clone(),
        Arc::new(ranks) as ArrayRef,
        all.column(ATTRIBUTES).clone(),
        all.column(SOURCE_ROW).clone(),
    ]
    .into_iter()
    .map(|values| SortColumn {
        values,
        options: Some(ascending),
    })
    .collect::<Vec<_>>();
    let order = lexsort_to_indices(&keys, None)?;
    let sorted = take_record_batch(&all, &order)?;
    let ids = string_column(&sorted, EVENT_ID)?;
    let copies: Int64Array = (0..sorted.num_rows())
        .map(|i| {
            let same =
                i > 0 && ids.is_valid(i) && ids.is_valid(i - 1) && ids.value(i) == ids.value(i - 1);
            Some(if same { 2 } else { 1 })
        })
        .collect();
    let types = string_column(&sorted, EVENT_TYPE)?;
    let keep: BooleanArray = (0..sorted.num_rows())
        .map(|i| Some(copies.value(i) > 1 || is_relevant(types.value(i))))
        .collect();
    let kept = filter_record_batch(&sorted, &keep)?;
    let copies = filter(&copies, &keep)?.as_primitive().clone();
    output_batch(&kept, columns, schema, Some(copies)).map(Some)
}

/// Cuts a held batch: returns its boundary and purchase events whose eventId hash occurs once
/// (`copy` 1), and adds its rows whose hash repeats to `duplicated`, grouped by hash so that
/// the rows of one eventId share a group.
fn cut(
    batch: &RecordBatch,
    hashes: &[u64],
    repeated: &HashSet64,
    duplicated: &mut [Vec<RecordBatch>],
    columns: &[Column],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let types = string_column(batch, EVENT_TYPE)?;
    let groups = duplicated.len() as u64;
    let group_of: Vec<Option<u64>> = hashes
        .iter()
        .map(|h| repeated.contains(h).then_some(h % groups))
        .collect();
    if group_of.iter().any(Option::is_some) {
        for (g, rows) in (0..groups).zip(duplicated.iter_mut()) {
            let mask: BooleanArray = group_of.iter().map(|x| Some(*x == Some(g))).collect();
            if mask.true_count() > 0 {
                rows.push(filter_record_batch(batch, &mask)?);
            }
        }
    }
    let keep: BooleanArray = group_of
        .iter()
        .enumerate()
        .map(|(i, g)| Some(g.is_none() && is_relevant(types.value(i))))
        .collect();
    output_batch(&filter_record_batch(batch, &keep)?, columns, schema, None)
}

/// The output columns of input rows `batch`; `copies` = None means every row is kept (1).
fn output_batch(
    batch: &RecordBatch,
    columns: &[Column],
    schema: &SchemaRef,
    copies: Option<Int64Array>,
) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for column in columns {
        arrays.push(match column {
            Column::Input(j) => batch.column(*j).clone(),
            Column::TieRank => Arc::new(tie_ranks(string_column(batch, EVENT_TYPE)?)),
            Column::Copy => match &copies {
                Some(c) => Arc::new(c.clone()),
                None => Arc::new(Int64Array::from_value(1, rows)),
            },
        });
    }
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// The boundary and purchase events: the rows sessions need (as in dedup.sql).
fn is_relevant(event_type: &str) -> bool {
    matches!(event_type, "app_open" | "app_close" | "purchase")
}

/// dedup.sql's `tieRank`: app_open 0, app_close 2, anything else 1.
fn tie_ranks(types: &StringArray) -> Int64Array {
    types
        .iter()
        .map(|t| {
            Some(match t {
                Some("app_open") => 0,
                Some("app_close") => 2,
                _ => 1,
            })
        })
        .collect()
}

fn string_column(batch: &RecordBatch, index: usize) -> Result<&StringArray> {
    match batch.column(index).as_string_opt::<i32>() {
        Some(values) => Ok(values),
        None => exec_err!(
            "dedup: column {} is {}, not text",
            INPUT[index],
            batch.column(index).data_type()
        ),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::input::schema::{source_row, EVENTS};
    use crate::jobs::attribution::DEDUP_SQL;

    type Row = (
        &'static str,
        &'static str,
        &'static str,
        i64,
        &'static str,
        Option<&'static str>,
        u64,
    );

    /// userId, eventId, eventType, eventTime, attributes, campaignId, line.
    #[rustfmt::skip]
    const ROWS: [Row; 13] = [
        // The same eventId in two users, the later row and the rank-1 row are duplicates.
        ("u1", "e1", "app_open", 10, "{}", Some("7"), 1),
        ("u1", "e1", "app_open", 20, "{}", Some("8"), 2),
        ("u2", "e1", "purchase", 10, "{}", None, 3),
        // A tie on time and rank, broken by attributes.
        ("u1", "e2", "purchase", 30, "{b}", Some("b"), 4),
        ("u1", "e2", "purchase", 30, "{a}", Some("a"), 5),
        // A full tie, broken by file order.
        ("u1", "e3", "app_close", 40, "{}", Some("x"), 7),
        ("u1", "e3", "app_close", 40, "{}", Some("y"), 6),
        // A tie on time, broken by rank: the duplicate is of a type sessions ignore.
        ("u1", "e4", "app_open", 50, "{}", Some("9"), 8),
        ("u1", "e4", "search_product", 50, "{}", None, 9),
        // Unique rows: kept if sessions need them.
        ("u2", "e5", "app_open", 5, "{}", Some("1"), 10),
        ("u2", "e6", "view_product_details", 6, "{}", None, 11),
        // The kept row is of a type sessions ignore: only the duplicate app_open is left.
        ("u1", "e7", "search_product", 60, "{}", None, 12),
        ("u1", "e7", "app_open", 70, "{}", Some("3"), 13),
    ];

    fn events() -> RecordBatch {
        let text = |f: fn(&Row) -> &str| {
            Arc::new(StringArray::from_iter_values(ROWS.iter().map(f))) as ArrayRef
        };
        let none = || Arc::new(StringArray::from_iter(ROWS.iter().map(|_| None::<&str>)));
        RecordBatch::try_new(
            EVENTS.clone(),
            vec![
                text(|r| r.0),
                text(|r| r.1),
                text(|r| r.2),
                Arc::new(
                    datafusion::arrow::array::TimestampMicrosecondArray::from_iter_values(
                        ROWS.iter().map(|r| r.3),
                    ),
                ),
                text(|r| r.4),
                Arc::new(StringArray::from_iter(ROWS.iter().map(|r| r.5))),
                none(),
                none(),
                Arc::new(Int64Array::from_iter_values(
                    ROWS.iter().map(|r| source_row(0, r.6)),
                )),
            ],
        )
        .unwrap()
    }

    /// `relevant_events` from `dedup.sql` (`hash` = None) or by hashing, one line per row:
    /// eventId userId eventType eventTime campaignId tieRank copy.
    async fn relevant(hash: Option<HashFn>, partitions: usize) -> Vec<String> {
        let ctx = SessionContext::new_with_config(
            crate::context::session_config(1).with_target_partitions(partitions),
        );
        crate::context::register_functions(&ctx);
        // One batch per row: the rows of an eventId arrive in different batches.
        let batches = (0..ROWS.len())
            .map(|i| vec![events().slice(i, 1)])
            .collect();
        let events = Arc::new(MemTable::try_new(EVENTS.clone(), batches).unwrap());
        ctx.register_table("events", events.clone()).unwrap();
        let view = ctx.sql(DEDUP_SQL).await.unwrap();
        let table: Arc<dyn TableProvider> = match hash {
            None => view.into_view(),
            Some(hash) => Arc::new(RelevantEvents {
                events,
                schema: Arc::new(view.schema().as_arrow().clone()),
                hash,
            }),
        };
        ctx.register_table("relevant_events", table).unwrap();
        let sql = "SELECT concat_ws(' ', eventId, userId, eventType, \
                   CAST(CAST(eventTime AS BIGINT) AS VARCHAR), coalesce(campaignId, '-'), \
                   CAST(tieRank AS VARCHAR), CAST(copy AS VARCHAR)) AS r \
                   FROM relevant_events ORDER BY r";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        batches
            .iter()
            .flat_map(|b| {
                let rows = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
                let rows = rows.as_string::<i32>();
                (0..rows.len())
                    .map(|i| rows.value(i).to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[tokio::test]
    async fn the_least_row_of_an_event_id_is_kept_and_every_other_is_a_duplicate() {
        let want = [
            "e1 u1 app_open 10 7 0 1",
            "e1 u1 app_open 20 8 0 2",
            "e1 u2 purchase 10 - 1 2",
            "e2 u1 purchase 30 a 1 1",
            "e2 u1 purchase 30 b 1 2",
            "e3 u1 app_close 40 x 2 2",
            "e3 u1 app_close 40 y 2 1",
            "e4 u1 app_open 50 9 0 1",
            "e4 u1 search_product 50 - 1 2",
            "e5 u2 app_open 5 1 0 1",
            "e7 u1 app_open 70 3 0 2",
        ];
        assert_eq!(relevant(None, 2).await, want, "dedup.sql");
        for partitions in [1, 3] {
            assert_eq!(
                relevant(Some(event_id_hash), partitions).await,
                want,
                "hashing, {partitions} partitions"
            );
            // Every eventId colliding: all rows take the exact path.
            assert_eq!(
                relevant(Some(|_| 42), partitions).await,
                want,
                "one hash for all, {partitions} partitions"
            );
        }
    }
}
