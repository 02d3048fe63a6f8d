//! Intermediate tables kept on disk by a memory-capped run: Arrow IPC files, a file per
//! partition, written by this process and read back by it.
//!
//! The transform computes a few tables once and reads each several times (the next step, the
//! counts, the projection). In memory they are outside the memory pool; under a cap they go to
//! the scratch location instead. Arrow IPC is the batches' own memory layout, so writing and
//! reading are copies, where Parquet encodes and decodes every value: on 10M events Parquet
//! intermediates cost about 2 s of the job, IPC files 0.3-0.5 s (docs/performance.md, eighth
//! round). A cluster's executors write Parquet instead (`Materialize::DistributedParquet`).
//!
//! The files are in the IPC *stream* format, which DataFusion reads a batch at a time; it reads
//! the file format by byte ranges, each range's batches at once (on 50M events under a 1.5 GiB
//! cap that took the job to 2.7 GiB). The tables carry no statistics, so the planner keeps a
//! join's sides as the SQL writes them (see `classify.sql`).

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::runtime::SpawnedTask;
use datafusion::datasource::file_format::arrow::ArrowFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::object_store::buffered::BufWriter;
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::output::conform;

const EXTENSION: &str = ".arrow";

/// Streams every partition of `df` into its own Arrow IPC file under `location` (an absolute
/// directory path or object-store URL ending in `/`), the partitions in parallel, and registers
/// the files as table `name`. Memory stays bounded: each writer holds one encoded batch and an
/// 8 MiB upload buffer.
pub async fn materialize(
    ctx: &SessionContext,
    name: &str,
    df: DataFrame,
    location: &str,
) -> Result<()> {
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let url = ListingTableUrl::parse(location)?;
    let store = ctx.runtime_env().object_store(url.object_store())?;
    let writers = df
        .execute_stream_partitioned()
        .await?
        .into_iter()
        .enumerate()
        .map(|(i, mut stream)| {
            let path = url.prefix().clone().join(format!("part-{i:05}{EXTENSION}"));
            let mut out = BufWriter::with_capacity(store.clone(), path, 8 << 20);
            let schema = schema.clone();
            let location = location.to_string();
            SpawnedTask::spawn(async move {
                let io_error = |e| Error::io(&location, e);
                let mut ipc = StreamWriter::try_new(Vec::new(), &schema)?;
                while let Some(batch) = stream.next().await {
                    ipc.write(&conform(&batch?, &schema)?)?;
                    let encoded = std::mem::take(ipc.get_mut());
                    out.write_all(&encoded).await.map_err(io_error)?;
                }
                ipc.finish()?;
                out.write_all(ipc.get_ref()).await.map_err(io_error)?;
                out.shutdown().await.map_err(io_error)?;
                Ok::<_, Error>(())
            })
        })
        .collect::<Vec<_>>();
    for writer in writers {
        writer
            .join()
            .await
            .map_err(|e| Error::io(location, std::io::Error::other(e)))??;
    }
    let options = ListingOptions::new(Arc::new(ArrowFormat)).with_file_extension(EXTENSION);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    ctx.deregister_table(name)?;
    ctx.register_table(name, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;

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

    /// Every row comes back, from a file per partition (an empty partition included).
    #[tokio::test]
    async fn a_materialized_table_reads_back_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let partitions = vec![
            vec![batch(&schema, &[1, 2, 3]), batch(&schema, &[4])],
            vec![],
            vec![batch(&schema, &[5, 6])],
        ];
        let ctx = SessionContext::new();
        let source = MemTable::try_new(schema.clone(), partitions).unwrap();
        let df = ctx.read_table(Arc::new(source)).unwrap();
        let location = format!("{}/t/", dir.path().display());
        std::fs::create_dir_all(&location).unwrap();
        materialize(&ctx, "t", df, &location).await.unwrap();

        let files = std::fs::read_dir(&location).unwrap().count();
        assert_eq!(files, 3, "an IPC file per partition");
        let rows = ctx
            .sql("SELECT id, name FROM t ORDER BY id")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let rows = datafusion::arrow::compute::concat_batches(&rows[0].schema(), &rows).unwrap();
        assert_eq!(rows, batch(&rows.schema(), &[1, 2, 3, 4, 5, 6]));
    }
}
