//! `models`: the journey models of an existing run, from its projection and the clickstream it
//! read, without computing the projection and the marts again. The sessions come from the
//! clickstream (the session step, rules 1–4); the conversions are the projection's purchases,
//! each with the time of the purchase event that attributes it (`journeys/from_projection.sql`).

use std::collections::BTreeMap;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Int64Type;
use tracing::{info, info_span, Instrument};

use super::job::JobRun;
use super::summary::InputFiles;
use super::{
    dedup, extract_for_job, job_context, materialize, read_spend, register_projection, walk,
};
use super::{layout, write_journeys, Settings};
use crate::attribution::{self, intermediate};
use crate::error::{Error, Result};
use crate::input::resolve;
use crate::journeys::Journeys;
use crate::storage::claim::Input;
use crate::storage::output::write_json_file;

/// `OUTPUT/summary.json` of `models`: what was read and what was written.
#[derive(Debug, serde::Serialize)]
pub struct ModelsSummary {
    pub run_id: String,
    pub job: &'static str,
    /// The projection and the clickstream, as given.
    pub source: BTreeMap<&'static str, String>,
    /// Rows read and quarantined per clickstream (and spend) file.
    pub input_files: InputFiles,
    /// Output datasets and their rows.
    pub outputs: BTreeMap<String, u64>,
    /// Per dimension, the journeys' counts.
    pub journeys: BTreeMap<String, crate::journeys::Counts>,
    /// The options worth showing beside the figures.
    pub options: serde_json::Map<String, serde_json::Value>,
    /// Seconds from the job's start to its summary.
    pub seconds: f64,
}

/// Computes the journey models of `settings.journeys` from the projection at `projection` and
/// the clickstream it was computed from, into `dest` (`attribution_models/`,
/// `conversion_paths/`, `summary.json`).
pub async fn models_job(
    settings: &Settings,
    projection: &str,
    clickstream: &str,
    dest: &Path,
) -> Result<Journeys> {
    let Some(options) = settings.journeys.clone() else {
        return Err(Error::Config("models: no journey models asked for".into()));
    };
    let inputs = [
        Input {
            what: "projection",
            spec: projection,
        },
        Input {
            what: "clickstream",
            spec: clickstream,
        },
    ];
    let job = JobRun::claim(settings, dest, &inputs)?;
    let span = info_span!("job", job = %"models");
    async {
        let settings = job.settings();
        let inputs = attribution::Inputs {
            clickstream: resolve(clickstream, "clickstream", settings.delimiter)?,
            purchases: Vec::new(),
        };
        let ctx = job_context(settings).await?;
        let (journeys, summary) = job
            .with_scratch(&ctx, async |scratch| {
                let extracted =
                    extract_for_job(settings, &ctx, &inputs, None, job.quarantine(), scratch)
                        .await?;
                register_projection(&ctx, projection).await?;
                let how = materialize(settings, scratch);
                attribution::session_tables(&ctx, settings.engine, &how, dedup(settings))
                    .await
                    .map_err(Error::unwrap_datafusion)?;
                let conversions = ctx.sql(crate::journeys::FROM_PROJECTION_SQL).await?;
                how.table(&ctx, intermediate::CLASSIFIED, conversions)
                    .await
                    .map_err(Error::unwrap_datafusion)?;
                extracted
                    .clickstream
                    .settle_bad_rows(settings.max_bad_rows)?;
                check_sessions_found(&ctx, projection, clickstream).await?;
                let spend = read_spend(settings, &options, job.quarantine())?;
                let rows = spend
                    .as_ref()
                    .map(|s| s.rows.as_slice())
                    .unwrap_or_default();
                let journeys =
                    crate::journeys::transform(&ctx, &options, rows, None, walk(settings))
                        .await
                        .map_err(Error::unwrap_datafusion)?;
                let outputs = write_journeys(&job, &journeys)?;
                let mut input_files =
                    InputFiles::new(&extracted.clickstream.stats, &extracted.purchases.stats);
                if let Some(spend) = spend {
                    input_files.spend = spend.files;
                }
                let summary = ModelsSummary {
                    run_id: settings.run_id.clone(),
                    job: "models",
                    source: BTreeMap::from([
                        ("projection", projection.to_string()),
                        ("clickstream", clickstream.to_string()),
                    ]),
                    input_files,
                    outputs,
                    journeys: journeys.counts.clone(),
                    options: super::summary::run_options(settings),
                    seconds: job.seconds(),
                };
                write_json_file(&job.dir().join(layout::SUMMARY), &summary)?;
                Ok((journeys, summary))
            })
            .await?;
        let shown = job.shown().to_path_buf();
        job.commit()?;
        info!(outputs = ?summary.outputs, "wrote {}", shown.display());
        Ok(journeys)
    }
    .instrument(span)
    .await
}

/// Fails when a purchase of the projection is attributed to a session the clickstream does
/// not have: the projection was computed from other exports, and its journeys would be wrong.
async fn check_sessions_found(
    ctx: &datafusion::prelude::SessionContext,
    projection: &str,
    clickstream: &str,
) -> Result<()> {
    let query = format!(
        "SELECT COUNT(*) AS n, MIN(purchaseId) AS first FROM {} WHERE eventTime IS NULL",
        intermediate::CLASSIFIED
    );
    let batches = ctx.sql(&query).await?.collect().await?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() == 1) else {
        return Ok(());
    };
    let missing = batch.column(0).as_primitive::<Int64Type>().value(0);
    if missing == 0 {
        return Ok(());
    }
    let first = datafusion::arrow::compute::cast(
        batch.column(1),
        &datafusion::arrow::datatypes::DataType::Utf8,
    )?;
    let first = first.as_string::<i32>();
    let first = if first.is_null(0) { "" } else { first.value(0) };
    Err(Error::BadFile {
        file: projection.to_string(),
        reason: format!(
            "{missing} of its purchases (the first: {first}) are attributed to sessions that \
             the clickstream {clickstream} does not have: give the clickstream the projection was \
             computed from"
        ),
    })
}
