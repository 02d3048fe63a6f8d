//! Claiming a destination before a job does any work: what the job may replace, and one
//! writer at a time.
//!
//! A job replaces only what this program wrote: a dataset or run output whose `_SUCCESS`
//! carries our [`Marker`], a warehouse holding our `_warehouse.json`, or nothing at all (a
//! missing path, an empty directory). Anything else is refused unless the user says
//! `--overwrite`. An output that is, contains or lies inside one of the job's inputs is always
//! refused: replacing it would delete the input, and a later run would read the output back as
//! input. Then an advisory lock (`flock`) is taken, so a second job on the same destination
//! fails at once, naming the process that holds it, instead of racing the first.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Component, Path, PathBuf};

use tracing::warn;

use crate::error::{Error, Result};

/// Who wrote a `_SUCCESS` (its content, as JSON, like the S3A committer's), or a warehouse's
/// `_warehouse.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Marker {
    pub writer: String,
    pub version: String,
    /// Input files whose rows a warehouse partition holds (absolute paths); empty elsewhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// What the job that wrote the dataset read and wrote (the attribution job's summary), as
    /// the S3A committer's `_SUCCESS` holds its job's: a dataset folder keeps to its Parquet
    /// files and this marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<serde_json::Value>,
    /// The partition files a warehouse's stored projection was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<serde_json::Value>,
}

/// The `writer` of our markers.
pub const WRITER: &str = "marketing-analytics";
/// The marker at the root of a warehouse.
pub const WAREHOUSE_MARKER: &str = "_warehouse.json";

impl Marker {
    pub fn ours(sources: Vec<String>) -> Marker {
        Marker {
            writer: WRITER.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            sources,
            summary: None,
            inputs: None,
        }
    }

    /// The marker in `file`, if it is one of ours.
    pub fn read(file: &Path) -> Option<Marker> {
        let text = std::fs::read(file).ok()?;
        let marker: Marker = serde_json::from_slice(&text).ok()?;
        (marker.writer == WRITER).then_some(marker)
    }

    pub fn write(&self, file: &Path) -> Result<()> {
        let text = serde_json::to_string(self)? + "\n";
        std::fs::write(file, text).map_err(|e| Error::io(file, e))
    }

    /// Replaces the marker `file` with this one in one step (a rename), for a dataset already
    /// in place.
    pub fn replace(&self, file: &Path) -> Result<()> {
        let tmp = file.with_extension("tmp");
        self.write(&tmp)?;
        std::fs::rename(&tmp, file).map_err(|e| Error::io(file, e))
    }
}

/// What is being claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// A directory replaced as a whole when the job commits (an output dataset or run output).
    Output,
    /// A warehouse, updated partition by partition.
    Warehouse,
}

impl Destination {
    fn flag(self) -> &'static str {
        match self {
            Destination::Output => "--output",
            Destination::Warehouse => "--warehouse",
        }
    }
}

/// An input of the job, for the overlap check: its role ("clickstream") and path as given.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub what: &'a str,
    pub spec: &'a str,
}

impl<'a> Input<'a> {
    /// The two raw exports of a job.
    pub fn exports(clickstream: &'a str, purchases: &'a str) -> [Input<'a>; 2] {
        [
            Input {
                what: "clickstream",
                spec: clickstream,
            },
            Input {
                what: "purchases",
                spec: purchases,
            },
        ]
    }
}

/// A claimed destination: held until the job is over (the lock is released on drop).
#[derive(Debug)]
pub struct Claim {
    _lock: File,
    path: PathBuf,
    spill: PathBuf,
}

impl Claim {
    /// A directory of this claim's, beside the destination, for the job's spill files: removed
    /// with the claim, on SIGTERM/SIGINT, or (after SIGKILL) by the next job there.
    pub fn spill_dir(&self) -> &Path {
        &self.spill
    }
}

/// Claims `dest` for a job reading `inputs`: refuses URLs, outputs overlapping an input, and
/// (without `overwrite`) anything this program did not write; then takes the lock.
pub fn claim(dest: &Path, kind: Destination, inputs: &[Input], overwrite: bool) -> Result<Claim> {
    let flag = kind.flag();
    let shown = dest.display().to_string();
    if crate::input::is_url(&shown) {
        return Err(Error::Config(format!(
            "{flag} {shown}: writing to an object store is not supported; write to a local \
             directory (or a mounted file system) and copy it there"
        )));
    }
    let target = absolute(dest)?;
    for input in inputs {
        for root in input_roots(input.spec)? {
            let relation = if root == target {
                Some("is")
            } else if target.starts_with(&root) {
                Some("lies inside")
            } else if root.starts_with(&target) {
                Some("contains")
            } else {
                None
            };
            if let Some(relation) = relation {
                return Err(Error::Config(format!(
                    "{flag} {shown} {relation} the {} input {}: writing it would replace or \
                     read back the input. Choose a {flag} outside the inputs",
                    input.what,
                    root.display()
                )));
            }
        }
    }
    let (lock, path) = lock(dest, kind)?;
    crate::storage::cleanup::register(&path);
    crate::storage::output::reclaim(dest)?;
    let spill = crate::storage::output::temp_sibling(dest, "spill");
    let claim = Claim {
        _lock: lock,
        path,
        spill,
    };
    check_ownership(dest, kind, overwrite)?;
    std::fs::create_dir_all(&claim.spill).map_err(|e| Error::io(&claim.spill, e))?;
    crate::storage::cleanup::register(&claim.spill);
    Ok(claim)
}

/// Checks that `dest` may be replaced (or, for a warehouse, written into), and marks a new
/// warehouse as ours.
fn check_ownership(dest: &Path, kind: Destination, overwrite: bool) -> Result<()> {
    let flag = kind.flag();
    let meta = match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if kind == Destination::Warehouse {
                std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
                Marker::ours(Vec::new()).write(&dest.join(WAREHOUSE_MARKER))?;
            }
            return Ok(());
        }
        Err(e) => return Err(Error::io(dest, e)),
        Ok(meta) => meta,
    };
    let marker = match kind {
        Destination::Output => crate::storage::output::SUCCESS_MARKER,
        Destination::Warehouse => WAREHOUSE_MARKER,
    };
    let ours = meta.is_dir() && Marker::read(&dest.join(marker)).is_some();
    let empty = meta.is_dir() && is_empty_but_lock(dest, kind)?;
    if ours {
        return Ok(());
    }
    if !empty && !overwrite {
        let what = if meta.is_dir() {
            "a directory"
        } else if meta.is_symlink() {
            "a symbolic link"
        } else {
            "a file"
        };
        return Err(Error::Config(format!(
            "{flag} {} is {what} that marketing-analytics did not write (it has no {marker} of \
             ours), so it is left alone. Choose another {flag}, or give --overwrite to {}",
            dest.display(),
            match kind {
                Destination::Output => "replace it",
                Destination::Warehouse => "write the warehouse into it",
            }
        )));
    }
    if !empty {
        warn!(path = %dest.display(), "--overwrite: replacing what marketing-analytics did not write");
    }
    if kind == Destination::Warehouse {
        if !meta.is_dir() {
            return Err(Error::Config(format!(
                "{flag} {} is not a directory",
                dest.display()
            )));
        }
        Marker::ours(Vec::new()).write(&dest.join(WAREHOUSE_MARKER))?;
    }
    Ok(())
}

/// Whether a directory is empty, apart from the lock file a warehouse keeps inside.
fn is_empty_but_lock(dir: &Path, kind: Destination) -> Result<bool> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if kind == Destination::Warehouse && entry.file_name() == WAREHOUSE_LOCK {
            continue;
        }
        return Ok(false);
    }
    Ok(true)
}

const WAREHOUSE_LOCK: &str = ".lock";

/// The lock file of a destination: beside an output (which is swapped as a whole), inside a
/// warehouse (which stays).
fn lock_path(dest: &Path, kind: Destination) -> Result<PathBuf> {
    match kind {
        Destination::Warehouse => {
            std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
            Ok(dest.join(WAREHOUSE_LOCK))
        }
        Destination::Output => {
            let parent = crate::storage::output::parent_dir(dest);
            std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
            Ok(dest.with_file_name(format!(
                "{}lock",
                crate::storage::output::sibling_prefix(dest)
            )))
        }
    }
}

/// Takes the lock of `dest`. Its file is removed when the claim ends, so a run leaves nothing
/// behind; a run that finds the file it locked already removed (its holder ended in between)
/// takes the lock again on the new one.
fn lock(dest: &Path, kind: Destination) -> Result<(File, PathBuf)> {
    use std::os::unix::fs::MetadataExt;
    let path = lock_path(dest, kind)?;
    loop {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let by = if holder.is_empty() {
                    "another process".to_string()
                } else {
                    format!("process {holder}")
                };
                return Err(Error::Config(format!(
                    "{} is being written by {by}: wait for it to finish (one job at a time per \
                     {})",
                    dest.display(),
                    match kind {
                        Destination::Output => "output",
                        Destination::Warehouse => "warehouse",
                    }
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let locked = file.metadata().map_err(|e| Error::io(&path, e))?;
        match std::fs::metadata(&path) {
            Ok(now) if now.ino() == locked.ino() && now.dev() == locked.dev() => {}
            _ => continue,
        }
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()))
            .and_then(|()| file.flush());
        written.map_err(|e| Error::io(&path, e))?;
        return Ok((file, path));
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.spill);
        crate::storage::cleanup::unregister(&self.spill);
        // Removed while still locked: a process that opened it meanwhile sees it gone.
        let _ = std::fs::remove_file(&self.path);
        crate::storage::cleanup::unregister(&self.path);
    }
}

/// The canonical paths an input spec names: the path itself when it exists (a file or a
/// directory), else whatever its glob matches. URLs name no local path.
fn input_roots(spec: &str) -> Result<Vec<PathBuf>> {
    if crate::input::is_url(spec) {
        return Ok(Vec::new());
    }
    let path = Path::new(spec);
    if path.exists() {
        return Ok(vec![path.canonicalize().map_err(|e| Error::io(path, e))?]);
    }
    let Ok(matches) = glob::glob(spec) else {
        return Ok(Vec::new());
    };
    Ok(matches
        .flatten()
        .filter_map(|p| p.canonicalize().ok())
        .collect())
}

/// `path` made absolute with symlinks resolved, also when it does not exist yet: its nearest
/// existing ancestor is canonicalized and the rest appended (`..` and `.` resolved lexically).
pub fn absolute(path: &Path) -> Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io(".", e))?
            .join(path)
    };
    let mut clean = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    let mut existing = clean.as_path();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(base) => {
                let mut out = base;
                for part in rest.iter().rev() {
                    out.push(part);
                }
                return Ok(out);
            }
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => return Ok(clean),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_resolves_symlinks_of_the_existing_part_and_dots_of_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let got = absolute(&link.join("a/../b/./c")).unwrap();
        assert_eq!(got, real.canonicalize().unwrap().join("b/c"));
    }

    #[test]
    fn a_marker_of_another_writer_is_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("_SUCCESS");
        std::fs::write(&file, "").unwrap();
        assert_eq!(Marker::read(&file), None);
        std::fs::write(&file, r#"{"writer":"spark","version":"3"}"#).unwrap();
        assert_eq!(Marker::read(&file), None);
        Marker::ours(vec!["/a".into()]).write(&file).unwrap();
        assert_eq!(Marker::read(&file).unwrap().sources, vec!["/a".to_string()]);
    }
}
