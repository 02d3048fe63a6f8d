//! Reliability: runs killed at random moments leave either the previous or the new complete
//! output, and killed conversions a warehouse as one conversion or the next left it; outputs are byte-identical whatever the thread count; a memory cap makes the engine
//! spill instead of failing.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionContext;
use marketing_analytics::app::{layout, run_all, Settings};
use marketing_analytics::attribution::{self, Engine};
use marketing_analytics::engine::{register_functions, session_config};
use marketing_analytics::generate::{generate, Generated, Options};
use marketing_analytics::input::resolve;
use marketing_analytics::storage::output::{PART_FILE, SUCCESS_MARKER};

fn dataset(dir: &Path, seed: u64, users: u64) -> Generated {
    let opts = Options {
        users,
        files: 3,
        seed,
        ..Options::default()
    };
    generate(&opts, &dir.join(format!("data-{seed}"))).unwrap()
}

/// Everything a reader of an output directory sees, as text; panics if anything is missing.
fn fingerprint(out: &Path) -> String {
    for d in [
        layout::PROJECTION,
        layout::TOP_CAMPAIGNS,
        layout::TOP_CHANNELS,
    ] {
        assert!(
            out.join(d).join(SUCCESS_MARKER).is_file(),
            "{d} has no _SUCCESS in {out:?}"
        );
    }
    assert!(out.join(SUCCESS_MARKER).is_file(), "no _SUCCESS in {out:?}");
    let (p, c, ch) = common::read_outputs(out);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(layout::SUMMARY)).unwrap()).unwrap();
    format!("{p}{c}{ch}{}", summary["counts"])
}

fn run_command(g: &Generated, out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_marketing-analytics"));
    cmd.args(["-q", "run", "--threads", "2", "--clickstream"])
        .arg(&g.clickstream_dir)
        .arg("--purchases")
        .arg(&g.purchases_dir)
        .arg("--output")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

#[test]
fn killed_runs_leave_the_previous_or_the_new_complete_output() {
    let _one_at_a_time = common::HEAVY.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let a = dataset(dir.path(), 1, 1500);
    let b = dataset(dir.path(), 2, 1500);
    let (ref_a, ref_b) = (dir.path().join("ref-a"), dir.path().join("ref-b"));
    let started = Instant::now();
    assert!(run_command(&a, &ref_a).status().unwrap().success());
    let duration = started.elapsed();
    assert!(run_command(&b, &ref_b).status().unwrap().success());
    let (fa, fb) = (fingerprint(&ref_a), fingerprint(&ref_b));
    assert_ne!(fa, fb);

    let dest = dir.path().join("out");
    assert!(run_command(&a, &dest).status().unwrap().success());
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let (mut old, mut new) = (0, 0);
    for trial in 0..24 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = Duration::from_micros(seed % (duration.as_micros() as u64 * 6 / 5 + 1));
        let before = fingerprint(&dest);
        let input = if trial % 2 == 0 { &b } else { &a };
        let mut child = run_command(input, &dest).spawn().unwrap();
        std::thread::sleep(wait);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let after = fingerprint(&dest);
        assert!(
            after == fa || after == fb,
            "trial {trial}: the output is a mix"
        );
        if after == before {
            old += 1;
        } else {
            new += 1;
        }
    }
    eprintln!("24 kills: {old} left the previous output, {new} the new one");
    // A rerun succeeds and cleans up what the killed runs left.
    assert!(run_command(&b, &dest).status().unwrap().success());
    assert_eq!(fingerprint(&dest), fb);
    let leftovers: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".out."))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn outputs_are_byte_identical_whatever_the_thread_count() {
    let _one_at_a_time = common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let g = dataset(dir.path(), 3, 3000);
    let mut outputs = Vec::new();
    for threads in [1, 2, 3] {
        for engine in [Engine::Sql, Engine::Udaf] {
            let out = dir.path().join(format!("out-{threads}-{engine:?}"));
            let settings = Settings {
                threads,
                engine,
                ..Settings::default()
            };
            run_all(
                &settings,
                &g.clickstream_dir.display().to_string(),
                &g.purchases_dir.display().to_string(),
                &out,
            )
            .await
            .unwrap();
            outputs.push(out);
        }
    }
    for dataset in [
        layout::PROJECTION,
        layout::TOP_CAMPAIGNS,
        layout::TOP_CHANNELS,
    ] {
        let first = std::fs::read(outputs[0].join(dataset).join(PART_FILE)).unwrap();
        for out in &outputs[1..] {
            assert!(
                first == std::fs::read(out.join(dataset).join(PART_FILE)).unwrap(),
                "{dataset} of {out:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_memory_cap_makes_the_engine_spill_instead_of_failing() {
    let _one_at_a_time = common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let g = dataset(dir.path(), 4, 25_000);
    // A cap whose pool (seven eighths of it) is about 64 MiB.
    let limit = 74 << 20;
    let pool = marketing_analytics::engine::pool_bytes(limit);
    // The job does not fit in that pool: with spilling disabled it runs out of memory.
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(pool)))
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        )
        .build_arc()
        .unwrap();
    let ctx = SessionContext::new_with_config_rt(session_config(1), runtime);
    register_functions(&ctx);
    let inputs = attribution::Inputs {
        clickstream: resolve(
            &g.clickstream_dir.display().to_string(),
            "clickstream",
            None,
        )
        .unwrap(),
        purchases: resolve(&g.purchases_dir.display().to_string(), "purchases", None).unwrap(),
    };
    attribution::extract(&ctx, &inputs, 1, None, None).unwrap();
    let err = match attribution::transform(&ctx, Engine::Sql).await {
        Ok(_) => panic!("the job fits in {pool} bytes: make the dataset larger"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.to_lowercase().contains("exhausted") || err.contains("DiskManager"),
        "{err}"
    );

    // With the product's --memory-limit the job spills to disk and gives the right answer,
    // with either engine, on one thread or two (runs twice each: which operator asks for
    // memory first varies between runs).
    let truth = g.truth_dir.clone().unwrap();
    for (engine, threads, trial) in [Engine::Sql, Engine::Udaf]
        .into_iter()
        .flat_map(|e| [(e, 1, 0), (e, 2, 0), (e, 2, 1)])
    {
        let out = dir.path().join(format!("out-{engine:?}-{threads}-{trial}"));
        let settings = Settings {
            threads,
            engine,
            memory_limit: Some(limit),
            ..Settings::default()
        };
        run_all(
            &settings,
            &g.clickstream_dir.display().to_string(),
            &g.purchases_dir.display().to_string(),
            &out,
        )
        .await
        .unwrap_or_else(|e| panic!("{engine:?}, {threads} threads, under a {limit}-byte cap: {e}"));
        let (projection, _, _) = common::read_outputs(&out);
        common::assert_same_text(
            "projection",
            &projection,
            &std::fs::read_to_string(truth.join("attribution.csv")).unwrap(),
        );
    }
}

/// One thread under a small cap has one sort holding most of the pool when its input ends; its
/// merge then needs more than is left unless the sort kept to half (`pool::HeldSharePool`).
/// The sql engine failed here with `ExternalSorterMerge … can spill: false`.
#[tokio::test]
async fn the_sql_engine_spills_and_finishes_on_one_thread_under_small_caps() {
    let _one_at_a_time = common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let g = dataset(dir.path(), 6, 50_000);
    let truth =
        std::fs::read_to_string(g.truth_dir.clone().unwrap().join("attribution.csv")).unwrap();
    for cap in [74 << 20, 150 << 20] {
        let out = dir.path().join(format!("out-{cap}"));
        let settings = Settings {
            threads: 1,
            engine: Engine::Sql,
            memory_limit: Some(cap),
            ..Settings::default()
        };
        run_all(
            &settings,
            &g.clickstream_dir.display().to_string(),
            &g.purchases_dir.display().to_string(),
            &out,
        )
        .await
        .unwrap_or_else(|e| panic!("under a {cap}-byte cap: {e}"));
        let (projection, _, _) = common::read_outputs(&out);
        common::assert_same_text("projection", &projection, &truth);
    }
}

/// What a reader of a warehouse sees: its stored projection and the rows of its tables at
/// the versions the projection names.
async fn warehouse_fingerprint(warehouse: &Path) -> String {
    use marketing_analytics::input::TableKind;
    use marketing_analytics::storage::warehouse::{register_table, Read, Snapshot};
    let ctx = marketing_analytics::engine::session_context(2);
    let settings = Settings::default();
    let period = marketing_analytics::app::period::Period::all();
    assert!(
        marketing_analytics::app::period::register_stored_projection(
            &ctx, &settings, warehouse, &period
        )
        .await
        .unwrap()
    );
    let rows = ctx
        .sql("SELECT * FROM projection")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut text = marketing_analytics::canonical::projection_csv(&rows).unwrap();
    let snapshot = Snapshot::resolve(&ctx, warehouse, Read::default())
        .await
        .unwrap();
    for (kind, name) in [(TableKind::Clickstream, "c"), (TableKind::Purchases, "p")] {
        register_table(&ctx, warehouse, kind, name, &snapshot)
            .await
            .unwrap();
        let n = ctx.table(name).await.unwrap().count().await.unwrap();
        text.push_str(&format!("{name}: {n}\n"));
    }
    text
}

fn convert_command(g: &Generated, warehouse: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_marketing-analytics"));
    cmd.args(["-q", "convert", "--threads", "2", "--clickstream"])
        .arg(&g.clickstream_dir)
        .arg("--purchases")
        .arg(&g.purchases_dir)
        .arg("--warehouse")
        .arg(warehouse)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

#[tokio::test]
async fn killed_conversions_leave_the_warehouse_as_one_conversion_or_the_next_left_it() {
    let _one_at_a_time = common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let a = dataset(dir.path(), 4, 1500);
    let b = dataset(dir.path(), 5, 1500);
    let (ref_a, ref_ab) = (dir.path().join("ref-a"), dir.path().join("ref-ab"));
    assert!(convert_command(&a, &ref_a).status().unwrap().success());
    assert!(convert_command(&a, &ref_ab).status().unwrap().success());
    let started = Instant::now();
    assert!(convert_command(&b, &ref_ab).status().unwrap().success());
    let duration = started.elapsed();
    let (fa, fab) = (
        warehouse_fingerprint(&ref_a).await,
        warehouse_fingerprint(&ref_ab).await,
    );
    assert_ne!(fa, fab);

    // The second conversion killed at random moments, each time in a fresh copy of the first
    // warehouse; the next conversion carries on from whatever the killed one committed.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let (mut previous, mut next) = (0, 0);
    for trial in 0..12 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait = Duration::from_micros(seed % (duration.as_micros() as u64 * 6 / 5 + 1));
        let dest = dir.path().join(format!("warehouse-{trial}"));
        assert!(Command::new("cp")
            .arg("-r")
            .arg(&ref_a)
            .arg(&dest)
            .status()
            .unwrap()
            .success());
        let mut child = convert_command(&b, &dest).spawn().unwrap();
        std::thread::sleep(wait);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let seen = warehouse_fingerprint(&dest).await;
        assert!(seen == fa || seen == fab, "trial {trial}: a mix");
        if seen == fa {
            previous += 1;
        } else {
            next += 1;
        }
        if trial % 3 == 0 {
            assert!(convert_command(&b, &dest).status().unwrap().success());
            assert_eq!(
                warehouse_fingerprint(&dest).await,
                fab,
                "trial {trial}: the next conversion"
            );
        }
    }
    eprintln!("12 kills: {previous} left the previous conversion's warehouse, {next} the next");
}

#[tokio::test]
async fn concurrent_conversions_each_commit_whole_or_fail_saying_why_and_lose_nothing() {
    let _one_at_a_time = common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let [a, b, c] = [7, 8, 9].map(|seed| dataset(dir.path(), seed, 800));
    let reference = dir.path().join("ref-abc");
    for g in [&a, &b, &c] {
        assert!(convert_command(g, &reference).status().unwrap().success());
    }
    let all = warehouse_fingerprint(&reference).await;
    let first = dir.path().join("ref-a");
    assert!(convert_command(&a, &first).status().unwrap().success());

    // Two conversions of other files started together on one warehouse, four times: each one
    // commits all of its files or fails saying why (the warehouse is being written), and the
    // one that failed, run again, leaves the warehouse of all three conversions.
    let mut failed_runs = 0;
    for trial in 0..4 {
        let dest = dir.path().join(format!("warehouse-{trial}"));
        assert!(Command::new("cp")
            .arg("-r")
            .arg(&first)
            .arg(&dest)
            .status()
            .unwrap()
            .success());
        let spawn = |g: &Generated| {
            convert_command(g, &dest)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (one, two) = (spawn(&b), spawn(&c));
        let outputs =
            [(&b, one), (&c, two)].map(|(g, child)| (g, child.wait_with_output().unwrap()));
        let mut succeeded = 0;
        for (g, out) in outputs {
            if out.status.success() {
                succeeded += 1;
                continue;
            }
            failed_runs += 1;
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("is being written by") || err.contains("another writer committed"),
                "trial {trial}: {err}"
            );
            assert!(convert_command(g, &dest).status().unwrap().success());
        }
        assert!(succeeded >= 1, "trial {trial}: neither conversion finished");
        assert_eq!(warehouse_fingerprint(&dest).await, all, "trial {trial}");
    }
    eprintln!("4 races: {failed_runs} conversions refused while the other wrote");
}
