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

mod budget;
mod compact;
mod job;
mod keys;
mod order;
mod repeated;
mod spill;

use budget::*;
use job::*;
use keys::*;
use order::*;
use repeated::*;

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

#[cfg(test)]
mod tests;
