//! The jobs. Each lives in its own folder and is written extract → transform → load:
//! `transform` is a pure function from registered tables to DataFrames, tested without files;
//! extract and load do the I/O.
//!
//! - [`attribution`]: clickstream + purchases → purchases attribution projection.
//! - [`top_campaigns`], [`top_channels`]: projection → marts.
//!
//! A new attribution rule goes into the attribution job's engines (its SQL today); a new mart
//! is a new folder next to the two marts.

pub mod attribution;
pub mod top_campaigns;
pub mod top_channels;
pub mod weekly;

use serde::{Deserialize, Serialize};

/// How the attribution projection is computed. Every engine gives identical outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// DataFusion SQL with window functions.
    Sql,
    /// The custom aggregate function `sessionize`, grouped by user (the faster engine).
    #[default]
    Udaf,
}

/// How the marts are expressed. Every API gives identical outputs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// DataFusion SQL.
    #[default]
    Sql,
    /// The DataFrame API, no SQL.
    Dataframe,
}

/// Table names the jobs read from the session context.
pub mod tables {
    /// Decoded clickstream (input/schema.rs `EVENTS`).
    pub const EVENTS: &str = "events";
    /// Decoded purchases (input/schema.rs `PURCHASES`).
    pub const PURCHASES: &str = "purchases";
    /// The attribution projection (input/schema.rs `PROJECTION`), input of the marts.
    pub const PROJECTION: &str = "projection";
}
