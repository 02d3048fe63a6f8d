//! The bad-input corpus: every case is run through the real pipeline from files, once with
//! `--on-bad-rows fail` (the run must stop with the expected message naming file and line, and
//! write nothing) and once with `quarantine` (the bad row must appear verbatim in `_rejected/`
//! with its file, line and reason, the good rows must go on, and the counts must say so).
//! File-level problems fail in both modes: a file that cannot be read row by row cannot be
//! accounted for row by row.

use std::path::Path;

use marketing_analytics::app::{layout, run_all, Settings};
use marketing_analytics::input::BadRows;

const CLICK_HEADER: &str = "userId,eventId,eventType,eventTime,attributes\n";
const PURCHASE_HEADER: &str = "purchaseId,purchaseTime,billingCost,isConfirmed\n";
const GOOD_CLICK: &str = "u1,o1,app_open,2020-09-01 10:00:00,\"{'campaign_id': 1, 'channel_id': 'A'}\"\nu1,b1,purchase,2020-09-01 10:01:00,\"{'purchase_id': 'p1'}\"\n";
const GOOD_PURCHASE: &str = "p1,2020-09-01 10:01:00,1.00,True\n";

#[derive(Clone, Copy, PartialEq)]
enum Table {
    Clickstream,
    Purchases,
}

/// What a case is and what must happen.
struct Case {
    name: &'static str,
    table: Table,
    /// The whole content of the bad file; `None` builds header + good rows + `row` + a good row.
    content: Option<Vec<u8>>,
    /// The bad row (for row-level cases).
    row: &'static str,
    /// File name (decides gzip/Parquet handling).
    file: &'static str,
    /// Substring of the error (fail mode) and of the quarantine reason.
    message: &'static str,
    /// Whether a file-level problem (fails in both modes).
    file_level: bool,
}

fn row(name: &'static str, table: Table, row: &'static str, message: &'static str) -> Case {
    Case {
        name,
        table,
        content: None,
        row,
        file: if table == Table::Clickstream {
            "clicks.csv"
        } else {
            "purchases.csv"
        },
        message,
        file_level: false,
    }
}

fn file(
    name: &'static str,
    table: Table,
    file: &'static str,
    content: Vec<u8>,
    message: &'static str,
) -> Case {
    Case {
        name,
        table,
        content: Some(content),
        row: "",
        file,
        message,
        file_level: true,
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn corpus() -> Vec<Case> {
    use Table::*;
    let many_rows = format!("{CLICK_HEADER}{}", GOOD_CLICK.repeat(2000));
    let gz = gzip(many_rows.as_bytes());
    let truncated = gz[..gz.len() / 2].to_vec();
    let mut corrupt = gz.clone();
    for b in corrupt.iter_mut().skip(20).take(200) {
        *b ^= 0x5a;
    }
    vec![
        row(
            "unparseable eventTime",
            Clickstream,
            "u1,e9,search_product,yesterday,",
            "column eventTime: unparseable timestamp",
        ),
        row(
            "impossible date",
            Clickstream,
            "u1,e9,search_product,2020-02-30 10:00:00,",
            "column eventTime: unparseable timestamp",
        ),
        row(
            "timestamp with a zone",
            Clickstream,
            "u1,e9,search_product,2020-09-01 10:00:00+02:00,",
            "column eventTime: unparseable timestamp",
        ),
        row(
            "hour 24",
            Clickstream,
            "u1,e9,search_product,2020-09-01 24:00:00,",
            "column eventTime: unparseable timestamp",
        ),
        row(
            "attributes without closing brace",
            Clickstream,
            "u1,e9,app_open,2020-09-01 10:00:00,\"{'campaign_id': 1\"",
            "column attributes: unparseable attributes",
        ),
        row(
            "attributes bare word",
            Clickstream,
            "u1,e9,app_open,2020-09-01 10:00:00,\"{'campaign_id': abc}\"",
            "column attributes: unparseable attributes",
        ),
        row(
            "attributes not a map",
            Clickstream,
            "u1,e9,app_open,2020-09-01 10:00:00,campaign=1",
            "column attributes: unparseable attributes",
        ),
        row(
            "attributes unknown escape",
            Clickstream,
            "u1,e9,app_open,2020-09-01 10:00:00,\"{'channel_id': 'a\\q'}\"",
            "column attributes: unparseable attributes",
        ),
        row(
            "purchase without purchase_id",
            Clickstream,
            "u1,e9,purchase,2020-09-01 10:02:00,\"{'campaign_id': 1}\"",
            "purchase event without a purchase_id",
        ),
        row(
            "purchase with empty attributes",
            Clickstream,
            "u1,e9,purchase,2020-09-01 10:02:00,",
            "purchase event without a purchase_id",
        ),
        row(
            "purchase_id None",
            Clickstream,
            "u1,e9,purchase,2020-09-01 10:02:00,\"{'purchase_id': None}\"",
            "purchase event without a purchase_id",
        ),
        row(
            "empty userId",
            Clickstream,
            ",e9,search_product,2020-09-01 10:00:00,",
            "column userId: empty value",
        ),
        row(
            "empty eventId",
            Clickstream,
            "u1,,search_product,2020-09-01 10:00:00,",
            "column eventId: empty value",
        ),
        row(
            "empty eventType",
            Clickstream,
            "u1,e9,,2020-09-01 10:00:00,",
            "column eventType: empty value",
        ),
        row(
            "too many fields",
            Clickstream,
            "u1,e9,search_product,2020-09-01 10:00:00,,x",
            "expected 5 fields as in the header, found 6",
        ),
        row(
            "too few fields",
            Clickstream,
            "u1,e9,search_product",
            "expected 5 fields as in the header, found 3",
        ),
        row(
            "invalid UTF-8",
            Clickstream,
            "u\u{fffd}1,e9,search_product,2020-09-01 10:00:00,",
            "column userId: invalid UTF-8",
        ),
        row(
            "unbalanced quote",
            Clickstream,
            "u1,e9,app_open,2020-09-01 10:00:00,\"{'campaign_id': 1}",
            "unbalanced quote",
        ),
        row(
            "nested campaign_id",
            Clickstream,
            "u1,e9,app_open,2020-09-01 10:00:00,\"{'campaign_id': {'id': 1}, 'channel_id': 'A'}\"",
            "column attributes: nested value",
        ),
        row(
            "nested channel_id",
            Clickstream,
            "u1,e9,app_open,2020-09-01 10:00:00,\"{'campaign_id': 1, 'channel_id': ['A']}\"",
            "column attributes: nested value",
        ),
        row(
            "nested purchase_id",
            Clickstream,
            "u1,e9,purchase,2020-09-01 10:02:00,\"{\"\"purchase_id\"\": {\"\"id\"\": \"\"p9\"\"}}\"",
            "column attributes: nested value",
        ),
        row(
            "negative billingCost",
            Purchases,
            "p9,2020-09-01 10:00:00,-5.00,True",
            "column billingCost: negative billingCost",
        ),
        row(
            "NaN billingCost",
            Purchases,
            "p9,2020-09-01 10:00:00,NaN,True",
            "column billingCost: billingCost is not a decimal number",
        ),
        row(
            "billingCost with letters",
            Purchases,
            "p9,2020-09-01 10:00:00,12a.00,True",
            "column billingCost: billingCost is not a decimal number",
        ),
        row(
            "misplaced thousands separators",
            Purchases,
            "p9,2020-09-01 10:00:00,\"1,00.00\",True",
            "column billingCost: billingCost has misplaced thousands separators",
        ),
        row(
            "too many decimals",
            Purchases,
            "p9,2020-09-01 10:00:00,1.0000001,True",
            "column billingCost: billingCost has more than 6 decimal places",
        ),
        row(
            "empty billingCost",
            Purchases,
            "p9,2020-09-01 10:00:00,,True",
            "column billingCost: empty billingCost",
        ),
        row(
            "unknown isConfirmed",
            Purchases,
            "p9,2020-09-01 10:00:00,1.00,yes",
            "column isConfirmed: unknown value \"yes\"",
        ),
        row(
            "empty purchaseId",
            Purchases,
            ",2020-09-01 10:00:00,1.00,True",
            "column purchaseId: empty value",
        ),
        row(
            "unparseable purchaseTime",
            Purchases,
            "p9,09/01/2020,1.00,True",
            "column purchaseTime: unparseable timestamp",
        ),
        row(
            "purchases row too short",
            Purchases,
            "p9,2020-09-01 10:00:00,1.00",
            "expected 4 fields as in the header, found 3",
        ),
        file(
            "empty clickstream file",
            Clickstream,
            "clicks.csv",
            vec![],
            "empty file: expected a header line",
        ),
        file(
            "empty purchases file",
            Purchases,
            "purchases.csv",
            vec![],
            "empty file: expected a header line",
        ),
        file(
            "header without attributes",
            Clickstream,
            "clicks.csv",
            b"userId,eventId,eventType,eventTime\nu,e,app_open,2020-09-01 10:00:00\n".to_vec(),
            "header lacks clickstream column(s) attributes",
        ),
        file(
            "purchases header misspelled",
            Purchases,
            "purchases.csv",
            b"purchaseId,purchaseTime,billingCost,confirmed\n".to_vec(),
            "header lacks purchases column(s) isConfirmed",
        ),
        file(
            "column named twice",
            Clickstream,
            "clicks.csv",
            b"userId,eventId,eventType,eventTime,attributes,userId\n".to_vec(),
            "names column \"userId\" more than once",
        ),
        file(
            "not CSV at all",
            Clickstream,
            "clicks.csv",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01".to_vec(),
            "header lacks clickstream column(s)",
        ),
        file(
            "tab-separated file read as CSV",
            Clickstream,
            "clicks.csv",
            b"userId\teventId\teventType\teventTime\tattributes\n".to_vec(),
            "is the delimiter right",
        ),
        file(
            "truncated gzip",
            Clickstream,
            "clicks.csv.gz",
            truncated,
            "truncated or corrupt file",
        ),
        file(
            "corrupt gzip",
            Clickstream,
            "clicks.csv.gz",
            corrupt,
            "truncated or corrupt file",
        ),
        file(
            "Parquet file that is not Parquet",
            Purchases,
            "purchases.parquet",
            b"PAR1 this is not parquet".to_vec(),
            "not a readable Parquet file",
        ),
    ]
}

/// The forms the real files come in: every case runs in each.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Form {
    Lf,
    Crlf,
    /// CRLF, gzip-compressed: the real exports' own form.
    CrlfGzip,
}

const FORMS: [Form; 3] = [Form::Lf, Form::Crlf, Form::CrlfGzip];

/// A case in a form: its line breaks made CRLF and the file compressed (named `.gz`), unless
/// the case is about a compressed or Parquet file already.
fn in_form(case: &Case, form: Form) -> Case {
    let as_is = case.file.ends_with(".gz") || case.file.ends_with(".parquet");
    let bytes = case.content.clone().unwrap_or_else(|| bad_file(case));
    if as_is || form == Form::Lf {
        return Case {
            content: Some(bytes),
            ..*case
        };
    }
    let mut crlf = Vec::with_capacity(bytes.len() + bytes.len() / 16);
    for b in bytes {
        if b == b'\n' {
            crlf.push(b'\r');
        }
        crlf.push(b);
    }
    match form {
        Form::Crlf => Case {
            content: Some(crlf),
            ..*case
        },
        _ => Case {
            content: Some(gzip(&crlf)),
            file: Box::leak(format!("{}.gz", case.file).into_boxed_str()),
            ..*case
        },
    }
}

/// The bad file of a row-level case: header, good rows, the bad row, a good row.
fn bad_file(case: &Case) -> Vec<u8> {
    let (header, good, after) = match case.table {
        Table::Clickstream => (
            CLICK_HEADER,
            GOOD_CLICK,
            "u1,s1,search_product,2020-09-01 10:03:00,\n",
        ),
        Table::Purchases => (
            PURCHASE_HEADER,
            GOOD_PURCHASE,
            "p2,2020-09-01 10:00:00,2.00,False\n",
        ),
    };
    with_invalid_utf8(
        case,
        format!("{header}{good}{}\n{after}", case.row).into_bytes(),
    )
}

/// The "invalid UTF-8" case's text holds U+FFFD where its file has the byte 0xFF.
fn with_invalid_utf8(case: &Case, mut text: Vec<u8>) -> Vec<u8> {
    if case.name == "invalid UTF-8" {
        let at = text
            .windows(3)
            .position(|w| w == "\u{fffd}".as_bytes())
            .unwrap();
        text.splice(at..at + 3, [0xff]);
    }
    text
}

/// Every case of the corpus in every form.
fn cases() -> Vec<(Case, Form)> {
    corpus()
        .iter()
        .flat_map(|case| FORMS.map(|form| (in_form(case, form), form)))
        .collect()
}

/// Writes the inputs of a case; returns (clickstream path, purchases path).
fn write_inputs(case: &Case, dir: &Path) -> (String, String) {
    let good_click = format!("{CLICK_HEADER}{GOOD_CLICK}");
    let good_purchase = format!("{PURCHASE_HEADER}{GOOD_PURCHASE}");
    let bad = case.content.clone().unwrap_or_else(|| bad_file(case));
    let click_dir = dir.join("clicks");
    let purchase_dir = dir.join("purchases");
    std::fs::create_dir_all(&click_dir).unwrap();
    std::fs::create_dir_all(&purchase_dir).unwrap();
    match case.table {
        Table::Clickstream => {
            std::fs::write(click_dir.join(case.file), &bad).unwrap();
            std::fs::write(purchase_dir.join("purchases.csv"), good_purchase).unwrap();
        }
        Table::Purchases => {
            std::fs::write(click_dir.join("clicks.csv"), good_click).unwrap();
            std::fs::write(purchase_dir.join(case.file), &bad).unwrap();
        }
    }
    (
        click_dir.display().to_string(),
        purchase_dir.display().to_string(),
    )
}

#[test]
fn the_corpus_has_at_least_thirty_cases() {
    assert!(corpus().len() >= 30, "{} cases", corpus().len());
    assert_eq!(
        cases().len(),
        3 * corpus().len(),
        "each in LF, CRLF and gzip"
    );
}

#[tokio::test]
async fn fail_mode_stops_with_file_line_and_reason_and_writes_nothing() {
    for (case, form) in cases() {
        let name = format!("{} ({form:?})", case.name);
        let dir = tempfile::tempdir().unwrap();
        let (clicks, purchases) = write_inputs(&case, dir.path());
        let out = dir.path().join("out");
        let settings = Settings {
            threads: 2,
            ..Settings::default()
        };
        let err = match run_all(&settings, &clicks, &purchases, &out).await {
            Ok(_) => panic!("{}: the run must fail", name),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(case.file),
            "{}: error names no file: {err}",
            name
        );
        assert!(
            err.contains(case.message),
            "{}: {err:?} lacks {:?}",
            name,
            case.message
        );
        if !case.file_level {
            // The bad row is always on line 4: header, two good rows (or one), then it.
            let line = if case.table == Table::Clickstream {
                ":4:"
            } else {
                ":3:"
            };
            assert!(
                err.contains(line),
                "{}: error names no line {line}: {err}",
                name
            );
        }
        assert!(!out.exists(), "{}: a failed run left output behind", name);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".out."))
            .collect();
        assert!(
            leftovers.is_empty(),
            "{}: temporary directories left: {leftovers:?}",
            name
        );
    }
}

#[tokio::test]
async fn quarantine_mode_sets_bad_rows_aside_verbatim_and_goes_on() {
    for (case, form) in cases() {
        let name = format!("{} ({form:?})", case.name);
        let dir = tempfile::tempdir().unwrap();
        let (clicks, purchases) = write_inputs(&case, dir.path());
        let out = dir.path().join("out");
        let settings = Settings {
            threads: 2,
            on_bad_rows: BadRows::Quarantine,
            ..Settings::default()
        };
        let result = run_all(&settings, &clicks, &purchases, &out).await;
        if case.file_level {
            let err = result.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                err.contains(case.message),
                "{}: a bad file fails in quarantine mode too: {err:?}",
                name
            );
            continue;
        }
        let report = result.unwrap_or_else(|e| panic!("{}: {e}", name));
        let c = &report.summary.counts;
        let (quarantined, other) = match case.table {
            Table::Clickstream => (c.events_quarantined, c.purchase_rows_quarantined),
            Table::Purchases => (c.purchase_rows_quarantined, c.events_quarantined),
        };
        assert_eq!((quarantined, other), (1, 0), "{}: {c:?}", name);
        assert_eq!(c.attributed_purchases, 1, "{}: the good rows go on", name);
        let table = if case.table == Table::Clickstream {
            "clickstream"
        } else {
            "purchases"
        };
        let rejected =
            std::fs::read(out.join(layout::REJECTED).join(format!("{table}.csv"))).unwrap();
        let rejected = String::from_utf8_lossy(&rejected);
        let mut rdr = csv::Reader::from_reader(rejected.as_bytes());
        let rows: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 1, "{}: {rejected}", name);
        let r = &rows[0];
        assert!(r[0].ends_with(case.file), "{}: file {:?}", name, &r[0]);
        let line = if case.table == Table::Clickstream {
            "4"
        } else {
            "3"
        };
        assert_eq!(&r[1], line, "{}", name);
        assert!(r[2].contains(case.message), "{}: reason {:?}", name, &r[2]);
        let want_raw = String::from_utf8_lossy(&write_raw(&case)).into_owned();
        assert_eq!(&r[3], want_raw, "{}: the row is kept verbatim", name);
        assert!(out.join(layout::PROJECTION).join("_SUCCESS").is_file());
    }
}

/// The bad row exactly as the file has it.
fn write_raw(case: &Case) -> Vec<u8> {
    with_invalid_utf8(case, case.row.as_bytes().to_vec())
}

#[tokio::test]
async fn unknown_event_types_are_not_bad() {
    let dir = tempfile::tempdir().unwrap();
    let case = row(
        "unknown type",
        Table::Clickstream,
        "u1,e9,add_to_wishlist,2020-09-01 10:00:30,",
        "",
    );
    let (clicks, purchases) = write_inputs(&case, dir.path());
    let settings = Settings {
        threads: 2,
        ..Settings::default()
    };
    let report = run_all(&settings, &clicks, &purchases, &dir.path().join("out"))
        .await
        .unwrap();
    assert_eq!(report.summary.counts.events, 4);
    assert_eq!(report.summary.counts.non_purchase_events, 3);
    assert_eq!(report.summary.counts.attributed_purchases, 1);
}

#[tokio::test]
async fn too_many_bad_rows_fail_a_quarantining_job_instead_of_committing() {
    use marketing_analytics::input::BadRowLimit;
    let dir = tempfile::tempdir().unwrap();
    // One bad row of four clickstream rows.
    let case = row("limit", Table::Clickstream, "u1,e9,x,yesterday,", "");
    let (clicks, purchases) = write_inputs(&case, dir.path());
    let quarantine = |limit| Settings {
        threads: 2,
        on_bad_rows: BadRows::Quarantine,
        max_bad_rows: limit,
        ..Settings::default()
    };
    for (limit, passes) in [
        (None, true),
        (Some(BadRowLimit::Count(1)), true),
        (Some(BadRowLimit::Count(0)), false),
        (Some(BadRowLimit::Share(0.5)), true),
        (Some(BadRowLimit::Share(0.1)), false),
    ] {
        let out = dir.path().join(format!("out-{limit:?}"));
        let result = run_all(&quarantine(limit), &clicks, &purchases, &out).await;
        assert_eq!(result.is_ok(), passes, "{limit:?}: {:?}", result.err());
        if !passes {
            let err = result.err().unwrap().to_string();
            assert!(
                err.contains("clickstream: 1 of 4 rows were bad")
                    && err.contains("Nothing was committed")
                    && err.contains("clicks.csv:4: column eventTime"),
                "{err}"
            );
            assert!(!out.exists());
        }
    }
    // A table whose rows are all bad fails even without a limit; 100% accepts it.
    let all_bad = dir.path().join("all-bad");
    std::fs::create_dir_all(&all_bad).unwrap();
    std::fs::write(
        all_bad.join("purchases.csv"),
        format!("{PURCHASE_HEADER}p1,never,1.00,True\np2,never,1.00,True\n"),
    )
    .unwrap();
    let all_bad = all_bad.display().to_string();
    let err = run_all(&quarantine(None), &clicks, &all_bad, &dir.path().join("o"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("purchases: 2 of 2 rows were bad, every row bad"),
        "{err}"
    );
    run_all(
        &quarantine(Some(BadRowLimit::Share(1.0))),
        &clicks,
        &all_bad,
        &dir.path().join("o"),
    )
    .await
    .unwrap();
    // `convert` commits no date either.
    let warehouse = dir.path().join("warehouse");
    let err = marketing_analytics::app::convert::convert(
        &quarantine(Some(BadRowLimit::Count(0))),
        &clicks,
        &purchases,
        &warehouse,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("1 of 4 rows were bad"), "{err}");
    // No data file is left, and no version of the table holds a row.
    let dates: Vec<_> = std::fs::read_dir(warehouse.join("clickstream"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name())
                .filter(|n| n != "_delta_log")
                .collect()
        })
        .unwrap_or_default();
    assert!(dates.is_empty(), "{dates:?}");
}

#[test]
fn max_bad_rows_takes_a_count_or_a_percentage() {
    use marketing_analytics::input::BadRowLimit;
    assert_eq!(BadRowLimit::parse("100"), Ok(BadRowLimit::Count(100)));
    assert_eq!(BadRowLimit::parse("0.5%"), Ok(BadRowLimit::Share(0.005)));
    for bad in ["-1", "lots", "101%", "%"] {
        assert!(BadRowLimit::parse(bad).is_err(), "{bad}");
    }
}
