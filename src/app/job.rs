//! One job's lifecycle, written once: claim the destination (the refusals and the lock of
//! `storage::claim`), stage what the job writes, give it a scratch location and the directory
//! its reject sinks write to, commit when everything succeeded, and clean up (staging,
//! scratch, spill directory, lock) whether it did or not.
//!
//! Every use case runs its work inside a [`JobRun`]: `run` and its parts (a part is a job
//! staged inside the run's staging directory, committed with it), `attribution`, a mart,
//! `period` and `weekly`, `convert` and the projection it stores.

use std::path::{Path, PathBuf};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;

use crate::app::{layout, Settings};
use crate::error::Result;
use crate::input::BadRows;
use crate::storage::claim::{claim, Claim, Destination, Input, Marker, WAREHOUSE_MARKER};
use crate::storage::output::{write_part, Staging};
use crate::storage::scratch::Scratch;

/// Where a job writes (inside the staging directory of a larger output, for `run`'s parts)
/// and where that is once committed: messages name the second.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub write: &'a Path,
    pub shown: &'a Path,
}

impl<'a> Target<'a> {
    /// A destination written where it is.
    pub fn at(path: &'a Path) -> Self {
        Target {
            write: path,
            shown: path,
        }
    }
}

/// A job from its claim to its commit. Dropped without a commit (an error), it removes what
/// it staged, then releases its claim.
pub(crate) struct JobRun {
    settings: Settings,
    // Declared before the claim: the staging is removed while the lock is still held.
    commit: Commit,
    _claim: Option<Claim>,
    /// Where the work is committed, and its name in messages.
    dest: PathBuf,
    shown: PathBuf,
    rejected: PathBuf,
    rejected_shown: PathBuf,
    started: std::time::Instant,
}

enum Commit {
    /// Everything is written into a staging directory that replaces the destination whole.
    Staged(Staging),
    /// The job commits its parts in place as it writes them (a warehouse's dates); its commit
    /// records what it did in the destination's marker.
    InPlace,
}

impl JobRun {
    /// Claims `dest` for a job reading `inputs` and stages it.
    pub fn claim(settings: &Settings, dest: &Path, inputs: &[Input]) -> Result<JobRun> {
        let claim = claim(dest, Destination::Output, inputs, settings.overwrite)?;
        let mut job = JobRun::within(&settings.claimed(&claim), Target::at(dest), None)?;
        job._claim = Some(claim);
        Ok(job)
    }

    /// Claims the warehouse `dest` for a job reading `inputs`, which commits its parts in
    /// place; quarantined rows go to `dest/_rejected/RUN_ID/`.
    pub fn claim_warehouse(settings: &Settings, dest: &Path, inputs: &[Input]) -> Result<JobRun> {
        let claim = claim(dest, Destination::Warehouse, inputs, settings.overwrite)?;
        let settings = settings.claimed(&claim);
        let rejected = dest.join(layout::REJECTED).join(&settings.run_id);
        Ok(JobRun {
            commit: Commit::InPlace,
            _claim: Some(claim),
            dest: dest.to_path_buf(),
            shown: dest.to_path_buf(),
            rejected_shown: rejected.clone(),
            rejected,
            settings,
            started: std::time::Instant::now(),
        })
    }

    /// A job writing `dest` inside a destination its caller claimed (`settings` are the
    /// caller's, claimed): staged, committed by [`JobRun::commit`]. Quarantined rows go to
    /// `rejected` (default: `DEST/_rejected/`).
    pub fn within(settings: &Settings, dest: Target, rejected: Option<Target>) -> Result<JobRun> {
        let staging = Staging::new(dest.write)?;
        let (rejected, rejected_shown) = match rejected {
            Some(r) => (r.write.to_path_buf(), r.shown.to_path_buf()),
            None => (
                staging.path().join(layout::REJECTED),
                dest.shown.join(layout::REJECTED),
            ),
        };
        Ok(JobRun {
            settings: settings.clone(),
            commit: Commit::Staged(staging),
            _claim: None,
            dest: dest.write.to_path_buf(),
            shown: dest.shown.to_path_buf(),
            rejected,
            rejected_shown,
            started: std::time::Instant::now(),
        })
    }

    /// This job with its quarantined rows going to `rejected` instead.
    pub fn rejecting_to(self, rejected: Target) -> JobRun {
        JobRun {
            rejected: rejected.write.to_path_buf(),
            rejected_shown: rejected.shown.to_path_buf(),
            ..self
        }
    }

    /// The settings the job runs with (spill files in its claim's directory).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Seconds since the job was claimed (its summary's duration).
    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Where the job writes what its commit makes visible.
    pub fn dir(&self) -> &Path {
        match &self.commit {
            Commit::Staged(staging) => staging.path(),
            Commit::InPlace => &self.dest,
        }
    }

    /// The destination's name in messages.
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    /// A part of this job's output named `name`: where it is written and its name in messages.
    pub fn part(&self, name: &str) -> (PathBuf, PathBuf) {
        (self.dir().join(name), self.shown.join(name))
    }

    /// Where the reject sinks write, when the job quarantines bad rows.
    pub fn quarantine(&self) -> Option<&Path> {
        (self.settings.on_bad_rows == BadRows::Quarantine).then_some(self.rejected.as_path())
    }

    /// The quarantine directory as a target for a part of this job (which shares it).
    pub fn rejected(&self) -> Target<'_> {
        Target {
            write: &self.rejected,
            shown: &self.rejected_shown,
        }
    }

    /// Runs `work` with a scratch location beside the destination (or under `--scratch`),
    /// removed afterwards whether the work succeeded or not. `ctx` provides the object store
    /// of a `--scratch` URL.
    pub async fn with_scratch<T>(
        &self,
        ctx: &SessionContext,
        work: impl AsyncFnOnce(&Scratch) -> Result<T>,
    ) -> Result<T> {
        let scratch = Scratch::new(self.settings.scratch.as_deref(), &self.dest, ctx)?;
        let outcome = work(&scratch).await;
        let removed = scratch.remove().await;
        let value = outcome?;
        removed?;
        Ok(value)
    }

    /// Writes `batches` as the dataset `name` inside this job (a part of its own, staged and
    /// committed into this job's directory). Returns the rows.
    pub fn write_dataset(
        &self,
        name: &str,
        batches: &[RecordBatch],
        schema: SchemaRef,
    ) -> Result<u64> {
        let (write, shown) = self.part(name);
        let part = JobRun::within(
            &self.settings,
            Target {
                write: &write,
                shown: &shown,
            },
            None,
        )?;
        let rows = write_part(batches, part.dir(), schema)?;
        part.commit()?;
        Ok(rows)
    }

    /// Commits with our plain marker.
    pub fn commit(self) -> Result<()> {
        self.commit_with(&Marker::ours(Vec::new()))
    }

    /// Commits with `marker`: in the staged output's `_SUCCESS`, which then replaces the
    /// destination in one step; or, in place, as the warehouse's `_warehouse.json`.
    pub fn commit_with(self, marker: &Marker) -> Result<()> {
        match self.commit {
            Commit::Staged(staging) => staging.commit_with(marker),
            Commit::InPlace => marker.replace(&self.dest.join(WAREHOUSE_MARKER)),
        }
    }
}
