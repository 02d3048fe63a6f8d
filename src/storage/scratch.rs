//! Scratch space for a job's intermediate files: decoded inputs and intermediate tables that
//! the executors of a cluster read (Parquet), or that a memory-capped run keeps on disk (Arrow
//! IPC, `crate::intermediate`).
//!
//! By default it is a hidden directory beside the output, so on the same storage, which on
//! one host every executor reaches. With `--scratch URL` (for example `s3://bucket/tmp`), it is
//! a fresh prefix under that object-store URL: what a cluster of several hosts needs.
//! Either way it is removed when the job ends, also when it fails.

use std::path::Path;
use std::sync::Arc;

use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::object_store::{self, ObjectStore};
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};

/// A job's scratch location.
pub struct Scratch {
    /// Absolute path or URL, without a trailing slash.
    base: String,
    place: Place,
}

enum Place {
    /// A hidden sibling of the output (`.NAME.scratch-PID-…`), which the next run on that
    /// output reclaims if this one is killed.
    Local(std::path::PathBuf),
    Remote {
        store: Arc<dyn ObjectStore>,
        prefix: object_store::path::Path,
    },
}

pub use crate::input::is_url;

impl Scratch {
    /// A scratch location beside `dest`, or under `url` when given. `ctx` provides the object
    /// store for a URL (the same registry the jobs use).
    pub fn new(url: Option<&str>, dest: &Path, ctx: &SessionContext) -> Result<Scratch> {
        match url {
            None => Self::beside(dest),
            Some(url) => Self::under(url, ctx),
        }
    }

    fn beside(dest: &Path) -> Result<Scratch> {
        let dir = crate::storage::output::temp_sibling(dest, "scratch");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let dir = dir.canonicalize().map_err(|e| Error::io(&dir, e))?;
        crate::storage::cleanup::register(&dir);
        Ok(Scratch {
            base: dir.display().to_string(),
            place: Place::Local(dir),
        })
    }

    fn under(url: &str, ctx: &SessionContext) -> Result<Scratch> {
        let bad = |why: String| Error::Config(format!("--scratch {url:?}: {why}"));
        let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        let root = ObjectStoreUrl::parse(format!(
            "{}://{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default()
        ))
        .map_err(|e| bad(e.to_string()))?;
        let store = ctx
            .runtime_env()
            .object_store(&root)
            .map_err(|e| bad(format!("no object store for it: {e}")))?;
        let unique = format!("marketing-analytics-{}", uuid::Uuid::new_v4().simple());
        let base = format!("{}/{unique}", url.trim_end_matches('/'));
        let prefix =
            object_store::path::Path::from(format!("{}/{unique}", parsed.path().trim_matches('/')));
        Ok(Scratch {
            base,
            place: Place::Remote { store, prefix },
        })
    }

    /// Where the dataset `name` goes: a directory path or URL ending in `/`.
    pub fn location(&self, name: &str) -> Result<String> {
        if let Place::Local(dir) = &self.place {
            let path = dir.join(name);
            std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
        Ok(format!("{}/{name}/", self.base))
    }

    /// The base location, for logs.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Deletes everything written under the scratch location.
    pub async fn remove(self) -> Result<()> {
        match &self.place {
            Place::Local(dir) => match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(dir, e)),
                _ => Ok(()),
            },
            Place::Remote { store, prefix } => {
                let locations = store.list(Some(prefix)).map_ok(|m| m.location).boxed();
                store
                    .delete_stream(locations)
                    .try_collect::<Vec<_>>()
                    .await
                    .map_err(|e| Error::Config(format!("removing scratch {}: {e}", self.base)))?;
                Ok(())
            }
        }
    }
}

impl Drop for Scratch {
    /// A job that ends early (an error) leaves no local scratch behind either.
    fn drop(&mut self) {
        if let Place::Local(dir) = &self.place {
            let _ = std::fs::remove_dir_all(dir);
            crate::storage::cleanup::unregister(dir);
        }
    }
}
