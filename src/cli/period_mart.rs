//! `marketing-analytics weekly`, …: one command per period mart (`marts::registry`,
//! `Scope::Period`), for a quarter or a period of a warehouse or raw exports.

use std::path::PathBuf;

use anyhow::Context;

use super::mart::{CommandScope, RegistryCommand};
use super::options::{
    settings, ApiArg, ClusterArg, EngineArg, PeriodRange, Reading, Runtime, SourceArgs,
};
use super::period::RecomputeArg;
use super::print::print_table;
use super::Cli;
use crate::app::period::Period;
use crate::marts::registry::Scope;
use crate::marts::Mart;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub reading: Reading,
    /// A quarter, such as 2020-Q4.
    #[arg(long, value_name = "YYYY-QN", conflicts_with_all = ["from", "to", "day"])]
    pub quarter: Option<String>,
    #[command(flatten)]
    pub range: PeriodRange,
    /// Output directory (gets the mart's dataset and summary.json).
    #[arg(long, short, value_name = "DIR")]
    pub output: PathBuf,
    #[command(flatten)]
    pub recompute: RecomputeArg,
    #[command(flatten)]
    pub engine: EngineArg,
    #[command(flatten)]
    pub api: ApiArg,
    #[command(flatten)]
    pub format: super::print::FormatArg,
    #[command(flatten)]
    pub runtime: Runtime,
    #[command(flatten)]
    pub cluster: ClusterArg,
}

/// `Scope::Period` marts, for a quarter or a period.
#[derive(Debug)]
pub struct ForPeriod;

impl CommandScope for ForPeriod {
    const SCOPE: Scope = Scope::Period;
    fn about(mart: &Mart) -> String {
        format!(
            "{}: for a quarter or a period (from a warehouse or raw exports).",
            mart.title
        )
    }
}

/// A period mart's command.
pub type PeriodMartCommand = RegistryCommand<Args, ForPeriod>;

pub async fn run(cli: &Cli, command: &PeriodMartCommand) -> anyhow::Result<()> {
    command.args.format.apply();
    let args = &command.args;
    let mut settings = settings(
        cli.quiet,
        &args.runtime,
        Some(&args.cluster),
        Some(&args.reading),
        Some(&args.engine),
        Some(&args.api),
    )?;
    args.recompute.apply(&mut settings);
    let range = match &args.quarter {
        Some(q) => Period::quarter(q, args.range.lookback)?,
        None => args
            .range
            .period()?
            .context("give --quarter, or --from and --to")?,
    };
    let batches = crate::app::period::period_mart_job(
        &settings,
        command.mart,
        &args.source.source()?,
        &range,
        &args.output,
    )
    .await?;
    print_table(
        command.mart.name,
        &format!("{}, {}", command.mart.short, range.describe()),
        &batches,
    )
}
