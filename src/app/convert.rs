//! The warehouse: raw exports converted once into date-partitioned Parquet, then queried for
//! any period reading only the partitions it needs.
//!
//! Layout (Hive style): `WAREHOUSE/clickstream/date=YYYY-MM-DD/part-00000.parquet` partitioned by
//! the date of eventTime and sorted by userId, eventTime inside a partition;
//! `WAREHOUSE/purchases/date=YYYY-MM-DD/part-00000.parquet` partitioned by the date of
//! purchaseTime and sorted by purchaseTime. Columns are the decoded inputs' (see
//! `input::schema`): typed timestamps, billingCost as decimal, isConfirmed as bool, and the
//! attributes parsed into campaignId, channelId and purchaseId next to the raw text. Row groups
//! carry min/max statistics. A conversion replaces exactly the dates its input touches, each in
//! one atomic step, and leaves the other dates alone.
//!
//! A conversion also stores the attribution projection of everything the warehouse then holds
//! (`WAREHOUSE/projection/date=YYYY-MM-DD/`, by the date of purchaseTime, sorted by
//! purchaseId), with the list of partition files it was computed from (in its `_SUCCESS`). A
//! period then reads only its dates of that projection ([`register_stored_projection`]):
//! exactly the full pipeline filtered to the period, without sessionizing again. Should the
//! partitions no longer be the listed ones (a conversion that did not finish, files copied in
//! by hand), the period computes the projection from the partitions instead, and says so.

use std::path::Path;

use datafusion::arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use datafusion::object_store::ObjectStoreExt;
use datafusion::prelude::{cast, col, ident, lit, SessionContext};
use tracing::{info, info_span, Instrument};

use crate::app::job::{JobRun, Target};
use crate::app::Settings;
use crate::attribution;
use crate::calendar::format_date;
use crate::engine::session_context_with_limit;
use crate::error::{Error, Result};
use crate::input::{resolve, schema, TableKind};
use crate::storage::claim::{Input, Marker};
use crate::storage::replace_table;
use crate::storage::warehouse::{
    register_listing, table_dir, table_files, table_url, write_partitioned, DateSources,
    PROJECTION_DIR,
};

/// The partition files a stored projection was computed from: per table, each file's path
/// under the table's folder and its size (sizes survive a copy of the warehouse to an object
/// store; modification times do not).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProjectionInputs {
    pub clickstream: Vec<(String, u64)>,
    pub purchases: Vec<(String, u64)>,
}

impl ProjectionInputs {
    /// The partition files `warehouse` holds now.
    pub async fn list(ctx: &SessionContext, warehouse: &Path) -> Result<Self> {
        Ok(ProjectionInputs {
            clickstream: table_files(ctx, warehouse, TableKind::Clickstream).await?,
            purchases: table_files(ctx, warehouse, TableKind::Purchases).await?,
        })
    }
}

/// What a conversion wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConvertReport {
    /// Dates written per table, with their rows.
    pub clickstream_dates: Vec<(String, u64)>,
    pub purchases_dates: Vec<(String, u64)>,
    pub quarantined: u64,
    /// Rows of the projection stored for the whole warehouse.
    pub projection_rows: u64,
}

/// Converts raw exports into the warehouse, replacing the dates they touch.
pub async fn convert(
    settings: &Settings,
    clickstream: &str,
    purchases: &str,
    warehouse: &Path,
) -> Result<ConvertReport> {
    let span = info_span!("job", job = %"convert");
    async {
        let job =
            JobRun::claim_warehouse(settings, warehouse, &Input::exports(clickstream, purchases))?;
        let settings = job.settings();
        // What a killed conversion left: its date and projection stagings, its scratch.
        for dir in [
            warehouse.to_path_buf(),
            table_dir(warehouse, TableKind::Clickstream),
            table_dir(warehouse, TableKind::Purchases),
        ] {
            crate::storage::output::reclaim_all_in(&dir)?;
        }
        let inputs = attribution::Inputs {
            clickstream: resolve(clickstream, "clickstream", settings.delimiter)?,
            purchases: resolve(purchases, "purchases", settings.delimiter)?,
        };
        let absolute = |files: &[crate::input::InputFile]| -> Result<Vec<String>> {
            files
                .iter()
                .map(|f| {
                    Ok(crate::storage::claim::absolute(&f.path)?
                        .display()
                        .to_string())
                })
                .collect()
        };
        let clickstream_files = absolute(&inputs.clickstream)?;
        let purchases_files = absolute(&inputs.purchases)?;
        let ctx = session_context_with_limit(
            settings.threads,
            settings.memory_limit,
            settings.spill_dir.as_deref(),
        )?;
        let extracted =
            attribution::extract(&ctx, &inputs, settings.threads, None, job.quarantine())?;
        // From the first partition replaced until the new projection is in place, the stored
        // one no longer matches the partitions: without its list of inputs no period reads it.
        forget_projection_inputs(warehouse)?;
        let mut report = ConvertReport::default();
        for (kind, order) in [
            (
                TableKind::Clickstream,
                "userId, eventTime, eventId, sourceRow",
            ),
            (TableKind::Purchases, "purchaseTime, purchaseId, sourceRow"),
        ] {
            let (table, time) = match kind {
                TableKind::Clickstream => ("events", "eventTime"),
                TableKind::Purchases => ("purchases", "purchaseTime"),
            };
            let sql = format!(
                "SELECT *, CAST({time} AS DATE) AS date FROM {table} ORDER BY date, {order}"
            );
            let df = ctx.sql(&sql).await?;
            let file_schema = match kind {
                TableKind::Clickstream => schema::EVENTS.clone(),
                TableKind::Purchases => schema::PURCHASES.clone(),
            };
            let files = match kind {
                TableKind::Clickstream => &clickstream_files,
                TableKind::Purchases => &purchases_files,
            };
            let ingest = match kind {
                TableKind::Clickstream => &extracted.clickstream,
                TableKind::Purchases => &extracted.purchases,
            };
            let limit = || ingest.settle_bad_rows(settings.max_bad_rows);
            let sources = DateSources {
                table: kind.name(),
                files,
                replace_dates: settings.replace_dates,
                before_commit: &limit,
            };
            let dates =
                write_partitioned(df, &table_dir(warehouse, kind), file_schema, Some(&sources))
                    .await
                    .map_err(Error::unwrap_datafusion)?;
            info!(table = kind.name(), dates = dates.len(), "converted");
            match kind {
                TableKind::Clickstream => report.clickstream_dates = dates,
                TableKind::Purchases => report.purchases_dates = dates,
            }
        }
        // Each table's rejects were finished before its dates were committed.
        for ingest in [&extracted.clickstream, &extracted.purchases] {
            report.quarantined += ingest.stats.total().quarantined;
        }
        drop(ctx);
        report.projection_rows = store_projection(settings, warehouse).await?;
        info!(rows = report.projection_rows, "stored the projection");
        // The conversion's summary, in the warehouse's marker: what it read and wrote.
        let marker_path = warehouse.join(crate::storage::claim::WAREHOUSE_MARKER);
        let marker = Marker::read(&marker_path).unwrap_or_else(|| Marker::ours(Vec::new()));
        let input_files = crate::app::summary::InputFiles::new(
            &extracted.clickstream.stats,
            &extracted.purchases.stats,
        );
        let marker = Marker {
            summary: Some(serde_json::json!({
                "last_conversion": {
                    "run_id": settings.run_id,
                    "input_files": input_files,
                    "written": report,
                }
            })),
            ..marker
        };
        job.commit_with(&marker)?;
        Ok(report)
    }
    .instrument(span)
    .await
}

/// Computes the projection of everything `warehouse` holds and replaces its stored projection
/// with it, in one atomic step, beside the list of the partition files it read. Returns its
/// rows.
async fn store_projection(settings: &Settings, warehouse: &Path) -> Result<u64> {
    use crate::app::period::{register_period_inputs, Period, Source};
    let ctx = session_context_with_limit(
        settings.threads,
        settings.memory_limit,
        settings.spill_dir.as_deref(),
    )?;
    let tables = [TableKind::Clickstream, TableKind::Purchases].map(|k| table_dir(warehouse, k));
    if let Some(missing) = tables.iter().find(|dir| !dir.is_dir()) {
        // Exports without a single row of one table: there is nothing to attribute, and a
        // period would say the table is missing.
        info!(missing = %missing.display(), "no projection stored");
        return Ok(0);
    }
    let inputs = ProjectionInputs::list(&ctx, warehouse).await?;
    let dest = warehouse.join(PROJECTION_DIR);
    let job = JobRun::within(settings, Target::at(&dest), None)?;
    let rows = job
        .with_scratch(&ctx, async |scratch| {
            let source = Source::Warehouse(warehouse.to_path_buf());
            register_period_inputs(&ctx, settings, &source, &Period::all(), None).await?;
            let result = attribution::transform_with(
                &ctx,
                settings.engine,
                &crate::app::materialize(settings, scratch),
                crate::app::dedup(settings),
            )
            .await
            .map_err(Error::unwrap_datafusion)?;
            write_projection_by_date(result.projection, job.dir())
                .await
                .map_err(Error::unwrap_datafusion)
        })
        .await?;
    job.commit_with(&Marker {
        inputs: Some(serde_json::to_value(&inputs)?),
        ..Marker::ours(Vec::new())
    })?;
    Ok(rows)
}

/// Takes the list of inputs out of the stored projection's marker: until a conversion stores
/// a new projection, no period reads the old one.
pub fn forget_projection_inputs(warehouse: &Path) -> Result<()> {
    let marker = warehouse
        .join(PROJECTION_DIR)
        .join(crate::storage::output::SUCCESS_MARKER);
    match Marker::read(&marker) {
        Some(m) if m.inputs.is_some() => Marker { inputs: None, ..m }.replace(&marker),
        _ => Ok(()),
    }
}

/// Writes a projection (schema `attribution::PROJECTION`) as `date=YYYY-MM-DD/` partitions of
/// purchaseTime under `dir`, each sorted by purchaseId; returns its rows.
pub async fn write_projection_by_date(
    projection: datafusion::dataframe::DataFrame,
    dir: &Path,
) -> Result<u64> {
    let df = projection
        .with_column("date", cast(ident("purchaseTime"), DataType::Date32))?
        .sort(vec![
            ident("date").sort(true, false),
            ident("purchaseId").sort(true, false),
        ])?;
    let dates = write_partitioned(df, dir, attribution::PROJECTION.clone(), None).await?;
    Ok(dates.iter().map(|(_, rows)| rows).sum())
}

/// Registers, as table `projection`, the dates of `period` of the projection a conversion
/// stored in `warehouse`, and returns `true`; or returns `false` (and says why) when there is
/// none or it was computed from other partition files than the warehouse holds now.
pub async fn register_stored_projection(
    ctx: &SessionContext,
    warehouse: &Path,
    period: &crate::app::period::Period,
) -> Result<bool> {
    let dir = warehouse.join(PROJECTION_DIR);
    let Some(url) = table_url(&dir)? else {
        info!(warehouse = %warehouse.display(), "no stored projection: computing it from the partitions (a conversion stores one)");
        return Ok(false);
    };
    let store = ctx.runtime_env().object_store(&url)?;
    let marker = match store
        .get(
            &url.prefix()
                .clone()
                .join(crate::storage::output::SUCCESS_MARKER),
        )
        .await
    {
        Ok(got) => got.bytes().await.map_err(DataFusionError::from)?,
        Err(datafusion::object_store::Error::NotFound { .. }) => {
            info!(warehouse = %warehouse.display(), "the stored projection has no _SUCCESS (a conversion did not finish): computing the projection from the partitions");
            return Ok(false);
        }
        Err(e) => return Err(DataFusionError::from(e).into()),
    };
    let unreadable = |e: String| {
        Error::Config(format!(
            "{}/_SUCCESS: {e}. Run `marketing-analytics convert` again to rewrite it",
            dir.display()
        ))
    };
    let marker: Marker = serde_json::from_slice(&marker).map_err(|e| unreadable(e.to_string()))?;
    let Some(listed) = marker.inputs else {
        info!(warehouse = %warehouse.display(), "the stored projection lists no inputs (a conversion did not finish, or an older version wrote it): computing the projection from the partitions");
        return Ok(false);
    };
    let listed: ProjectionInputs =
        serde_json::from_value(listed).map_err(|e| unreadable(e.to_string()))?;
    let now = ProjectionInputs::list(ctx, warehouse).await?;
    if listed != now {
        tracing::warn!(
            warehouse = %warehouse.display(),
            "the stored projection was computed from other partition files than the warehouse \
             holds now: computing the projection from the partitions (convert again to store \
             an up-to-date one)"
        );
        return Ok(false);
    }
    const STORED: &str = "stored_projection";
    register_listing(ctx, url, attribution::PROJECTION.clone(), STORED)?;
    let columns: Vec<_> = attribution::PROJECTION
        .fields()
        .iter()
        .map(|f| ident(f.name()))
        .collect();
    let rows = ctx
        .table(STORED)
        .await?
        .filter(
            col("date")
                .gt_eq(lit(format_date(period.from)))
                .and(col("date").lt_eq(lit(format_date(period.to)))),
        )?
        .select(columns)?;
    replace_table(ctx, attribution::tables::PROJECTION, rows.into_view())?;
    info!(period = %period.describe(), "reading the stored projection");
    Ok(true)
}
