//! `sql`: DataFusion SQL over what the jobs wrote, with the project's functions (`sessionize`,
//! `hash_bucket`, …) callable. Read only: DDL, DML and `COPY` are refused, so a query cannot
//! change or write anything.
//!
//! Tables: every dataset of a run's output directory by its folder's name
//! (`purchases_attribution`, `top_campaigns`, `top_channels`, `weekly`, `attribution_models`,
//! `conversion_paths`, …) and `summary` (its `summary.json` as one row); a warehouse's
//! `clickstream`, `purchases` and `projection`, with their `date` partition column (a filter on
//! it reads only those partitions). With several outputs, each one's tables are also in a
//! schema named after its folder (`sep.top_campaigns`), and the plain names are the first's.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::{MemorySchemaProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{DataFrame, SessionContext};
use datafusion::sql::sqlparser::dialect as sqlparser_dialect;

use super::{job_context, layout, Settings};
use crate::error::{Error, Result};
use crate::input::TableKind;
use crate::storage::warehouse;

/// What `sql` reads.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Output directories of runs (or of other jobs).
    pub outputs: Vec<PathBuf>,
    pub warehouse: Option<PathBuf>,
}

/// A context with the tables of `sources` registered; returns it and the tables' names.
pub async fn sql_context(
    settings: &Settings,
    sources: &Sources,
) -> Result<(SessionContext, Vec<String>)> {
    let ctx = job_context(settings).await?;
    let mut names = Vec::new();
    for (i, dir) in sources.outputs.iter().enumerate() {
        if !dir.is_dir() {
            return Err(Error::Config(format!(
                "{} is not a directory: give --output the output directory of a run",
                dir.display()
            )));
        }
        let schema = (sources.outputs.len() > 1).then(|| schema_name(dir));
        if let Some(schema) = &schema {
            ctx.catalog("datafusion")
                .ok_or_else(|| Error::Config("no default catalog".into()))?
                .register_schema(schema, Arc::new(MemorySchemaProvider::new()))?;
        }
        let tables = output_tables(&ctx, dir).await?;
        if tables.is_empty() {
            return Err(Error::Config(format!(
                "{} holds no dataset nor summary.json: give --output the output directory of a \
                 run",
                dir.display()
            )));
        }
        for (name, table) in tables {
            if let Some(schema) = &schema {
                let qualified = TableReference::partial(schema.as_str(), name.as_str());
                ctx.register_table(qualified, table.clone())?;
                names.push(format!("{schema}.{name}"));
            }
            if i == 0 {
                crate::storage::replace_table(&ctx, &name, table)?;
                names.push(name);
            }
        }
    }
    if let Some(w) = &sources.warehouse {
        let snapshot = warehouse::Snapshot::resolve(&ctx, w, settings.read).await?;
        for (kind, name) in [
            (TableKind::Clickstream, "clickstream"),
            (TableKind::Purchases, "purchases"),
        ] {
            warehouse::register_table(&ctx, w, kind, name, &snapshot).await?;
            names.push(name.to_string());
        }
        if warehouse::register_projection(
            &ctx,
            w,
            "projection",
            &snapshot,
            crate::attribution::PROJECTION.clone(),
        )
        .await?
        {
            names.push("projection".to_string());
        }
    }
    names.sort();
    names.dedup();
    Ok((ctx, names))
}

/// A folder's name as a schema name: lower case letters, digits and `_`.
fn schema_name(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("o_{name}")
    } else {
        name
    }
}

/// The datasets of one output directory (each folder holding Parquet files, by its name; the
/// folders whose names start with `_` or `.` are the program's own) and its summary.
async fn output_tables(
    ctx: &SessionContext,
    dir: &Path,
) -> Result<Vec<(String, Arc<dyn TableProvider>)>> {
    let mut tables: Vec<(String, Arc<dyn TableProvider>)> = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with(['_', '.']) || !path.is_dir() {
            continue;
        }
        let dated = std::fs::read_dir(&path)
            .map_err(|e| Error::io(&path, e))?
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("date="));
        let partitions = if dated {
            vec![("date".to_string(), DataType::Utf8)]
        } else {
            Vec::new()
        };
        let Some(url) = warehouse::table_url(&path)? else {
            continue;
        };
        let options = crate::storage::tables::parquet_options(ctx, partitions);
        let table = crate::storage::tables::inferred_listing_table(ctx, vec![url], options)
            .await
            .map_err(|e| Error::BadFile {
                file: path.display().to_string(),
                reason: format!("cannot read it as a Parquet dataset: {e}"),
            })?;
        tables.push((name, table));
    }
    let summary = dir.join(layout::SUMMARY);
    if summary.is_file() {
        tables.push(("summary".to_string(), summary_table(&summary)?));
    }
    Ok(tables)
}

/// `summary.json` as a table of one row (nested objects are structs: `summary.counts['events']`).
fn summary_table(path: &Path) -> Result<Arc<dyn TableProvider>> {
    let bad = |reason: String| Error::BadFile {
        file: path.display().to_string(),
        reason,
    };
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let line = serde_json::to_vec(&value).map_err(|e| bad(e.to_string()))?;
    let (schema, _) = arrow_json::reader::infer_json_schema(std::io::Cursor::new(&line), Some(1))
        .map_err(|e| bad(format!("cannot type its fields: {e}")))?;
    let schema = Arc::new(schema);
    let reader = arrow_json::ReaderBuilder::new(schema.clone())
        .build(std::io::Cursor::new(line))
        .map_err(|e| bad(e.to_string()))?;
    let batches = reader
        .collect::<std::result::Result<Vec<RecordBatch>, _>>()
        .map_err(|e| bad(format!("cannot read it as a row: {e}")))?;
    Ok(Arc::new(MemTable::try_new(schema, vec![batches])?))
}

/// The statements of `text` (one query, or several separated by `;`), each planned read-only.
/// An error names what went wrong and, for an unknown table, the tables there are.
pub async fn run_statements(
    ctx: &SessionContext,
    text: &str,
    tables: &[String],
) -> Result<Vec<DataFrame>> {
    let dialect = ctx.state().config().options().sql_parser.dialect;
    let statements =
        datafusion::sql::parser::DFParser::parse_sql_with_dialect(text, &*dialect_of(&dialect)?)
            .map_err(|e| Error::Config(format!("the query does not parse: {e}")))?;
    if statements.is_empty() {
        return Err(Error::Config("no SQL statement given".into()));
    }
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let mut frames = Vec::new();
    for statement in statements {
        let state = ctx.state();
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| explain_error(e, tables))?;
        options.verify_plan(&plan).map_err(|e| {
            Error::Config(format!(
                "{e}: `sql` only reads (queries, EXPLAIN); it creates, changes and writes nothing"
            ))
        })?;
        frames.push(
            ctx.execute_logical_plan(plan)
                .await
                .map_err(|e| explain_error(e, tables))?,
        );
    }
    Ok(frames)
}

fn dialect_of(name: &datafusion::config::Dialect) -> Result<Box<dyn sqlparser_dialect::Dialect>> {
    let name = name.to_string();
    sqlparser_dialect::dialect_from_str(&name)
        .ok_or_else(|| Error::Config(format!("unknown SQL dialect {name}")))
}

/// A planning error, with the tables there are when a table was not found.
fn explain_error(e: datafusion::error::DataFusionError, tables: &[String]) -> Error {
    let text = e.to_string();
    if text.contains("table") && text.contains("not found") {
        return Error::Config(format!("{text}; the tables are: {}", tables.join(", ")));
    }
    Error::from(e)
}
