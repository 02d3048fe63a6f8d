//! Unit tests of the `sessionize` accumulator: the session rules on hand-written rows, state
//! and merge, out-of-order input.

use super::*;
use datafusion::arrow::array::TimestampMicrosecondArray;

/// (time in seconds, eventId, eventType, campaign, purchase, duplicate)
type Row<'a> = (
    i64,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    bool,
);

fn columns(rows: &[Row]) -> Vec<ArrayRef> {
    vec![
        Arc::new(
            TimestampMicrosecondArray::from(
                rows.iter().map(|r| r.0 * 1_000_000).collect::<Vec<_>>(),
            )
            .with_timezone(UTC),
        ),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.3).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.3.map(|_| "ch")).collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            rows.iter().map(|r| r.4).collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(
            rows.iter().map(|r| r.5).collect::<Vec<_>>(),
        )),
    ]
}

fn run(batches: &[&[Row]]) -> Vec<(String, String, Option<String>)> {
    let mut acc = SessionizeAccumulator::default();
    for b in batches {
        acc.update_batch(&columns(b)).unwrap();
    }
    let mut items = result_items(&acc.evaluate().unwrap()).unwrap();
    items.sort();
    items
}

fn item(id: &str, status: &str, session: Option<&str>) -> (String, String, Option<String>) {
    (
        id.to_string(),
        status.to_string(),
        session.map(str::to_string),
    )
}

const USER: &[Row] = &[
    (5, "b0", "purchase", None, Some("p0"), false),
    (10, "o1", "app_open", Some("1"), None, false),
    (11, "b1", "purchase", None, Some("p1"), false),
    (12, "c1", "app_close", None, None, false),
    (13, "b2", "purchase", None, Some("p2"), false),
    (20, "o2", "app_open", Some("2"), None, false),
    (21, "b3", "purchase", None, Some("p3"), false),
];

fn expected_user() -> Vec<(String, String, Option<String>)> {
    vec![
        item("b0", "outside_session", None),
        item("b1", "in_session", Some("o1")),
        item("b2", "outside_session", None),
        item("b3", "in_session", Some("o2")),
    ]
}

#[test]
fn in_order_input() {
    assert_eq!(run(&[USER]), expected_user());
}

#[test]
fn out_of_order_input_gives_the_same_sessions() {
    let mut reversed = USER.to_vec();
    reversed.reverse();
    assert_eq!(run(&[&reversed]), expected_user());
    let mut shuffled = USER.to_vec();
    shuffled.swap(0, 5);
    shuffled.swap(2, 6);
    assert_eq!(run(&[&shuffled[..3], &shuffled[3..]]), expected_user());
}

#[test]
fn merged_partial_states_equal_one_pass() {
    let mut a = SessionizeAccumulator::default();
    let mut b = SessionizeAccumulator::default();
    a.update_batch(&columns(&USER[4..])).unwrap();
    b.update_batch(&columns(&USER[..4])).unwrap();
    let (sa, sb) = (a.state().unwrap(), b.state().unwrap());
    let states = ScalarValue::iter_to_array(vec![sa[0].clone(), sb[0].clone()]).unwrap();
    let mut merged = SessionizeAccumulator::default();
    merged.merge_batch(&[states]).unwrap();
    let mut items = result_items(&merged.evaluate().unwrap()).unwrap();
    items.sort();
    assert_eq!(items, expected_user());
    assert!(
        merged.size() > merged.events.arena.len(),
        "size() counts the arena"
    );
}

/// The items of group `g` of a `SessionizeGroups` result, sorted.
fn group_items(result: &ArrayRef, g: usize) -> Vec<(String, String, Option<String>)> {
    let mut items = result_items(&ScalarValue::try_from_array(result, g).unwrap()).unwrap();
    items.sort();
    items
}

#[test]
fn groups_accumulator_gives_each_user_its_own_sessions() {
    // Users 0 and 2 have USER's events (2 in reverse order), interleaved in one batch;
    // user 1 has a lone app_close and no purchase.
    let mut rows: Vec<Row> = Vec::new();
    let mut groups: Vec<usize> = Vec::new();
    for (i, r) in USER.iter().enumerate() {
        rows.push(*r);
        groups.push(0);
        rows.push(USER[USER.len() - 1 - i]);
        groups.push(2);
    }
    rows.push((1, "c0", "app_close", None, None, false));
    groups.push(1);

    let mut direct = SessionizeGroups::default();
    direct
        .update_batch(&columns(&rows), &groups, None, 3)
        .unwrap();
    let all = direct.evaluate(EmitTo::All).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(group_items(&all, 0), expected_user());
    assert!(group_items(&all, 1).is_empty());
    assert_eq!(group_items(&all, 2), expected_user());
    assert_eq!(direct.size(), std::mem::size_of::<SessionizeGroups>());

    // The same rows through both two-phase paths: rows turned straight into states (the
    // skipped partial aggregation) and a partial accumulator's state, merged; then emitted
    // in two steps, which renumbers the groups left.
    let half = rows.len() / 2;
    let mut merged = SessionizeGroups::default();
    let converted = merged
        .convert_to_state(&columns(&rows[..half]), None)
        .unwrap();
    merged.merge_batch(&converted, &groups[..half], 3).unwrap();
    let mut partial = SessionizeGroups::default();
    partial
        .update_batch(&columns(&rows[half..]), &groups[half..], None, 3)
        .unwrap();
    let state = partial.state(EmitTo::All).unwrap();
    assert_eq!(state[0].len(), 3, "one state list per group");
    merged.merge_batch(&state, &[0, 1, 2], 3).unwrap();
    let first = merged.evaluate(EmitTo::First(1)).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(group_items(&first, 0), expected_user());
    let rest = merged.evaluate(EmitTo::All).unwrap();
    assert_eq!(rest.len(), 2);
    assert!(group_items(&rest, 0).is_empty());
    assert_eq!(group_items(&rest, 1), expected_user());
}

#[test]
fn groups_accumulator_leaves_out_filtered_rows_but_emits_their_group() {
    let mut rows: Vec<Row> = USER.to_vec();
    rows.push((30, "x", "purchase", None, Some("px"), false));
    let mut groups = vec![0; USER.len()];
    groups.push(1);
    // USER's first purchase (b0) and the lone purchase of group 1 are filtered out.
    let mut keep = vec![true; rows.len()];
    keep[0] = false;
    *keep.last_mut().unwrap() = false;
    let filter = BooleanArray::from(keep);
    let want: Vec<_> = expected_user().into_iter().skip(1).collect();

    let mut acc = SessionizeGroups::default();
    acc.update_batch(&columns(&rows), &groups, Some(&filter), 2)
        .unwrap();
    let out = acc.evaluate(EmitTo::All).unwrap();
    assert_eq!(group_items(&out, 0), want);
    assert!(out.is_valid(1) && group_items(&out, 1).is_empty());

    let mut merged = SessionizeGroups::default();
    let state = merged
        .convert_to_state(&columns(&rows), Some(&filter))
        .unwrap();
    merged.merge_batch(&state, &groups, 2).unwrap();
    let out = merged.evaluate(EmitTo::All).unwrap();
    assert_eq!(group_items(&out, 0), want);
    assert!(group_items(&out, 1).is_empty());
}

#[test]
fn empty_group_yields_an_empty_list() {
    let mut acc = SessionizeAccumulator::default();
    assert!(result_items(&acc.evaluate().unwrap()).unwrap().is_empty());
    let state = acc.state().unwrap();
    let mut merged = SessionizeAccumulator::default();
    merged.merge_batch(&[state[0].to_array().unwrap()]).unwrap();
    assert!(result_items(&merged.evaluate().unwrap())
        .unwrap()
        .is_empty());
}

#[test]
fn ties_open_first_close_last_then_event_id() {
    let rows: &[Row] = &[
        (10, "c", "app_close", None, None, false),
        (10, "b", "purchase", None, Some("p"), false),
        (10, "oB", "app_open", Some("2"), None, false),
        (10, "oA", "app_open", Some("1"), None, false),
    ];
    assert_eq!(run(&[rows]), vec![item("b", "in_session", Some("oB"))]);
}

#[test]
fn duplicates_are_reported_and_never_bound_sessions() {
    let rows: &[Row] = &[
        (10, "o1", "app_open", Some("1"), None, false),
        (11, "c9", "app_close", None, None, true),
        (12, "b1", "purchase", None, Some("p1"), false),
        (12, "b1", "purchase", None, Some("p1"), true),
    ];
    assert_eq!(
        run(&[rows]),
        vec![
            item("b1", "duplicate_event", None),
            item("b1", "in_session", Some("o1")),
            item("c9", "duplicate_event", None),
        ]
    );
}

/// `sessionize_sessions` yields every session (a kept app_open, its own session) beside the
/// same purchase events; a duplicate app_open is not a session.
#[test]
fn with_sessions_every_kept_app_open_is_a_session_of_its_own() {
    let mut acc = SessionizeAccumulator {
        sessions: true,
        ..SessionizeAccumulator::default()
    };
    let mut rows = USER.to_vec();
    rows.push((10, "o1", "app_open", Some("1"), None, true));
    acc.update_batch(&columns(&rows)).unwrap();
    let mut items = result_items(&acc.evaluate().unwrap()).unwrap();
    items.sort();
    let mut want = expected_user();
    want.extend([
        item("o1", "duplicate_event", None),
        item("o1", "session", Some("o1")),
        item("o2", "session", Some("o2")),
    ]);
    want.sort();
    assert_eq!(items, want);
    assert_eq!(
        sessionize_with_sessions_udaf().name(),
        WITH_SESSIONS,
        "the name the session step's SQL calls"
    );
}
