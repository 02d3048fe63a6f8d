//! Weekly purchases projection: per ISO week and campaign, purchases, confirmed purchases,
//! confirmed revenue and unique sessions.
//!
//! Input: table `projection` (usually a period's, see `crate::period`). Output columns: isoWeek
//! (string `2020-W40`), weekStart (date, the Monday), campaignId (string, null last), purchases,
//! confirmedPurchases, uniqueSessions (int64), confirmedRevenue (decimal(38,2)); ordered by
//! weekStart then campaignId.

pub mod iso_week;

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

use super::registry::{Mart, Scope};
use super::Api;
use crate::error::Result;

/// The mart, as the registry lists it.
pub const MART: Mart = Mart {
    name: "weekly",
    title: "Weekly purchases",
    short: "Weekly purchases",
    scope: Scope::Period,
    schema,
    transform: boxed,
    canonical: crate::canonical::weekly_csv,
};

/// The weekly purchases projection.
static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("isoWeek", DataType::Utf8, false),
        Field::new("weekStart", DataType::Date32, false),
        Field::new("campaignId", DataType::Utf8, true),
        Field::new("purchases", DataType::Int64, false),
        Field::new("confirmedPurchases", DataType::Int64, false),
        Field::new("confirmedRevenue", DataType::Decimal128(38, 2), false),
        Field::new("uniqueSessions", DataType::Int64, false),
    ]))
});

/// The output schema.
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

fn boxed(ctx: &SessionContext, _api: Api) -> BoxFuture<'_, Result<DataFrame>> {
    Box::pin(transform(ctx))
}

/// The query, readable on its own in `weekly.sql`.
pub const SQL: &str = include_str!("weekly.sql");

/// Computes the weekly projection from the registered `projection` table.
pub async fn transform(ctx: &SessionContext) -> Result<DataFrame> {
    Ok(ctx.sql(SQL).await?)
}
