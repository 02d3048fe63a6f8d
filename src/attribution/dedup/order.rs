//! Rule 4's order: the rows of a repeated eventId ordered as `dedup.sql` orders them (time,
//! tie rank, attributes, file order) and cut to the rows the session step needs.

use super::*;

/// Held rows whose eventId hash occurs more than once (all the rows of each such eventId),
/// ordered as `dedup.sql` orders them and cut to the rows the session step needs (boundary and
/// purchase events, and every duplicate), with their `copy` as one more column ([`COPY`]).
pub(super) fn duplicated_rows(candidates: Vec<RecordBatch>) -> Result<Option<RecordBatch>> {
    let Some(first) = candidates.first() else {
        return Ok(None);
    };
    let all = concat_batches(&first.schema(), &candidates)?;
    let ranks = tie_ranks(string_column(&all, EVENT_TYPE)?);
    let ascending = SortOptions {
        descending: false,
        // SQL's default for ascending order, as in dedup.sql.
        nulls_first: false,
    };
    let keys = [
        all.column(EVENT_ID).clone(),
        all.column(EVENT_TIME).clone(),
        Arc::new(ranks) as ArrayRef,
        all.column(ATTRIBUTES).clone(),
        all.column(SOURCE_ROW).clone(),
    ]
    .into_iter()
    .map(|values| SortColumn {
        values,
        options: Some(ascending),
    })
    .collect::<Vec<_>>();
    let order = lexsort_to_indices(&keys, None)?;
    let sorted = take_record_batch(&all, &order)?;
    let ids = string_column(&sorted, EVENT_ID)?;
    let copies: Int64Array = (0..sorted.num_rows())
        .map(|i| {
            let same =
                i > 0 && ids.is_valid(i) && ids.is_valid(i - 1) && ids.value(i) == ids.value(i - 1);
            Some(if same { 2 } else { 1 })
        })
        .collect();
    let types = string_column(&sorted, EVENT_TYPE)?;
    let keep: BooleanArray = (0..sorted.num_rows())
        .map(|i| Some(copies.value(i) > 1 || is_relevant(types.value(i))))
        .collect();
    let mut fields: Vec<FieldRef> = sorted.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new("copy", DataType::Int64, false)));
    let mut columns = sorted.columns().to_vec();
    columns.push(Arc::new(copies));
    let with_copies = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    Ok(Some(filter_record_batch(&with_copies, &keep)?))
}

/// Sorts out held rows `batch`: calls `keep(row, key)` for each boundary and purchase event
/// whose eventId hash occurs once, and adds its rows whose hash repeats to `aside`, grouped by
/// hash so that the rows of one eventId share a group. With `crossing_decided`, the rows of
/// crossing eventIds go nowhere: they were ordered before (see `Job::crossing`).
pub(super) fn sort_out(
    batch: &RecordBatch,
    repeated: &Repeated,
    crossing_decided: bool,
    aside: &mut [Vec<RecordBatch>],
    mut keep: impl FnMut(usize, u64),
) -> Result<()> {
    let types = string_column(batch, EVENT_TYPE)?;
    let keys = key_column(batch)?;
    let groups = aside.len() as u64;
    let mut group_of: Vec<Option<u64>> = Vec::new();
    for (i, &k) in keys.iter().enumerate() {
        let verdict = if repeated.ids.is_empty() {
            None
        } else {
            repeated.get(k)
        };
        match verdict {
            None => {
                if types.is_valid(i) && is_relevant(types.value(i)) {
                    keep(i, k);
                }
            }
            Some(true) if crossing_decided => {}
            Some(_) => {
                if group_of.is_empty() {
                    group_of.resize(keys.len(), None);
                }
                group_of[i] = Some(id_of(k) % groups);
            }
        }
    }
    if !group_of.is_empty() {
        for (g, rows) in (0..groups).zip(aside.iter_mut()) {
            let mask: BooleanArray = group_of.iter().map(|x| Some(*x == Some(g))).collect();
            if mask.true_count() > 0 {
                rows.push(filter_record_batch(batch, &mask)?);
            }
        }
    }
    Ok(())
}

/// The output columns of held rows `batch` (all kept, `copy` 1, unless it has [`COPY`]).
pub(super) fn output_batch(
    batch: &RecordBatch,
    columns: &[Column],
    schema: &SchemaRef,
    bucket: i32,
) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for column in columns {
        arrays.push(match column {
            Column::Input(j) => batch.column(*j).clone(),
            Column::TieRank => Arc::new(tie_ranks(string_column(batch, EVENT_TYPE)?)),
            Column::Copy => match batch.columns().get(COPY) {
                Some(copies) => copies.clone(),
                None => Arc::new(Int64Array::from_value(1, rows)),
            },
            Column::Bucket => Arc::new(Int32Array::from_value(bucket, rows)),
        });
    }
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

pub(super) use crate::attribution::rules::{is_relevant, tie_ranks};

pub(super) fn string_column(batch: &RecordBatch, index: usize) -> Result<&StringArray> {
    match batch.column(index).as_string_opt::<i32>() {
        Some(values) => Ok(values),
        None => exec_err!(
            "dedup: column {} is {}, not text",
            INPUT[index],
            batch.column(index).data_type()
        ),
    }
}
