//! `marketing-analytics convert`: raw exports into the date-partitioned warehouse. It runs in
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
    /// Replace every date these files touch with their rows only, also a date that holds rows
    /// of files not in this conversion (which are then dropped). Without it such a conversion
    /// fails before it replaces any date.
    #[arg(long)]
    pub replace_dates: bool,
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
    let (clickstream, purchases) = args.inputs.both("convert")?;
    let report =
        crate::app::convert::convert(&settings, &clickstream, &purchases, &args.warehouse).await?;
    let rows = |d: &[(String, u64)]| d.iter().map(|x| x.1).sum::<u64>();
    note(format!(
        "{} clickstream rows in {} dates, {} purchases rows in {} dates written to {}; the \
         projection of the whole warehouse stored ({} rows)",
        rows(&report.clickstream_dates),
        report.clickstream_dates.len(),
        rows(&report.purchases_dates),
        report.purchases_dates.len(),
        args.warehouse.display(),
        report.projection_rows
    ))
}
