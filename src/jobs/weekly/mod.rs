//! Weekly purchases projection: per ISO week and campaign, purchases, confirmed purchases,
//! confirmed revenue and unique sessions.
//!
//! Input: table `projection` (usually a period's, see `crate::period`). Output columns: isoWeek
//! (string `2020-W40`), weekStart (date, the Monday), campaignId (string, null last), purchases,
//! confirmedPurchases, uniqueSessions (int64), confirmedRevenue (decimal(38,2)); ordered by
//! weekStart then campaignId.

pub mod iso_week;

use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;

use crate::error::Result;

/// The query, readable on its own in `weekly.sql`.
pub const SQL: &str = include_str!("weekly.sql");

/// Computes the weekly projection from the registered `projection` table.
pub async fn transform(ctx: &SessionContext) -> Result<DataFrame> {
    Ok(ctx.sql(SQL).await?)
}
