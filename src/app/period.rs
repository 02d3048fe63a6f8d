//! Metrics for a period: the marts (and the weekly projection) for the purchases whose
//! purchaseTime falls in a range of dates, from the warehouse or straight from raw exports.
//!
//! A session may start before the period (a session crossing midnight): the clickstream is read
//! from `lookback` days before the first date, so the results equal those of the full pipeline
//! filtered to the period. From the warehouse only the needed `date=` partitions are listed and
//! read (Hive partition pruning), and row-group statistics skip the rest.
//!
//! From a warehouse whose stored projection is up to date (see `warehouse`), the period's
//! dates of that projection are read instead: no partition of the clickstream is read, and the
//! look-back does not apply (the projection is the full pipeline's). With
//! `Settings::stored_projection` false (`--recompute`) it is computed from the partitions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::{col, ident, lit, SessionContext};
use tracing::{info, info_span, Instrument};

use super::job::JobRun;
use super::{layout, Settings};
use crate::attribution::{self, tables};
use crate::calendar::format_date;
use crate::error::{Error, Result};
use crate::input::{resolve, schema, Ingest, RejectSink, TableKind};
use crate::marts::registry::{self, Scope};
use crate::marts::Mart;
use crate::storage::claim::Input;
use crate::storage::output::write_json_file;
use crate::storage::replace_table;
use crate::storage::warehouse::{register_projection, register_table, Snapshot};

/// Where a period's data comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A warehouse written by `convert`.
    Warehouse(PathBuf),
    /// Raw exports (no pruning: every file is read and filtered).
    Raw {
        clickstream: String,
        purchases: String,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Warehouse(w) => write!(f, "warehouse {}", w.display()),
            Source::Raw {
                clickstream,
                purchases,
            } => write!(f, "raw exports {clickstream} + {purchases}"),
        }
    }
}

/// An inclusive range of dates, as day numbers since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: i32,
    pub to: i32,
    /// Days of clickstream read before `from`, for sessions that started before the period.
    pub lookback: u32,
}

impl Period {
    /// From `from` to `to` (inclusive day numbers).
    pub fn new(from: i32, to: i32, lookback: u32) -> Result<Period> {
        if to < from {
            return Err(Error::Config(format!(
                "--to {} is before --from {}",
                format_date(to),
                format_date(from)
            )));
        }
        Ok(Period { from, to, lookback })
    }

    /// From `--from/--to` (inclusive dates) or `--day`.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        day: Option<&str>,
        lookback: u32,
    ) -> Result<Period> {
        let date = |d: Option<&str>| d.map(crate::calendar::parse_date).transpose();
        Period::choose(date(from)?, date(to)?, date(day)?, lookback)
    }

    /// From `--from/--to` or `--day` as day numbers: either both ends or a day.
    pub fn choose(
        from: Option<i32>,
        to: Option<i32>,
        day: Option<i32>,
        lookback: u32,
    ) -> Result<Period> {
        match (from, to, day) {
            (None, None, Some(d)) => Period::new(d, d, lookback),
            (Some(f), Some(t), None) => Period::new(f, t, lookback),
            _ => Err(Error::Config(
                "give either --from and --to, or --day".into(),
            )),
        }
    }

    /// A quarter such as `2020-Q4`.
    pub fn quarter(q: &str, lookback: u32) -> Result<Period> {
        let (from, to) = crate::calendar::quarter(q)?;
        Period::new(from, to, lookback)
    }

    /// All of the data: every date a timestamp can have (years 0001 to 9999).
    pub fn all() -> Period {
        use crate::input::values::days_from_civil;
        Period {
            from: days_from_civil(1, 1, 1) as i32,
            to: days_from_civil(9999, 12, 31) as i32,
            lookback: 0,
        }
    }

    /// First clickstream date read.
    pub fn first_click_date(&self) -> i32 {
        self.from - self.lookback as i32
    }

    pub fn describe(&self) -> String {
        format!("{} .. {}", format_date(self.from), format_date(self.to))
    }
}

const RAW_EVENTS: &str = "raw_events";
const RAW_PURCHASES: &str = "raw_purchases";

/// What a period read from raw exports (clickstream, purchases), with their rows per file
/// and reject sinks; none from a warehouse.
#[derive(Default)]
pub struct PeriodInputs {
    pub raw: Option<[Ingest; 2]>,
}

/// Registers `events` and `purchases` limited to what the period needs. From raw exports with
/// `quarantine`, bad rows go to `DIR/clickstream.csv` and `DIR/purchases.csv` instead of failing
/// the job.
pub async fn register_period_inputs(
    ctx: &SessionContext,
    settings: &Settings,
    source: &Source,
    period: &Period,
    quarantine: Option<&Path>,
) -> Result<PeriodInputs> {
    let mut raw = None;
    let (events, purchases) = match source {
        Source::Warehouse(w) => {
            let snapshot = Snapshot::resolve(ctx, w, settings.read).await?;
            register_table(ctx, w, TableKind::Clickstream, RAW_EVENTS, &snapshot).await?;
            register_table(ctx, w, TableKind::Purchases, RAW_PURCHASES, &snapshot).await?;
            let date = |from: i32, to: i32| {
                col("date")
                    .gt_eq(lit(format_date(from)))
                    .and(col("date").lt_eq(lit(format_date(to))))
            };
            (
                ctx.table(RAW_EVENTS)
                    .await?
                    .filter(date(period.first_click_date(), period.to))?,
                ctx.table(RAW_PURCHASES)
                    .await?
                    .filter(date(period.from, period.to))?,
            )
        }
        Source::Raw {
            clickstream,
            purchases,
        } => {
            let mut click = Ingest::new(
                TableKind::Clickstream,
                resolve(clickstream, "clickstream", settings.delimiter)?,
            );
            let mut purch = Ingest::new(
                TableKind::Purchases,
                resolve(purchases, "purchases", settings.delimiter)?,
            );
            if let Some(dir) = quarantine {
                for ingest in [&mut click, &mut purch] {
                    let sink = Arc::new(RejectSink::new(
                        dir.join(format!("{}.csv", ingest.kind.name())),
                    ));
                    ingest.rejects = Some(sink);
                }
            }
            replace_table(ctx, RAW_EVENTS, click.table(settings.threads)?)?;
            replace_table(ctx, RAW_PURCHASES, purch.table(settings.threads)?)?;
            raw = Some([click, purch]);
            let time = within_days;
            (
                ctx.table(RAW_EVENTS).await?.filter(time(
                    "eventTime",
                    period.first_click_date(),
                    period.to,
                ))?,
                ctx.table(RAW_PURCHASES).await?.filter(time(
                    "purchaseTime",
                    period.from,
                    period.to,
                ))?,
            )
        }
    };
    let names = |s: &datafusion::arrow::datatypes::SchemaRef| {
        s.fields()
            .iter()
            .map(|f| ident(f.name()))
            .collect::<Vec<_>>()
    };
    let events = events.select(names(&schema::EVENTS))?;
    let purchases = purchases.select(names(&schema::PURCHASES))?;
    replace_table(ctx, tables::EVENTS, events.into_view())?;
    replace_table(ctx, tables::PURCHASES, purchases.into_view())?;
    Ok(PeriodInputs { raw })
}

/// `name` (a timestamp column) falls on the days `from` to `to` (inclusive).
fn within_days(name: &str, from: i32, to: i32) -> datafusion::prelude::Expr {
    let day = |d: i32| lit(format!("{} 00:00:00", format_date(d)));
    ident(name)
        .gt_eq(datafusion::prelude::cast(
            day(from),
            schema::TIMESTAMP.clone(),
        ))
        .and(ident(name).lt(datafusion::prelude::cast(
            day(to + 1),
            schema::TIMESTAMP.clone(),
        )))
}

/// A context with the period's projection registered as `projection`, its intermediates in
/// memory.
pub async fn period_context(
    settings: &Settings,
    source: &Source,
    period: &Period,
) -> Result<SessionContext> {
    let ctx = source_context(settings, source).await?;
    period_projection(
        &ctx,
        settings,
        source,
        period,
        &attribution::Materialize::Memory,
        None,
    )
    .await?;
    Ok(ctx)
}

/// The context a period job runs in (a cluster reads a warehouse only).
async fn source_context(settings: &Settings, source: &Source) -> Result<SessionContext> {
    if settings.cluster.is_some() {
        if let Source::Raw { .. } = source {
            return Err(Error::Config(
                "a cluster reads a warehouse: run `marketing-analytics convert` first and give \
                 --warehouse DIR (raw exports are decoded by this process, not by executors)"
                    .into(),
            ));
        }
    }
    super::job_context(settings).await
}

/// What a period job's projection step produced.
#[derive(Default)]
struct PeriodProjection {
    inputs: PeriodInputs,
    from: Option<ProjectionFrom>,
    /// The journey models (`--models`), with the spend files read.
    journeys: Option<crate::journeys::Journeys>,
    spend_files: Option<BTreeMap<String, crate::input::FileStats>>,
}

/// Registers, as table `projection`, the dates of `period` of the projection a conversion
/// stored in `warehouse` (as of `settings.read`), and returns `true`; `false` when there is
/// none.
pub async fn register_stored_projection(
    ctx: &SessionContext,
    settings: &Settings,
    warehouse: &Path,
    period: &Period,
) -> Result<bool> {
    const STORED: &str = "stored_projection";
    let snapshot = Snapshot::resolve(ctx, warehouse, settings.read).await?;
    if !register_projection(
        ctx,
        warehouse,
        STORED,
        &snapshot,
        attribution::PROJECTION.clone(),
    )
    .await?
    {
        info!(warehouse = %warehouse.display(), "no stored projection: computing it from the input tables (a conversion stores one)");
        return Ok(false);
    }
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

/// Registers the period's inputs and its projection (as table `projection`) on `ctx`; with
/// `--models`, computes the journey models too. They need the clickstream of the paths'
/// look-back before the period, and the conversions since then (which end the users'
/// non-converting paths): the inputs are read from that earlier date, and the projection is
/// the period's purchases of it.
async fn period_projection(
    ctx: &SessionContext,
    settings: &Settings,
    source: &Source,
    period: &Period,
    how: &attribution::Materialize,
    quarantine: Option<&Path>,
) -> Result<PeriodProjection> {
    let models = settings.journeys.as_ref();
    if let (Source::Warehouse(warehouse), true, None) = (source, settings.stored_projection, models)
    {
        if register_stored_projection(ctx, settings, warehouse, period).await? {
            return Ok(PeriodProjection {
                from: Some(ProjectionFrom::Stored),
                ..Default::default()
            });
        }
    }
    let read = match models {
        Some(o) => Period {
            from: period.from - o.lookback_days(),
            ..*period
        },
        None => *period,
    };
    let inputs = register_period_inputs(ctx, settings, source, &read, quarantine).await?;
    let dedup = super::dedup(settings);
    let result = match models {
        Some(_) => attribution::transform_keeping_sessions(ctx, settings.engine, how, dedup).await,
        None => attribution::transform_with(ctx, settings.engine, how, dedup).await,
    }
    .map_err(Error::unwrap_datafusion)?;
    let Some(options) = models else {
        how.table(ctx, tables::PROJECTION, result.projection)
            .await
            .map_err(Error::unwrap_datafusion)?;
        return Ok(PeriodProjection {
            inputs,
            from: Some(ProjectionFrom::Computed),
            ..Default::default()
        });
    };
    const READ: &str = "projection_read";
    how.table(ctx, READ, result.projection)
        .await
        .map_err(Error::unwrap_datafusion)?;
    let own = ctx
        .table(READ)
        .await?
        .filter(within_days("purchaseTime", period.from, period.to))?;
    replace_table(ctx, tables::PROJECTION, own.into_view())?;
    let spend = super::read_spend(settings, options, quarantine)?;
    let rows = spend
        .as_ref()
        .map(|s| s.rows.as_slice())
        .unwrap_or_default();
    let range = crate::journeys::Range {
        from: period.from,
        to: period.to,
    };
    let journeys =
        crate::journeys::transform(ctx, options, rows, Some(range), super::walk(settings))
            .await
            .map_err(Error::unwrap_datafusion)?;
    Ok(PeriodProjection {
        inputs,
        from: Some(ProjectionFrom::Computed),
        journeys: Some(journeys),
        spend_files: spend.map(|s| s.files),
    })
}

/// Where a period's projection came from, for its summary.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectionFrom {
    /// The projection `convert` stored in the warehouse.
    Stored,
    /// Computed from the clickstream and purchases (partitions or raw exports).
    Computed,
}

/// `OUTPUT/summary.json` of `period` and `weekly`: what was read and what was written.
#[derive(Debug, serde::Serialize)]
pub struct PeriodSummary {
    pub run_id: String,
    pub job: &'static str,
    pub from: String,
    pub to: String,
    pub lookback_days: u32,
    /// The warehouse, or the raw exports' paths as given.
    pub source: BTreeMap<&'static str, String>,
    pub projection: ProjectionFrom,
    /// Rows read and quarantined per file (raw exports only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_files: Option<crate::app::summary::InputFiles>,
    /// Output datasets and their rows.
    pub outputs: BTreeMap<String, u64>,
    /// Per dimension, the journeys' counts (`--models`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journeys: Option<BTreeMap<String, crate::journeys::Counts>>,
    /// The options worth showing beside the figures.
    pub options: serde_json::Map<String, serde_json::Value>,
    /// Seconds from the job's start to its summary.
    pub seconds: f64,
}

/// Runs `work` on a context with the period's projection, its intermediates kept as the
/// settings ask (see `app::materialize`) in the job's scratch. The work writes into the
/// job's directory (`OUTPUT`, staged), committed when everything succeeded (with `_rejected/`
/// when bad rows of raw exports were quarantined).
async fn with_period_projection<T>(
    name: &'static str,
    settings: &Settings,
    source: &Source,
    period: &Period,
    output: &Path,
    work: impl AsyncFnOnce(&SessionContext, &JobRun) -> Result<(T, BTreeMap<String, u64>)>,
) -> Result<T> {
    let warehouse;
    let inputs = match source {
        Source::Warehouse(w) => {
            warehouse = w.display().to_string();
            vec![Input {
                what: "warehouse",
                spec: &warehouse,
            }]
        }
        Source::Raw {
            clickstream,
            purchases,
        } => Input::exports(clickstream, purchases).to_vec(),
    };
    let job = JobRun::claim(settings, output, &inputs)?;
    let settings = job.settings();
    let ctx = source_context(settings, source).await?;
    let value = job
        .with_scratch(&ctx, async |scratch| {
            let how = super::materialize(settings, scratch);
            let step =
                period_projection(&ctx, settings, source, period, &how, job.quarantine()).await?;
            let inputs = step.inputs;
            for ingest in inputs.raw.iter().flatten() {
                ingest.settle_bad_rows(settings.max_bad_rows)?;
            }
            let (value, mut outputs) = work(&ctx, &job).await?;
            if let Some(j) = &step.journeys {
                outputs.extend(super::write_journeys(&job, j)?);
            }
            let mut input_files = inputs
                .raw
                .map(|[c, p]| crate::app::summary::InputFiles::new(&c.stats, &p.stats));
            if let Some(files) = step.spend_files {
                input_files.get_or_insert_default().spend = files;
            }
            let summary = PeriodSummary {
                run_id: settings.run_id.clone(),
                job: name,
                from: format_date(period.from),
                to: format_date(period.to),
                lookback_days: period.lookback,
                source: match source {
                    Source::Warehouse(w) => {
                        BTreeMap::from([("warehouse", w.display().to_string())])
                    }
                    Source::Raw {
                        clickstream,
                        purchases,
                    } => BTreeMap::from([
                        ("clickstream", clickstream.clone()),
                        ("purchases", purchases.clone()),
                    ]),
                },
                projection: step.from.unwrap_or(ProjectionFrom::Computed),
                input_files,
                outputs,
                journeys: step.journeys.map(|j| j.counts),
                options: crate::app::summary::run_options(settings),
                seconds: job.seconds(),
            };
            write_json_file(&job.dir().join(layout::SUMMARY), &summary)?;
            if settings.report {
                super::report::write_staged_report(settings, job.dir()).await?;
            }
            Ok(value)
        })
        .await?;
    job.commit()?;
    Ok(value)
}

/// The run's marts (`Scope::Run`) for a period, each written to `output/NAME/`.
pub async fn period_job(
    settings: &Settings,
    source: &Source,
    period: &Period,
    output: &Path,
) -> Result<Vec<(Mart, Vec<RecordBatch>)>> {
    let span = info_span!("job", job = %"period");
    async {
        info!(period = %period.describe(), lookback_days = period.lookback, %source, "computing marts for a period");
        with_period_projection("period", settings, source, period, output, async |ctx, job| {
            let mut marts = Vec::new();
            let mut outputs = BTreeMap::new();
            for mart in registry::in_scope(Scope::Run) {
                let batches = mart.transform(ctx, settings.api).await?;
                let rows = job.write_dataset(mart.name(), &batches, mart.schema())?;
                outputs.insert(mart.name().to_string(), rows);
                marts.push((*mart, batches));
            }
            Ok((marts, outputs))
        })
        .await
    }
    .instrument(span)
    .await
}

/// A period mart (`Scope::Period`, as `weekly`) for a period, written to `output/NAME/`.
pub async fn period_mart_job(
    settings: &Settings,
    mart: &Mart,
    source: &Source,
    period: &Period,
    output: &Path,
) -> Result<Vec<RecordBatch>> {
    let span = info_span!("job", job = %mart.name());
    async {
        with_period_projection(
            mart.name(),
            settings,
            source,
            period,
            output,
            async |ctx, job| {
                let batches = mart.transform(ctx, settings.api).await?;
                let rows = job.write_dataset(mart.name(), &batches, mart.schema())?;
                Ok((batches, BTreeMap::from([(mart.name().to_string(), rows)])))
            },
        )
        .await
    }
    .instrument(span)
    .await
}

/// The weekly purchases projection for a period, written to `output/weekly/`.
pub async fn weekly_job(
    settings: &Settings,
    source: &Source,
    period: &Period,
    output: &Path,
) -> Result<Vec<RecordBatch>> {
    period_mart_job(
        settings,
        &crate::marts::weekly::MART,
        source,
        period,
        output,
    )
    .await
}

/// Files the plan of `table` will read (after partition pruning), for tests and `explain`.
pub async fn planned_files(ctx: &SessionContext, table: &str) -> Result<Vec<String>> {
    use datafusion::datasource::physical_plan::FileScanConfig;
    use datafusion::datasource::source::DataSourceExec;
    use datafusion::physical_plan::ExecutionPlan;
    use std::sync::Arc;

    fn visit(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<String>) {
        if let Some(exec) = plan.downcast_ref::<DataSourceExec>() {
            if let Some(config) = exec.data_source().downcast_ref::<FileScanConfig>() {
                for group in &config.file_groups {
                    out.extend(group.iter().map(|f| f.object_meta.location.to_string()));
                }
            }
        }
        for child in plan.children() {
            visit(child, out);
        }
    }
    let plan = ctx.table(table).await?.create_physical_plan().await?;
    let mut files = Vec::new();
    visit(&plan, &mut files);
    // A large file may be split into byte ranges read by several partitions.
    files.sort();
    files.dedup();
    Ok(files)
}
