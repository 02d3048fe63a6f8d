//! `marketing-analytics report`: the HTML report of a run's (or a period's) outputs.
//!
//! ```text
//! marketing-analytics report --input out                 # writes out/report.html
//! marketing-analytics report --input out --out run.html
//! ```

use std::path::PathBuf;

use super::options::{settings, Runtime};
use super::print::say;
use super::Cli;
use crate::app::report::report_job;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The output directory of a run or a period (its datasets, summary.json, _rejected/).
    #[arg(long, short = 'i', value_name = "DIR")]
    pub input: PathBuf,
    /// Where the page goes [default: DIR/report.html]. A file there is replaced only if it is
    /// a report this program wrote.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub runtime: Runtime,
}

/// `--report`, for the commands whose outputs a report shows (run, period).
#[derive(clap::Args, Debug, Clone)]
pub struct ReportArg {
    /// Also write the HTML report of the outputs, OUTPUT/report.html (see `report`).
    #[arg(long, help_heading = "Output")]
    pub report: bool,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    let settings = settings(cli.quiet, &args.runtime, None, None, None, None)?;
    let out = report_job(&settings, &args.input, args.out.as_deref()).await?;
    if cli.quiet == 0 {
        say(format!("Report written to {}", out.display()))?;
    }
    Ok(())
}
