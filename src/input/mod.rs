//! Everything about the inputs: where the files are, how they are encoded, their schemas,
//! and how one row of text becomes typed columns.
//!
//! A new input format or a new parsed attribute goes here; the jobs only ever see the typed
//! tables described in [`schema`].

pub mod attributes;
pub mod decode;
pub mod files;
pub mod rejects;
pub mod schema;
pub mod source;
pub mod spend;
pub mod values;

pub use decode::TableKind;
pub use files::{is_url, resolve, InputFile};
pub use rejects::{BadRowLimit, BadRows, RejectSink};
pub use source::{FileStats, Ingest, IngestStats, Opens};
pub use values::parse_delimiter;
