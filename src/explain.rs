//! Query plans of the jobs: the logical and physical plans DataFusion chooses, and with
//! `--analyze` the plan with its run-time metrics (rows, time, bytes scanned, pruning), for a
//! warehouse or raw exports, for all data or a period.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::dataframe::DataFrame;

use crate::context::session_context_with_limit;
use crate::error::{Error, Result};
use crate::jobs::{attribution, tables, top_campaigns, top_channels, weekly};
use crate::period::{register_period_inputs, Period, Source};
use crate::pipeline::Settings;

/// The jobs whose plans can be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExplainJob {
    /// The attribution's session step (dedup and sessionization: the heavy query).
    Attribution,
    TopCampaigns,
    TopChannels,
    Weekly,
}

/// Plans as text, each with its title (`logical_plan`, `physical_plan`, `Plan with Metrics`).
#[derive(Debug, Clone)]
pub struct Explained {
    pub title: String,
    pub plans: Vec<(String, String)>,
}

impl Explained {
    /// As Markdown: a heading per plan and the plan in a code block.
    pub fn markdown(&self) -> String {
        let mut out = format!("# {}\n", self.title);
        for (kind, plan) in &self.plans {
            out.push_str(&format!("\n## {kind}\n\n```\n{}\n```\n", plan.trim_end()));
        }
        out
    }
}

fn plan_rows(batches: &[RecordBatch]) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for b in batches {
        let (kind, plan) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            if !kind.is_null(i) && !plan.is_null(i) {
                rows.push((kind.value(i).to_string(), plan.value(i).to_string()));
            }
        }
    }
    rows
}

/// Plans of `job` on `source` for `period` (all data when `None`).
pub async fn explain(
    settings: &Settings,
    job: ExplainJob,
    source: &Source,
    period: Option<&Period>,
    analyze: bool,
) -> Result<Explained> {
    let ctx = session_context_with_limit(
        settings.threads,
        settings.memory_limit,
        settings.spill_dir.as_deref(),
    )?;
    let range = period.copied().unwrap_or_else(Period::all);
    register_period_inputs(&ctx, settings, source, &range, None).await?;
    if job != ExplainJob::Attribution {
        let projection = attribution::transform_with(
            &ctx,
            settings.engine,
            &attribution::Materialize::Memory,
            crate::pipeline::dedup(settings),
        )
        .await
        .map_err(Error::unwrap_datafusion)?
        .projection
        .cache()
        .await?;
        attribution::replace_table(&ctx, tables::PROJECTION, projection.into_view())?;
    }
    let df: DataFrame = match job {
        ExplainJob::Attribution => {
            ctx.sql(
                attribution::session_step(&ctx, settings.engine, crate::pipeline::dedup(settings))
                    .await?,
            )
            .await?
        }
        ExplainJob::TopCampaigns => top_campaigns::transform(&ctx, settings.api).await?,
        ExplainJob::TopChannels => top_channels::transform(&ctx, settings.api).await?,
        ExplainJob::Weekly => weekly::transform(&ctx).await?,
    };
    let mut plans = plan_rows(&df.clone().explain(false, false)?.collect().await?);
    if analyze {
        let analyzed = df
            .explain(false, true)?
            .collect()
            .await
            .map_err(|e| Error::from(e).unwrap_datafusion())?;
        plans.extend(plan_rows(&analyzed));
    }
    let source_name = match source {
        Source::Warehouse(w) => format!("warehouse {}", w.display()),
        Source::Raw {
            clickstream,
            purchases,
        } => format!("raw exports {clickstream} + {purchases}"),
    };
    let when = period
        .map(|p| p.describe())
        .unwrap_or_else(|| "all data".to_string());
    Ok(Explained {
        title: format!(
            "{job:?} ({:?} engine, {:?} API) on {source_name}, {when}",
            settings.engine, settings.api
        ),
        plans,
    })
}
