//! The warehouse's stored projection (`WAREHOUSE/projection`, by the date of purchaseTime),
//! brought up to date at the end of each conversion, in one transaction whose property names
//! the versions of `clickstream` and `purchases` it was computed from.
//!
//! Incrementally: the rows added or removed since the versions the stored projection names are
//! the seeds of `attribution::incremental`, which finds the purchases they can change and the
//! users whose events decide those; the standard transform over those rows gives the
//! purchases' new rows, and only the dates whose rows differ are rewritten. From everything
//! the first time, when the named versions cannot be read any more, and with
//! `convert --recompute` (the two give the same rows; the tests hold them to it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Schema, SchemaRef};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::prelude::{cast, ident, SessionContext};
use tracing::info;

use crate::app::job::JobRun;
use crate::app::Settings;
use crate::attribution::{self, incremental};
use crate::engine::session_context_with_limit;
use crate::error::{Error, Result};
use crate::input::TableKind;
use crate::storage::delta::{self, AsOf, Change, DataFile, SnapshotTable};
use crate::storage::replace_table;
use crate::storage::warehouse::{
    register_changes, register_table, write_data_files, Snapshot, INPUTS_PROPERTY, PROJECTION_DIR,
};

/// How a conversion brought the stored projection up to date.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Update {
    /// It was computed from these input versions already.
    #[default]
    Unchanged,
    /// Computed again for what the changed rows can reach.
    Incremental,
    /// Computed from everything the warehouse holds.
    Full,
}

/// What storing the projection did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stored {
    pub update: Update,
    /// Rows of the projection (all of it).
    pub rows: u64,
    /// The dates whose files were rewritten.
    pub dates: Vec<String>,
    /// The projection table's version.
    pub version: u64,
}

const OLD: &str = "old_projection";
const NEW: &str = "new_projection_rows";

/// Brings the stored projection of `warehouse` up to date with its input tables' newest
/// versions (module doc).
pub(crate) async fn store(job: &JobRun, warehouse: &Path) -> Result<Stored> {
    let settings = &Settings {
        read: crate::storage::warehouse::Read::Newest,
        ..job.settings().clone()
    };
    let ctx = session_context_with_limit(
        settings.threads,
        settings.memory_limit,
        settings.spill_dir.as_deref(),
    )?;
    let latest = Snapshot::latest_inputs(&ctx, warehouse).await?;
    let location = warehouse.join(PROJECTION_DIR).display().to_string();
    let mut table = match delta::open(&ctx, &location, AsOf::Latest).await? {
        Some(t) => t,
        None => {
            let schema = attribution::PROJECTION.as_ref().clone();
            delta::create(&ctx, &location, &schema, HashMap::new()).await?
        }
    };
    let inputs = latest.versions_property()?;
    let stored = delta::properties(&table)?;
    let old = delta::files(&table).await?;
    let old_rows: u64 = old.iter().map(|f| f.rows).sum();
    let named = stored.get(INPUTS_PROPERTY);
    if settings.stored_projection && named == Some(&inputs.1) {
        return Ok(Stored {
            rows: old_rows,
            version: table.version().unwrap_or(0),
            ..Stored::default()
        });
    }
    let previous: Option<Snapshot> = named
        .filter(|_| settings.stored_projection)
        .and_then(|text| serde_json::from_str(text).ok());
    let dir = warehouse.join(PROJECTION_DIR);
    let provider = SnapshotTable::of(&ctx, &table, attribution::PROJECTION.clone(), old.clone())?;
    replace_table(&ctx, OLD, Arc::new(provider))?;
    let work = job.with_scratch(&ctx, async |scratch| {
        let how = crate::app::materialize(settings, scratch);
        if let Some(previous) = &previous {
            if let Some(done) =
                incremental(&ctx, settings, warehouse, previous, &latest, &how, &dir).await?
            {
                return Ok((Update::Incremental, done));
            }
            info!("the versions the stored projection was computed from cannot be read: computing it from everything");
        }
        full(&ctx, settings, warehouse, &latest, &how, &dir)
            .await
            .map(|add| (Update::Full, (add, None)))
    });
    let (update, (add, dates)) = work.await?;
    let remove: Vec<DataFile> = match &dates {
        Some(dates) => old
            .into_iter()
            .filter(|f| dates.contains(&f.date))
            .collect(),
        None => old,
    };
    let mut rewritten: BTreeSet<i32> = add.iter().chain(&remove).map(|f| f.date).collect();
    if let Some(dates) = dates {
        rewritten.extend(dates);
    }
    let rows = old_rows - remove.iter().map(|f| f.rows).sum::<u64>()
        + add.iter().map(|f| f.rows).sum::<u64>();
    let change = Change {
        add,
        remove,
        properties: HashMap::from([inputs]),
        app_metadata: HashMap::from([(
            "marketing-analytics.projection".to_string(),
            serde_json::json!(update),
        )]),
    };
    let version = delta::commit(&mut table, change).await?;
    Ok(Stored {
        update,
        rows,
        dates: rewritten
            .into_iter()
            .map(crate::calendar::format_date)
            .collect(),
        version,
    })
}

/// The projection of everything as of `latest`, written as data files (not committed).
async fn full(
    ctx: &SessionContext,
    settings: &Settings,
    warehouse: &Path,
    latest: &Snapshot,
    how: &attribution::Materialize,
    dir: &Path,
) -> Result<Vec<DataFile>> {
    for (kind, name) in [
        (TableKind::Clickstream, attribution::tables::EVENTS),
        (TableKind::Purchases, attribution::tables::PURCHASES),
    ] {
        register_table(ctx, warehouse, kind, name, latest).await?;
    }
    let df = by_date(transform(ctx, settings, how).await?)?;
    write_data_files(df, dir, attribution::PROJECTION.clone(), &settings.run_id)
        .await
        .map_err(Error::unwrap_datafusion)
}

/// The transform over the registered `events` and `purchases` (extra columns such as `date`
/// are not read).
async fn transform(
    ctx: &SessionContext,
    settings: &Settings,
    how: &attribution::Materialize,
) -> Result<DataFrame> {
    let result =
        attribution::transform_with(ctx, settings.engine, how, crate::app::dedup(settings))
            .await
            .map_err(Error::unwrap_datafusion)?;
    Ok(result.projection)
}

/// `projection` with its `date` (of purchaseTime), sorted by date and purchaseId: the order
/// of the stored projection's files.
fn by_date(projection: DataFrame) -> Result<DataFrame> {
    sorted(projection.with_column("date", cast(ident("purchaseTime"), DataType::Date32))?)
}

fn sorted(df: DataFrame) -> Result<DataFrame> {
    Ok(df.sort(vec![
        ident("date").sort(true, false),
        ident("purchaseId").sort(true, false),
    ])?)
}

/// Writes a projection (schema `attribution::PROJECTION`) as `date=YYYY-MM-DD/` partitions of
/// purchaseTime under `dir` (a run's `--partition-by date`), each sorted by purchaseId;
/// returns its rows.
pub async fn write_projection_by_date(projection: DataFrame, dir: &Path) -> Result<u64> {
    let dates = crate::storage::warehouse::write_partitioned(
        by_date(projection)?,
        dir,
        attribution::PROJECTION.clone(),
    )
    .await?;
    Ok(dates.iter().map(|(_, rows)| rows).sum())
}

/// The affected purchases' rows computed again and the dates whose rows differ written (not
/// committed): the data files, and the dates whose old files they replace. `None` when the
/// versions `previous` names cannot be read.
async fn incremental(
    ctx: &SessionContext,
    settings: &Settings,
    warehouse: &Path,
    previous: &Snapshot,
    latest: &Snapshot,
    how: &attribution::Materialize,
    dir: &Path,
) -> Result<Option<(Vec<DataFile>, Option<BTreeSet<i32>>)>> {
    for (kind, changed, all) in [
        (
            TableKind::Clickstream,
            incremental::CHANGED_EVENTS,
            incremental::ALL_EVENTS,
        ),
        (
            TableKind::Purchases,
            incremental::CHANGED_PURCHASES,
            incremental::ALL_PURCHASES,
        ),
    ] {
        let (from, to) = (previous.version(kind), latest.version(kind));
        if register_changes(ctx, warehouse, kind, changed, from, to)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        register_table(ctx, warehouse, kind, all, latest).await?;
    }
    let affected = incremental::affected(ctx).await?;
    incremental::register_affected(ctx, &affected).await?;
    let schema = projection_with_date();
    let new = canonical(
        &by_date(transform(ctx, settings, how).await?)?
            .collect()
            .await?,
        &schema,
    )?;
    let old_sql = format!(
        "SELECT * FROM {OLD} WHERE {}(key_hash(purchaseId)) ORDER BY date, purchaseId",
        incremental::AFFECTED_PURCHASE
    );
    let old = canonical(&ctx.sql(&old_sql).await?.collect().await?, &schema)?;
    let dates = differing_dates(&old, &new)?;
    info!(
        users = affected.users.len(),
        purchases = affected.purchases.len(),
        rows = new.num_rows(),
        dates = dates.len(),
        "computed the projection again for what the conversion changed"
    );
    if dates.is_empty() {
        return Ok(Some((Vec::new(), Some(dates))));
    }
    replace_table(
        ctx,
        NEW,
        Arc::new(MemTable::try_new(schema, vec![vec![new]])?),
    )?;
    let in_dates = incremental::in_dates(&dates);
    let sql = format!(
        "SELECT * FROM {OLD} WHERE {in_dates} AND NOT {}(key_hash(purchaseId)) \
         UNION ALL SELECT * FROM {NEW} WHERE {in_dates}",
        incremental::AFFECTED_PURCHASE
    );
    let df = sorted(ctx.sql(&sql).await?)?;
    let add = write_data_files(df, dir, attribution::PROJECTION.clone(), &settings.run_id)
        .await
        .map_err(Error::unwrap_datafusion)?;
    Ok(Some((add, Some(dates))))
}

/// The projection's columns, then `date`.
fn projection_with_date() -> SchemaRef {
    let mut fields: Vec<Field> = attribution::PROJECTION
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(delta::DATE, DataType::Date32, false));
    Arc::new(Schema::new(fields))
}

/// `batches` as one batch of `schema`'s types (the stored and the computed rows compare
/// column by column).
fn canonical(batches: &[RecordBatch], schema: &SchemaRef) -> Result<RecordBatch> {
    let mut cast_batches = Vec::with_capacity(batches.len());
    for batch in batches {
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| {
                let column = batch.column_by_name(f.name()).ok_or_else(|| {
                    Error::Accounting(format!("the projection's rows have no column {}", f.name()))
                })?;
                Ok(datafusion::arrow::compute::cast(column, f.data_type())?)
            })
            .collect::<Result<_>>()?;
        cast_batches.push(RecordBatch::try_new(schema.clone(), columns)?);
    }
    Ok(datafusion::arrow::compute::concat_batches(
        schema,
        &cast_batches,
    )?)
}

/// The dates whose rows differ between `old` and `new` (both sorted by date, purchaseId).
fn differing_dates(old: &RecordBatch, new: &RecordBatch) -> Result<BTreeSet<i32>> {
    let (old_runs, new_runs) = (date_runs(old)?, date_runs(new)?);
    let dates: BTreeSet<i32> = old_runs.keys().chain(new_runs.keys()).copied().collect();
    Ok(dates
        .into_iter()
        .filter(|d| match (old_runs.get(d), new_runs.get(d)) {
            (Some(&(a, n)), Some(&(b, m))) => {
                n != m || old.slice(a, n).columns() != new.slice(b, m).columns()
            }
            _ => true,
        })
        .collect())
}

/// Each date's first row and row count in `batch` (sorted by date).
fn date_runs(batch: &RecordBatch) -> Result<BTreeMap<i32, (usize, usize)>> {
    let dates = batch
        .column_by_name(delta::DATE)
        .and_then(|c| c.as_primitive_opt::<Date32Type>())
        .ok_or_else(|| Error::Accounting("the projection's rows have no date".into()))?;
    let mut runs: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
    for (i, d) in dates.values().iter().enumerate() {
        runs.entry(*d).or_insert((i, 0)).1 += 1;
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::TimestampMicrosecondArray;
    use datafusion::arrow::array::{BooleanArray, Date32Array, Float64Array, StringArray};

    /// Projection rows (purchaseId, sessionId, date), sorted as the stored ones are.
    fn rows(rows: &[(&str, &str, i32)]) -> RecordBatch {
        let schema = projection_with_date();
        let text = |f: &dyn Fn(&(&str, &str, i32)) -> String| -> ArrayRef {
            Arc::new(rows.iter().map(f).map(Some).collect::<StringArray>())
        };
        let n = rows.len();
        let time = TimestampMicrosecondArray::from(vec![0i64; n]);
        let time = datafusion::arrow::compute::cast(&time, schema.field(1).data_type()).unwrap();
        RecordBatch::try_new(
            schema,
            vec![
                text(&|r| r.0.to_string()),
                time,
                Arc::new(Float64Array::from(vec![1.0; n])),
                Arc::new(BooleanArray::from(vec![true; n])),
                text(&|r| r.1.to_string()),
                text(&|_| "c".to_string()),
                text(&|_| "ch".to_string()),
                Arc::new(rows.iter().map(|r| Some(r.2)).collect::<Date32Array>()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn only_the_dates_whose_rows_differ_are_rewritten() {
        let old = rows(&[
            ("p1", "s1", 1),
            ("p2", "s2", 2),
            ("p3", "s3", 2),
            ("p4", "s4", 4),
        ]);
        // Date 1 the same; date 2 with another session for p3; p4 gone from date 4 and a
        // purchase new on date 5.
        let new = rows(&[
            ("p1", "s1", 1),
            ("p2", "s2", 2),
            ("p3", "s9", 2),
            ("p5", "s5", 5),
        ]);
        let dates = differing_dates(&old, &new).unwrap();
        assert_eq!(dates, [2, 4, 5].into_iter().collect());
        assert!(differing_dates(&old, &old).unwrap().is_empty());
        // One row fewer on a date differs too.
        let fewer = rows(&[("p1", "s1", 1), ("p2", "s2", 2), ("p4", "s4", 4)]);
        assert_eq!(
            differing_dates(&old, &fewer).unwrap(),
            [2].into_iter().collect()
        );
    }
}
