//! `marketing-analytics sql`: queries over a run's outputs and a warehouse, in every format,
//! compared with the Parquet the jobs wrote; read only; errors that say what exists.

use std::path::{Path, PathBuf};
use std::process::Command;

use datafusion::arrow::util::display::array_value_to_string;
use marketing_analytics::storage::output::read_parquet;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_marketing-analytics"));
    cmd.env_remove("MARKETING_ANALYTICS_LOG");
    cmd
}

/// Runs `sql` with `args`; returns its status, stdout and stderr.
fn sql(args: &[&str]) -> (bool, String, String) {
    let out = bin().arg("sql").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (ok, stdout, stderr) = sql(args);
    assert!(ok, "sql {args:?}: {stderr}");
    stdout
}

/// A generated dataset, a run of it with the models, and its warehouse.
fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let status = bin()
        .args(["generate", "--users", "150", "--days", "20", "--output"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(status.success());
    let clicks = data.join("mobile_app_clickstream");
    let purchases = data.join("user_purchases");
    let run = dir.join("run");
    let status = bin()
        .args(["-q", "run", "--models", "all", "--clickstream"])
        .arg(&clicks)
        .arg("--purchases")
        .arg(&purchases)
        .arg("--output")
        .arg(&run)
        .status()
        .unwrap();
    assert!(status.success());
    let warehouse = dir.join("wh");
    let status = bin()
        .args(["-q", "convert", "--clickstream"])
        .arg(&clicks)
        .arg("--purchases")
        .arg(&purchases)
        .arg("--warehouse")
        .arg(&warehouse)
        .status()
        .unwrap();
    assert!(status.success());
    (run, warehouse)
}

/// The rows of a Parquet dataset as CSV-like lines.
fn rows(path: &Path) -> Vec<String> {
    read_parquet(path)
        .unwrap()
        .iter()
        .flat_map(|b| {
            (0..b.num_rows())
                .map(|i| {
                    (0..b.num_columns())
                        .map(|c| array_value_to_string(b.column(c), i).unwrap())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_runs_tables_in_every_format_equal_its_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = fixture(dir.path());
    let out = run.display().to_string();
    let query = "SELECT * FROM top_campaigns ORDER BY revenue DESC, campaignId";
    let want = rows(&run.join("top_campaigns"));
    assert!(want.len() >= 5, "{want:?}");

    let csv = ok(&["--output", &out, "--format", "csv", query]);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("campaignId,revenue"));
    assert_eq!(lines.map(str::to_string).collect::<Vec<_>>(), want);

    let as_line = |r: &serde_json::Value| {
        format!(
            "{},{:.2}",
            r["campaignId"].as_str().unwrap(),
            r["revenue"].as_f64().unwrap()
        )
    };
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["--output", &out, "--format", "json", query])).unwrap();
    let got: Vec<String> = json.as_array().unwrap().iter().map(as_line).collect();
    assert_eq!(got, want);
    let ndjson = ok(&["--output", &out, "--format", "ndjson", query]);
    let got: Vec<String> = ndjson
        .lines()
        .map(|l| as_line(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(got, want);

    let table = ok(&["--output", &out, query]);
    let first: Vec<&str> = want[0].split(',').collect();
    assert!(table.contains("| campaignId | revenue"), "{table}");
    assert!(
        table.contains(&format!("| {} ", first[0])) && table.contains(first[1]),
        "{table}"
    );

    let file = dir.path().join("top.parquet");
    let file_arg = file.display().to_string();
    let args = [
        "--output", &out, "--format", "parquet", "--out", &file_arg, query,
    ];
    ok(&args);
    assert_eq!(rows(&file), want);
    // Asked again, the file is there: refused, left as it was.
    let before = std::fs::read(&file).unwrap();
    let (written, _, stderr) = sql(&args);
    assert!(!written && stderr.contains("exists already"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), before);

    // The summary as one row, the models and the projection by name.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    let got = ok(&[
        "--output",
        &out,
        "--format",
        "csv",
        "SELECT counts['events'] AS e, (SELECT count(*) FROM purchases_attribution) AS p, \
         (SELECT count(*) FROM attribution_models) AS m, \
         sessions_by_channel[1]['sessions'] AS s, options['threads'] AS t FROM summary",
    ]);
    let want = format!(
        "e,p,m,s,t\n{},{},{},{},{}\n",
        summary["counts"]["events"],
        rows(&run.join("purchases_attribution")).len(),
        rows(&run.join("attribution_models")).len(),
        summary["sessions_by_channel"][0]["sessions"],
        summary["options"]["threads"],
    );
    assert_eq!(got, want);
}

#[test]
fn a_warehouses_tables_have_their_date_partitions_and_several_runs_their_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let (run, warehouse) = fixture(dir.path());
    let wh = warehouse.display().to_string();
    let day = "2020-09-01";
    let partition = |table: &str| -> usize {
        let d = warehouse.join(table).join(format!("date={day}"));
        std::fs::read_dir(&d)
            .unwrap()
            .map(|f| f.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .map(|p| rows(&p).len())
            .sum()
    };
    let got = ok(&[
        "--warehouse",
        &wh,
        "--format",
        "csv",
        &format!(
            "SELECT (SELECT count(*) FROM clickstream WHERE date = '{day}') AS c, \
             (SELECT count(*) FROM purchases WHERE date = '{day}') AS p, \
             (SELECT count(*) FROM projection) AS j"
        ),
    ]);
    let want = format!(
        "c,p,j\n{},{},{}\n",
        partition("clickstream"),
        partition("purchases"),
        rows(&run.join("purchases_attribution")).len()
    );
    assert_eq!(got, want);
    // Only that day's files are read.
    let plan = ok(&[
        "--warehouse",
        &wh,
        &format!("EXPLAIN SELECT eventId FROM clickstream WHERE date = '{day}'"),
    ]);
    assert!(plan.contains(&format!("date={day}")), "{plan}");
    assert!(!plan.contains("date=2020-09-02"), "{plan}");

    // Two runs: each one's tables in the schema named after its folder.
    let copy = dir.path().join("Other Run");
    let status = Command::new("cp")
        .arg("-r")
        .arg(&run)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let got = ok(&[
        "--output",
        &run.display().to_string(),
        "--output",
        &copy.display().to_string(),
        "--format",
        "csv",
        "SELECT count(*) AS n FROM run.top_campaigns a JOIN other_run.top_campaigns b \
         USING (campaignId, revenue) JOIN top_campaigns c USING (campaignId, revenue)",
    ]);
    assert_eq!(
        got,
        format!("n\n{}\n", rows(&run.join("top_campaigns")).len())
    );
}

#[test]
fn sql_reads_only_and_its_errors_say_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = fixture(dir.path());
    let out = run.display().to_string();
    let target = dir.path().join("copied.csv");
    for statement in [
        format!("COPY top_campaigns TO '{}'", target.display()),
        "CREATE TABLE t AS SELECT 1".to_string(),
        "INSERT INTO top_campaigns VALUES ('x', 1)".to_string(),
    ] {
        let (done, _, stderr) = sql(&["--output", &out, &statement]);
        assert!(!done, "{statement}");
        assert!(stderr.contains("only reads"), "{statement}: {stderr}");
    }
    assert!(!target.exists());
    let (done, _, stderr) = sql(&["--output", &out, "SELECT * FROM campaigns"]);
    assert!(!done);
    assert!(
        stderr.contains("campaigns' not found")
            && stderr.contains("the tables are: attribution_models, conversion_paths"),
        "{stderr}"
    );
    let (done, _, stderr) = sql(&["--output", &out, "SELECT spend FROM top_campaigns"]);
    assert!(!done && stderr.contains("campaignId"), "{stderr}");
    // The query from stdin, and from a file.
    let file = dir.path().join("q.sql");
    std::fs::write(&file, "SELECT 1 AS one;\nSELECT 2 AS two;\n").unwrap();
    let got = ok(&[
        "--output",
        &out,
        "--format",
        "csv",
        "-f",
        &file.display().to_string(),
    ]);
    assert_eq!(got, "one\n1\ntwo\n2\n");
    let mut child = bin()
        .args(["sql", "--format", "csv", "--output", &out])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT count(*) AS n FROM top_channels")
        .unwrap();
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success());
    assert_eq!(
        String::from_utf8_lossy(&done.stdout),
        format!("n\n{}\n", rows(&run.join("top_channels")).len())
    );
}

/// The prompt, on a terminal: `script` (util-linux) gives `sql` a pseudo-terminal and types
/// the lines. A statement spans lines until its `;`, `\d` lists the tables, an error leaves
/// the session open, the up arrow brings back the last statement, `\q` quits.
#[test]
fn the_prompt_on_a_terminal_runs_statements_and_recalls_them() {
    let Some(script) = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file())
    else {
        eprintln!("SKIPPED: no `script` (util-linux) to give the prompt a terminal");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (run, _) = fixture(dir.path());
    let command = format!(
        "{} sql --output {}",
        env!("CARGO_BIN_EXE_marketing-analytics"),
        run.display()
    );
    let typed =
        "SELECT COUNT(*) AS n\nFROM top_channels;\n\\d\nSELECT * FROM nowhere;\n\x1b[A\n\\q\n";
    let mut child = Command::new(script)
        .args(["-qec", &command, "/dev/null"])
        .env_remove("MARKETING_ANALYTICS_LOG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // One line at a time, as a person types: the editor reads each before the next.
        for line in typed.split_inclusive('\n') {
            stdin.write_all(line.as_bytes()).unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "{text}");
    let n = rows(&run.join("top_channels")).len();
    let answer = format!("| {n:<2} |");
    assert_eq!(text.matches(&answer).count(), 1, "{text}");
    assert!(
        text.contains("...> "),
        "a statement continues on the next line:\n{text}"
    );
    assert!(
        text.contains("\npurchases_attribution\n"),
        "\\d lists the tables:\n{text}"
    );
    // The unknown table is named, the session goes on, and the up arrow runs it again.
    let error = "table 'datafusion.public.nowhere' not found; the tables are:";
    assert_eq!(
        text.matches(error).count(),
        2,
        "the error and its recall:\n{text}"
    );
}
