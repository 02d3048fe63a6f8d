//! marketing-analytics: purchases attribution and marketing marts over a mobile app's
//! clickstream, on Apache DataFusion.
//!
//! Where things are:
//! - [`input`]: finding, decoding and typing the input files; the schemas.
//! - [`jobs`]: one folder per job (attribution, top campaigns, top channels), each
//!   extract → transform → load with a pure transform.
//! - [`pipeline`]: running jobs end to end; [`output`]: writing datasets; [`summary`]: the
//!   accounting of every input row.
//! - [`generate`]: the synthetic data generator and its independent ground truth.
//! - [`warehouse`], [`period`]: the date-partitioned Parquet warehouse and period queries.
//! - [`cluster`]: cluster mode (Ballista scheduler, executors, and the client context).
//! - [`context`]: the DataFusion session every job runs in; [`pool`]: its memory pool under a cap.
//! - [`config`]: YAML configuration; the CLI itself is `src/main.rs`.
//! - [`claim`]: what a job may replace at its destination, and one writer at a time.

pub mod canonical;
pub mod claim;
pub mod cleanup;
pub mod cluster;
pub mod config;
pub mod context;
pub mod error;
pub mod explain;
pub mod generate;
pub mod input;
pub mod intermediate;
pub mod jobs;
pub mod output;
pub mod period;
pub mod pipeline;
pub mod pool;
pub mod scratch;
pub mod summary;
pub mod warehouse;

pub use error::{Error, Result};
