//! The DataFusion session every job runs in.

use datafusion::prelude::{SessionConfig, SessionContext};

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
    let mut config = SessionConfig::new()
        .with_target_partitions(threads.max(1))
        .with_batch_size(8192);
    config.options_mut().sql_parser.enable_ident_normalization = false;
    // Outputs promise Utf8 strings; reading Parquet back as Utf8View would change the types
    // of a mart's columns depending on where its input came from.
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    let ctx = SessionContext::new_with_config(config);
    ctx.register_udaf(crate::jobs::attribution::udaf::sessionize_udaf());
    ctx
}
