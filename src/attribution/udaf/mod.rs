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
//! (see [`output_fields`]); the query unnests it.
//!
//! DataFusion's hash aggregation uses [`SessionizeGroups`], a `GroupsAccumulator`: every user's
//! events of a partition in one vector, their text in one arena, so a user costs no allocation
//! of its own; a user's events are sorted and walked only when emitted. (Through DataFusion's
//! generic adapter, one `Accumulator` per user, the aggregation took 56 s of CPU on 5M events;
//! this way under 3 s: docs/performance.md.) [`SessionizeAccumulator`] is the one-group form, for
//! the places that need an `Accumulator`. Both report in `size()` what they hold, so the memory
//! pool can account for it and make the aggregation spill.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayBuilder, ArrayRef, AsArray, BooleanArray, BooleanBuilder, ListArray, StringArray,
    StringBuilder, StructArray, TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, TimestampMicrosecondType};
use datafusion::common::utils::SingleRowListArrayBuilder;
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, Expr, GroupsAccumulator, Signature,
    Volatility,
};

use crate::attribution::rules;
use crate::input::schema::{TIMESTAMP, UTC};

/// The function's SQL name.
pub const NAME: &str = "sessionize";
/// The same function that also yields every session (status `session`), for the journey
/// models.
pub const WITH_SESSIONS: &str = "sessionize_sessions";

/// Fields of one input event, in argument order; also the layout of the partial state.
pub fn input_fields() -> Fields {
    Fields::from(vec![
        Field::new("eventTime", TIMESTAMP.clone(), false),
        Field::new("eventId", DataType::Utf8, false),
        Field::new("eventType", DataType::Utf8, false),
        Field::new("campaignId", DataType::Utf8, true),
        Field::new("channelId", DataType::Utf8, true),
        Field::new("purchaseId", DataType::Utf8, true),
        Field::new("isDuplicate", DataType::Boolean, false),
    ])
}

/// Fields of one output item: a purchase event or a duplicate row, with its outcome (and, from
/// [`WITH_SESSIONS`], a session: its app_open, with status `session` and itself as session).
pub fn output_fields() -> Fields {
    Fields::from(vec![
        Field::new("eventId", DataType::Utf8, false),
        Field::new("eventType", DataType::Utf8, false),
        Field::new("eventTime", TIMESTAMP.clone(), false),
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
    /// Yield the sessions too ([`WITH_SESSIONS`]).
    sessions: bool,
}

impl Default for Sessionize {
    fn default() -> Self {
        Sessionize {
            signature: Signature::user_defined(Volatility::Immutable),
            sessions: false,
        }
    }
}

/// The function, ready to register on a session context.
pub fn sessionize_udaf() -> AggregateUDF {
    AggregateUDF::from(Sessionize::default())
}

/// [`WITH_SESSIONS`], ready to register on a session context.
pub fn sessionize_with_sessions_udaf() -> AggregateUDF {
    AggregateUDF::from(Sessionize {
        sessions: true,
        ..Sessionize::default()
    })
}

/// `sessionize(...)` for the DataFrame API.
pub fn sessionize(args: Vec<Expr>) -> Expr {
    sessionize_udaf().call(args)
}

impl AggregateUDFImpl for Sessionize {
    fn name(&self) -> &str {
        if self.sessions {
            WITH_SESSIONS
        } else {
            NAME
        }
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
                DataType::Timestamp(_, _) => matches!(got, DataType::Timestamp(_, _)),
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
        Ok(Box::new(SessionizeAccumulator {
            sessions: self.sessions,
            ..SessionizeAccumulator::default()
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(SessionizeGroups {
            sessions: self.sessions,
            ..SessionizeGroups::default()
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[events]", args.name),
            list_of(input_fields()),
            true,
        ))])
    }
}

/// A string in an arena; `len == NONE_LEN` stands for null.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    len: u32,
}

const NONE_LEN: u32 = u32::MAX;

impl Span {
    const NONE: Span = Span {
        start: 0,
        len: NONE_LEN,
    };

    fn is_none(self) -> bool {
        self.len == NONE_LEN
    }
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
            rules::APP_OPEN => Kind::Open,
            rules::APP_CLOSE => Kind::Close,
            rules::PURCHASE => Kind::Purchase,
            _ => Kind::Other,
        }
    }

    /// Rule 1's tie rank (`rules`), without looking at the text again: it orders events in
    /// the accumulator's sort.
    fn rank(self) -> u8 {
        match self {
            Kind::Open => rules::OPEN_RANK,
            Kind::Close => rules::CLOSE_RANK,
            Kind::Purchase | Kind::Other => rules::OTHER_RANK,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Item {
    /// The group (user) the event belongs to: always 0 in the one-group [`Accumulator`].
    group: u32,
    kind: Kind,
    duplicate: bool,
    time: i64,
    event_id: Span,
    event_type: Span,
    campaign: Span,
    channel: Span,
    purchase: Span,
}

/// Events of any number of groups: their text in one arena, so a group costs no allocation of
/// its own, and the memory held is two vectors whatever the number of users.
#[derive(Debug, Default)]
struct Events {
    arena: String,
    items: Vec<Item>,
}

/// The seven input columns, checked once per batch.
struct Columns<'a> {
    time: &'a TimestampMicrosecondArray,
    event_id: &'a StringArray,
    event_type: &'a StringArray,
    campaign: &'a StringArray,
    channel: &'a StringArray,
    purchase: &'a StringArray,
    duplicate: &'a BooleanArray,
}

fn strings<'a>(a: &'a ArrayRef, what: &str) -> Result<&'a StringArray> {
    match a.data_type() {
        DataType::Utf8 => Ok(a.as_string::<i32>()),
        other => exec_err!("{NAME}: {what} must be Utf8, got {other}"),
    }
}

impl<'a> Columns<'a> {
    fn new(columns: &'a [ArrayRef]) -> Result<Self> {
        let [time, event_id, event_type, campaign, channel, purchase, duplicate] = columns else {
            return exec_err!("{NAME}: expected 7 columns, got {}", columns.len());
        };
        let Some(time) = time.as_primitive_opt::<TimestampMicrosecondType>() else {
            return exec_err!("{NAME}: eventTime must be a timestamp(us)");
        };
        let Some(duplicate) = duplicate.as_boolean_opt() else {
            return exec_err!("{NAME}: isDuplicate must be a boolean");
        };
        Ok(Columns {
            time,
            event_id: strings(event_id, "eventId")?,
            event_type: strings(event_type, "eventType")?,
            campaign: strings(campaign, "campaignId")?,
            channel: strings(channel, "channelId")?,
            purchase: strings(purchase, "purchaseId")?,
            duplicate,
        })
    }
}

impl Events {
    fn intern(&mut self, s: &str) -> Result<Span> {
        match u32::try_from(s.len()) {
            Ok(len) if len != NONE_LEN => {
                let start = self.arena.len() as u64;
                self.arena.push_str(s);
                Ok(Span { start, len })
            }
            _ => exec_err!("{NAME}: a value of 4 GiB or more"),
        }
    }

    fn size(&self) -> usize {
        self.arena.capacity() + self.items.capacity() * std::mem::size_of::<Item>()
    }

    fn text(&self, s: Span) -> &str {
        let start = s.start as usize;
        &self.arena[start..start + s.len as usize]
    }

    fn opt_text(&self, s: Span) -> Option<&str> {
        (!s.is_none()).then(|| self.text(s))
    }

    fn opt(&mut self, a: &StringArray, i: usize) -> Result<Span> {
        if a.is_null(i) {
            Ok(Span::NONE)
        } else {
            self.intern(a.value(i))
        }
    }

    /// Appends the events at the given rows of the input columns, each to its group.
    fn push(
        &mut self,
        columns: &[ArrayRef],
        rows: impl Iterator<Item = (usize, u32)>,
    ) -> Result<()> {
        let c = Columns::new(columns)?;
        self.items.reserve(c.time.len());
        for (i, group) in rows {
            if c.time.is_null(i) || c.event_id.is_null(i) || c.event_type.is_null(i) {
                return exec_err!("{NAME}: eventTime, eventId and eventType must not be null");
            }
            let event_type = c.event_type.value(i);
            let kind = Kind::of(event_type);
            let item = Item {
                group,
                kind,
                duplicate: c.duplicate.is_valid(i) && c.duplicate.value(i),
                time: c.time.value(i),
                event_id: self.intern(c.event_id.value(i))?,
                event_type: self.intern(event_type)?,
                campaign: self.opt(c.campaign, i)?,
                channel: self.opt(c.channel, i)?,
                purchase: self.opt(c.purchase, i)?,
            };
            self.items.push(item);
        }
        Ok(())
    }

    /// Appends the events held in a state column (lists of events), row `r` to group `group(r)`.
    fn push_lists(&mut self, state: &ArrayRef, group: impl Fn(usize) -> u32) -> Result<()> {
        let Some(lists) = state.as_list_opt::<i32>() else {
            return exec_err!("{NAME}: state must be a list of events");
        };
        let Some(events) = lists.values().as_struct_opt() else {
            return exec_err!("{NAME}: state items must be structs");
        };
        let offsets = lists.value_offsets();
        let rows = (0..lists.len())
            .filter(|&r| lists.is_valid(r))
            .flat_map(|r| (offsets[r] as usize..offsets[r + 1] as usize).map(move |j| (j, r)))
            .map(|(j, r)| (j, group(r)));
        self.push(events.columns(), rows)
    }

    /// Rule 1's order; a kept row sorts before its duplicates.
    fn compare(&self, a: &Item, b: &Item) -> Ordering {
        a.time
            .cmp(&b.time)
            .then(a.kind.rank().cmp(&b.kind.rank()))
            .then_with(|| self.text(a.event_id).cmp(self.text(b.event_id)))
            .then(a.duplicate.cmp(&b.duplicate))
    }

    /// The items of groups `0..n`, ordered by group, and where each group starts (`n + 1`
    /// offsets): a counting sort, linear in the items.
    fn by_group(&self, n: usize) -> (Vec<usize>, Vec<usize>) {
        let mut starts = vec![0usize; n + 1];
        for it in &self.items {
            if (it.group as usize) < n {
                starts[it.group as usize + 1] += 1;
            }
        }
        for g in 0..n {
            starts[g + 1] += starts[g];
        }
        let mut next = starts.clone();
        let mut order = vec![0usize; starts[n]];
        for (i, it) in self.items.iter().enumerate() {
            let g = it.group as usize;
            if g < n {
                order[next[g]] = i;
                next[g] += 1;
            }
        }
        (order, starts)
    }

    /// Forgets groups `0..n` and numbers the others from 0 (`EmitTo::First`).
    fn drop_first(&mut self, n: usize) {
        let old = std::mem::take(self);
        for mut it in old.items {
            if (it.group as usize) < n {
                continue;
            }
            it.group -= n as u32;
            // Re-interning cannot fail: each value already fitted.
            for span in [
                &mut it.event_id,
                &mut it.event_type,
                &mut it.campaign,
                &mut it.channel,
                &mut it.purchase,
            ] {
                if !span.is_none() {
                    let start = span.start as usize;
                    let text = &old.arena[start..start + span.len as usize];
                    span.start = self.arena.len() as u64;
                    self.arena.push_str(text);
                }
            }
            self.items.push(it);
        }
    }

    /// The items at `order` in the layout of the partial state ([`input_fields`]).
    fn items_as_struct(&self, order: &[usize]) -> Result<StructArray> {
        // Builders sized to the items: default capacities (1024 rows each) would cost tens of
        // kilobytes for every user, most of whom have a handful of events.
        let n = order.len();
        let mut time = TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC);
        let mut id = StringBuilder::with_capacity(n, n * 36);
        let mut kind = StringBuilder::with_capacity(n, n * 12);
        let mut campaign = StringBuilder::with_capacity(n, 0);
        let mut channel = StringBuilder::with_capacity(n, 0);
        let mut purchase = StringBuilder::with_capacity(n, 0);
        let mut duplicate = BooleanBuilder::with_capacity(n);
        for &i in order {
            let it = &self.items[i];
            time.append_value(it.time);
            id.append_value(self.text(it.event_id));
            kind.append_value(self.text(it.event_type));
            campaign.append_option(self.opt_text(it.campaign));
            channel.append_option(self.opt_text(it.channel));
            purchase.append_option(self.opt_text(it.purchase));
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
        Ok(StructArray::try_new(input_fields(), columns, None)?)
    }

    /// Sorts one group's items (rule 1) and appends its purchase events and duplicates, each
    /// with its session (rules 2 and 3), to `out`; with `sessions`, every session too.
    fn sessions(&self, group: &mut [usize], out: &mut Output, sessions: bool) {
        group.sort_unstable_by(|&a, &b| self.compare(&self.items[a], &self.items[b]));
        // Rule 2: the open session, if any, is the last app_open not followed by an app_close.
        let mut open: Option<&Item> = None;
        for &i in group.iter() {
            let it = &self.items[i];
            if it.duplicate {
                out.duplicate(self, it);
                continue;
            }
            match it.kind {
                Kind::Open => {
                    if sessions {
                        out.event(self, it, "session", Some(it));
                    }
                    open = Some(it)
                }
                Kind::Close => open = None,
                Kind::Other => {}
                Kind::Purchase => match open {
                    Some(o) => out.event(self, it, "in_session", Some(o)),
                    None => out.event(self, it, "outside_session", None),
                },
            }
        }
    }
}

/// Builders of the result items ([`output_fields`]).
struct Output {
    id: StringBuilder,
    kind: StringBuilder,
    time: TimestampMicrosecondBuilder,
    purchase: StringBuilder,
    status: StringBuilder,
    session: StringBuilder,
    campaign: StringBuilder,
    channel: StringBuilder,
}

impl Output {
    fn with_capacity(n: usize) -> Self {
        Output {
            id: StringBuilder::with_capacity(n, n * 36),
            kind: StringBuilder::with_capacity(n, n * 8),
            time: TimestampMicrosecondBuilder::with_capacity(n).with_timezone(UTC),
            purchase: StringBuilder::with_capacity(n, n * 36),
            status: StringBuilder::with_capacity(n, n * 10),
            session: StringBuilder::with_capacity(n, n * 36),
            campaign: StringBuilder::with_capacity(n, n * 4),
            channel: StringBuilder::with_capacity(n, n * 10),
        }
    }

    /// Rows appended so far.
    fn rows(&self) -> usize {
        self.status.len()
    }

    /// The columns of `it` itself and its status.
    fn head(&mut self, events: &Events, it: &Item, status: &str) {
        self.id.append_value(events.text(it.event_id));
        self.kind.append_value(events.text(it.event_type));
        self.time.append_value(it.time);
        self.purchase.append_option(events.opt_text(it.purchase));
        self.status.append_value(status);
    }

    fn event(&mut self, events: &Events, it: &Item, status: &str, open: Option<&Item>) {
        self.head(events, it, status);
        match open {
            Some(o) => {
                self.session.append_value(events.text(o.event_id));
                self.campaign.append_option(events.opt_text(o.campaign));
                self.channel.append_option(events.opt_text(o.channel));
            }
            None => {
                self.session.append_null();
                self.campaign.append_null();
                self.channel.append_null();
            }
        }
    }

    /// A duplicate row, with its own channel_id (as sessionize.sql gives it: the duplicate
    /// app_opens per channel are part of the sessions' count).
    fn duplicate(&mut self, events: &Events, it: &Item) {
        self.head(events, it, "duplicate_event");
        self.session.append_null();
        self.campaign.append_null();
        self.channel.append_option(events.opt_text(it.channel));
    }

    fn finish(mut self) -> Result<StructArray> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.purchase.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.session.finish()),
            Arc::new(self.campaign.finish()),
            Arc::new(self.channel.finish()),
        ];
        Ok(StructArray::try_new(output_fields(), columns, None)?)
    }
}

/// A list array of `values` cut at `starts` (one list per group; `nulls` marks absent ones).
fn lists(values: StructArray, starts: &[usize], nulls: Option<NullBuffer>) -> Result<ArrayRef> {
    let mut offsets = Vec::with_capacity(starts.len());
    for &s in starts {
        match i32::try_from(s) {
            Ok(o) => offsets.push(o),
            Err(_) => return exec_err!("{NAME}: more than 2^31 events in one batch of groups"),
        }
    }
    let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    Ok(Arc::new(ListArray::try_new(
        field,
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(values),
        nulls,
    )?))
}

/// One user's events: the plain [`Accumulator`], used where DataFusion cannot use the
/// [`GroupsAccumulator`] (window frames, and tests of one group).
#[derive(Debug, Default)]
pub struct SessionizeAccumulator {
    events: Events,
    sessions: bool,
}

impl SessionizeAccumulator {
    fn all(&self) -> Vec<usize> {
        (0..self.events.items.len()).collect()
    }
}

impl Accumulator for SessionizeAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let n = values.first().map_or(0, |v| v.len());
        self.events.push(values, (0..n).map(|i| (i, 0)))
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(state) = states.first() else {
            return exec_err!("{NAME}: no state column");
        };
        self.events.push_lists(state, |_| 0)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let items = self.events.items_as_struct(&self.all())?;
        Ok(vec![
            SingleRowListArrayBuilder::new(Arc::new(items)).build_list_scalar()
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut order = self.all();
        let mut out = Output::with_capacity(order.len());
        self.events.sessions(&mut order, &mut out, self.sessions);
        Ok(SingleRowListArrayBuilder::new(Arc::new(out.finish()?)).build_list_scalar())
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.events.size()
    }
}

/// Every user's events of one partition: the [`GroupsAccumulator`] DataFusion's hash
/// aggregation uses. Events go straight into one shared store with their group index; a
/// group is sorted and walked only when emitted.
#[derive(Debug, Default)]
pub struct SessionizeGroups {
    events: Events,
    /// Groups DataFusion has numbered so far: every one is emitted, even one whose rows were
    /// all filtered out.
    groups: usize,
    sessions: bool,
}

impl SessionizeGroups {
    fn see_groups(&mut self, total_num_groups: usize) -> Result<()> {
        if total_num_groups > u32::MAX as usize {
            return exec_err!("{NAME}: more than 2^32 users in one partition");
        }
        self.groups = self.groups.max(total_num_groups);
        Ok(())
    }

    fn emitted(&self, emit_to: EmitTo) -> usize {
        match emit_to {
            EmitTo::All => self.groups,
            EmitTo::First(n) => n.min(self.groups),
        }
    }

    fn forget(&mut self, emit_to: EmitTo, n: usize) {
        match emit_to {
            EmitTo::All => self.events = Events::default(),
            EmitTo::First(_) => self.events.drop_first(n),
        }
        self.groups -= n;
    }
}

impl GroupsAccumulator for SessionizeGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.see_groups(total_num_groups)?;
        let keep = |i: &usize| opt_filter.is_none_or(|f| f.is_valid(*i) && f.value(*i));
        let rows = (0..group_indices.len())
            .filter(keep)
            .map(|i| (i, group_indices[i] as u32));
        self.events.push(values, rows)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.see_groups(total_num_groups)?;
        let Some(state) = values.first() else {
            return exec_err!("{NAME}: no state column");
        };
        self.events.push_lists(state, |r| group_indices[r] as u32)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let n = self.emitted(emit_to);
        let (mut order, starts) = self.events.by_group(n);
        let mut out = Output::with_capacity(order.len());
        let mut out_starts = Vec::with_capacity(n + 1);
        out_starts.push(0);
        for g in 0..n {
            self.events.sessions(
                &mut order[starts[g]..starts[g + 1]],
                &mut out,
                self.sessions,
            );
            out_starts.push(out.rows());
        }
        let result = lists(out.finish()?, &out_starts, None)?;
        self.forget(emit_to, n);
        Ok(result)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let n = self.emitted(emit_to);
        let (order, starts) = self.events.by_group(n);
        let state = lists(self.events.items_as_struct(&order)?, &starts, None)?;
        self.forget(emit_to, n);
        Ok(vec![state])
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row becomes a one-event list over the input columns themselves: no copy.
        let events = StructArray::try_new(input_fields(), values.to_vec(), None)?;
        let starts: Vec<usize> = (0..=events.len()).collect();
        let nulls = opt_filter.map(|f| {
            NullBuffer::from(
                (0..f.len())
                    .map(|i| f.is_valid(i) && f.value(i))
                    .collect::<Vec<bool>>(),
            )
        });
        Ok(vec![lists(events, &starts, nulls)?])
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.events.size()
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
mod scale;
#[cfg(test)]
mod tests;
