//! Top campaigns mart: the 10 campaigns with the largest confirmed revenue.
//!
//! Input: table `projection`. Output columns: campaignId (string), revenue (decimal(38,2)),
//! ordered by revenue desc, then campaignId asc. The SQL and DataFrame versions are the same
//! query, side by side.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::dataframe::DataFrame;
use datafusion::functions_aggregate::expr_fn::sum;
use datafusion::prelude::{cast, ident, SessionContext};
use futures::future::BoxFuture;

use super::registry::{Mart, Scope};
use super::Api;
use crate::attribution::tables;
use crate::error::Result;

/// The mart, as the registry lists it.
pub const MART: Mart = Mart {
    name: "top_campaigns",
    title: "Top campaigns by confirmed revenue",
    short: "Top campaigns",
    scope: Scope::Run,
    schema,
    transform: boxed,
    canonical: crate::canonical::top_campaigns_csv,
};

/// The top campaigns mart.
static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("campaignId", DataType::Utf8, false),
        Field::new("revenue", DataType::Decimal128(38, 2), false),
    ]))
});

/// The output schema.
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

fn boxed(ctx: &SessionContext, api: Api) -> BoxFuture<'_, Result<DataFrame>> {
    Box::pin(transform(ctx, api))
}

/// The query, readable on its own in `top_campaigns.sql`.
pub const SQL: &str = include_str!("top_campaigns.sql");

/// Computes the mart from the registered `projection` table.
pub async fn transform(ctx: &SessionContext, api: Api) -> Result<DataFrame> {
    match api {
        Api::Sql => Ok(ctx.sql(SQL).await?),
        Api::Dataframe => dataframe(ctx).await,
    }
}

/// The DataFrame API version of `top_campaigns.sql`.
async fn dataframe(ctx: &SessionContext) -> Result<DataFrame> {
    // Exact micro-units before summing, cents after: the same casts as the SQL.
    let exact = cast(ident("billingCost"), DataType::Decimal128(38, 6));
    Ok(ctx
        .table(tables::PROJECTION)
        .await?
        .filter(ident("isConfirmed").and(ident("campaignId").is_not_null()))?
        .aggregate(
            vec![ident("campaignId")],
            vec![sum(exact).alias("exactRevenue")],
        )?
        .select(vec![
            ident("campaignId"),
            cast(ident("exactRevenue"), DataType::Decimal128(38, 2)).alias("revenue"),
        ])?
        .sort(vec![
            ident("revenue").sort(false, false),
            ident("campaignId").sort(true, false),
        ])?
        .limit(0, Some(10))?)
}
