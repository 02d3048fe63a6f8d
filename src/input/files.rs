//! Finding input files and opening them.
//!
//! An input path is a file, a directory (read recursively, following symbolic links, skipping
//! hidden and `_`-prefixed entries as Spark and Hadoop do, and anything that is not a regular
//! file; each skip is logged with its reason) or a glob. Every file found is read, whatever its
//! name: Parquet is recognised by its magic bytes or `.parquet`, compression (gzip, zstd,
//! bzip2, xz) by its magic bytes. Files are read in sorted path order, which fixes each file's
//! number in `sourceRow`.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::GzDecoder;
use indicatif::ProgressBar;
use tracing::info;

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

/// Whether a name is left out of a directory listing, as Spark and Hadoop leave it out.
fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// A file's format: Parquet by its name or its magic bytes, else delimited text (compressed
/// or not: see [`open_text`]), tab-separated when its name says `.tsv`.
fn format_of(path: &Path, delimiter: Option<u8>) -> Result<FileFormat> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let mut magic = [0u8; 4];
    let parquet_magic = name.ends_with(".parquet")
        || File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok_and(|()| &magic == b"PAR1");
    if parquet_magic {
        return Ok(FileFormat::Parquet);
    }
    let stem = COMPRESSION_SUFFIXES
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(&name);
    let tab = stem.ends_with(".tsv") || stem.ends_with(".tab");
    Ok(FileFormat::Delimited {
        delimiter: delimiter.unwrap_or(if tab { b'\t' } else { b',' }),
    })
}

const COMPRESSION_SUFFIXES: [&str; 7] = [".gz", ".gzip", ".bz2", ".zst", ".zstd", ".xz", ".z"];

/// Lists the files under `dir`, following symbolic links to directories (each directory once,
/// so a link loop ends). What is left out is said at info level, with why.
fn walk(dir: &Path, out: &mut Vec<PathBuf>, seen: &mut HashSet<PathBuf>) -> Result<()> {
    let real = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    if !seen.insert(real) {
        info!(path = %dir.display(), "skipped: a directory already listed (a symbolic link loop?)");
        return Ok(());
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut entries = entries
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if is_hidden(&name.to_string_lossy()) {
            // A dataset's `_SUCCESS` is skipped in every dataset read: said at debug level only.
            if name == "_SUCCESS" {
                tracing::debug!(path = %path.display(), "skipped: a dataset's marker");
            } else {
                info!(path = %path.display(), "skipped: hidden (its name starts with . or _)");
            }
            continue;
        }
        // Follows a symbolic link to what it points at.
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                info!(path = %path.display(), "skipped: {e} (a broken symbolic link?)");
                continue;
            }
        };
        if meta.is_dir() {
            walk(&path, out, seen)?;
        } else if meta.is_file() {
            out.push(path);
        } else {
            info!(path = %path.display(), "skipped: not a regular file (a FIFO, socket or device)");
        }
    }
    Ok(())
}

/// Lists the files of an input path. `what` names the input in errors ("clickstream").
pub fn resolve(spec: &str, what: &'static str, delimiter: Option<u8>) -> Result<Vec<InputFile>> {
    if is_url(spec) {
        return Err(Error::Config(format!(
            "{what} input {spec}: reading raw exports from an object store is not supported; \
             copy them to a local directory (or mount the bucket) and give that path"
        )));
    }
    let path = Path::new(spec);
    let mut paths = Vec::new();
    let mut seen = HashSet::new();
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => paths.push(path.to_path_buf()),
        Ok(meta) if meta.is_dir() => walk(path, &mut paths, &mut seen)?,
        Ok(_) => {
            return Err(Error::Config(format!(
                "{what} input {spec} is not a regular file or directory (a FIFO, socket or \
                 device): give a file, a directory of files or a glob"
            )))
        }
        Err(_) => {
            let matches = glob::glob(spec).map_err(|e| {
                Error::Config(format!(
                    "{what} input {spec:?} is neither a file, a directory nor a valid glob: {e}"
                ))
            })?;
            for m in matches {
                let p = m.map_err(|e| Error::io(e.path().to_path_buf(), e.into()))?;
                match std::fs::metadata(&p) {
                    Ok(meta) if meta.is_file() => paths.push(p),
                    Ok(meta) if meta.is_dir() => walk(&p, &mut paths, &mut seen)?,
                    _ => info!(path = %p.display(), "skipped: not a regular file or directory"),
                }
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
            let format = format_of(&path, delimiter)?;
            tracing::trace!(what, file = %path.display(), size, "input file");
            Ok(InputFile {
                format,
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

/// Opens a delimited file for reading, decompressing it when its first bytes say gzip, zstd,
/// bzip2 or xz (whatever its name).
pub fn open_text(file: &InputFile, progress: Option<ProgressBar>) -> Result<Box<dyn Read + Send>> {
    let mut f = File::open(&file.path).map_err(|e| Error::io(&file.path, e))?;
    let mut magic = [0u8; 6];
    let mut got = 0;
    while got < magic.len() {
        match f.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(Error::io(&file.path, e)),
        }
    }
    let magic = &magic[..got];
    let head = std::io::Cursor::new(magic.to_vec());
    let raw = BufReader::with_capacity(
        READ_BUFFER,
        Counted {
            inner: head.chain(f),
            progress,
        },
    );
    let decoded: Box<dyn Read + Send> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(GzMembers::new(raw))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(raw).map_err(|e| Error::io(&file.path, e))?,
        )
    } else if magic.starts_with(b"BZh") {
        Box::new(bzip2::bufread::MultiBzDecoder::new(raw))
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(raw))
    } else {
        return Ok(Box::new(raw));
    };
    Ok(Box::new(BufReader::with_capacity(READ_BUFFER, decoded)))
}

/// The members of a gzip stream one after the other (as `gzip -d` reads them), ending at zero
/// bytes after the last member: padding that tape tools and some exporters add, which
/// `gzip -t` accepts. Anything else after a member is an error, not silently ignored.
struct GzMembers<R: BufRead> {
    current: Option<GzDecoder<R>>,
}

impl<R: BufRead> GzMembers<R> {
    fn new(inner: R) -> Self {
        GzMembers {
            current: Some(GzDecoder::new(inner)),
        }
    }
}

impl<R: BufRead> Read for GzMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some(member) = self.current.as_mut() else {
                return Ok(0);
            };
            let n = member.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let Some(member) = self.current.take() else {
                return Ok(0);
            };
            let mut inner = member.into_inner();
            let next = inner.fill_buf()?;
            if next.is_empty() {
                return Ok(0);
            }
            if next[0] == 0x1f {
                self.current = Some(GzDecoder::new(inner));
                continue;
            }
            loop {
                let next = inner.fill_buf()?;
                if next.is_empty() {
                    return Ok(0);
                }
                if next.iter().any(|&b| b != 0) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "bytes after the end of the gzip data that are neither another gzip \
                         member nor zero padding",
                    ));
                }
                let len = next.len();
                inner.consume(len);
            }
        }
    }
}

/// Whether a location is an object-store URL (`s3://…`) rather than a local path.
pub fn is_url(location: &str) -> bool {
    location.contains("://") && !location.starts_with("file://")
}
