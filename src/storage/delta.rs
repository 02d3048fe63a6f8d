//! The warehouse's tables as Delta Lake tables, partitioned by `date`: files written by our
//! Parquet writer into `TABLE/date=YYYY-MM-DD/`, then made part of the table by one delta-rs
//! transaction (the files it adds and those it removes, with the table's properties), so a
//! reader sees all of a change or none of it, and two writers cannot both commit theirs.
//!
//! A table is read through [`SnapshotTable`]: the files of one snapshot (the latest or any
//! earlier version), pruned by their `date`, scanned by DataFusion's own Parquet source. The
//! plan holds plain Parquet files, so a cluster's executors read them like any other.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{helpers, ListingTableUrl, PartitionedFile};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Add, MetadataExt, Remove, StructType};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableBuilder};
use futures::TryStreamExt;

use crate::calendar::{format_date, parse_date};
use crate::error::{Error, Result};

/// The partition column of every warehouse table.
pub const DATE: &str = "date";

/// The folder where Delta keeps a table's log: what makes a folder a Delta table.
pub const LOG_DIR: &str = "_delta_log";

/// Which snapshot of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Latest,
    Version(u64),
    /// The latest version committed at or before this instant (µs since the epoch, UTC).
    Timestamp(i64),
}

/// The data file tag naming the source files (their numbers) it holds rows of.
pub const SOURCES_TAG: &str = "marketing-analytics.sources";

/// One data file of a table: its path under the table's folder, its date, size and rows, and
/// the numbers of the source files it holds rows of (`None`: not recorded, any of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    pub path: String,
    pub date: i32,
    pub size: u64,
    pub rows: u64,
    pub sources: Option<Vec<u32>>,
}

impl DataFile {
    fn partition_values(&self) -> HashMap<String, Option<String>> {
        HashMap::from([(DATE.to_string(), Some(format_date(self.date)))])
    }

    fn add(&self) -> Action {
        Action::Add(Add {
            path: self.path.clone(),
            partition_values: self.partition_values(),
            size: self.size as i64,
            modification_time: now_millis(),
            data_change: true,
            stats: Some(format!("{{\"numRecords\":{}}}", self.rows)),
            tags: self.sources.as_ref().map(|numbers| {
                let list: Vec<String> = numbers.iter().map(u32::to_string).collect();
                HashMap::from([(SOURCES_TAG.to_string(), Some(list.join(",")))])
            }),
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
            clustering_provider: None,
        })
    }

    fn remove(&self) -> Action {
        Action::Remove(Remove {
            path: self.path.clone(),
            data_change: true,
            deletion_timestamp: Some(now_millis()),
            extended_file_metadata: Some(true),
            partition_values: Some(self.partition_values()),
            size: Some(self.size as i64),
            tags: None,
            deletion_vector: None,
            base_row_id: None,
            default_row_commit_version: None,
        })
    }
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The URL of a table's folder, local (made absolute) or an object store's.
pub fn table_url(location: &str) -> Result<url::Url> {
    let text = if crate::input::is_url(location) {
        format!("{}/", location.trim_end_matches('/'))
    } else {
        let path = crate::storage::claim::absolute(std::path::Path::new(location))?;
        format!(
            "file://{}/",
            path.display().to_string().trim_end_matches('/')
        )
    };
    url::Url::parse(&text).map_err(|e| Error::Config(format!("{location}: not a location ({e})")))
}

/// Lets delta-rs open tables of `url`'s scheme through the store we hand it (the session's,
/// which knows `s3://` from the environment): it knows `file://` only, and would refuse the
/// URL before looking at that store.
fn accept_scheme(url: &url::Url) -> Result<()> {
    use deltalake::logstore::{logstore_factories, object_store_factories};
    if url.scheme() == "file" {
        return Ok(());
    }
    let scheme = url::Url::parse(&format!("{}://", url.scheme()))
        .map_err(|e| Error::Config(format!("{url}: not a location ({e})")))?;
    logstore_factories()
        .entry(scheme.clone())
        .or_insert_with(|| Arc::new(SessionStores));
    object_store_factories()
        .entry(scheme)
        .or_insert_with(|| Arc::new(SessionStores));
    Ok(())
}

/// delta-rs's factories for the schemes of the session's stores: the default log store over
/// the store given; no store of its own (every table is opened with the session's).
struct SessionStores;

impl deltalake::logstore::LogStoreFactory for SessionStores {
    fn with_options(
        &self,
        prefixed_store: deltalake::logstore::ObjectStoreRef,
        root_store: deltalake::logstore::ObjectStoreRef,
        location: &url::Url,
        options: &deltalake::logstore::StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn deltalake::logstore::LogStore>> {
        Ok(deltalake::logstore::default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

impl deltalake::logstore::ObjectStoreFactory for SessionStores {
    fn parse_url_opts(
        &self,
        url: &url::Url,
        _: &deltalake::logstore::StorageConfig,
    ) -> deltalake::DeltaResult<(deltalake::logstore::ObjectStoreRef, deltalake::Path)> {
        Err(deltalake::DeltaTableError::InvalidTableLocation(format!(
            "{url}: opened through the session's object store only"
        )))
    }
}

/// Opens the Delta table at `location` as of `as_of`, through `ctx`'s object stores; `None`
/// when there is no Delta table there.
pub async fn open(ctx: &SessionContext, location: &str, as_of: AsOf) -> Result<Option<DeltaTable>> {
    if !crate::input::is_url(location) && !std::path::Path::new(location).join(LOG_DIR).is_dir() {
        return Ok(None);
    }
    let url = table_url(location)?;
    accept_scheme(&url)?;
    let listing = ListingTableUrl::parse(url.as_str())?;
    let store = ctx.runtime_env().object_store(&listing)?;
    let mut builder = DeltaTableBuilder::from_url(url.clone())
        .map_err(|e| delta_error(location, e))?
        .with_storage_backend(store, url);
    builder = match as_of {
        AsOf::Latest => builder,
        AsOf::Version(v) => builder.with_version(v),
        AsOf::Timestamp(micros) => {
            let at = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(|| {
                Error::Config(format!(
                    "{micros} µs is not a time the warehouse can be read at"
                ))
            })?;
            builder.with_timestamp(at)
        }
    };
    match builder.load().await {
        Ok(table) => Ok(Some(table)),
        Err(deltalake::DeltaTableError::NotATable(_)) => Ok(None),
        Err(e) => Err(delta_error(location, e)),
    }
}

/// Creates an empty Delta table of `file_schema` partitioned by `date` at `location`.
pub async fn create(
    ctx: &SessionContext,
    location: &str,
    file_schema: &Schema,
    properties: HashMap<String, String>,
) -> Result<DeltaTable> {
    let mut fields: Vec<Field> = file_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(DATE, DataType::Date32, false));
    let schema: StructType = (&Schema::new(fields))
        .try_into_kernel()
        .map_err(|e| Error::Config(format!("{location}: no Delta type for a column ({e})")))?;
    let url = table_url(location)?;
    accept_scheme(&url)?;
    let listing = ListingTableUrl::parse(url.as_str())?;
    let store = ctx.runtime_env().object_store(&listing)?;
    let table = DeltaTableBuilder::from_url(url.clone())
        .map_err(|e| delta_error(location, e))?
        .with_storage_backend(store, url)
        .build()
        .map_err(|e| delta_error(location, e))?;
    table
        .create()
        .with_columns(schema.fields().cloned())
        .with_partition_columns([DATE])
        .with_configuration(properties.into_iter().map(|(k, v)| (k, Some(v))))
        .with_save_mode(SaveMode::ErrorIfExists)
        .with_raise_if_key_not_exists(false)
        .await
        .map_err(|e| delta_error(location, e))
}

/// The data files of `table`'s snapshot, in path order.
pub async fn files(table: &DeltaTable) -> Result<Vec<DataFile>> {
    let location = table.table_url().to_string();
    let views: Vec<_> = table
        .get_active_add_actions_by_partitions(&[])
        .try_collect()
        .await
        .map_err(|e| delta_error(&location, e))?;
    let mut out = Vec::with_capacity(views.len());
    for v in views {
        let values = v.partition_values_map();
        let date = values
            .get(DATE)
            .cloned()
            .flatten()
            .and_then(|d| parse_date(&d).ok())
            .ok_or_else(|| Error::BadFile {
                file: format!("{location}{}", v.path()),
                reason: "a data file of the warehouse without a valid date partition value".into(),
            })?;
        // deltalake 1.1 gives a file's tags only through its Add action.
        #[allow(deprecated)]
        let sources = v
            .add_action()
            .tags
            .and_then(|t| t.get(SOURCES_TAG).cloned().flatten())
            .map(|list| {
                list.split(',')
                    .filter_map(|n| n.parse().ok())
                    .collect::<Vec<u32>>()
            });
        out.push(DataFile {
            path: v.object_store_path().to_string(),
            date,
            size: v.size().max(0) as u64,
            rows: v.num_records().unwrap_or(0) as u64,
            sources,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The table's properties (its metadata's configuration).
pub fn properties(table: &DeltaTable) -> Result<HashMap<String, String>> {
    let state = table
        .snapshot()
        .map_err(|e| delta_error(table.table_url().as_ref(), e))?;
    Ok(state.metadata().configuration().clone())
}

/// What one commit changes.
pub struct Change {
    pub add: Vec<DataFile>,
    pub remove: Vec<DataFile>,
    /// Properties set (others are kept).
    pub properties: HashMap<String, String>,
    /// Recorded in the commit's information (`commitInfo`), for the history.
    pub app_metadata: HashMap<String, serde_json::Value>,
}

/// Commits `change` to `table` in one transaction; returns the version it made. A writer that
/// committed in between makes it fail (nothing is retried: our changes are computed from the
/// snapshot they replace).
pub async fn commit(table: &mut DeltaTable, change: Change) -> Result<u64> {
    let location = table.table_url().to_string();
    let fail = |e: deltalake::DeltaTableError| delta_error(&location, e);
    let state = table.snapshot().map_err(fail)?;
    let mut actions: Vec<Action> = Vec::new();
    if !change.properties.is_empty() {
        let mut metadata = state.metadata().clone();
        for (k, v) in change.properties {
            metadata = metadata.add_config_key(k, v).map_err(|e| fail(e.into()))?;
        }
        actions.push(Action::Metadata(metadata));
    }
    actions.extend(change.remove.iter().map(DataFile::remove));
    actions.extend(change.add.iter().map(DataFile::add));
    let operation = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: Some(vec![DATE.to_string()]),
        predicate: None,
    };
    let done = CommitBuilder::default()
        .with_actions(actions)
        .with_app_metadata(change.app_metadata)
        .with_max_retries(0)
        .build(Some(state), table.log_store(), operation)
        .await
        .map_err(|e| match e {
            deltalake::DeltaTableError::Transaction { .. }
            | deltalake::DeltaTableError::VersionAlreadyExists(_) => Error::Config(format!(
                "{location}: another writer committed to this table meanwhile; nothing of this \
                 conversion was committed to it. Run it again"
            )),
            e => fail(e),
        })?;
    let version = done.version();
    table.update_state().await.map_err(fail)?;
    Ok(version)
}

/// Compacts each date's small files of `table` into files of about `target_bytes`, in one
/// transaction; returns the files added and removed.
pub async fn optimize(table: DeltaTable, target_bytes: u64) -> Result<(DeltaTable, u64, u64)> {
    let location = table.table_url().to_string();
    let mut builder = table.optimize();
    if let Some(target) = std::num::NonZeroU64::new(target_bytes) {
        builder = builder.with_target_size(target);
    }
    let (table, metrics) = builder.await.map_err(|e| delta_error(&location, e))?;
    Ok((table, metrics.num_files_added, metrics.num_files_removed))
}

/// Removes the files under `table` that no version younger than `retention` references, nor
/// the versions `keep` (with `dry_run`, lists them only); returns them.
pub async fn vacuum(
    table: DeltaTable,
    retention: std::time::Duration,
    keep: &[u64],
    dry_run: bool,
) -> Result<Vec<String>> {
    let location = table.table_url().to_string();
    let retention = chrono::Duration::from_std(retention)
        .map_err(|e| Error::Config(format!("retention {retention:?}: {e}")))?;
    let (_, metrics) = table
        .vacuum()
        .with_retention_period(retention)
        .with_enforce_retention_duration(false)
        .with_keep_versions(keep)
        .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
        .with_dry_run(dry_run)
        .await
        .map_err(|e| delta_error(&location, e))?;
    Ok(metrics.files_deleted)
}

fn delta_error(location: &str, e: deltalake::DeltaTableError) -> Error {
    Error::BadFile {
        file: location.to_string(),
        reason: format!("as a Delta table: {e}"),
    }
}

/// A [`SnapshotTable`] as the cluster's codec sends it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Encoded {
    store: String,
    files: Vec<(String, u64, i32)>,
}

/// One snapshot of a table, read by DataFusion's Parquet source.
#[derive(Debug)]
pub struct SnapshotTable {
    /// The files' columns, then `date`.
    schema: SchemaRef,
    file_schema: SchemaRef,
    store: ObjectStoreUrl,
    /// Each file's path in its object store, size and date.
    files: Vec<(String, u64, i32)>,
    format: Arc<dyn FileFormat>,
}

impl SnapshotTable {
    /// The files of `table`'s snapshot, whose columns are `file_schema` (and `date`).
    pub async fn new(
        ctx: &SessionContext,
        table: &DeltaTable,
        file_schema: SchemaRef,
    ) -> Result<Self> {
        let all = files(table).await?;
        Self::of(ctx, table, file_schema, all)
    }

    /// The data files `files` of `table` (of any of its versions), whose columns are
    /// `file_schema` (and `date`).
    pub fn of(
        ctx: &SessionContext,
        table: &DeltaTable,
        file_schema: SchemaRef,
        files: Vec<DataFile>,
    ) -> Result<Self> {
        let root = ListingTableUrl::parse(table.table_url().as_str())?;
        let prefix = root.prefix().as_ref().trim_end_matches('/').to_string();
        let files = files
            .into_iter()
            .map(|f| {
                let path = if prefix.is_empty() {
                    f.path
                } else {
                    format!("{prefix}/{}", f.path)
                };
                (path, f.size, f.date)
            })
            .collect();
        let mut fields: Vec<Field> = file_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(DATE, DataType::Date32, false));
        let format = super::tables::parquet_options(ctx, Vec::new()).format;
        Ok(SnapshotTable {
            schema: Arc::new(Schema::new(fields)),
            file_schema,
            store: root.object_store(),
            files,
            format,
        })
    }

    /// The snapshot as bytes (its object store and files; the schema travels beside them).
    pub fn encode(&self) -> datafusion::error::Result<Vec<u8>> {
        let encoded = Encoded {
            store: self.store.as_str().to_string(),
            files: self.files.clone(),
        };
        serde_json::to_vec(&encoded)
            .map_err(|e| datafusion::error::DataFusionError::External(e.into()))
    }

    /// The snapshot [`SnapshotTable::encode`] gave, of the table whose schema is `schema`.
    pub fn decode(
        bytes: &[u8],
        schema: SchemaRef,
        ctx: &datafusion::execution::TaskContext,
    ) -> datafusion::error::Result<Self> {
        let e: Encoded = serde_json::from_slice(bytes)
            .map_err(|e| datafusion::error::DataFusionError::External(e.into()))?;
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .filter(|f| f.name() != DATE)
            .map(|f| f.as_ref().clone())
            .collect();
        let options = ctx.session_config().options().execution.parquet.clone();
        let format = datafusion::datasource::file_format::parquet::ParquetFormat::default()
            .with_options(datafusion::config::TableParquetOptions {
                global: options,
                ..Default::default()
            });
        Ok(SnapshotTable {
            schema,
            file_schema: Arc::new(Schema::new(fields)),
            store: ObjectStoreUrl::parse(&e.store)?,
            files: e.files,
            format: Arc::new(format),
        })
    }

    /// Its files' dates, each once, in order.
    pub fn dates(&self) -> Vec<i32> {
        let mut d: Vec<i32> = self.files.iter().map(|f| f.2).collect();
        d.sort_unstable();
        d.dedup();
        d
    }
}

#[async_trait::async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // A filter of the date alone picks files: exact. The others are the scan's to push
        // into the Parquet reader (as with a ListingTable).
        Ok(filters
            .iter()
            .map(|f| {
                if helpers::expr_applicable_for_cols(&[DATE], f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let date_filters: Vec<Expr> = filters
            .iter()
            .filter(|f| helpers::expr_applicable_for_cols(&[DATE], f))
            .cloned()
            .collect();
        let date_schema =
            DFSchema::try_from(Schema::new(vec![Field::new(DATE, DataType::Date32, false)]))?;
        let mut picked = Vec::new();
        for (path, size, date) in &self.files {
            let file = PartitionedFile::new(path.clone(), *size)
                .with_partition_values(vec![ScalarValue::Date32(Some(*date))]);
            if let Some(file) = helpers::filter_partitioned_file(file, &date_filters, &date_schema)?
            {
                picked.push(file);
            }
        }
        if picked.is_empty() {
            let schema = datafusion::physical_plan::project_schema(&self.schema, projection)?;
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let groups = FileGroup::new(picked).split_files(state.config().target_partitions());
        let table_schema = TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(vec![Arc::new(Field::new(DATE, DataType::Date32, false))])
            .build();
        let config =
            FileScanConfigBuilder::new(self.store.clone(), self.format.file_source(table_schema))
                .with_file_groups(groups)
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
        self.format.create_physical_plan(state, config).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::parquet::arrow::ArrowWriter;

    fn file_schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]))
    }

    /// Writes rows `ids` as a data file of `date` under the table at `root`.
    fn data_file(root: &std::path::Path, date: &str, name: &str, ids: &[i64]) -> DataFile {
        let rel = format!("{DATE}={date}/{name}.parquet");
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let batch = RecordBatch::try_new(
            file_schema(),
            vec![Arc::new(Int64Array::from(ids.to_vec()))],
        )
        .unwrap();
        let mut w =
            ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), file_schema(), None)
                .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        DataFile {
            path: rel,
            date: parse_date(date).unwrap(),
            size: std::fs::metadata(&path).unwrap().len(),
            rows: ids.len() as u64,
            sources: Some(vec![7, 9]),
        }
    }

    fn change(add: Vec<DataFile>, remove: Vec<DataFile>) -> Change {
        Change {
            add,
            remove,
            properties: HashMap::new(),
            app_metadata: HashMap::new(),
        }
    }

    async fn ids(ctx: &SessionContext, table: &DeltaTable, sql_where: &str) -> Vec<(i64, String)> {
        let t = SnapshotTable::new(ctx, table, file_schema()).await.unwrap();
        ctx.deregister_table("t").unwrap();
        ctx.register_table("t", Arc::new(t)).unwrap();
        let batches = ctx
            .sql(&format!(
                "SELECT id, CAST(date AS VARCHAR) FROM t {sql_where} ORDER BY id"
            ))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let mut out = Vec::new();
        for b in batches {
            let id = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let d = datafusion::arrow::compute::cast(b.column(1), &DataType::Utf8).unwrap();
            let d = datafusion::arrow::array::AsArray::as_string::<i32>(&d);
            for i in 0..b.num_rows() {
                out.push((id.value(i), d.value(i).to_string()));
            }
        }
        out
    }

    #[tokio::test]
    async fn a_commit_adds_and_removes_files_at_once_and_each_version_stays_readable() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        let location = root.display().to_string();
        let ctx = SessionContext::new();
        assert!(open(&ctx, &location, AsOf::Latest).await.unwrap().is_none());
        let props = HashMap::from([("marketing-analytics.test".to_string(), "1".to_string())]);
        let mut table = create(&ctx, &location, &file_schema(), props)
            .await
            .unwrap();
        let a = data_file(&root, "2020-09-01", "a", &[1, 2]);
        let b = data_file(&root, "2020-09-02", "b", &[3]);
        let v1 = commit(&mut table, change(vec![a.clone(), b.clone()], vec![]))
            .await
            .unwrap();
        let a2 = data_file(&root, "2020-09-01", "a2", &[1, 2, 4]);
        let props = HashMap::from([("marketing-analytics.more".to_string(), "2".to_string())]);
        let v2 = commit(
            &mut table,
            Change {
                properties: props,
                ..change(vec![a2.clone()], vec![a.clone()])
            },
        )
        .await
        .unwrap();
        assert_eq!(v2, v1 + 1);
        assert_eq!(files(&table).await.unwrap(), vec![a2.clone(), b.clone()]);
        let day = |d: &str| d.to_string();
        assert_eq!(
            ids(&ctx, &table, "").await,
            vec![
                (1, day("2020-09-01")),
                (2, day("2020-09-01")),
                (3, day("2020-09-02")),
                (4, day("2020-09-01"))
            ]
        );
        // The file removed is still on disk: the earlier version reads it.
        let old = open(&ctx, &location, AsOf::Version(v1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(files(&old).await.unwrap(), vec![a, b]);
        assert_eq!(ids(&ctx, &old, "").await.len(), 3);
        // Properties set at creation are kept by later commits.
        assert_eq!(
            properties(&table).unwrap().get("marketing-analytics.test"),
            Some(&"1".to_string())
        );
    }

    #[tokio::test]
    async fn a_filter_on_the_date_reads_only_that_dates_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        let location = root.display().to_string();
        let ctx = SessionContext::new();
        let mut table = create(&ctx, &location, &file_schema(), HashMap::new())
            .await
            .unwrap();
        let files = vec![
            data_file(&root, "2020-09-01", "a", &[1]),
            data_file(&root, "2020-09-02", "b", &[2]),
            data_file(&root, "2020-09-03", "c", &[3]),
        ];
        commit(&mut table, change(files, vec![])).await.unwrap();
        assert_eq!(
            ids(
                &ctx,
                &table,
                "WHERE date >= '2020-09-02' AND date < '2020-09-03'"
            )
            .await,
            vec![(2, "2020-09-02".to_string())]
        );
        let plan = ctx
            .sql("EXPLAIN SELECT id FROM t WHERE date = '2020-09-03'")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
            .unwrap()
            .to_string();
        assert!(text.contains("c.parquet"), "{text}");
        assert!(
            !text.contains("a.parquet") && !text.contains("b.parquet"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_writer_behind_another_commits_nothing_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        let location = root.display().to_string();
        let ctx = SessionContext::new();
        let mut first = create(&ctx, &location, &file_schema(), HashMap::new())
            .await
            .unwrap();
        let mut second = open(&ctx, &location, AsOf::Latest).await.unwrap().unwrap();
        let a = data_file(&root, "2020-09-01", "a", &[1]);
        commit(&mut first, change(vec![a.clone()], vec![]))
            .await
            .unwrap();
        let props = HashMap::from([("k".to_string(), "v".to_string())]);
        let b = data_file(&root, "2020-09-01", "b", &[2]);
        let e = commit(
            &mut second,
            Change {
                properties: props,
                ..change(vec![b], vec![])
            },
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("another writer"), "{e}");
        let now = open(&ctx, &location, AsOf::Latest).await.unwrap().unwrap();
        assert_eq!(files(&now).await.unwrap(), vec![a]);
        assert!(!properties(&now).unwrap().contains_key("k"));
    }
}
