//! The HTML report (`report`, `run --report`): every figure in the page equals the output it
//! came from, the page is self-contained and accessible, an existing file is replaced only if
//! it is one of our reports, and the page opens in headless Chromium at phone and desktop
//! widths without a console message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use marketing_analytics::app::report::{report_job, REPORT_FILE};
use marketing_analytics::app::{run_all, Settings};
use marketing_analytics::generate::{generate, Mess, Options as GenOptions};
use marketing_analytics::input::BadRows;
use marketing_analytics::journeys::{Model, Options};
use marketing_analytics::storage::output::read_parquet;

/// A messy generated dataset, with one extra clickstream file holding a bad row.
fn dataset(dir: &Path) -> PathBuf {
    let opts = GenOptions {
        users: 400,
        max_sessions: 6,
        days: 30,
        campaigns: 12,
        mess: Mess::messy(),
        ..GenOptions::default()
    };
    let data = dir.join("data");
    generate(&opts, &data).unwrap();
    std::fs::write(
        data.join("mobile_app_clickstream/extra.csv"),
        "userId,eventId,eventType,eventTime,attributes\n\
         u-extra,e-extra-1,app_open,not a time,\"{}\"\n\
         u-extra,e-extra-2,app_close,2020-09-01 10:00:00,\n",
    )
    .unwrap();
    data
}

fn settings() -> Settings {
    Settings {
        threads: 2,
        on_bad_rows: BadRows::Quarantine,
        journeys: Some(Options::new(
            Model::ALL.to_vec(),
            30,
            0,
            marketing_analytics::journeys::PathTransform::Exposure,
            7.0,
        )),
        report: true,
        ..Settings::default()
    }
}

/// A run of the dataset with its report; returns the output directory.
async fn run_with_report(dir: &Path) -> PathBuf {
    let data = dataset(dir);
    let out = dir.join("out");
    let clicks = data.join("mobile_app_clickstream").display().to_string();
    let purchases = data.join("user_purchases").display().to_string();
    let mut settings = settings();
    if let Some(j) = &mut settings.journeys {
        j.spend = Some(data.join("marketing_spend").display().to_string());
    }
    run_all(&settings, &clicks, &purchases, &out).await.unwrap();
    out
}

/// A table cell of the page: its text and its `data-value`.
type PageCell = (String, Option<String>);

/// The page's tables by id: each row's cells.
fn tables(page: &str) -> BTreeMap<String, Vec<Vec<PageCell>>> {
    let mut out = BTreeMap::new();
    for chunk in page.split("<table id=\"").skip(1) {
        let id = chunk[..chunk.find('"').unwrap()].to_string();
        let body = &chunk[..chunk.find("</table>").unwrap()];
        let body = &body[body.find("<tbody>").unwrap()..];
        let rows = body
            .split("<tr>")
            .skip(1)
            .map(|row| {
                row.split("<td")
                    .skip(1)
                    .map(|cell| {
                        let open = &cell[..cell.find('>').unwrap()];
                        let value = open
                            .split("data-value=\"")
                            .nth(1)
                            .map(|v| v[..v.find('"').unwrap()].to_string());
                        let text = &cell[cell.find('>').unwrap() + 1..cell.find("</td>").unwrap()];
                        (unescape(text), value)
                    })
                    .collect()
            })
            .collect();
        out.insert(id, rows);
    }
    out
}

/// The text of an HTML text node as the template escaped it.
fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of the glance figure `id`.
fn figure(page: &str, id: &str) -> String {
    let at = page
        .find(&format!("data-figure=\"{id}\""))
        .unwrap_or_else(|| panic!("no figure {id}"));
    let rest = &page[at..];
    let v = rest.split("data-value=\"").nth(1).unwrap();
    v[..v.find('"').unwrap()].to_string()
}

/// The rows of a dataset, every column as text (as the report reads them).
fn dataset_rows(dir: &Path) -> Vec<Vec<Option<String>>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    let batches: Vec<RecordBatch> = files
        .iter()
        .flat_map(|f| read_parquet(f).unwrap())
        .collect();
    let mut rows = Vec::new();
    for b in &batches {
        let cols: Vec<_> = b
            .columns()
            .iter()
            .map(|c| datafusion::arrow::compute::cast(c, &DataType::Utf8).unwrap())
            .collect();
        for i in 0..b.num_rows() {
            rows.push(
                cols.iter()
                    .map(|c| {
                        let c = c.as_string::<i32>();
                        (!c.is_null(i)).then(|| c.value(i).to_string())
                    })
                    .collect(),
            );
        }
    }
    rows
}

fn column(dir: &Path, name: &str) -> usize {
    let file = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    let schema = read_parquet(&file).unwrap()[0].schema();
    schema.index_of(name).unwrap()
}

#[tokio::test]
async fn every_figure_of_the_report_equals_the_outputs_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_report(dir.path()).await;
    let page = std::fs::read_to_string(out.join(REPORT_FILE)).unwrap();
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let counts = &summary["counts"];

    // At a glance.
    assert_eq!(figure(&page, "events"), counts["events"].to_string());
    assert_eq!(
        figure(&page, "purchase-rows"),
        counts["purchase_rows"].to_string()
    );
    assert_eq!(
        figure(&page, "attributed-purchases"),
        counts["attributed_purchases"].to_string()
    );
    let projection = out.join("purchases_attribution");
    let (cost, confirmed, session) = (
        column(&projection, "billingCost"),
        column(&projection, "isConfirmed"),
        column(&projection, "sessionId"),
    );
    let rows = dataset_rows(&projection);
    let micros: i128 = rows
        .iter()
        .filter(|r| r[confirmed].as_deref() == Some("true"))
        .map(|r| (r[cost].as_deref().unwrap().parse::<f64>().unwrap() * 1e6).round() as i128)
        .sum();
    let revenue: f64 = figure(&page, "confirmed-revenue").parse().unwrap();
    assert!(
        (revenue - micros as f64 / 1e6).abs() < 0.006,
        "{revenue} vs {micros} µ"
    );
    let sessions: std::collections::BTreeSet<_> = rows.iter().map(|r| r[session].clone()).collect();
    assert_eq!(
        figure(&page, "converting-sessions"),
        sessions.len().to_string()
    );
    assert_eq!(figure(&page, "sessions"), counts["sessions"].to_string());
    assert_eq!(
        figure(&page, "projection-purchases"),
        rows.len().to_string()
    );

    let t = tables(&page);
    // Top campaigns: the mart's rows, revenue exact.
    let mut want: Vec<(String, String)> = dataset_rows(&out.join("top_campaigns"))
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    want.sort_by(|a, b| {
        let (x, y): (f64, f64) = (a.1.parse().unwrap(), b.1.parse().unwrap());
        y.total_cmp(&x).then(a.0.cmp(&b.0))
    });
    let got: Vec<(String, String)> = t["top-campaigns-table"]
        .iter()
        .map(|r| (r[0].0.clone(), r[1].1.clone().unwrap()))
        .collect();
    assert_eq!(got, want);

    // Channels: each one's sessions (the summary's), share of all of them, and its sessions
    // with an attributed purchase (the projection's).
    let channel = column(&projection, "channelId");
    let mut converting: BTreeMap<Option<String>, std::collections::BTreeSet<_>> = BTreeMap::new();
    for r in &rows {
        converting
            .entry(r[channel].clone())
            .or_default()
            .insert(r[session].clone());
    }
    let per_channel = summary["sessions_by_channel"].as_array().unwrap();
    let total: u64 = per_channel
        .iter()
        .map(|c| c["sessions"].as_u64().unwrap())
        .sum();
    assert_eq!(total, counts["sessions"].as_u64().unwrap());
    let want: Vec<Vec<String>> = per_channel
        .iter()
        .map(|c| {
            let id = c["channel_id"].as_str().map(String::from);
            let n = c["sessions"].as_u64().unwrap();
            vec![
                id.clone().unwrap_or_else(|| "(none)".into()),
                n.to_string(),
                (n as f64 / total as f64).to_string(),
                converting.get(&id).map_or(0, |s| s.len()).to_string(),
            ]
        })
        .collect();
    let got: Vec<Vec<String>> = t["channel-share"]
        .iter()
        .map(|r| {
            [0, 1, 2, 3]
                .map(|i| {
                    if i == 0 {
                        r[0].0.clone()
                    } else {
                        r[i].1.clone().unwrap()
                    }
                })
                .to_vec()
        })
        .collect();
    assert_eq!(got, want);
    assert!(want.len() > 2, "too few channels: {want:?}");

    // Top channels: every row of the mart.
    let mut want: Vec<Vec<String>> = dataset_rows(&out.join("top_channels"))
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| v.unwrap_or_else(|| "(none)".into()))
                .collect()
        })
        .collect();
    want.sort();
    let mut got: Vec<Vec<String>> = t["top-channels"]
        .iter()
        .map(|r| vec![r[0].0.clone(), r[1].0.clone(), r[2].1.clone().unwrap()])
        .collect();
    got.sort();
    assert_eq!(got, want);

    // The models: each shown credit is the dataset's.
    let models = out.join("attribution_models");
    let (dim, model, key, rev) = (
        column(&models, "dimension"),
        column(&models, "model"),
        column(&models, "touchpoint"),
        column(&models, "revenue"),
    );
    let roas = column(&models, "roas");
    let mut credit: BTreeMap<(String, String, String), String> = BTreeMap::new();
    let mut return_on_spend: BTreeMap<(String, String, String), Option<String>> = BTreeMap::new();
    for r in dataset_rows(&models) {
        let k = r[key].clone().unwrap_or_else(|| "(none)".into());
        let at = (r[dim].clone().unwrap(), r[model].clone().unwrap(), k);
        credit.insert(at.clone(), r[rev].clone().unwrap());
        return_on_spend.insert(at, r[roas].clone());
    }
    let names: Vec<&str> = Model::ALL.iter().map(|m| m.name()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    for d in ["campaign", "channel"] {
        let rows = &t[&format!("models-{d}")];
        assert!(!rows.is_empty(), "models-{d}");
        for r in rows {
            // Key, a credit per model, the spend, a ROAS per model.
            assert_eq!(r.len(), 2 + 2 * sorted.len(), "{d}: spend and ROAS shown");
            for (i, m) in sorted.iter().enumerate() {
                let at = (d.to_string(), m.to_string(), r[0].0.clone());
                assert_eq!(
                    r[i + 1].1.as_ref(),
                    Some(&credit[&at]),
                    "{d} {} {m}",
                    r[0].0
                );
                let shown = &r[2 + sorted.len() + i];
                match &return_on_spend[&at] {
                    Some(want) => assert_eq!(shown.1.as_ref(), Some(want), "ROAS {d} {m}"),
                    None => assert_eq!(shown.0, "(none)"),
                }
            }
        }
    }

    // The most frequent paths: the dataset's first ten by conversions.
    let paths = out.join("conversion_paths");
    let (pd, pp, pc) = (
        column(&paths, "dimension"),
        column(&paths, "path"),
        column(&paths, "conversions"),
    );
    for d in ["campaign", "channel"] {
        let mut want: Vec<(i64, String)> = dataset_rows(&paths)
            .into_iter()
            .filter(|r| r[pd].as_deref() == Some(d))
            .map(|r| {
                let path = r[pp].clone().unwrap_or_else(|| "(empty path)".into());
                (r[pc].as_deref().unwrap().parse().unwrap(), path)
            })
            .collect();
        want.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let got: Vec<(i64, String)> = t[&format!("paths-{d}")]
            .iter()
            .map(|r| {
                let text = r[0].0.clone();
                (r[1].1.as_deref().unwrap().parse().unwrap(), text)
            })
            .collect();
        assert_eq!(got.len(), want.len().min(10));
        // Ties at the tenth place may be cut differently: compare the counts, and the paths
        // above the last count.
        let last = got.last().unwrap().0;
        let counts = |v: &[(i64, String)]| v.iter().map(|x| x.0).collect::<Vec<_>>();
        assert_eq!(counts(&got), counts(&want[..got.len()]));
        let above =
            |v: &[(i64, String)]| v.iter().filter(|x| x.0 > last).cloned().collect::<Vec<_>>();
        assert_eq!(above(&got), above(&want[..got.len()]));
    }

    // Every input file: its rows and quarantined rows as the summary says, its size on disk.
    let inputs = &t["input-files"];
    let files: usize = ["clickstream", "purchases", "spend"]
        .iter()
        .map(|k| summary["input_files"][k].as_object().map_or(0, |f| f.len()))
        .sum();
    assert_eq!(inputs.len(), files, "every file read, the spend's too");
    assert_eq!(
        files,
        4 + 1 + 4 + 1,
        "the generated files, extra.csv, the spend"
    );
    for r in inputs {
        let (kind, file) = (&r[0].0, &r[1].0);
        let stats = &summary["input_files"][kind][file];
        assert_eq!(
            r[2].1.as_deref(),
            Some(stats["rows"].to_string().as_str()),
            "{file}"
        );
        let size = std::fs::metadata(file).unwrap().len().to_string();
        assert_eq!(r[3].1.as_deref(), Some(size.as_str()), "{file}");
        assert_eq!(
            r[4].1.as_deref(),
            Some(stats["quarantined"].to_string().as_str())
        );
    }

    // The accounting: every count of the summary, and each file's quarantined rows.
    let accounting = &t["accounting-clickstream"];
    assert_eq!(
        accounting[0][1].1.as_deref(),
        Some(counts["events"].to_string().as_str())
    );
    let parts: u64 = accounting[1..]
        .iter()
        .map(|r| r[1].1.as_deref().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        parts,
        counts["events"].as_u64().unwrap(),
        "the parts add up to the rows read"
    );
    let purchases = &t["accounting-purchases"];
    let parts: u64 = purchases[1..]
        .iter()
        .map(|r| r[1].1.as_deref().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(parts, counts["purchase_rows"].as_u64().unwrap());
    let quarantined = &t["quarantined"];
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert!(quarantined[0][0].0.ends_with("extra.csv"));
    assert_eq!(quarantined[0][1].1.as_deref(), Some("1"));
    assert!(
        quarantined[0][2].0.starts_with("line 2: "),
        "{:?}",
        quarantined[0][2]
    );
    assert_eq!(counts["events_quarantined"], 1);
}

#[tokio::test]
async fn the_page_is_self_contained_and_accessible() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_report(dir.path()).await;
    let page = std::fs::read_to_string(out.join(REPORT_FILE)).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<html lang=\"en\">"));
    assert!(page.contains("name=\"viewport\""));
    for banned in [
        "<script", "<link", "<img", "src=", "http://", "https://", "@import", "url(",
    ] {
        let found = page
            .match_indices(banned)
            .map(|(at, _)| &page[at.saturating_sub(40)..(at + 60).min(page.len())])
            .find(|around| !around.contains("xmlns") && !around.contains("www.w3.org"));
        assert!(found.is_none(), "{banned} in the page: {found:?}");
    }
    let svgs = page.matches("<svg").count();
    assert!(svgs >= 5, "{svgs} charts");
    assert_eq!(
        page.matches("role=\"img\"><title>").count(),
        svgs,
        "every chart has a title"
    );
    assert_eq!(
        page.matches("<table").count(),
        page.matches("<thead><tr><th scope=\"col\">").count()
    );
    assert_eq!(
        page.matches("<figure>").count(),
        page.matches("<figcaption>").count()
    );
}

#[tokio::test]
async fn the_report_command_writes_beside_the_outputs_and_replaces_only_its_own_page() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_report(dir.path()).await;
    let first = std::fs::read_to_string(out.join(REPORT_FILE)).unwrap();
    let settings = Settings::default();
    // Our own page is replaced, by the same page.
    let written = report_job(&settings, &out, None).await.unwrap();
    assert_eq!(written, out.join(REPORT_FILE));
    let again = std::fs::read_to_string(&written).unwrap();
    // The same page: the run's options and duration are in its summary.
    assert_eq!(again, first);
    assert!(
        first.contains("data-figure=\"duration\"") && first.contains("data-figure=\"options\"")
    );
    // A file that is not one of our reports is never replaced.
    let theirs = dir.path().join("theirs.html");
    std::fs::write(&theirs, "<html>mine</html>").unwrap();
    let e = report_job(&settings, &out, Some(&theirs))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not written by this program"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&theirs).unwrap(),
        "<html>mine</html>"
    );
    // A directory this program did not write gets no report unless --out says where.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::copy(out.join("summary.json"), foreign.join("summary.json")).unwrap();
    let e = report_job(&settings, &foreign, None).await.unwrap_err();
    assert!(e.to_string().contains("--out FILE"), "{e}");
    assert!(!foreign.join(REPORT_FILE).exists());
    let elsewhere = dir.path().join("elsewhere.html");
    report_job(&settings, &foreign, Some(&elsewhere))
        .await
        .unwrap();
    assert!(std::fs::read_to_string(&elsewhere)
        .unwrap()
        .contains("data-figure=\"events\""));
    // No hidden file is left beside the pages.
    let hidden: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .chain(std::fs::read_dir(&out).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

/// Chromium's binary: `MARKETING_ANALYTICS_CHROMIUM`, else the first of the usual names on
/// PATH. `None` (with why) when there is none and CI does not require it.
fn chromium() -> Option<PathBuf> {
    let named = std::env::var_os("MARKETING_ANALYTICS_CHROMIUM").map(PathBuf::from);
    let found = named.or_else(|| {
        [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join(name))
                    .find(|p| p.is_file())
            })
        })
    });
    if found.is_none() {
        assert!(
            std::env::var_os("MARKETING_ANALYTICS_REQUIRE_CHROMIUM").is_none(),
            "MARKETING_ANALYTICS_REQUIRE_CHROMIUM is set but no Chromium was found \
             (install the Debian package chromium)"
        );
        eprintln!(
            "SKIPPED: no Chromium (install the Debian package chromium, or set \
             MARKETING_ANALYTICS_CHROMIUM); the report was not opened in a browser"
        );
    }
    found
}

/// Runs headless Chromium on `page` with `args`; returns stdout and stderr.
fn headless(chromium: &Path, profile: &Path, page: &Path, args: &[String]) -> (String, String) {
    let output = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "chromium failed: {stderr}");
    (String::from_utf8_lossy(&output.stdout).into_owned(), stderr)
}

/// Whether a PNG screenshot has both its width and more than one color.
fn screenshot_is_drawn(png: &Path, width: u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.width, width, "{}", png.display());
    let pixels = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    let first = &pixels[..step];
    let differing = pixels.chunks(step).filter(|p| *p != first).count();
    assert!(
        differing > pixels.len() / step / 50,
        "{}: the screenshot is (nearly) blank",
        png.display()
    );
}

/// Opens the report of `out` in Chromium: no console message, the DOM holds the figures of
/// the summary, and screenshots at 375 and 1440 px wide are drawn.
fn open_in_chromium(chromium: &Path, out: &Path, work: &Path) {
    let page = out.join(REPORT_FILE);
    let profile = work.join("chromium-profile");
    let (dom, log) = headless(chromium, &profile, &page, &["--dump-dom".to_string()]);
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    for (id, key) in [
        ("events", "events"),
        ("sessions", "sessions"),
        ("attributed-purchases", "attributed_purchases"),
    ] {
        let want = format!(
            "data-figure=\"{id}\" data-value=\"{}\"",
            summary["counts"][key]
        );
        assert!(dom.contains(&want), "the DOM lacks {want}");
    }
    assert!(dom.contains("<svg"), "the DOM holds the charts");
    for width in [375u32, 1440] {
        let shot = work.join(format!("shot-{width}.png"));
        let args = [
            format!("--screenshot={}", shot.display()),
            format!("--window-size={width},1800"),
        ];
        let (_, log) = headless(chromium, &profile, &page, &args);
        let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
        assert!(
            console.is_empty(),
            "console messages at {width} px: {console:?}"
        );
        screenshot_is_drawn(&shot, width);
    }
}

#[tokio::test]
async fn the_report_opens_in_headless_chromium_at_phone_and_desktop_widths() {
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_report(dir.path()).await;
    open_in_chromium(&chromium, &out, dir.path());
}

#[tokio::test]
async fn the_report_of_the_shared_sample_opens_in_headless_chromium() {
    let Some(sample) = crate::common::sample_dir() else {
        return;
    };
    let Some(chromium) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let settings = Settings {
        report: true,
        journeys: Some(Options::default()),
        ..Settings::default()
    };
    let clicks = sample.join("mobile_app_clickstream").display().to_string();
    let purchases = sample.join("user_purchases").display().to_string();
    run_all(&settings, &clicks, &purchases, &out).await.unwrap();
    open_in_chromium(&chromium, &out, dir.path());
}

#[tokio::test]
async fn a_period_report_shows_its_marts_and_a_weekly_report_its_weeks() {
    use marketing_analytics::app::period::{period_job, weekly_job, Period, Source};
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path());
    let source = Source::Raw {
        clickstream: data.join("mobile_app_clickstream").display().to_string(),
        purchases: data.join("user_purchases").display().to_string(),
    };
    let start = marketing_analytics::calendar::parse_date("2020-08-25").unwrap();
    let period = Period::new(start + 3, start + 24, 2).unwrap();
    let settings = Settings {
        threads: 2,
        on_bad_rows: BadRows::Quarantine,
        report: true,
        ..Settings::default()
    };
    let out = dir.path().join("period");
    period_job(&settings, &source, &period, &out).await.unwrap();
    let page = std::fs::read_to_string(out.join(REPORT_FILE)).unwrap();
    let t = tables(&page);
    let mut want: Vec<(String, String)> = dataset_rows(&out.join("top_campaigns"))
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect();
    want.sort();
    let mut got: Vec<(String, String)> = t["top-campaigns-table"]
        .iter()
        .map(|r| (r[0].0.clone(), r[1].1.clone().unwrap()))
        .collect();
    got.sort();
    assert!(!got.is_empty());
    assert_eq!(got, want);
    assert!(
        page.contains("data-figure=\"duration\""),
        "--report knows the duration"
    );

    // weekly's outputs: per ISO week, the sums over the campaigns of the Parquet.
    let weekly = dir.path().join("weekly");
    let quarantine = Settings {
        on_bad_rows: BadRows::Quarantine,
        ..Settings::default()
    };
    weekly_job(&quarantine, &source, &period, &weekly)
        .await
        .unwrap();
    report_job(&Settings::default(), &weekly, None)
        .await
        .unwrap();
    let page = std::fs::read_to_string(weekly.join(REPORT_FILE)).unwrap();
    let w = weekly.join("weekly");
    let (week, purchases, revenue) = (
        column(&w, "isoWeek"),
        column(&w, "purchases"),
        column(&w, "confirmedRevenue"),
    );
    let mut sums: BTreeMap<String, (u64, i128)> = BTreeMap::new();
    for r in dataset_rows(&w) {
        let e = sums.entry(r[week].clone().unwrap()).or_default();
        e.0 += r[purchases].as_deref().unwrap().parse::<u64>().unwrap();
        let cents: f64 = r[revenue].as_deref().unwrap().parse().unwrap();
        e.1 += (cents * 100.0).round() as i128;
    }
    let rows = &tables(&page)["weekly-table"];
    assert_eq!(rows.len(), sums.len());
    for r in rows {
        let (n, cents) = sums[&r[0].0];
        assert_eq!(
            r[2].1.as_deref(),
            Some(n.to_string().as_str()),
            "week {}",
            r[0].0
        );
        let shown: f64 = r[4].1.as_deref().unwrap().parse().unwrap();
        assert_eq!((shown * 100.0).round() as i128, cents, "week {}", r[0].0);
    }
    assert!(page.contains("Confirmed revenue per ISO week"));
}

#[tokio::test]
async fn the_report_of_a_million_events_opens_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let _serial = crate::common::HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = GenOptions {
        users: 62_000,
        files: 6,
        seed: 2024,
        max_sessions: 5,
        mess: Mess::messy(),
        truth: false,
        ..GenOptions::default()
    };
    let g = generate(&opts, &dir.path().join("data")).unwrap();
    assert!(g.events >= 1_000_000, "only {} events generated", g.events);
    let out = dir.path().join("out");
    let clicks = g.clickstream_dir.display().to_string();
    let purchases = g.purchases_dir.display().to_string();
    let report = run_all(&settings(), &clicks, &purchases, &out)
        .await
        .unwrap();
    open_in_chromium(&chromium, &out, dir.path());
    let page = std::fs::read_to_string(out.join(REPORT_FILE)).unwrap();
    assert_eq!(
        figure(&page, "attributed-purchases"),
        report.summary.counts.attributed_purchases.to_string()
    );
}
