//! Journey attribution: which touchpoints (sessions) of a user's journey get the credit for a
//! conversion, under each model, per dimension (campaign, channel); and the conversion paths.
//! The rules are the README's Semantics, "Journey attribution".
//!
//! - [`paths`]: one user's paths and the rule-based models' shares (pure);
//! - [`markov`]: the Markov chain's removal effects (one matrix inverse per dimension);
//! - `tally`: every user's journeys summed as the users stream past;
//! - this file: the options, the query (`journeys.sql`: sessions and conversions, walked
//!   sorted by user), and the assembly of the two outputs from the totals.

pub mod markov;
pub mod paths;
mod tally;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, AsArray, Decimal128Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, Schema, SchemaRef};
use datafusion::common::exec_datafusion_err;
use datafusion::common::runtime::SpawnedTask;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::expressions::col as physical_col;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning, SendableRecordBatchStream};
use datafusion::prelude::{ident, SessionContext};

use crate::error::{Error, Result};

/// An attribution model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Model {
    FirstTouch,
    LastTouch,
    Linear,
    PositionBased,
    TimeDecay,
    Markov,
}

impl Model {
    pub const ALL: [Model; 6] = [
        Model::FirstTouch,
        Model::LastTouch,
        Model::Linear,
        Model::PositionBased,
        Model::TimeDecay,
        Model::Markov,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Model::FirstTouch => "first_touch",
            Model::LastTouch => "last_touch",
            Model::Linear => "linear",
            Model::PositionBased => "position_based",
            Model::TimeDecay => "time_decay",
            Model::Markov => "markov",
        }
    }

    pub fn parse(name: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a path's keys are transformed before the models read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PathTransform {
    /// Collapse consecutive equal keys.
    #[default]
    Exposure,
    /// Keep the first occurrence of each key.
    First,
    /// Keep every position.
    None,
}

impl PathTransform {
    pub fn name(self) -> &'static str {
        match self {
            PathTransform::Exposure => "exposure",
            PathTransform::First => "first",
            PathTransform::None => "none",
        }
    }
}

/// The dimensions a touchpoint is keyed by.
pub const DIMENSIONS: [&str; 2] = ["campaign", "channel"];

const DAY_MICROS: i64 = 86_400_000_000;

/// What the journey models are computed with (`--models`, `--lookback-days`,
/// `--lookback-steps`, `--path-transform`, `--half-life-days`).
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub models: Vec<Model>,
    pub lookback_micros: i64,
    /// Keep only the last N positions of a path (0: all).
    pub steps: usize,
    pub transform: PathTransform,
    /// Time decay's half-life.
    pub half_life_micros: f64,
    /// Marketing spend files (`--spend`), for each key's spend and ROAS.
    pub spend: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            models: Model::ALL.to_vec(),
            lookback_micros: 30 * DAY_MICROS,
            steps: 0,
            transform: PathTransform::Exposure,
            half_life_micros: (7 * DAY_MICROS) as f64,
            spend: None,
        }
    }
}

impl Options {
    /// Options from the command line's units (days).
    pub fn new(
        models: Vec<Model>,
        lookback_days: u32,
        steps: usize,
        transform: PathTransform,
        half_life_days: f64,
    ) -> Options {
        let mut models = models;
        models.sort();
        models.dedup();
        Options {
            models,
            lookback_micros: i64::from(lookback_days) * DAY_MICROS,
            steps,
            transform,
            half_life_micros: half_life_days * DAY_MICROS as f64,
            spend: None,
        }
    }
}

/// The dates a period's models are for (inclusive day numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: i32,
    pub to: i32,
}

impl Range {
    fn start_micros(self) -> i64 {
        i64::from(self.from) * DAY_MICROS
    }

    /// The end, excluded: midnight after `to`.
    fn end_micros(self) -> i64 {
        (i64::from(self.to) + 1) * DAY_MICROS
    }
}

impl Options {
    /// Whole days of clickstream a path can reach before its conversion.
    pub fn lookback_days(&self) -> i32 {
        (self.lookback_micros.div_euclid(DAY_MICROS) + 1) as i32
    }
}

/// `OUTPUT/attribution_models/`.
pub static ATTRIBUTION_MODELS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("dimension", DataType::Utf8, false),
        Field::new("touchpoint", DataType::Utf8, true),
        Field::new("conversions", DataType::Float64, false),
        Field::new("revenue", DataType::Float64, false),
        Field::new("spend", DataType::Decimal128(38, 2), true),
        Field::new("roas", DataType::Float64, true),
    ]))
});

/// `OUTPUT/conversion_paths/`.
pub static CONVERSION_PATHS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("dimension", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, true),
        Field::new("conversions", DataType::Int64, false),
        Field::new("nonConversions", DataType::Int64, false),
        Field::new("revenue", DataType::Decimal128(38, 2), false),
    ]))
});

/// Output dataset names.
pub const MODELS_DATASET: &str = "attribution_models";
pub const PATHS_DATASET: &str = "conversion_paths";

/// The sessions and conversions of everyone, sorted by user (`journeys.sql`).
pub const JOURNEYS_SQL: &str = include_str!("journeys.sql");
/// The conversions of a stored projection, as journeys.sql reads them (`models`).
pub const FROM_PROJECTION_SQL: &str = include_str!("from_projection.sql");

/// Per dimension, the counts `summary.json` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub conversions: u64,
    /// Conversions whose path is not empty.
    pub converting_paths: u64,
    pub non_converting_paths: u64,
    /// Conversions whose path is empty (their credit goes to the null touchpoint).
    pub empty_paths: u64,
}

/// What the models produced.
#[derive(Debug, Clone)]
pub struct Journeys {
    pub models: RecordBatch,
    pub paths: RecordBatch,
    /// Per dimension.
    pub counts: BTreeMap<String, Counts>,
}

/// How the users' journeys are walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// One stream sorted by user, sorted where the query runs: on a cluster, by its executors.
    OneStream,
    /// The users hash-partitioned into the context's target partitions, each partition sorted
    /// and walked on a core of its own, in this process.
    Partitioned,
}

/// The order the journeys are walked in: by user, then in session order, each conversion after
/// its session (a session without one has a single row); ascending, nulls last, as SQL's.
const USER_ORDER: [&str; 5] = ["userId", "t", "sessionId", "ct", "purchaseId"];

/// Computes the models from the attribution's tables on `ctx` (`sessions` and
/// `purchase_events_classified`, as `attribution::transform_keeping_sessions` leaves them).
///
/// The sessions and conversions come sorted by user (the sort runs where the query runs, and
/// spills under a memory cap); each user's journeys are summed as they stream past, so nothing
/// but the totals and one user's sessions is held per stream. The totals are sums of integers:
/// the outputs are the same however the users are split (`walk`).
pub async fn transform(
    ctx: &SessionContext,
    options: &Options,
    spend: &[crate::input::spend::SpendRow],
    period: Option<Range>,
    walk: Walk,
) -> Result<Journeys> {
    let micros = period.map(|p| (p.start_micros(), p.end_micros()));
    let journeys = ctx.sql(JOURNEYS_SQL).await?;
    let totals = match walk {
        Walk::OneStream => {
            let order = USER_ORDER.map(|c| ident(c).sort(true, false));
            let stream = journeys.sort(order.to_vec())?.execute_stream().await?;
            walk_users(stream, options, micros).await?
        }
        Walk::Partitioned => {
            let parts = ctx.copied_config().target_partitions();
            let plan = sorted_by_user(journeys.create_physical_plan().await?, parts)?;
            let mut tasks = Vec::with_capacity(parts);
            for part in 0..parts {
                let stream = plan.execute(part, ctx.task_ctx())?;
                let options = options.clone();
                tasks.push(SpawnedTask::spawn(async move {
                    walk_users(stream, &options, micros).await
                }));
            }
            let mut totals = tally::Totals::default();
            for task in tasks {
                let part = task.join().await.map_err(|e| {
                    Error::DataFusion(exec_datafusion_err!("journeys: a walk failed: {e}"))
                })??;
                totals.add(part);
            }
            totals
        }
    };
    let in_range = |row: &&crate::input::spend::SpendRow| {
        period.is_none_or(|p| (p.from..=p.to).contains(&row.date))
    };
    let spend: Vec<_> = spend.iter().filter(in_range).cloned().collect();
    assemble(totals, options, &spend)
}

/// `plan`'s rows hash-partitioned by user into `parts`, each part sorted in [`USER_ORDER`].
fn sorted_by_user(plan: Arc<dyn ExecutionPlan>, parts: usize) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = plan.schema();
    let user = physical_col("userId", &schema)?;
    let by_user = RepartitionExec::try_new(plan, Partitioning::Hash(vec![user], parts))?;
    let last = SortOptions {
        descending: false,
        nulls_first: false,
    };
    let mut order = Vec::with_capacity(USER_ORDER.len());
    for column in USER_ORDER {
        order.push(PhysicalSortExpr::new(physical_col(column, &schema)?, last));
    }
    let order = LexOrdering::new(order).ok_or_else(|| missing("userId"))?;
    let sorted = SortExec::new(order, Arc::new(by_user)).with_preserve_partitioning(true);
    Ok(Arc::new(sorted))
}

/// Sums the journeys of the users of `stream` (sorted in [`USER_ORDER`]).
async fn walk_users(
    mut stream: SendableRecordBatchStream,
    options: &Options,
    micros: Option<(i64, i64)>,
) -> Result<tally::Totals> {
    let mut tally = tally::Tally::default();
    // The user and session of the row before, in buffers kept across rows and batches.
    let (mut user, mut last_session) = (String::new(), String::new());
    let mut started = false;
    let mut sessions: Vec<tally::UserSession> = Vec::new();
    let mut conversions: Vec<tally::UserConversion> = Vec::new();
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        let batch = batch?;
        let text = |name: &str| -> Result<StringArray> {
            let column = batch.column_by_name(name).ok_or_else(|| missing(name))?;
            let column = datafusion::arrow::compute::cast(column, &DataType::Utf8)?;
            Ok(column.as_string::<i32>().clone())
        };
        let time = |name: &str| -> Result<Vec<Option<i64>>> {
            let column = batch.column_by_name(name).ok_or_else(|| missing(name))?;
            let column = column
                .as_primitive_opt::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
                .ok_or_else(|| missing(name))?;
            Ok(column.iter().collect())
        };
        let (users, ids) = (text("userId")?, text("sessionId")?);
        let (campaigns, channels, purchases) =
            (text("campaignId")?, text("channelId")?, text("purchaseId")?);
        let (times, conversion_times, purchase_times) = (time("t")?, time("ct")?, time("pt")?);
        let values = batch
            .column_by_name("v")
            .and_then(|c| c.as_primitive_opt::<Decimal128Type>())
            .ok_or_else(|| missing("v"))?;
        for i in 0..batch.num_rows() {
            if !started || user != users.value(i) {
                if started {
                    tally.add_user(&sessions, &conversions, options, micros);
                }
                started = true;
                user.clear();
                user.push_str(users.value(i));
                last_session.clear();
                sessions.clear();
                conversions.clear();
            }
            if sessions.is_empty() || last_session != ids.value(i) {
                let mut key =
                    |d: usize, a: &StringArray| (!a.is_null(i)).then(|| tally.key(d, a.value(i)));
                let keys = [key(0, &campaigns), key(1, &channels)];
                sessions.push(tally::UserSession {
                    time: times[i].ok_or_else(|| missing("t"))?,
                    keys,
                });
                last_session.clear();
                last_session.push_str(ids.value(i));
            }
            if !purchases.is_null(i) {
                let purchased = purchase_times[i].ok_or_else(|| missing("pt"))?;
                conversions.push(tally::UserConversion {
                    conversion: paths::Conversion {
                        session: sessions.len() - 1,
                        time: conversion_times[i].ok_or_else(|| missing("ct"))?,
                    },
                    value: values.value(i),
                    counts: micros.is_none_or(|(from, to)| (from..to).contains(&purchased)),
                });
            }
        }
    }
    if started {
        tally.add_user(&sessions, &conversions, options, micros);
    }
    Ok(tally.totals())
}

fn missing(name: &str) -> Error {
    Error::Config(format!(
        "journeys.sql: no column {name} of the expected type"
    ))
}

/// One credit: a sum of shares and of revenue shares.
#[derive(Debug, Clone, Copy, Default)]
struct Credit {
    conversions: f64,
    revenue: f64,
}

/// A path's aggregate: the path (null: empty), conversions, non-conversions, value in
/// micro-units.
type PathRow = (Option<String>, i64, i64, i128);
/// A transition's aggregate: from (null: start), to (null: the end), whether the end is
/// conversion, count.
type TransitionRow = (Option<String>, Option<String>, bool, u64);
/// A row of `attribution_models`: dimension, model, key, credit, spend in micro-units.
type ModelRow = (String, String, Option<String>, Credit, Option<i128>);

fn assemble(
    tally: tally::Totals,
    options: &Options,
    spend: &[crate::input::spend::SpendRow],
) -> Result<Journeys> {
    let credits: BTreeMap<(String, String, Option<String>), Credit> = tally
        .credits
        .into_iter()
        .map(|(k, (c, r))| {
            let credit = Credit {
                conversions: c as f64 / tally::ONE,
                revenue: r as f64 / tally::ONE,
            };
            (k, credit)
        })
        .collect();
    let path_keys = tally.keys;
    let mut paths: BTreeMap<String, Vec<PathRow>> = BTreeMap::new();
    for ((dim, path), (c, n, v)) in tally.paths {
        paths.entry(dim).or_default().push((path, c, n, v));
    }
    let mut transitions: BTreeMap<String, Vec<TransitionRow>> = BTreeMap::new();
    for ((dim, from, to, converted), n) in tally.transitions {
        transitions
            .entry(dim)
            .or_default()
            .push((from, to, converted, n));
    }
    let mut counts = BTreeMap::new();
    let mut model_rows: Vec<ModelRow> = Vec::new();
    let mut path_rows = Vec::new();
    for dim in DIMENSIONS {
        let dim_paths = paths.remove(dim).unwrap_or_default();
        let mut c = Counts::default();
        let (mut with_path, mut with_path_value) = (0u64, 0i128);
        for (path, converted, non, value) in &dim_paths {
            c.conversions += *converted as u64;
            c.non_converting_paths += *non as u64;
            match path {
                None => c.empty_paths += *converted as u64,
                Some(_) => {
                    c.converting_paths += *converted as u64;
                    with_path += *converted as u64;
                    with_path_value += value;
                }
            }
        }
        // The keys of converting paths, and null when a conversion had an empty path.
        let mut keys: BTreeSet<Option<String>> = path_keys
            .get(dim)
            .into_iter()
            .flatten()
            .map(|k| Some(k.clone()))
            .collect();
        if c.empty_paths > 0 {
            keys.insert(None);
        }
        let converting_keys = keys.clone();
        // A key with spend has its rows too, with what the models gave it (maybe nothing).
        let mut key_spend: BTreeMap<String, i128> = BTreeMap::new();
        for row in spend {
            let id = match dim {
                "campaign" => &row.campaign_id,
                _ => &row.channel_id,
            };
            if let Some(id) = id {
                *key_spend.entry(id.clone()).or_default() += i128::from(row.micros);
            }
        }
        keys.extend(key_spend.keys().cloned().map(Some));
        let markov = if options.models.contains(&Model::Markov) {
            Some(markov_credits(
                transitions.remove(dim).unwrap_or_default(),
                &converting_keys,
                with_path,
                with_path_value,
                &dim_paths,
            ))
        } else {
            None
        };
        for model in &options.models {
            for key in &keys {
                let credit = match model {
                    Model::Markov => markov
                        .as_ref()
                        .and_then(|m| m.get(key).copied())
                        .unwrap_or_default(),
                    _ => credits
                        .get(&(dim.to_string(), model.name().to_string(), key.clone()))
                        .copied()
                        .unwrap_or_default(),
                };
                let spent = key.as_ref().and_then(|k| key_spend.get(k).copied());
                model_rows.push((
                    dim.to_string(),
                    model.name().to_string(),
                    key.clone(),
                    credit,
                    spent,
                ));
            }
            check_identity(dim, *model, &model_rows, &c, &dim_paths)?;
        }
        for (path, converted, non, value) in dim_paths {
            path_rows.push((dim.to_string(), path, converted, non, value));
        }
        counts.insert(dim.to_string(), c);
    }
    model_rows.sort_by(|a, b| {
        (&a.0, &a.1)
            .cmp(&(&b.0, &b.1))
            .then(b.3.revenue.total_cmp(&a.3.revenue))
            .then(nulls_last(&a.2, &b.2))
    });
    path_rows.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.2.cmp(&a.2))
            .then(nulls_last(&a.1, &b.1))
    });
    let models = RecordBatch::try_new(
        ATTRIBUTION_MODELS.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                model_rows.iter().map(|r| &r.1),
            )),
            Arc::new(StringArray::from_iter_values(
                model_rows.iter().map(|r| &r.0),
            )),
            Arc::new(StringArray::from_iter(
                model_rows.iter().map(|r| r.2.as_deref()),
            )),
            Arc::new(Float64Array::from_iter_values(
                model_rows.iter().map(|r| r.3.conversions),
            )),
            Arc::new(Float64Array::from_iter_values(
                model_rows.iter().map(|r| r.3.revenue),
            )),
            Arc::new(
                Decimal128Array::from_iter(model_rows.iter().map(|r| r.4.map(cents)))
                    .with_precision_and_scale(38, 2)?,
            ),
            // ROAS = attributed revenue / spend; null without spend or with none spent.
            Arc::new(Float64Array::from_iter(model_rows.iter().map(|r| {
                r.4.filter(|m| *m > 0)
                    .map(|m| r.3.revenue / (m as f64 / 1e6))
            }))),
        ],
    )?;
    let paths = RecordBatch::try_new(
        CONVERSION_PATHS.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                path_rows.iter().map(|r| &r.0),
            )),
            Arc::new(StringArray::from_iter(
                path_rows.iter().map(|r| r.1.as_deref()),
            )),
            Arc::new(Int64Array::from_iter_values(path_rows.iter().map(|r| r.2))),
            Arc::new(Int64Array::from_iter_values(path_rows.iter().map(|r| r.3))),
            Arc::new(
                Decimal128Array::from_iter_values(path_rows.iter().map(|r| cents(r.4)))
                    .with_precision_and_scale(38, 2)?,
            ),
        ],
    )?;
    Ok(Journeys {
        models,
        paths,
        counts,
    })
}

/// Micro-units to cents, half away from zero (money is never negative here).
fn cents(micros: i128) -> i128 {
    (micros + 5_000) / 10_000
}

fn nulls_last(a: &Option<String>, b: &Option<String>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(a), Some(b)) => a.cmp(b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}

/// The Markov credits of one dimension: RE_c / ΣRE of the count and value of the conversions
/// with a non-empty path, over the keys of converting paths; the null touchpoint keeps the
/// conversions whose path was empty (as in every model).
fn markov_credits(
    transitions: Vec<TransitionRow>,
    keys: &BTreeSet<Option<String>>,
    with_path: u64,
    with_path_value: i128,
    paths: &[PathRow],
) -> BTreeMap<Option<String>, Credit> {
    // Every key of the chain, in a fixed order.
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for (from, to, _, _) in &transitions {
        names.extend(from.as_deref());
        names.extend(to.as_deref());
    }
    let names: Vec<&str> = names.into_iter().collect();
    let index = |k: &str| names.binary_search(&k).ok();
    let mut chain = markov::Chain {
        keys: names.len(),
        ..Default::default()
    };
    for (from, to, converted, n) in &transitions {
        let from = match from.as_deref().and_then(index) {
            Some(i) => markov::State::Key(i),
            None => markov::State::Start,
        };
        let to = match to.as_deref().and_then(index) {
            Some(i) => markov::State::Key(i),
            None if *converted => markov::State::Conversion,
            None => markov::State::Null,
        };
        *chain.counts.entry((from, to)).or_default() += n;
    }
    let effects = chain.removal_effects();
    let effect = |k: &str| index(k).map(|i| effects[i]).unwrap_or(0.0);
    let total: f64 = keys.iter().flatten().map(|k| effect(k)).sum();
    let mut out = BTreeMap::new();
    for key in keys {
        let credit = match key {
            Some(k) if total > 0.0 => {
                let share = effect(k) / total;
                Credit {
                    conversions: share * with_path as f64,
                    revenue: share * with_path_value as f64 / 1e6,
                }
            }
            Some(_) => Credit::default(),
            None => {
                let (n, v) = paths
                    .iter()
                    .filter(|p| p.0.is_none())
                    .fold((0i64, 0i128), |(n, v), p| (n + p.1, v + p.3));
                Credit {
                    conversions: n as f64,
                    revenue: v as f64 / 1e6,
                }
            }
        };
        out.insert(key.clone(), credit);
    }
    out
}

/// Per (dimension, model): Σ conversions = the conversions and Σ revenue = their value, as the
/// program checks its accounting.
fn check_identity(
    dim: &str,
    model: Model,
    rows: &[ModelRow],
    counts: &Counts,
    paths: &[PathRow],
) -> Result<()> {
    let (n, v) = rows
        .iter()
        .filter(|r| r.0 == dim && r.1 == model.name())
        .fold((0.0, 0.0), |(n, v), r| {
            (n + r.3.conversions, v + r.3.revenue)
        });
    let value = paths.iter().map(|p| p.3).sum::<i128>() as f64 / 1e6;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    if counts.conversions > 0 && (!close(n, counts.conversions as f64) || !close(v, value)) {
        return Err(Error::Accounting(format!(
            "model {model}, dimension {dim}: credits sum to {n} conversions and {v} revenue, \
             where there are {} conversions worth {value}",
            counts.conversions
        )));
    }
    Ok(())
}

/// Keys shown per dimension by [`side_by_side`].
const SHOWN: usize = 10;

/// The models side by side, for the terminal: per dimension the top keys (by their mean
/// revenue share over the models), one column per model with the key's share of the revenue.
pub fn side_by_side(models: &RecordBatch) -> Result<RecordBatch> {
    let text = |i: usize| models.column(i).as_string::<i32>();
    let (model, dimension, touchpoint) = (text(0), text(1), text(2));
    let revenue = models
        .column(4)
        .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
    let mut names: Vec<&str> = Vec::new();
    // (dimension, key) → model → revenue; (dimension, model) → total.
    let mut by_key: BTreeMap<(&str, Option<&str>), BTreeMap<&str, f64>> = BTreeMap::new();
    let mut totals: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for i in 0..models.num_rows() {
        let (m, d) = (model.value(i), dimension.value(i));
        if !names.contains(&m) {
            names.push(m);
        }
        let key = (!touchpoint.is_null(i)).then(|| touchpoint.value(i));
        by_key
            .entry((d, key))
            .or_default()
            .insert(m, revenue.value(i));
        *totals.entry((d, m)).or_default() += revenue.value(i);
    }
    let share = |d: &str, m: &str, r: f64| {
        let t = totals.get(&(d, m)).copied().unwrap_or(0.0);
        if t > 0.0 {
            r / t
        } else {
            0.0
        }
    };
    let mut rows: Vec<(&str, Option<&str>, Vec<f64>)> = by_key
        .iter()
        .map(|((d, k), per)| {
            let shares = names
                .iter()
                .map(|m| share(d, m, per.get(m).copied().unwrap_or(0.0)))
                .collect();
            (*d, *k, shares)
        })
        .collect();
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len().max(1) as f64;
    rows.sort_by(|a, b| {
        a.0.cmp(b.0)
            .then(mean(&b.2).total_cmp(&mean(&a.2)))
            .then(a.1.cmp(&b.1))
    });
    let mut shown = Vec::new();
    for dim in DIMENSIONS {
        shown.extend(rows.iter().filter(|r| r.0 == dim).take(SHOWN));
    }
    let mut fields = vec![
        Field::new("dimension", DataType::Utf8, false),
        Field::new("touchpoint", DataType::Utf8, false),
    ];
    fields.extend(names.iter().map(|m| Field::new(*m, DataType::Utf8, false)));
    let mut columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(StringArray::from_iter_values(shown.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter_values(
            shown.iter().map(|r| r.1.unwrap_or("(none)")),
        )),
    ];
    for j in 0..names.len() {
        columns.push(Arc::new(StringArray::from_iter_values(
            shown.iter().map(|r| format!("{:.1}%", r.2[j] * 100.0)),
        )));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}
