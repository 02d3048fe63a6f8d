//! The repeated-id search: which eventId hashes occur more than once, and whether their rows
//! lie in more than one part.

use super::*;

/// The eventIds whose hash occurs more than once, by [`id_of`], each with whether its rows
/// lie in more than one part (`crossing`).
#[derive(Debug, Default)]
pub(super) struct Repeated {
    pub(super) ids: HashMap<u64, bool, BuildHasherDefault<IdHasher>>,
    /// The parts holding rows of a crossing eventId.
    pub(super) crossing_parts: BTreeSet<usize>,
}

impl Repeated {
    pub(super) fn get(&self, key: u64) -> Option<bool> {
        self.ids.get(&id_of(key)).copied()
    }
}

/// The hashes that occur more than once in `inputs`: each shard's keys, from every input,
/// sorted, by `tasks` tasks. Sorting walks memory in order where inserting every event's hash
/// into a set jumped around a table of hundreds of MiB (4.4 % of the CPU time at 50M events,
/// docs/performance.md). Sorted keys put the rows of one eventId hash side by side, ordered by
/// part, so a crossing eventId is one whose first and last keys differ in part.
pub(super) async fn repeated_ids(inputs: Vec<KeysByShard>, tasks: usize) -> Result<Repeated> {
    let mut work: Vec<Vec<Vec<Vec<u64>>>> = (0..tasks).map(|_| Vec::new()).collect();
    let mut shards: Vec<Vec<Vec<u64>>> = (0..SHARDS).map(|_| Vec::new()).collect();
    for by_shard in inputs {
        for (shard, part) in shards.iter_mut().zip(by_shard) {
            shard.push(part);
        }
    }
    for (s, parts) in shards.into_iter().enumerate() {
        work[s % tasks].push(parts);
    }
    let handles: Vec<_> = work
        .into_iter()
        .map(|shards| {
            SpawnedTask::spawn_blocking(move || {
                let mut found = Repeated::default();
                for parts in shards {
                    let mut all = parts.concat();
                    drop(parts);
                    all.sort_unstable();
                    for run in all.chunk_by(|a, b| id_of(*a) == id_of(*b)) {
                        if let [first, .., last] = run {
                            let crossing = part_of(*first) != part_of(*last);
                            found.ids.insert(id_of(*first), crossing);
                            if crossing {
                                found.crossing_parts.extend(run.iter().map(|k| part_of(*k)));
                            }
                        }
                    }
                }
                Ok(found)
            })
        })
        .collect();
    let mut repeated = Repeated::default();
    for handle in handles {
        let found = joined(handle.join().await)?;
        repeated.ids.extend(found.ids);
        repeated.crossing_parts.extend(found.crossing_parts);
    }
    Ok(repeated)
}
