//! `marketing-analytics period`: the run's marts for the purchases of a period.

use std::path::PathBuf;

use anyhow::Context;

use super::options::{
    settings, ApiArg, ClusterArg, EngineArg, PeriodRange, Reading, Runtime, SourceArgs,
};
use super::print::print_table;
use super::Cli;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub reading: Reading,
    #[command(flatten)]
    pub range: PeriodRange,
    /// Output directory (gets a dataset per mart and summary.json).
    #[arg(long, short, value_name = "DIR")]
    pub output: PathBuf,
    #[command(flatten)]
    pub recompute: RecomputeArg,
    #[command(flatten)]
    pub engine: EngineArg,
    #[command(flatten)]
    pub api: ApiArg,
    #[command(flatten)]
    pub journeys: super::journeys::JourneyArgs,
    #[command(flatten)]
    pub report: super::report::ReportArg,
    #[command(flatten)]
    pub format: super::print::FormatArg,
    #[command(flatten)]
    pub runtime: Runtime,
    #[command(flatten)]
    pub cluster: ClusterArg,
}

/// `--recompute`.
#[derive(clap::Args, Debug, Clone)]
pub struct RecomputeArg {
    /// From a warehouse, compute the projection from the clickstream and purchases partitions
    /// (with --lookback) instead of reading the one `convert` stored there.
    #[arg(long)]
    pub recompute: bool,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    args.format.apply();
    let mut settings = settings(
        cli.quiet,
        &args.runtime,
        Some(&args.cluster),
        Some(&args.reading),
        Some(&args.engine),
        Some(&args.api),
    )?;
    settings.stored_projection = !args.recompute.recompute;
    // The models need the clickstream's sessions: they are computed from the partitions.
    settings.journeys = args.journeys.options();
    settings.report = args.report.report;
    settings.report = args.report.report;
    let range = args
        .range
        .period()?
        .context("give --from and --to, or --day")?;
    let marts =
        crate::app::period::period_job(&settings, &args.source.source()?, &range, &args.output)
            .await?;
    for (mart, batches) in &marts {
        print_table(
            mart.name,
            &format!("{}, {}", mart.short, range.describe()),
            batches,
        )?;
    }
    Ok(())
}
