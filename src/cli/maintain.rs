//! `marketing-analytics optimize` and `vacuum`: compact a warehouse's small files, and remove
//! the files no version within the retention needs (docs/warehouse.md).

use std::path::PathBuf;

use super::options::{settings, Runtime};
use super::print::note;
use super::Cli;

#[derive(clap::Args, Debug)]
pub struct OptimizeArgs {
    /// Warehouse directory.
    #[arg(long, value_name = "DIR")]
    pub warehouse: PathBuf,
    /// Size a compacted data file aims at, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    pub target_size: u64,
    #[command(flatten)]
    pub runtime: Runtime,
}

#[derive(clap::Args, Debug)]
pub struct VacuumArgs {
    /// Warehouse directory.
    #[arg(long, value_name = "DIR")]
    pub warehouse: PathBuf,
    /// Keep every file a version of the last HOURS needs (`--as-of` reads them); Delta
    /// Lake's default retention is a week.
    #[arg(long, value_name = "HOURS", default_value_t = 168)]
    pub retention_hours: u64,
    /// List the files that would be removed, and remove none.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub runtime: Runtime,
}

pub async fn optimize(cli: &Cli, args: &OptimizeArgs) -> anyhow::Result<()> {
    let settings = settings(cli.quiet, &args.runtime, None, None, None, None)?;
    let done =
        crate::app::maintain::optimize_job(&settings, &args.warehouse, args.target_size).await?;
    for (table, added, removed) in done {
        note(format!("{table}: {removed} files compacted into {added}"))?;
    }
    Ok(())
}

pub async fn vacuum(cli: &Cli, args: &VacuumArgs) -> anyhow::Result<()> {
    let settings = settings(cli.quiet, &args.runtime, None, None, None, None)?;
    let retention = std::time::Duration::from_secs(args.retention_hours * 3600);
    let done =
        crate::app::maintain::vacuum_job(&settings, &args.warehouse, retention, args.dry_run)
            .await?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for (table, files) in done {
        note(format!("{table}: {verb} {} files", files.len()))?;
        if args.dry_run {
            for f in files {
                println!("{f}");
            }
        }
    }
    Ok(())
}
