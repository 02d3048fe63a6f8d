//! The `marketing-analytics` command line: argument parsing, configuration, logging and
//! printing. All work is done by the library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{ArgAction, Args, Parser, Subcommand};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use marketing_analytics::config::{parse_delimiter, Config};
use marketing_analytics::explain::{self, ExplainJob};
use marketing_analytics::generate::{self, Mess};
use marketing_analytics::input::BadRows;
use marketing_analytics::jobs::{Api, Engine};
use marketing_analytics::pipeline::{self, Mart, Settings};
use marketing_analytics::{period, warehouse};
use tracing::{info, Instrument};

// See Cargo.toml: the allocator matters for this workload.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Purchases attribution and marketing marts from a mobile app's clickstream.
///
/// Reads clickstream exports (userId, eventId, eventType, eventTime, attributes) and purchases
/// exports (purchaseId, purchaseTime, billingCost, isConfirmed) as CSV/TSV (optionally gzip) or
/// Parquet, sessionizes each user's events (app_open .. app_close), attributes every purchase
/// to its session's campaign and channel, and computes the top campaigns by confirmed revenue
/// and the top channel of each campaign. Outputs are Parquet datasets.
///
/// Try `marketing-analytics run` with no arguments: it runs on a small built-in dataset.
#[derive(Parser, Debug)]
#[command(name = "marketing-analytics", version, max_term_width = 100)]
struct Cli {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    quiet: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the whole pipeline: projection, both marts and summary.json, then print the marts.
    ///
    /// Writes OUTPUT/purchases_attribution/, OUTPUT/top_campaigns/, OUTPUT/top_channels/
    /// (Parquet) and OUTPUT/summary.json, replacing a previous output of this program in one
    /// atomic step (anything else at OUTPUT only with --overwrite; never an input). With no
    /// inputs given (by flag or config), runs on a built-in generated dataset.
    Run(RunArgs),
    /// Build the purchases attribution projection only (Parquet dataset at --output).
    Attribution(AttributionArgs),
    /// Top 10 campaigns by confirmed revenue, from a projection dataset.
    TopCampaigns(MartArgs),
    /// The top channel of each campaign by distinct sessions, from a projection dataset.
    TopChannels(MartArgs),
    /// Generate a synthetic dataset in the real export format, with its ground truth.
    Generate(GenerateArgs),
    /// Convert raw exports into a date-partitioned Parquet warehouse.
    ///
    /// Writes WAREHOUSE/clickstream/date=YYYY-MM-DD/ and WAREHOUSE/purchases/date=YYYY-MM-DD/
    /// (typed columns, attributes parsed, sorted, zstd, row-group statistics). Re-running
    /// replaces exactly the dates the files contain and leaves the others alone; a date that
    /// holds rows of files not in this conversion is replaced only with --replace-dates. Then
    /// stores
    /// the projection of everything the warehouse holds (WAREHOUSE/projection/date=…/, by
    /// purchase date), which `period` and `weekly` read for their dates.
    Convert(ConvertArgs),
    /// Top campaigns and top channels for the purchases of a period (from a warehouse or raw exports).
    Period(PeriodArgs),
    /// Weekly purchases projection: per ISO week and campaign, for a quarter or a period.
    Weekly(WeeklyArgs),
    /// Show the logical and physical plans of a job (and, with --analyze, its run-time metrics).
    Explain(ExplainArgs),
    /// Run a Ballista cluster process: the scheduler, or an executor.
    ///
    /// Start one scheduler and any number of executors, then give `--cluster df://HOST:PORT`
    /// (the scheduler's address) to run, attribution, the marts, period or weekly. Inputs and
    /// outputs must be on storage every executor reaches (one host, a shared file system, or
    /// s3:// with AWS_* credentials in the environment of every process).
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// The scheduler: plans jobs into stages and hands tasks to executors.
    Scheduler {
        /// Address to listen on.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
        bind: String,
        /// Seconds without news from an executor before it is taken for dead and its work is
        /// redone on the others.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        executor_timeout: u64,
        /// Listen beyond loopback without a token: any client that reaches the port can run
        /// jobs. Set MARKETING_ANALYTICS_CLUSTER_TOKEN (here and in every client) instead.
        #[arg(long)]
        insecure: bool,
    },
    /// An executor: runs tasks and serves its shuffle data to the others.
    Executor {
        /// The scheduler's address.
        #[arg(long, value_name = "HOST:PORT")]
        scheduler: String,
        /// Address of this executor's data service (other ports it needs are chosen free).
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50051")]
        bind: String,
        /// Tasks run at once [default: every core].
        #[arg(long, value_name = "N")]
        concurrent_tasks: Option<usize>,
        /// Directory for shuffle files and spills [default: a fresh temporary directory].
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
        /// Seconds between heartbeats to the scheduler (keep it well below the scheduler's
        /// --executor-timeout).
        #[arg(long, value_name = "SECS", default_value_t = 10)]
        heartbeat_interval: u64,
        /// Cap on the executor's memory (e.g. 4G): its query engine's pool gets seven eighths
        /// of it (at most 1 GiB less), the rest is left to buffers no pool sees [default: a
        /// pool of 70% of the host's memory].
        #[arg(long, value_name = "SIZE")]
        memory_limit: Option<String>,
        /// Listen beyond loopback: Ballista 55's executors serve shuffle data without any
        /// credential, so do this only on a network you trust.
        #[arg(long)]
        insecure: bool,
    },
}

#[derive(Args, Debug, Clone)]
struct SourceArgs {
    /// Warehouse written by `convert` (reads only the needed date partitions): its directory,
    /// or an object-store URL where a copy of it is (s3://bucket/warehouse).
    #[arg(long, value_name = "DIR|URL", conflicts_with_all = ["clickstream", "purchases"])]
    warehouse: Option<PathBuf>,
    /// Raw clickstream exports instead of a warehouse.
    #[arg(long, value_name = "PATH", requires = "purchases")]
    clickstream: Option<String>,
    /// Raw purchases exports instead of a warehouse.
    #[arg(long, value_name = "PATH", requires = "clickstream")]
    purchases: Option<String>,
    /// Field delimiter of raw text inputs.
    #[arg(long)]
    delimiter: Option<String>,
    /// How to compute the projection.
    #[arg(long, value_enum)]
    engine: Option<Engine>,
    /// How to express the marts.
    #[arg(long, value_enum)]
    api: Option<Api>,
    /// What to do with a bad row of raw exports [default: fail]; quarantined rows go to
    /// OUTPUT/_rejected/.
    #[arg(long, value_enum, value_name = "MODE")]
    on_bad_rows: Option<BadRows>,
}

impl SourceArgs {
    fn source(&self) -> Result<period::Source> {
        match (&self.warehouse, &self.clickstream, &self.purchases) {
            (Some(w), None, None) => Ok(period::Source::Warehouse(w.clone())),
            (None, Some(c), Some(p)) => Ok(period::Source::Raw {
                clickstream: c.clone(),
                purchases: p.clone(),
            }),
            _ => bail!("give --warehouse DIR, or --clickstream PATH and --purchases PATH"),
        }
    }

    fn inputs(&self) -> InputArgs {
        InputArgs {
            clickstream: self.clickstream.clone(),
            purchases: self.purchases.clone(),
            delimiter: self.delimiter.clone(),
            engine: self.engine,
            on_bad_rows: self.on_bad_rows,
            max_bad_rows: None,
        }
    }
}

#[derive(Args, Debug, Clone)]
struct PeriodRange {
    /// First date of the period (inclusive, YYYY-MM-DD).
    #[arg(long, requires = "to", conflicts_with = "day")]
    from: Option<String>,
    /// Last date of the period (inclusive).
    #[arg(long, requires = "from")]
    to: Option<String>,
    /// A single day.
    #[arg(long)]
    day: Option<String>,
    /// Days of clickstream read before the period, for sessions that started before it.
    #[arg(long, default_value_t = 1)]
    lookback: u32,
}

#[derive(Args, Debug)]
struct ConvertArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// Warehouse directory.
    #[arg(long, value_name = "DIR")]
    warehouse: PathBuf,
    /// Replace every date these files touch with their rows only, also a date that holds rows
    /// of files not in this conversion (which are then dropped). Without it such a conversion
    /// fails before it replaces any date.
    #[arg(long)]
    replace_dates: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct PeriodArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    range: PeriodRange,
    /// Output directory (gets top_campaigns/ and top_channels/).
    #[arg(long, short, value_name = "DIR")]
    output: PathBuf,
    /// From a warehouse, compute the projection from the clickstream and purchases partitions
    /// (with --lookback) instead of reading the one `convert` stored there.
    #[arg(long)]
    recompute: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct WeeklyArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// A quarter, such as 2020-Q4.
    #[arg(long, conflicts_with_all = ["from", "day"])]
    quarter: Option<String>,
    #[command(flatten)]
    range: PeriodRange,
    /// Output directory (gets weekly/).
    #[arg(long, short, value_name = "DIR")]
    output: PathBuf,
    /// From a warehouse, compute the projection from the clickstream and purchases partitions
    /// (with --lookback) instead of reading the one `convert` stored there.
    #[arg(long)]
    recompute: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct ExplainArgs {
    /// The job whose plans to show.
    #[arg(value_enum)]
    job: ExplainJob,
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    range: PeriodRange,
    /// Also run the query and show its metrics (EXPLAIN ANALYZE).
    #[arg(long)]
    analyze: bool,
    /// Write the plans to this Markdown file instead of printing them.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// YAML configuration file; flags given on the command line override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Cap on the process's memory (e.g. 512M, 2G), or `none`. The query engine's pool gets
    /// seven eighths of it (at most 1 GiB less; the rest is left to decoders, file buffers and
    /// the allocator, which no pool sees), and the events, sorts, aggregations and intermediate
    /// tables spill to disk beyond the pool [default: 70% of the host's memory].
    #[arg(long, value_name = "SIZE|none")]
    memory_limit: Option<String>,
    /// Run the queries on a Ballista cluster: its scheduler's address, df://HOST:PORT (see
    /// `marketing-analytics cluster --help`) [default: in this process].
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,
    /// Where intermediate files go (decoded inputs and intermediate tables that executors read,
    /// or that a run under --memory-limit keeps on disk): a path or an object-store URL such as
    /// s3://bucket/tmp that every executor reaches [default: a hidden directory beside the
    /// output, removed afterwards].
    #[arg(long, value_name = "URL")]
    scratch: Option<String>,
    /// Replace an output (or write into a warehouse directory) that marketing-analytics did not
    /// write. Without it such a path is left alone and the command fails before any work; an
    /// output that is, contains or lies inside an input is refused even with it.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args, Debug, Clone, Default)]
struct InputArgs {
    /// Clickstream input: a file, a directory of files or a glob (CSV/TSV, .gz, Parquet).
    #[arg(long, value_name = "PATH")]
    clickstream: Option<String>,
    /// Purchases input: a file, a directory of files or a glob (CSV/TSV, .gz, Parquet).
    #[arg(long, value_name = "PATH")]
    purchases: Option<String>,
    /// Field delimiter of text inputs: one character or `tab` [default: tab for .tsv, else comma].
    #[arg(long)]
    delimiter: Option<String>,
    /// How to compute the projection.
    #[arg(long, value_enum)]
    engine: Option<Engine>,
    /// What to do with a bad input row [default: fail].
    #[arg(long, value_enum, value_name = "MODE")]
    on_bad_rows: Option<BadRows>,
    /// With --on-bad-rows quarantine, the bad rows a table may have before the job fails
    /// instead of committing: a count (100) or a share of its rows (0.5%) [default: all but
    /// every row: a table whose rows are all bad fails the job].
    #[arg(long, value_name = "N|P%")]
    max_bad_rows: Option<String>,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// Output directory [default: out].
    #[arg(long, short, value_name = "DIR")]
    output: Option<PathBuf>,
    /// How to express the marts.
    #[arg(long, value_enum)]
    api: Option<Api>,
    /// Partition the projection by the date of purchaseTime (date=YYYY-MM-DD/ folders).
    #[arg(long, value_enum)]
    partition_by: Option<PartitionBy>,
    #[command(flatten)]
    common: Common,
}

/// How to partition the projection dataset.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum PartitionBy {
    /// One folder per date of purchaseTime.
    Date,
}

#[derive(Args, Debug)]
struct AttributionArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// Output dataset directory of the projection.
    #[arg(long, short, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Partition the projection by the date of purchaseTime (date=YYYY-MM-DD/ folders).
    #[arg(long, value_enum)]
    partition_by: Option<PartitionBy>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct MartArgs {
    /// The projection: a Parquet dataset directory, file or glob.
    #[arg(long, short, value_name = "PATH")]
    input: Option<String>,
    /// Output dataset directory of the mart.
    #[arg(long, short, value_name = "DIR")]
    output: Option<PathBuf>,
    /// How to express the mart.
    #[arg(long, value_enum)]
    api: Option<Api>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct GenerateArgs {
    /// Number of users.
    #[arg(long, default_value_t = 1000)]
    users: u64,
    /// Output directory (gets mobile_app_clickstream/, user_purchases/ and truth/).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Number of clickstream files, and of purchases files.
    #[arg(long, default_value_t = 4)]
    files: usize,
    /// Random seed: the same seed gives the same files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Sessions per user are drawn from 1..=N.
    #[arg(long, default_value_t = 4)]
    max_sessions: u32,
    /// First day of activity (YYYY-MM-DD).
    #[arg(long, default_value = "2020-08-25")]
    start: String,
    /// Days of activity.
    #[arg(long, default_value_t = 100)]
    days: u32,
    /// Distinct campaigns.
    #[arg(long, default_value_t = 60)]
    campaigns: u32,
    /// No mess: every session closed, every purchase matched, no duplicates, one text style.
    #[arg(long)]
    clean: bool,
    /// Rate of sessions without app_close.
    #[arg(long)]
    unclosed_rate: Option<f64>,
    /// Rate of duplicated clickstream rows.
    #[arg(long)]
    duplicate_rate: Option<f64>,
    /// Rate of purchase events outside sessions.
    #[arg(long)]
    outside_rate: Option<f64>,
    /// Rate of users whose events are spread over several files.
    #[arg(long)]
    split_rate: Option<f64>,
    /// Do not write the ground truth.
    #[arg(long)]
    no_truth: bool,
    /// Replace an --out directory that marketing-analytics did not write. A dataset it
    /// generated is replaced as a whole, so no file of an earlier dataset stays.
    #[arg(long)]
    overwrite: bool,
}

fn init_logging(verbose: u8, quiet: u8) {
    let level = match (verbose as i8) - (quiet as i8) {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MARKETING_ANALYTICS_LOG")
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("marketing_analytics={level},warn"))
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

fn load_config(common: &Common) -> Result<Config> {
    match &common.config {
        Some(path) => Ok(Config::load(path)?),
        None => Ok(Config::default()),
    }
}

fn settings(
    cli: &Cli,
    common: &Common,
    config: &Config,
    inputs: Option<&InputArgs>,
    api: Option<Api>,
) -> Result<Settings> {
    let delimiter = inputs
        .and_then(|i| i.delimiter.clone())
        .or_else(|| config.delimiter.clone())
        .map(|d| parse_delimiter(&d))
        .transpose()?;
    let threads = common
        .threads
        .or(config.threads)
        .unwrap_or_else(marketing_analytics::context::default_threads);
    let memory_limit = common
        .memory_limit
        .clone()
        .or_else(|| config.memory_limit.clone())
        .map(|s| marketing_analytics::context::parse_memory_limit(&s))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--memory-limit: {e}"))?
        .unwrap_or_else(marketing_analytics::context::default_memory_limit);
    marketing_analytics::context::check_limits(threads, memory_limit)
        .map_err(anyhow::Error::msg)?;
    Ok(Settings {
        engine: inputs
            .and_then(|i| i.engine)
            .or(config.engine)
            .unwrap_or_default(),
        api: api.or(config.api).unwrap_or_default(),
        threads,
        delimiter,
        progress: cli.quiet == 0 && std::io::stderr().is_terminal(),
        memory_limit,
        on_bad_rows: inputs
            .and_then(|i| i.on_bad_rows)
            .or(config.on_bad_rows)
            .unwrap_or_default(),
        run_id: run_id().to_string(),
        cluster: common
            .cluster
            .clone()
            .or_else(|| config.cluster.clone())
            .map(|u| marketing_analytics::cluster::parse_url(&u))
            .transpose()?,
        scratch: common.scratch.clone().or_else(|| config.scratch.clone()),
        overwrite: common.overwrite,
        cluster_token: marketing_analytics::cluster::auth::token_from_env(),
        max_bad_rows: inputs
            .and_then(|i| i.max_bad_rows.clone())
            .map(|s| marketing_analytics::input::BadRowLimit::parse(&s))
            .transpose()
            .map_err(anyhow::Error::msg)?,
        ..Settings::default()
    })
}

/// This invocation's run id, the same in every log line and in summary.json.
fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(pipeline::new_run_id)
}

/// Writes a line to stdout; a closed pipe (`| head`) ends the output quietly, not in a panic.
fn say(text: impl std::fmt::Display) -> Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}

/// Text cells longer than this are cut in printed tables (the Parquet files keep them whole):
/// a table of a 10 MB campaign id took 38 s to lay out and helped no one read it.
const CELL_CHARS: usize = 60;

fn print_table(title: &str, batches: &[RecordBatch]) -> Result<()> {
    say(title)?;
    say(pretty_format_batches(&cut_wide_cells(batches)?)?)
}

/// `batches` with every text value longer than [`CELL_CHARS`] cut, ending in `…`.
fn cut_wide_cells(batches: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
    use datafusion::arrow::datatypes::DataType;
    let cut = |s: &str| -> String {
        match s.char_indices().nth(CELL_CHARS - 1) {
            Some((at, _)) if s.chars().count() > CELL_CHARS => format!("{}…", &s[..at]),
            _ => s.to_string(),
        }
    };
    batches
        .iter()
        .map(|batch| {
            let columns = batch
                .columns()
                .iter()
                .map(|c| match c.data_type() {
                    DataType::Utf8 => {
                        let text = c.as_string::<i32>();
                        Arc::new(text.iter().map(|v| v.map(cut)).collect::<StringArray>())
                            as ArrayRef
                    }
                    _ => c.clone(),
                })
                .collect::<Vec<_>>();
            Ok(RecordBatch::try_new(batch.schema(), columns)?)
        })
        .collect()
}

/// The clickstream and purchases inputs, from the flags or else the config.
fn raw_inputs(inputs: &InputArgs, config: &Config, command: &str) -> Result<(String, String)> {
    let clickstream = inputs.clickstream.clone().or(config.clickstream.clone());
    let purchases = inputs.purchases.clone().or(config.purchases.clone());
    Ok((
        require(
            clickstream,
            "--clickstream",
            "clickstream (or input_clickstream)",
            command,
        )?,
        require(
            purchases,
            "--purchases",
            "purchases (or input_purchases)",
            command,
        )?,
    ))
}

fn require(value: Option<String>, flag: &str, key: &str, command: &str) -> Result<String> {
    value.with_context(|| format!("{command}: give {flag} or set `{key}` in the --config file"))
}

async fn run(cli: &Cli, args: &RunArgs) -> Result<()> {
    let config = load_config(&args.common)?;
    let mut settings = settings(cli, &args.common, &config, Some(&args.inputs), args.api)?;
    let clickstream = args
        .inputs
        .clickstream
        .clone()
        .or(config.clickstream.clone());
    let purchases = args.inputs.purchases.clone().or(config.purchases.clone());
    let output = args
        .output
        .clone()
        .or(config.output.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("out"));
    // Keeps the built-in dataset alive until the run is over.
    let mut _default_dataset = None;
    let (clickstream, purchases) = match (clickstream, purchases) {
        (Some(c), Some(p)) => (c, p),
        (None, None) => {
            let dir = tempfile::tempdir()
                .context("creating a temporary directory for the built-in dataset")?;
            let opts = generate::Options {
                users: 2000,
                truth: false,
                ..generate::Options::default()
            };
            let g = generate::generate(&opts, dir.path())?;
            info!(
                events = g.events,
                purchase_rows = g.purchase_rows,
                "no inputs given: running on the built-in dataset ({} users generated with seed {}); \
                 pass --clickstream and --purchases for your own data",
                opts.users,
                opts.seed
            );
            let paths = (
                g.clickstream_dir.display().to_string(),
                g.purchases_dir.display().to_string(),
            );
            settings.input_label = Some((
                dir.path().to_path_buf(),
                format!(
                    "built-in dataset ({} users, seed {})",
                    opts.users, opts.seed
                ),
            ));
            _default_dataset = Some(dir);
            paths
        }
        (Some(_), None) => bail!("run: --clickstream is given but --purchases is not"),
        (None, Some(_)) => bail!("run: --purchases is given but --clickstream is not"),
    };
    let report = pipeline::run_all(&settings, &clickstream, &purchases, &output).await?;
    print_table("Top campaigns by confirmed revenue", &report.top_campaigns)?;
    print_table(
        "Top channel of each campaign by unique sessions",
        &report.top_channels,
    )?;
    let c = &report.summary.counts;
    say(format!(
        "{} events and {} purchases rows read; {} purchases attributed. Outputs and summary.json in {}",
        c.events,
        c.purchase_rows,
        c.attributed_purchases,
        output.display()
    ))?;
    Ok(())
}

async fn attribution(cli: &Cli, args: &AttributionArgs) -> Result<()> {
    let config = load_config(&args.common)?;
    let settings = settings(cli, &args.common, &config, Some(&args.inputs), None)?;
    let (clickstream, purchases) = raw_inputs(&args.inputs, &config, "attribution")?;
    let output = require(
        args.output
            .as_ref()
            .map(|p| p.display().to_string())
            .or(config.output.clone()),
        "--output",
        "output",
        "attribution",
    )?;
    let report = pipeline::attribution_job(
        &settings,
        &clickstream,
        &purchases,
        Path::new(&output),
        None,
    )
    .await?;
    say(format!(
        "{} purchases attributed; the projection is in {output}, its summary in {output}/{}",
        report.projection_rows,
        marketing_analytics::output::SUCCESS_MARKER
    ))?;
    Ok(())
}

async fn mart(cli: &Cli, args: &MartArgs, mart: Mart) -> Result<()> {
    let config = load_config(&args.common)?;
    let settings = settings(cli, &args.common, &config, None, args.api)?;
    let command = mart.name().replace('_', "-");
    let input = require(
        args.input.clone().or(config.input.clone()),
        "--input",
        "input",
        &command,
    )?;
    let output = require(
        args.output
            .as_ref()
            .map(|p| p.display().to_string())
            .or(config.output.clone()),
        "--output",
        "output",
        &command,
    )?;
    let batches = pipeline::mart_job(&settings, mart, &input, Path::new(&output)).await?;
    print_table(&command, &batches)?;
    Ok(())
}

fn generate_cmd(args: &GenerateArgs) -> Result<()> {
    let start = marketing_analytics::input::values::parse_timestamp_micros(
        format!("{} 00:00:00", args.start).as_bytes(),
    )
    .with_context(|| format!("--start {:?} is not a date YYYY-MM-DD", args.start))?;
    let mut mess = if args.clean {
        Mess::clean()
    } else {
        Mess::messy()
    };
    for (rate, slot) in [
        (args.unclosed_rate, &mut mess.unclosed),
        (args.duplicate_rate, &mut mess.duplicate_event),
        (args.outside_rate, &mut mess.outside_session),
        (args.split_rate, &mut mess.split_user),
    ] {
        if let Some(r) = rate {
            if !(0.0..=1.0).contains(&r) {
                bail!("rates are probabilities between 0 and 1, got {r}");
            }
            *slot = r;
        }
    }
    let opts = generate::Options {
        users: args.users,
        files: args.files,
        seed: args.seed,
        max_sessions: args.max_sessions,
        start_day: start.div_euclid(86_400_000_000),
        days: args.days,
        campaigns: args.campaigns,
        mess,
        truth: !args.no_truth,
    };
    let started = std::time::Instant::now();
    let g = generate::generate_output(&opts, &args.out, args.overwrite)?;
    say(format!(
        "{} clickstream rows in {}, {} purchases rows in {}{} ({:.1} s)",
        g.events,
        g.clickstream_dir.display(),
        g.purchase_rows,
        g.purchases_dir.display(),
        g.truth_dir
            .map(|d| format!(", ground truth in {}", d.display()))
            .unwrap_or_default(),
        started.elapsed().as_secs_f64()
    ))?;
    Ok(())
}

/// Settings of a command that reads a warehouse or raw exports.
fn source_settings(cli: &Cli, common: &Common, source: &SourceArgs) -> Result<Settings> {
    let config = load_config(common)?;
    settings(cli, common, &config, Some(&source.inputs()), source.api)
}

fn period_of(range: &PeriodRange) -> Result<Option<period::Period>> {
    if range.from.is_none() && range.day.is_none() {
        return Ok(None);
    }
    Ok(Some(period::Period::parse(
        range.from.as_deref(),
        range.to.as_deref(),
        range.day.as_deref(),
        range.lookback,
    )?))
}

/// Refuses `--cluster` for a command that runs in this process only.
fn local_only(common: &Common, command: &str) -> Result<()> {
    if common.cluster.is_some() {
        bail!("{command} runs in this process: drop --cluster");
    }
    Ok(())
}

async fn convert_cmd(cli: &Cli, args: &ConvertArgs) -> Result<()> {
    // Converting is the step that makes raw exports readable by a cluster, so it is local.
    local_only(&args.common, "convert")?;
    let config = load_config(&args.common)?;
    let mut settings = settings(cli, &args.common, &config, Some(&args.inputs), None)?;
    settings.cluster = None;
    settings.replace_dates = args.replace_dates;
    let (clickstream, purchases) = raw_inputs(&args.inputs, &config, "convert")?;
    let report = warehouse::convert(&settings, &clickstream, &purchases, &args.warehouse).await?;
    let rows = |d: &[(String, u64)]| d.iter().map(|x| x.1).sum::<u64>();
    say(format!(
        "{} clickstream rows in {} dates, {} purchases rows in {} dates written to {}; the \
         projection of the whole warehouse stored ({} rows)",
        rows(&report.clickstream_dates),
        report.clickstream_dates.len(),
        rows(&report.purchases_dates),
        report.purchases_dates.len(),
        args.warehouse.display(),
        report.projection_rows
    ))?;
    Ok(())
}

async fn period_cmd(cli: &Cli, args: &PeriodArgs) -> Result<()> {
    let mut settings = source_settings(cli, &args.common, &args.source)?;
    settings.stored_projection = !args.recompute;
    let range = period_of(&args.range)?.context("give --from and --to, or --day")?;
    let (campaigns, channels) =
        period::period_job(&settings, &args.source.source()?, &range, &args.output).await?;
    print_table(&format!("Top campaigns, {}", range.describe()), &campaigns)?;
    print_table(
        &format!("Top channel of each campaign, {}", range.describe()),
        &channels,
    )?;
    Ok(())
}

async fn weekly_cmd(cli: &Cli, args: &WeeklyArgs) -> Result<()> {
    let mut settings = source_settings(cli, &args.common, &args.source)?;
    settings.stored_projection = !args.recompute;
    let range = match &args.quarter {
        Some(q) => period::Period::quarter(q, args.range.lookback)?,
        None => period_of(&args.range)?.context("give --quarter, or --from and --to")?,
    };
    let batches =
        period::weekly_job(&settings, &args.source.source()?, &range, &args.output).await?;
    print_table(&format!("Weekly purchases, {}", range.describe()), &batches)?;
    Ok(())
}

async fn explain_cmd(cli: &Cli, args: &ExplainArgs) -> Result<()> {
    local_only(&args.common, "explain")?;
    let mut settings = source_settings(cli, &args.common, &args.source)?;
    settings.cluster = None;
    let range = period_of(&args.range)?;
    let explained = explain::explain(
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
            if path.exists() && !args.common.overwrite {
                bail!(
                    "--markdown {} exists: give --overwrite to replace it, or another file",
                    path.display()
                );
            }
            std::fs::write(path, explained.markdown())
                .with_context(|| format!("writing {}", path.display()))?;
            say(format!("plans written to {}", path.display()))?;
        }
        None => say(explained.markdown())?,
    }
    Ok(())
}

async fn cluster_cmd(command: &ClusterCommand) -> Result<()> {
    use marketing_analytics::cluster;
    match command {
        ClusterCommand::Scheduler {
            bind,
            executor_timeout,
            insecure,
        } => {
            if *executor_timeout < 2 {
                bail!("--executor-timeout must be at least 2 seconds");
            }
            cluster::scheduler(&cluster::SchedulerOptions {
                bind: bind.clone(),
                executor_timeout_secs: *executor_timeout,
                token: cluster::auth::token_from_env(),
                insecure: *insecure,
            })
            .await?
        }
        ClusterCommand::Executor {
            scheduler,
            bind,
            concurrent_tasks,
            work_dir,
            heartbeat_interval,
            memory_limit,
            insecure,
        } => {
            if *concurrent_tasks == Some(0) {
                bail!("--concurrent-tasks must be at least 1");
            }
            if *heartbeat_interval == 0 {
                bail!("--heartbeat-interval must be at least 1 second");
            }
            let memory_limit = memory_limit
                .as_deref()
                .map(marketing_analytics::context::parse_size)
                .transpose()
                .map_err(|e| anyhow::anyhow!("--memory-limit: {e}"))?;
            cluster::executor(&cluster::ExecutorOptions {
                scheduler: scheduler.clone(),
                bind: bind.clone(),
                concurrent_tasks: *concurrent_tasks,
                work_dir: work_dir.clone(),
                heartbeat_secs: *heartbeat_interval,
                memory_limit,
                insecure: *insecure,
            })
            .await?
        }
    }
    Ok(())
}

/// Turns transparent huge pages off for this process, as `MIMALLOC_ALLOW_THP=0` would (which
/// mimalloc reads before `main`, so it cannot be set from here).
///
/// mimalloc asks for huge pages and gives memory back in 64 KiB pieces, so the kernel splits
/// huge pages and faults fresh ones in, zeroing 2 MiB each time: on the benchmark machine that
/// zeroing was over a third of the CPU time of a warehouse query and the system time of `run`
/// halved without it (docs/performance.md, sixth round). Setting `MIMALLOC_ALLOW_THP` keeps
/// the user's choice.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes integers and touches no memory of ours. Failing
        // (an old kernel) only leaves the default, so the result is ignored.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1 as libc::c_ulong, 0, 0, 0);
        }
    }
}

/// On SIGTERM or SIGINT, removes what the job has under way (staging, scratch, spill files,
/// its lock: see `cleanup`) and exits with 128 + the signal's number, as a shell reports it.
/// The previous outputs are untouched: nothing was committed. The handlers are installed here,
/// before any work; the returned task waits for a signal.
fn stop_on_signal() -> Option<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok()?;
    let mut int = signal(SignalKind::interrupt()).ok()?;
    Some(async move {
        let code = tokio::select! {
            _ = term.recv() => 143,
            _ = int.recv() => 130,
        };
        let left = marketing_analytics::cleanup::remove_all();
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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    if let Some(waiting) = stop_on_signal() {
        tokio::spawn(waiting);
    }
    // Every log line of this invocation carries its run id (and, below it, the job's name).
    let span = tracing::info_span!("run", id = %run_id());
    let result = async {
        match &cli.command {
            Command::Run(a) => run(&cli, a).await,
            Command::Attribution(a) => attribution(&cli, a).await,
            Command::TopCampaigns(a) => mart(&cli, a, Mart::TopCampaigns).await,
            Command::TopChannels(a) => mart(&cli, a, Mart::TopChannels).await,
            Command::Generate(a) => generate_cmd(a),
            Command::Convert(a) => convert_cmd(&cli, a).await,
            Command::Period(a) => period_cmd(&cli, a).await,
            Command::Weekly(a) => weekly_cmd(&cli, a).await,
            Command::Explain(a) => explain_cmd(&cli, a).await,
            Command::Cluster(c) => cluster_cmd(c).await,
        }
    }
    .instrument(span)
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if format!("{e:#}").contains("Resources exhausted") {
                eprintln!(
                    "hint: the job needed more memory than --memory-limit allows: raise the limit, \
                     or lower --threads (each thread's sorts and aggregations need a share of it)"
                );
            }
            std::process::ExitCode::FAILURE
        }
    }
}
