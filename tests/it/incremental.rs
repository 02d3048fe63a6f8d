//! The stored projection updated incrementally: each conversion computes again only what its
//! rows can change (rules 1–5 across old and new rows), and the result equals
//! `convert --recompute` row for row. Hand-written rows hold each way a change reaches an
//! old row; a generated dataset holds the whole, and "one more day" rewrites only its dates.

use std::path::Path;
use std::process::Command;

use crate::common::{CLICKSTREAM_HEADER, PURCHASES_HEADER};
use marketing_analytics::app::convert::{convert, ConvertReport};
use marketing_analytics::app::period::{register_stored_projection, Period};
use marketing_analytics::app::projection::Update;
use marketing_analytics::app::Settings;
use marketing_analytics::canonical::field;
use marketing_analytics::engine::session_context;
use marketing_analytics::generate::{generate, Options};

fn settings() -> Settings {
    Settings {
        threads: 2,
        ..Settings::default()
    }
}

fn ev(user: &str, id: &str, kind: &str, at: &str, attrs: &str) -> String {
    format!("{user},{id},{kind},2020-09-{at},{}\n", field(attrs))
}

fn open(user: &str, id: &str, at: &str, campaign: &str) -> String {
    let attrs = format!("{{'campaign_id': '{campaign}', 'channel_id': 'ch-{campaign}'}}");
    ev(user, id, "app_open", at, &attrs)
}

fn buy(user: &str, id: &str, at: &str, purchase: &str) -> String {
    ev(
        user,
        id,
        "purchase",
        at,
        &format!("{{'purchase_id': '{purchase}'}}"),
    )
}

fn pr(id: &str, at: &str) -> String {
    format!("{id},2020-09-{at},1.00,True\n")
}

/// Writes one conversion's files (`name.csv` in `dir/c` and `dir/p`) and converts them.
async fn convert_rows(
    dir: &Path,
    warehouse: &Path,
    name: &str,
    clicks: &[String],
    purchases: &[String],
) -> ConvertReport {
    let (c, p) = (dir.join("c"), dir.join("p"));
    for (to, header, rows) in [
        (&c, CLICKSTREAM_HEADER, clicks),
        (&p, PURCHASES_HEADER, purchases),
    ] {
        std::fs::create_dir_all(to).unwrap();
        std::fs::write(
            to.join(format!("{name}.csv")),
            format!("{header}{}", rows.concat()),
        )
        .unwrap();
    }
    let (c, p) = (c.display().to_string(), p.display().to_string());
    convert(&settings(), &c, &p, warehouse).await.unwrap()
}

/// The stored projection: `purchaseId sessionId campaignId` per row, in purchaseId order.
async fn attributed(warehouse: &Path) -> Vec<String> {
    let ctx = session_context(2);
    assert!(
        register_stored_projection(&ctx, &settings(), warehouse, &Period::all())
            .await
            .unwrap()
    );
    let sql = "SELECT purchaseId || ' ' || sessionId || ' ' || coalesce(campaignId, '-') \
        FROM projection ORDER BY purchaseId";
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let mut rows = Vec::new();
    for b in &batches {
        let col = datafusion::arrow::compute::cast(
            b.column(0),
            &datafusion::arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let col = datafusion::arrow::array::AsArray::as_string::<i32>(&col);
        rows.extend(col.iter().map(|v| v.unwrap().to_string()));
    }
    rows
}

/// The whole stored projection in canonical text.
async fn stored(warehouse: &Path) -> String {
    crate::common::stored_projection(&settings(), warehouse).await
}

/// The projection of `warehouse` computed from everything (`convert --recompute` of a copy,
/// with inputs it has converted already).
async fn recomputed(warehouse: &Path, inputs: &Path) -> String {
    let copy = warehouse.with_file_name(format!(
        "{}-recomputed",
        warehouse.file_name().unwrap().to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&copy);
    assert!(Command::new("cp")
        .arg("-r")
        .arg(warehouse)
        .arg(&copy)
        .status()
        .unwrap()
        .success());
    let recompute = Settings {
        stored_projection: false,
        ..settings()
    };
    let (c, p) = (inputs.join("c"), inputs.join("p"));
    let report = convert(
        &recompute,
        &c.display().to_string(),
        &p.display().to_string(),
        &copy,
    )
    .await
    .unwrap();
    assert_eq!(report.projection_update, Update::Full);
    stored(&copy).await
}

#[tokio::test]
async fn each_way_new_rows_reach_old_projection_rows_is_computed_again() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("warehouse");
    let first = convert_rows(
        dir.path(),
        &w,
        "a",
        &[
            open("u1", "e1", "01 10:00:00", "c1"),
            buy("u1", "e2", "01 10:05:00", "p1"),
            open("u2", "e10", "01 09:00:00", "c2"),
            buy("u2", "e11", "01 09:30:00", "p2"),
            open("u3", "e20", "01 08:00:00", "c3"),
            buy("u3", "e21", "01 08:10:00", "p3"),
            open("u7", "e40", "03 08:00:00", "c7"),
            buy("u7", "e41", "03 08:10:00", "p7"),
            // u11 carries p1 too, later than e2.
            open("u11", "e80", "01 11:00:00", "c11"),
            buy("u11", "e81", "01 11:30:00", "p1"),
            // u10's earlier row of eventId e70 is kept (rule 4): u9 has no session.
            open("u9", "e70", "05 10:00:00", "c9"),
            buy("u9", "e71", "05 10:10:00", "p9"),
            open("u10", "e70", "05 09:00:00", "c10"),
        ],
        &[
            pr("p1", "01 10:06:00"),
            pr("p3", "01 08:11:00"),
            pr("p7", "03 08:11:00"),
        ],
    )
    .await;
    assert_eq!(first.projection_update, Update::Full);
    assert_eq!(attributed(&w).await, ["p1 e1 c1", "p3 e20 c3", "p7 e40 c7"]);

    // New rows, each reaching an old row another way:
    // - p2's purchases row arrives after its event (u2 is in no new clickstream row);
    // - an app_close of u1 ends e1's session before e2, and u4 carries p1 a day later in a
    //   session of its own: p1 is now attributed by the earliest in-session event left, u11's
    //   (whose rows did not change);
    // - u5 has a row of eventId e20 earlier than u3's, which it replaces (rule 4): u3 has no
    //   session left, so p3 is attributed no more;
    // - p9's purchases row arrives: its event is u9's, outside any session because u10's row
    //   of e70 is the one kept, so p9 is not attributed (u10 must be read to know it);
    // - u6 is new, without purchases; u7 and p7 are untouched, on a date not rewritten.
    let second = convert_rows(
        dir.path(),
        &w,
        "b",
        &[
            ev("u1", "e3", "app_close", "01 10:04:00", ""),
            open("u4", "e30", "02 07:00:00", "c4"),
            buy("u4", "e31", "02 07:30:00", "p1"),
            open("u5", "e20", "01 07:55:00", "c5"),
            open("u6", "e50", "02 12:00:00", "c6"),
        ],
        &[pr("p2", "01 09:31:00"), pr("p9", "05 10:11:00")],
    )
    .await;
    assert_eq!(second.projection_update, Update::Incremental);
    assert_eq!(
        attributed(&w).await,
        ["p1 e80 c11", "p2 e10 c2", "p7 e40 c7"]
    );
    assert_eq!(second.projection_dates, ["2020-09-01"]);
    assert_eq!(stored(&w).await, recomputed(&w, dir.path()).await);

    // The second clickstream file re-exported without u1's app_close: that row is removed,
    // e2 is in session again and, earlier than e81 and e31, attributes p1 again.
    let third = convert_rows(
        dir.path(),
        &w,
        "b",
        &[
            open("u4", "e30", "02 07:00:00", "c4"),
            buy("u4", "e31", "02 07:30:00", "p1"),
            open("u5", "e20", "01 07:55:00", "c5"),
            open("u6", "e50", "02 12:00:00", "c6"),
        ],
        &[pr("p2", "01 09:31:00"), pr("p9", "05 10:11:00")],
    )
    .await;
    assert_eq!(third.changed_files.len(), 1);
    assert_eq!(third.projection_update, Update::Incremental);
    assert_eq!(attributed(&w).await, ["p1 e1 c1", "p2 e10 c2", "p7 e40 c7"]);
    assert_eq!(stored(&w).await, recomputed(&w, dir.path()).await);

    // Rows that change no projection row rewrite no date.
    let fourth = convert_rows(
        dir.path(),
        &w,
        "c",
        &[open("u8", "e60", "04 12:00:00", "c8")],
        &[],
    )
    .await;
    assert_eq!(fourth.projection_update, Update::Incremental);
    assert!(
        fourth.projection_dates.is_empty(),
        "{:?}",
        fourth.projection_dates
    );
    assert_eq!(attributed(&w).await, ["p1 e1 c1", "p2 e10 c2", "p7 e40 c7"]);
}

#[tokio::test]
async fn one_more_day_rewrites_only_the_dates_it_changes_and_equals_a_full_recomputation() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        users: 3_000,
        files: 2,
        seed: 5,
        days: 30,
        ..Options::default()
    };
    let g = generate(&opts, &dir.path().join("data")).unwrap();
    // Each export split at the last days: everything before, then those days.
    let cut = "2020-09-20";
    for (from, table) in [(&g.clickstream_dir, "c"), (&g.purchases_dir, "p")] {
        let mut files: Vec<_> = std::fs::read_dir(from)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for f in files {
            let text = crate::common::read_text(&f);
            let (early, late, _) = crate::common::split_by_date(&text, cut, 0);
            let name = f.file_name().unwrap().to_string_lossy().replace(".gz", "");
            for (batch, text) in [("early", early), ("late", late)] {
                let to = dir.path().join(batch).join(table);
                std::fs::create_dir_all(&to).unwrap();
                std::fs::write(to.join(&name), text).unwrap();
            }
        }
    }
    let w = dir.path().join("warehouse");
    let mut reports = Vec::new();
    for batch in ["early", "late"] {
        let b = dir.path().join(batch);
        let report = convert(
            &settings(),
            &b.join("c").display().to_string(),
            &b.join("p").display().to_string(),
            &w,
        )
        .await
        .unwrap();
        reports.push(report);
    }
    let late = &reports[1];
    assert_eq!(late.projection_update, Update::Incremental);
    let all_dates = reports[0].projection_dates.len();
    assert!(
        !late.projection_dates.is_empty() && late.projection_dates.len() * 3 < all_dates,
        "the last days rewrote {:?} of {all_dates} dates",
        late.projection_dates
    );
    assert!(
        late.projection_dates
            .iter()
            .all(|d| d.as_str() >= "2020-09-18"),
        "only the days the new rows reach: {:?}",
        late.projection_dates
    );
    let truth = std::fs::read_to_string(g.truth_dir.unwrap().join("attribution.csv")).unwrap();
    crate::common::assert_same_text("incremental projection", &stored(&w).await, &truth);
    assert_eq!(
        stored(&w).await,
        recomputed(&w, &dir.path().join("late")).await
    );
}
