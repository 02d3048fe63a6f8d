//! Top channels mart: for each campaign, the channel that brought the most distinct sessions.
//!
//! Input: table `projection`. Output columns: campaignId, channelId (strings), uniqueSessions
//! (int64); one row per campaign ordered by campaignId; ties go to the smallest channelId.

use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;

use super::Api;
use crate::error::Result;

/// The query, readable on its own in `top_channels.sql`.
pub const SQL: &str = include_str!("top_channels.sql");

/// Computes the mart from the registered `projection` table.
pub async fn transform(ctx: &SessionContext, api: Api) -> Result<DataFrame> {
    match api {
        Api::Sql => Ok(ctx.sql(SQL).await?),
    }
}
