//! The memory pool of a run under a cap: the cap is shared among the spilling operators that
//! actually hold memory.
//!
//! DataFusion's `FairSpillPool` gives every registered spilling operator (each partition's
//! sorts and aggregations) an equal share of the cap, whether it holds gigabytes or a few rows.
//! In the top channels mart ten are registered and two hold the distinct sessions, so those two
//! spilled (and re-sorted and merged what they spilled) under a 2 GiB cap while they needed a
//! third of it. The greedy pool lets one operator take everything, and then another one's first
//! allocation fails: an aggregation or sort that holds nothing has nothing to spill.
//!
//! [`HeldSharePool`] shares the cap max-min fairly: an operator may grow up to the level `L` at
//! which the others' holdings, each counted up to `L`, and `L` itself fill the memory left by
//! the operators that cannot spill. Operators holding little leave their unused share to the
//! large ones; `L` is never below the fair pool's share, because at most every registered
//! operator counts. An operator above the level is refused on its next request, so it spills
//! and makes room. The total may pass the cap only by grants the fair pool would have made as
//! well (an operator within its fair share, while a larger one has not spilled yet).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    human_readable_size, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};

/// A memory pool of `pool_size` bytes that shares what the non-spilling operators leave
/// max-min fairly among the spilling operators holding memory (see the module docs).
#[derive(Debug)]
pub struct HeldSharePool {
    pool_size: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Spilling consumers registered (as the fair pool counts them).
    registered: usize,
    unspillable: usize,
    spillable: usize,
    /// Bytes held by each spilling consumer holding any, by consumer id (a consumer's
    /// reservations, split or not, share its id).
    held: HashMap<usize, usize>,
    /// Reused to sort the holdings when computing a level: no allocation per request.
    scratch: Vec<usize>,
}

impl HeldSharePool {
    pub fn new(pool_size: usize) -> Self {
        Self {
            pool_size,
            state: Mutex::new(State::default()),
        }
    }

    /// The counters. A poisoned lock (a thread panicked while counting) is taken as is: the
    /// counts only decide who spills, which is no reason to fail every later request.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Grants `additional` bytes to `reservation`, or says how much it may hold in all.
    fn grant(&self, reservation: &MemoryReservation, additional: usize) -> Option<usize> {
        let consumer = reservation.consumer();
        let mut state = self.state();
        if consumer.can_spill() {
            let available = self.pool_size.saturating_sub(state.unspillable);
            let wanted = reservation.size() + additional;
            let fair = available / state.registered.max(1);
            let level = if merges_unspillable(consumer) {
                // At most half of what is left, even when it is the only spilling operator
                // (one thread): its merge takes over what it holds and then needs more, which
                // a sort holding nearly everything could not get (the sql engine under 74-200
                // MB at one thread failed so, `ExternalSorterMerge … can spill: false`).
                fair.min(available / 2)
            } else {
                state.level(consumer.id(), available)
            };
            // Past the cap only within the fair pool's share, which the fair pool would grant
            // too: a holder above the level spills at its next request.
            let fits = state.spillable + additional <= available || wanted <= fair;
            if wanted > level || !fits {
                return Some(level);
            }
        } else {
            let free = self
                .pool_size
                .saturating_sub(state.unspillable + state.spillable);
            if additional > free {
                return Some(reservation.size() + free);
            }
        }
        state.add(consumer, additional);
        None
    }
}

impl State {
    fn add(&mut self, consumer: &MemoryConsumer, bytes: usize) {
        if consumer.can_spill() {
            self.spillable += bytes;
            *self.held.entry(consumer.id()).or_default() += bytes;
        } else {
            self.unspillable += bytes;
        }
    }

    fn sub(&mut self, consumer: &MemoryConsumer, bytes: usize) {
        if consumer.can_spill() {
            self.spillable = self.spillable.saturating_sub(bytes);
            if let Some(held) = self.held.get_mut(&consumer.id()) {
                *held = held.saturating_sub(bytes);
                if *held == 0 {
                    self.held.remove(&consumer.id());
                }
            }
        } else {
            self.unspillable = self.unspillable.saturating_sub(bytes);
        }
    }

    /// The most `consumer` may hold: the max-min fair level over `available` bytes, the other
    /// holders counted up to the level.
    fn level(&mut self, consumer: usize, available: usize) -> usize {
        self.scratch.clear();
        self.scratch.extend(
            self.held
                .iter()
                .filter(|(id, _)| **id != consumer)
                .map(|(_, bytes)| *bytes),
        );
        self.scratch.sort_unstable();
        water_level(&self.scratch, available)
    }
}

/// Whether `consumer` is a DataFusion sort's: when its input ends it sorts what it holds and
/// merges it under a reservation that cannot spill, so a sort holding most of the cap fails
/// another sort's merge (seen at 50M events under 2 GiB: two such merges and the dedup's events
/// took the whole cap). Sorts keep the fair pool's share, and at most half of the cap.
fn merges_unspillable(consumer: &MemoryConsumer) -> bool {
    consumer.name().starts_with(SORT_CONSUMER)
}

/// The name DataFusion gives a sort's spilling consumer (`ExternalSorter[partition]`).
const SORT_CONSUMER: &str = "ExternalSorter[";

/// The level `L` with `sum(min(h, L) for h in others) + L == available`; `others` ascending.
fn water_level(others: &[usize], available: usize) -> usize {
    let mut left = available;
    for (i, &held) in others.iter().enumerate() {
        // The requester and the holders from `i` on share what is left equally.
        let share = left / (others.len() - i + 1);
        if held > share {
            return share;
        }
        left -= held;
    }
    left
}

impl MemoryPool for HeldSharePool {
    fn name(&self) -> &str {
        "held-share"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            self.state().registered += 1;
        }
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        if consumer.can_spill() {
            let mut state = self.state();
            state.registered = state.registered.saturating_sub(1);
            state.held.remove(&consumer.id());
        }
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.state().add(reservation.consumer(), additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.state().sub(reservation.consumer(), shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        // The error names the pool's state, which takes the lock: built after releasing it.
        let refused_at = self.grant(reservation, additional);
        match refused_at {
            None => Ok(()),
            Some(available) => Err(refused(reservation, additional, available, self)),
        }
    }

    fn reserved(&self) -> usize {
        let state = self.state();
        state.spillable + state.unspillable
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.pool_size)
    }
}

fn refused(
    reservation: &MemoryReservation,
    additional: usize,
    available: usize,
    pool: &HeldSharePool,
) -> DataFusionError {
    DataFusionError::ResourcesExhausted(format!(
        "Failed to allocate additional {} for {} with {} already allocated for this reservation \
         - {} remain available for this consumer in {pool}",
        human_readable_size(additional),
        reservation.consumer().name(),
        human_readable_size(reservation.size()),
        human_readable_size(available.saturating_sub(reservation.size())),
    ))
}

impl fmt::Display for HeldSharePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        write!(
            f,
            "{}(pool_size: {}, spillable: {} in {} holders, unspillable: {})",
            self.name(),
            human_readable_size(self.pool_size),
            human_readable_size(state.spillable),
            state.held.len(),
            human_readable_size(state.unspillable),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn pool(size: usize) -> Arc<dyn MemoryPool> {
        Arc::new(HeldSharePool::new(size))
    }

    fn spilling(name: &str, pool: &Arc<dyn MemoryPool>) -> MemoryReservation {
        MemoryConsumer::new(name)
            .with_can_spill(true)
            .register(pool)
    }

    /// Records the names of the consumers registered, for the test below.
    #[derive(Debug, Default)]
    struct Names(Mutex<Vec<String>>);

    impl fmt::Display for Names {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "names")
        }
    }

    impl MemoryPool for Names {
        fn name(&self) -> &str {
            "names"
        }
        fn register(&self, consumer: &MemoryConsumer) {
            if let Ok(mut names) = self.0.lock() {
                names.push(consumer.name().to_string());
            }
        }
        fn grow(&self, _: &MemoryReservation, _: usize) {}
        fn shrink(&self, _: &MemoryReservation, _: usize) {}
        fn try_grow(&self, _: &MemoryReservation, _: usize) -> Result<()> {
            Ok(())
        }
        fn reserved(&self) -> usize {
            0
        }
    }

    #[tokio::test]
    async fn datafusion_still_names_its_sorts_consumers_as_the_pool_expects() {
        use datafusion::arrow::array::{Int64Array, RecordBatch};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::datasource::MemTable;
        use datafusion::execution::runtime_env::RuntimeEnvBuilder;
        use datafusion::prelude::{SessionConfig, SessionContext};

        let names = Arc::new(Names::default());
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(names.clone())
            .build_arc()
            .unwrap();
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = |v: Vec<i64>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(v))]).unwrap()
        };
        let table = MemTable::try_new(schema.clone(), vec![vec![batch(vec![3, 1, 2])]]).unwrap();
        ctx.register_table("t", Arc::new(table)).unwrap();
        ctx.sql("SELECT x FROM t ORDER BY x")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let names = names.0.lock().unwrap();
        assert!(
            names.iter().any(|n| n.starts_with(SORT_CONSUMER)),
            "no consumer named {SORT_CONSUMER}…: {names:?}"
        );
    }

    #[test]
    fn the_level_counts_small_holders_at_what_they_hold() {
        assert_eq!(water_level(&[], 100), 100);
        assert_eq!(water_level(&[10], 100), 90);
        assert_eq!(water_level(&[10, 80], 100), 45);
        assert_eq!(water_level(&[1, 2, 3], 106), 100);
        assert_eq!(water_level(&[60, 60, 60], 100), 25);
    }

    #[test]
    fn one_large_operator_takes_what_idle_and_small_ones_leave() {
        let pool = pool(1000);
        let idle: Vec<_> = (0..8)
            .map(|i| spilling(&format!("idle{i}"), &pool))
            .collect();
        let small = spilling("small", &pool);
        small.try_grow(10).unwrap();
        let large = spilling("large", &pool);
        // The fair pool would stop it at 100 (1000 over ten registered).
        large.try_grow(990).unwrap();
        assert!(large.try_grow(1).is_err());
        assert_eq!(pool.reserved(), 1000);
        drop(idle);
    }

    #[test]
    fn a_newcomer_gets_its_fair_share_and_the_large_holder_is_then_refused() {
        let pool = pool(1000);
        let large = spilling("large", &pool);
        let newcomer = spilling("newcomer", &pool);
        large.try_grow(1000).unwrap();
        // Within the fair share (500) the newcomer is granted past the cap...
        newcomer.try_grow(100).unwrap();
        // ...but not beyond the level (half of the memory, with two holders).
        assert!(newcomer.try_grow(401).is_err());
        // The large holder is above the level now and must spill before it grows again.
        assert!(large.try_grow(1).is_err());
        large.shrink(600);
        newcomer.try_grow(500).unwrap();
        assert!(newcomer.try_grow(1).is_err());
    }

    #[test]
    fn a_sort_keeps_the_fair_share_and_at_most_half_the_pool() {
        let pool = pool(1000);
        let sort = spilling("ExternalSorter[0]", &pool);
        let idle: Vec<_> = (0..3)
            .map(|i| spilling(&format!("idle{i}"), &pool))
            .collect();
        sort.try_grow(250).unwrap();
        assert!(sort.try_grow(1).is_err());
        drop(idle);
        // Alone, it may grow to half the pool, no further: its merge needs the rest.
        sort.try_grow(250).unwrap();
        assert!(sort.try_grow(1).is_err());
    }

    #[test]
    fn operators_that_cannot_spill_take_from_the_whole_cap_first() {
        let pool = pool(1000);
        let fixed = MemoryConsumer::new("fixed").register(&pool);
        let sort = spilling("sort", &pool);
        fixed.try_grow(400).unwrap();
        sort.try_grow(600).unwrap();
        assert!(sort.try_grow(1).is_err());
        assert!(fixed.try_grow(1).is_err());
        sort.free();
        fixed.try_grow(600).unwrap();
    }

    #[test]
    fn a_refusal_names_the_consumer_and_the_pool() {
        let pool = pool(1000);
        let sort = spilling("the sort", &pool);
        let fixed = MemoryConsumer::new("the table").register(&pool);
        sort.try_grow(700).unwrap();
        let err = sort.try_grow(301).unwrap_err().to_string();
        assert!(
            err.contains("the sort") && err.contains("held-share"),
            "{err}"
        );
        let err = fixed.try_grow(301).unwrap_err().to_string();
        assert!(
            err.contains("the table") && err.contains("300.0 B remain"),
            "{err}"
        );
    }

    #[test]
    fn split_reservations_count_as_one_holder() {
        let pool = pool(1000);
        let sort = spilling("sort", &pool);
        sort.try_grow(300).unwrap();
        let part = sort.split(100);
        let other = spilling("other", &pool);
        // `sort` holds 300 in two reservations: the other gets the rest.
        other.try_grow(700).unwrap();
        assert!(other.try_grow(1).is_err());
        drop(part);
        other.try_grow(100).unwrap();
    }
}
