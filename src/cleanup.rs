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
pub fn remove_all() -> Vec<PathBuf> {
    let paths = match PATHS.lock() {
        Ok(mut paths) => std::mem::take(&mut *paths),
        Err(_) => return Vec::new(),
    };
    let mut left = Vec::new();
    for path in paths.iter().rev() {
        let removed = match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
            Ok(_) => std::fs::remove_file(path),
            Err(_) => Ok(()),
        };
        if removed.is_err() {
            left.push(path.clone());
        }
    }
    left
}
