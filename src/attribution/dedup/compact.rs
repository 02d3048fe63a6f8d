//! The compact layout of the dedup's spill files.
//!
//! Held rows are the decoded text: at 50M events the spill wrote about 155 bytes per event,
//! more than the kernel keeps dirty, and the input waited for the disk. Most of it is UUID text
//! (userId and eventId: 36 bytes and a 4-byte offset each, 16 bytes as binary) and
//! low-cardinality text (eventType, campaignId, channelId: a dictionary key each). A held batch
//! is written compact when every userId and eventId in it is a UUID in its canonical lowercase
//! form (so its text comes back byte for byte) and its dictionaries fit their keys; otherwise
//! it is written as held. Either way it reads back as held rows. (A hand-written parser and
//! printer of the canonical form, a table lookup a digit, were slower than the `uuid` crate's.)

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeBinaryArray, RecordBatch, StringArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{exec_datafusion_err, exec_err, Result};
use uuid::Uuid;

use super::{CAMPAIGN_ID, CHANNEL_ID, EVENT_ID, EVENT_TYPE, USER_ID};

/// How a spill file's rows are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// As held in memory (the input's columns and the key).
    Held = 0,
    /// With [`ENCODED`] columns encoded.
    Compact = 1,
}

#[derive(Debug, Clone)]
enum Encoding {
    /// Canonical UUID text as its 16 bytes.
    Uuid,
    /// Text as a dictionary with keys of this type.
    Dictionary(DataType),
}

const UUID_TEXT: usize = 36;
const UUID_BYTES: i32 = 16;

/// The columns the compact layout encodes.
const ENCODED: [(usize, Encoding); 5] = [
    (USER_ID, Encoding::Uuid),
    (EVENT_ID, Encoding::Uuid),
    (EVENT_TYPE, Encoding::Dictionary(DataType::UInt8)),
    (CAMPAIGN_ID, Encoding::Dictionary(DataType::UInt16)),
    (CHANNEL_ID, Encoding::Dictionary(DataType::UInt16)),
];

impl Encoding {
    fn data_type(&self) -> DataType {
        match self {
            Encoding::Uuid => DataType::FixedSizeBinary(UUID_BYTES),
            Encoding::Dictionary(key) => {
                DataType::Dictionary(Box::new(key.clone()), Box::new(DataType::Utf8))
            }
        }
    }

    /// `column` encoded, or `None` when this encoding cannot give it back exactly.
    fn encode(&self, column: &ArrayRef) -> Option<ArrayRef> {
        match self {
            Encoding::Uuid => column
                .as_string_opt::<i32>()
                .and_then(uuid_bytes)
                .map(|a| Arc::new(a) as ArrayRef),
            // A batch with more distinct values than the keys hold is written as held.
            Encoding::Dictionary(_) => cast(column, &self.data_type()).ok(),
        }
    }
}

/// The compact schema of held rows of schema `held`.
pub(super) fn compact_schema(held: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = held.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (i, encoding) in &ENCODED {
        if let Some(field) = fields.get_mut(*i) {
            *field = field.clone().with_data_type(encoding.data_type());
        }
    }
    Arc::new(Schema::new(fields))
}

/// Held rows `batch` in the compact layout `schema`, or `None` when a column would not come
/// back exactly.
pub(super) fn compact(batch: &RecordBatch, schema: &SchemaRef) -> Result<Option<RecordBatch>> {
    let mut columns = batch.columns().to_vec();
    for &(i, ref encoding) in &ENCODED {
        let Some(column) = columns.get(i) else {
            return exec_err!("dedup spill: a held batch has no column {i}");
        };
        match encoding.encode(column) {
            Some(encoded) => columns[i] = encoded,
            None => return Ok(None),
        }
    }
    Ok(Some(RecordBatch::try_new(schema.clone(), columns)?))
}

/// Compact rows `batch` back as held rows of schema `held`.
pub(super) fn expand(batch: &RecordBatch, held: &SchemaRef) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    for &(i, ref encoding) in &ENCODED {
        let Some(column) = columns.get(i) else {
            return exec_err!("dedup spill: a compact batch has no column {i}");
        };
        columns[i] = match encoding {
            Encoding::Uuid => match column.as_fixed_size_binary_opt() {
                Some(bytes) => Arc::new(uuid_text(bytes)?),
                None => return exec_err!("dedup spill: column {i} is not binary"),
            },
            Encoding::Dictionary(_) => cast(column, &DataType::Utf8)?,
        };
    }
    Ok(RecordBatch::try_new(held.clone(), columns)?)
}

/// Compact rows `batch` with their event types as text (what the cut reads besides the keys),
/// the other columns still compact; [`expand`] takes such rows too.
pub(super) fn with_event_type_text(batch: &RecordBatch) -> Result<RecordBatch> {
    let Some(types) = batch.columns().get(EVENT_TYPE) else {
        return exec_err!("dedup spill: a compact batch has no column {EVENT_TYPE}");
    };
    let mut columns = batch.columns().to_vec();
    columns[EVENT_TYPE] = cast(types, &DataType::Utf8)?;
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[EVENT_TYPE] = fields[EVENT_TYPE].clone().with_data_type(DataType::Utf8);
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The 16 bytes of each UUID, if every value is one in canonical lowercase form: only that
/// form is what [`uuid_text`] writes back.
fn uuid_bytes(text: &StringArray) -> Option<FixedSizeBinaryArray> {
    if text.null_count() > 0 {
        return None;
    }
    let mut bytes = Vec::with_capacity(text.len() * UUID_BYTES as usize);
    for value in text.iter().flatten() {
        let value = value.as_bytes();
        // Uuid also parses other lengths (simple, braced, URN); at 36 only the hyphenated form.
        if value.len() != UUID_TEXT || value.iter().any(u8::is_ascii_uppercase) {
            return None;
        }
        bytes.extend_from_slice(Uuid::try_parse_ascii(value).ok()?.as_bytes());
    }
    FixedSizeBinaryArray::try_new(UUID_BYTES, bytes.into(), None).ok()
}

/// The canonical text of each UUID.
fn uuid_text(bytes: &FixedSizeBinaryArray) -> Result<StringArray> {
    let rows = bytes.len();
    let mut text = vec![0; rows * UUID_TEXT];
    for (i, out) in text.chunks_exact_mut(UUID_TEXT).enumerate() {
        let id = Uuid::from_slice(bytes.value(i))
            .map_err(|e| exec_datafusion_err!("dedup spill: a stored UUID: {e}"))?;
        id.hyphenated().encode_lower(out);
    }
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(UUID_TEXT, rows));
    Ok(StringArray::try_new(offsets, text.into(), None)?)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, UInt64Array};

    use super::*;
    use crate::input::schema::EVENTS;

    const U1: &str = "aa35c36d-fea3-4f56-8826-6fc36fa590ed";
    const E1: &str = "9586a5e6-f432-449a-9a48-df9908d15572";
    const E2: &str = "00000000-0000-0000-0000-000000000000";

    /// Held rows: the events' columns and a key.
    fn held(users: &[&str], events: &[&str], types: &[String]) -> RecordBatch {
        let rows = users.len();
        let text = |v: &[&str]| Arc::new(StringArray::from(v.to_vec())) as ArrayRef;
        let some = |v: &str| Arc::new(StringArray::from(vec![Some(v); rows])) as ArrayRef;
        let mut fields: Vec<Field> = EVENTS.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("key", DataType::UInt64, false));
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            vec![
                text(users),
                text(events),
                Arc::new(StringArray::from(types.to_vec())),
                Arc::new(
                    datafusion::arrow::array::TimestampMicrosecondArray::from_iter_values(
                        0..rows as i64,
                    )
                    .with_timezone(crate::input::schema::UTC),
                ),
                some("{'campaign_id': 296, 'channel_id': 'Google Ads'}"),
                Arc::new(StringArray::from(
                    (0..rows)
                        .map(|i| (i % 2 == 0).then_some("296"))
                        .collect::<Vec<_>>(),
                )),
                some("Google Ads"),
                Arc::new(StringArray::from(vec![None::<&str>; rows])),
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
                Arc::new(UInt64Array::from_iter_values(0..rows as u64)),
            ],
        )
        .unwrap()
    }

    /// `n` event types, `distinct` of them different.
    fn types(n: usize, distinct: usize) -> Vec<String> {
        (0..n).map(|i| format!("type{}", i % distinct)).collect()
    }

    /// The bytes an IPC stream of `batch` takes, as a spill file would.
    fn ipc_bytes(batch: &RecordBatch) -> usize {
        let mut out = Vec::new();
        let mut writer =
            datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())
                .unwrap();
        writer.write(batch).unwrap();
        writer.finish().unwrap();
        drop(writer);
        out.len()
    }

    #[test]
    fn canonical_uuids_and_few_types_come_back_byte_for_byte() {
        let rows = 1000;
        let events: Vec<&str> = (0..rows).map(|i| [E1, E2][i % 2]).collect();
        let batch = held(&vec![U1; rows], &events, &types(rows, 5));
        let schema = compact_schema(&batch.schema());
        let compact = compact(&batch, &schema).unwrap().expect("compact");
        assert_eq!(
            compact.column(USER_ID).data_type(),
            &DataType::FixedSizeBinary(16)
        );
        assert!(matches!(
            compact.column(EVENT_TYPE).data_type(),
            DataType::Dictionary(..)
        ));
        // The point of the layout: a spill file of these rows is at most two thirds the size.
        let (held_bytes, compact_bytes) = (ipc_bytes(&batch), ipc_bytes(&compact));
        assert!(
            compact_bytes * 3 <= held_bytes * 2,
            "{compact_bytes} bytes compact, {held_bytes} held"
        );
        assert_eq!(expand(&compact, &batch.schema()).unwrap(), batch);
        // The cut reads the event types of compact rows as text, and expands only some rows.
        let typed = with_event_type_text(&compact).unwrap();
        assert_eq!(typed.column(EVENT_TYPE), batch.column(EVENT_TYPE));
        let (some, held) = (typed.slice(10, 20), batch.slice(10, 20));
        assert_eq!(expand(&some, &batch.schema()).unwrap(), held);
    }

    #[test]
    fn ids_that_would_not_come_back_exactly_keep_the_held_layout() {
        let schema = compact_schema(&held(&[U1], &[E1], &types(1, 1)).schema());
        let upper = U1.to_uppercase();
        let simple = E1.replace('-', "");
        let braced = format!("{{{E1}}}");
        for id in ["u1", upper.as_str(), simple.as_str(), braced.as_str(), ""] {
            let users = held(&[U1, id], &[E1, E1], &types(2, 2));
            assert!(compact(&users, &schema).unwrap().is_none(), "userId {id:?}");
            let events = held(&[U1, U1], &[E1, id], &types(2, 2));
            assert!(
                compact(&events, &schema).unwrap().is_none(),
                "eventId {id:?}"
            );
        }
    }

    #[test]
    fn more_event_types_than_a_byte_keeps_the_held_layout() {
        let rows = 300;
        let batch = held(&vec![U1; rows], &vec![E1; rows], &types(rows, rows));
        let schema = compact_schema(&batch.schema());
        assert!(compact(&batch, &schema).unwrap().is_none());
        let fewer = batch.slice(0, 256);
        let compact = compact(&fewer, &schema).unwrap().expect("256 types fit");
        assert_eq!(expand(&compact, &batch.schema()).unwrap(), fewer);
    }
}
