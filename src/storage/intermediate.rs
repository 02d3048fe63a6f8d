//! Intermediate tables under a memory cap: each partition in memory while it fits, else in an
//! Arrow IPC file, written by this process and read back by it.
//!
//! The transform computes a few tables once and reads each several times (the next step, the
//! counts, the projection). Under a cap (the default one too) a partition stays in memory, with
//! a reservation in the pool, while the tables hold less than a quarter of the cap and the pool
//! grants it; past that it goes to the scratch location. Arrow IPC is the batches' own memory
//! layout, so writing and reading are copies, where Parquet encodes and decodes every value: on
//! 10M events Parquet intermediates cost about 2 s of the job, IPC files 0.3-0.5 s
//! (docs/performance.md, eighth round). A cluster's executors write Parquet instead
//! (`Materialize::DistributedParquet`).
//!
//! The files are in the IPC *stream* format, which DataFusion reads a batch at a time; it reads
//! the file format by byte ranges, each range's batches at once (on 50M events under a 1.5 GiB
//! cap that took the job to 2.7 GiB). The tables carry no statistics, so the planner keeps a
//! join's sides as the SQL writes them (see `classify.sql`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::runtime::SpawnedTask;
use datafusion::datasource::listing::{ListingTable, ListingTableUrl};
use datafusion::datasource::{MemTable, TableType};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryReservation};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::Expr;
use datafusion::object_store::buffered::BufWriter;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::storage::output::conform;

const EXTENSION: &str = ".arrow";

/// What the intermediate tables of one transform hold in memory, in bytes. They may hold a
/// quarter of the memory cap between them, so that the sorts after them are not starved.
#[derive(Debug, Default)]
pub struct Held(AtomicUsize);

/// Computes every partition of `df`, in parallel, and registers the result as table `name`.
/// Each partition stays in memory while the pool grants it and the tables' quarter of the cap
/// allows; past that it is streamed to an Arrow IPC file under `location` (an absolute
/// directory path or object-store URL ending in `/`), so that memory stays bounded: each
/// writer holds one encoded batch and an 8 MiB upload buffer.
pub async fn materialize(
    ctx: &SessionContext,
    name: &str,
    df: DataFrame,
    location: &str,
    held: &Arc<Held>,
) -> Result<()> {
    let started = std::time::Instant::now();
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let url = ListingTableUrl::parse(location)?;
    let store = ctx.runtime_env().object_store(url.object_store())?;
    let pool = ctx.runtime_env().memory_pool.clone();
    let budget = match pool.memory_limit() {
        MemoryLimit::Finite(limit) => limit / 4,
        MemoryLimit::Infinite | MemoryLimit::Unknown => 0,
    };
    let writers = df
        .execute_stream_partitioned()
        .await?
        .into_iter()
        .enumerate()
        .map(|(i, stream)| {
            let partition = Partition {
                path: url.prefix().clone().join(format!("part-{i:05}{EXTENSION}")),
                store: store.clone(),
                schema: schema.clone(),
                location: location.to_string(),
                reservation: MemoryConsumer::new(format!("intermediate {name}[{i}]"))
                    .register(&pool),
                held: held.clone(),
                budget,
                written: 0,
            };
            SpawnedTask::spawn(partition.collect(stream))
        })
        .collect::<Vec<_>>();
    let mut partitions = Vec::with_capacity(writers.len());
    let mut reservations = Vec::with_capacity(writers.len());
    let mut on_disk = false;
    let (mut rows, mut written) = (0, 0);
    for writer in writers {
        let kept = writer
            .join()
            .await
            .map_err(|e| Error::io(location, std::io::Error::other(e)))??;
        on_disk |= kept.on_disk;
        rows += kept.rows;
        written += kept.written;
        partitions.push(kept.batches);
        reservations.push(kept.reservation);
    }
    let in_memory: usize = reservations.iter().map(MemoryReservation::size).sum();
    tracing::debug!(
        table = name,
        rows,
        in_memory,
        written,
        seconds = started.elapsed().as_secs_f32(),
        "materialized an intermediate table"
    );
    let memory = MemTable::try_new(schema.clone(), partitions)?;
    let disk = if on_disk {
        let options = super::tables::arrow_options(ctx, EXTENSION);
        Some(super::tables::listing_table(
            vec![url],
            options,
            schema.clone(),
        )?)
    } else {
        None
    };
    let table = Intermediate {
        schema,
        memory,
        disk,
        _reservations: reservations,
    };
    ctx.deregister_table(name)?;
    ctx.register_table(name, Arc::new(table))?;
    Ok(())
}

/// One partition being computed.
struct Partition {
    path: datafusion::object_store::path::Path,
    store: Arc<dyn datafusion::object_store::ObjectStore>,
    schema: SchemaRef,
    location: String,
    reservation: MemoryReservation,
    held: Arc<Held>,
    budget: usize,
    /// Bytes written to its file so far.
    written: usize,
}

/// A computed partition: its batches kept in memory (with their reservation), and whether
/// the rest went to its file.
struct Kept {
    batches: Vec<RecordBatch>,
    reservation: MemoryReservation,
    on_disk: bool,
    rows: usize,
    /// Bytes written to its file.
    written: usize,
}

impl Partition {
    async fn collect(mut self, mut stream: SendableRecordBatchStream) -> Result<Kept> {
        let mut batches = Vec::new();
        let mut file: Option<(StreamWriter<Vec<u8>>, BufWriter)> = None;
        let mut rows = 0;
        while let Some(batch) = stream.next().await {
            let batch = conform(&batch?, &self.schema)?;
            rows += batch.num_rows();
            let writer = match &mut file {
                Some((ipc, out)) => (ipc, out),
                None => {
                    if self.keep(slice_bytes(&batch)) {
                        batches.push(batch);
                        continue;
                    }
                    // From the first batch refused on, the partition goes to disk, the
                    // batches kept so far first (in their order), and its memory is released.
                    let (ipc, out) = file.insert((
                        StreamWriter::try_new(Vec::new(), &self.schema)?,
                        BufWriter::with_capacity(self.store.clone(), self.path.clone(), 8 << 20),
                    ));
                    for kept in batches.drain(..) {
                        self.write(ipc, out, &kept).await?;
                    }
                    self.held
                        .0
                        .fetch_sub(self.reservation.size(), Ordering::Relaxed);
                    self.reservation.free();
                    (ipc, out)
                }
            };
            self.write(writer.0, writer.1, &batch).await?;
        }
        let on_disk = file.is_some();
        if let Some((mut ipc, mut out)) = file {
            ipc.finish()?;
            let io_error = |e| Error::io(&self.location, e);
            self.written += ipc.get_ref().len();
            out.write_all(ipc.get_ref()).await.map_err(io_error)?;
            out.shutdown().await.map_err(io_error)?;
        }
        Ok(Kept {
            batches,
            reservation: self.reservation,
            on_disk,
            rows,
            written: self.written,
        })
    }

    /// Whether a batch of `size` bytes stays in memory: within the tables' share of the cap,
    /// and granted by the pool.
    fn keep(&mut self, size: usize) -> bool {
        let before = self.held.0.fetch_add(size, Ordering::Relaxed);
        if before + size <= self.budget && self.reservation.try_grow(size).is_ok() {
            return true;
        }
        self.held.0.fetch_sub(size, Ordering::Relaxed);
        false
    }

    async fn write(
        &mut self,
        ipc: &mut StreamWriter<Vec<u8>>,
        out: &mut BufWriter,
        batch: &RecordBatch,
    ) -> Result<()> {
        ipc.write(batch)?;
        let encoded = std::mem::take(ipc.get_mut());
        self.written += encoded.len();
        out.write_all(&encoded)
            .await
            .map_err(|e| Error::io(&self.location, e))
    }
}

/// The bytes of a batch's rows. Batches cut from larger arrays (an unnested list's values)
/// share their buffers, and `get_array_memory_size` counts each shared buffer whole in every
/// batch: on the session step's output that is about 3× the data, and the tables' share of
/// the cap ran out at 50M events with most of it unused.
fn slice_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|column| {
            column
                .to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| column.get_array_memory_size())
        })
        .sum()
}

/// An intermediate table: its partitions kept in memory, and those written to disk. Holds the
/// memory reservations of the former for as long as the table is registered.
#[derive(Debug)]
struct Intermediate {
    schema: SchemaRef,
    memory: MemTable,
    disk: Option<Arc<ListingTable>>,
    _reservations: Vec<MemoryReservation>,
}

#[async_trait]
impl TableProvider for Intermediate {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let mut plans = vec![self.memory.scan(state, projection, filters, limit).await?];
        if let Some(disk) = &self.disk {
            plans.push(disk.scan(state, projection, filters, limit).await?);
        }
        UnionExec::try_new(plans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    fn batch(schema: &SchemaRef, ids: &[i64]) -> RecordBatch {
        let names: Vec<String> = ids.iter().map(|i| format!("row-{i}")).collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    /// Materializes `partitions` of (id, name) rows on `ctx`; gives the ids read back in
    /// order and the number of files written.
    async fn round_trip(
        ctx: &SessionContext,
        partitions: Vec<Vec<RecordBatch>>,
    ) -> (Vec<i64>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let source = MemTable::try_new(partitions[0][0].schema(), partitions).unwrap();
        let df = ctx.read_table(Arc::new(source)).unwrap();
        let location = format!("{}/t/", dir.path().display());
        std::fs::create_dir_all(&location).unwrap();
        materialize(ctx, "t", df, &location, &Arc::default())
            .await
            .unwrap();
        let files = std::fs::read_dir(&location).unwrap().count();
        // Sorted here: a sort inside the tiny pool of the capped test would not fit.
        let mut rows = Vec::new();
        for batch in ctx.table("t").await.unwrap().collect().await.unwrap() {
            let ids = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            let names = batch
                .column(1)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            for (id, name) in ids.values().iter().zip(names.iter()) {
                rows.push((*id, name.map(str::to_string)));
            }
        }
        rows.sort();
        for (id, name) in &rows {
            assert_eq!(name.as_deref(), Some(format!("row-{id}").as_str()));
        }
        let ids = rows.into_iter().map(|(id, _)| id).collect();
        (ids, files)
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    /// Without a cap to share, every partition with rows goes to its own file, and every row
    /// comes back.
    #[tokio::test]
    async fn without_a_cap_every_partition_goes_to_a_file() {
        let schema = schema();
        let partitions = vec![
            vec![batch(&schema, &[1, 2, 3]), batch(&schema, &[4])],
            vec![],
            vec![batch(&schema, &[5, 6])],
        ];
        let (ids, files) = round_trip(&SessionContext::new(), partitions).await;
        assert_eq!(ids, [1, 2, 3, 4, 5, 6]);
        assert_eq!(files, 2, "a file per partition with rows");
    }

    /// Under a cap, a partition that fits in the tables' quarter stays in memory and one that
    /// does not goes to disk (the rows it held so far first); the table gives both.
    #[tokio::test]
    async fn under_a_cap_what_fits_stays_in_memory_and_the_rest_goes_to_disk() {
        let schema = schema();
        let large: Vec<i64> = (100..20_100).collect();
        let partitions = vec![
            vec![batch(&schema, &[1, 2]), batch(&schema, &[3])],
            vec![batch(&schema, &[4]), batch(&schema, &large)],
        ];
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(
                datafusion::execution::memory_pool::FairSpillPool::new(256 << 10),
            ))
            .build_arc()
            .unwrap();
        let ctx = SessionContext::new_with_config_rt(Default::default(), runtime);
        let (ids, files) = round_trip(&ctx, partitions).await;
        let expected: Vec<i64> = [1, 2, 3, 4].into_iter().chain(large).collect();
        assert_eq!(ids, expected);
        assert_eq!(files, 1, "only the large partition is on disk");
    }
}
