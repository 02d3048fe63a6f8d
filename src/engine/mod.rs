//! The DataFusion session every job runs in: its configuration, its memory pool under a cap
//! ([`pool`]) and the project's functions ([`functions`]).

use std::sync::Arc;

use std::num::NonZeroUsize;

use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::TrackConsumersPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use ballista_core::object_store::{CustomObjectStoreRegistry, S3Options};

pub mod functions;
pub mod pool;

pub use functions::register_functions;

use crate::error::Result;
use pool::HeldSharePool;

/// Threads to use when the user names none: every core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// The memory cap when none is given: 70 % of the host's memory, as a Ballista executor's
/// (`None`, no cap, where the host's memory is unknown). While the job fits, such a cap costs
/// nothing (the intermediate tables stay in memory, the partitions and batches are the
/// uncapped ones); a larger input spills instead of running the host out of memory.
pub fn default_memory_limit() -> Option<usize> {
    default_limit_from_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// 70 % of the `MemTotal` of a `/proc/meminfo` text.
fn default_limit_from_meminfo(meminfo: &str) -> Option<usize> {
    let kib: usize = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib / 10 * 7 * 1024)
}

/// A session context for the jobs, with the project's functions registered.
///
/// Identifiers are case-sensitive (no normalization), so SQL names the camelCase columns of
/// the exports (`userId`, `eventTime`) without quoting each one.
pub fn session_context(threads: usize) -> SessionContext {
    let config = session_config(threads);
    let runtime = runtime_builder(&config)
        .build_arc()
        .unwrap_or_else(|_| Arc::new(datafusion::execution::runtime_env::RuntimeEnv::default()));
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    register_functions(&ctx);
    ctx
}

/// The runtime every context starts from: its object stores serve local paths and `s3://`
/// URLs (credentials and endpoint from the `AWS_*` environment variables, or `SET s3.…`).
pub fn runtime_builder(config: &SessionConfig) -> RuntimeEnvBuilder {
    let s3 = config
        .options()
        .extensions
        .get::<S3Options>()
        .cloned()
        .unwrap_or_default();
    RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(CustomObjectStoreRegistry::new(s3)))
}

/// A session context for a process capped at `memory_limit` bytes: its memory pool holds
/// [`pool_bytes`] of them, and sorts, joins and aggregations spill to the OS temporary
/// directory instead of growing past it.
pub fn session_context_with_limit(
    threads: usize,
    memory_limit: Option<usize>,
    spill_dir: Option<&std::path::Path>,
) -> Result<SessionContext> {
    let Some(cap) = memory_limit else {
        return Ok(session_context(threads));
    };
    let limit = pool_bytes(cap);
    let config = session_config(threads);
    let runtime = runtime_builder(&config)
        // Tracking names the largest consumers when the pool runs out, so the error says what
        // needed the memory.
        // The spilling operators (sorts, aggregations) share what the non-spilling ones leave
        // among those that hold memory (see `pool`): with the greedy pool, two threads under a
        // tight cap failed now and then; with DataFusion's fair pool, idle operators' shares
        // made the busy ones spill under a roomy cap.
        .with_memory_pool(Arc::new(TrackConsumersPool::new(
            HeldSharePool::new(limit),
            NonZeroUsize::new(5).unwrap_or(NonZeroUsize::MIN),
        )))
        // Merging many spill files at once holds a batch of each in memory that cannot spill;
        // merging a few at a time (in several passes) keeps a sort's merge within a small cap.
        // Each pass rewrites everything, though: at 50M events under 1.5 GiB a fan-in of 4 made
        // the dedup sort write its rows three times over, so the fan-in grows with the cap.
        .with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_max_spill_merge_fan_in(spill_merge_fan_in(limit))
                .with_mode(match spill_dir {
                    // The job's own directory: removed when it ends or is stopped.
                    Some(dir) => DiskManagerMode::Directories(vec![dir.to_path_buf()]),
                    None => DiskManagerMode::OsTmpDirectory,
                }),
        )
        .build_arc()?;
    let mut config = config;
    // Each sort sets memory aside to merge its spills; the default (10 MiB a sort) alone would
    // exhaust a small cap before anything spills. Scale it to the cap instead.
    let per_sort = (limit / (32 * threads.max(1))).clamp(64 << 10, 10 << 20);
    config.options_mut().execution.sort_spill_reservation_bytes = per_sort;
    // One partition per thread under a cap: every partition has buffers that cannot spill (a
    // window's, a repartition's, a merge's batch from each spill file), so twice as many left a
    // 64 MiB cap's sorts too little to hold a batch; with them and 32k-row batches, a 1.5 GiB
    // cap's run on 50M events peaked at 2.7 GiB of RSS instead of 1.9.
    // A roomy cap keeps `session_config`'s settings: each partition's unspillable buffers are
    // small beside it.
    if cap < ROOMY_CAP {
        config = config
            .with_batch_size(batch_rows_under_cap(limit))
            .with_target_partitions(threads.max(1));
    }
    let partitions = config.target_partitions();
    config.options_mut().execution.sort_in_place_threshold_bytes =
        sort_in_place_bytes(limit, partitions);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    register_functions(&ctx);
    Ok(ctx)
}

/// What DataFusion's memory pool holds under a memory cap of `limit` bytes: the cap less an
/// eighth, at most 1 GiB less. The rest is for the memory no pool accounts for: the decoders'
/// buffers, batches between operators, readers and writers of files, the allocator's free
/// pages and the program. With a pool of the whole cap, 50M events under a 2 GiB cap peaked at
/// 2.07-2.17 GiB of RSS; with a pool of 1800 MiB, at 1.56-1.77 GiB, in the same time
/// (docs/performance.md, fourteenth round).
pub fn pool_bytes(limit: usize) -> usize {
    limit - (limit / 8).min(1 << 30)
}

/// A memory cap from which partitions and batch sizes are those of an uncapped run.
pub const ROOMY_CAP: usize = 8 << 30;

/// How many spill files a sort merges at once under a memory cap of `limit` bytes: about one
/// per 32 MiB of the cap (a merge holds a batch of every file it reads), at least 4, at most 64.
pub fn spill_merge_fan_in(limit: usize) -> usize {
    (limit / (32 << 20)).clamp(4, 64)
}

/// Rows per batch under a memory cap of `limit` bytes: DataFusion's 8192 at most (a sort's
/// merge holds a batch of each spill file it reads), and a batch of events (a few hundred bytes
/// a row) about a thirtieth of a small cap, so a sort's share of it still holds one. Only the
/// operators' batches shrink below 8192 rows; the decoder's stay at that size.
pub fn batch_rows_under_cap(limit: usize) -> usize {
    (limit / (8 << 10)).clamp(1024, 8192)
}

/// Under a memory cap of `limit` bytes shared by `partitions` sorts, the size below which a sort
/// concatenates its input: small enough that all of them doing so at once (each briefly holding
/// its input twice, outside the pool's accounting) overshoots the cap by at most a quarter.
pub fn sort_in_place_bytes(limit: usize, partitions: usize) -> usize {
    (limit / (4 * partitions.max(1))).min(SORT_IN_PLACE_BYTES)
}

/// DataFusion partitions per thread. Two per thread measured faster than one (5M events, with
/// in-place sorts: 6.9-7.1 s against 7.5-7.6 s; with 32k-row batches too, 10M events took
/// 13.6-15.8 s against 17.8-22.5 s and a third less memory): each blocking sort and aggregation
/// holds half as much, and a thread waiting on one partition's input can work on another's
/// (docs/performance.md, third round).
pub const PARTITIONS_PER_THREAD: usize = 2;

/// Rows per batch of DataFusion's operators. Larger batches than its 8192 measured a little
/// faster. The CSV decoder emits its own 8192-row batches (`input::source::BATCH_ROWS`) whatever
/// this is: operators that buffer re-batch to this size.
pub const BATCH_ROWS: usize = 32 * 1024;

/// A sort holding less than this concatenates its input and sorts it in one piece instead of
/// sorting each batch and merging hundreds of runs (DataFusion's default is 1 MiB): on 5M events
/// the event dedup's sort took 0.3-0.8 s instead of 2.7-3.6 s. Concatenating briefly holds the
/// sort's input twice; below 1 GiB no string column can overflow Arrow's 32-bit offsets.
pub const SORT_IN_PLACE_BYTES: usize = 1 << 30;

/// The configuration every job context uses.
pub fn session_config(threads: usize) -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_target_partitions(threads.max(1) * PARTITIONS_PER_THREAD)
        .with_batch_size(BATCH_ROWS)
        .with_option_extension(S3Options::default());
    config.options_mut().sql_parser.enable_ident_normalization = false;
    config.options_mut().execution.sort_in_place_threshold_bytes = SORT_IN_PLACE_BYTES;
    // Rows partitioned by userId are partitioned by (userBucket, userId) too, at any partition
    // count: without this, below 4 partitions the session step's aggregation would be split
    // into partial and final phases with a shuffle and a sort of the partial states between.
    config.options_mut().optimizer.subset_repartition_threshold = 1;
    // Outputs promise Utf8 strings; reading Parquet back as Utf8View would change the types
    // of a mart's columns depending on where its input came from.
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    config
}

/// The most worker threads a job takes: four per core. Each thread gets partitions, batches
/// and buffers of its own, which no memory cap bounds, so a count far past the cores only
/// grows memory (a hundred thousand threads on a two-row input grew to 19 GB).
pub fn max_threads() -> usize {
    (default_threads() * 4).max(8)
}

/// The smallest memory cap a job runs under with `threads` threads: a base for the decoders
/// and writers, and a share per thread for its partitions' sorts and aggregations (the test
/// suite runs both engines at 74 MiB with two threads).
pub fn min_memory_limit(threads: usize) -> usize {
    (32 << 20) + threads * (16 << 20)
}

/// Checks a thread count and memory cap before any work, with what to give instead.
pub fn check_limits(
    threads: usize,
    memory_limit: Option<usize>,
) -> std::result::Result<(), LimitError> {
    if threads == 0 {
        return Err(LimitError::Threads("--threads must be at least 1".into()));
    }
    if threads > max_threads() {
        return Err(LimitError::Threads(format!(
            "--threads {threads} is more than this machine can use: give at most {} (four per core)",
            max_threads()
        )));
    }
    if let Some(cap) = memory_limit {
        let min = min_memory_limit(threads);
        if cap < min {
            return Err(LimitError::MemoryCap(format!(
                "--memory-limit {cap} bytes is too small for {threads} thread(s): give at least \
                 {}M (sizes take a unit: 512M, 2G), or fewer --threads",
                min.div_ceil(1 << 20)
            )));
        }
    }
    Ok(())
}

/// Why [`check_limits`] refused: the thread count, or a memory cap too small for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("{0}")]
    Threads(String),
    #[error("{0}")]
    MemoryCap(String),
}

/// Parses a size such as `512M`, `2G`, `300k` or a plain number of bytes.
pub fn parse_size(s: &str) -> std::result::Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 512M or 2G"))?;
    let mult: usize = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(format!("{s:?} has an unknown unit: use K, M or G")),
    };
    n.checked_mul(mult)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{s:?} is not a usable size"))
}

/// A memory cap as given by the user: a size (`512M`, `2G`) or `none` for no cap (to lift
/// the cap a config file sets).
pub fn parse_memory_limit(s: &str) -> std::result::Result<Option<usize>, String> {
    if s.trim().eq_ignore_ascii_case("none") {
        Ok(None)
    } else {
        parse_size(s).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::{
        batch_rows_under_cap, parse_memory_limit, parse_size, sort_in_place_bytes,
        spill_merge_fan_in, SORT_IN_PLACE_BYTES,
    };

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("300k"), Ok(300 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn the_default_cap_is_70_percent_of_the_hosts_memory() {
        let meminfo = "MemTotal:       24000000 kB\nMemFree:        1000 kB\n";
        assert_eq!(
            super::default_limit_from_meminfo(meminfo),
            Some(16_800_000 * 1024)
        );
        assert_eq!(super::default_limit_from_meminfo("MemFree: 1 kB\n"), None);
        #[cfg(target_os = "linux")]
        assert!(super::default_memory_limit().is_some_and(|limit| limit > 0));
    }

    /// A small cap runs a partition per thread with small batches; a roomy one keeps the
    /// uncapped settings.
    #[test]
    fn a_roomy_cap_keeps_the_uncapped_partitions_and_batches() {
        let config = |limit| {
            super::session_context_with_limit(2, limit, None)
                .unwrap()
                .copied_config()
        };
        let uncapped = config(None);
        let roomy = config(Some(super::ROOMY_CAP));
        let small = config(Some(1536 << 20));
        assert_eq!(roomy.target_partitions(), uncapped.target_partitions());
        assert_eq!(roomy.batch_size(), uncapped.batch_size());
        assert_eq!(small.target_partitions(), 2);
        assert_eq!(
            small.batch_size(),
            super::batch_rows_under_cap(super::pool_bytes(1536 << 20))
        );
        assert!(small.batch_size() < uncapped.batch_size());
    }

    /// The pool leaves an eighth of a cap, at most 1 GiB, to the memory it does not see.
    #[test]
    fn the_pool_is_the_cap_less_an_eighth_at_most_1_gib() {
        use datafusion::execution::memory_pool::MemoryLimit;
        assert_eq!(super::pool_bytes(64 << 20), 56 << 20);
        assert_eq!(super::pool_bytes(2 << 30), 1792 << 20);
        assert_eq!(super::pool_bytes(16 << 30), 15 << 30);
        let ctx = super::session_context_with_limit(2, Some(2 << 30), None).unwrap();
        let pool = ctx.runtime_env().memory_pool.memory_limit();
        assert!(matches!(pool, MemoryLimit::Finite(bytes) if bytes == 1792 << 20));
    }

    #[test]
    fn memory_limits() {
        assert_eq!(parse_memory_limit("none"), Ok(None));
        assert_eq!(parse_memory_limit(" None "), Ok(None));
        assert_eq!(parse_memory_limit("1536M"), Ok(Some(1536 << 20)));
        assert!(parse_memory_limit("nothing").is_err());
    }

    #[test]
    fn spill_merge_fan_in_grows_with_the_cap() {
        assert_eq!(spill_merge_fan_in(64 << 20), 4);
        assert_eq!(spill_merge_fan_in(512 << 20), 16);
        assert_eq!(spill_merge_fan_in(1536 << 20), 48);
        assert_eq!(spill_merge_fan_in(64 << 30), 64);
    }

    #[test]
    fn sorts_concatenate_at_most_a_quarter_of_the_cap() {
        assert_eq!(sort_in_place_bytes(1 << 30, 4), 64 << 20);
        assert_eq!(sort_in_place_bytes(64 << 20, 2), 8 << 20);
        assert_eq!(sort_in_place_bytes(1 << 40, 4), SORT_IN_PLACE_BYTES);
    }

    #[test]
    fn batches_shrink_under_a_small_cap() {
        assert_eq!(batch_rows_under_cap(64 << 20), 8192);
        assert_eq!(batch_rows_under_cap(1 << 20), 1024);
        assert_eq!(batch_rows_under_cap(1536 << 20), 8192);
    }
}
