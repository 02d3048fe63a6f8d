//! The HTML report of a run's (or a period's) output directory: one self-contained page, its
//! charts inline SVG (`charts.rs`), its layout `report.html` (a minijinja template). No script,
//! no network: it opens from disk and prints.
//!
//! [`gather`] reads every figure from the datasets registered on a context (as `sql` registers
//! them) and from `summary.json`, a section at a time (`sections.rs`); [`render`] lays them
//! out. Every number in the page carries
//! the exact value it came from (`data-value`), so a test can compare the page to the Parquet.

mod charts;
mod sections;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use serde::Serialize;
use serde_json::Value as Json;

use crate::error::{Error, Result};

/// The page's layout.
const TEMPLATE: &str = include_str!("report.html");

/// One figure of the page: its text and the exact value it shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cell {
    pub text: String,
    /// The value as read (decimals exact); empty for text.
    pub value: String,
    pub numeric: bool,
}

impl Cell {
    fn text(text: impl Into<String>) -> Cell {
        Cell {
            text: text.into(),
            value: String::new(),
            numeric: false,
        }
    }

    /// A number as read (an integer or a decimal's text), shown with thousands separators.
    fn number(value: &str) -> Cell {
        Cell {
            text: grouped(value),
            value: value.to_string(),
            numeric: true,
        }
    }

    /// A float (a model's credit, a ratio) shown to `decimals` places; its value as read.
    fn rounded(value: &str, decimals: usize) -> Cell {
        let text = match value.parse::<f64>() {
            Ok(v) if v.is_finite() => grouped(&format!("{v:.decimals$}")),
            _ => value.to_string(),
        };
        Cell {
            text,
            value: value.to_string(),
            numeric: true,
        }
    }

    /// A share (0..1) shown as a percentage.
    fn share(value: f64) -> Cell {
        Cell {
            text: format!("{:.1}%", value * 100.0),
            value: value.to_string(),
            numeric: true,
        }
    }

    fn null() -> Cell {
        Cell::text("(none)")
    }
}

/// A table: its id (for links and tests), caption, headers and rows.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub id: String,
    pub caption: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Said under the table (what was left out of it, where the rest is).
    pub note: Option<String>,
}

/// A section of the page.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub id: String,
    pub heading: String,
    pub intro: Option<String>,
    /// Inline SVG charts with their captions.
    pub charts: Vec<Chart>,
    pub tables: Vec<Table>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub caption: String,
    pub svg: String,
}

/// Everything the page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub title: String,
    /// The run at a glance: (id, label, figure).
    pub glance: Vec<(String, String, Cell)>,
    pub sections: Vec<Section>,
}

/// The figures of an output directory whose datasets are registered on `ctx` under their
/// names (`tables`), with its `summary.json` (`None`: not written).
pub async fn gather(
    ctx: &SessionContext,
    tables: &[String],
    summary: Option<&Json>,
    title: &str,
) -> Result<Figures> {
    let has = |name: &str| tables.iter().any(|t| t == name);
    let mut glance = Vec::new();
    let mut sections = Vec::new();
    if let Some(s) = summary {
        glance.extend(sections::run_facts(s));
    }
    if has("purchases_attribution") {
        let r = rows(
            ctx,
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE isConfirmed), \
             CAST(COALESCE(SUM(CASE WHEN isConfirmed THEN CAST(billingCost AS DECIMAL(38, 6)) END), 0) AS DECIMAL(38, 2)), \
             COUNT(DISTINCT sessionId) FROM purchases_attribution",
        )
        .await?;
        if let Some(r) = r.first() {
            for (i, (id, label)) in [
                (
                    "projection-purchases",
                    "Attributed purchases (projection rows)",
                ),
                ("confirmed-purchases", "Confirmed purchases"),
                ("confirmed-revenue", "Confirmed revenue"),
                (
                    "converting-sessions",
                    "Sessions with an attributed purchase",
                ),
            ]
            .into_iter()
            .enumerate()
            {
                glance.push((id.into(), label.into(), number_cell(&r[i])));
            }
        }
    }
    if let Some(s) = summary {
        if let Some(section) = sections::inputs_section(s) {
            sections.push(section);
        }
    }
    if has("top_campaigns") {
        sections.push(sections::top_campaigns(ctx).await?);
    }
    if has("top_channels") || has("purchases_attribution") {
        sections.push(
            sections::channels(
                ctx,
                summary,
                has("top_channels"),
                has("purchases_attribution"),
            )
            .await?,
        );
    }
    if has("weekly") {
        sections.push(sections::weekly(ctx).await?);
    }
    if has("attribution_models") {
        sections.push(sections::models(ctx, has("conversion_paths")).await?);
    }
    if let Some(s) = summary {
        if let Some(section) = sections::accounting(ctx, s, has("rejected")).await? {
            sections.push(section);
        }
    }
    Ok(Figures {
        title: title.to_string(),
        glance,
        sections,
    })
}

/// The page.
pub fn render(figures: &Figures) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.add_template("report.html", TEMPLATE)
        .map_err(|e| Error::Report(format!("report.html: {e}")))?;
    let page = env
        .get_template("report.html")
        .and_then(|t| t.render(minijinja::context! { report => figures }))
        .map_err(|e| Error::Report(format!("report.html: {e:#}")))?;
    Ok(page)
}

/// The rows of `sql`, every value as text (decimals exact; null: `None`).
async fn rows(ctx: &SessionContext, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut out = Vec::new();
    for batch in batches {
        let columns = batch
            .columns()
            .iter()
            .map(|c| datafusion::arrow::compute::cast(c, &DataType::Utf8))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for i in 0..batch.num_rows() {
            let row = columns
                .iter()
                .map(|c| {
                    let c = c.as_string::<i32>();
                    (!c.is_null(i)).then(|| c.value(i).to_string())
                })
                .collect();
            out.push(row);
        }
    }
    Ok(out)
}

fn number_cell(value: &Option<String>) -> Cell {
    value.as_deref().map_or_else(Cell::null, Cell::number)
}

fn rounded_cell(value: &Option<String>, decimals: usize) -> Cell {
    value
        .as_deref()
        .map_or_else(Cell::null, |v| Cell::rounded(v, decimals))
}

fn text_cell(value: &Option<String>) -> Cell {
    value.as_deref().map_or_else(Cell::null, Cell::text)
}

fn float(value: &Option<String>) -> f64 {
    value.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

/// `1234567.5` as `1,234,567.5` (the integer part grouped, the rest as it is).
fn grouped(value: &str) -> String {
    let (sign, digits) = match value.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", value),
    };
    let (whole, fraction) = match digits.find(['.', 'e', 'E']) {
        Some(at) => digits.split_at(at),
        None => (digits, ""),
    };
    if !whole.bytes().all(|b| b.is_ascii_digit()) {
        return value.to_string();
    }
    let mut out = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}{fraction}")
}

fn label(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "(none)".into())
}

fn u64_at(json: &Json, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(json, |j, k| j.get(k))?.as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands_and_keep_their_decimals() {
        assert_eq!(grouped("1234567"), "1,234,567");
        assert_eq!(grouped("-1234.50"), "-1,234.50");
        assert_eq!(grouped("999"), "999");
        assert_eq!(grouped("0.000001"), "0.000001");
        assert_eq!(grouped("NaN"), "NaN");
    }
}
