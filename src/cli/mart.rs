//! `marketing-analytics top-campaigns`, `top-channels`, …: one command per mart of the run
//! (`marts::registry`, `Scope::Run`), computed from a projection dataset; and the registry
//! command family the period marts (`period_mart`) use too.

use std::path::PathBuf;

use clap::{ArgMatches, FromArgMatches, Subcommand};

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
    pub format: super::print::FormatArg,
    #[command(flatten)]
    pub runtime: Runtime,
    #[command(flatten)]
    pub cluster: ClusterArg,
}

/// The marts' commands of one scope, from the registry: which mart was chosen, and its
/// arguments `A` (the same for every mart of the scope).
#[derive(Debug)]
pub struct RegistryCommand<A, S> {
    pub mart: &'static Mart,
    pub args: A,
    scope: std::marker::PhantomData<S>,
}

/// A scope of the registry, as a command family: which marts, and how `--help` lists them.
pub trait CommandScope {
    const SCOPE: Scope;
    fn about(mart: &Mart) -> String;
}

/// `Scope::Run` marts, computed from a projection dataset.
#[derive(Debug)]
pub struct FromProjection;

impl CommandScope for FromProjection {
    const SCOPE: Scope = Scope::Run;
    fn about(mart: &Mart) -> String {
        format!("{}, from a projection dataset.", mart.title)
    }
}

/// A mart's command under `run`'s scope.
pub type MartCommand = RegistryCommand<Args, FromProjection>;

/// A registry name as clap's `'static` command name (made once per mart and process).
fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

impl<A: FromArgMatches, S: CommandScope> FromArgMatches for RegistryCommand<A, S> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let missing = || clap::Error::new(clap::error::ErrorKind::MissingSubcommand);
        let (name, sub) = matches.subcommand().ok_or_else(missing)?;
        let mart = registry::find(name)
            .filter(|m| m.scope == S::SCOPE)
            .ok_or_else(missing)?;
        Ok(RegistryCommand {
            mart,
            args: A::from_arg_matches(sub)?,
            scope: std::marker::PhantomData,
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl<A: clap::Args, S: CommandScope> Subcommand for RegistryCommand<A, S> {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        registry::in_scope(S::SCOPE).fold(cmd, |cmd, mart| {
            cmd.subcommand(
                A::augment_args(clap::Command::new(leak(mart.command()))).about(S::about(mart)),
            )
        })
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        registry::find(name).is_some_and(|m| m.scope == S::SCOPE)
    }
}

pub async fn run(cli: &Cli, command: &MartCommand) -> anyhow::Result<()> {
    command.args.format.apply();
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
    print_table(command.mart.name, &command.mart.command(), &batches)
}
