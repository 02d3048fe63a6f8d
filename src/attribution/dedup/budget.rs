//! An input partition as read: what it holds in memory, what it spilled, and its share of
//! the memory reservation (the spill budget).

use super::*;

/// An input partition, read.
pub(super) struct Consumed {
    /// Batches still in memory (with the key column).
    pub(super) held: Vec<RecordBatch>,
    pub(super) keys: KeysByShard,
    /// One spill file per part (and layout), once spilling.
    pub(super) files: Vec<PartFiles>,
    /// Per part, its rows kept in memory once spilling (the parts the [`Budget`] keeps).
    pub(super) in_memory: Vec<Vec<Piece>>,
    /// Spill files a helper task wrote for this input ([`split_with_help`]).
    pub(super) helped: Vec<Vec<PartFiles>>,
}

impl Consumed {
    /// Held rows `held` of no input in particular, to be split by part: no keys, no files yet.
    pub(super) fn holding(held: Vec<RecordBatch>) -> Self {
        Consumed {
            held,
            keys: Vec::new(),
            files: Vec::new(),
            in_memory: Vec::new(),
            helped: Vec::new(),
        }
    }
}

/// Reads an input partition with each row's key (also by shard), holding its batches in memory
/// until the events outgrow `spill_at`; from then on it splits them by part every chunk,
/// keeping in memory the parts the [`Budget`] keeps and writing the others to a spill file per
/// part.
pub(super) async fn consume(
    mut input: SendableRecordBatchStream,
    hash: HashFn,
    spill: &Arc<Spill>,
    reservation: &MemoryReservation,
    metrics: &BaselineMetrics,
) -> Result<Consumed> {
    let mut read = Consumed {
        keys: vec![Vec::new(); SHARDS],
        ..Consumed::holding(Vec::new())
    };
    // This input's held bytes not yet split, and all it holds in the reservation.
    let (mut held_bytes, mut reserved) = (0, 0);
    // The parts kept when this input last split its rows.
    let mut kept_before = spill.parts;
    let mut user_hashes = Vec::new();
    while let Some(batch) = input.next().await {
        let batch = batch?;
        let timer = metrics.elapsed_compute().timer();
        let keys = keys_of(&batch, hash, spill.parts, &mut user_hashes)?;
        for &k in &keys {
            read.keys[shard_of(k)].push(k);
        }
        // The keys stay in memory whatever happens: they decide which rows repeat.
        let key_bytes = keys.len() * 8;
        reservation.grow(key_bytes);
        let batch = with_keys(batch, keys)?;
        let bytes = batch.get_array_memory_size();
        let mut granted = reservation.try_grow(bytes).is_ok();
        let kept = spill.budget.read(key_bytes, bytes, granted)?;
        let given_up = kept < kept_before;
        if kept < spill.parts && (!granted || given_up || held_bytes + bytes >= spill.chunk) {
            // Out to disk before holding more: the pool may have said no.
            let in_memory = if given_up {
                split_with_help(&mut read, spill).await?
            } else {
                write_parts(&mut read, spill)?
            };
            resize_share(reservation, &mut reserved, in_memory);
            held_bytes = 0;
            kept_before = kept;
            if !granted {
                // One batch is all an input then holds.
                reservation.grow(bytes);
                granted = true;
            }
        }
        if granted {
            reserved += bytes;
        }
        held_bytes += bytes;
        read.held.push(batch);
        timer.done();
    }
    if spill.budget.spilling()? {
        let in_memory = write_parts(&mut read, spill)?;
        resize_share(reservation, &mut reserved, in_memory);
    }
    Ok(read)
}

/// [`write_parts`] for an input that just gave up parts, its rows read so far split by two
/// tasks: when the cut comes near the end of the input, the other inputs have often ended, and
/// one task splitting them all kept a core idle (about half a second at 5M events under 2 GiB).
/// The helper's pieces kept in memory join the input's; its spill files are kept apart.
pub(super) async fn split_with_help(read: &mut Consumed, spill: &Arc<Spill>) -> Result<usize> {
    let mut share = Consumed::holding(read.held.split_off(read.held.len() / 2));
    let helper = {
        let spill = spill.clone();
        SpawnedTask::spawn_blocking(move || {
            write_parts(&mut share, &spill)?;
            Ok::<_, DataFusionError>(share)
        })
    };
    write_parts(read, spill)?;
    let share = joined(helper.join().await)?;
    for (mine, pieces) in read.in_memory.iter_mut().zip(share.in_memory) {
        mine.extend(pieces);
    }
    read.helped.push(share.files);
    Ok(read.in_memory.iter().flatten().map(Piece::bytes).sum())
}

/// Sets an input's share `reserved` of the shared reservation to `bytes`.
pub(super) fn resize_share(reservation: &MemoryReservation, reserved: &mut usize, bytes: usize) {
    if bytes > *reserved {
        reservation.grow(bytes - *reserved);
    } else {
        reservation.shrink((*reserved - bytes).min(reservation.size()));
    }
    *reserved = bytes;
}
