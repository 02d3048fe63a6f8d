//! Top channels mart: for each campaign, the channel that brought the most distinct sessions.
//!
//! Input: table `projection`. Output columns: campaignId, channelId (strings), uniqueSessions
//! (int64); one row per campaign ordered by campaignId; ties go to the smallest channelId.
//! The SQL and DataFrame versions are the same query, side by side.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::dataframe::DataFrame;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::ExprFunctionExt;
use datafusion::prelude::{ident, lit, SessionContext};
use futures::future::BoxFuture;

use super::registry::{Mart, Scope};
use super::Api;
use crate::attribution::tables;
use crate::error::Result;

/// The mart, as the registry lists it.
pub const MART: Mart = Mart {
    name: "top_channels",
    title: "Top channel of each campaign by unique sessions",
    short: "Top channel of each campaign",
    scope: Scope::Run,
    schema,
    transform: boxed,
    canonical: crate::canonical::top_channels_csv,
};

/// The top channels mart.
static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("campaignId", DataType::Utf8, false),
        Field::new("channelId", DataType::Utf8, false),
        Field::new("uniqueSessions", DataType::Int64, false),
    ]))
});

/// The output schema.
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

fn boxed(ctx: &SessionContext, api: Api) -> BoxFuture<'_, Result<DataFrame>> {
    Box::pin(transform(ctx, api))
}

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
        // COUNT(DISTINCT sessionId) as two groupings, as DataFusion plans the SQL: the
        // distinct sessions are groups that spill under a memory cap. DataFusion's rewrite
        // (`single_distinct_aggregation_to_group_by`) does not see through an alias, so an
        // aliased `count_distinct` kept every channel's sessions in a set that cannot spill (on
        // 50M events, out of memory under a 64 MiB cap). Written out, it does not depend on
        // that rule. `count` skips a null sessionId's group.
        .aggregate(
            vec![ident("campaignId"), ident("channelId"), ident("sessionId")],
            vec![],
        )?
        .aggregate(
            vec![ident("campaignId"), ident("channelId")],
            vec![count(ident("sessionId")).alias("uniqueSessions")],
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};
    use std::sync::Arc;

    use datafusion::arrow::array::{
        AsArray, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::Int64Type;
    use datafusion::datasource::MemTable;

    use super::*;
    use crate::attribution::PROJECTION;

    /// A projection of `sessions` sessions with two purchases each: session `i` is in campaign
    /// `i % 3`, on channel A for three `i % 5` of five, else B.
    fn projection(sessions: usize) -> Vec<RecordBatch> {
        let rows: Vec<usize> = (0..sessions).flat_map(|i| [i, i]).collect();
        rows.chunks(8192)
            .map(|chunk| {
                let n = chunk.len();
                let text = |f: &dyn Fn(usize) -> String| {
                    Arc::new(StringArray::from_iter_values(chunk.iter().map(|&i| f(i))))
                };
                RecordBatch::try_new(
                    PROJECTION.clone(),
                    vec![
                        text(&|i| format!("purchase-{i}")),
                        Arc::new(
                            TimestampMicrosecondArray::from(vec![0; n])
                                .with_timezone(crate::input::schema::UTC),
                        ),
                        Arc::new(Float64Array::from(vec![1.0; n])),
                        Arc::new(BooleanArray::from(vec![true; n])),
                        text(&|i| format!("{i:08x}-0000-4000-8000-000000000000")),
                        text(&|i| (i % 3).to_string()),
                        text(&|i| if i % 5 < 3 { "A" } else { "B" }.to_string()),
                    ],
                )
                .unwrap()
            })
            .collect()
    }

    /// campaignId → (channelId, uniqueSessions) of the mart's rows.
    fn rows(batches: &[RecordBatch]) -> BTreeMap<String, (String, i64)> {
        let mut out = BTreeMap::new();
        for b in batches {
            let (campaigns, channels) = (b.column(0).as_string::<i32>(), b.column(1));
            let channels = channels.as_string::<i32>();
            let sessions = b.column(2).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                let row = (channels.value(i).to_string(), sessions.value(i));
                out.insert(campaigns.value(i).to_string(), row);
            }
        }
        out
    }

    #[tokio::test]
    async fn both_apis_count_distinct_sessions_and_spill_under_a_small_cap() {
        let sessions = 300_000;
        let batches = projection(sessions);
        let mut want = BTreeMap::new();
        let distinct: HashSet<usize> = (0..sessions).collect();
        for c in 0..3 {
            let on_a = distinct
                .iter()
                .filter(|&&i| i % 3 == c && i % 5 < 3)
                .count();
            want.insert(c.to_string(), ("A".to_string(), on_a as i64));
        }
        // 300,000 distinct sessionIds of 36 bytes: several times the cap.
        let cap = 4 << 20;
        for api in [Api::Sql, Api::Dataframe] {
            let ctx = crate::engine::session_context_with_limit(2, Some(cap), None).unwrap();
            let table = MemTable::try_new(PROJECTION.clone(), vec![batches.clone()]).unwrap();
            ctx.register_table(tables::PROJECTION, Arc::new(table))
                .unwrap();
            let got = transform(&ctx, api).await.unwrap().collect().await;
            let got = got.unwrap_or_else(|e| panic!("{api:?} under a {cap}-byte cap: {e}"));
            assert_eq!(rows(&got), want, "{api:?}");
        }
    }
}
