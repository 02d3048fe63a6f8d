//! The command line's options, flags and config keys alike, and how it reports: one test per
//! defect the architecture issue named, each tried as a new user would.

use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_marketing-analytics"));
    cmd.env_remove("MARKETING_ANALYTICS_LOG");
    cmd
}

fn ok(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().expect("binary starts");
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "{cmd:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A small generated dataset in `dir/data`.
fn dataset(dir: &Path) -> (String, String) {
    let data = dir.join("data");
    ok(bin()
        .args(["generate", "--users", "60", "--days", "20", "--output"])
        .arg(&data));
    (
        data.join("mobile_app_clickstream").display().to_string(),
        data.join("user_purchases").display().to_string(),
    )
}

fn date_folders(dir: &Path) -> Vec<String> {
    let mut dates: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("date="))
        .collect();
    dates.sort();
    dates
}

#[test]
fn partition_by_date_writes_date_folders_for_run_and_attribution() {
    let dir = tempfile::tempdir().unwrap();
    let (clicks, purchases) = dataset(dir.path());
    let out = dir.path().join("run");
    ok(bin()
        .args(["run", "--partition-by", "date", "--clickstream", &clicks])
        .args(["--purchases", &purchases, "--output"])
        .arg(&out));
    let run_dates = date_folders(&out.join("purchases_attribution"));
    assert!(run_dates.len() > 5, "{run_dates:?}");
    assert!(!out
        .join("purchases_attribution/part-00000.parquet")
        .exists());
    // The marts read the partitioned projection whole.
    assert!(out.join("top_campaigns/part-00000.parquet").is_file());
    let attribution = dir.path().join("attribution");
    ok(bin()
        .args([
            "attribution",
            "--partition-by",
            "date",
            "--clickstream",
            &clicks,
        ])
        .args(["--purchases", &purchases, "--output"])
        .arg(&attribution));
    assert_eq!(date_folders(&attribution), run_dates);
    // Without the flag: one file, no folders.
    let flat = dir.path().join("flat");
    ok(bin()
        .args([
            "attribution",
            "--clickstream",
            &clicks,
            "--purchases",
            &purchases,
        ])
        .arg("--output")
        .arg(&flat));
    assert!(date_folders(&flat).is_empty());
}

#[test]
fn a_config_drives_convert_period_and_weekly() {
    let dir = tempfile::tempdir().unwrap();
    let (clicks, purchases) = dataset(dir.path());
    let wh = dir.path().join("wh");
    let config = dir.path().join("daily.yaml");
    std::fs::write(
        &config,
        format!(
            "clickstream: {clicks}\npurchases: {purchases}\nwarehouse: {}\nfrom: 2020-08-26\n\
             to: 2020-09-05\nlookback: 2\nquarter: 2020-Q3\nthreads: 2\nreplace_dates: true\n",
            wh.display()
        ),
    )
    .unwrap();
    ok(bin().args(["convert", "--config"]).arg(&config));
    // `period` reads the warehouse the config names: the config's raw exports conflict with
    // it, so the flag typed on the command line chooses.
    let period_out = dir.path().join("period");
    let (stdout, _) = ok(bin()
        .args(["period", "--config"])
        .arg(&config)
        .arg("--warehouse")
        .arg(&wh)
        .arg("--output")
        .arg(&period_out));
    assert!(stdout.contains("2020-08-26 .. 2020-09-05"), "{stdout}");
    assert!(period_out.join("top_campaigns/_SUCCESS").is_file());
    let summary = std::fs::read_to_string(period_out.join("summary.json")).unwrap();
    assert!(summary.contains("\"lookback_days\": 2"), "{summary}");
    // `output:` in a config satisfies weekly's required --output, and `quarter` (which
    // conflicts with the config's from/to only when typed) is a key of its own.
    let weekly_config = dir.path().join("weekly.yaml");
    let weekly_out = dir.path().join("weekly");
    std::fs::write(
        &weekly_config,
        format!(
            "warehouse: {}\nquarter: 2020-Q3\noutput: {}\n",
            wh.display(),
            weekly_out.display()
        ),
    )
    .unwrap();
    let (stdout, _) = ok(bin().args(["weekly", "--config"]).arg(&weekly_config));
    assert!(stdout.contains("2020-07-01 .. 2020-09-30"), "{stdout}");
    assert!(weekly_out.join("weekly/_SUCCESS").is_file());
}

#[test]
fn a_config_value_is_checked_as_its_flag_is() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(&config, "threads: many\n").unwrap();
    let out = bin()
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--threads") && stderr.contains("many"),
        "{stderr}"
    );
    assert!(stderr.contains("c.yaml"), "names the config: {stderr}");
}

#[test]
fn help_shows_the_defaults_and_puts_logging_last() {
    let (help, _) = ok(bin().args(["run", "--help"]));
    assert!(help.contains("[default: udaf]"), "{help}");
    assert!(help.contains("[default: sql]"), "{help}");
    assert!(help.contains("[default: out]"), "{help}");
    let logging = help.find("Logging:").expect("a Logging section");
    let overwrite = help.find("--overwrite").unwrap();
    assert!(
        overwrite < logging,
        "-v/-q come after the command's own options: {help}"
    );
    assert!(help[logging..].contains("--verbose"), "{help}");
}

#[test]
fn generate_says_output_like_every_other_command() {
    let (help, _) = ok(bin().args(["generate", "--help"]));
    assert!(help.contains("--output <DIR>"), "{help}");
    assert!(!help.contains("--out <"), "{help}");
    // The old spelling still works for scripts that use it.
    let dir = tempfile::tempdir().unwrap();
    ok(bin()
        .args(["generate", "--users", "5", "--out"])
        .arg(dir.path().join("g")));
    assert!(dir.path().join("g/mobile_app_clickstream").is_dir());
}

#[test]
fn explain_help_promises_no_output_it_has_none_for() {
    let (help, _) = ok(bin().args(["explain", "--help"]));
    assert!(!help.contains("_rejected"), "{help}");
    assert!(!help.contains("--on-bad-rows"), "{help}");
    assert!(
        help.contains("weekly"),
        "the registry's marts are jobs: {help}"
    );
}

#[test]
fn more_v_shows_more() {
    let dir = tempfile::tempdir().unwrap();
    let (clicks, purchases) = dataset(dir.path());
    let stderr_of = |flag: &str, out: &str| {
        ok(bin()
            .args([
                "attribution",
                flag,
                "--clickstream",
                &clicks,
                "--purchases",
                &purchases,
            ])
            .arg("--output")
            .arg(dir.path().join(out)))
        .1
    };
    let v = stderr_of("-v", "v");
    let vv = stderr_of("-vv", "vv");
    assert!(v.contains("DEBUG") && !v.contains("TRACE"), "{v}");
    assert!(vv.contains("TRACE"), "{vv}");
    assert!(
        vv.lines().count() > v.lines().count(),
        "-vv:\n{vv}\n-v:\n{v}"
    );
}

#[test]
fn an_invalid_log_filter_is_an_error() {
    let out = bin()
        .args(["generate", "--users", "1", "--output", "/nonexistent/never"])
        .env("MARKETING_ANALYTICS_LOG", "marketing_analytics=loud")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("MARKETING_ANALYTICS_LOG"), "{stderr}");
}

#[test]
fn an_error_says_its_cause_once() {
    let out = bin()
        .args(["run", "--config", "/nope.yaml"])
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("/nope.yaml"), "{stderr}");
}

#[test]
fn logs_name_things_as_the_user_does() {
    let dir = tempfile::tempdir().unwrap();
    let (clicks, purchases) = dataset(dir.path());
    let out = dir.path().join("out");
    let (_, stderr) = ok(bin()
        .args(["run", "--clickstream", &clicks, "--purchases", &purchases])
        .arg("--output")
        .arg(&out));
    assert!(stderr.contains("engine=udaf"), "{stderr}");
    for debug_name in ["Udaf", "Sql", "Warehouse(", "Raw {"] {
        assert!(!stderr.contains(debug_name), "{debug_name}: {stderr}");
    }
    // Paths in the log are the ones the user gave, not staging directories (`.NAME.tmp-…`).
    assert!(!stderr.contains(".tmp-"), "{stderr}");
    assert!(
        stderr.contains(&format!("wrote {}", out.join("top_campaigns").display())),
        "{stderr}"
    );
}

#[test]
fn run_models_writes_the_journey_outputs_and_checks_the_model_names() {
    let dir = tempfile::tempdir().unwrap();
    let (clicks, purchases) = dataset(dir.path());
    let out = dir.path().join("run");
    let config = dir.path().join("models.yaml");
    std::fs::write(&config, "models: first_touch,markov\nlookback_days: 10\n").unwrap();
    let (stdout, _) = ok(bin()
        .args(["run", "--clickstream", &clicks, "--purchases", &purchases])
        .arg("--config")
        .arg(&config)
        .arg("--output")
        .arg(&out));
    assert!(stdout.contains("Journey models"), "{stdout}");
    assert!(stdout.contains("| first_touch | markov |"), "{stdout}");
    for name in ["attribution_models", "conversion_paths"] {
        assert!(
            out.join(name).join("part-00000.parquet").is_file(),
            "{name}"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert!(summary["journeys"]["campaign"]["conversions"].as_u64() > Some(0));
    // `models` on that run's projection and clickstream: every model unless --models says.
    let models = dir.path().join("models");
    let (stdout, _) = ok(bin()
        .arg("models")
        .arg("--projection")
        .arg(out.join("purchases_attribution"))
        .args(["--clickstream", &clicks, "--output"])
        .arg(&models));
    assert!(
        stdout.contains("| first_touch | last_touch | linear |"),
        "{stdout}"
    );
    let counts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(models.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        counts["journeys"]["campaign"]["conversions"],
        summary["journeys"]["campaign"]["conversions"]
    );
    assert!(models.join("conversion_paths/part-00000.parquet").is_file());
    // Without --models: no journey outputs.
    let plain = dir.path().join("plain");
    ok(bin()
        .args(["run", "--clickstream", &clicks, "--purchases", &purchases])
        .arg("--output")
        .arg(&plain));
    assert!(!plain.join("attribution_models").exists());
    let bad = bin()
        .args(["run", "--models", "first_touch,u_shaped", "--output"])
        .arg(dir.path().join("bad"))
        .output()
        .unwrap();
    let (_, stderr) = text(&bad);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown model \"u_shaped\""), "{stderr}");
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line() {
    for shell in ["bash", "zsh", "fish"] {
        let (stdout, _) = ok(bin().args(["completions", shell]));
        // Fish names long flags without their dashes (`-l models`).
        for word in ["period", "weekly", "models", "lookback-days"] {
            assert!(stdout.contains(word), "{shell} completions lack {word}");
        }
    }
    let (man, _) = ok(bin().arg("manpage"));
    assert!(man.contains(".TH marketing-analytics 1"), "{man}");
    assert!(
        man.contains("convert") && man.contains("completions"),
        "{man}"
    );
    let bad = bin().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn exit_codes_say_what_kind_of_failure_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let clicks = dir.path().join("clicks.csv");
    let purchases = dir.path().join("purchases.csv");
    std::fs::write(
        &clicks,
        "userId,eventId,eventType,eventTime,attributes\n\
         u1,e1,app_open,2020-09-01 10:00:00,\n\
         u1,e2,app_close,2020-13-01 10:00:00,\n",
    )
    .unwrap();
    std::fs::write(
        &purchases,
        "purchaseId,purchaseTime,billingCost,isConfirmed\n",
    )
    .unwrap();
    let code = |extra: &[&str], clickstream: &Path| {
        let out = bin()
            .arg("run")
            .arg("--clickstream")
            .arg(clickstream)
            .arg("--purchases")
            .arg(&purchases)
            .arg("--output")
            .arg(dir.path().join("out"))
            .args(extra)
            .output()
            .unwrap();
        (out.status.code(), text(&out).1)
    };
    // Bad input data: a bad row in fail mode, or more bad rows than --max-bad-rows.
    let (status, stderr) = code(&[], &clicks);
    assert_eq!(status, Some(3), "{stderr}");
    let (status, stderr) = code(
        &["--on-bad-rows", "quarantine", "--max-bad-rows", "0"],
        &clicks,
    );
    assert_eq!(status, Some(3), "{stderr}");
    // A usage error: an input that names no file.
    let (status, stderr) = code(&[], &dir.path().join("none*.csv"));
    assert_eq!(status, Some(2), "{stderr}");
    // A memory cap too small.
    let (status, stderr) = code(&["--memory-limit", "16M"], &clicks);
    assert_eq!(status, Some(4), "{stderr}");
    // Quarantined within the limit: success.
    let (status, stderr) = code(&["--on-bad-rows", "quarantine"], &clicks);
    assert_eq!(status, Some(0), "{stderr}");
}

/// A mart's rows as `campaignId,value` lines, read from its Parquet dataset.
fn mart_rows(dir: &Path) -> Vec<String> {
    use datafusion::arrow::util::display::array_value_to_string;
    let batches = marketing_analytics::storage::output::read_parquet(dir).unwrap();
    batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |i| {
                (0..b.num_columns())
                    .map(|c| array_value_to_string(b.column(c), i).unwrap())
                    .collect::<Vec<_>>()
                    .join(",")
            })
        })
        .collect()
}

#[test]
fn format_csv_and_json_print_the_marts_rows_and_log_format_json_writes_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (clicks, purchases) = dataset(dir.path());
    let run = |format: &str, out: &Path| {
        ok(bin()
            .args(["--log-format", "json", "run", "--format", format])
            .args([
                "--clickstream",
                &clicks,
                "--purchases",
                &purchases,
                "--output",
            ])
            .arg(out))
    };
    let out = dir.path().join("csv");
    let (stdout, stderr) = run("csv", &out);
    let tables: Vec<&str> = stdout.trim_end().split("\n\n").collect();
    assert_eq!(tables.len(), 2, "{stdout}");
    for (table, mart) in tables.iter().zip(["top_campaigns", "top_channels"]) {
        let mut lines = table.lines();
        let want = mart_rows(&out.join(mart));
        assert!(!want.is_empty());
        assert!(lines.next().unwrap().starts_with("campaignId,"), "{table}");
        assert_eq!(
            lines.map(str::to_string).collect::<Vec<_>>(),
            want,
            "{mart}"
        );
    }
    // The line about what was done went to stderr, and every log line there is JSON with
    // its level, message and the spans (the run's id, the job).
    assert!(!stdout.contains("Outputs and summary.json"), "{stdout}");
    assert!(stderr.contains("Outputs and summary.json"), "{stderr}");
    let logs: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(logs.len() >= 3, "{stderr}");
    assert!(logs.iter().all(|l| l["level"].is_string()
        && l["fields"]["message"].is_string()
        && l["spans"][0]["name"] == "run"
        && l["spans"][0]["id"].is_string()));
    assert!(
        logs.iter()
            .any(|l| l["spans"][1]["job"] == "attribution" && l["fields"]["events"].is_u64()),
        "a job's counts: {stderr}"
    );

    let out = dir.path().join("json");
    let (stdout, _) = run("json", &out);
    let tables: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(tables.len(), 2, "{stdout}");
    let campaigns = &tables[0];
    assert_eq!(campaigns["table"], "top_campaigns");
    let rows: Vec<String> = campaigns["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{},{:.2}",
                r["campaignId"].as_str().unwrap(),
                r["revenue"].as_f64().unwrap()
            )
        })
        .collect();
    assert_eq!(rows, mart_rows(&out.join("top_campaigns")));
    assert_eq!(tables[1]["table"], "top_channels");
    assert_eq!(
        tables[1]["rows"].as_array().unwrap().len(),
        mart_rows(&out.join("top_channels")).len()
    );
}

#[test]
fn run_report_and_the_report_command_write_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let (clicks, purchases) = dataset(dir.path());
    let out = dir.path().join("out");
    ok(bin()
        .args([
            "-q",
            "run",
            "--clickstream",
            &clicks,
            "--purchases",
            &purchases,
            "--report",
        ])
        .arg("--output")
        .arg(&out));
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(page.contains("data-figure=\"events\"") && page.contains("data-figure=\"duration\""));
    // The command: beside the outputs by default, anywhere with --out; it says where.
    let (stdout, _) = ok(bin().arg("report").arg("--input").arg(&out));
    assert!(stdout.contains("report.html"), "{stdout}");
    let elsewhere = dir.path().join("page.html");
    ok(bin()
        .arg("report")
        .arg("--input")
        .arg(&out)
        .arg("--out")
        .arg(&elsewhere));
    assert!(std::fs::read_to_string(&elsewhere)
        .unwrap()
        .contains("data-figure=\"events\""));
    // Not a directory: an error naming it and the flag.
    let missing = dir.path().join("missing");
    let result = bin()
        .arg("report")
        .arg("--input")
        .arg(&missing)
        .output()
        .unwrap();
    let (_, stderr) = text(&result);
    assert!(!result.status.success(), "{stderr}");
    assert!(
        stderr.contains("missing") && stderr.contains("--input"),
        "{stderr}"
    );
}

/// A memory cap too small for the job, found mid-run: one user with a million sessions
/// holds them all in one group of the session step, which cannot be split to spill.
#[test]
fn a_job_that_outgrows_the_memory_cap_mid_run_exits_4_and_commits_nothing() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let clicks = dir.path().join("one_user.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&clicks).unwrap());
    writeln!(w, "userId,eventId,eventType,eventTime,attributes").unwrap();
    for i in 0..1_000_000u32 {
        let (s, m, h, d) = (i % 60, i / 60 % 60, i / 3600 % 24, 1 + i / 86_400 % 28);
        writeln!(w, "u1,e{i},app_open,2020-09-{d:02} {h:02}:{m:02}:{s:02},").unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let purchases = dir.path().join("purchases.csv");
    std::fs::write(
        &purchases,
        "purchaseId,purchaseTime,billingCost,isConfirmed\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let result = bin()
        .args(["-q", "run", "--threads", "1", "--memory-limit", "48M"])
        .arg("--clickstream")
        .arg(&clicks)
        .arg("--purchases")
        .arg(&purchases)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    let (_, stderr) = text(&result);
    assert_eq!(result.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("--memory-limit"), "{stderr}");
    assert!(!out.exists(), "nothing is committed");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
