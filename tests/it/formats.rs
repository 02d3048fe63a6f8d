//! Formats other tools read: the Parquet outputs as Spark, pandas (pyarrow) and Polars see
//! them. The Python checks run with `MARKETING_ANALYTICS_PYTHON` (an interpreter with pyarrow
//! and polars; CI installs one) and print why they skipped without it, except where
//! `MARKETING_ANALYTICS_REQUIRE_PYTHON` is set (CI), where its absence fails.

use crate::common;
use std::path::Path;
use std::process::Command;

use datafusion::parquet::basic::LogicalType;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use marketing_analytics::app::convert::convert;
use marketing_analytics::app::{layout, run_all, Settings};
use marketing_analytics::generate::{generate, Options};
use marketing_analytics::storage::output::PART_FILE;

/// The logical type of `column` in a Parquet file.
fn logical_type(file: &Path, column: &str) -> Option<LogicalType> {
    let reader = SerializedFileReader::new(std::fs::File::open(file).unwrap()).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    schema
        .columns()
        .iter()
        .find(|c| c.name() == column)
        .unwrap_or_else(|| panic!("{file:?} has no column {column}"))
        .logical_type_ref()
        .cloned()
}

/// Asserts a logical type is a timestamp in microseconds, adjusted to UTC.
fn assert_utc_micros(t: Option<LogicalType>) {
    let shown = format!("{t:?}");
    assert!(
        shown.starts_with("Some(Timestamp")
            && shown.contains("is_adjusted_to_u_t_c: true")
            && shown.contains("MICROS"),
        "{shown}"
    );
}

#[tokio::test]
async fn timestamps_are_written_adjusted_to_utc_and_other_tools_read_the_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(
        &Options {
            users: 200,
            files: 2,
            ..Options::default()
        },
        &dir.path().join("data"),
    )
    .unwrap();
    let (c, p) = (
        g.clickstream_dir.display().to_string(),
        g.purchases_dir.display().to_string(),
    );
    let settings = Settings {
        threads: 2,
        ..Settings::default()
    };
    let out = dir.path().join("out");
    let report = run_all(&settings, &c, &p, &out).await.unwrap();
    let projection = out.join(layout::PROJECTION).join(PART_FILE);
    assert_utc_micros(logical_type(&projection, "purchaseTime"));
    let warehouse = dir.path().join("warehouse");
    convert(&settings, &c, &p, &warehouse).await.unwrap();
    let day = std::fs::read_dir(warehouse.join("clickstream"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("date="))
        .unwrap()
        .path();
    let file = std::fs::read_dir(&day)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    assert_utc_micros(logical_type(&file, "eventTime"));

    let Some(python) = common::python() else {
        return;
    };
    let script = r#"
import sys, pyarrow.parquet as pq, pyarrow.dataset as ds, polars as pl
projection = sys.argv[1]
t = pq.read_table(projection + "/part-00000.parquet")
print(t.schema.field("purchaseTime").type.tz)
print(ds.dataset(projection, format="parquet").to_table().num_rows)
print(pl.read_parquet(projection + "/*.parquet").height)
print(pl.read_parquet(projection + "/*.parquet").schema["purchaseTime"])
"#;
    let run = Command::new(&python)
        .args(["-c", script])
        .arg(out.join(layout::PROJECTION))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let rows = report.summary.counts.attributed_purchases.to_string();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "UTC", "pyarrow's timezone: {stdout}");
    assert_eq!(
        lines[1], rows,
        "pyarrow reads the dataset directory: {stdout}"
    );
    assert_eq!(lines[2], rows, "polars reads its Parquet files: {stdout}");
    assert!(lines[3].contains("UTC"), "polars' type: {stdout}");
}

/// `run`, `period` and `weekly` write `summary.json`; a dataset written alone (`attribution`,
/// a mart) holds its summary in its `_SUCCESS`, and `convert` its own in `_warehouse.json`.
#[tokio::test]
async fn every_command_that_writes_output_writes_a_summary_of_what_it_read_and_wrote() {
    use marketing_analytics::app::{attribution_job, mart_job};
    use marketing_analytics::marts::top_campaigns;
    use marketing_analytics::storage::claim::{Marker, WAREHOUSE_MARKER};
    use marketing_analytics::storage::output::SUCCESS_MARKER;
    let dir = tempfile::tempdir().unwrap();
    let g = generate(
        &Options {
            users: 100,
            files: 1,
            ..Options::default()
        },
        &dir.path().join("data"),
    )
    .unwrap();
    let (c, p) = (
        g.clickstream_dir.display().to_string(),
        g.purchases_dir.display().to_string(),
    );
    let settings = Settings {
        threads: 2,
        ..Settings::default()
    };
    let projection = dir.path().join("projection");
    let report = attribution_job(&settings, &c, &p, &projection, None)
        .await
        .unwrap();
    let summary = Marker::read(&projection.join(SUCCESS_MARKER))
        .unwrap()
        .summary
        .unwrap();
    assert_eq!(
        summary["counts"]["attributed_purchases"],
        report.summary.counts.attributed_purchases
    );
    let mart = dir.path().join("mart");
    let input = projection.display().to_string();
    let rows = mart_job(&settings, &top_campaigns::MART, &input, &mart)
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows() as u64)
        .sum::<u64>();
    let summary = Marker::read(&mart.join(SUCCESS_MARKER))
        .unwrap()
        .summary
        .unwrap();
    assert_eq!(summary["input"], input);
    assert_eq!(summary["outputs"]["top_campaigns"], rows);
    let warehouse = dir.path().join("warehouse");
    let converted = convert(&settings, &c, &p, &warehouse).await.unwrap();
    let summary = Marker::read(&warehouse.join(WAREHOUSE_MARKER))
        .unwrap()
        .summary
        .unwrap();
    let last = &summary["last_conversion"];
    assert_eq!(
        last["written"]["projection_rows"],
        converted.projection_rows
    );
    let files = last["input_files"]["clickstream"].as_object().unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
}
