//! The journey models against a second implementation written here, row by row, sharing
//! nothing with `src/journeys`: it reads the generator's own sessions and conversions (known
//! by construction, not sessionized), builds each path with plain loops, and solves the
//! Markov chain by removing each key and iterating the chain to its fixed point, where the
//! program inverts one matrix. Floats agree within 1e-9 (relative), decimals exactly.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Decimal128Type, Float64Type, Int64Type};
use marketing_analytics::app::{run_all, Settings};
use marketing_analytics::generate::{generate, Mess, Options as GenOptions};
use marketing_analytics::journeys::{Model, Options, PathTransform, Walk};

struct Touch {
    time: i64,
    id: String,
    keys: [Option<String>; 2],
}

struct Conv {
    user: String,
    session: String,
    time: i64,
    cents: i128,
    purchased: i64,
}

fn micros(text: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .and_utc()
        .timestamp_micros()
}

fn cents(text: &str) -> i128 {
    let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
    whole.parse::<i128>().unwrap() * 100 + format!("{frac:0<2}")[..2].parse::<i128>().unwrap()
}

fn read_truth(truth: &Path) -> (BTreeMap<String, Vec<Touch>>, Vec<Conv>) {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let mut users: BTreeMap<String, Vec<Touch>> = BTreeMap::new();
    let mut owner: HashMap<String, String> = HashMap::new();
    let mut r = csv::Reader::from_path(truth.join("sessions.csv")).unwrap();
    for row in r.records() {
        let row = row.unwrap();
        owner.insert(row[1].to_string(), row[0].to_string());
        users.entry(row[0].to_string()).or_default().push(Touch {
            time: micros(&row[2]),
            id: row[1].to_string(),
            keys: [opt(&row[3]), opt(&row[4])],
        });
    }
    for touches in users.values_mut() {
        touches.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    }
    let mut convs = Vec::new();
    let mut r = csv::Reader::from_path(truth.join("conversions.csv")).unwrap();
    for row in r.records() {
        let row = row.unwrap();
        if &row[4] != "true" {
            continue;
        }
        convs.push(Conv {
            user: owner[&row[1]].clone(),
            session: row[1].to_string(),
            time: micros(&row[2]),
            cents: cents(&row[3]),
            purchased: micros(&row[5]),
        });
    }
    (users, convs)
}

/// Keys with their times: the chosen sessions, nulls dropped, the last `steps`.
fn chosen(touches: &[&Touch], dim: usize, steps: usize) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = Vec::new();
    for t in touches {
        if let Some(k) = &t.keys[dim] {
            out.push((k.clone(), t.time));
        }
    }
    if steps > 0 {
        while out.len() > steps {
            out.remove(0);
        }
    }
    out
}

fn transformed(raw: &[(String, i64)], how: PathTransform) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (k, _) in raw {
        let skip = match how {
            PathTransform::Exposure => out.last() == Some(k),
            PathTransform::First => out.iter().any(|x| x == k),
            PathTransform::None => false,
        };
        if !skip {
            out.push(k.clone());
        }
    }
    out
}

#[derive(Default)]
struct Reference {
    /// (model, dimension, key) → (conversions, revenue).
    credits: BTreeMap<(String, String, Option<String>), (f64, f64)>,
    /// (dimension, path) → (conversions, non-conversions, cents).
    paths: BTreeMap<(String, Option<String>), (i64, i64, i128)>,
}

/// The models over everything, or for the purchases of a period (`[from, to)` in
/// microseconds): conversions whose purchaseTime is in it; the non-converting paths judged
/// with the conversions and sessions up to its end, kept when their last session starts in it.
fn reference(
    all_users: &BTreeMap<String, Vec<Touch>>,
    all_convs: &[Conv],
    o: &Options,
    period: Option<(i64, i64)>,
) -> Reference {
    let (from, to) = period.unwrap_or((i64::MIN, i64::MAX));
    let users: BTreeMap<String, Vec<Touch>> = all_users
        .iter()
        .map(|(u, ts)| {
            let kept = ts
                .iter()
                .filter(|t| t.time < to)
                .map(|t| Touch {
                    time: t.time,
                    id: t.id.clone(),
                    keys: t.keys.clone(),
                })
                .collect();
            (u.clone(), kept)
        })
        .collect();
    let users = &users;
    let judging: Vec<&Conv> = all_convs.iter().filter(|c| c.purchased < to).collect();
    let mut out = Reference::default();
    let lookback = o.lookback_micros;
    for (d, dim) in ["campaign", "channel"].into_iter().enumerate() {
        let mut converting: Vec<(Vec<String>, f64, f64)> = Vec::new();
        let mut non_converting: Vec<Vec<String>> = Vec::new();
        let mut empty = (0.0, 0.0);
        let mut keys: BTreeMap<Option<String>, ()> = BTreeMap::new();
        let mut last_conversion: HashMap<&str, usize> = HashMap::new();
        for c in &judging {
            let touches = &users[&c.user];
            let s = touches.iter().position(|t| t.id == c.session).unwrap();
            let e = last_conversion.entry(c.user.as_str()).or_insert(s);
            *e = (*e).max(s);
        }
        for c in judging.iter().filter(|c| (from..to).contains(&c.purchased)) {
            let touches = &users[&c.user];
            let s = touches.iter().position(|t| t.id == c.session).unwrap();
            let mut window: Vec<&Touch> = Vec::new();
            for (j, t) in touches.iter().enumerate() {
                if j < s && t.time >= c.time - lookback {
                    window.push(t);
                }
            }
            window.push(&touches[s]);
            let raw = chosen(&window, d, o.steps);
            let path = transformed(&raw, o.transform);
            let value = c.cents as f64 / 100.0;
            let p = out
                .paths
                .entry((dim.into(), (!path.is_empty()).then(|| path.join(" > "))))
                .or_default();
            p.0 += 1;
            p.2 += c.cents;
            let mut give = |model: &str, key: Option<String>, share: f64| {
                let e = out
                    .credits
                    .entry((model.into(), dim.into(), key))
                    .or_default();
                e.0 += share;
                e.1 += share * value;
            };
            if path.is_empty() {
                for m in &o.models {
                    give(m.name(), None, 1.0);
                }
                keys.insert(None, ());
                empty.0 += 1.0;
                empty.1 += value;
                continue;
            }
            let n = path.len();
            for k in &path {
                keys.insert(Some(k.clone()), ());
            }
            for m in &o.models {
                match m {
                    Model::FirstTouch => give(m.name(), Some(path[0].clone()), 1.0),
                    Model::LastTouch => give(m.name(), Some(path[n - 1].clone()), 1.0),
                    Model::Linear => {
                        for k in &path {
                            give(m.name(), Some(k.clone()), 1.0 / n as f64);
                        }
                    }
                    Model::PositionBased => {
                        for (i, k) in path.iter().enumerate() {
                            let share = if n == 1 {
                                1.0
                            } else if n == 2 {
                                0.5
                            } else if i == 0 || i == n - 1 {
                                0.4
                            } else {
                                0.2 / (n - 2) as f64
                            };
                            give(m.name(), Some(k.clone()), share);
                        }
                    }
                    Model::TimeDecay => {
                        let w: Vec<f64> = raw
                            .iter()
                            .map(|(_, t)| 2f64.powf(-((c.time - t) as f64) / o.half_life_micros))
                            .collect();
                        let total: f64 = w.iter().sum();
                        for ((k, _), w) in raw.iter().zip(&w) {
                            give(m.name(), Some(k.clone()), w / total);
                        }
                    }
                    Model::Markov => {}
                }
            }
            converting.push((path, 1.0, value));
        }
        for (user, touches) in users {
            let start = last_conversion
                .get(user.as_str())
                .map(|s| s + 1)
                .unwrap_or(0);
            let rest: Vec<&Touch> = touches.iter().skip(start).collect();
            let Some(last) = rest.last() else { continue };
            if !(from..to).contains(&last.time) {
                continue;
            }
            let window: Vec<&Touch> = rest
                .iter()
                .copied()
                .filter(|t| t.time >= last.time - lookback)
                .collect();
            let path = transformed(&chosen(&window, d, o.steps), o.transform);
            if path.is_empty() {
                continue;
            }
            out.paths
                .entry((dim.into(), Some(path.join(" > "))))
                .or_default()
                .1 += 1;
            non_converting.push(path);
        }
        if o.models.contains(&Model::Markov) {
            let effects = removal_effects(&converting, &non_converting);
            let total: f64 = keys.keys().flatten().map(|k| effects[k]).sum();
            let (n, v) = converting
                .iter()
                .fold((0.0, 0.0), |(n, v), c| (n + c.1, v + c.2));
            for key in keys.keys() {
                let credit = match key {
                    Some(k) => (effects[k] / total * n, effects[k] / total * v),
                    None => empty,
                };
                out.credits
                    .insert(("markov".into(), dim.into(), key.clone()), credit);
            }
        }
        // Zero credits for keys a model gave nothing.
        for m in &o.models {
            for key in keys.keys() {
                out.credits
                    .entry((m.name().into(), dim.into(), key.clone()))
                    .or_default();
            }
        }
    }
    out
}

/// RE per key: the chain's conversion probability from start, with each key's transitions
/// sent to null, by iterating p ← Q p + r from 0 until it stops changing.
fn removal_effects(
    converting: &[(Vec<String>, f64, f64)],
    non_converting: &[Vec<String>],
) -> HashMap<String, f64> {
    const START: &str = "\u{0}start";
    const CONV: &str = "\u{0}conversion";
    const NULL: &str = "\u{0}null";
    let mut counts: HashMap<String, HashMap<String, f64>> = HashMap::new();
    let mut add = |path: &[String], end: &str| {
        let mut from = START.to_string();
        for k in path.iter().map(String::as_str).chain([end]) {
            *counts.entry(from).or_default().entry(k.into()).or_default() += 1.0;
            from = k.to_string();
        }
    };
    for (p, _, _) in converting {
        add(p, CONV);
    }
    for p in non_converting {
        add(p, NULL);
    }
    let solve = |removed: Option<&str>| -> f64 {
        let mut p: HashMap<&str, f64> = HashMap::new();
        for _ in 0..100_000 {
            let mut change: f64 = 0.0;
            let mut next = HashMap::new();
            for (from, tos) in &counts {
                let v = if Some(from.as_str()) == removed {
                    0.0
                } else {
                    let total: f64 = tos.values().sum();
                    tos.iter()
                        .map(|(to, n)| {
                            let after = if to == CONV {
                                1.0
                            } else {
                                p.get(to.as_str()).copied().unwrap_or(0.0)
                            };
                            n / total * after
                        })
                        .sum()
                };
                change = change.max((v - p.get(from.as_str()).copied().unwrap_or(0.0)).abs());
                next.insert(from.as_str(), v);
            }
            p = next;
            if change < 1e-16 {
                break;
            }
        }
        p.get(START).copied().unwrap_or(0.0)
    };
    let total = solve(None);
    counts
        .keys()
        .filter(|k| k.as_str() != START)
        .map(|k| (k.clone(), 1.0 - solve(Some(k)) / total))
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn compare(models: &RecordBatch, paths: &RecordBatch, want: &Reference, what: &str) {
    let text = |b: &RecordBatch, i: usize| b.column(i).as_string::<i32>().clone();
    let (model, dim, key) = (text(models, 0), text(models, 1), text(models, 2));
    let conv = models.column(3).as_primitive::<Float64Type>();
    let rev = models.column(4).as_primitive::<Float64Type>();
    assert_eq!(models.num_rows(), want.credits.len(), "{what}: model rows");
    for i in 0..models.num_rows() {
        let k = (!key.is_null(i)).then(|| key.value(i).to_string());
        let id = (model.value(i).to_string(), dim.value(i).to_string(), k);
        let Some(&(c, r)) = want.credits.get(&id) else {
            panic!("{what}: the program has {id:?}, the reference does not");
        };
        assert!(
            close(conv.value(i), c) && close(rev.value(i), r),
            "{what}: {id:?}: program {} / {}, reference {c} / {r}",
            conv.value(i),
            rev.value(i)
        );
    }
    let (pd, pp) = (text(paths, 0), text(paths, 1));
    let (pc, pn) = (
        paths.column(2).as_primitive::<Int64Type>(),
        paths.column(3).as_primitive::<Int64Type>(),
    );
    let pr = paths.column(4).as_primitive::<Decimal128Type>();
    let got: BTreeMap<(String, Option<String>), (i64, i64, i128)> = (0..paths.num_rows())
        .map(|i| {
            (
                (
                    pd.value(i).to_string(),
                    (!pp.is_null(i)).then(|| pp.value(i).to_string()),
                ),
                (pc.value(i), pn.value(i), pr.value(i)),
            )
        })
        .collect();
    assert_eq!(got.len(), paths.num_rows(), "{what}: paths are unique");
    assert!(got == want.paths, "{what}: conversion paths differ");
}

async fn pipeline(data: &Path, out: &Path, options: &Options) -> (RecordBatch, RecordBatch) {
    let settings = Settings {
        threads: 2,
        journeys: Some(options.clone()),
        ..Settings::default()
    };
    let report = run_all(
        &settings,
        &data.join("mobile_app_clickstream").display().to_string(),
        &data.join("user_purchases").display().to_string(),
        out,
    )
    .await
    .unwrap();
    let j = report.journeys.unwrap();
    (j.models, j.paths)
}

fn dataset(dir: &Path, users: u64) -> std::path::PathBuf {
    let opts = GenOptions {
        users,
        max_sessions: 8,
        days: 40,
        campaigns: 25,
        mess: Mess::messy(),
        ..GenOptions::default()
    };
    let data = dir.join("data");
    generate(&opts, &data).unwrap();
    data
}

/// Every combination of the options (path transform, steps, lookback, half-life), with a
/// label; `steps` and `lookback` are the short ones to try beside 0 and 30.
fn every_option_combination(steps: usize, lookback: u32) -> Vec<(Options, String)> {
    let mut all = Vec::new();
    for transform in [
        PathTransform::Exposure,
        PathTransform::First,
        PathTransform::None,
    ] {
        for steps in [0, steps] {
            for lookback in [30, lookback] {
                for half_life in [7.0, 0.5] {
                    let o =
                        Options::new(Model::ALL.to_vec(), lookback, steps, transform, half_life);
                    let what = format!(
                        "{transform:?}, steps {steps}, lookback {lookback}, half-life {half_life}"
                    );
                    all.push((o, what));
                }
            }
        }
    }
    assert_eq!(all.len(), 24);
    all
}

#[tokio::test]
async fn every_option_combination_agrees_with_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), 1500);
    let (users, convs) = read_truth(&data.join("truth"));
    for (n, (o, what)) in every_option_combination(2, 2).into_iter().enumerate() {
        let (models, paths) = pipeline(&data, &dir.path().join(format!("o{n}")), &o).await;
        compare(&models, &paths, &reference(&users, &convs, &o, None), &what);
    }
}

/// On 100,000 users, every option combination: the attribution is computed once (the options
/// change only the journeys) and the models of each combination from its tables.
#[tokio::test]
async fn a_hundred_thousand_users_agree_with_the_reference_for_every_option_combination() {
    use marketing_analytics::attribution::{self, dedup::Dedup, Engine, Materialize};
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), 100_000);
    let (users, convs) = read_truth(&data.join("truth"));
    assert!(users.len() >= 100_000 && convs.len() > 10_000);
    let ctx = marketing_analytics::engine::session_context(2);
    let inputs = attribution::Inputs {
        clickstream: marketing_analytics::input::resolve(
            &data.join("mobile_app_clickstream").display().to_string(),
            "clickstream",
            None,
        )
        .unwrap(),
        purchases: marketing_analytics::input::resolve(
            &data.join("user_purchases").display().to_string(),
            "purchases",
            None,
        )
        .unwrap(),
    };
    attribution::extract(&ctx, &inputs, 2, None, None).unwrap();
    attribution::transform_keeping_sessions(
        &ctx,
        Engine::Udaf,
        &Materialize::Memory,
        Dedup::IN_MEMORY,
    )
    .await
    .unwrap();
    // Both walks: the users split across the cores (as a run here), one sorted stream (as
    // from a cluster).
    for (i, (o, what)) in every_option_combination(3, 3).into_iter().enumerate() {
        let walk = [Walk::Partitioned, Walk::OneStream][i % 2];
        let j = marketing_analytics::journeys::transform(&ctx, &o, &[], None, walk)
            .await
            .unwrap();
        let what = format!("100k users, {walk:?}: {what}");
        compare(
            &j.models,
            &j.paths,
            &reference(&users, &convs, &o, None),
            &what,
        );
    }
}

#[tokio::test]
async fn a_period_agrees_with_the_reference_for_that_period() {
    use marketing_analytics::app::period::{period_job, Period, Source};
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), 3000);
    let (users, convs) = read_truth(&data.join("truth"));
    // Days 12 to 18 of the 40 generated (from 2020-08-25), paths reaching 5 days back.
    let day = |d: i32| marketing_analytics::calendar::parse_date("2020-08-25").unwrap() + d;
    let period = Period::new(day(12), day(18), 2).unwrap();
    let o = Options::new(Model::ALL.to_vec(), 5, 0, PathTransform::Exposure, 7.0);
    let settings = Settings {
        threads: 2,
        journeys: Some(o.clone()),
        ..Settings::default()
    };
    let source = Source::Raw {
        clickstream: data.join("mobile_app_clickstream").display().to_string(),
        purchases: data.join("user_purchases").display().to_string(),
    };
    let out = dir.path().join("period");
    period_job(&settings, &source, &period, &out).await.unwrap();
    let read = |name: &str| {
        let batches = marketing_analytics::storage::output::read_parquet(&out.join(name)).unwrap();
        datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
    };
    let micros = |d: i32| i64::from(d) * 86_400_000_000;
    let want = reference(
        &users,
        &convs,
        &o,
        Some((micros(period.from), micros(period.to + 1))),
    );
    assert!(
        want.paths.values().any(|p| p.0 > 0) && want.paths.values().any(|p| p.1 > 0),
        "the period has conversions and non-converting paths"
    );
    compare(
        &read("attribution_models"),
        &read("conversion_paths"),
        &want,
        "period",
    );
}

/// The settings of the warehouse periods' tests: every model, paths reaching 4 days back.
fn every_model_looking_back_4_days() -> Settings {
    Settings {
        threads: 2,
        journeys: Some(Options::new(
            Model::ALL.to_vec(),
            4,
            0,
            PathTransform::Exposure,
            7.0,
        )),
        ..Settings::default()
    }
}

#[tokio::test]
async fn a_period_with_models_from_the_warehouse_equals_raw_exports_and_keeps_its_marts() {
    use marketing_analytics::app::convert::convert;
    use marketing_analytics::app::period::{period_job, Period, Source};
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), 1500);
    let (clicks, purchases) = (
        data.join("mobile_app_clickstream").display().to_string(),
        data.join("user_purchases").display().to_string(),
    );
    let warehouse = dir.path().join("wh");
    convert(&Settings::default(), &clicks, &purchases, &warehouse)
        .await
        .unwrap();
    let day = |d: i32| marketing_analytics::calendar::parse_date("2020-08-25").unwrap() + d;
    let period = Period::new(day(15), day(21), 2).unwrap();
    let settings = every_model_looking_back_4_days();
    let mut results = Vec::new();
    for (name, source) in [
        (
            "raw",
            Source::Raw {
                clickstream: clicks.clone(),
                purchases: purchases.clone(),
            },
        ),
        ("warehouse", Source::Warehouse(warehouse.clone())),
    ] {
        let out = dir.path().join(name);
        let marts = period_job(&settings, &source, &period, &out).await.unwrap();
        let read = |name: &str| {
            marketing_analytics::storage::output::read_parquet(&out.join(name)).unwrap()
        };
        let marts: Vec<_> = marts.into_iter().map(|(_, batches)| batches).collect();
        results.push((marts, read("attribution_models"), read("conversion_paths")));
    }
    assert!(results[0].1.iter().map(|b| b.num_rows()).sum::<usize>() > 0);
    assert_eq!(
        results[0], results[1],
        "the warehouse's period differs from the raw exports'"
    );
    // The marts are the period's purchases' alone: those of the stored projection.
    let plain = period_job(
        &Settings::default(),
        &Source::Warehouse(warehouse.clone()),
        &period,
        &dir.path().join("plain"),
    )
    .await
    .unwrap();
    let plain: Vec<_> = plain.into_iter().map(|(_, batches)| batches).collect();
    assert_eq!(results[1].0, plain, "the marts of a period with models");
}

/// `period --models` from a warehouse reads the purchases' partitions from the period's start
/// less the look-back and one day (a conversion's T, its purchase event's time, may fall the
/// day before its purchaseTime), the clickstream's from one day earlier still (`--lookback`, for
/// sessions crossing midnight), both to the period's end, and no other.
#[tokio::test]
async fn a_period_with_models_reads_only_the_partitions_its_paths_can_reach() {
    use marketing_analytics::app::convert::convert;
    use marketing_analytics::app::period::{period_context, planned_files, Period, Source};
    use marketing_analytics::calendar::{format_date, parse_date};
    use marketing_analytics::input::TableKind;
    use marketing_analytics::storage::warehouse::table_dir;
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), 300);
    let warehouse = dir.path().join("wh");
    convert(
        &Settings::default(),
        &data.join("mobile_app_clickstream").display().to_string(),
        &data.join("user_purchases").display().to_string(),
        &warehouse,
    )
    .await
    .unwrap();
    let day = |d: i32| parse_date("2020-08-25").unwrap() + d;
    let period = Period::new(day(15), day(21), 1).unwrap();
    let settings = every_model_looking_back_4_days();
    let ctx = period_context(&settings, &Source::Warehouse(warehouse.clone()), &period)
        .await
        .unwrap();
    for (table, kind, first) in [
        ("events", TableKind::Clickstream, day(9)),
        ("purchases", TableKind::Purchases, day(10)),
    ] {
        let files = planned_files(&ctx, table).await.unwrap();
        let mut dates: Vec<String> = files
            .iter()
            .map(|f| {
                let at = f.find("date=").unwrap_or_else(|| panic!("{f}")) + 5;
                f[at..at + 10].to_string()
            })
            .collect();
        dates.sort();
        dates.dedup();
        // Every partition of those dates (a date without rows has none).
        let want: Vec<String> = (first..=day(21))
            .map(format_date)
            .filter(|d| {
                table_dir(&warehouse, kind)
                    .join(format!("date={d}"))
                    .is_dir()
            })
            .collect();
        assert!(want.len() >= 8, "{table}: {want:?}");
        assert_eq!(dates, want, "{table} partitions read");
    }
}

/// `models` on a run's projection and clickstream gives the run's models, byte for byte, and
/// refuses a projection the clickstream did not produce.
#[tokio::test]
async fn models_of_a_stored_projection_equal_the_runs_and_refuse_another_clickstream() {
    use marketing_analytics::app::models::models_job;
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), 1500);
    let options = Options {
        spend: Some(
            data.join("marketing_spend/marketing_spend.csv")
                .display()
                .to_string(),
        ),
        ..Options::new(Model::ALL.to_vec(), 10, 3, PathTransform::First, 2.0)
    };
    let run = dir.path().join("run");
    let (models, paths) = pipeline(&data, &run, &options).await;
    let settings = Settings {
        threads: 2,
        journeys: Some(options),
        ..Settings::default()
    };
    let projection = run.join("purchases_attribution").display().to_string();
    let clicks = data.join("mobile_app_clickstream").display().to_string();
    let out = dir.path().join("models");
    let j = models_job(&settings, &projection, &clicks, &out)
        .await
        .unwrap();
    assert!(models.num_rows() > 0 && paths.num_rows() > 0);
    assert_eq!(j.models, models, "attribution_models");
    assert_eq!(j.paths, paths, "conversion_paths");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let ran: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["journeys"], ran["journeys"]);

    // The clickstream of other users: the projection's sessions are not in it.
    let other = dir.path().join("other");
    generate(
        &GenOptions {
            users: 50,
            seed: 99,
            ..GenOptions::default()
        },
        &other,
    )
    .unwrap();
    let e = models_job(
        &settings,
        &projection,
        &other.join("mobile_app_clickstream").display().to_string(),
        &dir.path().join("refused"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("are attributed to sessions that the clickstream"),
        "{e}"
    );
    assert!(!dir.path().join("refused").exists());
}
