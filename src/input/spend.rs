//! Marketing spend (`--spend PATH`): CSV or TSV, compressed or not, with the columns `date,
//! campaignId, channelId, spend` matched by name (any order, any case). Either id may be
//! empty; spend is a non-negative decimal with at most six decimals, thousands separators
//! allowed. A bad row fails the job naming file and line, or with `--on-bad-rows quarantine`
//! goes to the reject sink and is counted.

use std::collections::BTreeMap;

use crate::calendar::parse_date;
use crate::error::{Error, Result};
use crate::input::decode::{header_positions, RowFields};
use crate::input::files::{open_text, resolve, FileFormat};
use crate::input::source::{FileStats, LineFields, Lines};
use crate::input::values::parse_money_micros;
use crate::input::RejectSink;

/// The spend file's columns, as the header names them.
pub const COLUMNS: [&str; 4] = ["date", "campaignId", "channelId", "spend"];

/// One row of spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendRow {
    /// Day number (days since 1970-01-01).
    pub date: i32,
    pub campaign_id: Option<String>,
    pub channel_id: Option<String>,
    /// Spend in micro-units.
    pub micros: i64,
}

/// The rows of every spend file, and what was read per file.
#[derive(Debug, Clone, Default)]
pub struct Spend {
    pub rows: Vec<SpendRow>,
    pub files: BTreeMap<String, FileStats>,
}

/// Reads every spend file `spec` names.
pub fn read_spend(
    spec: &str,
    delimiter: Option<u8>,
    rejects: Option<&RejectSink>,
) -> Result<Spend> {
    let mut rows = Vec::new();
    let mut stats = BTreeMap::new();
    for file in resolve(spec, "spend", delimiter)? {
        let name = file.display();
        let FileFormat::Delimited { delimiter } = file.format else {
            return Err(Error::BadFile {
                file: name,
                reason: "spend is read from CSV or TSV, not Parquet".into(),
            });
        };
        let mut lines = Lines::new(open_text(&file, None)?);
        let mut fields = LineFields::new(delimiter);
        let mut positions: Option<[usize; 4]> = None;
        let mut file_stats = FileStats {
            bytes: file.size,
            ..FileStats::default()
        };
        while let Some((line, text)) = lines.next_line().map_err(|e| Error::io(&file.path, e))? {
            if text.is_empty() {
                continue;
            }
            let parsed = fields.parse(text);
            let Some(at) = positions else {
                positions = Some(header(&fields, parsed, &name)?);
                continue;
            };
            file_stats.rows += 1;
            match row(&fields, parsed, at) {
                Ok(r) => rows.push(r),
                Err((column, reason)) => match rejects {
                    Some(sink) => {
                        let shown = match column {
                            Some(c) => format!("column {c}: {reason}"),
                            None => reason.clone(),
                        };
                        sink.reject(&name, line, &shown, text)?;
                        file_stats.quarantined += 1;
                    }
                    None => {
                        return Err(Error::BadRow {
                            file: name,
                            line,
                            column: column.map(String::from),
                            reason: format!(
                                "{reason} (fix the row, or pass --on-bad-rows quarantine)"
                            ),
                        })
                    }
                },
            }
        }
        if positions.is_none() {
            return Err(Error::BadFile {
                file: name,
                reason: format!("no header: a spend file starts with {}", COLUMNS.join(",")),
            });
        }
        stats.insert(name, file_stats);
    }
    if let Some(sink) = rejects {
        sink.finish()?;
    }
    Ok(Spend { rows, files: stats })
}

fn header(fields: &LineFields, parsed: bool, file: &str) -> Result<[usize; 4]> {
    if !parsed {
        return Err(Error::BadFile {
            file: file.to_string(),
            reason: "the header has a quote left open".into(),
        });
    }
    let names: Vec<String> = (0..fields.width())
        .map(|i| String::from_utf8_lossy(fields.field(i)).into_owned())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let at = header_positions(&COLUMNS, "spend", &names, file)?;
    Ok([at[0], at[1], at[2], at[3]])
}

type BadField = (Option<&'static str>, String);

fn row(
    fields: &LineFields,
    parsed: bool,
    at: [usize; 4],
) -> std::result::Result<SpendRow, BadField> {
    if !parsed {
        return Err((None, "a quote is left open".into()));
    }
    let text = |i: usize, name: &'static str| {
        std::str::from_utf8(fields.field(at[i]))
            .map(str::trim)
            .map_err(|_| (Some(name), "not UTF-8".to_string()))
    };
    let date = text(0, "date")?;
    let date = parse_date(date)
        .map_err(|_| (Some("date"), format!("{date:?} is not a date YYYY-MM-DD")))?;
    let id = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let campaign_id = id(text(1, "campaignId")?);
    let channel_id = id(text(2, "channelId")?);
    let micros = parse_money_micros(text(3, "spend")?.as_bytes())
        .map_err(|e| (Some("spend"), e.replace("billingCost", "spend")))?;
    Ok(SpendRow {
        date,
        campaign_id,
        channel_id,
        micros,
    })
}
