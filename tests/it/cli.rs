//! The command line as a user meets it: the built-in dataset, configs, single jobs and errors.

use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_marketing-analytics"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("binary starts")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn run_without_arguments_uses_the_built_in_dataset() {
    let cwd = tempfile::tempdir().unwrap();
    let out = run(bin().arg("run").current_dir(cwd.path()));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(
        stdout.contains("Top campaigns by confirmed revenue"),
        "{stdout}"
    );
    assert!(stdout.contains("| campaignId | revenue"), "{stdout}");
    assert!(stdout.contains("uniqueSessions"), "{stdout}");
    assert!(stderr.contains("built-in dataset"), "{stderr}");
    assert!(
        stderr.contains("run{id="),
        "log lines carry the run id: {stderr}"
    );
    assert!(
        stderr.contains("job{job=attribution}"),
        "log lines carry the job name: {stderr}"
    );
    for d in ["purchases_attribution", "top_campaigns", "top_channels"] {
        assert!(
            cwd.path().join("out").join(d).join("_SUCCESS").is_file(),
            "{d}"
        );
        assert!(
            cwd.path()
                .join("out")
                .join(d)
                .join("part-00000.parquet")
                .is_file(),
            "{d}"
        );
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(cwd.path().join("out/summary.json")).unwrap(),
    )
    .unwrap();
    assert!(summary["counts"]["attributed_purchases"].as_u64().unwrap() > 100);
    // The built-in dataset's files are named as such, not by temporary paths gone by now.
    let files = summary["input_files"]["clickstream"].as_object().unwrap();
    assert!(!files.is_empty());
    for name in files.keys() {
        assert!(
            name.starts_with("built-in dataset (2000 users, seed 42)/mobile_app_clickstream/"),
            "{name}"
        );
    }
}

#[test]
fn single_jobs_with_pyspark_style_configs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gen = run(bin()
        .args(["generate", "--users", "200", "--files", "2", "--out"])
        .arg(d.join("data")));
    assert!(gen.status.success(), "{:?}", text(&gen));
    std::fs::write(
        d.join("attribution.yaml"),
        format!(
            "input_clickstream: {}\ninput_purchases: {}\noutput: {}\n",
            d.join("data/mobile_app_clickstream").display(),
            d.join("data/user_purchases").display(),
            d.join("projection").display()
        ),
    )
    .unwrap();
    let out = run(bin()
        .args(["attribution", "--config"])
        .arg(d.join("attribution.yaml")));
    assert!(out.status.success(), "{:?}", text(&out));
    let marker = std::fs::read_to_string(d.join("projection/_SUCCESS")).unwrap();
    assert!(marker.contains("\"attributed_purchases\""), "{marker}");
    std::fs::write(
        d.join("mart.yaml"),
        format!(
            "input: {}\noutput: {}\n",
            d.join("projection").display(),
            d.join("ignored").display()
        ),
    )
    .unwrap();
    // The flag overrides the config's output.
    let out = run(bin()
        .args(["top-campaigns", "--config"])
        .arg(d.join("mart.yaml"))
        .arg("--output")
        .arg(d.join("tc")));
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(d.join("tc/part-00000.parquet").is_file());
    assert!(!d.join("ignored").exists());
    let out = run(bin()
        .args(["top-channels", "--input"])
        .arg(d.join("projection"))
        .arg("--output")
        .arg(d.join("ch")));
    assert!(out.status.success(), "{:?}", text(&out));
    let (stdout, _) = text(&out);
    assert!(stdout.contains("channelId"), "{stdout}");
    // The single-job outputs equal those of `run`.
    let all = d.join("all");
    let out = run(bin()
        .args(["run", "--clickstream"])
        .arg(d.join("data/mobile_app_clickstream"))
        .arg("--purchases")
        .arg(d.join("data/user_purchases"))
        .arg("--output")
        .arg(&all));
    assert!(out.status.success(), "{:?}", text(&out));
    let same = |a: &Path, b: &Path| {
        std::fs::read(a.join("part-00000.parquet")).unwrap()
            == std::fs::read(b.join("part-00000.parquet")).unwrap()
    };
    assert!(same(
        &d.join("projection"),
        &all.join("purchases_attribution")
    ));
    assert!(same(&d.join("tc"), &all.join("top_campaigns")));
    assert!(same(&d.join("ch"), &all.join("top_channels")));
}

#[test]
fn bad_input_fails_with_file_and_line_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("clicks.csv"),
        "userId,eventId,eventType,eventTime,attributes\nu,e1,app_open,2020-09-01 10:00:00,\nu,e2,purchase,2020-13-01 10:00:00,\"{'purchase_id': 'p'}\"\n",
    )
    .unwrap();
    std::fs::write(
        d.join("purchases.csv"),
        "purchaseId,purchaseTime,billingCost,isConfirmed\np,2020-09-01 10:00:00,1.00,True\n",
    )
    .unwrap();
    let out = run(bin()
        .args(["run", "--clickstream"])
        .arg(d.join("clicks.csv"))
        .arg("--purchases")
        .arg(d.join("purchases.csv"))
        .arg("--output")
        .arg(d.join("out")));
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("clicks.csv:3: column eventTime: unparseable timestamp"),
        "{stderr}"
    );
    assert!(!d.join("out/purchases_attribution").exists());

    let out = run(bin()
        .args(["run", "--clickstream"])
        .arg(d.join("nothing*.csv"))
        .arg("--purchases")
        .arg(d.join("purchases.csv")));
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("matches no file"), "{stderr}");
}

#[test]
fn help_explains_the_commands() {
    let out = run(bin().arg("--help"));
    let (stdout, _) = text(&out);
    for word in [
        "run",
        "attribution",
        "top-campaigns",
        "top-channels",
        "generate",
        "built-in dataset",
    ] {
        assert!(stdout.contains(word), "--help lacks {word}: {stdout}");
    }
}

#[test]
fn warehouse_commands_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = |cmd: &mut Command| {
        let out = run(cmd);
        assert!(out.status.success(), "{:?}", text(&out));
        text(&out).0
    };
    ok(bin()
        .args(["generate", "--users", "400", "--days", "120", "--out"])
        .arg(d.join("data")));
    let stdout = ok(bin()
        .args(["-q", "convert", "--clickstream"])
        .arg(d.join("data/mobile_app_clickstream"))
        .arg("--purchases")
        .arg(d.join("data/user_purchases"))
        .arg("--warehouse")
        .arg(d.join("wh")));
    assert!(stdout.contains("dates written to"), "{stdout}");
    assert!(d.join("wh/clickstream/_delta_log").is_dir());
    assert!(std::fs::read_dir(d.join("wh/clickstream/date=2020-11-11"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".parquet")));
    let stdout = ok(bin()
        .args(["-q", "period", "--day", "2020-11-11", "--warehouse"])
        .arg(d.join("wh"))
        .arg("--output")
        .arg(d.join("p")));
    assert!(
        stdout.contains("Top campaigns, 2020-11-11 .. 2020-11-11"),
        "{stdout}"
    );
    assert!(d.join("p/top_campaigns/part-00000.parquet").is_file());
    // Computed from the partitions instead of read from the stored projection: the same tables.
    let recomputed = ok(bin()
        .args([
            "-q",
            "period",
            "--day",
            "2020-11-11",
            "--recompute",
            "--warehouse",
        ])
        .arg(d.join("wh"))
        .arg("--output")
        .arg(d.join("p2")));
    assert_eq!(recomputed, stdout);
    // As of the one conversion (version 1 of its projection): the same tables.
    let as_of = ok(bin()
        .args([
            "-q",
            "period",
            "--day",
            "2020-11-11",
            "--as-of",
            "1",
            "--warehouse",
        ])
        .arg(d.join("wh"))
        .arg("--output")
        .arg(d.join("p3")));
    assert_eq!(as_of, stdout);
    // Upkeep: compact, then list what a vacuum of files older than an hour removes (none).
    let compacted = ok(bin()
        .args(["-q", "optimize", "--warehouse"])
        .arg(d.join("wh")));
    assert!(compacted.contains("clickstream:"), "{compacted}");
    let listed = ok(bin()
        .args([
            "-q",
            "vacuum",
            "--retention-hours",
            "1",
            "--dry-run",
            "--warehouse",
        ])
        .arg(d.join("wh")));
    assert!(listed.contains("would remove 0 files"), "{listed}");
    let after = ok(bin()
        .args(["-q", "period", "--day", "2020-11-11", "--warehouse"])
        .arg(d.join("wh"))
        .arg("--output")
        .arg(d.join("p5")));
    assert_eq!(after, stdout);
    let bad = run(bin()
        .args([
            "period",
            "--day",
            "2020-11-11",
            "--as-of",
            "yesterday",
            "--warehouse",
        ])
        .arg(d.join("wh"))
        .arg("--output")
        .arg(d.join("p4")));
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad)
            .1
            .contains("neither a version nor an RFC 3339 time"),
        "{:?}",
        text(&bad)
    );
    let stdout = ok(bin()
        .args(["-q", "weekly", "--quarter", "2020-Q4", "--warehouse"])
        .arg(d.join("wh"))
        .arg("--output")
        .arg(d.join("w")));
    assert!(stdout.contains("isoWeek"), "{stdout}");
    ok(bin()
        .args([
            "-q",
            "explain",
            "attribution",
            "--day",
            "2020-11-11",
            "--analyze",
            "--warehouse",
        ])
        .arg(d.join("wh"))
        .arg("--markdown")
        .arg(d.join("plan.md")));
    let plan = std::fs::read_to_string(d.join("plan.md")).unwrap();
    for part in [
        "## logical_plan",
        "## physical_plan",
        "## Plan with Metrics",
        "date=2020-11-10",
        "date=2020-11-11",
    ] {
        assert!(plan.contains(part), "plan lacks {part}");
    }
    assert!(
        !plan.contains("date=2020-11-12"),
        "a partition outside the period is read"
    );
    // The file is not replaced without --overwrite.
    let again = run(bin()
        .args([
            "-q",
            "explain",
            "attribution",
            "--day",
            "2020-11-11",
            "--warehouse",
        ])
        .arg(d.join("wh"))
        .arg("--markdown")
        .arg(d.join("plan.md")));
    assert!(!again.status.success() && text(&again).1.contains("--overwrite"));
    assert_eq!(std::fs::read_to_string(d.join("plan.md")).unwrap(), plan);
    let out = run(bin()
        .args(["period", "--warehouse"])
        .arg(d.join("wh"))
        .args(["--output", "x"]));
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("give --from and --to, or --day"),
        "{:?}",
        text(&out)
    );
}

#[test]
fn memory_limit_none_lifts_the_cap_a_config_sets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("tiny.yaml"), "memory_limit: 1K\n").unwrap();
    let capped = run(bin()
        .args(["run", "--config"])
        .arg(d.join("tiny.yaml"))
        .current_dir(d));
    let (_, stderr) = text(&capped);
    assert!(!capped.status.success(), "a 1 KiB pool cannot run the job");
    assert!(stderr.contains("--memory-limit"), "{stderr}");
    let lifted = run(bin()
        .args(["run", "--memory-limit", "none", "--config"])
        .arg(d.join("tiny.yaml"))
        .current_dir(d));
    assert!(lifted.status.success(), "{:?}", text(&lifted));
    let bad = run(bin().args(["run", "--memory-limit", "lots"]).current_dir(d));
    let (_, stderr) = text(&bad);
    assert!(!bad.status.success());
    assert!(
        stderr.contains("--memory-limit") && stderr.contains("lots"),
        "{stderr}"
    );
}

#[test]
fn a_wide_cell_is_cut_in_the_printed_table_and_kept_whole_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wide = "c".repeat(200_000);
    std::fs::write(
        d.join("clicks.csv"),
        format!(
            "userId,eventId,eventType,eventTime,attributes\n\
             u1,o1,app_open,2020-09-01 10:00:00,\"{{'campaign_id': '{wide}', 'channel_id': 'A'}}\"\n\
             u1,b1,purchase,2020-09-01 10:01:00,\"{{'purchase_id': 'p1'}}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("purchases.csv"),
        "purchaseId,purchaseTime,billingCost,isConfirmed\np1,2020-09-01 10:01:00,1.00,True\n",
    )
    .unwrap();
    let out = run(bin()
        .args([
            "-q",
            "run",
            "--clickstream",
            "clicks.csv",
            "--purchases",
            "purchases.csv",
        ])
        .args(["--output", "out"])
        .current_dir(d));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("ccc…"), "{stdout}");
    assert!(stdout.lines().all(|l| l.chars().count() < 200), "{stdout}");
    let batches =
        marketing_analytics::storage::output::read_parquet(&d.join("out/top_campaigns")).unwrap();
    let ids = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<datafusion::arrow::array::StringArray>()
        .unwrap();
    assert_eq!(ids.value(0), wide);
}
