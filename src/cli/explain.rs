//! `marketing-analytics explain`: the plans DataFusion chooses for a job. It runs in this
//! process, so it takes no `--cluster`, and it writes no output, so bad rows fail it.

use std::path::PathBuf;

use anyhow::{bail, Context};

use super::options::{settings, ApiArg, EngineArg, PeriodRange, Runtime, SourceArgs};
use super::print::say;
use super::Cli;
use crate::app::explain::ExplainJob;
use crate::input::parse_delimiter;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The job whose plans to show: attribution, or a mart (top-campaigns, top-channels,
    /// weekly, …).
    #[arg(value_name = "JOB", value_parser = parse_job)]
    pub job: ExplainJob,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Field delimiter of text inputs: one character or `tab` [default: tab for .tsv, else comma].
    #[arg(long, value_name = "CHAR", value_parser = |s: &str| parse_delimiter(s).map_err(|e| e.to_string()))]
    pub delimiter: Option<u8>,
    #[command(flatten)]
    pub range: PeriodRange,
    /// Also run the query and show its metrics (EXPLAIN ANALYZE).
    #[arg(long)]
    pub analyze: bool,
    /// Write the plans to this Markdown file instead of printing them.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineArg,
    #[command(flatten)]
    pub api: ApiArg,
    #[command(flatten)]
    pub runtime: Runtime,
}

fn parse_job(s: &str) -> Result<ExplainJob, String> {
    ExplainJob::parse(s).ok_or_else(|| {
        format!(
            "{s:?} is not a job; give one of: {}",
            ExplainJob::names().join(", ")
        )
    })
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    let reading = super::options::Reading {
        delimiter: args.delimiter,
        ..Default::default()
    };
    let settings = settings(
        cli.quiet,
        &args.runtime,
        None,
        Some(&reading),
        Some(&args.engine),
        Some(&args.api),
    )?;
    let range = args.range.period()?;
    let explained = crate::app::explain::explain(
        &settings,
        args.job,
        &args.source.source()?,
        range.as_ref(),
        args.analyze,
    )
    .await?;
    match &args.markdown {
        Some(path) => {
            // A file of the user's is not replaced without being asked.
            if path.exists() && !args.runtime.overwrite {
                bail!(
                    "--markdown {} exists: give --overwrite to replace it, or another file",
                    path.display()
                );
            }
            std::fs::write(path, explained.markdown())
                .with_context(|| format!("writing {}", path.display()))?;
            say(format!("plans written to {}", path.display()))
        }
        None => say(explained.markdown()),
    }
}
