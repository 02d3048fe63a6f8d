//! `marketing-analytics run`: the whole pipeline, on the given exports or the built-in dataset.

use std::path::PathBuf;

use anyhow::{bail, Context};
use tracing::info;

use super::journeys::JourneyArgs;
use super::options::{settings, ApiArg, ClusterArg, EngineArg, Inputs, Runtime};
use super::print::{note, print_table};
use super::Cli;
use crate::generate;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub inputs: Inputs,
    /// Output directory.
    #[arg(long, short, value_name = "DIR", default_value = "out")]
    pub output: PathBuf,
    #[command(flatten)]
    pub partition_by: PartitionArg,
    #[command(flatten)]
    pub engine: EngineArg,
    #[command(flatten)]
    pub api: ApiArg,
    #[command(flatten)]
    pub journeys: JourneyArgs,
    #[command(flatten)]
    pub report: super::report::ReportArg,
    #[command(flatten)]
    pub format: super::print::FormatArg,
    #[command(flatten)]
    pub runtime: Runtime,
    #[command(flatten)]
    pub cluster: ClusterArg,
}

/// `--partition-by`, for the commands that write a projection.
#[derive(clap::Args, Debug, Clone)]
pub struct PartitionArg {
    /// Partition the projection by the date of purchaseTime (date=YYYY-MM-DD/ folders).
    #[arg(long, value_enum, value_name = "COLUMN")]
    pub partition_by: Option<PartitionBy>,
}

impl PartitionArg {
    pub fn by_date(&self) -> bool {
        self.partition_by == Some(PartitionBy::Date)
    }
}

/// How to partition the projection dataset.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionBy {
    /// One folder per date of purchaseTime.
    Date,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    args.format.apply();
    let mut settings = settings(
        cli.quiet,
        &args.runtime,
        Some(&args.cluster),
        Some(&args.inputs.reading),
        Some(&args.engine),
        Some(&args.api),
    )?;
    settings.partition_by_date = args.partition_by.by_date();
    settings.journeys = args.journeys.options();
    settings.report = args.report.report;
    let output = &args.output;
    // Keeps the built-in dataset alive until the run is over.
    let mut _default_dataset = None;
    let (clickstream, purchases) = match (&args.inputs.clickstream, &args.inputs.purchases) {
        (Some(c), Some(p)) => (c.clone(), p.clone()),
        (None, None) => {
            let dir = tempfile::tempdir()
                .context("creating a temporary directory for the built-in dataset")?;
            let opts = generate::Options {
                users: 2000,
                truth: false,
                ..generate::Options::default()
            };
            let g = generate::generate(&opts, dir.path())?;
            let label = format!(
                "built-in dataset ({} users, seed {})",
                opts.users, opts.seed
            );
            info!(
                events = g.events,
                purchase_rows = g.purchase_rows,
                "no inputs given: running on the {label}; pass --clickstream and --purchases \
                 for your own data"
            );
            let paths = (
                g.clickstream_dir.display().to_string(),
                g.purchases_dir.display().to_string(),
            );
            settings.input_label = Some((dir.path().to_path_buf(), label));
            _default_dataset = Some(dir);
            paths
        }
        (Some(_), None) => bail!("run: --clickstream is given but --purchases is not"),
        (None, Some(_)) => bail!("run: --purchases is given but --clickstream is not"),
    };
    let report = crate::app::run_all(&settings, &clickstream, &purchases, output).await?;
    for (mart, batches) in &report.marts {
        print_table(mart.name, mart.title, batches)?;
    }
    if let Some(journeys) = &report.journeys {
        print_table(
            "journey_models",
            "Journey models: revenue credit per touchpoint",
            &[crate::journeys::side_by_side(&journeys.models)?],
        )?;
    }
    let c = &report.summary.counts;
    note(format!(
        "{} events and {} purchases rows read; {} purchases attributed. Outputs and summary.json in {}",
        c.events,
        c.purchase_rows,
        c.attributed_purchases,
        output.display()
    ))
}
