//! The canonical text form of the outputs: the CSV format of the expected results shipped with
//! the sample dataset, of the generator's ground truth and of the peer implementations.
//!
//! Comparing two runs, engines or tools is comparing these strings.

use std::fmt::Write as _;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    Date32Type, Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType,
};

use crate::error::{Error, Result};
use crate::input::values::format_timestamp_micros;

/// Header of the projection in canonical form.
pub const PROJECTION_HEADER: &str =
    "purchaseId,purchaseTime,billingCost,isConfirmed,sessionId,campaignId,channelId";
pub const TOP_CAMPAIGNS_HEADER: &str = "campaignId,revenue";
pub const TOP_CHANNELS_HEADER: &str = "campaignId,channelId,uniqueSessions";
pub const WEEKLY_HEADER: &str =
    "isoWeek,weekStart,campaignId,purchases,confirmedPurchases,confirmedRevenue,uniqueSessions";

/// Formats an amount in cents as `123.45`.
pub fn format_cents(cents: i128) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// Divides by `d`, rounding half to even.
fn div_half_even(v: i128, d: i128) -> i128 {
    let (q, r) = (v.div_euclid(d), v.rem_euclid(d));
    match (2 * r).cmp(&d) {
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal if q % 2 != 0 => q + 1,
        _ => q,
    }
}

/// Rounds micro-units to cents, half to even.
pub fn micros_to_cents(micros: i128) -> i128 {
    div_half_even(micros, 10_000)
}

/// Rescales a decimal of scale `scale` to cents, half to even.
pub fn decimal_to_cents(v: i128, scale: i8) -> i128 {
    if scale >= 2 {
        div_half_even(v, 10i128.pow((scale - 2) as u32))
    } else {
        v * 10i128.pow((2 - scale) as u32)
    }
}

pub use crate::input::values::field;

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| Error::Config(format!("output has no column {name}")))
}

fn opt_str(c: &dyn Array, i: usize) -> String {
    if c.is_null(i) {
        String::new()
    } else {
        field(c.as_string::<i32>().value(i))
    }
}

/// The projection as canonical CSV, rows sorted by purchaseId.
pub fn projection_csv(batches: &[RecordBatch]) -> Result<String> {
    let mut rows = Vec::new();
    for b in batches {
        let id = column(b, "purchaseId")?;
        let time = column(b, "purchaseTime")?.as_primitive::<TimestampMicrosecondType>();
        let cost = column(b, "billingCost")?.as_primitive::<Float64Type>();
        let confirmed = column(b, "isConfirmed")?.as_boolean();
        let (session, campaign, channel) = (
            column(b, "sessionId")?,
            column(b, "campaignId")?,
            column(b, "channelId")?,
        );
        for i in 0..b.num_rows() {
            let cents = micros_to_cents((cost.value(i) * 1e6).round() as i128);
            rows.push(format!(
                "{},{},{},{},{},{},{}",
                opt_str(id, i),
                format_timestamp_micros(time.value(i)),
                format_cents(cents),
                confirmed.value(i),
                opt_str(session, i),
                opt_str(campaign, i),
                opt_str(channel, i)
            ));
        }
    }
    rows.sort();
    Ok(join(PROJECTION_HEADER, rows))
}

/// The top campaigns mart as canonical CSV, in its own order.
pub fn top_campaigns_csv(batches: &[RecordBatch]) -> Result<String> {
    let mut rows = Vec::new();
    for b in batches {
        let campaign = column(b, "campaignId")?;
        let revenue = column(b, "revenue")?.as_primitive::<Decimal128Type>();
        let scale = revenue.scale();
        for i in 0..b.num_rows() {
            let cents = decimal_to_cents(revenue.value(i), scale);
            rows.push(format!("{},{}", opt_str(campaign, i), format_cents(cents)));
        }
    }
    Ok(join(TOP_CAMPAIGNS_HEADER, rows))
}

/// The top channels mart as canonical CSV, in its own order.
pub fn top_channels_csv(batches: &[RecordBatch]) -> Result<String> {
    let mut rows = Vec::new();
    for b in batches {
        let campaign = column(b, "campaignId")?;
        let channel = column(b, "channelId")?;
        let sessions = column(b, "uniqueSessions")?.as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            rows.push(format!(
                "{},{},{}",
                opt_str(campaign, i),
                opt_str(channel, i),
                sessions.value(i)
            ));
        }
    }
    Ok(join(TOP_CHANNELS_HEADER, rows))
}

/// The weekly projection as canonical CSV, in its own order.
pub fn weekly_csv(batches: &[RecordBatch]) -> Result<String> {
    let mut rows = Vec::new();
    for b in batches {
        let week = column(b, "isoWeek")?;
        let start = column(b, "weekStart")?.as_primitive::<Date32Type>();
        let campaign = column(b, "campaignId")?;
        let count = |name| -> Result<_> { Ok(column(b, name)?.as_primitive::<Int64Type>()) };
        let (purchases, confirmed, sessions) = (
            count("purchases")?,
            count("confirmedPurchases")?,
            count("uniqueSessions")?,
        );
        let revenue = column(b, "confirmedRevenue")?.as_primitive::<Decimal128Type>();
        for i in 0..b.num_rows() {
            rows.push(format!(
                "{},{},{},{},{},{},{}",
                opt_str(week, i),
                crate::calendar::format_date(start.value(i)),
                opt_str(campaign, i),
                purchases.value(i),
                confirmed.value(i),
                format_cents(decimal_to_cents(revenue.value(i), revenue.scale())),
                sessions.value(i)
            ));
        }
    }
    Ok(join(WEEKLY_HEADER, rows))
}

fn join(header: &str, rows: Vec<String>) -> String {
    let mut out =
        String::with_capacity(rows.iter().map(|r| r.len() + 1).sum::<usize>() + header.len() + 1);
    let _ = writeln!(out, "{header}");
    for r in rows {
        let _ = writeln!(out, "{r}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_round_half_to_even() {
        assert_eq!(micros_to_cents(951_920_000), 95_192);
        assert_eq!(micros_to_cents(1_005_000), 100);
        assert_eq!(micros_to_cents(1_015_000), 102);
        assert_eq!(micros_to_cents(1_015_001), 102);
        assert_eq!(micros_to_cents(1_014_999), 101);
        assert_eq!(format_cents(51_623_193), "516231.93");
        assert_eq!(format_cents(5), "0.05");
    }

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("Google Ads"), "Google Ads");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
