//! Cluster mode: a real Ballista scheduler and two executors, started as separate processes of
//! our own binary on 127.0.0.1, run the whole pipeline; the outputs must equal the local run's.
//! A fault test kills an executor mid-job: the run must then either finish with the same
//! outputs or fail with a clear error, never leave wrong or partial outputs.

use crate::common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use marketing_analytics::app::period::{period_job, Period, Source};
use marketing_analytics::app::{layout, run_all, RunReport, Settings};
use marketing_analytics::attribution::Engine;
use marketing_analytics::generate::{generate, Generated, Options};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The processes of a cluster; every one is killed when this is dropped, also on a panic.
struct Cluster {
    scheduler_port: u16,
    processes: Vec<(String, Child)>,
    logs: PathBuf,
    executor_dirs: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl Cluster {
    fn start(dir: &Path, executors: usize) -> Cluster {
        Self::start_with_env(dir, executors, &[])
    }

    fn start_with_env(dir: &Path, executors: usize, env: &[(String, String)]) -> Cluster {
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let scheduler_port = free_port();
        let mut cluster = Cluster {
            scheduler_port,
            processes: Vec::new(),
            logs,
            executor_dirs: Vec::new(),
            env: env.to_vec(),
        };
        let scheduler = format!("127.0.0.1:{scheduler_port}");
        cluster.spawn(
            "scheduler",
            &[
                "cluster",
                "scheduler",
                "--bind",
                &scheduler,
                "--executor-timeout",
                "8",
            ],
        );
        wait_for(Duration::from_secs(60), "the scheduler to listen", || {
            TcpStream::connect(&scheduler).is_ok()
        });
        for i in 0..executors {
            let work = dir.join(format!("executor-{i}"));
            let bind = format!("127.0.0.1:{}", free_port());
            cluster.spawn(
                &format!("executor-{i}"),
                &[
                    "cluster",
                    "executor",
                    "--scheduler",
                    &scheduler,
                    "--bind",
                    &bind,
                    "--concurrent-tasks",
                    "2",
                    "--heartbeat-interval",
                    "1",
                    "--work-dir",
                    &work.display().to_string(),
                ],
            );
            cluster.executor_dirs.push(work);
            wait_for(Duration::from_secs(60), "an executor to listen", || {
                TcpStream::connect(&bind).is_ok()
            });
        }
        // Executors register with their first heartbeat.
        std::thread::sleep(Duration::from_secs(3));
        cluster
    }

    fn spawn(&mut self, name: &str, args: &[&str]) {
        let log = std::fs::File::create(self.logs.join(format!("{name}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_marketing-analytics"))
            .args(args)
            .env("MARKETING_ANALYTICS_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.processes.push((name.to_string(), child));
    }

    fn url(&self) -> String {
        format!("df://127.0.0.1:{}", self.scheduler_port)
    }

    fn kill(&mut self, name: &str) {
        for (n, child) in &mut self.processes {
            if n == name {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Every process still alive (a crashed process fails the test with its log).
    fn assert_alive(&mut self) {
        for (name, child) in &mut self.processes {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(self.logs.join(format!("{name}.log")))
                    .unwrap_or_default();
                panic!("{name} exited ({status}):\n{log}");
            }
        }
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for (name, _) in &self.processes {
            let log =
                std::fs::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            all += &format!("--- {name} (last lines)\n");
            for l in tail.into_iter().rev() {
                all += l;
                all.push('\n');
            }
        }
        all
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// At least 500k events, messy.
fn dataset(dir: &Path) -> Generated {
    let g = generate(
        &Options {
            users: 35_000,
            files: 3,
            seed: 11,
            ..Options::default()
        },
        &dir.join("data"),
    )
    .unwrap();
    assert!(g.events >= 500_000, "only {} events", g.events);
    g
}

async fn run(g: &Generated, out: &Path, engine: Engine, cluster: Option<String>) -> RunReport {
    let settings = Settings {
        engine,
        threads: 2,
        cluster,
        journeys: Some(marketing_analytics::journeys::Options::default()),
        ..Settings::default()
    };
    run_all(
        &settings,
        &g.clickstream_dir.display().to_string(),
        &g.purchases_dir.display().to_string(),
        out,
    )
    .await
    .unwrap_or_else(|e| panic!("{engine:?} run into {out:?}: {e}"))
}

fn outputs(out: &Path) -> String {
    let (p, c, ch) = common::read_outputs(out);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(layout::SUMMARY)).unwrap()).unwrap();
    format!("{p}{c}{ch}{}", summary["counts"])
}

/// The journey models (`--models all`) and their counts, as text.
fn journeys(out: &Path) -> String {
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(layout::SUMMARY)).unwrap()).unwrap();
    let tables: Vec<String> = ["attribution_models", "conversion_paths"]
        .iter()
        .map(|name| {
            let batches =
                marketing_analytics::storage::output::read_parquet(&out.join(name)).unwrap();
            datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string()
        })
        .collect();
    format!("{}{}", summary["journeys"], tables.concat())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_pipeline_on_two_executors_equals_local_run() {
    let _serial = common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let g = dataset(dir.path());
    let local = dir.path().join("local");
    run(&g, &local, Engine::Sql, None).await;
    let want = outputs(&local);
    let mut cluster = Cluster::start(dir.path(), 2);
    for engine in [Engine::Sql, Engine::Udaf] {
        let out = dir.path().join(format!("cluster-{engine:?}"));
        let report = tokio::time::timeout(
            Duration::from_secs(900),
            run(&g, &out, engine, Some(cluster.url())),
        )
        .await
        .unwrap_or_else(|_| panic!("{engine:?} cluster run timed out\n{}", cluster.logs()));
        cluster.assert_alive();
        assert!(report.summary.counts.attributed_purchases > 0);
        common::assert_same_text(
            &format!("cluster {engine:?} vs local"),
            &outputs(&out),
            &want,
        );
        common::assert_same_text(
            &format!("journey models of cluster {engine:?} vs local"),
            &journeys(&out),
            &journeys(&local),
        );
    }
    // A period with the models, from a warehouse: its sessions, sorts and paths on the
    // executors, the outputs those of this process.
    let warehouse = dir.path().join("warehouse");
    let local_settings = Settings {
        threads: 2,
        journeys: Some(marketing_analytics::journeys::Options::default()),
        ..Settings::default()
    };
    marketing_analytics::app::convert::convert(
        &local_settings,
        &g.clickstream_dir.display().to_string(),
        &g.purchases_dir.display().to_string(),
        &warehouse,
    )
    .await
    .unwrap();
    let period = Period::parse(Some("2020-10-01"), Some("2020-10-20"), None, 1).unwrap();
    let source = Source::Warehouse(warehouse);
    let period_local = dir.path().join("period-local");
    period_job(&local_settings, &source, &period, &period_local)
        .await
        .unwrap();
    let period_cluster = dir.path().join("period-cluster");
    let on_cluster = Settings {
        cluster: Some(cluster.url()),
        ..local_settings.clone()
    };
    tokio::time::timeout(
        Duration::from_secs(900),
        period_job(&on_cluster, &source, &period, &period_cluster),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "period --models on the cluster timed out\n{}",
            cluster.logs()
        )
    })
    .unwrap_or_else(|e| panic!("period --models on the cluster: {e}\n{}", cluster.logs()));
    let want = journeys(&period_local);
    assert!(want.lines().count() > 20, "{want}");
    common::assert_same_text(
        "period journey models of the cluster vs local",
        &journeys(&period_cluster),
        &want,
    );
    // `models` of the local run's projection, on the cluster.
    let models = dir.path().join("models-cluster");
    marketing_analytics::app::models::models_job(
        &on_cluster,
        &local.join(layout::PROJECTION).display().to_string(),
        &g.clickstream_dir.display().to_string(),
        &models,
    )
    .await
    .unwrap_or_else(|e| panic!("models on the cluster: {e}\n{}", cluster.logs()));
    common::assert_same_text(
        "models on the cluster vs the local run's",
        &journeys(&models),
        &journeys(&local),
    );
    // `sql --cluster` over the local run's outputs: the executors answer as this process.
    let query = "SELECT campaignId, COUNT(*) AS n, \
                 SUM(CAST(billingCost AS DECIMAL(38, 6))) AS revenue \
                 FROM purchases_attribution GROUP BY campaignId ORDER BY campaignId NULLS LAST";
    let answer = |settings: Settings| {
        let local = local.clone();
        async move {
            use marketing_analytics::app::sql::{run_statements, sql_context, Sources};
            let sources = Sources {
                outputs: vec![local],
                warehouse: None,
            };
            let (ctx, tables) = sql_context(&settings, &sources).await?;
            let mut text = String::new();
            for frame in run_statements(&ctx, query, &tables).await? {
                let batches = frame.collect().await?;
                text +=
                    &datafusion::arrow::util::pretty::pretty_format_batches(&batches)?.to_string();
            }
            Ok::<_, Box<dyn std::error::Error>>(text)
        }
    };
    let here = answer(local_settings.clone()).await.unwrap();
    let there = answer(on_cluster.clone())
        .await
        .unwrap_or_else(|e| panic!("sql on the cluster: {e}\n{}", cluster.logs()));
    assert!(here.lines().count() > 5, "{here}");
    common::assert_same_text("sql on the cluster vs here", &there, &here);
    // Both executors did work: each wrote shuffle data for the jobs.
    for work in &cluster.executor_dirs {
        let used = std::fs::read_dir(work).map(|d| d.count()).unwrap_or(0);
        assert!(
            used > 0,
            "executor with work dir {work:?} ran nothing\n{}",
            cluster.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_executor_mid_job_never_leaves_wrong_outputs() {
    let _serial = common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let g = dataset(dir.path());
    let local = dir.path().join("local");
    run(&g, &local, Engine::Udaf, None).await;
    let want = outputs(&local);
    let mut cluster = Cluster::start(dir.path(), 2);
    let out = dir.path().join("cluster");
    let settings = Settings {
        engine: Engine::Udaf,
        threads: 2,
        cluster: Some(cluster.url()),
        ..Settings::default()
    };
    let (c, p, o) = (
        g.clickstream_dir.display().to_string(),
        g.purchases_dir.display().to_string(),
        out.clone(),
    );
    let mut job = tokio::spawn(async move { run_all(&settings, &c, &p, &o).await });
    // Kill executor 0 as soon as it has started on the job (its first shuffle files).
    let victim = cluster.executor_dirs[0].clone();
    let started = Instant::now();
    while std::fs::read_dir(&victim).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "executor 0 never started\n{}",
            cluster.logs()
        );
        assert!(
            !job.is_finished(),
            "the job ended before executor 0 started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.kill("executor-0");
    // Ballista 55 can leave a job waiting forever after an executor dies (docs/cluster.md,
    // trap 6): then the client gives up, as a user interrupting the run would, and what must
    // hold is that no output was committed.
    let result = match tokio::time::timeout(Duration::from_secs(240), &mut job).await {
        Ok(result) => result.unwrap(),
        Err(_) => {
            job.abort();
            assert!(job.await.is_err_and(|e| e.is_cancelled()));
            assert!(
                !out.exists(),
                "an abandoned run left outputs in {out:?}\n{}",
                cluster.logs()
            );
            eprintln!(
                "Ballista never finished the job after losing an executor (docs/cluster.md, \
                 trap 6); abandoned, no output committed\n{}",
                cluster.logs()
            );
            return;
        }
    };
    match result {
        Ok(_) => {
            common::assert_same_text("after losing an executor", &outputs(&out), &want);
            eprintln!("the run completed correctly on the surviving executor");
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.trim().is_empty());
            assert!(
                !out.exists(),
                "a failed run left outputs in {out:?}: {message}"
            );
            eprintln!("the run failed cleanly after losing an executor: {message}");
        }
    }
}

/// A local S3 (moto's server), for the object-store test. CI installs it (see `.ci/run`); the
/// binary is taken from `MOTO_SERVER` or the PATH.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start(dir: &Path) -> Option<Moto> {
        let program = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = free_port();
        let log = std::fs::File::create(dir.join("moto.log")).ok()?;
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().ok()?)
            .stderr(log)
            .spawn()
            .ok()?;
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        wait_for(Duration::from_secs(60), "moto_server to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Some(moto)
    }

    /// The `AWS_*` variables that point object_store at this server.
    fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn create_bucket(&self, bucket: &str) {
        use std::io::{Read, Write};
        let host = self.endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(host).unwrap();
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "creating bucket {bucket}: {reply}"
        );
    }

    fn store(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        let mut builder = object_store::aws::AmazonS3Builder::new().with_bucket_name(bucket);
        for (k, v) in self.env() {
            if let Ok(key) = k.to_ascii_lowercase().parse() {
                builder = builder.with_config(key, v);
            }
        }
        builder.build().unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies a local directory tree to `bucket` under `prefix`.
async fn upload(store: &object_store::aws::AmazonS3, local: &Path, prefix: &str) {
    use object_store::ObjectStoreExt;
    for entry in walk(local) {
        let rel = entry.strip_prefix(local).unwrap().display().to_string();
        let key = object_store::path::Path::from(format!("{prefix}/{rel}"));
        store
            .put(&key, std::fs::read(&entry).unwrap().into())
            .await
            .unwrap();
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

async fn keys_under(store: &object_store::aws::AmazonS3, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    store
        .list(Some(&object_store::path::Path::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warehouse_and_scratch_on_s3_equal_local_files() {
    let _serial = common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(dir.path()) else {
        // CI sets this: there the test must run, not skip.
        assert!(
            std::env::var_os("MARKETING_ANALYTICS_REQUIRE_S3").is_none(),
            "MARKETING_ANALYTICS_REQUIRE_S3 is set but moto_server does not start"
        );
        eprintln!(
            "SKIPPED: no moto_server (pip install 'moto[server]', or set MOTO_SERVER); .ci/run installs it"
        );
        return;
    };
    moto.create_bucket("lake");
    let store = moto.store("lake");
    // object_store reads its S3 settings from the environment, in this process as in the
    // cluster's; no other test here uses S3.
    for (k, v) in moto.env() {
        std::env::set_var(k, v);
    }
    let g = generate(
        &Options {
            users: 3_000,
            files: 2,
            days: 20,
            seed: 5,
            ..Options::default()
        },
        &dir.path().join("data"),
    )
    .unwrap();
    let warehouse = dir.path().join("warehouse");
    let settings = Settings {
        threads: 2,
        ..Settings::default()
    };
    marketing_analytics::app::convert::convert(
        &settings,
        &g.clickstream_dir.display().to_string(),
        &g.purchases_dir.display().to_string(),
        &warehouse,
    )
    .await
    .unwrap();
    upload(&store, &warehouse, "warehouse").await;

    let cluster = Cluster::start_with_env(dir.path(), 2, &moto.env());
    let period = Period::parse(Some("2020-09-01"), Some("2020-09-10"), None, 1).unwrap();
    let local_out = dir.path().join("period-local");
    period_job(
        &settings,
        &Source::Warehouse(warehouse),
        &period,
        &local_out,
    )
    .await
    .unwrap();
    let s3_out = dir.path().join("period-s3");
    let on_cluster = Settings {
        cluster: Some(cluster.url()),
        scratch: Some("s3://lake/tmp".into()),
        ..settings.clone()
    };
    // The executors sessionize the partitions on S3; the local run read the stored projection.
    let recompute = Settings {
        stored_projection: false,
        ..on_cluster.clone()
    };
    period_job(
        &recompute,
        &Source::Warehouse(PathBuf::from("s3://lake/warehouse")),
        &period,
        &s3_out,
    )
    .await
    .unwrap_or_else(|e| panic!("period from s3 on the cluster: {e}\n{}", cluster.logs()));
    // The executors read the stored projection's partitions of the period on S3 (current
    // there too: the sizes its `_SUCCESS` lists survive the upload).
    let listed = marketing_analytics::engine::session_context(2);
    assert!(
        marketing_analytics::app::period::register_stored_projection(
            &listed,
            &settings,
            Path::new("s3://lake/warehouse"),
            &period
        )
        .await
        .unwrap()
    );
    let stored_out = dir.path().join("period-s3-stored");
    period_job(
        &on_cluster,
        &Source::Warehouse(PathBuf::from("s3://lake/warehouse")),
        &period,
        &stored_out,
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "period from s3's stored projection: {e}\n{}",
            cluster.logs()
        )
    });
    for mart in [layout::TOP_CAMPAIGNS, layout::TOP_CHANNELS] {
        let read = |d: &Path| {
            marketing_analytics::storage::output::read_parquet(&d.join(mart))
                .map(|b| {
                    datafusion::arrow::util::pretty::pretty_format_batches(&b)
                        .unwrap()
                        .to_string()
                })
                .unwrap()
        };
        let want = read(&local_out);
        assert!(
            want.lines().count() > 8,
            "{mart} of the period is nearly empty:\n{want}"
        );
        common::assert_same_text(mart, &read(&s3_out), &want);
        common::assert_same_text(mart, &read(&stored_out), &want);
    }

    // The whole pipeline from raw exports, with the decoded inputs and intermediates on S3.
    let local = dir.path().join("run-local");
    run(&g, &local, Engine::Udaf, None).await;
    let remote = dir.path().join("run-s3-scratch");
    run_all(
        &on_cluster,
        &g.clickstream_dir.display().to_string(),
        &g.purchases_dir.display().to_string(),
        &remote,
    )
    .await
    .unwrap_or_else(|e| panic!("run with s3 scratch: {e}\n{}", cluster.logs()));
    common::assert_same_text("run with s3 scratch", &outputs(&remote), &outputs(&local));
    let left = keys_under(&store, "tmp").await;
    assert!(left.is_empty(), "scratch data left on s3: {left:?}");
}

/// A scheduler started with a token runs jobs only for clients that present it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_with_a_token_runs_jobs_only_for_clients_that_present_it() {
    let _serial = common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        users: 300,
        files: 2,
        seed: 8,
        ..Options::default()
    };
    let g = generate(&opts, &dir.path().join("data")).unwrap();
    let local = dir.path().join("local");
    run(&g, &local, Engine::Udaf, None).await;
    let token = "a-long-random-secret";
    let env = [(
        marketing_analytics::cluster::auth::TOKEN_ENV.to_string(),
        token.to_string(),
    )];
    let mut cluster = Cluster::start_with_env(dir.path(), 1, &env);
    let (c, p) = (
        g.clickstream_dir.display().to_string(),
        g.purchases_dir.display().to_string(),
    );
    for presented in [None, Some("a-wrong-secret")] {
        let settings = Settings {
            threads: 2,
            cluster: Some(cluster.url()),
            cluster_token: presented.map(str::to_string),
            ..Settings::default()
        };
        let out = dir.path().join("refused");
        let err = tokio::time::timeout(Duration::from_secs(300), run_all(&settings, &c, &p, &out))
            .await
            .expect("a refused client fails at once")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("requires its token") && err.contains("MARKETING_ANALYTICS_CLUSTER_TOKEN"),
            "{presented:?}: {err}"
        );
        assert!(!out.exists());
    }
    let settings = Settings {
        threads: 2,
        cluster: Some(cluster.url()),
        cluster_token: Some(token.to_string()),
        ..Settings::default()
    };
    let out = dir.path().join("accepted");
    tokio::time::timeout(Duration::from_secs(600), run_all(&settings, &c, &p, &out))
        .await
        .unwrap_or_else(|_| panic!("timed out\n{}", cluster.logs()))
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    cluster.assert_alive();
    common::assert_same_text("with a token vs local", &outputs(&out), &outputs(&local));
}

#[test]
fn cluster_processes_refuse_to_listen_beyond_loopback_unprotected() {
    for args in [
        vec!["cluster", "scheduler", "--bind", "0.0.0.0:0"],
        vec![
            "cluster",
            "executor",
            "--scheduler",
            "127.0.0.1:1",
            "--bind",
            "0.0.0.0:0",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_marketing-analytics"))
            .args(&args)
            .env_remove(marketing_analytics::cluster::auth::TOKEN_ENV)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("--insecure") && err.contains("0.0.0.0:0"),
            "{args:?}: {err}"
        );
    }
}

/// A job sent to a scheduler without executors fails after the scheduler's executor timeout,
/// saying so, instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_on_a_cluster_without_executors_fails_after_a_bounded_wait() {
    let _serial = common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        users: 50,
        files: 1,
        ..Options::default()
    };
    let g = generate(&opts, &dir.path().join("data")).unwrap();
    let cluster = Cluster::start(dir.path(), 0);
    let settings = Settings {
        threads: 2,
        cluster: Some(cluster.url()),
        ..Settings::default()
    };
    let started = Instant::now();
    let out = dir.path().join("out");
    let result = tokio::time::timeout(
        Duration::from_secs(120),
        run_all(
            &settings,
            &g.clickstream_dir.display().to_string(),
            &g.purchases_dir.display().to_string(),
            &out,
        ),
    )
    .await
    .expect("the job must not wait forever");
    let err = result.unwrap_err().to_string();
    assert!(err.contains("no executor registered"), "{err}");
    // The scheduler was started with --executor-timeout 8.
    assert!(
        started.elapsed() >= Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(!out.exists());
}
