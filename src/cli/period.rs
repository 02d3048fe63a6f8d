//! `marketing-analytics period`: the run's marts for the purchases of a period.

use std::path::PathBuf;

use anyhow::Context;

use crate::storage::delta::AsOf;
use crate::storage::warehouse::Read;

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

/// `--recompute`, `--as-of`.
#[derive(clap::Args, Debug, Clone)]
pub struct RecomputeArg {
    /// From a warehouse, compute the projection from the clickstream and purchases tables
    /// (with --lookback) instead of reading the one `convert` stored there.
    #[arg(long)]
    pub recompute: bool,
    /// Read the warehouse as a conversion left it: VERSION of its `projection` table (each
    /// conversion that changed the warehouse made one), or the one current at TIMESTAMP
    /// (RFC 3339, such as 2026-12-01T09:00:00Z). Default: the last conversion.
    #[arg(long, value_name = "VERSION|TIMESTAMP", value_parser = parse_as_of)]
    pub as_of: Option<AsOf>,
}

impl RecomputeArg {
    /// Applies these options to `settings`.
    pub fn apply(&self, settings: &mut crate::app::Settings) {
        settings.stored_projection = !self.recompute;
        settings.read = Read::Converted(self.as_of.unwrap_or(AsOf::Latest));
    }
}

/// `--as-of`: a version number, or an RFC 3339 time.
fn parse_as_of(text: &str) -> Result<AsOf, String> {
    if let Ok(v) = text.parse::<u64>() {
        return Ok(AsOf::Version(v));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| AsOf::Timestamp(t.timestamp_micros()))
        .map_err(|e| {
            format!("{text:?} is neither a version nor an RFC 3339 time such as 2026-12-01T09:00:00Z ({e})")
        })
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
    args.recompute.apply(&mut settings);
    // The models need the clickstream's sessions: they are computed from the partitions.
    settings.journeys = args.journeys.options();
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
