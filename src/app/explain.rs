//! Query plans of the jobs: the logical and physical plans DataFusion chooses, and with
//! `--analyze` the plan with its run-time metrics (rows, time, bytes scanned, pruning), for a
//! warehouse or raw exports, for all data or a period.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::dataframe::DataFrame;

use super::period::{register_period_inputs, Period, Source};
use super::Settings;
use crate::attribution::{self, tables};
use crate::engine::session_context_with_limit;
use crate::error::{Error, Result};
use crate::marts::Mart;

/// The jobs whose plans can be shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExplainJob {
    /// The attribution's session step (dedup and sessionization: the heavy query).
    Attribution,
    /// A mart of the registry, over the projection.
    Mart(&'static Mart),
}

impl ExplainJob {
    /// `attribution` or a mart's command name.
    pub fn parse(name: &str) -> Option<ExplainJob> {
        match name {
            "attribution" => Some(ExplainJob::Attribution),
            other => crate::marts::registry::find(other).map(ExplainJob::Mart),
        }
    }

    /// Every job's name, for `--help`.
    pub fn names() -> Vec<String> {
        std::iter::once("attribution".to_string())
            .chain(crate::marts::registry::MARTS.iter().map(|m| m.command()))
            .collect()
    }

    pub fn name(&self) -> String {
        match self {
            ExplainJob::Attribution => "attribution".into(),
            ExplainJob::Mart(m) => m.command(),
        }
    }
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
            super::dedup(settings),
        )
        .await
        .map_err(Error::unwrap_datafusion)?
        .projection
        .cache()
        .await?;
        crate::storage::replace_table(&ctx, tables::PROJECTION, projection.into_view())?;
    }
    let df: DataFrame = match job {
        ExplainJob::Attribution => {
            ctx.sql(
                &attribution::session_step(&ctx, settings.engine, super::dedup(settings), false)
                    .await?,
            )
            .await?
        }
        ExplainJob::Mart(mart) => mart.dataframe(&ctx, settings.api).await?,
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
    let when = period
        .map(|p| p.describe())
        .unwrap_or_else(|| "all data".to_string());
    Ok(Explained {
        title: format!(
            "{} ({} engine, {} API) on {source}, {when}",
            job.name(),
            settings.engine,
            settings.api
        ),
        plans,
    })
}
