//! Bad rows: what a job does with them (`--on-bad-rows`), how many it accepts
//! (`--max-bad-rows`), and the quarantine file they go to, byte for byte.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::source::FileStats;
use crate::error::{Error, Result};

/// What to do with a bad row.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum BadRows {
    /// Stop at the first bad row, naming file, line, column and reason; write nothing.
    #[default]
    Fail,
    /// Write each bad row verbatim, with file, line and reason, to `_rejected/` and go on.
    Quarantine,
}

/// How many bad rows a quarantining job accepts before it fails instead of committing
/// (`--max-bad-rows N` or `P%` of a table's rows). Without one, a job fails only when every
/// row of a table was bad: such a run would otherwise succeed with nothing in it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BadRowLimit {
    Count(u64),
    /// A share of the rows read, from 0 to 1.
    Share(f64),
}

impl BadRowLimit {
    /// `N` or `P%`.
    pub fn parse(s: &str) -> std::result::Result<BadRowLimit, String> {
        let t = s.trim();
        let bad = || format!("--max-bad-rows {s:?}: give a count (100) or a percentage (0.5%)");
        match t.strip_suffix('%') {
            Some(p) => {
                let p: f64 = p.trim().parse().map_err(|_| bad())?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(bad());
                }
                Ok(BadRowLimit::Share(p / 100.0))
            }
            None => t.parse().map(BadRowLimit::Count).map_err(|_| bad()),
        }
    }

    /// Fails when `stats` hold more bad rows than `limit` accepts (see [`BadRowLimit`]).
    pub fn check(
        limit: Option<BadRowLimit>,
        table: &str,
        stats: FileStats,
        rejects: Option<&RejectSink>,
    ) -> Result<()> {
        let (bad, rows) = (stats.quarantined, stats.rows);
        let exceeded = match limit {
            _ if bad == 0 => false,
            None => bad == rows,
            Some(BadRowLimit::Count(n)) => bad > n,
            Some(BadRowLimit::Share(p)) => bad as f64 > p * rows as f64,
        };
        if !exceeded {
            return Ok(());
        }
        let allowed = match limit {
            None => "every row bad: give --max-bad-rows 100% to accept that".to_string(),
            Some(BadRowLimit::Count(n)) => format!("more than --max-bad-rows {n}"),
            Some(BadRowLimit::Share(p)) => format!("more than --max-bad-rows {}%", p * 100.0),
        };
        let first = rejects
            .and_then(RejectSink::first)
            .map(|f| format!("; the first: {f}"))
            .unwrap_or_default();
        Err(Error::TooManyBadRows(format!(
            "{table}: {bad} of {rows} rows were bad, {allowed}. Nothing was committed{first}"
        )))
    }
}

/// Where quarantined rows go: a CSV file with columns `file,line,reason,row`, `row` being the
/// row's text exactly as read (without its line break).
#[derive(Debug)]
pub struct RejectSink {
    path: PathBuf,
    out: Mutex<Option<BufWriter<File>>>,
    first: Mutex<Option<String>>,
}

impl RejectSink {
    pub fn new(path: PathBuf) -> Self {
        RejectSink {
            path,
            out: Mutex::new(None),
            first: Mutex::new(None),
        }
    }

    /// The first row set aside, as `file:line: reason`.
    pub fn first(&self) -> Option<String> {
        self.first.lock().ok().and_then(|f| f.clone())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn reject(&self, file: &str, line: u64, reason: &str, raw: &[u8]) -> Result<()> {
        let mut guard = self
            .out
            .lock()
            .map_err(|_| Error::Accounting("reject sink poisoned".into()))?;
        if guard.is_none() {
            if let Ok(mut first) = self.first.lock() {
                *first = Some(format!("{file}:{line}: {reason}"));
            }
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            let f = File::create(&self.path).map_err(|e| Error::io(&self.path, e))?;
            let mut w = BufWriter::new(f);
            w.write_all(b"file,line,reason,row\n")
                .map_err(|e| Error::io(&self.path, e))?;
            *guard = Some(w);
        }
        if let Some(w) = guard.as_mut() {
            let mut row = format!(
                "{},{line},{},",
                super::values::field(file),
                super::values::field(reason),
            )
            .into_bytes();
            // The row's own bytes, quoted as CSV needs, invalid UTF-8 included: it is what the
            // file holds, for the user to fix.
            if raw.iter().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
                row.push(b'"');
                for &b in raw {
                    if b == b'"' {
                        row.push(b'"');
                    }
                    row.push(b);
                }
                row.push(b'"');
            } else {
                row.extend_from_slice(raw);
            }
            row.push(b'\n');
            w.write_all(&row).map_err(|e| Error::io(&self.path, e))?;
        }
        Ok(())
    }

    /// Flushes what was written.
    pub fn finish(&self) -> Result<()> {
        if let Ok(mut guard) = self.out.lock() {
            if let Some(w) = guard.as_mut() {
                w.flush().map_err(|e| Error::io(&self.path, e))?;
            }
        }
        Ok(())
    }
}

/// The reason of a bad-row error, for the quarantine file.
pub(super) fn bad_row_reason(e: &Error) -> Option<String> {
    match e {
        Error::BadRow { column, reason, .. } => Some(match column {
            Some(c) => format!("column {c}: {reason}"),
            None => reason.clone(),
        }),
        _ => None,
    }
}
