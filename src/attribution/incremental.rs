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

use std::collections::BTreeSet;
use std::sync::Arc;

use ahash::AHashSet;
use datafusion::arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Int64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::execution::memory_pool::MemoryConsumer;
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
/// The key hashes of the affected purchaseIds (column `h`), registered by
/// [`register_affected`].
pub const AFFECTED_PURCHASES: &str = "affected_purchases";
const AFFECTED_USERS: &str = "affected_users";

/// The part of the inputs a change can reach.
#[derive(Debug, Default)]
pub struct Affected {
    /// Key hashes of the purchaseIds whose projection rows are computed again.
    pub purchases: AHashSet<i64>,
    /// Key hashes of the users whose events are read.
    pub users: AHashSet<i64>,
    /// The dates of the clickstream holding those users' rows.
    pub event_dates: BTreeSet<i32>,
    /// The dates of the purchases holding those purchaseIds' rows.
    pub purchase_dates: BTreeSet<i32>,
}

/// The sets of the fixed point (see the module doc), grown row by row.
#[derive(Default)]
struct Sets {
    changed_events: AHashSet<i64>,
    /// Users whose sessions can change.
    changed_users: AHashSet<i64>,
    purchases: AHashSet<i64>,
    read_users: AHashSet<i64>,
    read_events: AHashSet<i64>,
    event_dates: BTreeSet<i32>,
}

impl Sets {
    /// Applies every rule to one row; `true` when a set grew.
    fn visit(&mut self, user: i64, event: i64, purchase: Option<i64>, date: i32) -> bool {
        let mut grew = false;
        if self.changed_events.contains(&event) {
            grew |= self.changed_users.insert(user);
        }
        let changed_user = self.changed_users.contains(&user);
        if let (true, Some(p)) = (changed_user, purchase) {
            grew |= self.purchases.insert(p);
        }
        let carrier = purchase.is_some_and(|p| self.purchases.contains(&p));
        if changed_user || carrier || self.read_events.contains(&event) {
            grew |= self.read_users.insert(user);
        }
        if self.read_users.contains(&user) {
            grew |= self.read_events.insert(event);
            self.event_dates.insert(date);
        }
        grew
    }

    /// Visits every row of `batch` (columns u, e, p, date); `true` when a set grew.
    fn visit_batch(&mut self, batch: &RecordBatch) -> Result<bool> {
        let [u, e, p, d] = key_columns(batch)?;
        let (u, e, d) = (
            u.as_primitive::<Int64Type>(),
            e.as_primitive::<Int64Type>(),
            d.as_primitive::<Date32Type>(),
        );
        let p = p.as_primitive::<Int64Type>();
        let mut grew = false;
        for i in 0..batch.num_rows() {
            let purchase = p.is_valid(i).then(|| p.value(i));
            grew |= self.visit(u.value(i), e.value(i), purchase, d.value(i));
        }
        Ok(grew)
    }
}

fn key_columns(batch: &RecordBatch) -> Result<[&Arc<dyn Array>; 4]> {
    let types = [
        DataType::Int64,
        DataType::Int64,
        DataType::Int64,
        DataType::Date32,
    ];
    let columns = batch.columns();
    if columns.len() != 4 || columns.iter().zip(&types).any(|(c, t)| c.data_type() != t) {
        return Err(Error::Accounting(
            "the incremental projection's key scan has unexpected columns".into(),
        ));
    }
    Ok([&columns[0], &columns[1], &columns[2], &columns[3]])
}

const EVENT_KEYS: &str = "SELECT key_hash(userId) AS u, key_hash(eventId) AS e, \
    key_hash(purchaseId) AS p, date FROM ";

/// Finds what the changed rows can reach (module doc). Reads the key columns of
/// [`ALL_EVENTS`] once, holding them (24 bytes a row, reserved from the memory pool) for the
/// further passes of the fixed point; when the pool refuses, each pass reads them again.
pub async fn affected(ctx: &SessionContext) -> Result<Affected> {
    let mut sets = Sets::default();
    let mut purchases = AHashSet::new();
    for batch in collect(ctx, &format!("{EVENT_KEYS}{CHANGED_EVENTS}")).await? {
        let [u, e, p, _] = key_columns(&batch)?;
        sets.changed_users
            .extend(u.as_primitive::<Int64Type>().values().iter());
        sets.changed_events
            .extend(e.as_primitive::<Int64Type>().values().iter());
        purchases.extend(p.as_primitive::<Int64Type>().iter().flatten());
    }
    let changed = collect(
        ctx,
        &format!("SELECT key_hash(purchaseId) AS p FROM {CHANGED_PURCHASES}"),
    )
    .await?;
    for batch in &changed {
        purchases.extend(batch.column(0).as_primitive::<Int64Type>().iter().flatten());
    }
    sets.purchases = purchases;
    // Users of changed rows are read whatever their rows now (a removed row's user).
    sets.read_users.extend(sets.changed_users.iter());

    let pool = &ctx.runtime_env().memory_pool;
    let reservation = MemoryConsumer::new("incremental projection keys").register(pool);
    let mut held: Option<Vec<RecordBatch>> = Some(Vec::new());
    let sql = format!("{EVENT_KEYS}{ALL_EVENTS}");
    let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
    let mut grew = false;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        grew |= sets.visit_batch(&batch)?;
        if let Some(h) = held.as_mut() {
            if reservation.try_grow(batch.get_array_memory_size()).is_ok() {
                h.push(batch);
            } else {
                held = None;
                reservation.free();
            }
        }
    }
    let mut passes = 1;
    while grew {
        grew = false;
        passes += 1;
        match &held {
            Some(batches) => {
                for batch in batches {
                    grew |= sets.visit_batch(batch)?;
                }
            }
            None => {
                let mut stream = ctx.sql(&sql).await?.execute_stream().await?;
                while let Some(batch) = stream.next().await {
                    grew |= sets.visit_batch(&batch?)?;
                }
            }
        }
    }
    drop(held);
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
            if p.is_valid(i) && sets.purchases.contains(&p.value(i)) {
                purchase_dates.insert(d.value(i));
            }
        }
    }
    tracing::debug!(
        passes,
        users = sets.read_users.len(),
        purchases = sets.purchases.len(),
        event_dates = sets.event_dates.len(),
        "found what the changed rows can reach"
    );
    Ok(Affected {
        purchases: sets.purchases,
        users: sets.read_users,
        event_dates: sets.event_dates,
        purchase_dates,
    })
}

async fn collect(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

/// Registers the affected rows of [`ALL_EVENTS`] and [`ALL_PURCHASES`] as the transform's
/// `events` and `purchases` (their columns only), and [`AFFECTED_PURCHASES`].
pub async fn register_affected(ctx: &SessionContext, affected: &Affected) -> Result<()> {
    for (name, keys) in [
        (AFFECTED_USERS, &affected.users),
        (AFFECTED_PURCHASES, &affected.purchases),
    ] {
        let schema = Arc::new(Schema::new(vec![Field::new("h", DataType::Int64, false)]));
        let column: Int64Array = keys.iter().copied().collect();
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(column)])?;
        replace_table(
            ctx,
            name,
            Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
        )?;
    }
    for (name, all, columns, dates, key, keys) in [
        (
            tables::EVENTS,
            ALL_EVENTS,
            &*schema::EVENTS,
            &affected.event_dates,
            "userId",
            AFFECTED_USERS,
        ),
        (
            tables::PURCHASES,
            ALL_PURCHASES,
            &*schema::PURCHASES,
            &affected.purchase_dates,
            "purchaseId",
            AFFECTED_PURCHASES,
        ),
    ] {
        let names: Vec<String> = columns
            .fields()
            .iter()
            .map(|f| format!("\"{}\"", f.name()))
            .collect();
        let sql = format!(
            "SELECT {} FROM {all} WHERE {} AND key_hash({key}) IN (SELECT h FROM {keys})",
            names.join(", "),
            in_dates(dates)
        );
        replace_table(ctx, name, ctx.sql(&sql).await?.into_view())?;
    }
    Ok(())
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
    use super::Sets;

    fn sets(changed_users: &[i64], changed_events: &[i64], purchases: &[i64]) -> Sets {
        let mut s = Sets::default();
        s.changed_users.extend(changed_users);
        s.changed_events.extend(changed_events);
        s.purchases.extend(purchases);
        s.read_users.extend(changed_users);
        s
    }

    /// Visits `rows` (user, event, purchase, date) until no set grows.
    fn fixed_point(s: &mut Sets, rows: &[(i64, i64, Option<i64>, i32)]) {
        while rows
            .iter()
            .fold(false, |g, &(u, e, p, d)| s.visit(u, e, p, d) | g)
        {}
    }

    #[test]
    fn the_users_holding_a_changed_eventid_are_affected_and_their_purchases() {
        // User 2 holds event 10 (a row of user 1 arrived with it); its purchase 100 is
        // computed again, and user 3, who carries 100 too, is read.
        let mut s = sets(&[1], &[10], &[]);
        let rows = [
            (1, 10, None, 0),
            (2, 10, None, 3),
            (2, 11, Some(100), 3),
            (3, 12, Some(100), 5),
            (4, 13, Some(200), 6),
        ];
        fixed_point(&mut s, &rows);
        assert_eq!(s.changed_users, [1, 2].into_iter().collect());
        assert_eq!(s.purchases, [100].into_iter().collect());
        assert_eq!(s.read_users, [1, 2, 3].into_iter().collect());
        assert_eq!(s.event_dates, [0, 3, 5].into_iter().collect());
    }

    #[test]
    fn users_read_are_closed_under_shared_eventids_but_their_purchases_are_not_added() {
        // User 3 carries purchase 100 and shares event 20 with user 5, whose purchase 300 is
        // not affected: user 5 is read (so 20's duplicate is decided right), 300 is not
        // computed again.
        let mut s = sets(&[1], &[], &[100]);
        let rows = [
            (5, 21, Some(300), 9),
            (5, 20, None, 9),
            (3, 20, None, 8),
            (3, 12, Some(100), 8),
        ];
        fixed_point(&mut s, &rows);
        assert_eq!(s.purchases, [100].into_iter().collect());
        assert_eq!(s.read_users, [1, 3, 5].into_iter().collect());
        assert_eq!(s.event_dates, [8, 9].into_iter().collect());
    }
}
