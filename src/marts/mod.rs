//! The marts: tables computed from the attribution projection. Each lives in its own folder
//! with its SQL, its DataFrame twin and its output schema; [`registry`] lists them, so a new
//! mart is one folder plus one line there.
//!
//! - [`top_campaigns`], [`top_channels`]: the run's marts.
//! - [`weekly`]: the weekly purchases projection of a period.

pub mod registry;
pub mod top_campaigns;
pub mod top_channels;
pub mod weekly;

pub use registry::Mart;

use serde::{Deserialize, Serialize};

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

impl std::fmt::Display for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Api::Sql => "sql",
            Api::Dataframe => "dataframe",
        })
    }
}
