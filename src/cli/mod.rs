//! The `marketing-analytics` command line: one file per command (its arguments and what it
//! prints), the argument groups they share ([`options`]), the YAML config merged into the
//! flags ([`config`]), logging and how errors are shown. `src/main.rs` only calls [`main`].
//! All work is done by [`crate::app`].

pub mod attribution;
pub mod cluster;
pub mod config;
pub mod convert;
pub mod docs;
pub mod explain;
pub mod generate;
pub mod journeys;
pub mod logging;
pub mod maintain;
pub mod mart;
pub mod models;
pub mod options;
pub mod period;
pub mod period_mart;
pub mod print;
pub mod report;
pub mod run;
pub mod sql;

use clap::{ArgAction, Parser, Subcommand};
use tracing::Instrument;

/// Purchases attribution and marketing marts from a mobile app's clickstream.
///
/// Reads clickstream exports (userId, eventId, eventType, eventTime, attributes) and purchases
/// exports (purchaseId, purchaseTime, billingCost, isConfirmed) as CSV/TSV (optionally gzip) or
/// Parquet, sessionizes each user's events (app_open .. app_close), attributes every purchase
/// to its session's campaign and channel, and computes the top campaigns by confirmed revenue
/// and the top channel of each campaign. Outputs are Parquet datasets.
///
/// Every command takes --config FILE: a YAML file whose keys are the command's flag names
/// (`memory_limit: 2G`, `on_bad_rows: quarantine`); flags on the command line override it.
///
/// Try `marketing-analytics run` with no arguments: it runs on a small built-in dataset.
#[derive(Parser, Debug)]
#[command(name = "marketing-analytics", version, max_term_width = 100)]
pub struct Cli {
    /// More log output (-v debug, -vv trace, with the engine's own debug lines).
    #[arg(short, long, action = ArgAction::Count, global = true, help_heading = "Logging", display_order = 900)]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, action = ArgAction::Count, global = true, help_heading = "Logging", display_order = 901)]
    pub quiet: u8,
    /// Log lines as text, or as JSON (one object per line: time, level, message, fields such as
    /// counts, and the spans with the run id and the job), for orchestrators and log stores.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = logging::LogFormat::Text, global = true, help_heading = "Logging", display_order = 902)]
    pub log_format: logging::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the whole pipeline: projection, both marts and summary.json, then print the marts.
    ///
    /// Writes OUTPUT/purchases_attribution/, OUTPUT/top_campaigns/, OUTPUT/top_channels/
    /// (Parquet) and OUTPUT/summary.json, replacing a previous output of this program in one
    /// atomic step (anything else at OUTPUT only with --overwrite; never an input). With no
    /// inputs given (by flag or config), runs on a built-in generated dataset. With --models,
    /// also OUTPUT/attribution_models/ and OUTPUT/conversion_paths/ (docs/journeys.md).
    Run(run::Args),
    /// Build the purchases attribution projection only (Parquet dataset at --output).
    Attribution(attribution::Args),
    #[command(flatten)]
    Mart(mart::MartCommand),
    /// The journey models of an existing run, from its projection and the clickstream it read.
    ///
    /// Writes OUTPUT/attribution_models/, OUTPUT/conversion_paths/ and OUTPUT/summary.json
    /// (docs/journeys.md): every model unless --models names some. The projection and the marts
    /// are not computed again; the clickstream's sessions are.
    Models(models::Args),
    /// Generate a synthetic dataset in the real export format, with its ground truth.
    Generate(generate::Args),
    /// Add raw exports to the warehouse: Delta Lake tables partitioned by date.
    ///
    /// Writes WAREHOUSE/clickstream and WAREHOUSE/purchases (Delta tables: typed columns,
    /// attributes parsed, sorted, zstd, row-group statistics), each changed in one transaction.
    /// New files' rows are added to the dates they touch and the rest is kept; a file
    /// converted before (same content) is skipped; a re-exported file (other content at the
    /// same path) replaces its own rows; --replace-dates replaces every date the files touch.
    /// Then stores the projection of everything the warehouse holds (WAREHOUSE/projection),
    /// which `period` and `weekly` read for their dates.
    Convert(convert::Args),
    /// Compact each date's small data files of the warehouse's tables into larger ones.
    ///
    /// One Delta transaction per table; the data read is the same before and after. Files
    /// compacted away stay for earlier versions (`--as-of`) until `vacuum` removes them.
    Optimize(maintain::OptimizeArgs),
    /// Remove the warehouse's files no version within the retention needs.
    ///
    /// Removes data files the tables no longer reference (compacted or replaced ones, and what
    /// a stopped conversion wrote and never committed) older than --retention-hours; the
    /// versions the stored projection names are always kept. --dry-run lists them only.
    Vacuum(maintain::VacuumArgs),
    /// Top campaigns and top channels for the purchases of a period (from a warehouse or raw exports).
    Period(period::Args),
    #[command(flatten)]
    PeriodMart(period_mart::PeriodMartCommand),
    /// Run SQL over runs' outputs and a warehouse (read only), with the project's functions.
    ///
    /// Tables: a run's datasets by name (purchases_attribution, top_campaigns, top_channels,
    /// weekly, attribution_models, conversion_paths) and summary (its summary.json as one row);
    /// a warehouse's clickstream, purchases and projection with their `date` partition column.
    /// The query comes from the argument, -f FILE or stdin (a prompt on a terminal).
    Sql(sql::Args),
    /// Write the HTML report of a run's or a period's outputs (DIR/report.html).
    ///
    /// One self-contained page (inline SVG charts, no script, no network): the run at a
    /// glance, top campaigns and channels, the weekly projection and the journey models when
    /// present, and the accounting of every row read. Every figure comes from the outputs.
    Report(report::Args),
    /// Show the logical and physical plans of a job (and, with --analyze, its run-time metrics).
    Explain(explain::Args),
    /// Run a Ballista cluster process: the scheduler, or an executor.
    ///
    /// Start one scheduler and any number of executors, then give `--cluster df://HOST:PORT`
    /// (the scheduler's address) to run, attribution, the marts, period or weekly. Inputs and
    /// outputs must be on storage every executor reaches (one host, a shared file system, or
    /// s3:// with AWS_* credentials in the environment of every process).
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff): `marketing-analytics manpage > marketing-analytics.1`.
    Manpage,
}

/// This invocation's run id, the same in every log line and in summary.json.
pub fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(crate::calendar::new_run_id)
}

/// Exit codes: 2 for a usage or configuration error found before any work (clap's own, or an
/// input path that names no file), 3 for bad input data (a row or file refused with
/// `--on-bad-rows fail`, or more bad rows than `--max-bad-rows`), 4 when the memory cap was too
/// small (for the thread count, or for the job), 1 for any other failure.
const USAGE_ERROR: u8 = 2;
const BAD_INPUT: u8 = 3;
const OUT_OF_MEMORY: u8 = 4;

/// The exit code of a job that failed with `e`.
fn exit_code(e: &anyhow::Error) -> u8 {
    use crate::error::Error;
    if logging::is_memory_exhausted(e) {
        return OUT_OF_MEMORY;
    }
    match e.downcast_ref::<crate::engine::LimitError>() {
        Some(crate::engine::LimitError::MemoryCap(_)) => return OUT_OF_MEMORY,
        Some(crate::engine::LimitError::Threads(_)) => return USAGE_ERROR,
        None => {}
    }
    let ours = e.chain().find_map(|c| c.downcast_ref::<Error>());
    match ours {
        Some(Error::BadRow { .. } | Error::BadFile { .. } | Error::TooManyBadRows(_)) => BAD_INPUT,
        Some(Error::NoInput { .. }) => USAGE_ERROR,
        _ => 1,
    }
}

/// Parses the command line (with its config), sets up logging and signals, runs the command
/// and reports its error.
pub fn main() -> std::process::ExitCode {
    let cli = match config::parse_with_config(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if let Err(e) = logging::init(cli.verbose, cli.quiet, cli.log_format) {
        eprintln!("error: {e}");
        return std::process::ExitCode::from(USAGE_ERROR);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        if let Some(waiting) = stop_on_signal() {
            tokio::spawn(waiting);
        }
        // Every log line of this invocation carries its run id (and, below it, the job's name).
        let span = tracing::info_span!("run", id = %run_id());
        let result = dispatch(&cli).instrument(span).await;
        match result {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {}", logging::error_text(&e));
                if logging::is_memory_exhausted(&e) {
                    eprintln!(
                        "hint: the job needed more memory than --memory-limit allows: raise the \
                         limit, or lower --threads (each thread's sorts and aggregations need a \
                         share of it)"
                    );
                }
                std::process::ExitCode::from(exit_code(&e))
            }
        }
    })
}

async fn dispatch(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Run(a) => run::run(cli, a).await,
        Command::Attribution(a) => attribution::run(cli, a).await,
        Command::Mart(m) => mart::run(cli, m).await,
        Command::Models(a) => models::run(cli, a).await,
        Command::Generate(a) => generate::run(a),
        Command::Convert(a) => convert::run(cli, a).await,
        Command::Optimize(a) => maintain::optimize(cli, a).await,
        Command::Vacuum(a) => maintain::vacuum(cli, a).await,
        Command::Period(a) => period::run(cli, a).await,
        Command::PeriodMart(m) => period_mart::run(cli, m).await,
        Command::Explain(a) => explain::run(cli, a).await,
        Command::Sql(a) => sql::run(cli, a).await,
        Command::Report(a) => report::run(cli, a).await,
        Command::Cluster(c) => cluster::run(c).await,
        Command::Completions(a) => docs::completions(a),
        Command::Manpage => docs::manpage(),
    }
}

/// On SIGTERM or SIGINT, removes what the job has under way (staging, scratch, spill files,
/// its lock: see `storage::cleanup`) and exits with 128 + the signal's number, as a shell
/// reports it. The previous outputs are untouched: nothing was committed. The handlers are
/// installed before any work; the returned task waits for a signal.
fn stop_on_signal() -> Option<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok()?;
    let mut int = signal(SignalKind::interrupt()).ok()?;
    Some(async move {
        let code = tokio::select! {
            _ = term.recv() => 143,
            _ = int.recv() => 130,
        };
        let left = crate::storage::cleanup::remove_all();
        eprintln!(
            "stopped by a signal: nothing was committed{}",
            if left.is_empty() {
                String::new()
            } else {
                format!("; could not remove {left:?}")
            }
        );
        std::process::exit(code);
    })
}
