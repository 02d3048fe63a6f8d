//! What a change of the inputs can change of the projection, so that a warehouse computes
//! again only that part (`app::projection`).
//!
//! Input tables: [`ALL_EVENTS`] and [`ALL_PURCHASES`], everything the inputs hold now, each
//! with its `date`; [`CHANGED_EVENTS`] and [`CHANGED_PURCHASES`], the rows added or removed
//! since the projection was computed. [`affected`] finds the purchases whose projection row can
//! differ and the users whose events decide them; [`register_affected`] registers those rows
//! as the transform's `events` and `purchases`. The standard transform over them gives the
//! affected purchases' rows exactly as over everything, because:
//!
//! - A user's sessions depend on their kept events only, and which row of an eventId is kept
//!   depends on that eventId's rows only (rules 1–4). So the sessions that can change are those
//!   of the users of changed rows and of the users holding a changed row's eventId.
//! - A purchase's row depends on its purchases rows and on every in-session event carrying its
//!   purchaseId, of any user (rule 5). So the purchases that can change are those of changed
//!   purchases rows and those any row of a user above carries.
//! - Computing them needs every event carrying those purchaseIds, hence the sessions of every
//!   user carrying one; and a user's sessions are computed right only with every row of each
//!   of their eventIds, so the users read are closed under sharing an eventId.
//!
//! Keys are held as their 64-bit `key_hash`: two keys with one hash make both affected, which
//! costs time, never a wrong row.

use std::collections::{BTreeSet, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Date32Type, Int64Type};
use datafusion::common::{exec_err, ScalarValue};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::tables;
use crate::error::{Error, Result};
use crate::input::schema;
use crate::storage::replace_table;

/// Every clickstream row the inputs hold, with its `date`.
pub const ALL_EVENTS: &str = "all_events";
/// Every purchases row, with its `date`.
pub const ALL_PURCHASES: &str = "all_purchases";
/// The clickstream rows added or removed since the projection was computed.
pub const CHANGED_EVENTS: &str = "changed_events";
/// The purchases rows added or removed since then.
pub const CHANGED_PURCHASES: &str = "changed_purchases";
/// `affected_purchase(key_hash(purchaseId))`: whether a purchase is affected (registered by
/// [`register_affected`]).
pub const AFFECTED_PURCHASE: &str = "affected_purchase";
/// `affected_user(key_hash(userId))`: whether a user's rows are read.
const AFFECTED_USER: &str = "affected_user";

/// The part of the inputs a change can reach.
#[derive(Debug, Default)]
pub struct Affected {
    /// Key hashes of the purchaseIds whose projection rows are computed again.
    pub purchases: KeySet,
    /// Key hashes of the users whose events are read.
    pub users: KeySet,
    /// The dates of the clickstream holding those users' rows.
    pub event_dates: BTreeSet<i32>,
    /// The dates of the purchases holding those purchaseIds' rows.
    pub purchase_dates: BTreeSet<i32>,
}

/// A set of key hashes: the keys are hashes already, so they are their own hash.
pub type KeySet = HashSet<i64, BuildHasherDefault<KeyHasher>>;

/// The hasher of [`KeySet`].
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_i64(&mut self, v: i64) {
        self.0 = v as u64;
    }
}

/// One batch of key rows: user, event, purchase (null but on purchase events) and date.
struct KeyRows<'a> {
    users: &'a [i64],
    events: &'a [i64],
    purchases: &'a Int64Array,
    dates: &'a [i32],
}

/// The key rows of every clickstream row, for each pass: held in memory, or read again.
enum Rows {
    Held(Vec<RecordBatch>),
    Read(String),
}

impl Rows {
    async fn each(&self, ctx: &SessionContext, f: &mut dyn FnMut(&KeyRows)) -> Result<()> {
        match self {
            Rows::Held(batches) => {
                for batch in batches {
                    f(&key_rows(batch)?);
                }
            }
            Rows::Read(sql) => {
                let mut stream = ctx.sql(sql).await?.execute_stream().await?;
                while let Some(batch) = stream.next().await {
                    f(&key_rows(&batch?)?);
                }
            }
        }
        Ok(())
    }
}

fn key_rows(batch: &RecordBatch) -> Result<KeyRows<'_>> {
    let columns = batch.columns();
    let unexpected =
        || Error::Accounting("the incremental projection's key scan has unexpected columns".into());
    let [u, e, p, d] = columns else {
        return Err(unexpected());
    };
    let (Some(u), Some(e), Some(p), Some(d)) = (
        u.as_primitive_opt::<Int64Type>(),
        e.as_primitive_opt::<Int64Type>(),
        p.as_primitive_opt::<Int64Type>(),
        d.as_primitive_opt::<Date32Type>(),
    ) else {
        return Err(unexpected());
    };
    if u.null_count() + e.null_count() + d.null_count() > 0 {
        return Err(unexpected());
    }
    Ok(KeyRows {
        users: u.values(),
        events: e.values(),
        purchases: p,
        dates: d.values(),
    })
}

/// The changed rows' keys.
#[derive(Default)]
struct Seeds {
    users: KeySet,
    events: KeySet,
    purchases: KeySet,
}

/// What `seeds` reach in `rows`, and the number of passes over them after the first.
async fn reach(
    ctx: &SessionContext,
    seeds: Seeds,
    rows: &Rows,
) -> Result<(KeySet, KeySet, BTreeSet<i32>, usize)> {
    // The users whose sessions can change: of a changed row, or holding its eventId; and every
    // purchase row, for the purchases those users carry and the users carrying them.
    let mut changed_users = seeds.users;
    let mut purchase_rows: Vec<(i64, i64)> = Vec::new();
    rows.each(ctx, &mut |r: &KeyRows| {
        for (i, (u, e)) in r.users.iter().zip(r.events).enumerate() {
            if seeds.events.contains(e) {
                changed_users.insert(*u);
            }
            if r.purchases.is_valid(i) {
                purchase_rows.push((*u, r.purchases.value(i)));
            }
        }
    })
    .await?;
    let mut purchases = seeds.purchases;
    for (u, p) in &purchase_rows {
        if changed_users.contains(u) {
            purchases.insert(*p);
        }
    }
    let mut users = changed_users;
    for (u, p) in &purchase_rows {
        if purchases.contains(p) {
            users.insert(*u);
        }
    }
    drop(purchase_rows);
    // Closed under sharing an eventId: the eventIds of the users read (the newest of them
    // each round), then any other user holding one.
    let mut events = KeySet::default();
    let mut dates = BTreeSet::new();
    let mut newest = users.clone();
    let mut passes = 1;
    loop {
        rows.each(ctx, &mut |r: &KeyRows| {
            for ((u, e), d) in r.users.iter().zip(r.events).zip(r.dates) {
                if newest.contains(u) {
                    events.insert(*e);
                    dates.insert(*d);
                }
            }
        })
        .await?;
        let mut more = KeySet::default();
        rows.each(ctx, &mut |r: &KeyRows| {
            for (u, e) in r.users.iter().zip(r.events) {
                if !users.contains(u) && events.contains(e) {
                    more.insert(*u);
                }
            }
        })
        .await?;
        passes += 2;
        if more.is_empty() {
            break;
        }
        users.extend(more.iter());
        newest = more;
    }
    Ok((purchases, users, dates, passes))
}

const EVENT_KEYS: &str = "SELECT key_hash(userId) AS u, key_hash(eventId) AS e, \
    key_hash(purchaseId) AS p, date FROM ";

/// Finds what the changed rows can reach (module doc). Reads the key columns of
/// [`ALL_EVENTS`] once, holding them (28 bytes a row, reserved from the memory pool) for the
/// passes that follow; when the pool refuses, each pass reads them again.
pub async fn affected(ctx: &SessionContext) -> Result<Affected> {
    let mut seeds = Seeds::default();
    for batch in collect(ctx, &format!("{EVENT_KEYS}{CHANGED_EVENTS}")).await? {
        let r = key_rows(&batch)?;
        seeds.users.extend(r.users);
        seeds.events.extend(r.events);
        seeds.purchases.extend(r.purchases.iter().flatten());
    }
    let changed = collect(
        ctx,
        &format!("SELECT key_hash(purchaseId) AS p FROM {CHANGED_PURCHASES}"),
    )
    .await?;
    for batch in &changed {
        let p = batch
            .column(0)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| Error::Accounting("a purchaseId's hash is not an int64".into()))?;
        seeds.purchases.extend(p.iter().flatten());
    }

    let sql = format!("{EVENT_KEYS}{ALL_EVENTS}");
    let reservation =
        MemoryConsumer::new("incremental projection keys").register(&ctx.runtime_env().memory_pool);
    let rows = hold(ctx, &sql, &reservation).await?;
    let (purchases, users, event_dates, passes) = reach(ctx, seeds, &rows).await?;
    drop(rows);
    reservation.free();

    let mut purchase_dates = BTreeSet::new();
    let sql = format!("SELECT key_hash(purchaseId) AS p, date FROM {ALL_PURCHASES}");
    let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let (Some(p), Some(d)) = (
            batch.column(0).as_primitive_opt::<Int64Type>(),
            batch.column(1).as_primitive_opt::<Date32Type>(),
        ) else {
            return Err(Error::Accounting(
                "the incremental projection's purchase scan has unexpected columns".into(),
            ));
        };
        for i in 0..batch.num_rows() {
            if p.is_valid(i) && purchases.contains(&p.value(i)) {
                purchase_dates.insert(d.value(i));
            }
        }
    }
    tracing::debug!(
        passes,
        users = users.len(),
        purchases = purchases.len(),
        event_dates = event_dates.len(),
        "found what the changed rows can reach"
    );
    Ok(Affected {
        purchases,
        users,
        event_dates,
        purchase_dates,
    })
}

/// The rows of `sql`, held while `reservation` grows for them; else to be read again.
async fn hold(
    ctx: &SessionContext,
    sql: &str,
    reservation: &datafusion::execution::memory_pool::MemoryReservation,
) -> Result<Rows> {
    let mut held = Vec::new();
    let mut stream = ctx.sql(sql).await?.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if reservation.try_grow(batch.get_array_memory_size()).is_err() {
            tracing::debug!("the key columns do not fit the memory pool: read at each pass");
            return Ok(Rows::Read(sql.to_string()));
        }
        held.push(batch);
    }
    Ok(Rows::Held(held))
}

async fn collect(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// Registers the affected rows of [`ALL_EVENTS`] and [`ALL_PURCHASES`] as the transform's
/// `events` and `purchases` (their columns only), and the functions [`AFFECTED_USER`] and
/// [`AFFECTED_PURCHASE`].
pub async fn register_affected(ctx: &SessionContext, affected: &Affected) -> Result<()> {
    for (name, keys) in [
        (AFFECTED_USER, &affected.users),
        (AFFECTED_PURCHASE, &affected.purchases),
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(KeyMember::new(name, keys.clone())));
    }
    for (name, all, columns, dates, key, member) in [
        (
            tables::EVENTS,
            ALL_EVENTS,
            &*schema::EVENTS,
            &affected.event_dates,
            "userId",
            AFFECTED_USER,
        ),
        (
            tables::PURCHASES,
            ALL_PURCHASES,
            &*schema::PURCHASES,
            &affected.purchase_dates,
            "purchaseId",
            AFFECTED_PURCHASE,
        ),
    ] {
        let names: Vec<String> = columns
            .fields()
            .iter()
            .map(|f| format!("\"{}\"", f.name()))
            .collect();
        let sql = format!(
            "SELECT {} FROM {all} WHERE {} AND {member}(key_hash({key}))",
            names.join(", "),
            in_dates(dates)
        );
        replace_table(ctx, name, ctx.sql(&sql).await?.into_view())?;
    }
    Ok(())
}

/// `NAME(hash)`: whether a key hash is one of a set. A filter evaluated batch by batch as the
/// rows stream by: an `IN (subquery)` is a join, and without statistics the planner held the
/// whole clickstream as its build side.
#[derive(Debug)]
struct KeyMember {
    name: &'static str,
    keys: Arc<KeySet>,
    signature: Signature,
}

impl KeyMember {
    fn new(name: &'static str, keys: KeySet) -> Self {
        KeyMember {
            name,
            keys: Arc::new(keys),
            signature: Signature::exact(vec![DataType::Int64], Volatility::Immutable),
        }
    }
}

impl PartialEq for KeyMember {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.keys, &other.keys)
    }
}

impl Eq for KeyMember {}

impl std::hash::Hash for KeyMember {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for KeyMember {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let member = |v: Option<i64>| v.is_some_and(|v| self.keys.contains(&v));
        match args.args.as_slice() {
            [ColumnarValue::Scalar(ScalarValue::Int64(v))] => Ok(ColumnarValue::Scalar(
                ScalarValue::Boolean(Some(member(*v))),
            )),
            [ColumnarValue::Array(a)] => {
                let Some(hashes) = a.as_primitive_opt::<Int64Type>() else {
                    return exec_err!("{} takes a key hash (BIGINT)", self.name);
                };
                let out: BooleanArray = hashes.iter().map(|v| Some(member(v))).collect();
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
            other => exec_err!("{} takes one key hash, got {other:?}", self.name),
        }
    }
}

/// `date IN (…)` of `dates` (`FALSE` when there is none): a filter the warehouse's tables
/// answer by picking files.
pub fn in_dates(dates: &BTreeSet<i32>) -> String {
    if dates.is_empty() {
        return "FALSE".to_string();
    }
    let list: Vec<String> = dates
        .iter()
        .map(|d| format!("CAST('{}' AS DATE)", crate::calendar::format_date(*d)))
        .collect();
    format!("date IN ({})", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};

    /// A key row: user, event, purchase, date.
    type Row = (i64, i64, Option<i64>, i32);

    /// Key rows as one batch.
    fn rows(rows: &[Row]) -> Rows {
        let schema = Arc::new(Schema::new(vec![
            Field::new("u", DataType::Int64, false),
            Field::new("e", DataType::Int64, false),
            Field::new("p", DataType::Int64, true),
            Field::new("date", DataType::Date32, false),
        ]));
        let column = |f: &dyn Fn(&Row) -> Option<i64>| {
            Arc::new(rows.iter().map(f).collect::<Int64Array>()) as Arc<dyn Array>
        };
        let dates: datafusion::arrow::array::Date32Array = rows.iter().map(|r| Some(r.3)).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                column(&|r| Some(r.0)),
                column(&|r| Some(r.1)),
                column(&|r| r.2),
                Arc::new(dates),
            ],
        )
        .unwrap();
        Rows::Held(vec![batch])
    }

    fn set(keys: &[i64]) -> KeySet {
        keys.iter().copied().collect()
    }

    fn seeds(users: &[i64], events: &[i64], purchases: &[i64]) -> Seeds {
        Seeds {
            users: set(users),
            events: set(events),
            purchases: set(purchases),
        }
    }

    #[tokio::test]
    async fn the_users_holding_a_changed_eventid_are_affected_and_their_purchases() {
        // User 2 holds event 10 (a row of user 1 arrived with it); its purchase 100 is
        // computed again, and user 3, who carries 100 too, is read.
        let ctx = SessionContext::new();
        let rows = rows(&[
            (1, 10, None, 0),
            (2, 10, None, 3),
            (2, 11, Some(100), 3),
            (3, 12, Some(100), 5),
            (4, 13, Some(200), 6),
        ]);
        let (purchases, users, dates, _) =
            reach(&ctx, seeds(&[1], &[10], &[]), &rows).await.unwrap();
        assert_eq!(purchases, set(&[100]));
        assert_eq!(users, set(&[1, 2, 3]));
        assert_eq!(dates, [0, 3, 5].into_iter().collect());
    }

    #[tokio::test]
    async fn users_read_are_closed_under_shared_eventids_but_their_purchases_are_not_added() {
        // User 3 carries purchase 100 and shares event 20 with user 5, who shares event 22
        // with user 6: both are read (so the duplicates are decided right), and user 5's
        // purchase 300 is not computed again.
        let ctx = SessionContext::new();
        let rows = rows(&[
            (5, 21, Some(300), 9),
            (5, 20, None, 9),
            (6, 22, None, 11),
            (5, 22, None, 10),
            (3, 20, None, 8),
            (3, 12, Some(100), 8),
            (7, 30, Some(400), 12),
        ]);
        let (purchases, users, dates, passes) =
            reach(&ctx, seeds(&[1], &[], &[100]), &rows).await.unwrap();
        assert_eq!(purchases, set(&[100]));
        assert_eq!(users, set(&[1, 3, 5, 6]));
        assert_eq!(dates, [8, 9, 10, 11].into_iter().collect());
        assert_eq!(
            passes, 7,
            "two rounds of the closure, and one to find none more"
        );
    }
}
