//! The accumulator at scale: one user with a million events, in the worst order.

use super::*;
use datafusion::arrow::array::TimestampMicrosecondArray;

/// One user with a million events: sessions of open, purchase, close, delivered in two
/// reversed halves (the worst order) through state and merge.
#[test]
fn a_user_with_a_million_events() {
    let n = 1_000_000usize;
    let kinds = ["app_open", "purchase", "app_close"];
    let ids: Vec<String> = (0..n).map(|i| format!("e{i:07}")).collect();
    let mut rows: Vec<usize> = (0..n).collect();
    rows.reverse();
    let column = |rows: &[usize]| -> Vec<ArrayRef> {
        vec![
            Arc::new(
                TimestampMicrosecondArray::from(
                    rows.iter()
                        .map(|&i| i as i64 * 1_000_000)
                        .collect::<Vec<_>>(),
                )
                .with_timezone(UTC),
            ),
            Arc::new(StringArray::from(
                rows.iter().map(|&i| ids[i].as_str()).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|&i| kinds[i % 3]).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|&i| (i % 3 == 0).then_some("7"))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|&i| (i % 3 == 0).then_some("ch"))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|&i| (i % 3 == 1).then(|| ids[i].as_str()))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(BooleanArray::from(vec![false; rows.len()])),
        ]
    };
    let (mut a, mut b) = (
        SessionizeAccumulator::default(),
        SessionizeAccumulator::default(),
    );
    a.update_batch(&column(&rows[..n / 2])).unwrap();
    b.update_batch(&column(&rows[n / 2..])).unwrap();
    let states = ScalarValue::iter_to_array(vec![
        a.state().unwrap().remove(0),
        b.state().unwrap().remove(0),
    ])
    .unwrap();
    let mut merged = SessionizeAccumulator::default();
    merged.merge_batch(&[states]).unwrap();
    assert!(
        merged.size() > 8 * n,
        "size() must report the events held: {}",
        merged.size()
    );
    let items = result_items(&merged.evaluate().unwrap()).unwrap();
    assert_eq!(items.len(), (n + 1) / 3);
    for (id, status, session) in &items {
        let i: usize = id[1..].parse().unwrap();
        assert_eq!(status, "in_session");
        assert_eq!(session.as_deref(), Some(ids[i - 1].as_str()));
    }
}
