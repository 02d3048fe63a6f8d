//! `marketing-analytics top-campaigns`, `top-channels`, …: one command per mart of the run
//! (`marts::registry`, `Scope::Run`), computed from a projection dataset.

use std::path::PathBuf;

use clap::{ArgMatches, Args as _, FromArgMatches, Subcommand};

use super::options::{settings, ApiArg, ClusterArg, Runtime};
use super::print::print_table;
use super::Cli;
use crate::marts::registry::{self, Scope};
use crate::marts::Mart;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The projection: a Parquet dataset directory, file or glob.
    #[arg(long, short, value_name = "PATH")]
    pub input: String,
    /// Output dataset directory of the mart.
    #[arg(long, short, value_name = "DIR")]
    pub output: PathBuf,
    #[command(flatten)]
    pub api: ApiArg,
    #[command(flatten)]
    pub runtime: Runtime,
    #[command(flatten)]
    pub cluster: ClusterArg,
}

/// A mart's command: which mart, and its arguments.
#[derive(Debug)]
pub struct MartCommand {
    pub mart: &'static Mart,
    pub args: Args,
}

/// A registry name as clap's `'static` command name (made once per mart and process).
pub(crate) fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

impl FromArgMatches for MartCommand {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let missing = || clap::Error::new(clap::error::ErrorKind::MissingSubcommand);
        let (name, sub) = matches.subcommand().ok_or_else(missing)?;
        let mart = registry::find(name)
            .filter(|m| m.scope == Scope::Run)
            .ok_or_else(missing)?;
        Ok(MartCommand {
            mart,
            args: Args::from_arg_matches(sub)?,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Subcommand for MartCommand {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        registry::in_scope(Scope::Run).fold(cmd, |cmd, mart| {
            cmd.subcommand(
                Args::augment_args(clap::Command::new(leak(mart.command())))
                    .about(format!("{}, from a projection dataset.", mart.title)),
            )
        })
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        registry::find(name).is_some_and(|m| m.scope == Scope::Run)
    }
}

pub async fn run(cli: &Cli, command: &MartCommand) -> anyhow::Result<()> {
    let args = &command.args;
    let settings = settings(
        cli.quiet,
        &args.runtime,
        Some(&args.cluster),
        None,
        None,
        Some(&args.api),
    )?;
    let batches = crate::app::mart_job(&settings, command.mart, &args.input, &args.output).await?;
    print_table(&command.mart.command(), &batches)
}
