//! `marketing-analytics weekly`, …: one command per period mart (`marts::registry`,
//! `Scope::Period`), for a quarter or a period of a warehouse or raw exports.

use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgMatches, Args as _, FromArgMatches, Subcommand};

use super::mart::leak;
use super::options::{
    settings, ApiArg, ClusterArg, EngineArg, PeriodRange, Reading, Runtime, SourceArgs,
};
use super::period::RecomputeArg;
use super::print::print_table;
use super::Cli;
use crate::app::period::Period;
use crate::marts::registry::{self, Scope};
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
    pub runtime: Runtime,
    #[command(flatten)]
    pub cluster: ClusterArg,
}

/// A period mart's command: which mart, and its arguments.
#[derive(Debug)]
pub struct PeriodMartCommand {
    pub mart: &'static Mart,
    pub args: Args,
}

impl FromArgMatches for PeriodMartCommand {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let missing = || clap::Error::new(clap::error::ErrorKind::MissingSubcommand);
        let (name, sub) = matches.subcommand().ok_or_else(missing)?;
        let mart = registry::find(name)
            .filter(|m| m.scope == Scope::Period)
            .ok_or_else(missing)?;
        Ok(PeriodMartCommand {
            mart,
            args: Args::from_arg_matches(sub)?,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for PeriodMartCommand {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        registry::in_scope(Scope::Period).fold(cmd, |cmd, mart| {
            cmd.subcommand(
                Args::augment_args(clap::Command::new(leak(mart.command()))).about(format!(
                    "{}: for a quarter or a period (from a warehouse or raw exports).",
                    mart.title
                )),
            )
        })
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        registry::find(name).is_some_and(|m| m.scope == Scope::Period)
    }
}

pub async fn run(cli: &Cli, command: &PeriodMartCommand) -> anyhow::Result<()> {
    let args = &command.args;
    let mut settings = settings(
        cli.quiet,
        &args.runtime,
        Some(&args.cluster),
        Some(&args.reading),
        Some(&args.engine),
        Some(&args.api),
    )?;
    settings.stored_projection = !args.recompute.recompute;
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
        &format!("{}, {}", command.mart.short, range.describe()),
        &batches,
    )
}
