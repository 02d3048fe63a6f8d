//! The library's error type.
//!
//! Every variant that comes from input data names the file (and line, where there is one) so
//! that the message alone tells a user where to look and what to fix.

use std::path::PathBuf;

use datafusion::error::DataFusionError;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// One row of an input file is not valid.
    #[error("{file}:{line}: {}{reason}", column.as_deref().map(|c| format!("column {c}: ")).unwrap_or_default())]
    BadRow {
        file: String,
        line: u64,
        column: Option<String>,
        reason: String,
    },

    /// More rows of an input were bad than `--max-bad-rows` accepts.
    #[error("{0}")]
    TooManyBadRows(String),

    /// A whole input file is not usable (no header, wrong columns, not CSV, corrupt gzip…).
    #[error("{file}: {reason}")]
    BadFile { file: String, reason: String },

    /// An input path matched no file.
    #[error("{what} input {path:?} matches no file: give a file, a directory of files or a glob")]
    NoInput { what: &'static str, path: String },

    /// The configuration (file or flags) is incomplete or inconsistent.
    #[error("{0}")]
    Config(String),

    /// The program's own bookkeeping disagrees with itself: a bug, never bad input.
    #[error("internal accounting mismatch: {0}")]
    Accounting(String),

    /// The report's page or one of its charts could not be made.
    #[error("report: {0}")]
    Report(String),

    #[error(transparent)]
    DataFusion(#[from] DataFusionError),

    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),

    #[error(transparent)]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),

    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Turns errors that travelled through DataFusion back into ours, so that a bad row found
    /// while a query streams its input is reported as such and not as "External error: …".
    pub fn unwrap_datafusion(self) -> Self {
        match self {
            Error::DataFusion(e) => match find_ours(&e) {
                Some(ours) => ours,
                None => Error::DataFusion(e),
            },
            other => other,
        }
    }
}

/// Carries one of our errors through DataFusion, which only knows its own error type.
pub fn to_datafusion(e: Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn find_ours(e: &DataFusionError) -> Option<Error> {
    match e {
        DataFusionError::External(inner) => inner.downcast_ref::<Error>().map(clone_input_error),
        DataFusionError::Context(_, inner) => find_ours(inner),
        DataFusionError::Shared(inner) => find_ours(inner),
        DataFusionError::ArrowError(_, _) | DataFusionError::ParquetError(_) => None,
        _ => None,
    }
}

/// Input errors are plain data, so they can be rebuilt from a reference.
fn clone_input_error(e: &Error) -> Error {
    match e {
        Error::BadRow {
            file,
            line,
            column,
            reason,
        } => Error::BadRow {
            file: file.clone(),
            line: *line,
            column: column.clone(),
            reason: reason.clone(),
        },
        Error::BadFile { file, reason } => Error::BadFile {
            file: file.clone(),
            reason: reason.clone(),
        },
        Error::Io { path, source } => Error::Io {
            path: path.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        Error::TooManyBadRows(message) => Error::TooManyBadRows(message.clone()),
        other => Error::Config(other.to_string()),
    }
}
