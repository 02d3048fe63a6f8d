//! Input decoding: column order by name, short rows, CRLF, TSV, both attribute styles, and
//! errors that name the file, line and column.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Decimal128Type, TimestampMicrosecondType};
use marketing_analytics::input::source::decode_text;
use marketing_analytics::input::values::parse_timestamp_micros;
use marketing_analytics::input::TableKind;
use marketing_analytics::Error;

fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let c = batch.column_by_name(name).unwrap().as_string::<i32>();
    (0..c.len())
        .map(|i| (!c.is_null(i)).then(|| c.value(i).to_string()))
        .collect()
}

#[test]
fn columns_are_matched_by_name_and_short_rows_have_empty_attributes() {
    let text = "userId,eventId,eventTime,eventType,attributes\r\n\
                u1,e1,2020-09-01 10:00:00,app_open,\"{'campaign_id': 296, 'channel_id': 'Google Ads'}\"\r\n\
                u1,e2,2020-09-01 1:02:03.5,search_product\r\n\
                u1,e3,2020-09-01 10:05:00,purchase,\"{'purchase_id': 'p1'}\"\r\n\
                u1,e4,2020-09-01 10:06:00,app_close,\r\n";
    let (batches, stats) =
        decode_text(TableKind::Clickstream, text.as_bytes(), b',', "c.csv", None).unwrap();
    assert_eq!((stats.rows, stats.purchase_type_rows), (4, 1));
    let b = &batches[0];
    assert_eq!(
        strings(b, "eventType"),
        ["app_open", "search_product", "purchase", "app_close"].map(|s| Some(s.to_string()))
    );
    assert_eq!(
        strings(b, "attributes")[1],
        Some(String::new()),
        "a short row has empty attributes, no \\r"
    );
    assert_eq!(
        strings(b, "attributes")[3],
        Some(String::new()),
        "no stray \\r reaches a value"
    );
    assert_eq!(strings(b, "campaignId")[0].as_deref(), Some("296"));
    assert_eq!(strings(b, "channelId")[0].as_deref(), Some("Google Ads"));
    assert_eq!(strings(b, "purchaseId")[2].as_deref(), Some("p1"));
    let times = b
        .column_by_name("eventTime")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    assert_eq!(
        Some(times.value(1)),
        parse_timestamp_micros(b"2020-09-01 01:02:03.500000")
    );
}

#[test]
fn tab_separated_purchases_with_thousands_separators() {
    let text = "purchaseId\tpurchaseTime\tbillingCost\tisConfirmed\r\np1\t2020-09-01 10:00:00\t1,000.00\tTrue\r\np2\t2020-09-01 10:00:00\t0.5\tFALSE\r\n";
    let (batches, stats) =
        decode_text(TableKind::Purchases, text.as_bytes(), b'\t', "p.tsv", None).unwrap();
    assert_eq!(stats.rows, 2);
    let cost = batches[0]
        .column_by_name("billingCost")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    assert_eq!((cost.value(0), cost.value(1)), (1_000_000_000, 500_000));
    let confirmed = batches[0]
        .column_by_name("isConfirmed")
        .unwrap()
        .as_boolean();
    assert!(confirmed.value(0) && !confirmed.value(1));
}

fn error_of(kind: TableKind, text: &str) -> String {
    match decode_text(kind, text.as_bytes(), b',', "in.csv", None) {
        Ok(_) => panic!("{text:?} must be refused"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_rows_name_file_line_column_and_reason() {
    let h = "userId,eventId,eventType,eventTime,attributes\n";
    let cases = [
        (
            format!("{h}u,e,app_open,2020-09-01 10:00:00,\nu,e2,app_open,yesterday,\n"),
            "in.csv:3: column eventTime: unparseable timestamp",
        ),
        (
            format!("{h}u,e,purchase,2020-09-01 10:00:00,\n"),
            "in.csv:2: column attributes: purchase event without a purchase_id",
        ),
        (
            format!("{h}u,e,app_open,2020-09-01 10:00:00,{{oops\n"),
            "in.csv:2: column attributes: unparseable attributes",
        ),
        (
            format!("{h},e,app_open,2020-09-01 10:00:00,\n"),
            "in.csv:2: column userId: empty value",
        ),
        (
            format!("{h}u,e,app_open,2020-09-01 10:00:00,,extra\n"),
            "in.csv:2: expected 5 fields as in the header, found 6",
        ),
        (
            format!("{h}u,e,app_open\n"),
            "in.csv:2: expected 5 fields as in the header, found 3",
        ),
    ];
    for (text, want) in cases {
        let got = error_of(TableKind::Clickstream, &text);
        assert!(got.starts_with(want), "got {got:?}, want {want:?}");
    }
    let p = "purchaseId,purchaseTime,billingCost,isConfirmed\n";
    for (row, want) in [
        (
            "p,2020-09-01 10:00:00,-1.00,True",
            "in.csv:2: column billingCost: negative billingCost",
        ),
        (
            "p,2020-09-01 10:00:00,NaN,True",
            "in.csv:2: column billingCost: billingCost is not a decimal number",
        ),
        (
            "p,2020-09-01 10:00:00,1.00,maybe",
            "in.csv:2: column isConfirmed: unknown value",
        ),
    ] {
        let got = error_of(TableKind::Purchases, &format!("{p}{row}\n"));
        assert!(got.starts_with(want), "got {got:?}, want {want:?}");
    }
}

#[test]
fn bad_files_are_refused_with_the_reason() {
    let got = error_of(TableKind::Clickstream, "");
    assert!(got.contains("in.csv: empty file"), "{got}");
    let got = error_of(
        TableKind::Clickstream,
        "userId,eventId,eventType,eventTime\nu,e,app_open,2020-09-01 10:00:00\n",
    );
    assert!(
        got.contains("header lacks clickstream column(s) attributes"),
        "{got}"
    );
    let got = error_of(
        TableKind::Purchases,
        "userId,eventId,eventType,eventTime,attributes\n",
    );
    assert!(
        got.contains("purchaseId, purchaseTime, billingCost, isConfirmed"),
        "{got}"
    );
    assert!(matches!(
        decode_text(TableKind::Purchases, b"", b',', "x", None),
        Err(Error::BadFile { .. })
    ));
}

#[test]
fn invalid_utf8_is_a_bad_row() {
    let mut text = b"userId,eventId,eventType,eventTime,attributes\n".to_vec();
    text.extend_from_slice(b"u\xff,e,app_open,2020-09-01 10:00:00,\n");
    let got = decode_text(TableKind::Clickstream, &text, b',', "in.csv", None)
        .unwrap_err()
        .to_string();
    assert!(
        got.starts_with("in.csv:2: column userId: invalid UTF-8"),
        "{got}"
    );
}

/// Parquet inputs with the exports' columns (typed or as text) give the same results as CSV.
#[tokio::test]
async fn parquet_inputs_work_like_csv() {
    use datafusion::arrow::array::{
        ArrayRef, BooleanArray, Float64Array, StringArray, TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::parquet::arrow::ArrowWriter;
    use marketing_analytics::pipeline::{run_all, Settings};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ts = |s: &str| parse_timestamp_micros(s.as_bytes()).unwrap();
    // Clickstream with eventTime before eventType and a typed timestamp.
    let click_schema = Arc::new(Schema::new(vec![
        Field::new("userId", DataType::Utf8, false),
        Field::new("eventId", DataType::Utf8, false),
        Field::new(
            "eventTime",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("eventType", DataType::Utf8, false),
        Field::new("attributes", DataType::Utf8, true),
    ]));
    let click_cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["u1", "u1", "u1"])),
        Arc::new(StringArray::from(vec!["o1", "b1", "c1"])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            ts("2020-09-01 10:00:00"),
            ts("2020-09-01 10:01:00"),
            ts("2020-09-01 10:02:00"),
        ])),
        Arc::new(StringArray::from(vec!["app_open", "purchase", "app_close"])),
        Arc::new(StringArray::from(vec![
            Some("{'campaign_id': 5, 'channel_id': 'A'}"),
            Some("{'purchase_id': 'p1'}"),
            None,
        ])),
    ];
    let purchase_schema = Arc::new(Schema::new(vec![
        Field::new("purchaseId", DataType::Utf8, false),
        Field::new("purchaseTime", DataType::Utf8, false),
        Field::new("billingCost", DataType::Float64, false),
        Field::new("isConfirmed", DataType::Boolean, false),
    ]));
    let purchase_cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["p1"])),
        Arc::new(StringArray::from(vec!["2020-09-01 10:01:00"])),
        Arc::new(Float64Array::from(vec![12.5])),
        Arc::new(BooleanArray::from(vec![true])),
    ];
    for (name, schema, cols) in [
        ("clicks.parquet", click_schema, click_cols),
        ("purchases.parquet", purchase_schema, purchase_cols),
    ] {
        let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
        let mut w =
            ArrowWriter::try_new(std::fs::File::create(d.join(name)).unwrap(), schema, None)
                .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    let settings = Settings {
        threads: 2,
        ..Settings::default()
    };
    let report = run_all(
        &settings,
        &d.join("clicks.parquet").display().to_string(),
        &d.join("purchases.parquet").display().to_string(),
        &d.join("out"),
    )
    .await
    .unwrap();
    assert_eq!(report.summary.counts.events, 3);
    assert_eq!(report.summary.counts.attributed_purchases, 1);
    let text = marketing_analytics::canonical::top_campaigns_csv(&report.top_campaigns).unwrap();
    assert_eq!(text, "campaignId,revenue\n5,12.50\n");
}
