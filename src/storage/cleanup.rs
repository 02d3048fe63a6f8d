//! What a run removes when a signal stops it: its staging and scratch directories, spill
//! files and lock, registered here while they exist. `SIGTERM` and `SIGINT` (the CLI's
//! handler) remove them before the process exits; after `SIGKILL` the next run on the same
//! destination reclaims them (`output::Staging::new`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static PATHS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes `path` (a directory and all it holds, or a file) if the process is stopped.
pub fn register(path: &Path) {
    if let Ok(mut paths) = PATHS.lock() {
        paths.push(path.to_path_buf());
    }
}

/// Forgets `path`: it was committed or removed.
pub fn unregister(path: &Path) {
    if let Ok(mut paths) = PATHS.lock() {
        if let Some(i) = paths.iter().rposition(|p| p == path) {
            paths.remove(i);
        }
    }
}

/// Removes everything registered, newest first. Returns what could not be removed.
///
/// The job's threads are still running meanwhile and may create a directory again (a dataset
/// started inside the staging directory): each path is held by an empty file while the others
/// are removed, so that such a creation fails, and the placeholders go last, just before the
/// process exits.
pub fn remove_all() -> Vec<PathBuf> {
    let paths = match PATHS.lock() {
        Ok(mut paths) => std::mem::take(&mut *paths),
        Err(_) => return Vec::new(),
    };
    let remove = |path: &Path| match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => Ok(()),
    };
    let mut held = Vec::new();
    for path in paths.iter().rev() {
        for _ in 0..5 {
            let _ = remove(path);
            if std::fs::File::create_new(path).is_ok() {
                held.push(path.clone());
                break;
            }
        }
    }
    // Let threads that were writing there run into the placeholders and stop.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mut left = Vec::new();
    for path in paths.iter().rev() {
        if remove(path).is_err() || (!held.contains(path) && path.exists()) {
            left.push(path.clone());
        }
    }
    left
}
