//! marketing-analytics: purchases attribution and marketing marts over a mobile app's
//! clickstream, on Apache DataFusion.
//!
//! The layers, each depending only on those below it (docs/architecture.md):
//! - [`app`]: the use cases (run, attribution, a mart, convert, period, explain), each
//!   extract → transform → load, and the accounting of every input row.
//! - [`cluster`]: cluster mode (Ballista scheduler, executors, and the client context).
//! - [`engine`]: the DataFusion session every job runs in, its memory pool and the project's
//!   SQL functions.
//! - [`marts`]: one folder per mart and the registry that lists them.
//! - [`journeys`]: journey attribution (multi-touch models, Markov, conversion paths).
//! - [`attribution`]: the projection's transform (rules 1–5), both engines.
//! - [`storage`]: datasets, atomic commits, claims and locks, scratch, the warehouse layout.
//! - [`input`]: finding, decoding and typing the input files; the input schemas.
//! - [`calendar`], [`error`]: dates and the error type.
//!
//! Beside them: [`generate`] (the synthetic data generator and its ground truth) and
//! [`canonical`] (the text form outputs are compared in). [`cli`] is the command line, on top
//! of [`app`]; `src/main.rs` only calls it.
//!
//! A Rust program runs the whole pipeline as the `run` command does:
//!
//! ```no_run
//! # async fn example() -> marketing_analytics::Result<()> {
//! use marketing_analytics::app::{run_all, Settings};
//!
//! let report = run_all(
//!     &Settings::default(),
//!     "data/mobile_app_clickstream",
//!     "data/user_purchases",
//!     std::path::Path::new("out"),
//! )
//! .await?;
//! println!("{} purchases attributed", report.summary.counts.attributed_purchases);
//! # Ok(())
//! # }
//! ```

pub mod app;
pub mod attribution;
pub mod calendar;
pub mod canonical;
pub mod cli;
pub mod cluster;
pub mod engine;
pub mod error;
pub mod generate;
pub mod input;
pub mod journeys;
pub mod marts;
pub mod report;
pub mod storage;

pub use error::{Error, Result};
