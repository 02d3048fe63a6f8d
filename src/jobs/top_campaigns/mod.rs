//! Top campaigns mart: the 10 campaigns with the largest confirmed revenue.
//!
//! Input: table `projection`. Output columns: campaignId (string), revenue (decimal(38,2)),
//! ordered by revenue desc, then campaignId asc.

use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;

use super::Api;
use crate::error::Result;

/// The query, readable on its own in `top_campaigns.sql`.
pub const SQL: &str = include_str!("top_campaigns.sql");

/// Computes the mart from the registered `projection` table.
pub async fn transform(ctx: &SessionContext, api: Api) -> Result<DataFrame> {
    match api {
        Api::Sql => Ok(ctx.sql(SQL).await?),
    }
}
