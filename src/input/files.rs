//! Finding input files and opening them.
//!
//! An input path is a file, a directory (read recursively, skipping hidden and `_`-prefixed
//! entries as Spark and Hadoop do) or a glob. Files are read in sorted path order, which fixes
//! each file's number in `sourceRow`. Gzip is recognised by its magic bytes, not its name.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use indicatif::ProgressBar;

use crate::error::{Error, Result};

/// How a file is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Delimited text (CSV or TSV), possibly gzip-compressed.
    Delimited {
        delimiter: u8,
    },
    Parquet,
}

/// One input file with its place in the input set.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub path: PathBuf,
    /// Position in the sorted input set; part of `sourceRow`.
    pub index: u32,
    pub format: FileFormat,
    /// Size on disk, for progress reporting.
    pub size: u64,
}

impl InputFile {
    /// The name used in messages and in the summary.
    pub fn display(&self) -> String {
        self.path.display().to_string()
    }
}

const DATA_SUFFIXES: [&str; 7] = [
    ".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz", ".parquet",
];

fn is_data_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    !name.starts_with('.')
        && !name.starts_with('_')
        && DATA_SUFFIXES.iter().any(|s| name.ends_with(s))
}

fn format_of(path: &Path, delimiter: Option<u8>) -> FileFormat {
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".parquet") {
        FileFormat::Parquet
    } else {
        let tab = name.ends_with(".tsv") || name.ends_with(".tsv.gz");
        FileFormat::Delimited {
            delimiter: delimiter.unwrap_or(if tab { b'\t' } else { b',' }),
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let file_type = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if file_type.is_dir() {
            walk(&path, out)?;
        } else if is_data_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Lists the files of an input path. `what` names the input in errors ("clickstream").
pub fn resolve(spec: &str, what: &'static str, delimiter: Option<u8>) -> Result<Vec<InputFile>> {
    let path = Path::new(spec);
    let mut paths = Vec::new();
    if path.is_file() {
        paths.push(path.to_path_buf());
    } else if path.is_dir() {
        walk(path, &mut paths)?;
    } else {
        let matches = glob::glob(spec).map_err(|e| {
            Error::Config(format!(
                "{what} input {spec:?} is neither a file, a directory nor a valid glob: {e}"
            ))
        })?;
        for m in matches {
            let p = m.map_err(|e| Error::io(e.path().to_path_buf(), e.into()))?;
            if p.is_file() {
                paths.push(p);
            } else if p.is_dir() {
                walk(&p, &mut paths)?;
            }
        }
    }
    paths.sort();
    paths.dedup();
    if paths.is_empty() {
        return Err(Error::NoInput {
            what,
            path: spec.to_string(),
        });
    }
    paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| {
            let size = std::fs::metadata(&path)
                .map_err(|e| Error::io(&path, e))?
                .len();
            Ok(InputFile {
                format: format_of(&path, delimiter),
                index: i as u32,
                path,
                size,
            })
        })
        .collect()
}

/// Counts bytes read from disk into a progress bar.
struct Counted<R> {
    inner: R,
    progress: Option<ProgressBar>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(p) = &self.progress {
            p.inc(n as u64);
        }
        Ok(n)
    }
}

const READ_BUFFER: usize = 256 * 1024;

/// Opens a delimited file for reading, decompressing gzip transparently.
pub fn open_text(file: &InputFile, progress: Option<ProgressBar>) -> Result<Box<dyn Read + Send>> {
    let mut f = File::open(&file.path).map_err(|e| Error::io(&file.path, e))?;
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match f.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(Error::io(&file.path, e)),
        }
    }
    let head = std::io::Cursor::new(magic[..got].to_vec());
    let raw = Counted {
        inner: head.chain(f),
        progress,
    };
    if got == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::with_capacity(
            READ_BUFFER,
            MultiGzDecoder::new(BufReader::with_capacity(READ_BUFFER, raw)),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(READ_BUFFER, raw)))
    }
}
