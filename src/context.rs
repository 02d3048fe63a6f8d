//! The DataFusion session every job runs in.

use std::sync::Arc;

use std::num::NonZeroUsize;

use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

use ballista_core::object_store::{CustomObjectStoreRegistry, S3Options};

use crate::error::Result;

/// Threads to use when the user names none: every core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
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

/// A session context whose memory pool holds at most `memory_limit` bytes: sorts, joins and
/// aggregations spill to the OS temporary directory instead of growing past it.
pub fn session_context_with_limit(
    threads: usize,
    memory_limit: Option<usize>,
) -> Result<SessionContext> {
    let Some(limit) = memory_limit else {
        return Ok(session_context(threads));
    };
    let config = session_config(threads);
    let runtime = runtime_builder(&config)
        // Tracking names the largest consumers when the pool runs out, so the error says what
        // needed the memory.
        // The fair pool gives each spilling operator (sorts, aggregations) an equal share of
        // what the non-spilling ones leave, so one sort cannot take the memory another needs
        // to merge; with the greedy pool, two threads under a tight cap failed now and then.
        .with_memory_pool(Arc::new(TrackConsumersPool::new(
            FairSpillPool::new(limit),
            NonZeroUsize::new(5).unwrap_or(NonZeroUsize::MIN),
        )))
        // Merging many spill files at once holds a batch of each in memory that cannot spill;
        // merging a few at a time (in several passes) keeps a sort's merge within a small cap.
        // Each pass rewrites everything, though: at 50M events under 1.5 GiB a fan-in of 4 made
        // the dedup sort write its rows three times over, so the fan-in grows with the cap.
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_max_spill_merge_fan_in(spill_merge_fan_in(limit)),
        )
        .build_arc()?;
    let mut config = config;
    // Each sort sets memory aside to merge its spills; the default (10 MiB a sort) alone would
    // exhaust a small cap before anything spills. Scale it to the cap instead.
    let per_sort = (limit / (32 * threads.max(1))).clamp(64 << 10, 10 << 20);
    config.options_mut().execution.sort_spill_reservation_bytes = per_sort;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    register_functions(&ctx);
    Ok(ctx)
}

/// How many spill files a sort merges at once under a memory cap of `limit` bytes: about one
/// per 32 MiB of the cap (a merge holds a batch of every file it reads), at least 4, at most 64.
pub fn spill_merge_fan_in(limit: usize) -> usize {
    (limit / (32 << 20)).clamp(4, 64)
}

/// The project's functions, registered on every context (and, in cluster mode, executor).
pub fn register_functions(ctx: &SessionContext) {
    ctx.register_udaf(crate::jobs::attribution::udaf::sessionize_udaf());
    ctx.register_udf(crate::jobs::attribution::bucket::hash_bucket_udf());
}

/// The configuration every job context uses.
pub fn session_config(threads: usize) -> SessionConfig {
    let mut config = SessionConfig::new()
        .with_target_partitions(threads.max(1))
        .with_batch_size(8192)
        .with_option_extension(S3Options::default());
    config.options_mut().sql_parser.enable_ident_normalization = false;
    // Outputs promise Utf8 strings; reading Parquet back as Utf8View would change the types
    // of a mart's columns depending on where its input came from.
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    config
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
    use super::{parse_memory_limit, parse_size, spill_merge_fan_in};

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
}
