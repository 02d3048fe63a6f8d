//! What the commands print on stdout: lines and tables.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

/// Writes a line to stdout; a closed pipe (`| head`) ends the output quietly, not in a panic.
pub fn say(text: impl std::fmt::Display) -> anyhow::Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}

/// Text cells longer than this are cut in printed tables (the Parquet files keep them whole):
/// a table of a 10 MB campaign id took 38 s to lay out and helped no one read it.
const CELL_CHARS: usize = 60;

pub fn print_table(title: &str, batches: &[RecordBatch]) -> anyhow::Result<()> {
    say(title)?;
    say(pretty_format_batches(&cut_wide_cells(batches)?)?)
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
