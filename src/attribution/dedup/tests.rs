//! Unit tests of rule 4 by hashing, against `dedup.sql`.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::TreeNode;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use super::*;
use crate::attribution::DEDUP_SQL;
use crate::input::schema::{source_row, EVENTS};

type Row = (
    &'static str,
    &'static str,
    &'static str,
    i64,
    &'static str,
    Option<&'static str>,
    u64,
);

/// userId, eventId, eventType, eventTime, attributes, campaignId, line.
#[rustfmt::skip]
const ROWS: [Row; 13] = [
    // The same eventId in two users, the later row and the rank-1 row are duplicates.
    ("u1", "e1", "app_open", 10, "{}", Some("7"), 1),
    ("u1", "e1", "app_open", 20, "{}", Some("8"), 2),
    ("u2", "e1", "purchase", 10, "{}", None, 3),
    // A tie on time and rank, broken by attributes.
    ("u1", "e2", "purchase", 30, "{b}", Some("b"), 4),
    ("u1", "e2", "purchase", 30, "{a}", Some("a"), 5),
    // A full tie, broken by file order.
    ("u1", "e3", "app_close", 40, "{}", Some("x"), 7),
    ("u1", "e3", "app_close", 40, "{}", Some("y"), 6),
    // A tie on time, broken by rank: the duplicate is of a type sessions ignore.
    ("u1", "e4", "app_open", 50, "{}", Some("9"), 8),
    ("u1", "e4", "search_product", 50, "{}", None, 9),
    // Unique rows: kept if sessions need them.
    ("u2", "e5", "app_open", 5, "{}", Some("1"), 10),
    ("u2", "e6", "view_product_details", 6, "{}", None, 11),
    // The kept row is of a type sessions ignore: only the duplicate app_open is left.
    ("u1", "e7", "search_product", 60, "{}", None, 12),
    ("u1", "e7", "app_open", 70, "{}", Some("3"), 13),
];

/// The canonical UUID standing for a short id of [`ROWS`] ("u1", "e7"), in the same order.
fn uuid_of(name: &str) -> String {
    let b = name.as_bytes();
    format!("{:08x}-0000-4000-8000-{:012x}", b[0], b[1])
}

/// [`ROWS`], with their userIds and eventIds as UUIDs when `uuids` (so that the spill
/// writes them compact) or as the short names.
fn events(uuids: bool) -> RecordBatch {
    let text = |f: fn(&Row) -> &str| {
        let ids = ROWS.iter().map(f);
        Arc::new(match uuids {
            true => StringArray::from_iter_values(ids.map(uuid_of)),
            false => StringArray::from_iter_values(ids),
        }) as ArrayRef
    };
    let none = || Arc::new(StringArray::from_iter(ROWS.iter().map(|_| None::<&str>)));
    RecordBatch::try_new(
        EVENTS.clone(),
        vec![
            text(|r| r.0),
            text(|r| r.1),
            Arc::new(StringArray::from_iter_values(ROWS.iter().map(|r| r.2))),
            Arc::new(
                datafusion::arrow::array::TimestampMicrosecondArray::from_iter_values(
                    ROWS.iter().map(|r| r.3),
                )
                .with_timezone(crate::input::schema::UTC),
            ),
            text(|r| r.4),
            Arc::new(StringArray::from_iter(ROWS.iter().map(|r| r.5))),
            none(),
            none(),
            Arc::new(Int64Array::from_iter_values(
                ROWS.iter().map(|r| source_row(0, r.6)),
            )),
        ],
    )
    .unwrap()
}

/// What [`relevant`] saw.
struct Run {
    /// One line per row: eventId userId eventType eventTime campaignId tieRank copy.
    rows: Vec<String>,
    /// Whether (and in which layout) events were written to disk.
    spilled: Spilled,
    /// The parts that held rows of an eventId crossing parts.
    crossing: usize,
    /// The parts kept in memory once spilling.
    parts_in_memory: usize,
    /// The rows written to disk.
    spilled_rows: usize,
}

/// [`ROWS`] as input partitions of one batch per row, so that the rows of an eventId
/// arrive in different batches.
fn one_per_batch(uuids: bool) -> Vec<Vec<RecordBatch>> {
    (0..ROWS.len())
        .map(|i| vec![events(uuids).slice(i, 1)])
        .collect()
}

/// `relevant_events` from `dedup.sql` (`hash` = None) or by hashing (spilling above
/// `spill_at` held bytes) over the events `input` (input partitions of batches). The ids
/// of [`ROWS`] as UUIDs are written back as the short names.
async fn relevant(
    hash: Option<HashFn>,
    partitions: usize,
    spill_at: usize,
    input: Vec<Vec<RecordBatch>>,
) -> Run {
    let ctx = SessionContext::new_with_config(
        crate::engine::session_config(1).with_target_partitions(partitions),
    );
    crate::engine::register_functions(&ctx);
    let events = Arc::new(MemTable::try_new(EVENTS.clone(), input).unwrap());
    ctx.register_table("events", events.clone()).unwrap();
    let view = ctx.sql(DEDUP_SQL).await.unwrap();
    let table: Arc<dyn TableProvider> = match hash {
        None => view.into_view(),
        Some(hash) => Arc::new(RelevantEvents {
            events,
            schema: Arc::new(view.schema().as_arrow().clone()),
            hash,
            spill_at,
        }),
    };
    ctx.register_table("relevant_events", table).unwrap();
    let sql = "SELECT concat_ws(' ', eventId, userId, eventType, \
               CAST(CAST(eventTime AS BIGINT) AS VARCHAR), coalesce(campaignId, '-'), \
               CAST(tieRank AS VARCHAR), CAST(copy AS VARCHAR)) AS r \
               FROM relevant_events ORDER BY r";
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let batches = datafusion::physical_plan::collect(plan.clone(), ctx.task_ctx())
        .await
        .unwrap();
    let (mut spills, mut crossing, mut compact, mut parts_in_memory) = (0, 0, 0, 0);
    let mut spilled_rows = 0;
    let _ = plan.apply(|node| {
        if node.name() == "DedupEventsExec" {
            let metrics = node.metrics();
            spills += metrics.as_ref().and_then(|m| m.spill_count()).unwrap_or(0);
            spilled_rows += metrics.as_ref().and_then(|m| m.spilled_rows()).unwrap_or(0);
            compact += metrics
                .as_ref()
                .and_then(|m| m.sum_by_name("spilled_compact_rows"))
                .map_or(0, |v| v.as_usize());
            crossing += metrics
                .as_ref()
                .and_then(|m| m.sum_by_name("crossing_parts"))
                .map_or(0, |v| v.as_usize());
            parts_in_memory += metrics
                .and_then(|m| m.sum_by_name("parts_in_memory"))
                .map_or(0, |v| v.as_usize());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let names: HashMap<String, &str> = ROWS
        .iter()
        .flat_map(|r| [(uuid_of(r.0), r.0), (uuid_of(r.1), r.1)])
        .collect();
    let rows = batches
        .iter()
        .flat_map(|b| {
            let rows = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).unwrap();
            let rows = rows.as_string::<i32>();
            (0..rows.len())
                .map(|i| {
                    let words = rows.value(i).split(' ');
                    let words = words.map(|w| names.get(w).copied().unwrap_or(w));
                    words.collect::<Vec<_>>().join(" ")
                })
                .collect::<Vec<_>>()
        })
        .collect();
    // Whether the spill was compact is for the caller to check against `uuids`.
    let spills = match (spills, compact) {
        (0, _) => Spilled::No,
        (_, 0) => Spilled::Held,
        _ => Spilled::Compact,
    };
    Run {
        rows,
        spilled: spills,
        crossing,
        parts_in_memory,
        spilled_rows,
    }
}

#[derive(Debug, PartialEq)]
enum Spilled {
    No,
    Held,
    Compact,
}

#[tokio::test]
async fn the_least_row_of_an_event_id_is_kept_and_every_other_is_a_duplicate() {
    let want = [
        "e1 u1 app_open 10 7 0 1",
        "e1 u1 app_open 20 8 0 2",
        "e1 u2 purchase 10 - 1 2",
        "e2 u1 purchase 30 a 1 1",
        "e2 u1 purchase 30 b 1 2",
        "e3 u1 app_close 40 x 2 2",
        "e3 u1 app_close 40 y 2 1",
        "e4 u1 app_open 50 9 0 1",
        "e4 u1 search_product 50 - 1 2",
        "e5 u2 app_open 5 1 0 1",
        "e7 u1 app_open 70 3 0 2",
    ];
    assert_eq!(
        relevant(None, 2, 0, one_per_batch(false)).await.rows,
        want,
        "dedup.sql"
    );
    assert_eq!(
        relevant(None, 2, 0, one_per_batch(true)).await.rows,
        want,
        "dedup.sql, UUIDs"
    );
    // Short ids spill as held rows, UUIDs in the compact layout (compact.rs).
    for (partitions, uuids) in [(1, false), (3, false), (1, true), (3, true)] {
        for spill_at in [usize::MAX, 0] {
            let how = match (spill_at, uuids) {
                (0, false) => "spilled",
                (0, true) => "spilled compact",
                _ => "in memory",
            };
            let Run { rows, spilled, .. } = relevant(
                Some(event_id_hash),
                partitions,
                spill_at,
                one_per_batch(uuids),
            )
            .await;
            assert_eq!(rows, want, "hashing {how}, {partitions} partitions");
            let expected = match (spill_at, uuids) {
                (0, false) => Spilled::Held,
                (0, true) => Spilled::Compact,
                _ => Spilled::No,
            };
            assert_eq!(spilled, expected, "{how}, {partitions} partitions");
            // Every eventId colliding: all rows take the exact path (spilled: the rows of
            // one hash lie in several parts, so all are ordered before the parts are cut).
            let Run { rows, crossing, .. } =
                relevant(Some(|_| 42), partitions, spill_at, one_per_batch(uuids)).await;
            assert_eq!(
                rows, want,
                "one hash for all {how}, {partitions} partitions"
            );
            // u1 and u2 fall in different parts, so the crossing path really ran.
            assert_eq!(
                crossing > 0,
                spill_at == 0,
                "{crossing} crossing parts {how}"
            );
        }
    }
}

/// userId, eventId, eventType, eventTime, campaignId of [`many_users`].
type ManyRow = (String, String, &'static str, i64, Option<String>);

/// Events of many users (in UUIDs, 256 rows a batch, over two input partitions): each user
/// opens, searches, buys and closes; every 7th user's purchase is written twice, and every
/// 11th user's app_open has the eventId of the previous user's, so that some repeated
/// eventIds lie in two parts.
fn many_users(users: u64) -> Vec<Vec<RecordBatch>> {
    let uuid = |kind: u64, n: u64| format!("{n:08x}-1111-4111-8111-{kind:012x}");
    let mut rows: Vec<ManyRow> = Vec::new();
    for u in 0..users {
        let t = (u * 100) as i64;
        let opened = if u % 11 == 10 { u - 1 } else { u };
        rows.push((
            uuid(1, u),
            uuid(2, opened),
            "app_open",
            t,
            Some(format!("c{}", u % 5)),
        ));
        rows.push((uuid(1, u), uuid(3, u), "search_product", t + 1, None));
        rows.push((uuid(1, u), uuid(4, u), "purchase", t + 2, None));
        if u % 7 == 3 {
            rows.push((uuid(1, u), uuid(4, u), "purchase", t + 5, None));
        }
        rows.push((uuid(1, u), uuid(5, u), "app_close", t + 3, None));
    }
    let batches: Vec<RecordBatch> = rows
        .chunks(256)
        .enumerate()
        .map(|(b, chunk)| {
            let text = |f: &dyn Fn(&ManyRow) -> Option<String>| {
                Arc::new(StringArray::from_iter(chunk.iter().map(f))) as ArrayRef
            };
            RecordBatch::try_new(
                EVENTS.clone(),
                vec![
                    text(&|r| Some(r.0.clone())),
                    text(&|r| Some(r.1.clone())),
                    text(&|r| Some(r.2.to_string())),
                    Arc::new(
                        datafusion::arrow::array::TimestampMicrosecondArray::from_iter_values(
                            chunk.iter().map(|r| r.3),
                        )
                        .with_timezone(crate::input::schema::UTC),
                    ),
                    text(&|_| Some("{}".to_string())),
                    text(&|r| r.4.clone()),
                    text(&|_| None),
                    text(&|_| None),
                    Arc::new(Int64Array::from_iter_values(
                        (0..chunk.len()).map(|i| source_row(0, (b * 256 + i) as u64)),
                    )),
                ],
            )
            .unwrap()
        })
        .collect();
    let half = batches.len() / 2;
    vec![batches[..half].to_vec(), batches[half..].to_vec()]
}

/// Past `spill_at`, only the highest parts go to disk, as many as bring the rows kept in
/// memory back under it; the others are cut in memory, and the result is the same.
#[tokio::test]
async fn events_past_spill_at_spill_only_the_parts_they_need_to() {
    let input = many_users(2000);
    let rows: usize = input.iter().flatten().map(RecordBatch::num_rows).sum();
    let bytes: usize = input
        .iter()
        .flatten()
        .map(|b| b.get_array_memory_size() + b.num_rows() * 8)
        .sum();
    for partitions in [1, 3] {
        let want = relevant(None, partitions, 0, input.clone()).await.rows;
        assert!(
            want.iter().any(|r| r.ends_with(" 2")),
            "duplicates in the data"
        );
        for (spill_at, how) in [(usize::MAX, "in memory"), (0, "all spilled")] {
            let run = relevant(Some(event_id_hash), partitions, spill_at, input.clone()).await;
            assert_eq!(run.rows, want, "{how}, {partitions} partitions");
        }
        // Just past spill_at, as 5M events under a 2 GiB cap: some parts are given up once.
        // (Further past it, every part goes the second time; the small batches here make
        // each part's pieces small, their fixed overheads large.)
        let spill_at = bytes * 19 / 20;
        let parts = partitions * (PARTS / partitions);
        // Every eventId colliding: the crossing rows are read from both places.
        for (hash, how) in [(event_id_hash as HashFn, "hashing"), (|_| 42, "one hash")] {
            let run = relevant(Some(hash), partitions, spill_at, input.clone()).await;
            assert_eq!(
                run.rows, want,
                "{how}, partly spilled, {partitions} partitions"
            );
            assert!(
                0 < run.spilled_rows && run.spilled_rows < rows,
                "{how}: {} of {rows} rows spilled, {partitions} partitions",
                run.spilled_rows
            );
            assert!(
                0 < run.parts_in_memory && run.parts_in_memory < parts,
                "{how}: {} of {parts} parts in memory",
                run.parts_in_memory
            );
            if how == "one hash" {
                // The crossing rows are read from both places, disk and memory.
                assert!(run.crossing > 1, "{} crossing parts", run.crossing);
            }
        }
    }
}

/// Rows gathered by part come out grouped by part, ascending, each part's rows in their
/// order in the batch.
#[test]
fn rows_are_gathered_by_part_in_their_order() {
    let values = UInt64Array::from((0..10u64).collect::<Vec<_>>());
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("v", DataType::UInt64, false)])),
        vec![Arc::new(values)],
    )
    .unwrap();
    let parts = [3u64, 0, 3, 1, 0, 3, 1, 1, 0, 3];
    // Row 4 is left out, as the cut leaves rows out.
    let rows: Vec<u64> = (0..10)
        .filter(|&r| r != 4)
        .map(|r| by_part(parts[r], r))
        .collect();
    let mut pending = vec![Vec::new(); 4];
    add_by_part(&batch, &rows, &mut pending).unwrap();
    let gathered: Vec<Vec<u64>> = pending
        .iter()
        .map(|slices| {
            slices
                .iter()
                .flat_map(|b| b.column(0).as_primitive::<UInt64Type>().values().to_vec())
                .collect()
        })
        .collect();
    assert_eq!(
        gathered,
        vec![vec![1, 8], vec![3, 6, 7], vec![], vec![0, 2, 5, 9]]
    );
    // A part beyond the slices given is an error, not a panic.
    let mut too_few = vec![Vec::new(); 2];
    assert!(add_by_part(&batch, &rows, &mut too_few).is_err());
}
