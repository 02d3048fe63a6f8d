//! Micro-benchmarks of the hot pieces (figures, not tests): `cargo bench`.
//!
//! - attribute parsing: the JSON and Python-dict styles of the exports' `attributes` column;
//! - row decoding: clickstream and purchases text into Arrow batches;
//! - the `sessionize` accumulator: one user's events, updated and evaluated.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use datafusion::arrow::array::{ArrayRef, BooleanArray, StringArray, TimestampMicrosecondArray};
use datafusion::logical_expr::Accumulator;
use marketing_analytics::input::attributes::parse_attributes;
use marketing_analytics::input::source::decode_text;
use marketing_analytics::input::TableKind;
use marketing_analytics::attribution::udaf::SessionizeAccumulator;

fn attributes(c: &mut Criterion) {
    let mut group = c.benchmark_group("attributes");
    let json = r#"{"campaign_id": "cmp1", "channel_id": "Google Ads"}"#;
    let dict = r#"{'campaign_id': 'cmp1', 'channel_id': 'Google Ads'}"#;
    let doubled = r#"{{""campaign_id"": ""cmp1"", ""channel_id"": ""Google Ads""}}"#;
    let purchase = r#"{"purchase_id": "p-0000123456"}"#;
    for (name, text) in [
        ("json", json),
        ("python_dict", dict),
        ("doubled_braces", doubled),
        ("purchase", purchase),
    ] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| b.iter(|| parse_attributes(black_box(text))));
    }
    group.finish();
}

/// A clickstream export of `users` users, five events each, in the real format.
fn clickstream_text(users: usize) -> Vec<u8> {
    let mut text = String::from("userId,eventId,eventType,eventTime,attributes\n");
    for u in 0..users {
        let t = |s: usize| format!("2020-09-{:02} 10:{:02}:{:02}", 1 + u % 28, s, u % 60);
        text += &format!("u{u},e{u}a,app_open,{},\"{{\"\"campaign_id\"\": \"\"cmp{}\"\", \"\"channel_id\"\": \"\"Google Ads\"\"}}\"\n", t(0), u % 60);
        text += &format!("u{u},e{u}b,search_product,{},\n", t(1));
        text += &format!("u{u},e{u}c,view_product_details,{},\n", t(2));
        text += &format!("u{u},e{u}d,purchase,{},\"{{\"\"purchase_id\"\": \"\"p{u}\"\"}}\"\n", t(3));
        text += &format!("u{u},e{u}e,app_close,{},\n", t(4));
    }
    text.into_bytes()
}

fn purchases_text(rows: usize) -> Vec<u8> {
    let mut text = String::from("purchaseId,purchaseTime,billingCost,isConfirmed\n");
    for p in 0..rows {
        text += &format!(
            "p{p},2020-09-{:02} 10:03:00,{}.{:02},{}\n",
            1 + p % 28,
            p % 500,
            p % 100,
            if p % 3 == 0 { "FALSE" } else { "TRUE" }
        );
    }
    text.into_bytes()
}

fn decoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    let clicks = clickstream_text(20_000);
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("clickstream_100k_rows", |b| {
        b.iter(|| decode_text(TableKind::Clickstream, black_box(&clicks), b',', "bench.csv", None))
    });
    let purchases = purchases_text(100_000);
    group.bench_function("purchases_100k_rows", |b| {
        b.iter(|| decode_text(TableKind::Purchases, black_box(&purchases), b',', "bench.csv", None))
    });
    group.finish();
}

/// One user's events: `sessions` sessions of open, purchase, close, in time order.
fn user_events(sessions: usize) -> Vec<ArrayRef> {
    let n = sessions * 3;
    let kinds = ["app_open", "purchase", "app_close"];
    let ids: Vec<String> = (0..n).map(|i| format!("e{i}")).collect();
    let purchase_ids: Vec<Option<String>> = (0..n)
        .map(|i| (i % 3 == 1).then(|| format!("p{i}")))
        .collect();
    vec![
        Arc::new(TimestampMicrosecondArray::from(
            (0..n as i64).map(|i| i * 1_000_000).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from_iter_values(ids.iter())),
        Arc::new(StringArray::from_iter_values((0..n).map(|i| kinds[i % 3]))),
        Arc::new(StringArray::from(
            (0..n).map(|i| (i % 3 == 0).then_some("cmp1")).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            (0..n).map(|i| (i % 3 == 0).then_some("Google Ads")).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(purchase_ids)),
        Arc::new(BooleanArray::from(vec![false; n])),
    ]
}

fn sessionize(c: &mut Criterion) {
    let mut group = c.benchmark_group("sessionize");
    for sessions in [3usize, 3_000] {
        let columns = user_events(sessions);
        group.throughput(Throughput::Elements((sessions * 3) as u64));
        group.bench_function(format!("user_with_{sessions}_sessions"), |b| {
            b.iter(|| {
                let mut acc = SessionizeAccumulator::default();
                acc.update_batch(black_box(&columns)).ok();
                acc.evaluate().ok()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, attributes, decoding, sessionize);
criterion_main!(benches);
