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
    use marketing_analytics::app::{run_all, Settings};
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
    let text =
        marketing_analytics::canonical::top_campaigns_csv(report.mart("top_campaigns")).unwrap();
    assert_eq!(text, "campaignId,revenue\n5,12.50\n");
}

const GOOD: &str = "u1,o1,app_open,2020-09-01 10:00:00,\"{'campaign_id': 1, 'channel_id': 'A'}\"";
const HEADER: &str = "userId,eventId,eventType,eventTime,attributes";

/// Decodes clickstream text in quarantine mode; returns the eventIds decoded and the
/// quarantine file's rows (file, line, reason, row).
fn decode_quarantining(text: &[u8]) -> (Vec<String>, Vec<Vec<Vec<u8>>>) {
    use marketing_analytics::input::RejectSink;
    let dir = tempfile::tempdir().unwrap();
    let sink = RejectSink::new(dir.path().join("rejected.csv"));
    let (batches, stats) =
        decode_text(TableKind::Clickstream, text, b',', "c.csv", Some(&sink)).unwrap();
    let ids: Vec<String> = batches
        .iter()
        .flat_map(|b| strings(b, "eventId"))
        .flatten()
        .collect();
    let rejected = std::fs::read(sink.path()).unwrap_or_default();
    let mut rdr = csv::ReaderBuilder::new().from_reader(rejected.as_slice());
    let rows: Vec<Vec<Vec<u8>>> = rdr
        .byte_records()
        .map(|r| r.unwrap().iter().map(<[u8]>::to_vec).collect())
        .collect();
    assert_eq!(stats.rows, ids.len() as u64 + rows.len() as u64);
    assert_eq!(stats.quarantined, rows.len() as u64);
    (ids, rows)
}

#[test]
fn an_unbalanced_quote_quarantines_exactly_its_own_line() {
    // Five good rows after it, one of them an app_open with its own quotes.
    let bad = "u1,e2,search_product,2020-09-01 10:00:01,\"{'campaign_id': 1}";
    let mut text = format!("{HEADER}\n{GOOD}\n{bad}\n");
    for i in 3..8 {
        text.push_str(&GOOD.replace("o1", &format!("e{i}")));
        text.push('\n');
    }
    let (ids, rows) = decode_quarantining(text.as_bytes());
    assert_eq!(ids, ["o1", "e3", "e4", "e5", "e6", "e7"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][1], b"3");
    assert!(String::from_utf8_lossy(&rows[0][2]).contains("unbalanced quote"));
    assert_eq!(rows[0][3], bad.as_bytes());
}

#[test]
fn crlf_and_cr_files_give_physical_line_numbers_and_rows_byte_for_byte() {
    let bad = "u1,e2,search_product,yesterday,";
    for (form, eol) in [("LF", "\n"), ("CRLF", "\r\n"), ("CR", "\r")] {
        // An empty line before the bad row still counts as a line.
        let text = format!("{HEADER}{eol}{GOOD}{eol}{eol}{bad}{eol}{GOOD}");
        let (ids, rows) = decode_quarantining(text.as_bytes());
        assert_eq!(ids, ["o1", "o1"], "{form}");
        assert_eq!(rows.len(), 1, "{form}");
        assert_eq!(rows[0][1], b"4", "{form}: the bad row is on line 4");
        assert_eq!(
            rows[0][3],
            bad.as_bytes(),
            "{form}: the row as the file has it"
        );
        let err = error_of(TableKind::Clickstream, &text);
        assert!(
            err.starts_with("in.csv:4: column eventTime"),
            "{form}: {err}"
        );
    }
}

#[test]
fn a_quarantined_row_keeps_its_invalid_utf8_bytes() {
    let mut text = format!("{HEADER}\n").into_bytes();
    let bad = b"u\xff1,e9,search_product,2020-09-01 10:00:00,".to_vec();
    text.extend_from_slice(&bad);
    text.push(b'\n');
    let (_, rows) = decode_quarantining(&text);
    assert_eq!(rows[0][3], bad);
}

#[test]
fn a_nested_id_in_attributes_is_a_bad_row() {
    let text = format!(
        "{HEADER}\nu1,o1,app_open,2020-09-01 10:00:00,\"{{'campaign_id': {{'id': 1}}, 'channel_id': 'A'}}\"\n"
    );
    let err = error_of(TableKind::Clickstream, &text);
    assert!(
        err.starts_with("in.csv:2: column attributes: nested value"),
        "{err}"
    );
}

mod files {
    use marketing_analytics::input::files::FileFormat;
    use marketing_analytics::input::source::{decode_file, Ingest};
    use marketing_analytics::input::{resolve, TableKind};
    use std::io::Write;

    const TEXT: &str =
        "purchaseId,purchaseTime,billingCost,isConfirmed\r\np1,2020-09-01 10:00:00,1.00,True\r\n";

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// The rows each file of `dir` decodes to, by file name.
    fn rows_per_file(spec: &str) -> Vec<(String, u64)> {
        let files = resolve(spec, "purchases", None).unwrap();
        let ingest = Ingest::new(TableKind::Purchases, files.clone());
        files
            .iter()
            .map(|f| {
                let mut rows = 0;
                decode_file(&ingest, f, &mut |b| {
                    rows += b.num_rows() as u64;
                    Ok(true)
                })
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                let name = f.path.strip_prefix(spec).unwrap().display().to_string();
                (name, rows)
            })
            .collect()
    }

    #[test]
    fn files_of_any_name_and_compression_are_read_by_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("x.gz"), gzip(TEXT.as_bytes())).unwrap();
        std::fs::write(d.join("a.csv.gzip"), gzip(TEXT.as_bytes())).unwrap();
        std::fs::write(d.join("no_suffix"), TEXT).unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(TEXT.as_bytes()).unwrap();
        std::fs::write(d.join("b.csv.bz2"), bz.finish().unwrap()).unwrap();
        std::fs::write(
            d.join("c.csv.zst"),
            zstd::encode_all(TEXT.as_bytes(), 1).unwrap(),
        )
        .unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(TEXT.as_bytes()).unwrap();
        std::fs::write(d.join("d.csv.xz"), xz.finish().unwrap()).unwrap();
        // Two gzip members, then zero padding (which `gzip -t` accepts).
        let mut padded = gzip(TEXT.as_bytes());
        padded.extend(gzip(b"p2,2020-09-01 10:00:00,1.00,True\r\n"));
        padded.extend([0u8; 512]);
        std::fs::write(d.join("e.csv.gz"), padded).unwrap();
        // Hidden files are left out, as Spark leaves them out.
        std::fs::write(d.join("_SUCCESS"), "").unwrap();
        std::fs::write(d.join(".e.csv.gz.crc"), "x").unwrap();
        let spec = d.display().to_string();
        assert_eq!(
            rows_per_file(&spec),
            [
                ("a.csv.gzip", 1),
                ("b.csv.bz2", 1),
                ("c.csv.zst", 1),
                ("d.csv.xz", 1),
                ("e.csv.gz", 2),
                ("no_suffix", 1),
                ("x.gz", 1)
            ]
            .map(|(n, r)| (n.to_string(), r))
        );
    }

    #[test]
    fn a_parquet_file_without_the_suffix_is_recognised_by_its_magic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("part-0"), b"PAR1....").unwrap();
        let files = resolve(&dir.path().display().to_string(), "purchases", None).unwrap();
        assert_eq!(files[0].format, FileFormat::Parquet);
    }

    #[test]
    fn garbage_after_a_gzip_member_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = gzip(TEXT.as_bytes());
        bytes.extend(b"garbage");
        let path = dir.path().join("p.csv.gz");
        std::fs::write(&path, bytes).unwrap();
        let files = resolve(&path.display().to_string(), "purchases", None).unwrap();
        let ingest = Ingest::new(TableKind::Purchases, files.clone());
        let err = decode_file(&ingest, &files[0], &mut |_| Ok(true))
            .unwrap_err()
            .to_string();
        assert!(err.contains("p.csv.gz") && err.contains("gzip"), "{err}");
    }

    #[test]
    fn symlinked_directories_are_followed_once_and_fifos_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("linked.csv"), TEXT).unwrap();
        std::fs::create_dir(d.join("in")).unwrap();
        std::fs::write(d.join("in/own.csv"), TEXT).unwrap();
        std::os::unix::fs::symlink(other.path(), d.join("in/link")).unwrap();
        // A loop back to the input directory itself.
        std::os::unix::fs::symlink(d.join("in"), d.join("in/loop")).unwrap();
        let fifo = d.join("in/fifo.csv");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let spec = d.join("in").display().to_string();
        let found: Vec<String> = resolve(&spec, "purchases", None)
            .unwrap()
            .iter()
            .map(|f| f.path.strip_prefix(&spec).unwrap().display().to_string())
            .collect();
        assert_eq!(found, ["link/linked.csv", "own.csv"]);
        // Given by name, a FIFO is refused, not waited on.
        let err = resolve(&fifo.display().to_string(), "purchases", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}

/// A Parquet export whose `attributes` is a struct names the file and the column.
#[test]
fn a_parquet_column_that_cannot_be_text_names_the_file_and_the_column() {
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, StructArray};
    use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema};
    use datafusion::parquet::arrow::ArrowWriter;
    use marketing_analytics::input::resolve;
    use marketing_analytics::input::source::{decode_file, Ingest};
    use std::sync::Arc;

    let inner = Fields::from(vec![Field::new("campaign_id", DataType::Int64, true)]);
    let attributes = StructArray::new(
        inner.clone(),
        vec![Arc::new(Int64Array::from(vec![5])) as ArrayRef],
        None,
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("userId", DataType::Utf8, false),
        Field::new("eventId", DataType::Utf8, false),
        Field::new("eventType", DataType::Utf8, false),
        Field::new("eventTime", DataType::Utf8, false),
        Field::new("attributes", DataType::Struct(inner), true),
    ]));
    let text = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            text("u1"),
            text("o1"),
            text("app_open"),
            text("2020-09-01 10:00:00"),
            Arc::new(attributes),
        ],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clicks.parquet");
    let mut w = ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let files = resolve(&path.display().to_string(), "clickstream", None).unwrap();
    let ingest = Ingest::new(TableKind::Clickstream, files.clone());
    let err = decode_file(&ingest, &files[0], &mut |_| Ok(true))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("clicks.parquet") && err.contains("column attributes is Struct"),
        "{err}"
    );
}
