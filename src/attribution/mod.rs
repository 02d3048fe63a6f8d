//! Purchases attribution projection: sessionizes the clickstream and attributes each purchase
//! to the marketing campaign and channel of its session.
//!
//! - extract: [`extract`] registers the decoded inputs as tables `events` and `purchases`.
//! - transform: [`transform`] is pure over those tables and returns the projection and the
//!   outcome of every purchase event (what was used, what was left out and why).
//! - load: the caller writes the projection (see `crate::output`).
//!
//! Steps: `dedup.sql` (rule 4, shared) → the engine's session step (rules 1–3: `sessionize.sql`
//! for engine `sql`, the `sessionize` aggregate of [`udaf`] for engine `udaf`) → the shared
//! `purchases.sql`, `classify.sql` and `projection.sql`. Both engines produce the same
//! `purchase_events` table, so everything after the session step is one code path.

pub mod bucket;
pub mod dedup;
pub mod functions;
pub mod incremental;
pub mod rules;
pub mod udaf;

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};

use crate::input::schema::TIMESTAMP;
use datafusion::catalog::TableProvider;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::{Ingest, InputFile, TableKind};
use crate::storage::replace_table;

/// How the attribution projection is computed. Every engine gives identical outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// DataFusion SQL with window functions.
    Sql,
    /// The custom aggregate function `sessionize`, grouped by user (the faster engine).
    #[default]
    Udaf,
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Sql => "sql",
            Engine::Udaf => "udaf",
        })
    }
}

/// The purchases attribution projection, in the order and with the types users rely on.
pub static PROJECTION: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("purchaseId", DataType::Utf8, false),
        Field::new("purchaseTime", TIMESTAMP.clone(), false),
        Field::new("billingCost", DataType::Float64, false),
        Field::new("isConfirmed", DataType::Boolean, false),
        Field::new("sessionId", DataType::Utf8, false),
        Field::new("campaignId", DataType::Utf8, true),
        Field::new("channelId", DataType::Utf8, true),
    ]))
});

/// Table names the jobs read from the session context.
pub mod tables {
    /// Decoded clickstream (input/schema.rs `EVENTS`).
    pub const EVENTS: &str = "events";
    /// Decoded purchases (input/schema.rs `PURCHASES`).
    pub const PURCHASES: &str = "purchases";
    /// The attribution projection (input/schema.rs `PROJECTION`), input of the marts.
    pub const PROJECTION: &str = "projection";
}

/// The event half of rule 4, shared by every engine.
pub const DEDUP_SQL: &str = include_str!("dedup.sql");
/// Rules 1–3 as window functions (engine `sql`).
pub const SESSIONIZE_SQL: &str = include_str!("sessionize.sql");
/// Rules 1–3 by the `sessionize` aggregate (engine `udaf`).
pub const SESSIONIZE_UDAF_SQL: &str = include_str!("sessionize_udaf.sql");
/// The purchases half of rule 4.
pub const PURCHASES_SQL: &str = include_str!("purchases.sql");
/// Rule 5: which event attributes which purchase.
pub const CLASSIFY_SQL: &str = include_str!("classify.sql");
/// The projection's columns and order.
pub const PROJECTION_SQL: &str = include_str!("projection.sql");
/// Rule 8's counts.
pub const COUNTS_SQL: &str = include_str!("counts.sql");

/// Intermediate tables the transform registers (small: purchase events and purchases only).
pub mod intermediate {
    /// A view (not materialized): deduplicated boundary and purchase events.
    pub const RELEVANT_EVENTS: &str = "relevant_events";
    pub const PURCHASE_EVENTS: &str = "purchase_events";
    /// The session step's rows when it yields the sessions too (`purchase_events` and
    /// `sessions` are views of it).
    pub const SESSION_STEP: &str = "session_step";
    /// Every session (journey models): userId, sessionId, t, campaignId, channelId.
    pub const SESSIONS: &str = "sessions";
    pub const PURCHASES_RANKED: &str = "purchases_ranked";
    pub const CLASSIFIED: &str = "purchase_events_classified";
}

/// Where the attribution reads from.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub clickstream: Vec<InputFile>,
    pub purchases: Vec<InputFile>,
}

/// The extracted inputs: decoders whose statistics fill in once the tables are scanned.
#[derive(Debug, Clone)]
pub struct Extracted {
    pub clickstream: Ingest,
    pub purchases: Ingest,
}

/// Registers the inputs as tables `events` and `purchases`, decoded by `partitions` threads.
/// With `quarantine_dir`, bad rows go to `DIR/clickstream.csv` and `DIR/purchases.csv` instead
/// of failing the run.
pub fn extract(
    ctx: &SessionContext,
    inputs: &Inputs,
    partitions: usize,
    progress: Option<indicatif::ProgressBar>,
    quarantine_dir: Option<&std::path::Path>,
) -> Result<Extracted> {
    let mut clickstream = Ingest::new(TableKind::Clickstream, inputs.clickstream.clone());
    let mut purchases = Ingest::new(TableKind::Purchases, inputs.purchases.clone());
    clickstream.progress = progress.clone();
    purchases.progress = progress;
    if let Some(dir) = quarantine_dir {
        for ingest in [&mut clickstream, &mut purchases] {
            let path = dir.join(format!("{}.csv", ingest.kind.name()));
            ingest.rejects = Some(std::sync::Arc::new(crate::input::RejectSink::new(path)));
        }
    }
    let extracted = Extracted {
        clickstream,
        purchases,
    };
    register_inputs(ctx, &extracted, partitions)?;
    Ok(extracted)
}

fn register_inputs(ctx: &SessionContext, extracted: &Extracted, partitions: usize) -> Result<()> {
    replace_table(
        ctx,
        tables::EVENTS,
        extracted.clickstream.table(partitions)?,
    )?;
    replace_table(
        ctx,
        tables::PURCHASES,
        extracted.purchases.table(partitions)?,
    )?;
    Ok(())
}

/// What happened to the purchase events and purchases rows, as counted by the transform.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes {
    /// Clickstream rows dropped because another row with the same eventId was kept.
    pub duplicate_events: u64,
    /// Of those, rows whose own eventType is `purchase`.
    pub duplicate_purchase_type_rows: u64,
    /// Distinct purchase events.
    pub purchase_events: u64,
    pub purchase_events_outside_session: u64,
    /// In-session purchase events whose purchase_id an earlier in-session event carries.
    pub purchase_events_superseded: u64,
    pub purchase_events_without_purchase: u64,
    /// Rows of the projection.
    pub attributed_purchases: u64,
    /// Purchases rows dropped because another row with the same purchaseId was kept.
    pub duplicate_purchases: u64,
    /// Distinct purchaseIds.
    pub distinct_purchases: u64,
    /// Duplicate `app_open` rows per their own channel_id: with the decoded `app_open` rows,
    /// the sessions per channel (every distinct app_open opens one, rule 2).
    #[serde(default)]
    pub duplicate_opens: Vec<(Option<String>, u64)>,
}

/// The transform's results.
pub struct Attribution {
    /// The projection (schema `input::attribution::PROJECTION`), sorted by purchaseId.
    pub projection: DataFrame,
    pub outcomes: Outcomes,
}

/// Registers the shared dedup view (`dedup.sql`, or its hashing twin with the same schema and
/// rows) and returns the engine's session-step query (the heaviest query of the job, the one
/// `explain` shows). With `sessions`, the query also yields every session (status `session`)
/// and every row's userId, for the journey models: in the same pass over the clickstream.
pub async fn session_step(
    ctx: &SessionContext,
    engine: Engine,
    how: dedup::Dedup,
    sessions: bool,
) -> Result<String> {
    let view = ctx.sql(DEDUP_SQL).await?;
    let relevant: Arc<dyn TableProvider> = match how {
        dedup::Dedup::Sort => view.into_view(),
        dedup::Dedup::Hash { spill_at } => Arc::new(dedup::RelevantEvents::new(
            ctx.table_provider(tables::EVENTS).await?,
            Arc::new(view.schema().as_arrow().clone()),
            spill_at,
        )),
    };
    replace_table(ctx, intermediate::RELEVANT_EVENTS, relevant)?;
    Ok(session_step_sql(engine, sessions))
}

/// The session step's query of `engine`, with or without the sessions (see [`session_step`]).
pub fn session_step_sql(engine: Engine, sessions: bool) -> String {
    let sql = match engine {
        Engine::Sql => SESSIONIZE_SQL,
        Engine::Udaf => SESSIONIZE_UDAF_SQL,
    };
    let (user, opens, function) = if sessions {
        (
            "userId,",
            "OR (copy = 1 AND eventType = 'app_open')",
            udaf::WITH_SESSIONS,
        )
    } else {
        ("", "", udaf::NAME)
    };
    sql.replace("{user}", user)
        .replace("{opens}", opens)
        .replace("{sessionize}", function)
}

/// Where the transform keeps its intermediate tables (each is computed once and read several
/// times: by the next step and by the counts).
#[derive(Debug, Clone, Default)]
pub enum Materialize {
    /// In memory (`DataFrame::cache`): fastest, but outside the memory pool's accounting.
    #[default]
    Memory,
    /// Under a memory cap: in memory while the pool grants it (up to a quarter of the cap for
    /// all the tables), else as Arrow IPC files under `base`, an absolute path or object-store
    /// URL (see `crate::scratch`), written by this process as the rows stream out, a file per
    /// partition (`crate::intermediate`).
    Pooled {
        base: String,
        held: Arc<crate::storage::intermediate::Held>,
    },
    /// As Parquet under this location, written by the executors of a cluster (where `cache`
    /// would recompute instead) and read back by them.
    DistributedParquet(String),
}

impl Materialize {
    /// Computes `df` once and registers the result as table `name`.
    pub async fn table(&self, ctx: &SessionContext, name: &str, df: DataFrame) -> Result<()> {
        let base = match self {
            Materialize::Memory => {
                let started = std::time::Instant::now();
                let cached = df.cache().await?;
                tracing::debug!(
                    table = name,
                    seconds = started.elapsed().as_secs_f32(),
                    "materialized an intermediate table in memory"
                );
                return replace_table(ctx, name, cached.into_view());
            }
            Materialize::Pooled { base, .. } | Materialize::DistributedParquet(base) => base,
        };
        let location = format!("{}/{name}/", base.trim_end_matches('/'));
        if !crate::input::is_url(&location) {
            std::fs::create_dir_all(&location).map_err(|e| Error::io(&location, e))?;
        }
        if let Materialize::Pooled { held, .. } = self {
            return crate::storage::intermediate::materialize(ctx, name, df, &location, held).await;
        }
        let schema = Arc::new(df.schema().as_arrow().clone());
        df.write_parquet(
            &location,
            datafusion::dataframe::DataFrameWriteOptions::new(),
            Some(crate::storage::output::intermediate_parquet_options()),
        )
        .await?;
        crate::storage::output::register_parquet_dir(ctx, name, &location, schema)
    }
}

/// Computes the projection from the registered tables `events` and `purchases`, in memory and
/// in this process.
pub async fn transform(ctx: &SessionContext, engine: Engine) -> Result<Attribution> {
    transform_with(ctx, engine, &Materialize::Memory, dedup::Dedup::IN_MEMORY).await
}

/// Computes the projection from the registered tables `events` and `purchases`.
///
/// Each input table is scanned once: the purchase events and ranked purchases are materialized
/// (they are a fraction of the clickstream) and everything else reads from them.
pub async fn transform_with(
    ctx: &SessionContext,
    engine: Engine,
    how: &Materialize,
    dedup: dedup::Dedup,
) -> Result<Attribution> {
    transform_keeping(ctx, engine, how, dedup, false).await
}

/// Computes the session step's query `step` once: table `purchase_events`, and with
/// `sessions`, table `sessions` (both views of the one materialized result).
async fn step_tables(
    ctx: &SessionContext,
    step: &str,
    how: &Materialize,
    sessions: bool,
) -> Result<()> {
    let rows = ctx.sql(step).await?;
    if !sessions {
        return how.table(ctx, intermediate::PURCHASE_EVENTS, rows).await;
    }
    how.table(ctx, intermediate::SESSION_STEP, rows).await?;
    for (name, sql) in [
        (intermediate::PURCHASE_EVENTS, STEP_PURCHASE_EVENTS_SQL),
        (intermediate::SESSIONS, STEP_SESSIONS_SQL),
    ] {
        replace_table(ctx, name, ctx.sql(sql).await?.into_view())?;
    }
    Ok(())
}

/// The purchase events of a session step that yielded the sessions too.
const STEP_PURCHASE_EVENTS_SQL: &str = "SELECT eventId, eventType, eventTime, purchaseId, status, \
    sessionId, campaignId, channelId FROM session_step WHERE status <> 'session'";
/// Its sessions, as the journey models read them.
const STEP_SESSIONS_SQL: &str = "SELECT userId, sessionId, eventTime AS t, campaignId, channelId \
    FROM session_step WHERE status = 'session'";

/// [`transform_with`], keeping table `sessions` (every session: userId, sessionId, t,
/// campaignId, channelId) for the journey models, made by the session step in its one pass.
pub async fn transform_keeping_sessions(
    ctx: &SessionContext,
    engine: Engine,
    how: &Materialize,
    dedup: dedup::Dedup,
) -> Result<Attribution> {
    transform_keeping(ctx, engine, how, dedup, true).await
}

async fn transform_keeping(
    ctx: &SessionContext,
    engine: Engine,
    how: &Materialize,
    dedup: dedup::Dedup,
    sessions: bool,
) -> Result<Attribution> {
    let step = session_step(ctx, engine, dedup, sessions).await?;
    let purchases_ranked = ctx.sql(PURCHASES_SQL).await?;
    futures::try_join!(
        step_tables(ctx, &step, how, sessions),
        how.table(ctx, intermediate::PURCHASES_RANKED, purchases_ranked),
    )?;
    let classified = ctx.sql(CLASSIFY_SQL).await?;
    how.table(ctx, intermediate::CLASSIFIED, classified).await?;
    let mut outcomes = read_outcomes(&ctx.sql(COUNTS_SQL).await?.collect().await?)?;
    outcomes.duplicate_opens =
        read_duplicate_opens(&ctx.sql(DUPLICATE_OPENS_SQL).await?.collect().await?)?;
    // From here on only the classified rows are read. Under a cap the ranked purchases stay in
    // memory (about 490 MB at 50M events) for as long as their table is registered: dropped,
    // the projection's sort has that memory instead (the peak RSS of a capped run was there).
    for table in [
        intermediate::PURCHASE_EVENTS,
        intermediate::PURCHASES_RANKED,
    ] {
        ctx.deregister_table(table)?;
    }
    let projection = ctx.sql(PROJECTION_SQL).await?;
    Ok(Attribution {
        projection,
        outcomes,
    })
}

/// The session step alone (rules 1–4), with tables `purchase_events` and `sessions`: what the
/// journey models need of the clickstream when the projection is known already
/// (`marketing-analytics models`).
pub async fn session_tables(
    ctx: &SessionContext,
    engine: Engine,
    how: &Materialize,
    dedup: dedup::Dedup,
) -> Result<()> {
    let step = session_step(ctx, engine, dedup, true).await?;
    step_tables(ctx, &step, how, true).await
}

/// The duplicate `app_open` rows per channel (their own channel_id: the session step keeps it
/// on duplicate rows for this count).
const DUPLICATE_OPENS_SQL: &str =
    "SELECT channelId, COUNT(*) AS n FROM purchase_events_classified \
    WHERE status = 'duplicate_event' AND eventType = 'app_open' GROUP BY channelId";

fn read_duplicate_opens(batches: &[RecordBatch]) -> Result<Vec<(Option<String>, u64)>> {
    let mut out = Vec::new();
    for batch in batches {
        let column = |i: usize| batch.column(i);
        let channels = datafusion::arrow::compute::cast(column(0), &DataType::Utf8)?;
        let (Some(channels), Some(n)) = (
            channels.as_string_opt::<i32>(),
            column(1).as_primitive_opt::<Int64Type>(),
        ) else {
            return Err(Error::Accounting(
                "the duplicate app_open count has unexpected types".into(),
            ));
        };
        for i in 0..batch.num_rows() {
            let channel = channels.is_valid(i).then(|| channels.value(i).to_string());
            out.push((channel, n.value(i) as u64));
        }
    }
    out.sort();
    Ok(out)
}

fn read_outcomes(batches: &[RecordBatch]) -> Result<Outcomes> {
    let batch = batches
        .iter()
        .find(|b| b.num_rows() == 1)
        .ok_or_else(|| Error::Accounting("the counts query returned no row".into()))?;
    let get = |name: &str| -> Result<u64> {
        let col = batch
            .column_by_name(name)
            .ok_or_else(|| Error::Accounting(format!("the counts query has no column {name}")))?;
        let col = col
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| Error::Accounting(format!("count {name} is not an int64")))?;
        Ok(if col.is_null(0) {
            0
        } else {
            col.value(0) as u64
        })
    };
    Ok(Outcomes {
        duplicate_events: get("duplicate_events")?,
        duplicate_purchase_type_rows: get("duplicate_purchase_type_rows")?,
        purchase_events: get("purchase_events")?,
        purchase_events_outside_session: get("purchase_events_outside_session")?,
        purchase_events_superseded: get("purchase_events_superseded")?,
        purchase_events_without_purchase: get("purchase_events_without_purchase")?,
        attributed_purchases: get("attributed_purchases")?,
        duplicate_purchases: get("duplicate_purchases")?,
        distinct_purchases: get("distinct_purchases")?,
        duplicate_opens: Vec::new(),
    })
}
