//! The `sessionize` aggregate function: the session rules (1–3) done by a custom DataFusion
//! aggregate instead of window functions.
//!
//! Grouped by userId, it consumes the user's deduplicated boundary and purchase events (and the
//! duplicate rows, flagged, so they are accounted for) in any order, split over any number of
//! partitions, and yields the user's purchase events with the session each falls in:
//!
//! ```sql
//! SELECT userId, sessionize(eventTime, eventId, eventType, campaignId, channelId, purchaseId, isDuplicate)
//! FROM relevant_events GROUP BY userId
//! ```
//!
//! The result is a list of structs with the columns of the sql engine's `purchase_events`
//! (see [`output_fields`]); the query unnests it. Events are kept in one string arena per group,
//! so a group costs a few allocations however many events it has, and `size()` reports what it
//! holds so DataFusion's memory pool can account for it.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, ListArray, StringArray, StringBuilder,
    StructArray, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, TimestampMicrosecondType};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Expr, Signature, Volatility,
};

use crate::input::schema::TIMESTAMP;

/// The function's SQL name.
pub const NAME: &str = "sessionize";

/// Fields of one input event, in argument order; also the layout of the partial state.
pub fn input_fields() -> Fields {
    Fields::from(vec![
        Field::new("eventTime", TIMESTAMP, false),
        Field::new("eventId", DataType::Utf8, false),
        Field::new("eventType", DataType::Utf8, false),
        Field::new("campaignId", DataType::Utf8, true),
        Field::new("channelId", DataType::Utf8, true),
        Field::new("purchaseId", DataType::Utf8, true),
        Field::new("isDuplicate", DataType::Boolean, false),
    ])
}

/// Fields of one output item: a purchase event or a duplicate row, with its outcome.
pub fn output_fields() -> Fields {
    Fields::from(vec![
        Field::new("eventId", DataType::Utf8, false),
        Field::new("eventType", DataType::Utf8, false),
        Field::new("eventTime", TIMESTAMP, false),
        Field::new("purchaseId", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("sessionId", DataType::Utf8, true),
        Field::new("campaignId", DataType::Utf8, true),
        Field::new("channelId", DataType::Utf8, true),
    ])
}

fn list_of(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(
        DataType::Struct(fields),
        true,
    )))
}

/// The aggregate function.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sessionize {
    signature: Signature,
}

impl Default for Sessionize {
    fn default() -> Self {
        Sessionize {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The function, ready to register on a session context.
pub fn sessionize_udaf() -> AggregateUDF {
    AggregateUDF::from(Sessionize::default())
}

/// `sessionize(...)` for the DataFrame API.
pub fn sessionize(args: Vec<Expr>) -> Expr {
    sessionize_udaf().call(args)
}

impl AggregateUDFImpl for Sessionize {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let want: Vec<DataType> = input_fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        if arg_types.len() != want.len() {
            return plan_err!(
                "{NAME} takes {} arguments (eventTime, eventId, eventType, campaignId, channelId, purchaseId, isDuplicate), got {}",
                want.len(),
                arg_types.len()
            );
        }
        for (i, (got, want)) in arg_types.iter().zip(&want).enumerate() {
            let compatible = match want {
                DataType::Utf8 => matches!(
                    got,
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
                ),
                DataType::Timestamp(_, _) => matches!(got, DataType::Timestamp(_, None)),
                DataType::Boolean => matches!(got, DataType::Boolean),
                _ => false,
            };
            if !compatible {
                return plan_err!("{NAME}: argument {} must be {want}, got {got}", i + 1);
            }
        }
        Ok(want)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(list_of(output_fields()))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<SessionizeAccumulator>::default())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[events]", args.name),
            list_of(input_fields()),
            true,
        ))])
    }
}

/// A string in the accumulator's arena.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    start: u32,
    len: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Open,
    Close,
    Purchase,
    Other,
}

impl Kind {
    fn of(event_type: &str) -> Kind {
        match event_type {
            "app_open" => Kind::Open,
            "app_close" => Kind::Close,
            "purchase" => Kind::Purchase,
            _ => Kind::Other,
        }
    }

    /// Rule 1's tie rank.
    fn rank(self) -> u8 {
        match self {
            Kind::Open => 0,
            Kind::Close => 2,
            _ => 1,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Item {
    time: i64,
    kind: Kind,
    duplicate: bool,
    event_id: Span,
    event_type: Span,
    campaign: Option<Span>,
    channel: Option<Span>,
    purchase: Option<Span>,
}

/// One user's events.
#[derive(Debug, Default)]
pub struct SessionizeAccumulator {
    arena: String,
    items: Vec<Item>,
}

fn strings(a: &ArrayRef, what: &str) -> Result<StringArray> {
    match a.data_type() {
        DataType::Utf8 => Ok(a.as_string::<i32>().clone()),
        other => exec_err!("{NAME}: {what} must be Utf8, got {other}"),
    }
}

impl SessionizeAccumulator {
    fn intern(&mut self, s: &str) -> Result<Span> {
        let start = u32::try_from(self.arena.len());
        let len = u32::try_from(s.len());
        match (start, len) {
            (Ok(start), Ok(len)) if start.checked_add(len).is_some() => {
                self.arena.push_str(s);
                Ok(Span { start, len })
            }
            _ => exec_err!("{NAME}: one user's events hold more than 4 GiB of text"),
        }
    }

    fn text(&self, s: Span) -> &str {
        &self.arena[s.start as usize..(s.start + s.len) as usize]
    }

    fn opt(&mut self, a: &StringArray, i: usize) -> Result<Option<Span>> {
        if a.is_null(i) {
            Ok(None)
        } else {
            self.intern(a.value(i)).map(Some)
        }
    }

    /// Appends events given as the seven input columns.
    fn push_columns(&mut self, columns: &[ArrayRef]) -> Result<()> {
        if columns.len() != 7 {
            return exec_err!("{NAME}: expected 7 columns, got {}", columns.len());
        }
        let time: &TimestampMicrosecondArray = columns[0]
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Execution(format!(
                    "{NAME}: eventTime must be a timestamp(us)"
                ))
            })?;
        let event_id = strings(&columns[1], "eventId")?;
        let event_type = strings(&columns[2], "eventType")?;
        let campaign = strings(&columns[3], "campaignId")?;
        let channel = strings(&columns[4], "channelId")?;
        let purchase = strings(&columns[5], "purchaseId")?;
        let duplicate: &BooleanArray = columns[6].as_boolean_opt().ok_or_else(|| {
            datafusion::error::DataFusionError::Execution(format!(
                "{NAME}: isDuplicate must be a boolean"
            ))
        })?;
        self.items.reserve(time.len());
        for i in 0..time.len() {
            if time.is_null(i) || event_id.is_null(i) || event_type.is_null(i) {
                return exec_err!("{NAME}: eventTime, eventId and eventType must not be null");
            }
            let kind = Kind::of(event_type.value(i));
            let item = Item {
                time: time.value(i),
                kind,
                duplicate: duplicate.is_valid(i) && duplicate.value(i),
                event_id: self.intern(event_id.value(i))?,
                event_type: self.intern(event_type.value(i))?,
                campaign: self.opt(&campaign, i)?,
                channel: self.opt(&channel, i)?,
                purchase: self.opt(&purchase, i)?,
            };
            self.items.push(item);
        }
        Ok(())
    }

    /// Rule 1's order; a kept row sorts before its duplicates.
    fn compare(&self, a: &Item, b: &Item) -> Ordering {
        a.time
            .cmp(&b.time)
            .then(a.kind.rank().cmp(&b.kind.rank()))
            .then_with(|| self.text(a.event_id).cmp(self.text(b.event_id)))
            .then(a.duplicate.cmp(&b.duplicate))
    }

    fn items_as_struct(&self, fields: Fields) -> Result<StructArray> {
        // Builders sized to the group: default capacities (1024 rows each) would cost tens of
        // kilobytes for every user, most of whom have a handful of events.
        let n = self.items.len();
        let text = self.arena.len();
        let mut time = TimestampMicrosecondBuilder::with_capacity(n);
        let mut id = StringBuilder::with_capacity(n, text);
        let mut kind = StringBuilder::with_capacity(n, n * 12);
        let mut campaign = StringBuilder::with_capacity(n, 0);
        let mut channel = StringBuilder::with_capacity(n, 0);
        let mut purchase = StringBuilder::with_capacity(n, 0);
        let mut duplicate = BooleanBuilder::with_capacity(n);
        for it in &self.items {
            time.append_value(it.time);
            id.append_value(self.text(it.event_id));
            kind.append_value(self.text(it.event_type));
            campaign.append_option(it.campaign.map(|s| self.text(s)));
            channel.append_option(it.channel.map(|s| self.text(s)));
            purchase.append_option(it.purchase.map(|s| self.text(s)));
            duplicate.append_value(it.duplicate);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(time.finish()),
            Arc::new(id.finish()),
            Arc::new(kind.finish()),
            Arc::new(campaign.finish()),
            Arc::new(channel.finish()),
            Arc::new(purchase.finish()),
            Arc::new(duplicate.finish()),
        ];
        Ok(StructArray::try_new(fields, columns, None)?)
    }
}

impl Accumulator for SessionizeAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.push_columns(values)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(lists) = states.first().and_then(|s| s.as_list_opt::<i32>()) else {
            return exec_err!("{NAME}: state must be a list of events");
        };
        for row in 0..lists.len() {
            if lists.is_null(row) {
                continue;
            }
            let events = lists.value(row);
            let Some(events) = events.as_struct_opt() else {
                return exec_err!("{NAME}: state items must be structs");
            };
            self.push_columns(events.columns())?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let items = self.items_as_struct(input_fields())?;
        Ok(vec![
            SingleRowListArrayBuilder::new(Arc::new(items)).build_list_scalar()
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut order: Vec<usize> = (0..self.items.len()).collect();
        order.sort_unstable_by(|&a, &b| self.compare(&self.items[a], &self.items[b]));

        let out = self
            .items
            .iter()
            .filter(|it| it.duplicate || it.kind == Kind::Purchase)
            .count();
        let mut id = StringBuilder::with_capacity(out, out * 36);
        let mut kind = StringBuilder::with_capacity(out, out * 8);
        let mut time = TimestampMicrosecondBuilder::with_capacity(out);
        let mut purchase = StringBuilder::with_capacity(out, out * 36);
        let mut status = StringBuilder::with_capacity(out, out * 10);
        let mut session = StringBuilder::with_capacity(out, out * 36);
        let mut campaign = StringBuilder::with_capacity(out, out * 4);
        let mut channel = StringBuilder::with_capacity(out, out * 10);
        // Rule 2: the open session, if any, is the last app_open not followed by an app_close.
        let mut open: Option<&Item> = None;
        for &i in &order {
            let it = &self.items[i];
            if it.duplicate {
                id.append_value(self.text(it.event_id));
                kind.append_value(self.text(it.event_type));
                time.append_value(it.time);
                purchase.append_option(it.purchase.map(|s| self.text(s)));
                status.append_value("duplicate_event");
                session.append_null();
                campaign.append_null();
                channel.append_null();
                continue;
            }
            match it.kind {
                Kind::Open => open = Some(it),
                Kind::Close => open = None,
                Kind::Other => {}
                Kind::Purchase => {
                    id.append_value(self.text(it.event_id));
                    kind.append_value(self.text(it.event_type));
                    time.append_value(it.time);
                    purchase.append_option(it.purchase.map(|s| self.text(s)));
                    match open {
                        Some(o) => {
                            status.append_value("in_session");
                            session.append_value(self.text(o.event_id));
                            campaign.append_option(o.campaign.map(|s| self.text(s)));
                            channel.append_option(o.channel.map(|s| self.text(s)));
                        }
                        None => {
                            status.append_value("outside_session");
                            session.append_null();
                            campaign.append_null();
                            channel.append_null();
                        }
                    }
                }
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(kind.finish()),
            Arc::new(time.finish()),
            Arc::new(purchase.finish()),
            Arc::new(status.finish()),
            Arc::new(session.finish()),
            Arc::new(campaign.finish()),
            Arc::new(channel.finish()),
        ];
        let items = StructArray::try_new(output_fields(), columns, None)?;
        Ok(SingleRowListArrayBuilder::new(Arc::new(items)).build_list_scalar())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.arena.capacity()
            + self.items.capacity() * std::mem::size_of::<Item>()
    }
}

/// Reads the items of an evaluated `sessionize` result: (eventId, status, sessionId) per item.
pub fn result_items(value: &ScalarValue) -> Result<Vec<(String, String, Option<String>)>> {
    let ScalarValue::List(list) = value else {
        return exec_err!("{NAME} result is not a list");
    };
    let list: &ListArray = list.as_ref();
    let values = list.value(0);
    let items = values.as_struct();
    let id = items.column(0).as_string::<i32>();
    let status = items.column(4).as_string::<i32>();
    let session = items.column(5).as_string::<i32>();
    Ok((0..items.len())
        .map(|i| {
            (
                id.value(i).to_string(),
                status.value(i).to_string(),
                (!session.is_null(i)).then(|| session.value(i).to_string()),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
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
            Arc::new(TimestampMicrosecondArray::from(
                rows.iter().map(|r| r.0 * 1_000_000).collect::<Vec<_>>(),
            )),
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
            merged.size() > merged.arena.len(),
            "size() counts the arena"
        );
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
}

#[cfg(test)]
mod scale {
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
                Arc::new(TimestampMicrosecondArray::from(
                    rows.iter()
                        .map(|&i| i as i64 * 1_000_000)
                        .collect::<Vec<_>>(),
                )),
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
}
