//! The scheduler and executor processes of `marketing-analytics cluster …`.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::create_scheduler;
use ballista_scheduler::scheduler_server::SchedulerServer;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use tracing::info;

use super::{cluster_config, runtime_env, state_with_functions};
use crate::error::{Error, Result};

/// Settings of `cluster scheduler`.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Address to listen on, `HOST:PORT`.
    pub bind: String,
    /// Seconds without a heartbeat after which an executor is taken for dead and its tasks
    /// are run again elsewhere.
    pub executor_timeout_secs: u64,
    /// The token clients must present to run jobs (`cluster::auth`); `None`: any client.
    pub token: Option<String>,
    /// Bind beyond loopback without a token.
    pub insecure: bool,
}

/// Settings of `cluster executor`.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler, `HOST:PORT`.
    pub scheduler: String,
    /// Address of this executor's Arrow Flight service (shuffle data), `HOST:PORT`.
    pub bind: String,
    /// Tasks run at once [default: every core].
    pub concurrent_tasks: Option<usize>,
    /// Shuffle files and spills [default: a fresh temporary directory].
    pub work_dir: Option<PathBuf>,
    /// Seconds between heartbeats to the scheduler.
    pub heartbeat_secs: u64,
    /// Cap on the executor's memory in bytes: its pool holds `context::pool_bytes` of it
    /// [default: Ballista's, a pool of 70 % of the host].
    pub memory_limit: Option<usize>,
    /// Bind beyond loopback, where anyone who reaches the port can fetch shuffle data.
    pub insecure: bool,
}

fn split_host_port(addr: &str, what: &str) -> Result<(String, u16)> {
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .filter(|(h, _)| !h.is_empty())
        .ok_or_else(|| Error::Config(format!("{what} {addr:?} is not HOST:PORT")))?;
    Ok((host, port))
}

/// The name other processes use to reach a service bound to `host`: the machine's host name
/// when bound to every interface.
fn advertised(host: &str) -> String {
    if matches!(host, "0.0.0.0" | "::" | "[::]") {
        if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            if !name.trim().is_empty() {
                return name.trim().to_string();
            }
        }
    }
    host.to_string()
}

fn resolve_addr(addr: &str, what: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .map_err(|e| Error::Config(format!("{what} {addr:?}: {e}")))?
        .next()
        .ok_or_else(|| Error::Config(format!("{what} {addr:?} resolves to no address")))
}

fn ballista(e: impl std::fmt::Display, what: &str) -> Error {
    Error::Config(format!("{what}: {e}"))
}

/// Executors ask for tasks when they have free slots (as Spark's do), rather than the
/// scheduler pushing tasks against its own count of each executor's free slots: after an
/// executor is lost, Ballista 55's push scheduling never gives back the slots of tasks it
/// cancels on the surviving executors (their stage was rolled back, so their vcores are no
/// longer found), and the job waited forever (`cluster::killing_an_executor_mid_job…`).
const SCHEDULING: TaskSchedulingPolicy = TaskSchedulingPolicy::PullStaged;

/// Runs a scheduler until the process is stopped.
pub async fn scheduler(opts: &SchedulerOptions) -> Result<()> {
    let (host, port) = split_host_port(&opts.bind, "--bind")?;
    let addr = resolve_addr(&opts.bind, "--bind")?;
    if !addr.ip().is_loopback() && opts.token.is_none() && !opts.insecure {
        return Err(Error::Config(format!(
            "--bind {}: a scheduler reachable from other machines runs any job anyone sends it \
             (reading any file the executors can read). Set {} to a secret shared with the \
             clients, or give --insecure on a network you trust (docs/cluster.md, Security)",
            opts.bind,
            super::auth::TOKEN_ENV
        )));
    }
    let mut config = SchedulerConfig {
        bind_host: addr.ip().to_string(),
        external_host: advertised(&host),
        bind_port: port,
        executor_timeout_seconds: opts.executor_timeout_secs,
        expire_dead_executor_interval_seconds: (opts.executor_timeout_secs / 4).clamp(1, 15),
        no_executors_grace_period_seconds: opts.executor_timeout_secs,
        scheduling_policy: SCHEDULING,
        // The warehouse's snapshots arrive as their files (cluster/codec.rs).
        override_logical_codec: Some(Arc::new(super::codec::Codec::default())),
        ..SchedulerConfig::default()
    };
    config = config
        // Client settings arrive as key-value pairs and are applied to this configuration, so
        // it must know the same extensions (Ballista's, S3).
        .with_override_config_producer(Arc::new(|| cluster_config(1)))
        .with_override_session_builder(Arc::new(|config| {
            let runtime = runtime_env(&config, None)?;
            state_with_functions(config, runtime)
        }));
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| ballista(e, "starting the scheduler"))?;
    info!(%addr, token = opts.token.is_some(), "scheduler listening; executors join with `marketing-analytics cluster executor --scheduler {}`", opts.bind);
    // Ballista's own server has no place for the checks of `auth::Guard`: serve its gRPC
    // service here, behind them (without the REST and Flight proxy routes, which are off).
    let (max_decoding, max_encoding) = (
        config.grpc_server_max_decoding_message_size as usize,
        config.grpc_server_max_encoding_message_size as usize,
    );
    let scheduler =
        create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config))
            .await
            .map_err(|e| ballista(e, "starting the scheduler"))?;
    let service = SchedulerGrpcServer::new(scheduler.clone())
        .max_decoding_message_size(max_decoding)
        .max_encoding_message_size(max_encoding);
    let guarded = super::auth::Guard::new(
        service,
        opts.token.as_deref(),
        Registered(scheduler),
        std::time::Duration::from_secs(opts.executor_timeout_secs),
    );
    tonic::transport::Server::builder()
        .add_service(guarded)
        .serve(addr)
        .await
        .map_err(|e| ballista(e, &format!("scheduler on {addr}")))
}

/// Whether the scheduler has an executor alive.
#[derive(Clone)]
struct Registered(SchedulerServer<LogicalPlanNode, PhysicalPlanNode>);

impl super::auth::Readiness for Registered {
    fn ready(&self) -> bool {
        self.0.is_ready()
    }
}

/// A port on `host` that was free a moment ago (for services the user did not name).
fn free_port(host: &str) -> Result<u16> {
    let listener = TcpListener::bind((host, 0))
        .map_err(|e| Error::Config(format!("finding a free port on {host}: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::Config(format!("finding a free port on {host}: {e}")))
}

/// Every function a job may call, for the executors: DataFusion's built-in functions (with the
/// array functions Ballista's default registry lacks) and the project's own.
pub fn function_registry() -> Result<BallistaFunctionRegistry> {
    let config = cluster_config(1);
    let runtime = runtime_env(&config, None)?;
    Ok(BallistaFunctionRegistry::from(&state_with_functions(
        config, runtime,
    )?))
}

/// Runs an executor until the process is stopped.
pub async fn executor(opts: &ExecutorOptions) -> Result<()> {
    let (scheduler_host, scheduler_port) = split_host_port(&opts.scheduler, "--scheduler")?;
    let (host, port) = split_host_port(&opts.bind, "--bind")?;
    let bind_ip = resolve_addr(&opts.bind, "--bind")?.ip();
    if !bind_ip.is_loopback() && !opts.insecure {
        return Err(Error::Config(format!(
            "--bind {}: an executor's data service (shuffle files, results) and its calls to \
             the scheduler carry no credentials in Ballista 55, so anyone who reaches the port \
             can fetch job data. Bind it to a private network you trust and give --insecure \
             (docs/cluster.md, Security)",
            opts.bind
        )));
    }
    let bind_ip = bind_ip.to_string();
    // Kept until the executor stops: the default work dir lives as long as the process.
    let _temp;
    let work_dir = match &opts.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            dir.clone()
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("marketing-analytics-executor-")
                .tempdir()
                .map_err(|e| Error::io(std::env::temp_dir(), e))?;
            let dir = t.path().to_path_buf();
            _temp = t;
            dir
        }
    };
    let work_dir = work_dir.to_string_lossy().into_owned();
    let spill_dir = work_dir.clone();
    let config = ExecutorProcessConfig {
        bind_host: bind_ip.clone(),
        external_host: Some(advertised(&host)),
        port,
        // Only used when the scheduler pushes tasks; any free port will do.
        grpc_port: free_port(&bind_ip)?,
        scheduler_host,
        scheduler_port,
        scheduler_connect_timeout_seconds: 60,
        vcores: opts.concurrent_tasks.unwrap_or(0),
        work_dir: Some(work_dir.clone()),
        executor_heartbeat_interval_seconds: opts.heartbeat_secs,
        task_scheduling_policy: SCHEDULING,
        memory_pool_size: opts
            .memory_limit
            .map(|b| crate::engine::pool_bytes(b) as u64),
        print_thread_info: false,
        override_function_registry: Some(Arc::new(function_registry()?)),
        override_config_producer: Some(Arc::new(|| cluster_config(1))),
        override_runtime_producer: Some(Arc::new(move |config| {
            runtime_env(config, Some(&spill_dir))
        })),
        ..ExecutorProcessConfig::default()
    };
    info!(bind = %opts.bind, scheduler = %opts.scheduler, work_dir, "executor starting");
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| ballista(e, &format!("executor on {}", opts.bind)))
}

#[cfg(test)]
mod tests {
    use datafusion::execution::FunctionRegistry;

    #[test]
    fn executors_know_the_project_functions_and_the_array_functions() {
        let registry = super::function_registry().unwrap();
        assert!(registry.udaf("sessionize").is_ok());
        assert!(registry.udf("hash_bucket").is_ok());
        assert!(registry.udf("key_hash").is_ok());
        for f in ["make_array", "array_length", "named_struct", "date_trunc"] {
            assert!(registry.udf(f).is_ok(), "{f} missing");
        }
        assert!(registry.udaf("first_value").is_ok());
        assert!(registry.udwf("row_number").is_ok());
    }
}
