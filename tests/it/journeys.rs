//! Journey attribution (README "Journey attribution"): each model on hand-written journeys
//! with hand-computed credits, the conversion paths, the summary's counts, and the same
//! results whatever the engine, thread count or memory cap.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Decimal128Type, Float64Type, Int64Type};
use marketing_analytics::app::{run_all, Settings};
use marketing_analytics::attribution::Engine;
use marketing_analytics::canonical::field;
use marketing_analytics::journeys::{Model, Options, PathTransform};

const CLICK_HEADER: &str = "userId,eventId,eventType,eventTime,attributes\n";
const PURCHASE_HEADER: &str = "purchaseId,purchaseTime,billingCost,isConfirmed\n";

fn ev(user: &str, id: &str, kind: &str, day: u32, time: &str, attrs: &str) -> String {
    format!(
        "{user},{id},{kind},2020-09-{day:02} {time},{}\n",
        field(attrs)
    )
}

/// A session: its app_open (campaign and channel, or no attributes), then its app_close.
fn session(user: &str, id: &str, day: u32, keys: Option<(u32, &str)>) -> String {
    let attrs = keys
        .map(|(c, ch)| format!("{{'campaign_id': {c}, 'channel_id': '{ch}'}}"))
        .unwrap_or_default();
    ev(user, id, "app_open", day, "10:00:00", &attrs)
        + &ev(user, &format!("{id}x"), "app_close", day, "11:00:00", "")
}

/// A session with a purchase event at 10:05.
fn buying(user: &str, id: &str, day: u32, keys: Option<(u32, &str)>, purchase: &str) -> String {
    let attrs = keys
        .map(|(c, ch)| format!("{{'campaign_id': {c}, 'channel_id': '{ch}'}}"))
        .unwrap_or_default();
    ev(user, id, "app_open", day, "10:00:00", &attrs)
        + &ev(
            user,
            &format!("{id}b"),
            "purchase",
            day,
            "10:05:00",
            &format!("{{\"purchase_id\": \"{purchase}\"}}"),
        )
        + &ev(user, &format!("{id}x"), "app_close", day, "11:00:00", "")
}

/// The journeys of the tests:
/// - u1: campaign 1 / A on day 1, 2 / B on day 2, 2 / B on day 3 buying p1 (100.00), 2 / B on
///   day 5 buying p4, which is not confirmed: no conversion, so a non-converting path.
/// - u2: 3 / A on day 1, never buys (a non-converting path).
/// - u3: 1 / A on day 3 buying p2 (50.00), then 4 / C on day 4 (a non-converting path).
/// - u4: a session without campaign or channel buying p3 (10.00): an empty path.
fn fixture() -> (String, String) {
    let clicks = [
        session("u1", "s1", 1, Some((1, "A"))),
        session("u1", "s2", 2, Some((2, "B"))),
        buying("u1", "s3", 3, Some((2, "B")), "p1"),
        buying("u1", "s5", 5, Some((2, "B")), "p4"),
        session("u2", "s4", 1, Some((3, "A"))),
        buying("u3", "s6", 3, Some((1, "A")), "p2"),
        session("u3", "s7", 4, Some((4, "C"))),
        buying("u4", "s8", 3, None, "p3"),
    ]
    .concat();
    let purchases = [
        "p1,2020-09-03 10:06:00,100.00,True\n",
        "p2,2020-09-03 10:06:00,50.00,True\n",
        "p3,2020-09-03 10:06:00,10.00,True\n",
        "p4,2020-09-05 10:06:00,7.00,False\n",
    ]
    .concat();
    (
        format!("{CLICK_HEADER}{clicks}"),
        format!("{PURCHASE_HEADER}{purchases}"),
    )
}

struct Outcome {
    models: RecordBatch,
    paths: RecordBatch,
    summary: serde_json::Value,
}

async fn run_with(
    clicks: &str,
    purchases: &str,
    options: Options,
    engine: Engine,
    threads: usize,
    memory_limit: Option<usize>,
) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let (c, p) = (
        dir.path().join("clicks.csv"),
        dir.path().join("purchases.csv"),
    );
    std::fs::write(&c, clicks).unwrap();
    std::fs::write(&p, purchases).unwrap();
    let out = dir.path().join("out");
    let settings = Settings {
        engine,
        threads,
        memory_limit,
        journeys: Some(options),
        ..Settings::default()
    };
    let report = run_all(
        &settings,
        &c.display().to_string(),
        &p.display().to_string(),
        &out,
    )
    .await
    .unwrap();
    let journeys = report.journeys.expect("journeys were asked for");
    // What was written is what was returned.
    for (name, batch) in [
        ("attribution_models", &journeys.models),
        ("conversion_paths", &journeys.paths),
    ] {
        let read = marketing_analytics::storage::output::read_parquet(&out.join(name)).unwrap();
        let read = datafusion::arrow::compute::concat_batches(&batch.schema(), &read).unwrap();
        assert_eq!(&read, batch, "{name} as written");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    Outcome {
        models: journeys.models,
        paths: journeys.paths,
        summary,
    }
}

async fn run(options: Options) -> Outcome {
    let (clicks, purchases) = fixture();
    run_with(&clicks, &purchases, options, Engine::Udaf, 2, None).await
}

fn only(models: &[Model]) -> Options {
    Options::new(models.to_vec(), 30, 0, PathTransform::Exposure, 7.0)
}

/// A value as text, `null` for a null.
fn cell(batch: &RecordBatch, column: usize, row: usize) -> String {
    let array = batch.column(column);
    if array.is_null(row) {
        return "null".into();
    }
    datafusion::arrow::util::display::array_value_to_string(array, row).unwrap()
}

/// `model,dimension,touchpoint,conversions,revenue` rows of one dimension, six decimals.
fn credits(batch: &RecordBatch, dimension: &str) -> Vec<String> {
    let text = |i: usize| batch.column(i).as_string::<i32>();
    let float = |i: usize| batch.column(i).as_primitive::<Float64Type>();
    (0..batch.num_rows())
        .filter(|&i| text(1).value(i) == dimension)
        .map(|i| {
            let key = cell(batch, 2, i);
            format!(
                "{},{key},{:.6},{:.6}",
                text(0).value(i),
                float(3).value(i),
                float(4).value(i)
            )
        })
        .collect()
}

#[tokio::test]
async fn first_and_last_touch_credit_the_ends_of_the_exposure_path() {
    let out = run(only(&[Model::FirstTouch, Model::LastTouch])).await;
    // p1's path is 1 > 2 (2 twice, collapsed), p2's 1, p3's empty (the null touchpoint).
    assert_eq!(
        credits(&out.models, "campaign"),
        vec![
            "first_touch,1,2.000000,150.000000",
            "first_touch,null,1.000000,10.000000",
            "first_touch,2,0.000000,0.000000",
            "last_touch,2,1.000000,100.000000",
            "last_touch,1,1.000000,50.000000",
            "last_touch,null,1.000000,10.000000",
        ]
    );
    assert_eq!(
        credits(&out.models, "channel"),
        vec![
            "first_touch,A,2.000000,150.000000",
            "first_touch,null,1.000000,10.000000",
            "first_touch,B,0.000000,0.000000",
            "last_touch,B,1.000000,100.000000",
            "last_touch,A,1.000000,50.000000",
            "last_touch,null,1.000000,10.000000",
        ]
    );
}

#[tokio::test]
async fn linear_and_position_based_split_a_two_step_path_in_halves() {
    let out = run(only(&[Model::Linear, Model::PositionBased])).await;
    assert_eq!(
        credits(&out.models, "campaign"),
        vec![
            "linear,1,1.500000,100.000000",
            "linear,2,0.500000,50.000000",
            "linear,null,1.000000,10.000000",
            "position_based,1,1.500000,100.000000",
            "position_based,2,0.500000,50.000000",
            "position_based,null,1.000000,10.000000",
        ]
    );
}

#[tokio::test]
async fn time_decay_weighs_the_untransformed_path_by_age() {
    let out = run(only(&[Model::TimeDecay])).await;
    // p1 at day 3 10:05 (the purchase event): its path before the transform is 1 (2 days and
    // 5 minutes old), 2 (1 day 5 minutes), 2 (5 minutes); weights 2^(−age / 7 days).
    let age = |days: f64| days + 5.0 / 1440.0;
    let w = [age(2.0), age(1.0), age(0.0)].map(|a: f64| (-a / 7.0).exp2());
    let total: f64 = w.iter().sum();
    let (c1, c2) = (w[0] / total, (w[1] + w[2]) / total);
    assert_eq!(
        credits(&out.models, "campaign"),
        vec![
            format!("time_decay,1,{:.6},{:.6}", c1 + 1.0, c1 * 100.0 + 50.0),
            format!("time_decay,2,{:.6},{:.6}", c2, c2 * 100.0),
            "time_decay,null,1.000000,10.000000".to_string(),
        ]
    );
}

#[tokio::test]
async fn markov_credits_keys_by_their_removal_effect() {
    let out = run(only(&[Model::Markov])).await;
    // Paths: 1 > 2 and 1 convert; 2 (u1's session after p1, whose p4 is not confirmed), 3 and
    // 4 do not. start → 1 2/5, → 2, 3, 4 1/5 each; 1 → 2 ½, 1 → conversion ½; 2 → conversion
    // ½, 2 → null ½. So p(2) = ½, p(1) = ¾ and P = (2·¾ + ½) / 5 = 0.4. Without 1: 0.1
    // (RE ¾); without 2: p(1) = ½, P = 0.2 (RE ½). The two conversions with a path (150.00)
    // split ¾ : ½, that is 0.6 : 0.4; p3's empty path keeps its own.
    assert_eq!(
        credits(&out.models, "campaign"),
        vec![
            "markov,1,1.200000,90.000000",
            "markov,2,0.800000,60.000000",
            "markov,null,1.000000,10.000000",
        ]
    );
}

#[tokio::test]
async fn the_lookback_window_cuts_a_path_to_its_own_session() {
    let out = run(Options::new(
        vec![Model::FirstTouch],
        1,
        0,
        PathTransform::Exposure,
        7.0,
    ))
    .await;
    // With one day, p1's earlier sessions (1 day 5 minutes and more before it) are left out.
    assert_eq!(
        credits(&out.models, "campaign"),
        vec![
            "first_touch,2,1.000000,100.000000",
            "first_touch,1,1.000000,50.000000",
            "first_touch,null,1.000000,10.000000",
        ]
    );
}

#[tokio::test]
async fn conversion_paths_count_conversions_non_conversions_and_exact_revenue() {
    let out = run(only(&[Model::Linear])).await;
    let p = &out.paths;
    let text = |i: usize| p.column(i).as_string::<i32>();
    let int = |i: usize| p.column(i).as_primitive::<Int64Type>();
    let money = p.column(4).as_primitive::<Decimal128Type>();
    let rows: Vec<String> = (0..p.num_rows())
        .filter(|&i| text(0).value(i) == "campaign")
        .map(|i| {
            let path = cell(p, 1, i);
            format!(
                "{path},{},{},{}",
                int(2).value(i),
                int(3).value(i),
                money.value_as_string(i)
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            "1,1,0,50.00",
            "1 > 2,1,0,100.00",
            "null,1,0,10.00",
            "2,0,1,0.00",
            "3,0,1,0.00",
            "4,0,1,0.00",
        ]
    );
    assert_eq!(
        out.summary["journeys"]["campaign"],
        serde_json::json!({
            "conversions": 3,
            "converting_paths": 2,
            "non_converting_paths": 3,
            "empty_paths": 1,
        })
    );
    // Linear only: 1, 2 and null per dimension.
    assert_eq!(out.summary["outputs"]["attribution_models"], 6);
}

#[tokio::test]
async fn the_models_are_the_same_for_every_engine_thread_count_and_memory_cap() {
    let (clicks, purchases) = fixture();
    let first = run_with(
        &clicks,
        &purchases,
        Options::default(),
        Engine::Udaf,
        1,
        None,
    )
    .await;
    for (engine, threads, cap) in [
        (Engine::Sql, 4, None),
        (Engine::Udaf, 3, Some(1usize << 30)),
    ] {
        let other = run_with(
            &clicks,
            &purchases,
            Options::default(),
            engine,
            threads,
            cap,
        )
        .await;
        assert_eq!(
            other.models, first.models,
            "{engine} with {threads} threads"
        );
        assert_eq!(other.paths, first.paths, "{engine} with {threads} threads");
    }
}

/// The spend of the tests: campaign 1 spends 1,000.50 + 99.50, campaign 9 spends without any
/// conversion (its rows get zero credits), a row without campaign counts for its channel only,
/// and a negative amount is a bad row.
const SPEND: &str = "Date,campaignId,channelId,spend\n\
    2020-09-01,1,A,\"1,000.50\"\n\
    2020-09-02,1,,99.50\n\
    2020-09-02,9,B,20\n\
    2020-09-03,,A,5.25\n\
    2020-09-03,2,B,-1.00\n";

async fn run_with_spend(
    text: &[u8],
    name: &str,
    quarantine: bool,
) -> marketing_analytics::Result<Outcome> {
    run_with_spend_limit(text, name, quarantine, None).await
}

async fn run_with_spend_limit(
    text: &[u8],
    name: &str,
    quarantine: bool,
    max_bad_rows: Option<marketing_analytics::input::BadRowLimit>,
) -> marketing_analytics::Result<Outcome> {
    let (clicks, purchases) = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (c, p, s) = (
        dir.path().join("clicks.csv"),
        dir.path().join("purchases.csv"),
        dir.path().join(name),
    );
    std::fs::write(&c, clicks).unwrap();
    std::fs::write(&p, purchases).unwrap();
    std::fs::write(&s, text).unwrap();
    let out = dir.path().join("out");
    let settings = Settings {
        threads: 2,
        on_bad_rows: if quarantine {
            marketing_analytics::input::BadRows::Quarantine
        } else {
            marketing_analytics::input::BadRows::Fail
        },
        max_bad_rows,
        journeys: Some(Options {
            spend: Some(s.display().to_string()),
            ..only(&[Model::Linear])
        }),
        ..Settings::default()
    };
    let report = run_all(
        &settings,
        &c.display().to_string(),
        &p.display().to_string(),
        &out,
    )
    .await?;
    let journeys = report.journeys.expect("journeys were asked for");
    if quarantine {
        let rejected = std::fs::read_to_string(out.join("_rejected/spend.csv")).unwrap();
        assert!(
            rejected.contains(&format!("{name},6,column spend: negative spend")),
            "{rejected}"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    Ok(Outcome {
        models: journeys.models,
        paths: journeys.paths,
        summary,
    })
}

#[tokio::test]
async fn spend_gives_each_key_its_exact_spend_and_roas_in_every_file_form() {
    let crlf = SPEND.replace('\n', "\r\n");
    let gz = |t: &str| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(t.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    for (name, text) in [
        ("spend.csv", SPEND.as_bytes().to_vec()),
        ("spend_crlf.csv", crlf.as_bytes().to_vec()),
        ("spend.csv.gz", gz(SPEND)),
        ("spend_crlf.csv.gz", gz(&crlf)),
    ] {
        let out = run_with_spend(&text, name, true).await.unwrap();
        let m = &out.models;
        let roas = m.column(6).as_primitive::<Float64Type>();
        let rows: Vec<String> = (0..m.num_rows())
            .map(|i| {
                let r = if roas.is_null(i) {
                    "null".into()
                } else {
                    format!("{:.6}", roas.value(i))
                };
                format!("{},{},{},{r}", cell(m, 1, i), cell(m, 2, i), cell(m, 5, i))
            })
            .collect();
        // Linear revenue: campaign 1 100.00, 2 50.00, null 10.00; channel A 100.00, B 50.00.
        assert_eq!(
            rows,
            vec![
                format!("campaign,1,1100.00,{:.6}", 100.0 / 1100.0),
                "campaign,2,null,null".to_string(),
                "campaign,null,null,null".to_string(),
                "campaign,9,20.00,0.000000".to_string(),
                format!("channel,A,1005.75,{:.6}", 100.0 / 1005.75),
                format!("channel,B,20.00,{:.6}", 50.0 / 20.0),
                "channel,null,null,null".to_string(),
            ],
            "{name}"
        );
        assert_eq!(
            out.summary["input_files"]["spend"]
                .as_object()
                .and_then(|files| files.values().next())
                .cloned(),
            Some(serde_json::json!({"rows": 5, "quarantined": 1, "bytes": text.len()})),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_bad_spend_row_fails_the_run_naming_file_and_line() {
    let Err(e) = run_with_spend(SPEND.as_bytes(), "spend.csv", false).await else {
        panic!("a negative spend was accepted");
    };
    let text = e.to_string();
    assert!(
        text.contains("spend.csv:6: column spend: negative spend"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_spend_rows_past_max_bad_rows_fail_the_run() {
    use marketing_analytics::input::BadRowLimit;
    let Err(e) = run_with_spend_limit(
        SPEND.as_bytes(),
        "spend.csv",
        true,
        Some(BadRowLimit::Count(0)),
    )
    .await
    else {
        panic!("a bad spend row passed --max-bad-rows 0");
    };
    let text = e.to_string();
    assert!(text.contains("spend: 1 of 5 rows were bad"), "{text}");
    // One allowed: the run goes on.
    run_with_spend_limit(
        SPEND.as_bytes(),
        "spend.csv",
        true,
        Some(BadRowLimit::Count(1)),
    )
    .await
    .unwrap();
}
