//! `marketing-analytics models`: the journey models of an existing run, from its projection
//! and the clickstream it read (the projection and the marts are not computed again).

use std::path::PathBuf;

use super::journeys::{JourneyArgs, Models};
use super::options::{settings, ClusterArg, EngineArg, Reading, Runtime};
use super::print::{note, print_table};
use super::Cli;
use crate::journeys::Model;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run's projection: its OUTPUT/purchases_attribution/ (a Parquet dataset directory,
    /// file or glob).
    #[arg(long, value_name = "PATH")]
    pub projection: String,
    /// The clickstream the projection was computed from: a file, a directory of files or a
    /// glob (CSV/TSV, .gz, Parquet).
    #[arg(long, value_name = "PATH")]
    pub clickstream: String,
    /// Output directory: attribution_models/, conversion_paths/ and summary.json.
    #[arg(long, short, value_name = "DIR")]
    pub output: PathBuf,
    #[command(flatten)]
    pub reading: Reading,
    #[command(flatten)]
    pub engine: EngineArg,
    #[command(flatten)]
    pub journeys: JourneyArgs,
    #[command(flatten)]
    pub format: super::print::FormatArg,
    #[command(flatten)]
    pub runtime: Runtime,
    #[command(flatten)]
    pub cluster: ClusterArg,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    args.format.apply();
    let mut settings = settings(
        cli.quiet,
        &args.runtime,
        Some(&args.cluster),
        Some(&args.reading),
        Some(&args.engine),
        None,
    )?;
    // This command exists to compute them: all of them unless --models names some.
    let mut journeys = args.journeys.clone();
    journeys
        .models
        .get_or_insert_with(|| Models(Model::ALL.to_vec()));
    settings.journeys = journeys.options();
    let j = crate::app::models::models_job(
        &settings,
        &args.projection,
        &args.clickstream,
        &args.output,
    )
    .await?;
    print_table(
        "journey_models",
        "Journey models: revenue credit per touchpoint",
        &[crate::journeys::side_by_side(&j.models)?],
    )?;
    note(format!(
        "attribution_models, conversion_paths and summary.json in {}",
        args.output.display()
    ))
}
