//! The warehouse: raw exports converted into Delta Lake tables partitioned by date, then
//! queried for any period reading only the dates it needs.
//!
//! Tables: `WAREHOUSE/clickstream` (by the date of eventTime, each file sorted by userId,
//! eventTime) and `WAREHOUSE/purchases` (by the date of purchaseTime), with the decoded
//! inputs' columns (see `input::schema`): typed timestamps, billingCost as decimal, isConfirmed
//! as bool, and the attributes parsed into campaignId, channelId and purchaseId next to the raw
//! text. Row groups carry min/max statistics.
//!
//! A conversion adds the rows of its new files to the dates they touch and keeps what was
//! there. Each table records the files it holds rows of (`storage::sources`): a file converted
//! before is skipped, a file whose content changed replaces its own earlier rows and nothing
//! else, and `--replace-dates` replaces every date the files touch with their rows alone. A
//! table changes in one transaction: readers see all of it or none.
//!
//! The conversion then brings the stored attribution projection up to date
//! (`app::projection`: computed again for what the changed rows can reach, only the dates
//! that differ rewritten), in one transaction whose property names the versions of
//! `clickstream` and `purchases` it was computed from. A period reads the three tables at
//! those versions (`storage::warehouse::Snapshot`): the work of a conversion that did not
//! finish is never seen, and the next one carries it on.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use datafusion::prelude::SessionContext;
use tracing::{info, info_span, Instrument};

use crate::app::job::JobRun;
use crate::app::Settings;
use crate::attribution;
use crate::engine::session_context_with_limit;
use crate::error::{Error, Result};
use crate::input::{resolve, InputFile, TableKind};
use crate::storage::claim::{Input, Marker};
use crate::storage::delta::{self, AsOf, Change, DataFile};
use crate::storage::sources::{sha256_file, Seen, Sources};
use crate::storage::warehouse::{
    file_schema, refuse_old_layout, rewrite_without, table_dir, write_data_files, PROJECTION_DIR,
};

/// What a conversion did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConvertReport {
    /// Dates written per table, with their new rows.
    pub clickstream_dates: Vec<(String, u64)>,
    pub purchases_dates: Vec<(String, u64)>,
    /// Input files skipped: converted before with the same content.
    pub unchanged_files: Vec<String>,
    /// Input files whose earlier rows were replaced: converted before with other content.
    pub changed_files: Vec<String>,
    pub quarantined: u64,
    /// Rows of the projection stored for the whole warehouse.
    pub projection_rows: u64,
    /// How the stored projection was brought up to date, and the dates rewritten.
    pub projection_update: crate::app::projection::Update,
    pub projection_dates: Vec<String>,
    /// The tables' versions after the conversion.
    pub versions: HashMap<String, u64>,
}

/// One table's side of a conversion: its Delta table and the input files to decode.
struct Plan {
    kind: TableKind,
    table: deltalake::DeltaTable,
    sources: Sources,
    decode: Vec<InputFile>,
    changed: BTreeSet<u32>,
    /// The data files written for it, not yet committed.
    new: Vec<DataFile>,
}

/// Converts raw exports into the warehouse: adds the rows of the files it has not converted,
/// replaces those of the files that changed, then stores the projection of it all.
pub async fn convert(
    settings: &Settings,
    clickstream: &str,
    purchases: &str,
    warehouse: &Path,
) -> Result<ConvertReport> {
    let span = info_span!("job", job = %"convert");
    async {
        let job =
            JobRun::claim_warehouse(settings, warehouse, &Input::exports(clickstream, purchases))?;
        let settings = job.settings();
        refuse_old_layout(warehouse)?;
        // What a killed conversion left: its scratch (its data files no commit named stay
        // invisible, for `vacuum` to remove).
        crate::storage::output::reclaim_all_in(warehouse)?;
        let ctx = session_context_with_limit(
            settings.threads,
            settings.memory_limit,
            settings.spill_dir.as_deref(),
        )?;
        let mut report = ConvertReport::default();
        let mut plans = Vec::new();
        for (kind, spec) in [
            (TableKind::Clickstream, clickstream),
            (TableKind::Purchases, purchases),
        ] {
            let files = resolve(spec, kind.name(), settings.delimiter)?;
            plans.push(plan(&ctx, warehouse, kind, files, &mut report).await?);
        }
        let inputs = attribution::Inputs {
            clickstream: plans[0].decode.clone(),
            purchases: plans[1].decode.clone(),
        };
        let extracted =
            attribution::extract(&ctx, &inputs, settings.threads, None, job.quarantine())?;
        // Every table's new files are written, and the bad-row limit settled on both, before
        // either table commits: a conversion over the limit adds no row anywhere.
        let mut written = Ok(());
        for plan in &mut plans {
            written = write_new(&ctx, settings, warehouse, plan)
                .await
                .map_err(Error::unwrap_datafusion);
            if written.is_err() {
                break;
            }
        }
        let settled = written.and_then(|()| {
            [&extracted.clickstream, &extracted.purchases]
                .iter()
                .try_for_each(|ingest| ingest.settle_bad_rows(settings.max_bad_rows))
        });
        if let Err(e) = settled {
            for plan in &plans {
                discard(&table_dir(warehouse, plan.kind), &plan.new);
            }
            return Err(e);
        }
        for plan in &mut plans {
            let (dates, version) = commit_plan(settings, warehouse, plan).await?;
            info!(
                table = plan.kind.name(),
                dates = dates.len(),
                version,
                "converted"
            );
            report
                .versions
                .insert(plan.kind.name().to_string(), version);
            match plan.kind {
                TableKind::Clickstream => report.clickstream_dates = dates,
                TableKind::Purchases => report.purchases_dates = dates,
            }
        }
        for ingest in [&extracted.clickstream, &extracted.purchases] {
            report.quarantined += ingest.stats.total().quarantined;
        }
        drop(ctx);
        let stored = crate::app::projection::store(&job, warehouse).await?;
        info!(
            rows = stored.rows,
            version = stored.version,
            update = ?stored.update,
            dates = stored.dates.len(),
            "stored the projection"
        );
        report.projection_rows = stored.rows;
        report.projection_update = stored.update;
        report.projection_dates = stored.dates;
        report
            .versions
            .insert(PROJECTION_DIR.to_string(), stored.version);
        // The conversion's summary, in the warehouse's marker: what it read and wrote.
        let marker_path = warehouse.join(crate::storage::claim::WAREHOUSE_MARKER);
        let marker = Marker::read(&marker_path).unwrap_or_else(|| Marker::ours(Vec::new()));
        let input_files = crate::app::summary::InputFiles::new(
            &extracted.clickstream.stats,
            &extracted.purchases.stats,
        );
        let marker = Marker {
            summary: Some(serde_json::json!({
                "last_conversion": {
                    "run_id": settings.run_id,
                    "input_files": input_files,
                    "written": report,
                }
            })),
            ..marker
        };
        job.commit_with(&marker)?;
        Ok(report)
    }
    .instrument(span)
    .await
}

/// Opens (or creates) `kind`'s table and sorts its input files into those to skip and those
/// to decode, numbered for their rows' sourceRow.
async fn plan(
    ctx: &SessionContext,
    warehouse: &Path,
    kind: TableKind,
    files: Vec<InputFile>,
    report: &mut ConvertReport,
) -> Result<Plan> {
    let location = table_dir(warehouse, kind).display().to_string();
    let table = match delta::open(ctx, &location, AsOf::Latest).await? {
        Some(t) => t,
        None => delta::create(ctx, &location, &file_schema(kind), HashMap::new()).await?,
    };
    let mut sources = Sources::of(&delta::properties(&table)?, &location)?;
    let mut next = sources.next_number();
    let mut decode = Vec::new();
    let mut changed = BTreeSet::new();
    for mut file in files {
        let path = crate::storage::claim::absolute(&file.path)?;
        let name = path.display().to_string();
        let hash = sha256_file(&path)?;
        match sources.see(&name, file.size, &hash, &mut next) {
            Seen::Same => report.unchanged_files.push(name),
            Seen::New(number) => {
                file.index = number;
                decode.push(file);
            }
            Seen::Changed(number) => {
                changed.insert(number);
                report.changed_files.push(name);
                file.index = number;
                decode.push(file);
            }
        }
    }
    Ok(Plan {
        kind,
        table,
        sources,
        decode,
        changed,
        new: Vec::new(),
    })
}

/// Writes `plan`'s new rows as data files of its table, not yet committed (`plan.new`).
async fn write_new(
    ctx: &SessionContext,
    settings: &Settings,
    warehouse: &Path,
    plan: &mut Plan,
) -> Result<()> {
    if plan.decode.is_empty() {
        return Ok(());
    }
    let (table, time, order) = match plan.kind {
        TableKind::Clickstream => (
            "events",
            "eventTime",
            "userId, eventTime, eventId, sourceRow",
        ),
        TableKind::Purchases => (
            "purchases",
            "purchaseTime",
            "purchaseTime, purchaseId, sourceRow",
        ),
    };
    let sql = format!("SELECT *, CAST({time} AS DATE) AS date FROM {table} ORDER BY date, {order}");
    let df = ctx.sql(&sql).await?;
    let dir = table_dir(warehouse, plan.kind);
    plan.new = write_data_files(df, &dir, file_schema(plan.kind), &settings.run_id).await?;
    Ok(())
}

/// Commits `plan`'s new files (and the replacement of changed files' rows and, with
/// `--replace-dates`, of the touched dates' rows) to its table in one transaction. Returns the
/// dates written with their rows, and the table's version.
async fn commit_plan(
    settings: &Settings,
    warehouse: &Path,
    plan: &mut Plan,
) -> Result<(Vec<(String, u64)>, u64)> {
    let kind = plan.kind;
    let dir = table_dir(warehouse, kind);
    if plan.decode.is_empty() {
        return Ok((Vec::new(), plan.table.version().unwrap_or(0)));
    }
    let mut add = std::mem::take(&mut plan.new);
    let existing = delta::files(&plan.table).await?;
    let touched: BTreeSet<i32> = add.iter().map(|f| f.date).collect();
    let mut remove = Vec::new();
    for (n, file) in existing.into_iter().enumerate() {
        if settings.replace_dates && touched.contains(&file.date) {
            remove.push(file);
            continue;
        }
        let holds_changed = match &file.sources {
            Some(numbers) => numbers.iter().any(|n| plan.changed.contains(n)),
            None => !plan.changed.is_empty(),
        };
        if holds_changed {
            let kept = format!("{}-kept-{n}", settings.run_id);
            if let Some(rewritten) =
                rewrite_without(&dir, &file, &plan.changed, &file_schema(kind), &kept)?
            {
                add.push(rewritten);
            }
            remove.push(file);
        }
    }
    let dates = written_dates(&add, &touched);
    let change = Change {
        add,
        remove,
        properties: HashMap::from([plan.sources.property()?]),
        app_metadata: HashMap::from([(
            "marketing-analytics.run".to_string(),
            serde_json::json!(settings.run_id),
        )]),
    };
    let added = change.add.clone();
    match delta::commit(&mut plan.table, change).await {
        Ok(version) => Ok((dates, version)),
        Err(e) => {
            discard(&dir, &added);
            Err(e)
        }
    }
}

/// Removes data files this conversion wrote and did not commit (and their date's folder when
/// that leaves it empty); what cannot be removed stays for `vacuum`.
fn discard(dir: &Path, files: &[DataFile]) {
    for f in files {
        let path = dir.join(&f.path);
        let _ = std::fs::remove_file(&path);
        if let Some(folder) = path.parent() {
            let _ = std::fs::remove_dir(folder);
        }
    }
}

/// The new rows per date of `files` (the dates the inputs touched).
fn written_dates(files: &[DataFile], touched: &BTreeSet<i32>) -> Vec<(String, u64)> {
    touched
        .iter()
        .map(|d| {
            let rows = files.iter().filter(|f| f.date == *d).map(|f| f.rows).sum();
            (crate::calendar::format_date(*d), rows)
        })
        .collect()
}
