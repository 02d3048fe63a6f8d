//! Rule 4 for events by hashing: the in-process twin of `dedup.sql`.
//!
//! `dedup.sql` sorts every event by eventId to find the rows that share one. On one machine
//! that sort was the largest cost of the job (concatenating, comparing and gathering every
//! row: about 40 % of the CPU time on 5M events, docs/performance.md), although almost every
//! eventId occurs once. [`DedupEventsExec`] instead hashes each eventId: an eventId whose hash
//! occurs once is unique, and its row passes with `copy = 1` if it is a boundary or purchase
//! event. Only the rows whose hash occurs more than once (the duplicates, and in theory
//! distinct eventIds whose hashes collide) are sorted, exactly as `dedup.sql` orders them, so
//! the result is the same row for row whatever the hash does.
//!
//! It reads every input partition itself, a task each, keeping each row's *key*: the eventId
//! hash with the row's *part* (a hash of its userId, `PARTS` of them) in its low bits. At the
//! end of the input the keys of all partitions are sorted, by ranges of values in parallel, to
//! find the eventIds that repeat. The output is split by userId with DataFusion's own hash
//! partitioning, so the `sessionize` aggregation above it runs in one phase.
//!
//! Each output partition gives its parts in ascending order, with the part as `userBucket`,
//! so the aggregation above, which groups by `userBucket` first, emits a part's users when the
//! next part starts instead of holding every user to the end. Held in memory, the events are
//! cut when the input ends and every output partition is ready at once (the first one polled
//! computes all of them, as a `RepartitionExec` does). Past `spill_at` held bytes, or when the
//! memory pool refuses more, they spill: the inputs split their rows by part and write the
//! highest parts to one Arrow IPC file per part and input, keeping the keys and the other
//! parts: the first time as many parts as bring the rows kept down to half of `spill_at`, the
//! second time (or when the pool refused) all of them (`spill::Budget`). Then each output
//! partition cuts its parts one after the other, reading back those on disk (the repeated
//! eventIds whose rows all lie in the part are ordered there; the few whose rows lie in several
//! parts are ordered before any part is cut): memory holds the parts kept and one part per
//! output partition, not the input. The spilled form is in `spill.rs`; the compact layout
//! (UUIDs as 16 bytes, low-cardinality text as dictionaries) of the parts split in
//! `compact.rs`.
//!
//! [`RelevantEvents`] is the table the session step reads, with the schema of `dedup.sql`'s
//! view. On a cluster `dedup.sql` runs instead.

mod compact;
mod spill;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, RecordBatch,
    RecordBatchOptions, StringArray, UInt32Array, UInt64Array,
};
use datafusion::arrow::compute::{
    concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch, SortColumn,
    SortOptions,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, UInt64Type};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::hash_utils::create_hashes;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_datafusion_err, exec_err, plan_err, DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::expressions::col;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, SpillMetrics, Time,
};
use datafusion::physical_plan::repartition::REPARTITION_RANDOM_STATE;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use spill::{
    read_parts, write_parts, Budget, Managers, PartFiles, Piece, Spill, SpilledFile, SpilledParts,
};
use tokio::sync::OnceCell;
use tokio::task::JoinError;

/// How rule 4 finds the events that share an eventId.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dedup {
    /// `dedup.sql`: a sort, which spills under a memory cap and runs on a cluster.
    Sort,
    /// [`DedupEventsExec`]: hashing, in this process. The events are held in memory until
    /// they take more than `spill_at` bytes (or the memory pool refuses more); then those of
    /// as many userId parts as needed are written to disk, and the parts are processed one
    /// at a time.
    Hash { spill_at: usize },
}

impl Dedup {
    /// Hashing, in memory however large the input (unless the pool refuses).
    pub const IN_MEMORY: Dedup = Dedup::Hash {
        spill_at: usize::MAX,
    };
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
const CAMPAIGN_ID: usize = 5;
const CHANNEL_ID: usize = 6;
const SOURCE_ROW: usize = 8;
/// Held batches carry each row's key after the input columns.
const KEY: usize = INPUT.len();
/// The ordered repeated rows carry their `copy` after the key.
const COPY: usize = KEY + 1;

/// The low bits of a key: the part of the row's userId.
const PART_BITS: u32 = 8;
const PART_MASK: u64 = (1 << PART_BITS) - 1;
/// Parts the events are split into by userId when they spill (rounded to a multiple of the
/// output partitions): each part is cut and sessionized on its own, so memory holds one part
/// per output partition.
const PARTS: usize = 64;
/// Once spilling, an input writes its rows out every this many held bytes (at most), one
/// batch per part.
const MAX_CHUNK: usize = 64 << 20;

/// A row's key: the hash of its eventId, its low bits replaced by its part. Two rows whose
/// eventIds are equal have equal [`id_of`]; distinct eventIds whose ids collide only cost
/// exact work.
fn key(event_hash: u64, part: u64) -> u64 {
    (event_hash & !PART_MASK) | part
}

fn id_of(key: u64) -> u64 {
    key >> PART_BITS
}

fn part_of(key: u64) -> usize {
    (key & PART_MASK) as usize
}

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
    /// Held bytes above which the events spill (see [`Dedup::Hash`]).
    spill_at: usize,
}

impl RelevantEvents {
    /// `schema` is the schema of `dedup.sql`'s view over `events`.
    pub fn new(events: Arc<dyn TableProvider>, schema: SchemaRef, spill_at: usize) -> Self {
        RelevantEvents {
            events,
            schema,
            hash: event_id_hash,
            spill_at,
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
            // The parts fit in the key's low bits; more output partitions than parts would
            // not run faster anyway.
            state.config().target_partitions().clamp(1, 1 << PART_BITS),
            self.spill_at,
        )?))
    }
}

/// Where an output column comes from.
#[derive(Debug, Clone, Copy)]
enum Column {
    Input(usize),
    TieRank,
    Copy,
    /// `userBucket`: the row's part.
    Bucket,
}

/// Rule 4 over the events, however they are partitioned (see the module docs).
#[derive(Debug)]
pub struct DedupEventsExec {
    input: Arc<dyn ExecutionPlan>,
    hash: HashFn,
    columns: Vec<Column>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    spill_at: usize,
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
        spill_at: usize,
    ) -> Result<Self> {
        if partitions > 1 << PART_BITS {
            return plan_err!("dedup: at most {} output partitions", 1 << PART_BITS);
        }
        let input_schema = input.schema();
        let mut columns = Vec::with_capacity(outputs.len());
        for &i in outputs {
            let field = view.field(i);
            columns.push(match field.name().as_str() {
                "tieRank" => Column::TieRank,
                "copy" => Column::Copy,
                "userBucket" => Column::Bucket,
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
        Ok(Self::with_input(
            input,
            hash,
            columns,
            schema,
            partitioning,
            spill_at,
        ))
    }

    fn with_input(
        input: Arc<dyn ExecutionPlan>,
        hash: HashFn,
        columns: Vec<Column>,
        schema: SchemaRef,
        partitioning: Partitioning,
        spill_at: usize,
    ) -> Self {
        // Each output partition gives its parts in ascending order, in memory or spilled: the
        // aggregation above, grouping by userBucket first, then emits each part's groups when
        // the next part starts instead of holding every user to the end.
        let equivalences = match col("userBucket", &schema) {
            Ok(bucket) => EquivalenceProperties::new_with_orderings(
                schema,
                [[PhysicalSortExpr::new_default(bucket)]],
            ),
            Err(_) => EquivalenceProperties::new(schema),
        };
        let properties = PlanProperties::new(
            equivalences,
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
            spill_at,
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
            self.spill_at,
        )))
    }

    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(DedupEventsExec::with_input(
            self.input.clone(),
            self.hash,
            self.columns.clone(),
            self.schema(),
            self.properties.output_partitioning().clone(),
            self.spill_at,
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
        let outputs = self.properties.output_partitioning().partition_count();
        let job = Job {
            input: self.input.clone(),
            context,
            hash: self.hash,
            columns: self.columns.clone(),
            schema: self.schema(),
            outputs,
            parts: outputs * (PARTS / outputs.max(1)).max(1),
            spill_at: self.spill_at,
            metrics: self.metrics.clone(),
        };
        let output_metrics = BaselineMetrics::new(&self.metrics, partition);
        let batches = futures::stream::once(async move {
            let prepared = prepared
                .get_or_init(|| async move { job.run().await.map(Arc::new).map_err(Arc::new) })
                .await
                .clone()
                .map_err(DataFusionError::Shared)?;
            prepared.stream(partition)
        })
        .try_flatten()
        .inspect_ok(move |batch| output_metrics.record_output(batch.num_rows()));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            batches,
        )))
    }
}

/// The map of repeated ids hashes them with one multiplication: the ids are already uniform
/// hashes, but only in their low 56 bits, and the map takes its tag from the top bits (with
/// the ids as they are, every tag was 0 and each lookup compared a whole group of keys).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(FIBONACCI);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v.wrapping_mul(FIBONACCI);
    }
}

/// 2^64 divided by the golden ratio: multiplying by it spreads the low bits over the top ones.
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

/// Ranges of key values, sorted separately (and in parallel) to find the repeated eventIds.
const SHARDS: usize = 64;

/// The shard of a key: its top bits, so that each shard is a range of values.
fn shard_of(key: u64) -> usize {
    (key >> 58) as usize
}

/// An input partition's keys, by shard.
type KeysByShard = Vec<Vec<u64>>;

/// The eventIds whose hash occurs more than once, by [`id_of`], each with whether its rows
/// lie in more than one part (`crossing`).
#[derive(Debug, Default)]
struct Repeated {
    ids: HashMap<u64, bool, BuildHasherDefault<IdHasher>>,
    /// The parts holding rows of a crossing eventId.
    crossing_parts: BTreeSet<usize>,
}

impl Repeated {
    fn get(&self, key: u64) -> Option<bool> {
        self.ids.get(&id_of(key)).copied()
    }
}

/// The hashes that occur more than once in `inputs`: each shard's keys, from every input,
/// sorted, by `tasks` tasks. Sorting walks memory in order where inserting every event's hash
/// into a set jumped around a table of hundreds of MiB (4.4 % of the CPU time at 50M events,
/// docs/performance.md). Sorted keys put the rows of one eventId hash side by side, ordered by
/// part, so a crossing eventId is one whose first and last keys differ in part.
async fn repeated_ids(inputs: Vec<KeysByShard>, tasks: usize) -> Result<Repeated> {
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
                let mut found = Repeated::default();
                for parts in shards {
                    let mut all = parts.concat();
                    drop(parts);
                    all.sort_unstable();
                    for run in all.chunk_by(|a, b| id_of(*a) == id_of(*b)) {
                        if let [first, .., last] = run {
                            let crossing = part_of(*first) != part_of(*last);
                            found.ids.insert(id_of(*first), crossing);
                            if crossing {
                                found.crossing_parts.extend(run.iter().map(|k| part_of(*k)));
                            }
                        }
                    }
                }
                Ok(found)
            })
        })
        .collect();
    let mut repeated = Repeated::default();
    for handle in handles {
        let found = joined(handle.join().await)?;
        repeated.ids.extend(found.ids);
        repeated.crossing_parts.extend(found.crossing_parts);
    }
    Ok(repeated)
}

/// An input partition, read.
struct Consumed {
    /// Batches still in memory (with the key column).
    held: Vec<RecordBatch>,
    keys: KeysByShard,
    /// One spill file per part (and layout), once spilling.
    files: Vec<PartFiles>,
    /// Per part, its rows kept in memory once spilling (the parts the [`Budget`] keeps).
    in_memory: Vec<Vec<Piece>>,
    /// Spill files a helper task wrote for this input ([`split_with_help`]).
    helped: Vec<Vec<PartFiles>>,
}

impl Consumed {
    /// Held rows `held` of no input in particular, to be split by part: no keys, no files yet.
    fn holding(held: Vec<RecordBatch>) -> Self {
        Consumed {
            held,
            keys: Vec::new(),
            files: Vec::new(),
            in_memory: Vec::new(),
            helped: Vec::new(),
        }
    }
}

/// Reads an input partition with each row's key (also by shard), holding its batches in memory
/// until the events outgrow `spill_at`; from then on it splits them by part every chunk,
/// keeping in memory the parts the [`Budget`] keeps and writing the others to a spill file per
/// part.
async fn consume(
    mut input: SendableRecordBatchStream,
    hash: HashFn,
    spill: &Arc<Spill>,
    reservation: &MemoryReservation,
    metrics: &BaselineMetrics,
) -> Result<Consumed> {
    let mut read = Consumed {
        keys: vec![Vec::new(); SHARDS],
        ..Consumed::holding(Vec::new())
    };
    // This input's held bytes not yet split, and all it holds in the reservation.
    let (mut held_bytes, mut reserved) = (0, 0);
    // The parts kept when this input last split its rows.
    let mut kept_before = spill.parts;
    let mut user_hashes = Vec::new();
    while let Some(batch) = input.next().await {
        let batch = batch?;
        let timer = metrics.elapsed_compute().timer();
        let keys = keys_of(&batch, hash, spill.parts, &mut user_hashes)?;
        for &k in &keys {
            read.keys[shard_of(k)].push(k);
        }
        // The keys stay in memory whatever happens: they decide which rows repeat.
        let key_bytes = keys.len() * 8;
        reservation.grow(key_bytes);
        let batch = with_keys(batch, keys)?;
        let bytes = batch.get_array_memory_size();
        let mut granted = reservation.try_grow(bytes).is_ok();
        let kept = spill.budget.read(key_bytes, bytes, granted)?;
        let given_up = kept < kept_before;
        if kept < spill.parts && (!granted || given_up || held_bytes + bytes >= spill.chunk) {
            // Out to disk before holding more: the pool may have said no.
            let in_memory = if given_up {
                split_with_help(&mut read, spill).await?
            } else {
                write_parts(&mut read, spill)?
            };
            resize_share(reservation, &mut reserved, in_memory);
            held_bytes = 0;
            kept_before = kept;
            if !granted {
                // One batch is all an input then holds.
                reservation.grow(bytes);
                granted = true;
            }
        }
        if granted {
            reserved += bytes;
        }
        held_bytes += bytes;
        read.held.push(batch);
        timer.done();
    }
    if spill.budget.spilling()? {
        let in_memory = write_parts(&mut read, spill)?;
        resize_share(reservation, &mut reserved, in_memory);
    }
    Ok(read)
}

/// [`write_parts`] for an input that just gave up parts, its rows read so far split by two
/// tasks: when the cut comes near the end of the input, the other inputs have often ended, and
/// one task splitting them all kept a core idle (about half a second at 5M events under 2 GiB).
/// The helper's pieces kept in memory join the input's; its spill files are kept apart.
async fn split_with_help(read: &mut Consumed, spill: &Arc<Spill>) -> Result<usize> {
    let mut share = Consumed::holding(read.held.split_off(read.held.len() / 2));
    let helper = {
        let spill = spill.clone();
        SpawnedTask::spawn_blocking(move || {
            write_parts(&mut share, &spill)?;
            Ok::<_, DataFusionError>(share)
        })
    };
    write_parts(read, spill)?;
    let share = joined(helper.join().await)?;
    for (mine, pieces) in read.in_memory.iter_mut().zip(share.in_memory) {
        mine.extend(pieces);
    }
    read.helped.push(share.files);
    Ok(read.in_memory.iter().flatten().map(Piece::bytes).sum())
}

/// Sets an input's share `reserved` of the shared reservation to `bytes`.
fn resize_share(reservation: &MemoryReservation, reserved: &mut usize, bytes: usize) {
    if bytes > *reserved {
        reservation.grow(bytes - *reserved);
    } else {
        reservation.shrink((*reserved - bytes).min(reservation.size()));
    }
    *reserved = bytes;
}

/// Each row's key: the hash of its eventId with the part of its userId in the low bits.
fn keys_of(
    batch: &RecordBatch,
    hash: HashFn,
    parts: usize,
    user_hashes: &mut Vec<u64>,
) -> Result<Vec<u64>> {
    let ids = string_column(batch, EVENT_ID)?;
    user_hashes.clear();
    user_hashes.resize(batch.num_rows(), 0);
    create_hashes(
        [batch.column(USER_ID)],
        REPARTITION_RANDOM_STATE.random_state(),
        user_hashes,
    )?;
    let parts = parts as u64;
    Ok(ids
        .iter()
        .zip(user_hashes.iter())
        .map(|(id, user)| key(hash(id.unwrap_or_default().as_bytes()), user % parts))
        .collect())
}

/// `batch` with its keys as one more column ([`KEY`]).
fn with_keys(batch: RecordBatch, keys: Vec<u64>) -> Result<RecordBatch> {
    let schema = held_schema(&batch.schema());
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(UInt64Array::from(keys)));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The schema of held batches: the input's columns and the key.
fn held_schema(input: &Schema) -> SchemaRef {
    let mut fields: Vec<FieldRef> = input.fields().iter().take(KEY).cloned().collect();
    fields.push(Arc::new(Field::new("key", DataType::UInt64, false)));
    Arc::new(Schema::new(fields))
}

fn key_column(batch: &RecordBatch) -> Result<&[u64]> {
    match batch
        .columns()
        .get(KEY)
        .and_then(|c| c.as_primitive_opt::<UInt64Type>())
    {
        Some(keys) => Ok(keys.values()),
        None => exec_err!("dedup: a held batch has no key column"),
    }
}

/// A row to gather by part ([`add_by_part`]): its part in the high half, its index in the low
/// half.
fn by_part(key: u64, row: usize) -> u64 {
    ((part_of(key) as u64) << 32) | row as u64
}

/// Adds the rows `rows` of `batch` (made by [`by_part`], in ascending row order) to
/// `pending`, a slice per part, and returns the bytes gathered. One gather per batch, in part
/// order, while the batch is in cache: gathering each part across many batches (`interleave`)
/// missed the cache and cost 5 % of the run. The rows are put in part order by counting (a
/// stable pass, so each part keeps its rows' order), not by sorting: the sort was 1 % of a
/// capped run.
fn add_by_part(
    batch: &RecordBatch,
    rows: &[u64],
    pending: &mut [Vec<RecordBatch>],
) -> Result<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut counts = [0u32; 1 << PART_BITS];
    for &row in rows {
        counts[part_in(row)] += 1;
    }
    let mut next = [0u32; 1 << PART_BITS];
    let mut start = 0;
    for (next, &count) in next.iter_mut().zip(&counts) {
        *next = start;
        start += count;
    }
    let mut indices = vec![0u32; rows.len()];
    for &row in rows {
        let slot = &mut next[part_in(row)];
        indices[*slot as usize] = row as u32;
        *slot += 1;
    }
    let gathered = take_record_batch(batch, &UInt32Array::from(indices))?;
    let mut start = 0;
    for (part, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let Some(slices) = pending.get_mut(part) else {
            return exec_err!("DedupEventsExec: part {part} of {}", pending.len());
        };
        slices.push(gathered.slice(start, count as usize));
        start += count as usize;
    }
    Ok(gathered.get_array_memory_size())
}

/// The part of a row made by [`by_part`].
fn part_in(row: u64) -> usize {
    (row >> 32) as usize & PART_MASK as usize
}

/// The output partitions, ready to be taken.
enum Prepared {
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

type BatchStream = futures::stream::BoxStream<'static, Result<RecordBatch>>;

impl Prepared {
    fn stream(&self, partition: usize) -> Result<BatchStream> {
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
struct Job {
    input: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    hash: HashFn,
    columns: Vec<Column>,
    schema: SchemaRef,
    outputs: usize,
    parts: usize,
    spill_at: usize,
    metrics: ExecutionPlanMetricsSet,
}

impl Job {
    /// Reads every input partition (a task each) with each row's key; finds the eventIds
    /// whose hash repeats (`repeated_ids`); then cuts the rows to the boundary and purchase
    /// events with a unique hash and orders the rows whose hash repeats exactly: in memory
    /// ([`Job::in_memory`]) or, when the events spilled, part by part as they are read back.
    async fn run(self) -> Result<Prepared> {
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
    async fn crossing(
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
    async fn in_memory(
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
    fn gather(&self, pending: &mut [Vec<RecordBatch>], out: &mut [Vec<RecordBatch>]) -> Result<()> {
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
    fn output(&self, rows: &RecordBatch, part: usize) -> Result<RecordBatch> {
        output_batch(rows, &self.columns, &self.schema, bucket(part)?)
    }
}

/// The `userBucket` of a part.
fn bucket(part: usize) -> Result<i32> {
    i32::try_from(part).map_err(|_| exec_datafusion_err!("DedupEventsExec: part {part} too large"))
}

/// Adds every row of held rows `batch` to `pending`, a slice per part (see [`add_by_part`]).
fn add_all_by_part(batch: &RecordBatch, pending: &mut [Vec<RecordBatch>]) -> Result<usize> {
    let keys = key_column(batch)?.iter().enumerate();
    let rows: Vec<u64> = keys.map(|(r, &k)| by_part(k, r)).collect();
    add_by_part(batch, &rows, pending)
}

fn joined<T>(result: std::result::Result<Result<T>, JoinError>) -> Result<T> {
    result.map_err(|e| exec_datafusion_err!("DedupEventsExec: a task failed: {e}"))?
}

/// Held rows whose eventId hash occurs more than once (all the rows of each such eventId),
/// ordered as `dedup.sql` orders them and cut to the rows the session step needs (boundary and
/// purchase events, and every duplicate), with their `copy` as one more column ([`COPY`]).
fn duplicated_rows(candidates: Vec<RecordBatch>) -> Result<Option<RecordBatch>> {
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
    let mut fields: Vec<FieldRef> = sorted.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new("copy", DataType::Int64, false)));
    let mut columns = sorted.columns().to_vec();
    columns.push(Arc::new(copies));
    let with_copies = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok(Some(filter_record_batch(&with_copies, &keep)?))
}

/// Sorts out held rows `batch`: calls `keep(row, key)` for each boundary and purchase event
/// whose eventId hash occurs once, and adds its rows whose hash repeats to `aside`, grouped by
/// hash so that the rows of one eventId share a group. With `crossing_decided`, the rows of
/// crossing eventIds go nowhere: they were ordered before (see `Job::crossing`).
fn sort_out(
    batch: &RecordBatch,
    repeated: &Repeated,
    crossing_decided: bool,
    aside: &mut [Vec<RecordBatch>],
    mut keep: impl FnMut(usize, u64),
) -> Result<()> {
    let types = string_column(batch, EVENT_TYPE)?;
    let keys = key_column(batch)?;
    let groups = aside.len() as u64;
    let mut group_of: Vec<Option<u64>> = Vec::new();
    for (i, &k) in keys.iter().enumerate() {
        let verdict = if repeated.ids.is_empty() {
            None
        } else {
            repeated.get(k)
        };
        match verdict {
            None => {
                if types.is_valid(i) && is_relevant(types.value(i)) {
                    keep(i, k);
                }
            }
            Some(true) if crossing_decided => {}
            Some(_) => {
                if group_of.is_empty() {
                    group_of.resize(keys.len(), None);
                }
                group_of[i] = Some(id_of(k) % groups);
            }
        }
    }
    if !group_of.is_empty() {
        for (g, rows) in (0..groups).zip(aside.iter_mut()) {
            let mask: BooleanArray = group_of.iter().map(|x| Some(*x == Some(g))).collect();
            if mask.true_count() > 0 {
                rows.push(filter_record_batch(batch, &mask)?);
            }
        }
    }
    Ok(())
}

/// The output columns of held rows `batch` (all kept, `copy` 1, unless it has [`COPY`]).
fn output_batch(
    batch: &RecordBatch,
    columns: &[Column],
    schema: &SchemaRef,
    bucket: i32,
) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for column in columns {
        arrays.push(match column {
            Column::Input(j) => batch.column(*j).clone(),
            Column::TieRank => Arc::new(tie_ranks(string_column(batch, EVENT_TYPE)?)),
            Column::Copy => match batch.columns().get(COPY) {
                Some(copies) => copies.clone(),
                None => Arc::new(Int64Array::from_value(1, rows)),
            },
            Column::Bucket => Arc::new(Int32Array::from_value(bucket, rows)),
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
    use datafusion::common::tree_node::TreeNode;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;
    use crate::attribution::DEDUP_SQL;
    use crate::input::schema::{source_row, EVENTS};

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

    /// The canonical UUID standing for a short id of [`ROWS`] ("u1", "e7"), in the same order.
    fn uuid_of(name: &str) -> String {
        let b = name.as_bytes();
        format!("{:08x}-0000-4000-8000-{:012x}", b[0], b[1])
    }

    /// [`ROWS`], with their userIds and eventIds as UUIDs when `uuids` (so that the spill
    /// writes them compact) or as the short names.
    fn events(uuids: bool) -> RecordBatch {
        let text = |f: fn(&Row) -> &str| {
            let ids = ROWS.iter().map(f);
            Arc::new(match uuids {
                true => StringArray::from_iter_values(ids.map(uuid_of)),
                false => StringArray::from_iter_values(ids),
            }) as ArrayRef
        };
        let none = || Arc::new(StringArray::from_iter(ROWS.iter().map(|_| None::<&str>)));
        RecordBatch::try_new(
            EVENTS.clone(),
            vec![
                text(|r| r.0),
                text(|r| r.1),
                Arc::new(StringArray::from_iter_values(ROWS.iter().map(|r| r.2))),
                Arc::new(
                    datafusion::arrow::array::TimestampMicrosecondArray::from_iter_values(
                        ROWS.iter().map(|r| r.3),
                    )
                    .with_timezone(crate::input::schema::UTC),
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

    /// What [`relevant`] saw.
    struct Run {
        /// One line per row: eventId userId eventType eventTime campaignId tieRank copy.
        rows: Vec<String>,
        /// Whether (and in which layout) events were written to disk.
        spilled: Spilled,
        /// The parts that held rows of an eventId crossing parts.
        crossing: usize,
        /// The parts kept in memory once spilling.
        parts_in_memory: usize,
        /// The rows written to disk.
        spilled_rows: usize,
    }

    /// [`ROWS`] as input partitions of one batch per row, so that the rows of an eventId
    /// arrive in different batches.
    fn one_per_batch(uuids: bool) -> Vec<Vec<RecordBatch>> {
        (0..ROWS.len())
            .map(|i| vec![events(uuids).slice(i, 1)])
            .collect()
    }

    /// `relevant_events` from `dedup.sql` (`hash` = None) or by hashing (spilling above
    /// `spill_at` held bytes) over the events `input` (input partitions of batches). The ids
    /// of [`ROWS`] as UUIDs are written back as the short names.
    async fn relevant(
        hash: Option<HashFn>,
        partitions: usize,
        spill_at: usize,
        input: Vec<Vec<RecordBatch>>,
    ) -> Run {
        let ctx = SessionContext::new_with_config(
            crate::engine::session_config(1).with_target_partitions(partitions),
        );
        crate::engine::register_functions(&ctx);
        let events = Arc::new(MemTable::try_new(EVENTS.clone(), input).unwrap());
        ctx.register_table("events", events.clone()).unwrap();
        let view = ctx.sql(DEDUP_SQL).await.unwrap();
        let table: Arc<dyn TableProvider> = match hash {
            None => view.into_view(),
            Some(hash) => Arc::new(RelevantEvents {
                events,
                schema: Arc::new(view.schema().as_arrow().clone()),
                hash,
                spill_at,
            }),
        };
        ctx.register_table("relevant_events", table).unwrap();
        let sql = "SELECT concat_ws(' ', eventId, userId, eventType, \
                   CAST(CAST(eventTime AS BIGINT) AS VARCHAR), coalesce(campaignId, '-'), \
                   CAST(tieRank AS VARCHAR), CAST(copy AS VARCHAR)) AS r \
                   FROM relevant_events ORDER BY r";
        let plan = ctx
            .sql(sql)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx())
            .await
            .unwrap();
        let (mut spills, mut crossing, mut compact, mut parts_in_memory) = (0, 0, 0, 0);
        let mut spilled_rows = 0;
        let _ = plan.apply(|node| {
            if node.name() == "DedupEventsExec" {
                let metrics = node.metrics();
                spills += metrics.as_ref().and_then(|m| m.spill_count()).unwrap_or(0);
                spilled_rows += metrics.as_ref().and_then(|m| m.spilled_rows()).unwrap_or(0);
                compact += metrics
                    .as_ref()
                    .and_then(|m| m.sum_by_name("spilled_compact_rows"))
                    .map_or(0, |v| v.as_usize());
                crossing += metrics
                    .as_ref()
                    .and_then(|m| m.sum_by_name("crossing_parts"))
                    .map_or(0, |v| v.as_usize());
                parts_in_memory += metrics
                    .and_then(|m| m.sum_by_name("parts_in_memory"))
                    .map_or(0, |v| v.as_usize());
            }
            Ok(TreeNodeRecursion::Continue)
        });
        let names: HashMap<String, &str> = ROWS
            .iter()
            .flat_map(|r| [(uuid_of(r.0), r.0), (uuid_of(r.1), r.1)])
            .collect();
        let rows = batches
            .iter()
            .flat_map(|b| {
                let rows = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
                let rows = rows.as_string::<i32>();
                (0..rows.len())
                    .map(|i| {
                        let words = rows.value(i).split(' ');
                        let words = words.map(|w| names.get(w).copied().unwrap_or(w));
                        words.collect::<Vec<_>>().join(" ")
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        // Whether the spill was compact is for the caller to check against `uuids`.
        let spills = match (spills, compact) {
            (0, _) => Spilled::No,
            (_, 0) => Spilled::Held,
            _ => Spilled::Compact,
        };
        Run {
            rows,
            spilled: spills,
            crossing,
            parts_in_memory,
            spilled_rows,
        }
    }

    #[derive(Debug, PartialEq)]
    enum Spilled {
        No,
        Held,
        Compact,
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
        assert_eq!(
            relevant(None, 2, 0, one_per_batch(false)).await.rows,
            want,
            "dedup.sql"
        );
        assert_eq!(
            relevant(None, 2, 0, one_per_batch(true)).await.rows,
            want,
            "dedup.sql, UUIDs"
        );
        // Short ids spill as held rows, UUIDs in the compact layout (compact.rs).
        for (partitions, uuids) in [(1, false), (3, false), (1, true), (3, true)] {
            for spill_at in [usize::MAX, 0] {
                let how = match (spill_at, uuids) {
                    (0, false) => "spilled",
                    (0, true) => "spilled compact",
                    _ => "in memory",
                };
                let Run { rows, spilled, .. } = relevant(
                    Some(event_id_hash),
                    partitions,
                    spill_at,
                    one_per_batch(uuids),
                )
                .await;
                assert_eq!(rows, want, "hashing {how}, {partitions} partitions");
                let expected = match (spill_at, uuids) {
                    (0, false) => Spilled::Held,
                    (0, true) => Spilled::Compact,
                    _ => Spilled::No,
                };
                assert_eq!(spilled, expected, "{how}, {partitions} partitions");
                // Every eventId colliding: all rows take the exact path (spilled: the rows of
                // one hash lie in several parts, so all are ordered before the parts are cut).
                let Run { rows, crossing, .. } =
                    relevant(Some(|_| 42), partitions, spill_at, one_per_batch(uuids)).await;
                assert_eq!(
                    rows, want,
                    "one hash for all {how}, {partitions} partitions"
                );
                // u1 and u2 fall in different parts, so the crossing path really ran.
                assert_eq!(
                    crossing > 0,
                    spill_at == 0,
                    "{crossing} crossing parts {how}"
                );
            }
        }
    }

    /// userId, eventId, eventType, eventTime, campaignId of [`many_users`].
    type ManyRow = (String, String, &'static str, i64, Option<String>);

    /// Events of many users (in UUIDs, 256 rows a batch, over two input partitions): each user
    /// opens, searches, buys and closes; every 7th user's purchase is written twice, and every
    /// 11th user's app_open has the eventId of the previous user's, so that some repeated
    /// eventIds lie in two parts.
    fn many_users(users: u64) -> Vec<Vec<RecordBatch>> {
        let uuid = |kind: u64, n: u64| format!("{n:08x}-1111-4111-8111-{kind:012x}");
        let mut rows: Vec<ManyRow> = Vec::new();
        for u in 0..users {
            let t = (u * 100) as i64;
            let opened = if u % 11 == 10 { u - 1 } else { u };
            rows.push((
                uuid(1, u),
                uuid(2, opened),
                "app_open",
                t,
                Some(format!("c{}", u % 5)),
            ));
            rows.push((uuid(1, u), uuid(3, u), "search_product", t + 1, None));
            rows.push((uuid(1, u), uuid(4, u), "purchase", t + 2, None));
            if u % 7 == 3 {
                rows.push((uuid(1, u), uuid(4, u), "purchase", t + 5, None));
            }
            rows.push((uuid(1, u), uuid(5, u), "app_close", t + 3, None));
        }
        let batches: Vec<RecordBatch> = rows
            .chunks(256)
            .enumerate()
            .map(|(b, chunk)| {
                let text = |f: &dyn Fn(&ManyRow) -> Option<String>| {
                    Arc::new(StringArray::from_iter(chunk.iter().map(f))) as ArrayRef
                };
                RecordBatch::try_new(
                    EVENTS.clone(),
                    vec![
                        text(&|r| Some(r.0.clone())),
                        text(&|r| Some(r.1.clone())),
                        text(&|r| Some(r.2.to_string())),
                        Arc::new(
                            datafusion::arrow::array::TimestampMicrosecondArray::from_iter_values(
                                chunk.iter().map(|r| r.3),
                            )
                            .with_timezone(crate::input::schema::UTC),
                        ),
                        text(&|_| Some("{}".to_string())),
                        text(&|r| r.4.clone()),
                        text(&|_| None),
                        text(&|_| None),
                        Arc::new(Int64Array::from_iter_values(
                            (0..chunk.len()).map(|i| source_row(0, (b * 256 + i) as u64)),
                        )),
                    ],
                )
                .unwrap()
            })
            .collect();
        let half = batches.len() / 2;
        vec![batches[..half].to_vec(), batches[half..].to_vec()]
    }

    /// Past `spill_at`, only the highest parts go to disk, as many as bring the rows kept in
    /// memory back under it; the others are cut in memory, and the result is the same.
    #[tokio::test]
    async fn events_past_spill_at_spill_only_the_parts_they_need_to() {
        let input = many_users(2000);
        let rows: usize = input.iter().flatten().map(RecordBatch::num_rows).sum();
        let bytes: usize = input
            .iter()
            .flatten()
            .map(|b| b.get_array_memory_size() + b.num_rows() * 8)
            .sum();
        for partitions in [1, 3] {
            let want = relevant(None, partitions, 0, input.clone()).await.rows;
            assert!(
                want.iter().any(|r| r.ends_with(" 2")),
                "duplicates in the data"
            );
            for (spill_at, how) in [(usize::MAX, "in memory"), (0, "all spilled")] {
                let run = relevant(Some(event_id_hash), partitions, spill_at, input.clone()).await;
                assert_eq!(run.rows, want, "{how}, {partitions} partitions");
            }
            // Just past spill_at, as 5M events under a 2 GiB cap: some parts are given up once.
            // (Further past it, every part goes the second time; the small batches here make
            // each part's pieces small, their fixed overheads large.)
            let spill_at = bytes * 19 / 20;
            let parts = partitions * (PARTS / partitions);
            // Every eventId colliding: the crossing rows are read from both places.
            for (hash, how) in [(event_id_hash as HashFn, "hashing"), (|_| 42, "one hash")] {
                let run = relevant(Some(hash), partitions, spill_at, input.clone()).await;
                assert_eq!(
                    run.rows, want,
                    "{how}, partly spilled, {partitions} partitions"
                );
                assert!(
                    0 < run.spilled_rows && run.spilled_rows < rows,
                    "{how}: {} of {rows} rows spilled, {partitions} partitions",
                    run.spilled_rows
                );
                assert!(
                    0 < run.parts_in_memory && run.parts_in_memory < parts,
                    "{how}: {} of {parts} parts in memory",
                    run.parts_in_memory
                );
                if how == "one hash" {
                    // The crossing rows are read from both places, disk and memory.
                    assert!(run.crossing > 1, "{} crossing parts", run.crossing);
                }
            }
        }
    }

    /// Rows gathered by part come out grouped by part, ascending, each part's rows in their
    /// order in the batch.
    #[test]
    fn rows_are_gathered_by_part_in_their_order() {
        let values = UInt64Array::from((0..10u64).collect::<Vec<_>>());
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("v", DataType::UInt64, false)])),
            vec![Arc::new(values)],
        )
        .unwrap();
        let parts = [3u64, 0, 3, 1, 0, 3, 1, 1, 0, 3];
        // Row 4 is left out, as the cut leaves rows out.
        let rows: Vec<u64> = (0..10)
            .filter(|&r| r != 4)
            .map(|r| by_part(parts[r], r))
            .collect();
        let mut pending = vec![Vec::new(); 4];
        add_by_part(&batch, &rows, &mut pending).unwrap();
        let gathered: Vec<Vec<u64>> = pending
            .iter()
            .map(|slices| {
                slices
                    .iter()
                    .flat_map(|b| b.column(0).as_primitive::<UInt64Type>().values().to_vec())
                    .collect()
            })
            .collect();
        assert_eq!(
            gathered,
            vec![vec![1, 8], vec![3, 6, 7], vec![], vec![0, 2, 5, 9]]
        );
        // A part beyond the slices given is an error, not a panic.
        let mut too_few = vec![Vec::new(); 2];
        assert!(add_by_part(&batch, &rows, &mut too_few).is_err());
    }
}
