//! `marketing-analytics cluster scheduler|executor`: the processes of a Ballista cluster.

use std::path::PathBuf;

use clap::Subcommand;

use crate::cluster;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// The scheduler: plans jobs into stages and hands tasks to executors.
    Scheduler {
        /// Address to listen on.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50050")]
        bind: String,
        /// Seconds without news from an executor before it is taken for dead and its work is
        /// redone on the others.
        #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(2..))]
        executor_timeout: u64,
        /// Listen beyond loopback without a token: any client that reaches the port can run
        /// jobs. Set MARKETING_ANALYTICS_CLUSTER_TOKEN (here and in every client) instead.
        #[arg(long)]
        insecure: bool,
        /// YAML configuration file whose keys are these flags' names; flags override it.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// An executor: runs tasks and serves its shuffle data to the others.
    Executor {
        /// The scheduler's address.
        #[arg(long, value_name = "HOST:PORT")]
        scheduler: String,
        /// Address of this executor's data service (other ports it needs are chosen free).
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:50051")]
        bind: String,
        /// Tasks run at once [default: every core].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        concurrent_tasks: Option<u64>,
        /// Directory for shuffle files and spills [default: a fresh temporary directory].
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
        /// Seconds between heartbeats to the scheduler (keep it well below the scheduler's
        /// --executor-timeout).
        #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        heartbeat_interval: u64,
        /// Cap on the executor's memory (e.g. 4G): its query engine's pool gets seven eighths
        /// of it (at most 1 GiB less), the rest is left to buffers no pool sees [default: a
        /// pool of 70% of the host's memory].
        #[arg(long, value_name = "SIZE", value_parser = crate::engine::parse_size)]
        memory_limit: Option<usize>,
        /// Listen beyond loopback: Ballista 55's executors serve shuffle data without any
        /// credential, so do this only on a network you trust.
        #[arg(long)]
        insecure: bool,
        /// YAML configuration file whose keys are these flags' names; flags override it.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

pub async fn run(command: &ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Scheduler {
            bind,
            executor_timeout,
            insecure,
            config: _,
        } => {
            cluster::scheduler(&cluster::SchedulerOptions {
                bind: bind.clone(),
                executor_timeout_secs: *executor_timeout,
                token: cluster::auth::token_from_env(),
                insecure: *insecure,
            })
            .await?
        }
        ClusterCommand::Executor {
            scheduler,
            bind,
            concurrent_tasks,
            work_dir,
            heartbeat_interval,
            memory_limit,
            insecure,
            config: _,
        } => {
            cluster::executor(&cluster::ExecutorOptions {
                scheduler: scheduler.clone(),
                bind: bind.clone(),
                concurrent_tasks: concurrent_tasks.map(|n| n as usize),
                work_dir: work_dir.clone(),
                heartbeat_secs: *heartbeat_interval,
                memory_limit: *memory_limit,
                insecure: *insecure,
            })
            .await?
        }
    }
    Ok(())
}
