//! Row decoders: from the text fields of one input row to typed Arrow columns.
//!
//! Both file formats (CSV/TSV and Parquet with the same columns) go through the same
//! decoders, so a value is accepted or refused the same way whatever it was read from.
//! Builders are reused across rows; nothing is allocated per row except for attribute values
//! with escapes.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};

use super::attributes::parse_attributes;
use super::schema::{self, source_row, CLICKSTREAM_COLUMNS, PURCHASES_COLUMNS};
use super::source::Opens;
use super::values::{parse_confirmed, parse_money_micros, parse_timestamp_micros};
use crate::error::{Error, Result};

/// Which of the two input tables a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Clickstream,
    Purchases,
}

impl TableKind {
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Clickstream => "clickstream",
            TableKind::Purchases => "purchases",
        }
    }

    fn columns(self) -> &'static [&'static str] {
        match self {
            TableKind::Clickstream => &CLICKSTREAM_COLUMNS,
            TableKind::Purchases => &PURCHASES_COLUMNS,
        }
    }
}

/// One input row's fields, whatever format it came from.
pub trait RowFields {
    /// Number of fields in the row.
    fn width(&self) -> usize;
    fn field(&self, i: usize) -> &[u8];
}

/// Where each needed column stands in a file, found by header name (files differ in order).
#[derive(Debug, Clone)]
pub struct ColumnMap {
    /// Positions of `kind.columns()` in the file's rows.
    positions: Vec<usize>,
    /// Fields in the header.
    width: usize,
    /// Position of a column that a short row may leave out (the trailing attributes).
    optional_last: Option<usize>,
}

/// Where each of `columns` is in `header` (by name, ignoring case, spaces and a BOM), for a
/// file of `what` (a table's name, in messages): each must be there exactly once.
pub(crate) fn header_positions(
    columns: &[&str],
    what: &str,
    header: &[&str],
    file: &str,
) -> Result<Vec<usize>> {
    let norm: Vec<String> = header
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase())
        .collect();
    let mut positions = Vec::new();
    let mut missing = Vec::new();
    for col in columns {
        let want = col.to_ascii_lowercase();
        let found: Vec<usize> = (0..norm.len()).filter(|&i| norm[i] == want).collect();
        match found.as_slice() {
            [one] => positions.push(*one),
            [] => missing.push(*col),
            _ => {
                return Err(Error::BadFile {
                    file: file.to_string(),
                    reason: format!("header names column {col:?} more than once"),
                })
            }
        }
    }
    if !missing.is_empty() {
        return Err(Error::BadFile {
            file: file.to_string(),
            reason: format!(
                "header lacks {what} column(s) {}; found {:?}. Is this a {what} file (and is the delimiter right)?",
                missing.join(", "),
                header.join(","),
            ),
        });
    }
    Ok(positions)
}

impl ColumnMap {
    /// Matches a header to the table's columns (by name, ignoring case, spaces and a BOM).
    pub fn from_header(kind: TableKind, header: &[&str], file: &str) -> Result<Self> {
        let positions = header_positions(kind.columns(), kind.name(), header, file)?;
        let optional_last = match kind {
            TableKind::Clickstream if positions[4] == header.len() - 1 => Some(positions[4]),
            _ => None,
        };
        Ok(ColumnMap {
            positions,
            width: header.len(),
            optional_last,
        })
    }

    /// The width a row must have, accepting a short row that leaves out trailing attributes.
    fn check_width(&self, got: usize, file: &str, line: u64) -> Result<()> {
        if got == self.width || (self.optional_last.is_some() && got + 1 == self.width) {
            Ok(())
        } else {
            Err(Error::BadRow {
                file: file.to_string(),
                line,
                column: None,
                reason: format!(
                    "expected {} fields as in the header, found {got}",
                    self.width
                ),
            })
        }
    }

    fn get<'r>(&self, row: &'r dyn RowFields, col: usize) -> &'r [u8] {
        let pos = self.positions[col];
        if pos < row.width() {
            row.field(pos)
        } else {
            b""
        }
    }
}

/// Accumulates decoded rows of one table into Arrow batches.
pub enum BatchBuilder {
    Clickstream(Box<EventsBuilder>),
    Purchases(Box<PurchasesBuilder>),
}

impl BatchBuilder {
    pub fn new(kind: TableKind, capacity: usize) -> Self {
        match kind {
            TableKind::Clickstream => {
                BatchBuilder::Clickstream(Box::new(EventsBuilder::new(capacity)))
            }
            TableKind::Purchases => {
                BatchBuilder::Purchases(Box::new(PurchasesBuilder::new(capacity)))
            }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            BatchBuilder::Clickstream(b) => b.rows,
            BatchBuilder::Purchases(b) => b.rows,
        }
    }

    /// Clickstream rows of eventType `purchase` decoded so far (never reset by `finish`).
    pub fn purchase_type_rows(&self) -> u64 {
        match self {
            BatchBuilder::Clickstream(b) => b.purchase_type_rows,
            BatchBuilder::Purchases(_) => 0,
        }
    }

    /// Clickstream `app_open` rows decoded so far, per channel_id (never reset by `finish`).
    pub fn take_opens(&mut self) -> Opens {
        match self {
            BatchBuilder::Clickstream(b) => std::mem::take(&mut b.opens),
            BatchBuilder::Purchases(_) => Opens::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes one row. On error nothing of the row is kept.
    pub fn push(
        &mut self,
        map: &ColumnMap,
        row: &dyn RowFields,
        file: &str,
        file_index: u32,
        line: u64,
    ) -> Result<()> {
        map.check_width(row.width(), file, line)?;
        match self {
            BatchBuilder::Clickstream(b) => b.push(map, row, file, file_index, line),
            BatchBuilder::Purchases(b) => b.push(map, row, file, file_index, line),
        }
    }

    pub fn finish(&mut self) -> Result<RecordBatch> {
        match self {
            BatchBuilder::Clickstream(b) => b.finish(),
            BatchBuilder::Purchases(b) => b.finish(),
        }
    }
}

fn bad(file: &str, line: u64, column: &str, reason: impl Into<String>) -> Error {
    Error::BadRow {
        file: file.to_string(),
        line,
        column: Some(column.to_string()),
        reason: reason.into(),
    }
}

fn text<'r>(v: &'r [u8], file: &str, line: u64, column: &str) -> Result<&'r str> {
    std::str::from_utf8(v).map_err(|e| bad(file, line, column, format!("invalid UTF-8 ({e})")))
}

fn timestamp(v: &[u8], file: &str, line: u64, column: &str) -> Result<i64> {
    parse_timestamp_micros(v).ok_or_else(|| {
        bad(
            file,
            line,
            column,
            format!(
                "unparseable timestamp {:?}; expected YYYY-MM-DD HH:MM:SS[.ffffff]",
                String::from_utf8_lossy(v)
            ),
        )
    })
}

fn non_empty<'r>(v: &'r [u8], file: &str, line: u64, column: &str) -> Result<&'r str> {
    let s = text(v, file, line, column)?;
    if s.trim().is_empty() {
        return Err(bad(file, line, column, "empty value"));
    }
    Ok(s)
}

/// Builders of the decoded clickstream columns (see [`schema::EVENTS`]).
pub struct EventsBuilder {
    user_id: StringBuilder,
    event_id: StringBuilder,
    event_type: StringBuilder,
    event_time: TimestampMicrosecondBuilder,
    attributes: StringBuilder,
    campaign_id: StringBuilder,
    channel_id: StringBuilder,
    purchase_id: StringBuilder,
    source_row: Int64Builder,
    rows: usize,
    purchase_type_rows: u64,
    /// Decoded `app_open` rows per channel_id (the sessions' count, with the duplicates).
    opens: Opens,
}

impl EventsBuilder {
    fn new(capacity: usize) -> Self {
        EventsBuilder {
            user_id: StringBuilder::with_capacity(capacity, capacity * 36),
            event_id: StringBuilder::with_capacity(capacity, capacity * 36),
            event_type: StringBuilder::with_capacity(capacity, capacity * 12),
            event_time: TimestampMicrosecondBuilder::with_capacity(capacity)
                .with_timezone(schema::UTC),
            attributes: StringBuilder::with_capacity(capacity, capacity * 20),
            campaign_id: StringBuilder::with_capacity(capacity, capacity),
            channel_id: StringBuilder::with_capacity(capacity, capacity * 2),
            purchase_id: StringBuilder::with_capacity(capacity, capacity * 8),
            source_row: Int64Builder::with_capacity(capacity),
            rows: 0,
            purchase_type_rows: 0,
            opens: Opens::default(),
        }
    }

    fn push(
        &mut self,
        map: &ColumnMap,
        row: &dyn RowFields,
        file: &str,
        file_index: u32,
        line: u64,
    ) -> Result<()> {
        // Validate everything before appending anything, so a bad row leaves no trace.
        let user_id = non_empty(map.get(row, 0), file, line, "userId")?;
        let event_id = non_empty(map.get(row, 1), file, line, "eventId")?;
        let event_type = non_empty(map.get(row, 2), file, line, "eventType")?;
        let event_time = timestamp(map.get(row, 3), file, line, "eventTime")?;
        let attributes = text(map.get(row, 4), file, line, "attributes")?;
        let attrs = parse_attributes(attributes).map_err(|e| bad(file, line, "attributes", e))?;
        let is_purchase = event_type == "purchase";
        if is_purchase && attrs.purchase_id.is_none() {
            return Err(bad(
                file,
                line,
                "attributes",
                "purchase event without a purchase_id attribute",
            ));
        }
        self.user_id.append_value(user_id);
        self.event_id.append_value(event_id);
        self.event_type.append_value(event_type);
        self.event_time.append_value(event_time);
        self.attributes.append_value(attributes);
        self.campaign_id.append_option(attrs.campaign_id.as_deref());
        self.channel_id.append_option(attrs.channel_id.as_deref());
        self.purchase_id.append_option(attrs.purchase_id.as_deref());
        self.source_row.append_value(source_row(file_index, line));
        self.rows += 1;
        self.purchase_type_rows += u64::from(is_purchase);
        if event_type == "app_open" {
            self.opens.add(attrs.channel_id.as_deref(), 1);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.user_id.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.event_time.finish()),
            Arc::new(self.attributes.finish()),
            Arc::new(self.campaign_id.finish()),
            Arc::new(self.channel_id.finish()),
            Arc::new(self.purchase_id.finish()),
            Arc::new(self.source_row.finish()),
        ];
        Ok(RecordBatch::try_new(schema::EVENTS.clone(), columns)?)
    }
}

/// Builders of the decoded purchases columns (see [`schema::PURCHASES`]).
pub struct PurchasesBuilder {
    purchase_id: StringBuilder,
    purchase_time: TimestampMicrosecondBuilder,
    billing_cost: Decimal128Builder,
    is_confirmed: BooleanBuilder,
    source_row: Int64Builder,
    rows: usize,
}

impl PurchasesBuilder {
    fn new(capacity: usize) -> Self {
        PurchasesBuilder {
            purchase_id: StringBuilder::with_capacity(capacity, capacity * 36),
            purchase_time: TimestampMicrosecondBuilder::with_capacity(capacity)
                .with_timezone(schema::UTC),
            billing_cost: Decimal128Builder::with_capacity(capacity),
            is_confirmed: BooleanBuilder::with_capacity(capacity),
            source_row: Int64Builder::with_capacity(capacity),
            rows: 0,
        }
    }

    fn push(
        &mut self,
        map: &ColumnMap,
        row: &dyn RowFields,
        file: &str,
        file_index: u32,
        line: u64,
    ) -> Result<()> {
        let purchase_id = non_empty(map.get(row, 0), file, line, "purchaseId")?;
        let purchase_time = timestamp(map.get(row, 1), file, line, "purchaseTime")?;
        let cost_raw = map.get(row, 2);
        let cost = parse_money_micros(cost_raw).map_err(|e| {
            bad(
                file,
                line,
                "billingCost",
                format!("{e}: {:?}", String::from_utf8_lossy(cost_raw)),
            )
        })?;
        let confirmed_raw = map.get(row, 3);
        let confirmed = parse_confirmed(confirmed_raw).ok_or_else(|| {
            bad(
                file,
                line,
                "isConfirmed",
                format!(
                    "unknown value {:?}; expected True/False/true/false/TRUE/FALSE/1/0",
                    String::from_utf8_lossy(confirmed_raw)
                ),
            )
        })?;
        self.purchase_id.append_value(purchase_id);
        self.purchase_time.append_value(purchase_time);
        self.billing_cost.append_value(cost as i128);
        self.is_confirmed.append_value(confirmed);
        self.source_row.append_value(source_row(file_index, line));
        self.rows += 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        self.rows = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.purchase_id.finish()),
            Arc::new(self.purchase_time.finish()),
            Arc::new(
                self.billing_cost
                    .finish()
                    .with_precision_and_scale(18, super::values::MONEY_SCALE)?,
            ),
            Arc::new(self.is_confirmed.finish()),
            Arc::new(self.source_row.finish()),
        ];
        Ok(RecordBatch::try_new(schema::PURCHASES.clone(), columns)?)
    }
}
