//! The source files a warehouse table holds rows of: per file its size, content hash
//! (SHA-256) and number (the high bits of its rows' `sourceRow`), kept in the table's
//! properties so that they change in the same transaction as the rows. A conversion compares
//! its inputs with them: a file already converted (its content, at any path) is skipped, a
//! changed one (other content at a path converted before) replaces its own rows, a new one
//! gets the next number.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::error::{Error, Result};

/// The table property holding the sources (JSON).
pub const PROPERTY: &str = "marketing-analytics.sources";

/// One source file, as converted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub bytes: u64,
    pub sha256: String,
    /// Its rows' `sourceRow >> 40`: stable from the conversion that first read the file.
    pub number: u32,
}

/// Every source file of a table, by absolute path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sources(pub BTreeMap<String, Source>);

/// What a conversion does with one of its input files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Never converted: its rows are added under this new number.
    New(u32),
    /// Converted with the same content: nothing to do.
    Same,
    /// Converted before with other content: its earlier rows (this number) are replaced.
    Changed(u32),
}

impl Sources {
    /// The sources recorded in a table's properties (none when it has no such property).
    pub fn of(properties: &HashMap<String, String>, table: &str) -> Result<Sources> {
        match properties.get(PROPERTY) {
            None => Ok(Sources::default()),
            Some(text) => serde_json::from_str(text).map_err(|e| Error::BadFile {
                file: table.to_string(),
                reason: format!("its property {PROPERTY} is not a list of source files ({e})"),
            }),
        }
    }

    /// The property recording these sources.
    pub fn property(&self) -> Result<(String, String)> {
        Ok((PROPERTY.to_string(), serde_json::to_string(self)?))
    }

    /// Compares the input `path` (of `bytes` and hash `sha256`) with what was converted, and
    /// records it; `next` is the number a new file gets (then incremented). Content converted
    /// before, at this path or another, is the same file.
    pub fn see(&mut self, path: &str, bytes: u64, sha256: &str, next: &mut u32) -> Seen {
        let fresh = |number| Source {
            bytes,
            sha256: sha256.to_string(),
            number,
        };
        // The same content at any path is the same file (a copy, or a file moved): its rows
        // are in the table already.
        if self
            .0
            .values()
            .any(|s| s.bytes == bytes && s.sha256 == sha256)
        {
            return Seen::Same;
        }
        match self.0.get(path) {
            Some(s) => {
                let number = s.number;
                self.0.insert(path.to_string(), fresh(number));
                Seen::Changed(number)
            }
            None => {
                let number = *next;
                *next += 1;
                self.0.insert(path.to_string(), fresh(number));
                Seen::New(number)
            }
        }
    }

    /// The first number no source has.
    pub fn next_number(&self) -> u32 {
        self.0.values().map(|s| s.number + 1).max().unwrap_or(0)
    }
}

/// The SHA-256 of the file at `path`, in hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_new_then_the_same_then_changed_and_keeps_its_number() {
        let mut s = Sources::default();
        let mut next = s.next_number();
        assert_eq!(s.see("/a", 10, "h1", &mut next), Seen::New(0));
        assert_eq!(s.see("/b", 10, "h2", &mut next), Seen::New(1));
        assert_eq!(s.see("/a", 10, "h1", &mut next), Seen::Same);
        assert_eq!(s.see("/a", 11, "h3", &mut next), Seen::Changed(0));
        assert_eq!(s.see("/a", 11, "h3", &mut next), Seen::Same);
        assert_eq!(s.see("/copy-of-b", 10, "h2", &mut next), Seen::Same);
        let (k, v) = s.property().unwrap();
        let back = Sources::of(&HashMap::from([(k, v)]), "t").unwrap();
        assert_eq!(back, s);
        assert_eq!(back.next_number(), 2);
    }

    #[test]
    fn the_hash_is_the_files_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
