//! `report`: the HTML report (`crate::report`) of an output directory, written beside its
//! datasets as `report.html` (or to `--out`). `run --report` and `period --report` write it
//! into their output before it is committed.

use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::CsvReadOptions;

use super::sql::{sql_context, Sources};
use super::{layout, Settings};
use crate::error::{Error, Result};
use crate::storage::claim::Marker;
use crate::storage::output::{publish_file, SUCCESS_MARKER as MARKER};

/// The report's file name in an output directory.
pub const REPORT_FILE: &str = "report.html";

/// What marks a page as one of our reports (the template's `generator`).
const GENERATOR: &str = "<meta name=\"generator\" content=\"marketing-analytics\">";

/// The report of the output directory `input`, written to `out` (default
/// `input/report.html`). Returns where it went.
pub async fn report_job(settings: &Settings, input: &Path, out: Option<&Path>) -> Result<PathBuf> {
    if !input.is_dir() {
        return Err(Error::Config(format!(
            "{} is not a directory: give --input the output directory of a run or a period",
            input.display()
        )));
    }
    let ours = Marker::read(&input.join(MARKER)).is_some();
    let out = match out {
        Some(out) => out.to_path_buf(),
        None if ours => input.join(REPORT_FILE),
        None => {
            return Err(Error::Config(format!(
                "{} is not an output directory of this program (no {MARKER} of ours): the \
                 report is written into it only then; give --out FILE to write it elsewhere",
                input.display()
            )))
        }
    };
    let page = render_report(settings, input).await?;
    publish_file(&out, page.as_bytes(), is_our_report)?;
    Ok(out)
}

/// The page of the output directory `dir` (its datasets, summary.json and quarantined rows).
pub async fn render_report(settings: &Settings, dir: &Path) -> Result<String> {
    // The outputs are local files: read here, even for a run on a cluster.
    let settings = Settings {
        cluster: None,
        ..settings.clone()
    };
    let settings = &settings;
    let sources = Sources {
        outputs: vec![dir.to_path_buf()],
        warehouse: None,
    };
    let (ctx, mut tables) = sql_context(settings, &sources).await?;
    let summary_path = dir.join(layout::SUMMARY);
    let summary: Option<serde_json::Value> = match std::fs::read(&summary_path) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| Error::BadFile {
            file: summary_path.display().to_string(),
            reason: format!("not the JSON of a summary: {e}"),
        })?),
        Err(_) => None,
    };
    let run_id = summary
        .as_ref()
        .and_then(|s| s.get("run_id"))
        .and_then(|r| r.as_str());
    // A run's quarantined rows are in _rejected/, a warehouse job's in _rejected/RUN_ID/.
    let rejected_dirs = [
        Some(dir.join(layout::REJECTED)),
        run_id.map(|id| dir.join(layout::REJECTED).join(id)),
    ];
    if let Some(rejected) = rejected_dirs.into_iter().flatten().find(|d| has_csv(d)) {
        {
            // The quarantine files' columns, all text: a row's own text may be anything.
            let schema = Schema::new(
                ["file", "line", "reason", "row"]
                    .map(|c| Field::new(c, DataType::Utf8, true))
                    .to_vec(),
            );
            let options = CsvReadOptions::new()
                .schema(&schema)
                .has_header(true)
                .newlines_in_values(true)
                .file_extension(".csv");
            let at = rejected.display().to_string();
            ctx.register_csv("rejected", &at, options).await?;
            tables.push("rejected".into());
        }
    }
    let title = match run_id {
        Some(id) => format!("marketing-analytics report: run {id}"),
        None => format!("marketing-analytics report: {}", dir.display()),
    };
    let figures = crate::report::gather(&ctx, &tables, summary.as_ref(), &title)
        .await
        .map_err(Error::unwrap_datafusion)?;
    crate::report::render(&figures)
}

fn has_csv(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| e.path().extension().is_some_and(|x| x == "csv"))
    })
}

/// Whether the file at `path` is a report this program wrote (so it may be replaced).
fn is_our_report(path: &Path) -> bool {
    let mut head = vec![0u8; 1024];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    String::from_utf8_lossy(&head[..n]).contains(GENERATOR)
}

/// Writes the report of the staged output `dir` into it (`run --report`, `period --report`).
pub async fn write_staged_report(settings: &Settings, dir: &Path) -> Result<()> {
    let page = render_report(settings, dir).await?;
    let path = dir.join(REPORT_FILE);
    std::fs::write(&path, page).map_err(|e| Error::io(&path, e))
}
