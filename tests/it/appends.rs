//! The warehouse grows by conversions that add files: appending in batches equals one
//! conversion of all the files, a file converted again changes nothing, a changed file
//! replaces its own rows, other tools read the Delta tables, and a warehouse of the earlier
//! layout is refused with what to do.

use std::path::{Path, PathBuf};

use crate::common;
use marketing_analytics::app::convert::convert;
use marketing_analytics::app::period::{period_job, register_stored_projection, Period, Source};
use marketing_analytics::app::{layout, Settings};
use marketing_analytics::canonical;
use marketing_analytics::engine::session_context;
use marketing_analytics::generate::{generate, Generated, Options};
use marketing_analytics::storage::delta::AsOf;
use marketing_analytics::storage::warehouse::Read;

fn settings() -> Settings {
    Settings {
        threads: 2,
        ..Settings::default()
    }
}

/// A messy dataset in four files per table: users, their duplicates and their purchases
/// spread over the files, so a batch of files holds halves of sessions and purchases whose
/// events are in the other batch.
fn data(dir: &Path) -> Generated {
    let opts = Options {
        users: 6_000,
        files: 4,
        seed: 77,
        days: 60,
        max_sessions: 4,
        ..Options::default()
    };
    generate(&opts, &dir.join("data")).unwrap()
}

/// `g`'s exports converted into `warehouse`.
async fn convert_generated(
    g: &Generated,
    warehouse: &Path,
) -> marketing_analytics::error::Result<marketing_analytics::app::convert::ConvertReport> {
    let (c, p) = (g.clickstream_dir.display(), g.purchases_dir.display());
    convert(&settings(), &c.to_string(), &p.to_string(), warehouse).await
}

/// The files of `dir`, in path order.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut f: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    f.sort();
    f
}

/// A directory `to` holding copies of `files`.
fn batch(files: &[PathBuf], to: &Path) -> String {
    std::fs::create_dir_all(to).unwrap();
    for f in files {
        std::fs::copy(f, to.join(f.file_name().unwrap())).unwrap();
    }
    to.display().to_string()
}

/// The stored projection of `warehouse`, in canonical text.
async fn stored_projection(warehouse: &Path) -> String {
    common::stored_projection(&settings(), warehouse).await
}

/// The marts of a month of `warehouse`, recomputed from its input tables, in canonical text.
async fn month_marts(warehouse: &Path, out: &Path) -> (String, String) {
    let month = Period::parse(Some("2020-09-01"), Some("2020-09-30"), None, 1).unwrap();
    let recompute = Settings {
        stored_projection: false,
        ..settings()
    };
    period_job(
        &recompute,
        &Source::Warehouse(warehouse.to_path_buf()),
        &month,
        out,
    )
    .await
    .unwrap();
    let read =
        |name: &str| marketing_analytics::storage::output::read_parquet(&out.join(name)).unwrap();
    let marts = (
        canonical::top_campaigns_csv(&read(layout::TOP_CAMPAIGNS)).unwrap(),
        canonical::top_channels_csv(&read(layout::TOP_CHANNELS)).unwrap(),
    );
    assert!(
        marts.0.lines().count() > 5,
        "a month with purchases: {marts:?}"
    );
    marts
}

#[tokio::test]
async fn appending_batches_of_files_equals_one_conversion_of_them_all() {
    let dir = tempfile::tempdir().unwrap();
    let g = data(dir.path());
    let (clicks, purchases) = (files(&g.clickstream_dir), files(&g.purchases_dir));
    let all = dir.path().join("all");
    let (ac, ap) = (
        batch(&clicks, &all.join("c")),
        batch(&purchases, &all.join("p")),
    );
    let whole = dir.path().join("whole");
    convert(&settings(), &ac, &ap, &whole).await.unwrap();

    // Converted in two batches: copies of half the clickstream files with the other half of
    // the purchases files (purchases arriving before their events and after them, sessions
    // and duplicates split), then all of them, where the copies' content is skipped.
    let grown = dir.path().join("grown");
    let staged = dir.path().join("staged");
    let first = (
        batch(&clicks[..2], &staged.join("c")),
        batch(&purchases[2..], &staged.join("p")),
    );
    convert(&settings(), &first.0, &first.1, &grown)
        .await
        .unwrap();
    let second = convert(&settings(), &ac, &ap, &grown).await.unwrap();
    assert_eq!(
        second.unchanged_files.len(),
        4,
        "{:?}",
        second.unchanged_files
    );
    assert_eq!(
        stored_projection(&grown).await,
        stored_projection(&whole).await
    );
    let truth = std::fs::read_to_string(g.truth_dir.unwrap().join("attribution.csv")).unwrap();
    common::assert_same_text(
        "stored projection",
        &stored_projection(&whole).await,
        &truth,
    );
    assert_eq!(
        month_marts(&grown, &dir.path().join("m1")).await,
        month_marts(&whole, &dir.path().join("m2")).await
    );

    // --as-of the first conversion: the warehouse of the first batch alone.
    let alone = dir.path().join("alone");
    convert(&settings(), &first.0, &first.1, &alone)
        .await
        .unwrap();
    let as_of_first = Settings {
        read: Read::Converted(AsOf::Version(1)),
        ..settings()
    };
    let then = common::stored_projection(&as_of_first, &grown).await;
    assert_eq!(then, stored_projection(&alone).await);
    assert_ne!(then, stored_projection(&grown).await);
    let before_any = Settings {
        read: Read::Converted(AsOf::Version(0)),
        ..settings()
    };
    let ctx = session_context(2);
    let e = register_stored_projection(&ctx, &before_any, &grown, &Period::all())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no conversion had finished"), "{e}");

    // The same files once more: no table changes.
    let again = convert(&settings(), &ac, &ap, &grown).await.unwrap();
    assert_eq!(again.versions, second.versions);
    assert_eq!(again.unchanged_files.len(), 8);
}

#[tokio::test]
async fn a_changed_file_replaces_its_own_rows_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let g = data(dir.path());
    let (clicks, purchases) = (files(&g.clickstream_dir), files(&g.purchases_dir));
    let c = batch(&clicks, &dir.path().join("c"));
    let p = batch(&purchases, &dir.path().join("p"));
    let warehouse = dir.path().join("warehouse");
    convert(&settings(), &c, &p, &warehouse).await.unwrap();
    // The first clickstream file re-exported with its last third of rows left out.
    let changed = files(Path::new(&c))[0].clone();
    let text = common::read_text(&changed);
    let lines: Vec<&str> = text.lines().collect();
    let kept = lines[..lines.len() * 2 / 3].join("\n") + "\n";
    let plain = changed.with_extension("").with_extension("csv");
    std::fs::remove_file(&changed).unwrap();
    std::fs::write(&plain, &kept).unwrap();
    // A file at a new path is a new file: write it at the old one, as a re-export does.
    std::fs::rename(&plain, &changed).unwrap();
    let report = convert(&settings(), &c, &p, &warehouse).await.unwrap();
    assert_eq!(report.changed_files.len(), 1, "{:?}", report.changed_files);
    let fresh = dir.path().join("fresh");
    convert(&settings(), &c, &p, &fresh).await.unwrap();
    assert_eq!(
        stored_projection(&warehouse).await,
        stored_projection(&fresh).await
    );
    assert_eq!(
        month_marts(&warehouse, &dir.path().join("m1")).await,
        month_marts(&fresh, &dir.path().join("m2")).await
    );
}

#[tokio::test]
async fn the_python_deltalake_package_reads_the_tables_and_finds_the_same_top_campaigns() {
    let Some(python) = common::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let g = data(dir.path());
    let warehouse = dir.path().join("warehouse");
    let report = convert_generated(&g, &warehouse).await.unwrap();
    let script = r#"
import os, sys
from collections import defaultdict
from deltalake import DeltaTable
w = sys.argv[1]
for t in ["clickstream", "purchases", "projection"]:
    print(t, DeltaTable(w + "/" + t).to_pyarrow_table().num_rows)
p = DeltaTable(w + "/projection").to_pyarrow_table().to_pylist()
revenue = defaultdict(int)
for r in p:
    if r["isConfirmed"] and r["campaignId"] is not None:
        revenue[r["campaignId"]] += round(r["billingCost"] * 1000000)
top = sorted(revenue.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
for c, micros in top:
    print("top", c, "%.2f" % (round(micros / 10000) / 100))
sys.stdout.flush()
# deltalake's runtime aborts at interpreter exit: leave before it.
os._exit(0)
"#;
    let out = std::process::Command::new(&python)
        .args(["-c", script])
        .arg(&warehouse)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows = |t: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{t} ")))
            .unwrap()
            .parse()
            .unwrap()
    };
    let read: u64 = report.clickstream_dates.iter().map(|d| d.1).sum();
    assert_eq!(rows("clickstream"), read);
    assert_eq!(rows("clickstream"), g.events);
    assert_eq!(rows("purchases"), g.purchase_rows);
    assert_eq!(rows("projection"), report.projection_rows);
    // Our top campaigns of all dates, from the stored projection.
    let out = dir.path().join("period");
    period_job(
        &settings(),
        &Source::Warehouse(warehouse.clone()),
        &Period::all(),
        &out,
    )
    .await
    .unwrap();
    let ours = marketing_analytics::storage::output::read_parquet(&out.join(layout::TOP_CAMPAIGNS))
        .unwrap();
    let ours = canonical::top_campaigns_csv(&ours).unwrap();
    let theirs: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("top "))
        .map(|l| l.replace(' ', ","))
        .collect();
    let ours: Vec<String> = ours.lines().skip(1).map(String::from).collect();
    assert_eq!(theirs, ours);
    assert_eq!(ours.len(), 10);
}

#[tokio::test]
async fn a_warehouse_of_the_earlier_layout_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let g = data(dir.path());
    let warehouse = dir.path().join("warehouse");
    convert_generated(&g, &warehouse).await.unwrap();
    // As an earlier version left it: date folders, no Delta log.
    std::fs::remove_dir_all(warehouse.join("purchases/_delta_log")).unwrap();
    let e = convert_generated(&g, &warehouse)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("earlier version") && e.contains("convert --warehouse NEW_DIR"),
        "{e}"
    );
    let e = period_job(
        &settings(),
        &Source::Warehouse(warehouse.clone()),
        &Period::all(),
        &dir.path().join("p"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("earlier version"), "{e}");
}

#[tokio::test]
async fn optimize_compacts_each_date_and_vacuum_removes_only_what_no_kept_version_needs() {
    use marketing_analytics::app::maintain::{optimize_job, vacuum_job};
    let dir = tempfile::tempdir().unwrap();
    let g = data(dir.path());
    let (clicks, purchases) = (files(&g.clickstream_dir), files(&g.purchases_dir));
    let warehouse = dir.path().join("warehouse");
    // Two conversions: two files per date.
    let b1 = (
        batch(&clicks[..2], &dir.path().join("b1/c")),
        batch(&purchases[..2], &dir.path().join("b1/p")),
    );
    let b2 = (
        batch(&clicks[2..], &dir.path().join("b2/c")),
        batch(&purchases[2..], &dir.path().join("b2/p")),
    );
    convert(&settings(), &b1.0, &b1.1, &warehouse)
        .await
        .unwrap();
    convert(&settings(), &b2.0, &b2.1, &warehouse)
        .await
        .unwrap();
    let per_date = |files: &[marketing_analytics::storage::delta::DataFile]| {
        let mut n = std::collections::BTreeMap::new();
        for f in files {
            *n.entry(f.date).or_insert(0) += 1;
        }
        n.into_values().max().unwrap_or(0)
    };
    assert_eq!(
        per_date(&common::table_files(&warehouse, "clickstream").await),
        2
    );
    // What a stopped conversion wrote and never committed.
    let day = warehouse.join("clickstream/date=2020-09-10");
    let some = std::fs::read_dir(&day)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let orphan = day.join("part-stopped-0.parquet");
    std::fs::copy(&some, &orphan).unwrap();
    let projection = stored_projection(&warehouse).await;
    let marts = month_marts(&warehouse, &dir.path().join("m1")).await;

    let done = optimize_job(&settings(), &warehouse, 256 << 20)
        .await
        .unwrap();
    assert!(
        done.iter().all(|(_, added, removed)| removed > added),
        "{done:?}"
    );
    assert_eq!(
        per_date(&common::table_files(&warehouse, "clickstream").await),
        1
    );
    assert_eq!(stored_projection(&warehouse).await, projection);
    assert_eq!(month_marts(&warehouse, &dir.path().join("m2")).await, marts);

    let hour = std::time::Duration::from_secs(3600);
    let listed = vacuum_job(&settings(), &warehouse, hour, true)
        .await
        .unwrap();
    assert!(
        listed.iter().all(|(_, f)| f.is_empty()),
        "all younger than an hour: {listed:?}"
    );
    let zero = std::time::Duration::ZERO;
    let listed = vacuum_job(&settings(), &warehouse, zero, true)
        .await
        .unwrap();
    let clickstream = &listed.iter().find(|(t, _)| t == "clickstream").unwrap().1;
    assert!(
        clickstream
            .iter()
            .any(|f| f.ends_with("part-stopped-0.parquet")),
        "{clickstream:?}"
    );
    assert!(orphan.exists(), "a dry run removes nothing");
    vacuum_job(&settings(), &warehouse, zero, false)
        .await
        .unwrap();
    assert!(!orphan.exists());
    assert_eq!(stored_projection(&warehouse).await, projection);
    assert_eq!(month_marts(&warehouse, &dir.path().join("m3")).await, marts);
}

#[tokio::test]
async fn appending_by_date_with_late_events_for_old_dates_equals_one_conversion() {
    let dir = tempfile::tempdir().unwrap();
    let g = data(dir.path());
    let whole = dir.path().join("whole");
    convert_generated(&g, &whole).await.unwrap();
    // Each export split at 2020-09-20: the earlier days first, then the later ones with one
    // row in forty of the earlier days arriving late.
    let mut held_back = 0;
    for (from, table) in [(&g.clickstream_dir, "c"), (&g.purchases_dir, "p")] {
        for f in files(from) {
            let (early, late, held) =
                common::split_by_date(&common::read_text(&f), "2020-09-20", 40);
            held_back += held;
            let name = f.file_name().unwrap().to_string_lossy().replace(".gz", "");
            for (batch, text) in [("early", early), ("late", late)] {
                let to = dir.path().join(batch).join(table);
                std::fs::create_dir_all(&to).unwrap();
                std::fs::write(to.join(&name), text).unwrap();
            }
        }
    }
    assert!(held_back > 100, "{held_back} late rows");
    let grown = dir.path().join("grown");
    for batch in ["early", "late"] {
        let b = dir.path().join(batch);
        convert(
            &settings(),
            &b.join("c").display().to_string(),
            &b.join("p").display().to_string(),
            &grown,
        )
        .await
        .unwrap();
    }
    let late = convert(
        &settings(),
        &dir.path().join("late/c").display().to_string(),
        &dir.path().join("late/p").display().to_string(),
        &grown,
    )
    .await
    .unwrap();
    assert_eq!(late.unchanged_files.len(), 8, "converted already");
    assert_eq!(
        stored_projection(&grown).await,
        stored_projection(&whole).await
    );
    assert_eq!(
        month_marts(&grown, &dir.path().join("m1")).await,
        month_marts(&whole, &dir.path().join("m2")).await
    );
}

#[tokio::test]
async fn the_sample_converted_in_batches_of_files_gives_its_expected_results() {
    let Some(sample) = common::sample_dir() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let clicks = files(&sample.join("mobile_app_clickstream"));
    let purchases = files(&sample.join("user_purchases"));
    let (c, p) = (
        sample.join("mobile_app_clickstream").display().to_string(),
        sample.join("user_purchases").display().to_string(),
    );
    let whole = dir.path().join("whole");
    convert(&settings(), &c, &p, &whole).await.unwrap();
    // Two clickstream files with three purchases files, then the other files.
    let grown = dir.path().join("grown");
    let staged = dir.path().join("staged");
    convert(
        &settings(),
        &batch(&clicks[..2], &staged.join("c1")),
        &batch(&purchases[..3], &staged.join("p1")),
        &grown,
    )
    .await
    .unwrap();
    let second = convert(
        &settings(),
        &batch(&clicks[2..], &staged.join("c2")),
        &batch(&purchases[3..], &staged.join("p2")),
        &grown,
    )
    .await
    .unwrap();
    assert_eq!(
        second.projection_update,
        marketing_analytics::app::projection::Update::Incremental
    );
    let expected =
        |name: &str| std::fs::read_to_string(sample.join("expected").join(name)).unwrap();
    common::assert_same_text(
        "projection appended",
        &stored_projection(&grown).await,
        &expected("attribution.csv"),
    );
    let source = Source::Warehouse(grown.clone());
    let out = dir.path().join("marts");
    period_job(&settings(), &source, &Period::all(), &out)
        .await
        .unwrap();
    let read =
        |name: &str| marketing_analytics::storage::output::read_parquet(&out.join(name)).unwrap();
    common::assert_same_text(
        "top campaigns",
        &canonical::top_campaigns_csv(&read(layout::TOP_CAMPAIGNS)).unwrap(),
        &expected("top_campaigns.csv"),
    );
    common::assert_same_text(
        "top channels",
        &canonical::top_channels_csv(&read(layout::TOP_CHANNELS)).unwrap(),
        &expected("top_channels.csv"),
    );
    let weekly = |w: &Path, name: &str| {
        let source = Source::Warehouse(w.to_path_buf());
        let out = dir.path().join(name);
        async move {
            let batches = marketing_analytics::app::period::weekly_job(
                &settings(),
                &source,
                &Period::all(),
                &out,
            )
            .await
            .unwrap();
            datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string()
        }
    };
    let grown_weekly = weekly(&grown, "w1").await;
    assert!(grown_weekly.lines().count() > 10, "{grown_weekly}");
    common::assert_same_text("weekly", &grown_weekly, &weekly(&whole, "w2").await);
}
