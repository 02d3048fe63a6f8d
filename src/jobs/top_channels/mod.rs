//! Top channels mart: for each campaign, the channel that brought the most distinct sessions.
//!
//! Input: table `projection`. Output columns: campaignId, channelId (strings), uniqueSessions
//! (int64); one row per campaign ordered by campaignId; ties go to the smallest channelId.
//! The SQL and DataFrame versions are the same query, side by side.

use datafusion::dataframe::DataFrame;
use datafusion::functions_aggregate::expr_fn::count_distinct;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::ExprFunctionExt;
use datafusion::prelude::{ident, lit, SessionContext};

use super::{tables, Api};
use crate::error::Result;

/// The query, readable on its own in `top_channels.sql`.
pub const SQL: &str = include_str!("top_channels.sql");

/// Computes the mart from the registered `projection` table.
pub async fn transform(ctx: &SessionContext, api: Api) -> Result<DataFrame> {
    match api {
        Api::Sql => Ok(ctx.sql(SQL).await?),
        Api::Dataframe => dataframe(ctx).await,
    }
}

/// The DataFrame API version of `top_channels.sql`.
async fn dataframe(ctx: &SessionContext) -> Result<DataFrame> {
    let place = row_number()
        .partition_by(vec![ident("campaignId")])
        .order_by(vec![
            ident("uniqueSessions").sort(false, false),
            ident("channelId").sort(true, false),
        ])
        .build()?
        .alias("place");
    Ok(ctx
        .table(tables::PROJECTION)
        .await?
        .filter(
            ident("campaignId")
                .is_not_null()
                .and(ident("channelId").is_not_null()),
        )?
        .aggregate(
            vec![ident("campaignId"), ident("channelId")],
            vec![count_distinct(ident("sessionId")).alias("uniqueSessions")],
        )?
        .window(vec![place])?
        .filter(ident("place").eq(lit(1u64)))?
        .select(vec![
            ident("campaignId"),
            ident("channelId"),
            ident("uniqueSessions"),
        ])?
        .sort(vec![ident("campaignId").sort(true, false)])?)
}
