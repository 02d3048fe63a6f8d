//! `marketing-analytics sql`: DataFusion SQL over runs' outputs and a warehouse (read only).
//!
//! ```text
//! marketing-analytics sql --output out "SELECT * FROM top_campaigns LIMIT 3"
//! marketing-analytics sql --warehouse wh -f query.sql --format csv
//! echo "SELECT count(*) FROM clickstream WHERE date = '2020-09-01'" | marketing-analytics sql --warehouse wh
//! marketing-analytics sql --output out --format parquet --out top.parquet "SELECT …"
//! ```

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{bail, Context};
use datafusion::arrow::array::RecordBatch;

use super::options::{settings, ClusterArg, Runtime};
use super::print::{print_rows, say, RowFormat};
use super::Cli;
use crate::app::sql::{run_statements, sql_context, Sources};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The query: one statement, or several separated by `;` [default: read from -f FILE, else
    /// from stdin, or an interactive prompt when stdin is a terminal].
    #[arg(value_name = "QUERY")]
    pub query: Option<String>,
    /// Read the statements from this file.
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        conflicts_with = "query"
    )]
    pub file: Option<PathBuf>,
    /// A run's output directory: its datasets become tables (purchases_attribution,
    /// top_campaigns, …, summary). Repeat it to query several runs: each run's tables are
    /// then also in a schema named after its folder (`sep.top_campaigns`).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: Vec<PathBuf>,
    /// A warehouse: tables clickstream, purchases and projection, with their `date` partition
    /// column (filter on it to read only those partitions).
    #[arg(long, value_name = "DIR")]
    pub warehouse: Option<PathBuf>,
    /// How results are printed: table, csv, json (an array of rows), ndjson (a row per line),
    /// or parquet (written to --out FILE).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = RowFormat::Table)]
    pub format: RowFormat,
    /// The file --format parquet writes (refused if something is there already).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub runtime: Runtime,
    #[command(flatten)]
    pub cluster: ClusterArg,
}

pub async fn run(cli: &Cli, args: &Args) -> anyhow::Result<()> {
    if args.output.is_empty() && args.warehouse.is_none() {
        bail!("sql: give --output DIR (a run's outputs) or --warehouse DIR, or both");
    }
    match (args.format, &args.out) {
        (RowFormat::Parquet, None) => bail!("sql: --format parquet writes a file: give --out FILE"),
        (RowFormat::Parquet, Some(out)) if out.exists() || out.is_symlink() => bail!(
            "sql: {} exists already: --out names a new file (nothing is replaced)",
            out.display()
        ),
        (f, Some(_)) if f != RowFormat::Parquet => {
            bail!("sql: --out is for --format parquet; the other formats print on stdout")
        }
        _ => {}
    }
    let settings = settings(
        cli.quiet,
        &args.runtime,
        Some(&args.cluster),
        None,
        None,
        None,
    )?;
    let sources = Sources {
        outputs: args.output.clone(),
        warehouse: args.warehouse.clone(),
    };
    let (ctx, tables) = sql_context(&settings, &sources).await?;
    let text = match (&args.query, &args.file) {
        (Some(q), _) => q.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        (None, None) if std::io::stdin().is_terminal() => {
            return interactive(&ctx, &tables, args.format).await;
        }
        (None, None) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the query from stdin")?;
            text
        }
    };
    let frames = run_statements(&ctx, &text, &tables).await?;
    if args.format == RowFormat::Parquet {
        let [frame] = <[_; 1]>::try_from(frames)
            .map_err(|_| anyhow::anyhow!("sql: --format parquet writes one query's rows"))?;
        let Some(out) = &args.out else {
            bail!("sql: --format parquet needs --out FILE");
        };
        let rows = crate::storage::output::write_new_parquet(frame, out).await?;
        eprintln!("{rows} rows written to {}", out.display());
        return Ok(());
    }
    for frame in frames {
        let batches: Vec<RecordBatch> = frame.collect().await?;
        print_rows(args.format, &batches)?;
    }
    Ok(())
}

/// A prompt on the terminal: each line (or lines up to a `;`) is run; `\d` lists the tables,
/// `\q` or end of input leaves. History is kept for the session.
async fn interactive(
    ctx: &datafusion::prelude::SessionContext,
    tables: &[String],
    format: RowFormat,
) -> anyhow::Result<()> {
    let mut editor = rustyline::DefaultEditor::new().context("starting the prompt")?;
    say(format!(
        "tables: {}\nend a statement with ;  \\d lists the tables  \\q quits",
        tables.join(", ")
    ))?;
    let mut statement = String::new();
    loop {
        let prompt = if statement.is_empty() {
            "sql> "
        } else {
            "...> "
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                statement.clear();
                continue;
            }
            Err(rustyline::error::ReadlineError::Eof) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let trimmed = line.trim();
        if statement.is_empty() {
            match trimmed {
                "" => continue,
                "\\q" | "quit" | "exit" => return Ok(()),
                "\\d" => {
                    say(tables.join("\n"))?;
                    continue;
                }
                _ => {}
            }
        }
        statement.push_str(&line);
        statement.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let _ = editor.add_history_entry(statement.trim_end());
        let text = std::mem::take(&mut statement);
        match run_statements(ctx, &text, tables).await {
            Ok(frames) => {
                for frame in frames {
                    match frame.collect().await {
                        Ok(batches) => print_rows(format, &batches)?,
                        Err(e) => eprintln!("error: {e}"),
                    }
                }
            }
            Err(e) => eprintln!("error: {e}"),
        }
    }
}
