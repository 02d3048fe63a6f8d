//! Data safety: a job replaces only what this program wrote, never an input or a path that
//! holds one, writes nowhere it cannot (object-store URLs), runs alone on its destination, and
//! `convert` never drops the rows of files it was not given.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use marketing_analytics::app::convert::convert;
use marketing_analytics::app::{attribution_job, layout, mart_job, run_all, Settings};
use marketing_analytics::marts::{top_campaigns, top_channels};
use marketing_analytics::storage::claim::{claim, Destination, Input};
use marketing_analytics::storage::output::SUCCESS_MARKER;

const CLICKS: &str = "userId,eventId,eventType,eventTime,attributes\n\
    u1,o1,app_open,2020-09-01 10:00:00,\"{'campaign_id': 1, 'channel_id': 'A'}\"\n\
    u1,b1,purchase,2020-09-01 10:01:00,\"{'purchase_id': 'p1'}\"\n";
const PURCHASES: &str = "purchaseId,purchaseTime,billingCost,isConfirmed\n\
    p1,2020-09-01 10:01:00,1.00,True\n";

fn settings() -> Settings {
    Settings {
        threads: 2,
        ..Settings::default()
    }
}

/// Small inputs under `dir`: (dir/clicks/, dir/purchases/).
fn inputs(dir: &Path) -> (String, String) {
    let (c, p) = (dir.join("clicks"), dir.join("purchases"));
    std::fs::create_dir_all(&c).unwrap();
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(c.join("clicks.csv"), CLICKS).unwrap();
    std::fs::write(p.join("purchases.csv"), PURCHASES).unwrap();
    (c.display().to_string(), p.display().to_string())
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_marketing-analytics"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every path under `dir` with its content (files) or `/` (directories), sorted.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.push((path.clone(), b"/".to_vec()));
            out.extend(tree(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn an_output_that_is_a_regular_file_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = inputs(dir.path());
    let out = dir.path().join("report.txt");
    std::fs::write(&out, "the user's own file").unwrap();
    let err = run_all(&settings(), &c, &p, &out)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("did not write") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "the user's own file"
    );
}

#[tokio::test]
async fn a_directory_not_written_by_us_is_replaced_only_with_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = inputs(dir.path());
    let out = dir.path().join("mine");
    std::fs::create_dir_all(out.join("sub")).unwrap();
    std::fs::write(out.join("notes.txt"), "notes").unwrap();
    std::fs::write(out.join("sub/more.txt"), "more").unwrap();
    // Another tool's _SUCCESS (empty, as Spark's) is not ours either.
    std::fs::write(out.join(SUCCESS_MARKER), "").unwrap();
    let before = tree(&out);
    let err = run_all(&settings(), &c, &p, &out)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("did not write"), "{err}");
    assert_eq!(tree(&out), before, "nothing of the directory changed");
    let overwrite = Settings {
        overwrite: true,
        ..settings()
    };
    run_all(&overwrite, &c, &p, &out).await.unwrap();
    assert!(!out.join("notes.txt").exists());
    assert!(out.join(layout::PROJECTION).join(SUCCESS_MARKER).is_file());
}

#[tokio::test]
async fn an_output_of_ours_or_an_empty_directory_is_replaced_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = inputs(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    run_all(&settings(), &c, &p, &out).await.unwrap();
    let marker = std::fs::read_to_string(out.join(SUCCESS_MARKER)).unwrap();
    assert!(
        marker.contains("\"writer\":\"marketing-analytics\""),
        "{marker}"
    );
    run_all(&settings(), &c, &p, &out).await.unwrap();
    // The attribution job's and a mart's own datasets are replaced the same way.
    let projection = dir.path().join("projection");
    attribution_job(&settings(), &c, &p, &projection, None)
        .await
        .unwrap();
    attribution_job(&settings(), &c, &p, &projection, None)
        .await
        .unwrap();
    let mart = dir.path().join("mart");
    let input = projection.display().to_string();
    mart_job(&settings(), &top_campaigns::MART, &input, &mart)
        .await
        .unwrap();
    mart_job(&settings(), &top_campaigns::MART, &input, &mart)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_output_that_is_contains_or_lies_inside_an_input_is_refused_even_with_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = inputs(dir.path());
    let before = tree(dir.path());
    let overwrite = Settings {
        overwrite: true,
        ..settings()
    };
    for (out, relation) in [
        (dir.path().to_path_buf(), "contains the clickstream input"),
        (PathBuf::from(&c), "is the clickstream input"),
        (
            Path::new(&p).join("proj"),
            "lies inside the purchases input",
        ),
        (
            Path::new(&c).join("clicks.csv"),
            "lies inside the clickstream input",
        ),
    ] {
        for s in [&settings(), &overwrite] {
            let err = run_all(s, &c, &p, &out).await.unwrap_err().to_string();
            assert!(err.contains(relation), "{}: {err}", out.display());
            let err = attribution_job(s, &c, &p, &out, None)
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains(relation), "{}: {err}", out.display());
        }
    }
    assert_eq!(tree(dir.path()), before, "the inputs are untouched");
}

#[tokio::test]
async fn an_output_inside_an_input_is_never_read_back_as_input() {
    // `attribution --output PURCHASES_DIR/proj` twice used to count the first projection as
    // purchases on the second run.
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = inputs(dir.path());
    let out = Path::new(&p).join("proj");
    let err = attribution_job(&settings(), &c, &p, &out, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("lies inside the purchases input"), "{err}");
    assert!(!out.exists());
}

#[tokio::test]
async fn a_mart_whose_output_is_its_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = inputs(dir.path());
    let projection = dir.path().join("projection");
    attribution_job(&settings(), &c, &p, &projection, None)
        .await
        .unwrap();
    let before = tree(&projection);
    let input = projection.display().to_string();
    let err = mart_job(&settings(), &top_channels::MART, &input, &projection)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is the projection input"), "{err}");
    assert_eq!(tree(&projection), before);
}

#[tokio::test]
async fn a_symlinked_output_pointing_into_an_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = inputs(dir.path());
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&c, &link).unwrap();
    let err = run_all(&settings(), &c, &p, &link.join("out"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("lies inside the clickstream input"), "{err}");
}

#[tokio::test]
async fn object_store_urls_are_refused_with_a_clear_message_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = inputs(dir.path());
    let cwd = std::env::current_dir().unwrap();
    let out = Path::new("s3://bucket/out");
    let err = run_all(&settings(), &c, &p, out)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("object store is not supported"), "{err}");
    assert!(!cwd.join("s3:").exists(), "no local folder named s3:");
    let err = run_all(
        &settings(),
        "s3://bucket/clicks",
        &p,
        &dir.path().join("out"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("clickstream input s3://bucket/clicks")
            && err.contains("object store is not supported"),
        "{err}"
    );
}

#[test]
fn a_second_run_on_the_same_output_fails_at_once_naming_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = inputs(dir.path());
    let out = dir.path().join("out");
    let held = claim(&out, Destination::Output, &Input::exports(&c, &p), false).unwrap();
    let run = || {
        bin()
            .args([
                "-q",
                "run",
                "--clickstream",
                &c,
                "--purchases",
                &p,
                "--output",
            ])
            .arg(&out)
            .output()
            .unwrap()
    };
    let second = run();
    assert!(!second.status.success());
    let err = stderr(&second);
    let holder = format!("is being written by process {}", std::process::id());
    assert!(err.contains(&holder), "{err}");
    assert!(!out.exists(), "the second run wrote nothing");
    drop(held);
    let third = run();
    assert!(third.status.success(), "{}", stderr(&third));
}

#[test]
fn two_converts_on_one_warehouse_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = inputs(dir.path());
    let warehouse = dir.path().join("warehouse");
    let held = claim(
        &warehouse,
        Destination::Warehouse,
        &Input::exports(&c, &p),
        false,
    )
    .unwrap();
    let second = bin()
        .args(["-q", "convert", "--clickstream", &c, "--purchases", &p])
        .arg("--warehouse")
        .arg(&warehouse)
        .output()
        .unwrap();
    let err = stderr(&second);
    assert!(
        !second.status.success()
            && err.contains(&format!(
                "is being written by process {}",
                std::process::id()
            )),
        "{err}"
    );
    assert!(!warehouse.join("clickstream").exists());
    drop(held);
}

/// The rows of a warehouse table's date, as its latest version holds them.
async fn date_rows(warehouse: &Path, table: &str, date: &str) -> u64 {
    crate::common::date_files(warehouse, table, date)
        .await
        .iter()
        .map(|f| f.rows)
        .sum()
}

#[tokio::test]
async fn a_second_conversion_adds_to_the_dates_and_replaces_them_only_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = inputs(dir.path());
    let warehouse = dir.path().join("warehouse");
    convert(&settings(), &c, &p, &warehouse).await.unwrap();
    let first = date_rows(&warehouse, "clickstream", "2020-09-01").await;
    assert!(first > 0);
    // A second batch of files for the same date.
    let batch2 = dir.path().join("batch2");
    std::fs::create_dir_all(&batch2).unwrap();
    std::fs::write(
        batch2.join("clicks2.csv"),
        CLICKS.replace("u1,", "u2,").replace("p1", "p2"),
    )
    .unwrap();
    std::fs::write(batch2.join("purchases2.csv"), PURCHASES.replace("p1", "p2")).unwrap();
    let (c2, p2) = (
        batch2.join("clicks2.csv").display().to_string(),
        batch2.join("purchases2.csv").display().to_string(),
    );
    let report = convert(&settings(), &c2, &p2, &warehouse).await.unwrap();
    assert_eq!(
        report.clickstream_dates,
        vec![("2020-09-01".to_string(), first)]
    );
    assert_eq!(
        date_rows(&warehouse, "clickstream", "2020-09-01").await,
        2 * first
    );
    // Converting the first files again changes nothing.
    let again = convert(&settings(), &c, &p, &warehouse).await.unwrap();
    assert_eq!(
        again.unchanged_files.len(),
        2,
        "{:?}",
        again.unchanged_files
    );
    assert!(again.clickstream_dates.is_empty());
    assert_eq!(again.versions, report.versions);
    assert_eq!(
        date_rows(&warehouse, "clickstream", "2020-09-01").await,
        2 * first
    );
    // Copies at other paths are the same content: skipped, as converted already.
    let copies = dir.path().join("copies");
    std::fs::create_dir_all(&copies).unwrap();
    std::fs::copy(batch2.join("clicks2.csv"), copies.join("clicks2.csv")).unwrap();
    std::fs::copy(batch2.join("purchases2.csv"), copies.join("purchases2.csv")).unwrap();
    let copied = convert(
        &settings(),
        &copies.join("clicks2.csv").display().to_string(),
        &copies.join("purchases2.csv").display().to_string(),
        &warehouse,
    )
    .await
    .unwrap();
    assert_eq!(copied.unchanged_files.len(), 2);
    assert_eq!(copied.versions, report.versions);
    // A third file with --replace-dates: the date holds its rows alone.
    let batch3 = dir.path().join("batch3");
    std::fs::create_dir_all(&batch3).unwrap();
    std::fs::write(
        batch3.join("clicks3.csv"),
        CLICKS
            .replace("u1,", "u3,")
            .replace("o1", "o3")
            .replace("b1", "b3"),
    )
    .unwrap();
    std::fs::write(batch3.join("purchases3.csv"), PURCHASES.replace("p1", "p3")).unwrap();
    let replace = Settings {
        replace_dates: true,
        ..settings()
    };
    let replaced = convert(
        &replace,
        &batch3.join("clicks3.csv").display().to_string(),
        &batch3.join("purchases3.csv").display().to_string(),
        &warehouse,
    )
    .await
    .unwrap();
    assert_eq!(
        replaced.clickstream_dates,
        vec![("2020-09-01".to_string(), first)]
    );
    assert_eq!(
        date_rows(&warehouse, "clickstream", "2020-09-01").await,
        first
    );
}

#[tokio::test]
async fn a_warehouse_directory_not_written_by_us_is_left_alone_without_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = inputs(dir.path());
    let warehouse = dir.path().join("warehouse");
    std::fs::create_dir_all(warehouse.join("clickstream/date=2020-09-01")).unwrap();
    std::fs::write(
        warehouse.join("clickstream/date=2020-09-01/data.parquet"),
        "x",
    )
    .unwrap();
    let before = tree(&warehouse);
    let err = convert(&settings(), &c, &p, &warehouse)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("did not write") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(tree(&warehouse), before);
}

#[tokio::test]
async fn a_long_output_name_works() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = inputs(dir.path());
    let out = dir.path().join("o".repeat(230));
    run_all(&settings(), &c, &p, &out).await.unwrap();
    run_all(&settings(), &c, &p, &out).await.unwrap();
    assert!(out.join(layout::SUMMARY).is_file());
}

#[test]
fn too_many_threads_and_too_small_a_memory_limit_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = inputs(dir.path());
    for (flags, want) in [
        (vec!["--threads", "100000"], "--threads 100000 is more than"),
        (vec!["--memory-limit", "1"], "too small for"),
        (vec!["--memory-limit", "512"], "sizes take a unit"),
    ] {
        let out = bin()
            .args([
                "-q",
                "run",
                "--clickstream",
                &c,
                "--purchases",
                &p,
                "--output",
            ])
            .arg(dir.path().join("out"))
            .args(&flags)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(
            !out.status.success() && err.contains(want),
            "{flags:?}: {err}"
        );
        assert!(!dir.path().join("out").exists());
    }
}

/// Hidden entries beside `out` that belong to it (`.out.…`), sorted.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".out."))
        .collect();
    names.sort();
    names
}

/// Starts `run` on a generated dataset into `dir/out` under a small memory cap (so it spills),
/// with its own `TMPDIR`, and returns once its staging directory exists.
fn start_run(dir: &Path, tmp: &Path) -> std::process::Child {
    use marketing_analytics::generate::{generate, Options};
    let g = generate(
        &Options {
            users: 3000,
            files: 2,
            seed: 5,
            ..Options::default()
        },
        &dir.join("data"),
    )
    .unwrap();
    let child = bin()
        .args(["-q", "run", "--threads", "1", "--memory-limit", "80M"])
        .arg("--clickstream")
        .arg(&g.clickstream_dir)
        .arg("--purchases")
        .arg(&g.purchases_dir)
        .arg("--output")
        .arg(dir.join("out"))
        .env("TMPDIR", tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !leftovers(dir).iter().any(|n| n.starts_with(".out.tmp-")) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the run never staged its output"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child
}

#[test]
fn a_terminated_run_removes_everything_it_had_under_way() {
    let _one_at_a_time = crate::common::HEAVY.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let child = start_run(dir.path(), tmp.path());
        assert!(leftovers(dir.path())
            .iter()
            .any(|n| n.starts_with(".out.spill-")));
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(child.id() as libc::pid_t, signal);
        }
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("nothing was committed"),
            "{}",
            stderr(&out)
        );
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
        assert!(!dir.path().join("out").exists());
        let in_tmp: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
        assert!(in_tmp.is_empty(), "left in TMPDIR: {in_tmp:?}");
    }
}

#[test]
fn what_a_killed_run_left_is_reclaimed_by_the_next() {
    let _one_at_a_time = crate::common::HEAVY.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut child = start_run(dir.path(), tmp.path());
    child.kill().unwrap(); // SIGKILL: nothing of ours runs
    child.wait().unwrap();
    let left = leftovers(dir.path());
    for kind in [".out.lock", ".out.spill-", ".out.tmp-"] {
        assert!(left.iter().any(|n| n.starts_with(kind)), "{kind}: {left:?}");
    }
    let data = dir.path().join("data");
    let again = bin()
        .args(["-q", "run", "--threads", "1", "--clickstream"])
        .arg(data.join("mobile_app_clickstream"))
        .arg("--purchases")
        .arg(data.join("user_purchases"))
        .arg("--output")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    assert!(dir.path().join("out").join(SUCCESS_MARKER).is_file());
}

#[test]
fn generate_replaces_only_its_own_dataset_and_leaves_no_file_of_an_earlier_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    let generate = |files: &str, extra: &[&str]| {
        bin()
            .args(["-q", "generate", "--users", "50", "--files", files, "--out"])
            .arg(&out)
            .args(extra)
            .output()
            .unwrap()
    };
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let refused = generate("4", &[]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--overwrite"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
    let made = generate("4", &["--overwrite"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let files = |d: &str| std::fs::read_dir(out.join(d)).unwrap().count();
    assert_eq!(files("mobile_app_clickstream"), 4);
    // A smaller dataset replaces the larger one whole.
    let again = generate("2", &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(files("mobile_app_clickstream"), 2);
    assert_eq!(files("user_purchases"), 2);
    assert!(!out.join("notes.txt").exists());
}

#[tokio::test]
async fn what_a_killed_conversion_left_is_never_read_and_its_scratch_is_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = inputs(dir.path());
    let warehouse = dir.path().join("warehouse");
    convert(&settings(), &c, &p, &warehouse).await.unwrap();
    let rows = date_rows(&warehouse, "clickstream", "2020-09-01").await;
    // A process that is gone, as a killed conversion is: its scratch, and a data file it
    // wrote but never committed.
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let pid = gone.id();
    let scratch = warehouse.join(format!(".projection.scratch-{pid}-3"));
    std::fs::create_dir_all(scratch.join("x")).unwrap();
    let day = warehouse.join("clickstream/date=2020-09-01");
    let orphan = std::fs::read_dir(&day)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    std::fs::copy(&orphan, day.join("part-killed-0.parquet")).unwrap();
    convert(&settings(), &c, &p, &warehouse).await.unwrap();
    assert!(!scratch.exists(), "{} was left", scratch.display());
    assert_eq!(
        date_rows(&warehouse, "clickstream", "2020-09-01").await,
        rows
    );
    let out = dir.path().join("period");
    let period = marketing_analytics::app::period::Period::parse(
        Some("2020-09-01"),
        Some("2020-09-01"),
        None,
        1,
    )
    .unwrap();
    let settings = Settings {
        stored_projection: false,
        ..settings()
    };
    marketing_analytics::app::period::period_job(
        &settings,
        &marketing_analytics::app::period::Source::Warehouse(warehouse.clone()),
        &period,
        &out,
    )
    .await
    .unwrap();
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["outputs"]["top_campaigns"], 1, "{summary}");
}
