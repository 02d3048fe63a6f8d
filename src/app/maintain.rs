//! `optimize` and `vacuum`: upkeep of a warehouse that conversions append to often. Each takes
//! the warehouse's lock, so no conversion runs meanwhile.

use std::collections::HashMap;
use std::path::Path;

use tracing::info;

use crate::app::job::JobRun;
use crate::app::Settings;
use crate::engine::session_context;
use crate::error::Result;
use crate::input::TableKind;
use crate::storage::claim::{Marker, WAREHOUSE_MARKER};
use crate::storage::delta::{self, AsOf, Change};
use crate::storage::warehouse::{refuse_old_layout, table_dir, Read, Snapshot, PROJECTION_DIR};

/// What `optimize` did to one table: files added and removed.
pub type Compacted = (String, u64, u64);

/// Compacts each date's small files of `clickstream` and `purchases` into files of about
/// `target_bytes`. The stored projection, computed from the same rows, is then named the
/// compacted versions' (when it was the newest), so periods read the compacted files.
pub async fn optimize_job(
    settings: &Settings,
    warehouse: &Path,
    target_bytes: u64,
) -> Result<Vec<Compacted>> {
    let job = JobRun::claim_warehouse(settings, warehouse, &[])?;
    refuse_old_layout(warehouse)?;
    let ctx = session_context(settings.threads);
    let named = Snapshot::resolve(&ctx, warehouse, Read::default()).await?;
    let newest = Snapshot::latest_inputs(&ctx, warehouse).await?;
    let mut done = Vec::new();
    let mut versions = newest;
    for kind in [TableKind::Clickstream, TableKind::Purchases] {
        let location = table_dir(warehouse, kind).display().to_string();
        let Some(table) = delta::open(&ctx, &location, AsOf::Latest).await? else {
            continue;
        };
        let (table, added, removed) = delta::optimize(table, target_bytes).await?;
        info!(table = kind.name(), added, removed, "compacted");
        let version = table.version().unwrap_or(0);
        match kind {
            TableKind::Clickstream => versions.clickstream = version,
            TableKind::Purchases => versions.purchases = version,
        }
        done.push((kind.name().to_string(), added, removed));
    }
    let current = (named.clickstream, named.purchases) == (newest.clickstream, newest.purchases);
    let location = warehouse.join(PROJECTION_DIR).display().to_string();
    if let (true, Some(mut projection)) =
        (current, delta::open(&ctx, &location, AsOf::Latest).await?)
    {
        delta::commit(
            &mut projection,
            Change {
                add: Vec::new(),
                remove: Vec::new(),
                properties: HashMap::from([versions.versions_property()?]),
                app_metadata: HashMap::new(),
            },
        )
        .await?;
    }
    commit_keeping_marker(job, warehouse)?;
    Ok(done)
}

/// Removes the files of the warehouse's tables that no version younger than `retention`
/// references, keeping the versions the stored projection names; with `dry_run` lists them
/// only. Returns them, by table.
pub async fn vacuum_job(
    settings: &Settings,
    warehouse: &Path,
    retention: std::time::Duration,
    dry_run: bool,
) -> Result<Vec<(String, Vec<String>)>> {
    let job = JobRun::claim_warehouse(settings, warehouse, &[])?;
    refuse_old_layout(warehouse)?;
    let ctx = session_context(settings.threads);
    let named = Snapshot::resolve(&ctx, warehouse, Read::default()).await?;
    let mut done = Vec::new();
    for (table, keep) in [
        (TableKind::Clickstream.name(), Some(named.clickstream)),
        (TableKind::Purchases.name(), Some(named.purchases)),
        (PROJECTION_DIR, named.projection),
    ] {
        let location = warehouse.join(table).display().to_string();
        let Some(t) = delta::open(&ctx, &location, AsOf::Latest).await? else {
            continue;
        };
        let keep: Vec<u64> = keep.into_iter().collect();
        let files = delta::vacuum(t, retention, &keep, dry_run).await?;
        info!(table, files = files.len(), dry_run, "vacuumed");
        done.push((table.to_string(), files));
    }
    commit_keeping_marker(job, warehouse)?;
    Ok(done)
}

/// Ends `job` with the warehouse's marker as it was (the last conversion's summary).
fn commit_keeping_marker(job: JobRun, warehouse: &Path) -> Result<()> {
    let marker =
        Marker::read(&warehouse.join(WAREHOUSE_MARKER)).unwrap_or_else(|| Marker::ours(Vec::new()));
    job.commit_with(&marker)
}
