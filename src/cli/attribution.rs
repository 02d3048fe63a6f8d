//! `marketing-analytics attribution`: the purchases attribution projection only.

use std::path::PathBuf;

use super::options::{settings, ClusterArg, EngineArg, Inputs, Runtime};
use super::print::note;
use super::run::PartitionArg;
use super::Cli;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub inputs: Inputs,
    /// Output dataset directory of the projection.
    #[arg(long, short, value_name = "DIR")]
    pub output: PathBuf,
    #[command(flatten)]
    pub partition_by: PartitionArg,
    #[command(flatten)]
    pub engine: EngineArg,
    #[command(flatten)]
    pub runtime: Runtime,
    #[command(flatten)]
    pub cluster: ClusterArg,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    let mut settings = settings(
        cli.quiet,
        &args.runtime,
        Some(&args.cluster),
        Some(&args.inputs.reading),
        Some(&args.engine),
        None,
    )?;
    settings.partition_by_date = args.partition_by.by_date();
    let (clickstream, purchases) = args.inputs.both("attribution")?;
    let output = &args.output;
    let report =
        crate::app::attribution_job(&settings, &clickstream, &purchases, output, None).await?;
    note(format!(
        "{} purchases attributed; the projection is in {}, its summary in {}/{}",
        report.projection_rows(),
        output.display(),
        output.display(),
        crate::storage::output::SUCCESS_MARKER
    ))
}
