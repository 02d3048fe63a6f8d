//! Cluster mode: the same jobs on an Apache DataFusion Ballista cluster.
//!
//! - [`scheduler`] and [`executor`] run the project's own Ballista processes. Stock Ballista
//!   binaries do not know the `sessionize` aggregate, so ours register every function the jobs
//!   use (the built-in registry plus [`crate::engine::register_functions`]) on both sides.
//! - [`client_context`] is the session a job plans in when given `--cluster df://HOST:PORT`:
//!   queries are planned here and executed by the executors; results stream back to this
//!   process, which writes the outputs (so the atomic commit of a run works unchanged).
//!
//! What the executors read must be reachable from every executor: local paths on one host
//! (or a shared file system), or `s3://` URLs (credentials from the usual `AWS_*` variables).
//! Raw exports are decoded by this process first (see `pipeline`): the CSV decoder, with its
//! quarantine and accounting, is not a plan Ballista can ship, and Ballista 55 loses the gzip
//! setting of CSV scans it ships (apache/datafusion#24180).

pub mod auth;
pub mod codec;
mod processes;

pub use processes::{executor, scheduler, ExecutorOptions, SchedulerOptions};

use std::sync::Arc;

use ballista::prelude::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::engine::{register_functions, runtime_builder, session_config};
use crate::error::{Error, Result};

/// The scheme of a cluster address: `df://HOST:PORT`.
pub const SCHEME: &str = "df";

/// Checks a `--cluster` address and returns it as `df://HOST:PORT`.
pub fn parse_url(url: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::Config(format!(
            "--cluster {url:?}: {why}; give the scheduler as df://HOST:PORT (e.g. df://127.0.0.1:50050)"
        ))
    };
    let rest = url
        .strip_prefix("df://")
        .ok_or_else(|| bad("the address must start with df://"))?;
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| bad("the port is missing"))?;
    if host.is_empty() {
        return Err(bad("the host is missing"));
    }
    port.parse::<u16>()
        .map_err(|_| bad("the port is not a number"))?;
    Ok(format!("{SCHEME}://{host}:{port}"))
}

/// The session configuration on every side of a cluster: the jobs' own settings, Ballista's
/// extension, and the S3 options the object store registry reads.
pub fn cluster_config(threads: usize) -> SessionConfig {
    session_config(threads)
        .upgrade_for_ballista()
        .with_ballista_logical_extension_codec(Arc::new(codec::Codec::default()))
}

/// A runtime whose object store registry serves local paths and `s3://` URLs.
pub fn runtime_env(
    config: &SessionConfig,
    work_dir: Option<&str>,
) -> datafusion::error::Result<Arc<RuntimeEnv>> {
    let mut builder = runtime_builder(config);
    if let Some(dir) = work_dir {
        builder = builder.with_temp_file_path(dir);
    }
    Ok(Arc::new(builder.build()?))
}

/// A session state with the built-in functions and the project's own.
pub fn state_with_functions(
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
) -> datafusion::error::Result<SessionState> {
    let ctx = SessionContext::new_with_state(
        SessionStateBuilder::new()
            .with_default_features()
            .with_config(config)
            .with_runtime_env(runtime)
            .build(),
    );
    register_functions(&ctx);
    Ok(ctx.state())
}

/// A context whose queries run on the cluster at `url` (`df://HOST:PORT`).
pub async fn client_context(
    url: &str,
    threads: usize,
    token: Option<&str>,
) -> Result<SessionContext> {
    let url = parse_url(url)?;
    let mut config = cluster_config(threads);
    if let Some(token) = token {
        config = config.with_ballista_grpc_metadata(std::collections::HashMap::from([(
            http::header::AUTHORIZATION.to_string(),
            auth::bearer(token),
        )]));
    }
    let runtime = runtime_env(&config, None)?;
    let state = state_with_functions(config, runtime)?;
    let ctx = SessionContext::remote_with_state(&url, state)
        .await
        .map_err(|e| {
            Error::Config(format!(
                "cannot use the cluster at {url}: {e}. Is `marketing-analytics cluster scheduler` running there?"
            ))
        })?;
    // Ballista's upgrade of the state installs its own function lists; functions travel by
    // name, so the project's must be registered again on the client.
    register_functions(&ctx);
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn cluster_urls() {
        assert_eq!(
            parse_url("df://127.0.0.1:50050").unwrap(),
            "df://127.0.0.1:50050"
        );
        assert_eq!(parse_url("df://sched:1/").unwrap(), "df://sched:1");
        for bad in [
            "127.0.0.1:50050",
            "df://127.0.0.1",
            "df://:5",
            "df://h:port",
        ] {
            let e = parse_url(bad).unwrap_err().to_string();
            assert!(e.contains("df://HOST:PORT"), "{bad}: {e}");
        }
    }
}
