//! What the commands print on stdout: result tables in the `--format` asked for, and lines.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

/// How result tables are printed (`--format`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// Aligned text tables, for people.
    #[default]
    Table,
    /// Each table as CSV with a header line; tables are separated by an empty line.
    Csv,
    /// One JSON object per table and line: {"table": NAME, "title": TITLE, "rows": [{…}]}.
    Json,
}

/// `--format`, for the commands that print result tables.
#[derive(clap::Args, Debug, Clone)]
pub struct FormatArg {
    /// How result tables are printed on stdout: table (for people), csv, or json (one object
    /// per table and line). With csv or json, the lines about what was done go to stderr.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Format::Table, help_heading = "Output")]
    pub format: Format,
}

impl FormatArg {
    /// Makes it the format of every table this process prints.
    pub fn apply(&self) {
        set_format(self.format);
    }
}

static FORMAT: OnceLock<Format> = OnceLock::new();

/// Sets the format of every table this process prints (once, from the command line).
pub fn set_format(format: Format) {
    let _ = FORMAT.set(format);
}

fn format() -> Format {
    FORMAT.get().copied().unwrap_or_default()
}

/// Writes a line to stdout; a closed pipe (`| head`) ends the output quietly, not in a panic.
pub fn say(text: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}

/// A line for people about what was done ("outputs in …"): on stdout beside tables, on stderr
/// when the tables are CSV or JSON, so stdout holds only them.
pub fn note(text: impl std::fmt::Display) -> anyhow::Result<()> {
    match format() {
        Format::Table => say(text),
        Format::Csv | Format::Json => {
            eprintln!("{text}");
            Ok(())
        }
    }
}

/// Text cells longer than this are cut in printed tables (the Parquet files keep them whole):
/// a table of a 10 MB campaign id took 38 s to lay out and helped no one read it.
const CELL_CHARS: usize = 60;

/// Prints one result table: `name` is its machine name (the dataset's, in JSON), `title`
/// what people read above it.
pub fn print_table(name: &str, title: &str, batches: &[RecordBatch]) -> anyhow::Result<()> {
    match format() {
        Format::Table => {
            say(title)?;
            say(pretty_format_batches(&cut_wide_cells(batches)?)?)
        }
        Format::Csv => {
            let mut out = encode(RowFormat::Csv, batches)?;
            if batches.is_empty() {
                out.push(b'\n');
            }
            say(String::from_utf8(out)?)
        }
        Format::Json => {
            let rows: serde_json::Value =
                serde_json::from_slice(&encode(RowFormat::Json, batches)?)?;
            let table = serde_json::json!({ "table": name, "title": title, "rows": rows });
            say(serde_json::to_string(&table)?)
        }
    }
}

/// `batches` with every text value longer than [`CELL_CHARS`] cut, ending in `…`.
fn cut_wide_cells(batches: &[RecordBatch]) -> anyhow::Result<Vec<RecordBatch>> {
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

/// How `sql` prints its rows (`--format`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RowFormat {
    /// An aligned text table.
    #[default]
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON array of row objects.
    Json,
    /// A JSON object per row and line.
    Ndjson,
    /// A Parquet file (--out FILE).
    Parquet,
}

/// Prints a query's rows on stdout in `format` (every value whole: nothing is cut).
pub fn print_rows(format: RowFormat, batches: &[RecordBatch]) -> anyhow::Result<()> {
    if format == RowFormat::Table {
        return say(pretty_format_batches(batches)?);
    }
    let out = encode(format, batches)?;
    use std::io::Write;
    match std::io::stdout().lock().write_all(&out) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}

/// `batches` as CSV (with a header), a JSON array of rows, or JSON lines.
fn encode(format: RowFormat, batches: &[RecordBatch]) -> anyhow::Result<Vec<u8>> {
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    let mut out = Vec::new();
    match format {
        RowFormat::Csv => {
            let mut writer = arrow_csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for batch in batches {
                writer.write(batch)?;
            }
        }
        RowFormat::Json => {
            let mut writer = arrow_json::ArrayWriter::new(&mut out);
            writer.write_batches(&refs)?;
            writer.finish()?;
            if out.is_empty() {
                out.extend_from_slice(b"[]");
            }
            out.push(b'\n');
        }
        RowFormat::Ndjson => {
            let mut writer = arrow_json::LineDelimitedWriter::new(&mut out);
            writer.write_batches(&refs)?;
            writer.finish()?;
        }
        RowFormat::Table | RowFormat::Parquet => {
            anyhow::bail!("{format:?} is not a text encoding of rows: give --out FILE for parquet")
        }
    }
    Ok(out)
}
