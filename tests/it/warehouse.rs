//! The warehouse: conversion, metrics for a period equal to the full pipeline filtered to the
//! period (from the warehouse and from raw CSV), partition pruning, and the weekly projection.

use crate::common;

use std::path::Path;

use marketing_analytics::app::convert::convert;
use marketing_analytics::app::period::{
    period_context, period_job, planned_files, register_stored_projection, weekly_job, Period,
    Source,
};
use marketing_analytics::app::{layout, register_projection, run_all, Settings};
use marketing_analytics::attribution::tables;
use marketing_analytics::calendar::format_date;
use marketing_analytics::canonical;
use marketing_analytics::engine::session_context;
use marketing_analytics::generate::{generate, Generated, Options};
use marketing_analytics::input::TableKind;
use marketing_analytics::marts::{top_campaigns, top_channels, Api};
use marketing_analytics::storage::delta;
use marketing_analytics::storage::output::read_parquet;
use marketing_analytics::storage::warehouse::{table_dir, Read, Snapshot};

fn settings() -> Settings {
    Settings {
        threads: 2,
        ..Settings::default()
    }
}

fn data(dir: &Path) -> Generated {
    let opts = Options {
        users: 12_000,
        files: 4,
        seed: 31,
        days: 130,
        ..Options::default()
    };
    generate(&opts, &dir.join("data")).unwrap()
}

/// Generated data converted into a warehouse under `dir`.
async fn data_in_warehouse(dir: &Path) -> (Generated, std::path::PathBuf) {
    let g = data(dir);
    let warehouse = dir.join("warehouse");
    convert(
        &settings(),
        &g.clickstream_dir.display().to_string(),
        &g.purchases_dir.display().to_string(),
        &warehouse,
    )
    .await
    .unwrap();
    (g, warehouse)
}

/// The marts of the full pipeline's projection filtered to the period, in canonical text.
async fn expected_marts(full_projection: &Path, period: &Period) -> (String, String) {
    let ctx = session_context(2);
    register_projection(&ctx, &full_projection.display().to_string())
        .await
        .unwrap();
    let filtered = ctx
        .sql(&format!(
            "SELECT * FROM {} WHERE purchaseTime >= CAST('{} 00:00:00' AS TIMESTAMP) AND purchaseTime < CAST('{} 00:00:00' AS TIMESTAMP)",
            tables::PROJECTION,
            format_date(period.from),
            format_date(period.to + 1)
        ))
        .await
        .unwrap()
        .cache()
        .await
        .unwrap();
    ctx.deregister_table(tables::PROJECTION).unwrap();
    ctx.register_table(tables::PROJECTION, filtered.into_view())
        .unwrap();
    let c = top_campaigns::MART.transform(&ctx, Api::Sql).await.unwrap();
    let ch = top_channels::MART.transform(&ctx, Api::Sql).await.unwrap();
    (
        canonical::top_campaigns_csv(&c).unwrap(),
        canonical::top_channels_csv(&ch).unwrap(),
    )
}

fn canonical_marts(out: &Path) -> (String, String) {
    (
        canonical::top_campaigns_csv(&read_parquet(&out.join(layout::TOP_CAMPAIGNS)).unwrap())
            .unwrap(),
        canonical::top_channels_csv(&read_parquet(&out.join(layout::TOP_CHANNELS)).unwrap())
            .unwrap(),
    )
}

#[tokio::test]
async fn period_metrics_equal_the_full_pipeline_filtered_to_the_period() {
    let dir = tempfile::tempdir().unwrap();
    let g = data(dir.path());
    let (clicks, purchases) = (
        g.clickstream_dir.display().to_string(),
        g.purchases_dir.display().to_string(),
    );
    let warehouse = dir.path().join("warehouse");
    let report = convert(&settings(), &clicks, &purchases, &warehouse)
        .await
        .unwrap();
    assert!(
        report.clickstream_dates.len() > 100,
        "{} dates",
        report.clickstream_dates.len()
    );
    let full = dir.path().join("full");
    run_all(&settings(), &clicks, &purchases, &full)
        .await
        .unwrap();
    let full_projection = full.join(layout::PROJECTION);

    let periods = [
        Period::parse(Some("2020-09-01"), Some("2020-09-30"), None, 1).unwrap(),
        Period::parse(None, None, Some("2020-11-11"), 1).unwrap(),
        Period::parse(Some("2020-10-31"), Some("2020-11-01"), None, 1).unwrap(),
    ];
    let mut lookback_mattered = false;
    for period in periods {
        let want = expected_marts(&full_projection, &period).await;
        assert!(
            want.0.lines().count() > 1,
            "{}: the period has purchases",
            period.describe()
        );
        let recompute = Settings {
            stored_projection: false,
            ..settings()
        };
        for (name, source, settings) in [
            (
                "the warehouse's stored projection",
                Source::Warehouse(warehouse.clone()),
                settings(),
            ),
            (
                "the warehouse's partitions",
                Source::Warehouse(warehouse.clone()),
                recompute.clone(),
            ),
            (
                "raw CSV",
                Source::Raw {
                    clickstream: clicks.clone(),
                    purchases: purchases.clone(),
                },
                settings(),
            ),
        ] {
            let out = dir.path().join(format!("period-{}-{name}", period.from));
            period_job(&settings, &source, &period, &out).await.unwrap();
            let got = canonical_marts(&out);
            common::assert_same_text(
                &format!("top campaigns {} from {name}", period.describe()),
                &got.0,
                &want.0,
            );
            common::assert_same_text(
                &format!("top channels {} from {name}", period.describe()),
                &got.1,
                &want.1,
            );
        }
        // Computed from the partitions without the look-back, sessions that started before
        // the period are lost.
        let no_lookback = Period {
            lookback: 0,
            ..period
        };
        let out = dir
            .path()
            .join(format!("period-{}-nolookback", period.from));
        period_job(
            &recompute,
            &Source::Warehouse(warehouse.clone()),
            &no_lookback,
            &out,
        )
        .await
        .unwrap();
        lookback_mattered |= canonical_marts(&out) != want;
    }
    assert!(
        lookback_mattered,
        "no session crossed into a period: the data does not test the look-back"
    );
}

#[tokio::test]
async fn only_the_needed_partitions_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let (_, warehouse) = data_in_warehouse(dir.path()).await;
    let day = Period::parse(None, None, Some("2020-11-11"), 1).unwrap();
    let ctx = session_context(2);
    marketing_analytics::app::period::register_period_inputs(
        &ctx,
        &settings(),
        &Source::Warehouse(warehouse.clone()),
        &day,
        None,
    )
    .await
    .unwrap();
    let events = planned_files(&ctx, tables::EVENTS).await.unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events[0].contains("date=2020-11-10") && events[1].contains("date=2020-11-11"),
        "{events:?}"
    );
    let purchases = planned_files(&ctx, tables::PURCHASES).await.unwrap();
    assert_eq!(purchases.len(), 1, "{purchases:?}");
    assert!(purchases[0].contains("purchases/date=2020-11-11"));
    let month = Period::parse(Some("2020-09-01"), Some("2020-09-30"), None, 1).unwrap();
    marketing_analytics::app::period::register_period_inputs(
        &ctx,
        &settings(),
        &Source::Warehouse(warehouse),
        &month,
        None,
    )
    .await
    .unwrap();
    let month_files = planned_files(&ctx, tables::EVENTS).await.unwrap();
    assert_eq!(month_files.len(), 31, "{month_files:?}");
    assert_eq!(
        planned_files(&ctx, tables::PURCHASES).await.unwrap().len(),
        30
    );
}

#[tokio::test]
async fn a_new_file_adds_its_rows_to_its_dates_and_replace_dates_replaces_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_, warehouse) = data_in_warehouse(dir.path()).await;
    let untouched = common::date_files(&warehouse, "clickstream", "2020-09-15").await;
    let old_rows: u64 = common::date_files(&warehouse, "clickstream", "2020-11-11")
        .await
        .iter()
        .map(|f| f.rows)
        .sum();
    assert!(old_rows > 0);
    // New exports holding only one day.
    let new = dir.path().join("new");
    std::fs::create_dir_all(&new).unwrap();
    let write = |name: &str, event: &str| {
        std::fs::write(
            new.join(format!("{name}-clicks.csv")),
            format!("userId,eventId,eventType,eventTime,attributes\nu,{event},app_open,2020-11-11 10:00:00,\"{{'campaign_id': 1, 'channel_id': 'A'}}\"\n"),
        )
        .unwrap();
        std::fs::write(
            new.join(format!("{name}-purchases.csv")),
            "purchaseId,purchaseTime,billingCost,isConfirmed\np,2020-11-11 10:00:01,1.00,True\n",
        )
        .unwrap();
        (
            new.join(format!("{name}-clicks.csv")).display().to_string(),
            new.join(format!("{name}-purchases.csv"))
                .display()
                .to_string(),
        )
    };
    let (c, p) = write("a", "e1");
    let report = convert(&settings(), &c, &p, &warehouse).await.unwrap();
    assert_eq!(
        report.clickstream_dates,
        vec![("2020-11-11".to_string(), 1)]
    );
    let rows = |files: &[delta::DataFile]| files.iter().map(|f| f.rows).sum::<u64>();
    let added = common::date_files(&warehouse, "clickstream", "2020-11-11").await;
    assert_eq!(rows(&added), old_rows + 1, "the date keeps its rows");
    assert_eq!(
        common::date_files(&warehouse, "clickstream", "2020-09-15").await,
        untouched
    );
    // With --replace-dates the date holds the new file's rows alone.
    let (c, p) = write("b", "e2");
    let replace = Settings {
        replace_dates: true,
        ..settings()
    };
    convert(&replace, &c, &p, &warehouse).await.unwrap();
    let replaced = common::date_files(&warehouse, "clickstream", "2020-11-11").await;
    assert_eq!(rows(&replaced), 1);
    assert_eq!(
        common::date_files(&warehouse, "clickstream", "2020-09-15").await,
        untouched
    );
    let ctx = session_context(2);
    assert!(
        register_stored_projection(&ctx, &settings(), &warehouse, &Period::all())
            .await
            .unwrap()
    );
}

/// A conversion stores the full pipeline's projection; a period reads only its own dates of
/// it, and the input tables at the versions it was computed from.
#[tokio::test]
async fn the_stored_projection_is_the_full_pipelines_and_names_the_versions_it_was_computed_from() {
    let dir = tempfile::tempdir().unwrap();
    let (g, warehouse) = data_in_warehouse(dir.path()).await;
    let full = dir.path().join("full");
    run_all(
        &settings(),
        &g.clickstream_dir.display().to_string(),
        &g.purchases_dir.display().to_string(),
        &full,
    )
    .await
    .unwrap();
    let ctx = session_context(2);
    assert!(
        register_stored_projection(&ctx, &settings(), &warehouse, &Period::all())
            .await
            .unwrap()
    );
    let stored = ctx
        .sql(&format!(
            "SELECT * FROM {} ORDER BY purchaseId",
            tables::PROJECTION
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let (full_projection, _, _) = common::read_outputs(&full);
    common::assert_same_text(
        "stored projection",
        &canonical::projection_csv(&stored).unwrap(),
        &full_projection,
    );

    // A month reads that month's files of the projection and nothing else.
    let month = Period::parse(Some("2020-09-01"), Some("2020-09-30"), None, 1).unwrap();
    assert!(
        register_stored_projection(&ctx, &settings(), &warehouse, &month)
            .await
            .unwrap()
    );
    let files = planned_files(&ctx, tables::PROJECTION).await.unwrap();
    assert_eq!(files.len(), 30, "{files:?}");
    assert!(
        files.iter().all(|f| f.contains("projection/date=2020-09-")),
        "{files:?}"
    );

    // A commit to an input table outside a conversion (one that stopped before storing its
    // projection) is not read: the period reads the versions the projection names.
    let snapshot = Snapshot::resolve(&ctx, &warehouse, Read::default())
        .await
        .unwrap();
    let location = table_dir(&warehouse, TableKind::Clickstream)
        .display()
        .to_string();
    let mut table = delta::open(&ctx, &location, delta::AsOf::Latest)
        .await
        .unwrap()
        .unwrap();
    let some = delta::files(&table).await.unwrap().remove(0);
    delta::commit(
        &mut table,
        delta::Change {
            add: vec![],
            remove: vec![some],
            properties: Default::default(),
            app_metadata: Default::default(),
        },
    )
    .await
    .unwrap();
    let after = Snapshot::resolve(&ctx, &warehouse, Read::default())
        .await
        .unwrap();
    assert_eq!(after, snapshot);
    assert!(table.version().unwrap() > snapshot.clickstream);
    assert!(
        register_stored_projection(&ctx, &settings(), &warehouse, &month)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn weekly_projection_adds_up_to_the_period() {
    let dir = tempfile::tempdir().unwrap();
    let (_, warehouse) = data_in_warehouse(dir.path()).await;
    let q4 = Period::quarter("2020-Q4", 1).unwrap();
    assert_eq!(
        (format_date(q4.from), format_date(q4.to)),
        ("2020-10-01".into(), "2020-12-31".into())
    );
    let source = Source::Warehouse(warehouse);
    let weekly = weekly_job(&settings(), &source, &q4, &dir.path().join("weekly"))
        .await
        .unwrap();
    // From the stored projection as computed from the partitions.
    let recompute = Settings {
        stored_projection: false,
        ..settings()
    };
    let recomputed = weekly_job(&recompute, &source, &q4, &dir.path().join("weekly-2"))
        .await
        .unwrap();
    let pretty = |b: &[datafusion::arrow::array::RecordBatch]| {
        datafusion::arrow::util::pretty::pretty_format_batches(b)
            .unwrap()
            .to_string()
    };
    common::assert_same_text("weekly", &pretty(&recomputed), &pretty(&weekly));
    let ctx = period_context(&settings(), &source, &q4).await.unwrap();
    let totals = ctx
        .sql("SELECT COUNT(*) AS n, COUNT(*) FILTER (WHERE isConfirmed) AS c FROM projection")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::Int64Type;
    let n = totals[0].column(0).as_primitive::<Int64Type>().value(0);
    let c = totals[0].column(1).as_primitive::<Int64Type>().value(0);
    let sum = |name: &str| -> i64 {
        weekly
            .iter()
            .map(|b| {
                b.column_by_name(name)
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .iter()
                    .flatten()
                    .sum::<i64>()
            })
            .sum()
    };
    assert_eq!(sum("purchases"), n);
    assert_eq!(sum("confirmedPurchases"), c);
    let weeks: std::collections::BTreeSet<String> = weekly
        .iter()
        .flat_map(|b| {
            let c = b
                .column_by_name("isoWeek")
                .unwrap()
                .as_string::<i32>()
                .clone();
            (0..c.len()).map(move |i| c.value(i).to_string())
        })
        .collect();
    assert!(
        weeks.contains("2020-W40") && weeks.contains("2020-W48"),
        "{weeks:?}"
    );
    assert!(dir
        .path()
        .join("weekly")
        .join(layout::WEEKLY)
        .join("part-00000.parquet")
        .is_file());
}

#[tokio::test]
async fn projection_partitioned_by_date_holds_the_same_rows_and_feeds_the_marts() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        users: 1500,
        files: 2,
        seed: 5,
        ..Options::default()
    };
    let g = generate(&opts, &dir.path().join("data")).unwrap();
    let (clicks, purchases) = (
        g.clickstream_dir.display().to_string(),
        g.purchases_dir.display().to_string(),
    );
    let flat = dir.path().join("flat");
    run_all(&settings(), &clicks, &purchases, &flat)
        .await
        .unwrap();
    let parted = dir.path().join("parted");
    let partitioned = Settings {
        partition_by_date: true,
        ..settings()
    };
    run_all(&partitioned, &clicks, &purchases, &parted)
        .await
        .unwrap();
    let projection = parted.join(layout::PROJECTION);
    let dates: Vec<String> = std::fs::read_dir(&projection)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("date="))
        .collect();
    assert!(dates.len() > 30, "{dates:?}");
    // The dataset folder holds Parquet files and its _SUCCESS, the job's summary in it.
    let marker =
        marketing_analytics::storage::claim::Marker::read(&projection.join("_SUCCESS")).unwrap();
    assert!(marker.summary.unwrap()["counts"]["attributed_purchases"].as_u64() > Some(0));
    let others: Vec<_> = std::fs::read_dir(&projection)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "_SUCCESS" && !n.starts_with("date="))
        .collect();
    assert!(others.is_empty(), "{others:?}");
    let mut all = Vec::new();
    for d in &dates {
        all.extend(read_parquet(&projection.join(d)).unwrap());
    }
    let (flat_projection, flat_campaigns, flat_channels) = common::read_outputs(&flat);
    common::assert_same_text(
        "projection",
        &canonical::projection_csv(&all).unwrap(),
        &flat_projection,
    );
    let (campaigns, channels) = canonical_marts(&parted);
    common::assert_same_text("top campaigns", &campaigns, &flat_campaigns);
    common::assert_same_text("top channels", &channels, &flat_channels);
}

#[tokio::test]
async fn a_period_from_raw_exports_quarantines_bad_rows_or_fails_on_them() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(
        &Options {
            users: 800,
            files: 2,
            seed: 8,
            days: 20,
            ..Options::default()
        },
        &dir.path().join("data"),
    )
    .unwrap();
    let period = Period::parse(Some("2020-09-01"), Some("2020-09-05"), None, 1).unwrap();
    let raw = |c: &Path| Source::Raw {
        clickstream: c.display().to_string(),
        purchases: g.purchases_dir.display().to_string(),
    };
    let clean = dir.path().join("clean");
    period_job(&settings(), &raw(&g.clickstream_dir), &period, &clean)
        .await
        .unwrap();
    // The same exports plus one file with a bad row.
    let dirty = dir.path().join("dirty-clickstream");
    std::fs::create_dir(&dirty).unwrap();
    for f in std::fs::read_dir(&g.clickstream_dir).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dirty.join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        dirty.join("late.csv"),
        "userId,eventId,eventType,eventTime,attributes\nu1,zz1,app_open,2020-09-02 25:61:00,\n",
    )
    .unwrap();

    let err = period_job(
        &settings(),
        &raw(&dirty),
        &period,
        &dir.path().join("failed"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("late.csv:2"), "{err}");
    assert!(!dir.path().join("failed").exists());

    let quarantined = dir.path().join("quarantined");
    let settings = Settings {
        on_bad_rows: marketing_analytics::input::BadRows::Quarantine,
        ..settings()
    };
    period_job(&settings, &raw(&dirty), &period, &quarantined)
        .await
        .unwrap();
    let rejected =
        std::fs::read_to_string(quarantined.join("_rejected").join("clickstream.csv")).unwrap();
    assert!(
        rejected.contains("late.csv,2,") && rejected.contains("2020-09-02 25:61:00"),
        "{rejected}"
    );
    for mart in [top_campaigns::MART, top_channels::MART] {
        let read = |d: &Path| read_parquet(&d.join(mart.name())).unwrap();
        assert_eq!(read(&quarantined), read(&clean), "{}", mart.name());
    }
    // --max-bad-rows holds for a period too: nothing is committed past it.
    let strict = Settings {
        max_bad_rows: Some(marketing_analytics::input::BadRowLimit::Count(0)),
        ..settings
    };
    let limited = dir.path().join("limited");
    let err = period_job(&strict, &raw(&dirty), &period, &limited)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("clickstream: 1 of") && err.contains("late.csv:2"),
        "{err}"
    );
    assert!(!limited.exists());
}

/// No hidden date range: purchases of any year from 0001 to 9999 reach the stored projection
/// and a period, as they reach `run`.
#[tokio::test]
async fn the_stored_projection_keeps_every_year_from_0001_to_9999() {
    let dir = tempfile::tempdir().unwrap();
    let mut clicks = String::from("userId,eventId,eventType,eventTime,attributes\n");
    let mut purchases = String::from("purchaseId,purchaseTime,billingCost,isConfirmed\n");
    let years = ["0001", "1899", "3000", "9999"];
    for (i, year) in years.iter().enumerate() {
        clicks.push_str(&format!(
            "u{i},o{i},app_open,{year}-12-31 10:00:00,\"{{'campaign_id': {i}, 'channel_id': 'A'}}\"\n\
             u{i},b{i},purchase,{year}-12-31 10:01:00,\"{{'purchase_id': 'p{i}'}}\"\n"
        ));
        purchases.push_str(&format!("p{i},{year}-12-31 10:01:00,1.00,True\n"));
    }
    std::fs::write(dir.path().join("clicks.csv"), clicks).unwrap();
    std::fs::write(dir.path().join("purchases.csv"), purchases).unwrap();
    let (c, p) = (
        dir.path().join("clicks.csv").display().to_string(),
        dir.path().join("purchases.csv").display().to_string(),
    );
    let warehouse = dir.path().join("warehouse");
    let report = convert(&settings(), &c, &p, &warehouse).await.unwrap();
    assert_eq!(report.projection_rows, 4);
    let run = run_all(&settings(), &c, &p, &dir.path().join("run"))
        .await
        .unwrap();
    assert_eq!(run.summary.counts.attributed_purchases, 4);
    let ctx = session_context(2);
    assert!(
        register_stored_projection(&ctx, &settings(), &warehouse, &Period::all())
            .await
            .unwrap()
    );
    let rows = ctx
        .table(tables::PROJECTION)
        .await
        .unwrap()
        .count()
        .await
        .unwrap();
    assert_eq!(rows, 4);
    let last = Period::quarter("9999-Q4", 0).unwrap();
    assert_eq!(format_date(last.to), "9999-12-31");
    let marts = period_job(
        &settings(),
        &Source::Warehouse(warehouse.clone()),
        &last,
        &dir.path().join("period"),
    )
    .await
    .unwrap();
    let campaigns = &marts[0].1;
    assert_eq!(campaigns.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    // The weekly projection too (DataFusion's date_trunc ends in 2262).
    let weeks = weekly_job(
        &settings(),
        &Source::Warehouse(warehouse.clone()),
        &last,
        &dir.path().join("weekly"),
    )
    .await
    .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&weeks)
        .unwrap()
        .to_string();
    assert!(text.contains("| 9999-W52 | 9999-12-27 |"), "{text}");
}

/// `period` and `weekly` write `summary.json`: the period, where the data came from, the rows
/// read per file (raw exports) and the rows written.
#[tokio::test]
async fn period_and_weekly_write_a_summary_of_what_they_read_and_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let clicks = dir.path().join("clicks.csv");
    let purchases = dir.path().join("purchases.csv");
    std::fs::write(
        &clicks,
        "userId,eventId,eventType,eventTime,attributes\n\
         u1,o1,app_open,2020-09-01 10:00:00,\"{'campaign_id': 1, 'channel_id': 'A'}\"\n\
         u1,b1,purchase,2020-09-01 10:01:00,\"{'purchase_id': 'p1'}\"\n",
    )
    .unwrap();
    std::fs::write(
        &purchases,
        "purchaseId,purchaseTime,billingCost,isConfirmed\np1,2020-09-01 10:01:00,1.00,True\n",
    )
    .unwrap();
    let (c, p) = (
        clicks.display().to_string(),
        purchases.display().to_string(),
    );
    let day = Period::parse(None, None, Some("2020-09-01"), 1).unwrap();
    let read = |out: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(out.join(layout::SUMMARY)).unwrap()).unwrap()
    };
    let raw = dir.path().join("raw");
    let source = Source::Raw {
        clickstream: c.clone(),
        purchases: p.clone(),
    };
    period_job(&settings(), &source, &day, &raw).await.unwrap();
    let s = read(&raw);
    assert_eq!(s["job"], "period");
    assert_eq!(
        (s["from"].as_str(), s["to"].as_str()),
        (Some("2020-09-01"), Some("2020-09-01"))
    );
    assert_eq!(s["projection"], "computed");
    assert_eq!(s["input_files"]["clickstream"][&c]["rows"], 2);
    assert_eq!(s["input_files"]["purchases"][&p]["rows"], 1);
    assert_eq!(s["outputs"]["top_campaigns"], 1);
    assert_eq!(s["outputs"]["top_channels"], 1);
    let warehouse = dir.path().join("warehouse");
    convert(&settings(), &c, &p, &warehouse).await.unwrap();
    let weekly = dir.path().join("weekly");
    weekly_job(
        &settings(),
        &Source::Warehouse(warehouse.clone()),
        &day,
        &weekly,
    )
    .await
    .unwrap();
    let s = read(&weekly);
    assert_eq!(s["job"], "weekly");
    assert_eq!(s["projection"], "stored");
    assert_eq!(s["source"]["warehouse"], warehouse.display().to_string());
    assert!(s.get("input_files").is_none());
    assert_eq!(s["outputs"]["weekly"], 1);
}
