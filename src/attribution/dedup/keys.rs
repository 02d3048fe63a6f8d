//! Row keys: an eventId's hash with the part of its userId in the low bits, the input
//! columns rule 4 reads, and how keys are sharded and rows split by part.

use super::*;

/// The columns of `events` that rule 4 reads, in the order [`DedupEventsExec`] expects them.
pub(super) const INPUT: [&str; 9] = [
    "userId",
    "eventId",
    "eventType",
    "eventTime",
    "attributes",
    "campaignId",
    "channelId",
    "purchaseId",
    crate::input::schema::SOURCE_ROW,
];
pub(super) const USER_ID: usize = 0;
pub(super) const EVENT_ID: usize = 1;
pub(super) const EVENT_TYPE: usize = 2;
pub(super) const EVENT_TIME: usize = 3;
pub(super) const ATTRIBUTES: usize = 4;
pub(super) const CAMPAIGN_ID: usize = 5;
pub(super) const CHANNEL_ID: usize = 6;
pub(super) const SOURCE_ROW: usize = 8;
/// Held batches carry each row's key after the input columns.
pub(super) const KEY: usize = INPUT.len();
/// The ordered repeated rows carry their `copy` after the key.
pub(super) const COPY: usize = KEY + 1;

/// The low bits of a key: the part of the row's userId.
pub(super) const PART_BITS: u32 = 8;
pub(super) const PART_MASK: u64 = (1 << PART_BITS) - 1;
/// Parts the events are split into by userId when they spill (rounded to a multiple of the
/// output partitions): each part is cut and sessionized on its own, so memory holds one part
/// per output partition.
pub(super) const PARTS: usize = 64;
/// Once spilling, an input writes its rows out every this many held bytes (at most), one
/// batch per part.
pub(super) const MAX_CHUNK: usize = 64 << 20;

/// A row's key: the hash of its eventId, its low bits replaced by its part. Two rows whose
/// eventIds are equal have equal [`id_of`]; distinct eventIds whose ids collide only cost
/// exact work.
pub(super) fn key(event_hash: u64, part: u64) -> u64 {
    (event_hash & !PART_MASK) | part
}

pub(super) fn id_of(key: u64) -> u64 {
    key >> PART_BITS
}

pub(super) fn part_of(key: u64) -> usize {
    (key & PART_MASK) as usize
}

/// How an eventId is hashed. Replaceable so that tests can make every eventId collide.
pub(super) type HashFn = fn(&[u8]) -> u64;

/// The eventId hash: fixed seeds, so the same eventIds are candidates in every run (the result
/// does not depend on the hash, only the work done).
pub(super) fn event_id_hash(id: &[u8]) -> u64 {
    static STATE: std::sync::LazyLock<ahash::RandomState> = std::sync::LazyLock::new(|| {
        ahash::RandomState::with_seeds(
            0x6d61_726b_6574,
            0x696e_672d_616e,
            0x616c_7974_6963,
            0x7320_6465_6475,
        )
    });
    STATE.hash_one(id)
}

/// The map of repeated ids hashes them with one multiplication: the ids are already uniform
/// hashes, but only in their low 56 bits, and the map takes its tag from the top bits (with
/// the ids as they are, every tag was 0 and each lookup compared a whole group of keys).
#[derive(Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(FIBONACCI);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v.wrapping_mul(FIBONACCI);
    }
}

/// 2^64 divided by the golden ratio: multiplying by it spreads the low bits over the top ones.
pub(super) const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

/// Ranges of key values, sorted separately (and in parallel) to find the repeated eventIds.
pub(super) const SHARDS: usize = 64;

/// The shard of a key: its top bits, so that each shard is a range of values.
pub(super) fn shard_of(key: u64) -> usize {
    (key >> 58) as usize
}

/// An input partition's keys, by shard.
pub(super) type KeysByShard = Vec<Vec<u64>>;

/// Each row's key: the hash of its eventId with the part of its userId in the low bits.
pub(super) fn keys_of(
    batch: &RecordBatch,
    hash: HashFn,
    parts: usize,
    user_hashes: &mut Vec<u64>,
) -> Result<Vec<u64>> {
    let ids = string_column(batch, EVENT_ID)?;
    user_hashes.clear();
    user_hashes.resize(batch.num_rows(), 0);
    create_hashes(
        [batch.column(USER_ID)],
        REPARTITION_RANDOM_STATE.random_state(),
        user_hashes,
    )?;
    let parts = parts as u64;
    Ok(ids
        .iter()
        .zip(user_hashes.iter())
        .map(|(id, user)| key(hash(id.unwrap_or_default().as_bytes()), user % parts))
        .collect())
}

/// `batch` with its keys as one more column ([`KEY`]).
pub(super) fn with_keys(batch: RecordBatch, keys: Vec<u64>) -> Result<RecordBatch> {
    let schema = held_schema(&batch.schema());
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(UInt64Array::from(keys)));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The schema of held batches: the input's columns and the key.
pub(super) fn held_schema(input: &Schema) -> SchemaRef {
    let mut fields: Vec<FieldRef> = input.fields().iter().take(KEY).cloned().collect();
    fields.push(Arc::new(Field::new("key", DataType::UInt64, false)));
    Arc::new(Schema::new(fields))
}

pub(super) fn key_column(batch: &RecordBatch) -> Result<&[u64]> {
    match batch
        .columns()
        .get(KEY)
        .and_then(|c| c.as_primitive_opt::<UInt64Type>())
    {
        Some(keys) => Ok(keys.values()),
        None => exec_err!("dedup: a held batch has no key column"),
    }
}

/// A row to gather by part ([`add_by_part`]): its part in the high half, its index in the low
/// half.
pub(super) fn by_part(key: u64, row: usize) -> u64 {
    ((part_of(key) as u64) << 32) | row as u64
}

/// Adds the rows `rows` of `batch` (made by [`by_part`], in ascending row order) to
/// `pending`, a slice per part, and returns the bytes gathered. One gather per batch, in part
/// order, while the batch is in cache: gathering each part across many batches (`interleave`)
/// missed the cache and cost 5 % of the run. The rows are put in part order by counting (a
/// stable pass, so each part keeps its rows' order), not by sorting: the sort was 1 % of a
/// capped run.
pub(super) fn add_by_part(
    batch: &RecordBatch,
    rows: &[u64],
    pending: &mut [Vec<RecordBatch>],
) -> Result<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut counts = [0u32; 1 << PART_BITS];
    for &row in rows {
        counts[part_in(row)] += 1;
    }
    let mut next = [0u32; 1 << PART_BITS];
    let mut start = 0;
    for (next, &count) in next.iter_mut().zip(&counts) {
        *next = start;
        start += count;
    }
    let mut indices = vec![0u32; rows.len()];
    for &row in rows {
        let slot = &mut next[part_in(row)];
        indices[*slot as usize] = row as u32;
        *slot += 1;
    }
    let gathered = take_record_batch(batch, &UInt32Array::from(indices))?;
    let mut start = 0;
    for (part, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let Some(slices) = pending.get_mut(part) else {
            return exec_err!("DedupEventsExec: part {part} of {}", pending.len());
        };
        slices.push(gathered.slice(start, count as usize));
        start += count as usize;
    }
    Ok(gathered.get_array_memory_size())
}

/// The part of a row made by [`by_part`].
pub(super) fn part_in(row: u64) -> usize {
    (row >> 32) as usize & PART_MASK as usize
}
