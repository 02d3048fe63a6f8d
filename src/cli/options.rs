//! Argument groups shared by the commands, each defined once, and the one place where parsed
//! flags (and the config's keys, which reach clap as flags: see `config`) become the library's
//! [`Settings`]. Values are checked by clap's value parsers while parsing, so a bad
//! `--threads` or `--memory-limit` fails as a usage error naming the flag, before any work.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Args;

use crate::app::period::{Period, Source};
use crate::app::Settings;
use crate::attribution::Engine;
use crate::input::{parse_delimiter, BadRowLimit, BadRows};
use crate::marts::Api;

/// Runtime options of every command that runs queries.
#[derive(Args, Debug, Clone)]
pub struct Runtime {
    /// YAML configuration file: its keys are these flags' names (`memory_limit: 2G`); flags
    /// given on the command line override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Worker threads, at most four per core [default: all cores].
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,
    /// Cap on the process's memory (e.g. 512M, 2G), or `none`. The query engine's pool gets
    /// seven eighths of it (at most 1 GiB less; the rest is left to decoders, file buffers and
    /// the allocator, which no pool sees), and the events, sorts, aggregations and intermediate
    /// tables spill to disk beyond the pool [default: 70% of the host's memory].
    #[arg(long, value_name = "SIZE|none", value_parser = parse_memory_limit)]
    pub memory_limit: Option<MemoryLimit>,
    /// Where intermediate files go (decoded inputs and intermediate tables that executors read,
    /// or that a run under --memory-limit keeps on disk): a path or an object-store URL such as
    /// s3://bucket/tmp that every executor reaches [default: a hidden directory beside the
    /// output, removed afterwards].
    #[arg(long, value_name = "URL")]
    pub scratch: Option<String>,
    /// Replace an output (or write into a warehouse directory) that marketing-analytics did not
    /// write. Without it such a path is left alone and the command fails before any work; an
    /// output that is, contains or lies inside an input is refused even with it.
    #[arg(long)]
    pub overwrite: bool,
}

/// `--cluster`, for the commands that can run on one.
#[derive(Args, Debug, Clone)]
pub struct ClusterArg {
    /// Run the queries on a Ballista cluster: its scheduler's address, df://HOST:PORT (see
    /// `marketing-analytics cluster --help`) [default: in this process].
    #[arg(long, value_name = "URL", value_parser = parse_cluster)]
    pub cluster: Option<String>,
}

/// The raw exports and how to read them.
#[derive(Args, Debug, Clone, Default)]
pub struct Inputs {
    /// Clickstream input: a file, a directory of files or a glob (CSV/TSV, .gz, Parquet).
    #[arg(long, value_name = "PATH")]
    pub clickstream: Option<String>,
    /// Purchases input: a file, a directory of files or a glob (CSV/TSV, .gz, Parquet).
    #[arg(long, value_name = "PATH")]
    pub purchases: Option<String>,
    #[command(flatten)]
    pub reading: Reading,
}

impl Inputs {
    /// Both inputs, or an error naming the missing one.
    pub fn both(&self, command: &str) -> anyhow::Result<(String, String)> {
        let need = |value: &Option<String>, flag: &str| {
            value.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "{command}: give --{flag} or set `{flag}` (or `input_{flag}`) in the --config file"
                )
            })
        };
        Ok((
            need(&self.clickstream, "clickstream")?,
            need(&self.purchases, "purchases")?,
        ))
    }
}

/// How raw text exports are read, and what a bad row does.
#[derive(Args, Debug, Clone, Default)]
pub struct Reading {
    /// Field delimiter of text inputs: one character or `tab` [default: tab for .tsv, else comma].
    #[arg(long, value_name = "CHAR", value_parser = parse_delimiter_arg)]
    pub delimiter: Option<u8>,
    /// What to do with a bad input row: quarantined rows go to OUTPUT/_rejected/ (a
    /// warehouse's WAREHOUSE/_rejected/RUN_ID/).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = BadRows::Fail)]
    pub on_bad_rows: BadRows,
    /// With --on-bad-rows quarantine, the bad rows a table may have before the job fails
    /// instead of committing: a count (100) or a share of its rows (0.5%) [default: all but
    /// every row: a table whose rows are all bad fails the job].
    #[arg(long, value_name = "N|P%", value_parser = BadRowLimit::parse)]
    pub max_bad_rows: Option<BadRowLimit>,
}

/// `--engine`.
#[derive(Args, Debug, Clone)]
pub struct EngineArg {
    /// How to compute the projection (every engine gives the same rows).
    #[arg(long, value_enum, default_value_t = Engine::Udaf)]
    pub engine: Engine,
}

/// `--api`.
#[derive(Args, Debug, Clone)]
pub struct ApiArg {
    /// How to express the marts (every API gives the same rows).
    #[arg(long, value_enum, default_value_t = Api::Sql)]
    pub api: Api,
}

/// A warehouse, or raw exports, as the source of a period.
#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// Warehouse written by `convert` (reads only the needed date partitions): its directory,
    /// or an object-store URL where a copy of it is (s3://bucket/warehouse).
    #[arg(long, value_name = "DIR|URL", conflicts_with_all = ["clickstream", "purchases"])]
    pub warehouse: Option<PathBuf>,
    /// Raw clickstream exports instead of a warehouse.
    #[arg(long, value_name = "PATH", requires = "purchases")]
    pub clickstream: Option<String>,
    /// Raw purchases exports instead of a warehouse.
    #[arg(long, value_name = "PATH", requires = "clickstream")]
    pub purchases: Option<String>,
}

impl SourceArgs {
    pub fn source(&self) -> anyhow::Result<Source> {
        match (&self.warehouse, &self.clickstream, &self.purchases) {
            (Some(w), None, None) => Ok(Source::Warehouse(w.clone())),
            (None, Some(c), Some(p)) => Ok(Source::Raw {
                clickstream: c.clone(),
                purchases: p.clone(),
            }),
            _ => anyhow::bail!(
                "give --warehouse DIR, or --clickstream PATH and --purchases PATH (flags or \
                 config keys)"
            ),
        }
    }
}

/// A range of dates.
#[derive(Args, Debug, Clone)]
pub struct PeriodRange {
    /// First date of the period (inclusive, YYYY-MM-DD).
    #[arg(long, value_name = "DATE", requires = "to", value_parser = parse_day)]
    pub from: Option<i32>,
    /// Last date of the period (inclusive, YYYY-MM-DD).
    #[arg(long, value_name = "DATE", requires = "from", value_parser = parse_day)]
    pub to: Option<i32>,
    /// A single day (YYYY-MM-DD).
    #[arg(long, value_name = "DATE", conflicts_with_all = ["from", "to"], value_parser = parse_day)]
    pub day: Option<i32>,
    /// Days of clickstream read before the period, for sessions that started before it.
    #[arg(long, value_name = "DAYS", default_value_t = 1)]
    pub lookback: u32,
}

impl PeriodRange {
    /// The period given, or `None` when no date was.
    pub fn period(&self) -> anyhow::Result<Option<Period>> {
        if (self.from, self.to, self.day) == (None, None, None) {
            return Ok(None);
        }
        Ok(Some(Period::choose(
            self.from,
            self.to,
            self.day,
            self.lookback,
        )?))
    }
}

/// `--memory-limit`: bytes, or no cap at all (`none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimit(pub Option<usize>);

fn parse_memory_limit(s: &str) -> Result<MemoryLimit, String> {
    crate::engine::parse_memory_limit(s).map(MemoryLimit)
}

fn parse_threads(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of threads"))?;
    crate::engine::check_limits(n, None)
        .map(|()| n)
        .map_err(|e| e.to_string())
}

fn parse_delimiter_arg(s: &str) -> Result<u8, String> {
    parse_delimiter(s).map_err(|e| e.to_string())
}

fn parse_cluster(s: &str) -> Result<String, String> {
    crate::cluster::parse_url(s).map_err(|e| e.to_string())
}

pub(crate) fn parse_day(s: &str) -> Result<i32, String> {
    crate::calendar::parse_date(s).map_err(|e| e.to_string())
}

/// Whether a progress bar may be drawn: on a terminal, and not under `-q`.
pub fn progress(quiet: u8) -> bool {
    quiet == 0 && std::io::stderr().is_terminal()
}

/// The library's settings from the parsed options: the one place they are filled.
pub fn settings(
    quiet: u8,
    runtime: &Runtime,
    cluster: Option<&ClusterArg>,
    reading: Option<&Reading>,
    engine: Option<&EngineArg>,
    api: Option<&ApiArg>,
) -> anyhow::Result<Settings> {
    let threads = runtime
        .threads
        .unwrap_or_else(crate::engine::default_threads);
    let memory_limit = match runtime.memory_limit {
        Some(MemoryLimit(limit)) => limit,
        None => crate::engine::default_memory_limit(),
    };
    crate::engine::check_limits(threads, memory_limit)?;
    let reading = reading.cloned().unwrap_or_default();
    Ok(Settings {
        engine: engine.map(|e| e.engine).unwrap_or_default(),
        api: api.map(|a| a.api).unwrap_or_default(),
        threads,
        delimiter: reading.delimiter,
        progress: progress(quiet),
        memory_limit,
        on_bad_rows: reading.on_bad_rows,
        max_bad_rows: reading.max_bad_rows,
        run_id: super::run_id().to_string(),
        cluster: cluster.and_then(|c| c.cluster.clone()),
        scratch: runtime.scratch.clone(),
        overwrite: runtime.overwrite,
        cluster_token: crate::cluster::auth::token_from_env(),
        ..Settings::default()
    })
}
