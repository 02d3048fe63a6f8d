//! The use cases: each command's job end to end (extract, transform, load) and the run
//! summary. The CLI and a Rust user call these; the transforms below stay free of I/O.
//!
//! - this file: `run` ([`run_all`]), `attribution` ([`attribution_job`]), a mart from a
//!   projection ([`mart_job`]), and what they share ([`Settings`], [`job_context`]);
//! - [`convert`]: raw exports into the warehouse; [`period`]: the marts of a period (and the
//!   period marts such as `weekly`); [`models`]: the journey models of an existing run;
//!   [`explain`]: query plans; [`summary`]: the accounting;
//!   `job`: the lifecycle every one of them runs in (claim, staging, scratch, quarantine,
//!   commit, clean-up).

pub mod convert;
pub mod explain;
pub(crate) mod job;
pub mod maintain;
pub mod models;
pub mod period;
pub mod projection;
pub mod report;
pub mod sql;
pub mod summary;

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::prelude::SessionContext;
use indicatif::{ProgressBar, ProgressStyle};
use tracing::{info, info_span, warn, Instrument};

use crate::attribution::{self, tables, Engine};
use crate::engine::session_context_with_limit;
use crate::error::{Error, Result};
use crate::input::{resolve, schema, BadRowLimit, BadRows};
use crate::marts::registry::{self, Scope};
use crate::marts::{Api, Mart};
use crate::storage::claim::{Claim, Input, Marker};
use crate::storage::output::{write_dataframe_file, write_json_file, write_part, PART_FILE};
use crate::storage::scratch::Scratch;
use job::{JobRun, Target};
use summary::{Counts, InputFiles, Summary};

/// Output dataset names under a run's output directory.
pub mod layout {
    pub const PROJECTION: &str = "purchases_attribution";
    /// The marts' datasets are named after them (`marts::registry`).
    pub const TOP_CAMPAIGNS: &str = crate::marts::top_campaigns::MART.name;
    pub const TOP_CHANNELS: &str = crate::marts::top_channels::MART.name;
    pub const WEEKLY: &str = crate::marts::weekly::MART.name;
    pub const SUMMARY: &str = "summary.json";
    /// Quarantined rows (`--on-bad-rows quarantine`): `_rejected/clickstream.csv` and
    /// `_rejected/purchases.csv`.
    pub const REJECTED: &str = "_rejected";
}

/// Settings shared by every job.
#[derive(Debug, Clone)]
pub struct Settings {
    pub engine: Engine,
    pub api: Api,
    pub threads: usize,
    /// Field delimiter of text inputs; `None` guesses from the name (`.tsv` → tab, else comma).
    pub delimiter: Option<u8>,
    /// Show a progress bar (on a terminal only).
    pub progress: bool,
    pub run_id: String,
    /// Cap on the process's memory in bytes (DataFusion's pool gets `context::pool_bytes` of
    /// it); sorts and aggregations spill beyond the pool.
    pub memory_limit: Option<usize>,
    pub on_bad_rows: BadRows,
    /// Write the projection as `date=YYYY-MM-DD/` partitions of purchaseTime.
    pub partition_by_date: bool,
    /// Run the queries on the Ballista cluster at this address (`df://HOST:PORT`).
    pub cluster: Option<String>,
    /// Where intermediate files go (a path or object-store URL every executor reaches);
    /// `None`: a hidden directory beside the output.
    pub scratch: Option<String>,
    /// A period from a warehouse reads the projection `convert` stored there
    /// (`warehouse::register_projection`), and `convert` updates it for what changed
    /// (`app::projection`); `false` computes it from the input tables (`--recompute`).
    pub stored_projection: bool,
    /// Which state of a warehouse a job reads (`--as-of`; a conversion reads the newest).
    pub read: crate::storage::warehouse::Read,
    /// Replace a destination this program did not write (`--overwrite`).
    pub overwrite: bool,
    /// Let `convert` replace every date its files touch with their rows alone
    /// (`--replace-dates`).
    pub replace_dates: bool,
    /// Where spill files go (a directory the job's claim owns); `None`: the OS's temporary
    /// directory.
    pub spill_dir: Option<std::path::PathBuf>,
    /// The cluster's token (`cluster::auth`), presented to its scheduler.
    pub cluster_token: Option<String>,
    /// Inputs under this directory are named `LABEL/…` in summaries (the built-in dataset,
    /// generated into a temporary directory).
    pub input_label: Option<(std::path::PathBuf, String)>,
    /// Bad rows a quarantining job accepts (`--max-bad-rows`; see [`BadRowLimit`]).
    pub max_bad_rows: Option<BadRowLimit>,
    /// Compute the journey models (`--models`) in `run`.
    pub journeys: Option<crate::journeys::Options>,
    /// Write the HTML report into the output before it is committed (`--report`).
    pub report: bool,
}

impl Settings {
    /// These settings with the claim's spill directory.
    pub fn claimed(&self, claim: &Claim) -> Settings {
        Settings {
            spill_dir: Some(claim.spill_dir().to_path_buf()),
            ..self.clone()
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            engine: Engine::default(),
            api: Api::default(),
            threads: crate::engine::default_threads(),
            delimiter: None,
            progress: false,
            run_id: new_run_id(),
            memory_limit: None,
            on_bad_rows: BadRows::default(),
            partition_by_date: false,
            cluster: None,
            scratch: None,
            stored_projection: true,
            read: Default::default(),
            overwrite: false,
            replace_dates: false,
            spill_dir: None,
            max_bad_rows: None,
            cluster_token: None,
            input_label: None,
            journeys: None,
            report: false,
        }
    }
}

pub use crate::calendar::new_run_id;

/// What the attribution job produced.
#[derive(Debug, Clone)]
pub struct AttributionReport {
    /// The summary of the attribution (written beside the projection).
    pub summary: Summary,
    /// The journey models, when the settings ask for them.
    pub journeys: Option<crate::journeys::Journeys>,
}

impl AttributionReport {
    /// Rows of the projection written.
    pub fn projection_rows(&self) -> u64 {
        self.summary
            .outputs
            .get(layout::PROJECTION)
            .copied()
            .unwrap_or(0)
    }
}

/// The context a job's queries run in: this process, or the cluster of `settings.cluster`.
pub async fn job_context(settings: &Settings) -> Result<SessionContext> {
    match &settings.cluster {
        None => session_context_with_limit(
            settings.threads,
            settings.memory_limit,
            settings.spill_dir.as_deref(),
        ),
        Some(url) => {
            crate::cluster::client_context(url, settings.threads, settings.cluster_token.as_deref())
                .await
        }
    }
}

/// Extracts the inputs into `ctx`. On a cluster, the raw exports are first decoded here (with
/// the same quarantine and accounting) into Parquet under `scratch`, which the executors read.
async fn extract_for_job(
    settings: &Settings,
    ctx: &SessionContext,
    inputs: &attribution::Inputs,
    bar: Option<ProgressBar>,
    quarantine: Option<&Path>,
    scratch: &Scratch,
) -> Result<attribution::Extracted> {
    if settings.cluster.is_none() {
        return attribution::extract(ctx, inputs, settings.threads, bar, quarantine);
    }
    let local = session_context_with_limit(
        settings.threads,
        settings.memory_limit,
        settings.spill_dir.as_deref(),
    )?;
    let extracted = attribution::extract(&local, inputs, settings.threads, bar, quarantine)?;
    for (table, kind, schema) in [
        (tables::EVENTS, "clickstream", schema::EVENTS.clone()),
        (tables::PURCHASES, "purchases", schema::PURCHASES.clone()),
    ] {
        let location = scratch.location(kind)?;
        crate::storage::output::write_parquet_stream(
            &local,
            local.table(table).await?,
            &location,
            schema.clone(),
        )
        .await
        .map_err(Error::unwrap_datafusion)?;
        crate::storage::output::register_parquet_dir(ctx, table, &location, schema)?;
    }
    info!(scratch = scratch.base(), "inputs decoded for the cluster");
    Ok(extracted)
}

/// How the journey models walk the users: split across this process's cores, or one stream
/// sorted by the cluster's executors.
pub(crate) fn walk(settings: &Settings) -> crate::journeys::Walk {
    match settings.cluster {
        Some(_) => crate::journeys::Walk::OneStream,
        None => crate::journeys::Walk::Partitioned,
    }
}

/// Where the attribution keeps its intermediates: as Parquet in `scratch` on a cluster (the
/// executors read them there); under a memory cap (the default one too), in the pool while
/// they fit and as Arrow IPC in `scratch` past that; without a cap (`--memory-limit none`), in
/// memory outside the pool.
pub fn materialize(settings: &Settings, scratch: &Scratch) -> attribution::Materialize {
    let base = format!("{}/intermediate", scratch.base());
    if settings.cluster.is_some() {
        attribution::Materialize::DistributedParquet(base)
    } else if settings.memory_limit.is_some() {
        attribution::Materialize::Pooled {
            base,
            held: Default::default(),
        }
    } else {
        attribution::Materialize::Memory
    }
}

/// How rule 4 finds duplicate events: by hashing in this process, holding every event in
/// memory (the fastest way; without a cap, however many) until they take [`dedup_spill_at`]
/// bytes under a memory cap (or the pool refuses more), then writing them to disk by userId;
/// by `dedup.sql`'s sort on a cluster (the executors run it).
pub fn dedup(settings: &Settings) -> attribution::dedup::Dedup {
    if settings.cluster.is_some() {
        return attribution::dedup::Dedup::Sort;
    }
    match settings.memory_limit {
        None => attribution::dedup::Dedup::IN_MEMORY,
        Some(limit) => attribution::dedup::Dedup::Hash {
            spill_at: dedup_spill_at(crate::engine::pool_bytes(limit)),
        },
    }
}

/// The held events past which rule 4's hashing spills, with a memory pool of `pool` bytes
/// (`context::pool_bytes` of the cap): all but what the operators running beside it need
/// (half the pool, at most 2 GiB: the session step's aggregation and the writers of the
/// intermediate tables). A small pool spills at half, as before; a 16 GiB pool holds 50M
/// events (about 8 GiB) in memory, where spilling them at half made the job 22 % slower (63 s
/// against 52 s).
pub fn dedup_spill_at(pool: usize) -> usize {
    pool - (pool / 2).min(2 << 30)
}

fn progress_bar(settings: &Settings, total: u64) -> Option<ProgressBar> {
    if !settings.progress {
        return None;
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} reading inputs {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// Runs the attribution job: reads the inputs, writes the projection dataset at `dest` with
/// its summary in the dataset's `_SUCCESS`, and returns the counts. Quarantined rows go to `rejected`
/// (default: `dest/_rejected/`).
pub async fn attribution_job(
    settings: &Settings,
    clickstream: &str,
    purchases: &str,
    dest: &Path,
    rejected: Option<&Path>,
) -> Result<AttributionReport> {
    let job = JobRun::claim(settings, dest, &Input::exports(clickstream, purchases))?;
    let job = match rejected {
        Some(dir) => job.rejecting_to(Target::at(dir)),
        None => job,
    };
    attribution_into(job, clickstream, purchases).await
}

/// The attribution job, staged as `job` (a destination already claimed).
async fn attribution_into(
    job: JobRun,
    clickstream: &str,
    purchases: &str,
) -> Result<AttributionReport> {
    let span = info_span!("job", job = %"attribution");
    async {
        let settings = job.settings();
        let inputs = attribution::Inputs {
            clickstream: resolve(clickstream, "clickstream", settings.delimiter)?,
            purchases: resolve(purchases, "purchases", settings.delimiter)?,
        };
        info!(
            clickstream_files = inputs.clickstream.len(),
            purchases_files = inputs.purchases.len(),
            engine = %settings.engine,
            threads = settings.threads,
            "reading inputs"
        );
        let total: u64 = inputs
            .clickstream
            .iter()
            .chain(&inputs.purchases)
            .map(|f| f.size)
            .sum();
        let bar = progress_bar(settings, total);
        let ctx = job_context(settings).await?;
        let (summary, journeys) = job
            .with_scratch(&ctx, async |scratch| {
                let extracted = extract_for_job(
                    settings,
                    &ctx,
                    &inputs,
                    bar.clone(),
                    job.quarantine(),
                    scratch,
                )
                .await?;
                let how = materialize(settings, scratch);
                let result = if settings.journeys.is_some() {
                    attribution::transform_keeping_sessions(
                        &ctx,
                        settings.engine,
                        &how,
                        dedup(settings),
                    )
                    .await
                } else {
                    attribution::transform_with(&ctx, settings.engine, &how, dedup(settings)).await
                };
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                let result = result.map_err(Error::unwrap_datafusion)?;
                for ingest in [&extracted.clickstream, &extracted.purchases] {
                    ingest.settle_bad_rows(settings.max_bad_rows)?;
                }
                let opens = extracted.clickstream.stats.opens();
                let counts = Counts::new(
                    extracted.clickstream.stats.total(),
                    extracted.purchases.stats.total(),
                    &opens,
                    &result.outcomes,
                )?;
                let sessions_by_channel = summary::sessions_by_channel(&opens, &result.outcomes)?;
                let mut input_files =
                    InputFiles::new(&extracted.clickstream.stats, &extracted.purchases.stats);
                if let Some((root, label)) = &settings.input_label {
                    input_files.relabel(root, label);
                }
                // The projection is written while the models walk the journeys: the write
                // keeps one core busy, the walk the others.
                let write = async {
                    if settings.partition_by_date {
                        projection::write_projection_by_date(result.projection, job.dir()).await
                    } else {
                        let file = job.dir().join(PART_FILE);
                        let schema = attribution::PROJECTION.clone();
                        write_dataframe_file(result.projection, &file, schema).await
                    }
                    .map_err(Error::unwrap_datafusion)
                };
                let models = async {
                    let Some(options) = &settings.journeys else {
                        return Ok(None);
                    };
                    let spend = read_spend(settings, options, job.quarantine())?;
                    let rows = spend.as_ref().map(|s| s.rows.as_slice());
                    let journeys = crate::journeys::transform(
                        &ctx,
                        options,
                        rows.unwrap_or_default(),
                        None,
                        walk(settings),
                    )
                    .await
                    .map_err(Error::unwrap_datafusion)?;
                    Ok(Some((journeys, spend.map(|s| s.files))))
                };
                let (projection_rows, models) = futures::try_join!(write, models)?;
                let journeys = models.map(|(journeys, spend_files)| {
                    if let Some(files) = spend_files {
                        input_files.spend = files;
                    }
                    journeys
                });
                let summary = Summary {
                    run_id: settings.run_id.clone(),
                    engine: settings.engine,
                    counts,
                    input_files,
                    outputs: BTreeMap::from([(layout::PROJECTION.to_string(), projection_rows)]),
                    journeys: journeys.as_ref().map(|j| j.counts.clone()),
                    sessions_by_channel,
                    options: summary::run_options(settings),
                    seconds: job.seconds(),
                };
                Ok((summary, journeys))
            })
            .await?;
        let marker = Marker {
            summary: Some(serde_json::to_value(&summary)?),
            ..Marker::ours(Vec::new())
        };
        let shown = job.shown().to_path_buf();
        let rejected = job.rejected().shown.to_path_buf();
        job.commit_with(&marker)?;
        let counts = &summary.counts;
        let projection_rows = summary.outputs[layout::PROJECTION];
        info!(
            events = counts.events,
            purchase_rows = counts.purchase_rows,
            projection_rows,
            "wrote {}",
            shown.display()
        );
        for (reason, n) in counts.left_out() {
            info!(count = n, "left out: {reason}");
        }
        if counts.events_quarantined + counts.purchase_rows_quarantined > 0 {
            warn!(
                clickstream = counts.events_quarantined,
                purchases = counts.purchase_rows_quarantined,
                "bad rows quarantined in {}",
                rejected.display()
            );
        }
        Ok(AttributionReport { summary, journeys })
    }
    .instrument(span)
    .await
}

/// Writes the journey models' datasets into `job`; returns their rows per dataset.
pub(super) fn write_journeys(
    job: &JobRun,
    j: &crate::journeys::Journeys,
) -> Result<BTreeMap<String, u64>> {
    let mut outputs = BTreeMap::new();
    for (name, batch, schema) in [
        (
            crate::journeys::MODELS_DATASET,
            &j.models,
            crate::journeys::ATTRIBUTION_MODELS.clone(),
        ),
        (
            crate::journeys::PATHS_DATASET,
            &j.paths,
            crate::journeys::CONVERSION_PATHS.clone(),
        ),
    ] {
        let rows = job.write_dataset(name, std::slice::from_ref(batch), schema)?;
        outputs.insert(name.to_string(), rows);
    }
    Ok(outputs)
}

/// The spend of `--spend` (`None` without it), bad rows quarantined to `_rejected/spend.csv`
/// when the job quarantines, and refused past `--max-bad-rows` as for the other inputs.
pub(super) fn read_spend(
    settings: &Settings,
    options: &crate::journeys::Options,
    quarantine: Option<&Path>,
) -> Result<Option<crate::input::spend::Spend>> {
    let Some(spec) = &options.spend else {
        return Ok(None);
    };
    let sink = quarantine.map(|dir| crate::input::RejectSink::new(dir.join("spend.csv")));
    let spend = crate::input::spend::read_spend(spec, settings.delimiter, sink.as_ref())?;
    let total = crate::input::FileStats {
        rows: spend.files.values().map(|s| s.rows).sum(),
        quarantined: spend.files.values().map(|s| s.quarantined).sum(),
        ..Default::default()
    };
    BadRowLimit::check(settings.max_bad_rows, "spend", total, sink.as_ref())?;
    if total.quarantined > 0 {
        warn!(rows = total.quarantined, "bad spend rows quarantined");
    }
    Ok(Some(spend))
}

/// Registers a projection dataset (directory, file or glob of Parquet) as table `projection`,
/// checking that it has the projection's columns.
pub async fn register_projection(ctx: &SessionContext, path: &str) -> Result<()> {
    let files = resolve(path, "projection", None)?;
    let location = path.to_string();
    // Exactly the files the path names (a directory is listed recursively, so a projection
    // partitioned by date reads whole).
    let urls = files
        .iter()
        .filter(|f| f.format == crate::input::files::FileFormat::Parquet)
        .map(|f| {
            let abs = f.path.canonicalize().map_err(|e| Error::io(&f.path, e))?;
            Ok(ListingTableUrl::parse(abs.to_string_lossy())?)
        })
        .collect::<Result<Vec<_>>>()?;
    if urls.is_empty() {
        return Err(Error::BadFile {
            file: location,
            reason: "holds no .parquet file: is it a projection written by `attribution`?".into(),
        });
    }
    let options = crate::storage::tables::parquet_options(ctx, Vec::new());
    let table = crate::storage::tables::inferred_listing_table(ctx, urls, options)
        .await
        .map_err(|e| Error::BadFile {
            file: location.clone(),
            reason: format!("cannot read it as a Parquet projection: {e}"),
        })?;
    crate::storage::replace_table(ctx, tables::PROJECTION, table)?;
    let table = ctx.table(tables::PROJECTION).await?;
    let have = table.schema();
    for want in attribution::PROJECTION.fields() {
        match have.field_with_unqualified_name(want.name()) {
            Ok(f) if f.data_type() == want.data_type() => {}
            Ok(f) => {
                return Err(Error::BadFile {
                    file: location,
                    reason: format!(
                        "column {} is {} where a purchases attribution projection has {}",
                        want.name(),
                        f.data_type(),
                        want.data_type()
                    ),
                })
            }
            Err(_) => {
                return Err(Error::BadFile {
                    file: location,
                    reason: format!(
                        "not a purchases attribution projection: it has no column {}",
                        want.name()
                    ),
                })
            }
        }
    }
    Ok(())
}

/// Runs one mart over the projection at `projection` and writes it at `dest`.
pub async fn mart_job(
    settings: &Settings,
    mart: &Mart,
    projection: &str,
    dest: &Path,
) -> Result<Vec<RecordBatch>> {
    let input = Input {
        what: "projection",
        spec: projection,
    };
    let job = JobRun::claim(settings, dest, &[input])?;
    mart_into(job, mart, projection).await
}

/// [`mart_job`], staged as `job` (a destination already claimed).
async fn mart_into(job: JobRun, mart: &Mart, projection: &str) -> Result<Vec<RecordBatch>> {
    let span = info_span!("job", job = %mart.name());
    async {
        let settings = job.settings();
        let ctx = job_context(settings).await?;
        register_projection(&ctx, projection).await?;
        let batches = mart.transform(&ctx, settings.api).await?;
        let rows = write_part(&batches, job.dir(), mart.schema())?;
        // The mart's summary, in its _SUCCESS: what it read and wrote.
        let marker = Marker {
            summary: Some(serde_json::json!({
                "run_id": settings.run_id,
                "input": projection,
                "outputs": { mart.name(): rows },
            })),
            ..Marker::ours(Vec::new())
        };
        let shown = job.shown().to_path_buf();
        job.commit_with(&marker)?;
        info!(rows, "wrote {}", shown.display());
        Ok(batches)
    }
    .instrument(span)
    .await
}

/// Everything `run` produced.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub summary: Summary,
    /// Each mart of the run (`Scope::Run`) with its rows, in the registry's order.
    pub marts: Vec<(Mart, Vec<RecordBatch>)>,
    /// The journey models (`--models`).
    pub journeys: Option<crate::journeys::Journeys>,
}

impl RunReport {
    /// The rows of the mart named `name`.
    pub fn mart(&self, name: &str) -> &[RecordBatch] {
        self.marts
            .iter()
            .find(|(m, _)| m.name == name)
            .map(|(_, b)| b.as_slice())
            .unwrap_or_default()
    }
}

/// Runs the whole pipeline into `output`: the projection, both marts and `summary.json`
/// (and `_rejected/` when rows were quarantined). Everything is written to a staging directory
/// and replaces `output` in one atomic step when complete.
pub async fn run_all(
    settings: &Settings,
    clickstream: &str,
    purchases: &str,
    output: &Path,
) -> Result<RunReport> {
    let run = JobRun::claim(settings, output, &Input::exports(clickstream, purchases))?;
    let settings = run.settings();
    let (projection_dir, projection_shown) = run.part(layout::PROJECTION);
    let attribution = JobRun::within(
        settings,
        Target {
            write: &projection_dir,
            shown: &projection_shown,
        },
        Some(run.rejected()),
    )?;
    let report = attribution_into(attribution, clickstream, purchases).await?;
    let projection = projection_dir.to_string_lossy().into_owned();
    let mut outputs = BTreeMap::from([(layout::PROJECTION.to_string(), report.projection_rows())]);
    let mut marts = Vec::new();
    for mart in registry::in_scope(Scope::Run) {
        let (write, shown) = run.part(mart.name());
        let dest = Target {
            write: &write,
            shown: &shown,
        };
        let batches = mart_into(JobRun::within(settings, dest, None)?, mart, &projection).await?;
        outputs.insert(
            mart.name().to_string(),
            batches.iter().map(|b| b.num_rows() as u64).sum(),
        );
        marts.push((*mart, batches));
    }
    if let Some(j) = &report.journeys {
        outputs.extend(write_journeys(&run, j)?);
    }
    let journeys = report.journeys;
    let summary = Summary {
        outputs,
        seconds: run.seconds(),
        ..report.summary
    };
    write_json_file(&run.dir().join(layout::SUMMARY), &summary)?;
    if settings.report {
        report::write_staged_report(settings, run.dir()).await?;
    }
    run.commit()?;
    info!("committed {}", output.display());
    Ok(RunReport {
        summary,
        marts,
        journeys,
    })
}

#[cfg(test)]
mod tests {
    use super::dedup_spill_at;

    /// A small cap leaves half to the other operators, a large one 2 GiB.
    #[test]
    fn the_events_spill_at_half_a_small_cap_and_2_gib_short_of_a_large_one() {
        assert_eq!(dedup_spill_at(64 << 20), 32 << 20);
        assert_eq!(dedup_spill_at(1536 << 20), 768 << 20);
        assert_eq!(dedup_spill_at(4 << 30), 2 << 30);
        assert_eq!(dedup_spill_at(16 << 30), 14 << 30);
    }
}
