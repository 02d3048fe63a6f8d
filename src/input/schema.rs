//! Arrow schemas of the decoded inputs and of the projection.
//!
//! The one place that says which columns exist and what types they have. Column names keep the
//! exports' camelCase so that SQL and outputs read like the data users know.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::values::MONEY_SCALE;

/// The zone of every timestamp: the exports are UTC and say so nowhere.
pub const UTC: &str = "UTC";

/// Timestamps are microseconds in UTC, and say so: Parquet files mark them adjusted to UTC,
/// which Spark reads as `timestamp` (not `timestamp_ntz`) and pandas as zoned.
pub static TIMESTAMP: LazyLock<DataType> =
    LazyLock::new(|| DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())));

/// A timestamp without a zone: what text is parsed from, and what zoned inputs are cast to
/// before they are read as text.
pub const NAIVE_TIMESTAMP: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

/// billingCost inside the program: exact decimal micro-units.
pub const MONEY: DataType = DataType::Decimal128(18, MONEY_SCALE);

/// Clickstream header columns, as the exports name them.
pub const CLICKSTREAM_COLUMNS: [&str; 5] =
    ["userId", "eventId", "eventType", "eventTime", "attributes"];

/// Purchases header columns, as the exports name them.
pub const PURCHASES_COLUMNS: [&str; 4] =
    ["purchaseId", "purchaseTime", "billingCost", "isConfirmed"];

/// `sourceRow` = file number in the input set (sorted by path) << 40 | line number. It makes
/// "first in file order" a total, deterministic order whatever the parallelism.
pub const SOURCE_ROW: &str = "sourceRow";

/// Builds the `sourceRow` value of a line of a file.
pub fn source_row(file_index: u32, line: u64) -> i64 {
    ((file_index as i64) << 40) | (line as i64 & ((1 << 40) - 1))
}

/// The decoded clickstream: the raw columns typed, plus the three attributes the jobs use.
pub static EVENTS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("userId", DataType::Utf8, false),
        Field::new("eventId", DataType::Utf8, false),
        Field::new("eventType", DataType::Utf8, false),
        Field::new("eventTime", TIMESTAMP.clone(), false),
        Field::new("attributes", DataType::Utf8, false),
        Field::new("campaignId", DataType::Utf8, true),
        Field::new("channelId", DataType::Utf8, true),
        Field::new("purchaseId", DataType::Utf8, true),
        Field::new(SOURCE_ROW, DataType::Int64, false),
    ]))
});

/// The decoded purchases.
pub static PURCHASES: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("purchaseId", DataType::Utf8, false),
        Field::new("purchaseTime", TIMESTAMP.clone(), false),
        Field::new("billingCost", MONEY, false),
        Field::new("isConfirmed", DataType::Boolean, false),
        Field::new(SOURCE_ROW, DataType::Int64, false),
    ]))
});
