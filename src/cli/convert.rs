//! `marketing-analytics convert`: raw exports added to the warehouse's Delta Lake tables
//! (partitioned by date; files converted before are skipped, re-exported ones replace their
//! own rows), and the projection of it all stored. It runs in
//! this process (it is what makes raw exports readable by a cluster), so it takes no
//! `--cluster`.

use std::path::PathBuf;

use super::options::{settings, EngineArg, Inputs, Runtime};
use super::print::note;
use super::Cli;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub inputs: Inputs,
    /// Warehouse directory.
    #[arg(long, value_name = "DIR")]
    pub warehouse: PathBuf,
    /// Replace every date these files touch with their rows only, dropping the rows other
    /// files had there. Without it a conversion adds its files' rows and keeps the rest.
    #[arg(long)]
    pub replace_dates: bool,
    /// Compute the stored projection again from everything the warehouse holds, instead of
    /// for what this conversion's rows can change (the rows are the same: for comparison).
    #[arg(long)]
    pub recompute: bool,
    #[command(flatten)]
    pub engine: EngineArg,
    #[command(flatten)]
    pub runtime: Runtime,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    let mut settings = settings(
        cli.quiet,
        &args.runtime,
        None,
        Some(&args.inputs.reading),
        Some(&args.engine),
        None,
    )?;
    settings.replace_dates = args.replace_dates;
    settings.stored_projection = !args.recompute;
    let (clickstream, purchases) = args.inputs.both("convert")?;
    let report =
        crate::app::convert::convert(&settings, &clickstream, &purchases, &args.warehouse).await?;
    let rows = |d: &[(String, u64)]| d.iter().map(|x| x.1).sum::<u64>();
    let skipped = match report.unchanged_files.len() {
        0 => String::new(),
        n => format!(" ({n} files converted before skipped)"),
    };
    note(format!(
        "{} clickstream rows in {} dates, {} purchases rows in {} dates written to {}{skipped}; \
         the projection of the whole warehouse stored ({} rows, {} dates rewritten)",
        rows(&report.clickstream_dates),
        report.clickstream_dates.len(),
        rows(&report.purchases_dates),
        report.purchases_dates.len(),
        args.warehouse.display(),
        report.projection_rows,
        report.projection_dates.len()
    ))
}
