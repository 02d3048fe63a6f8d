//! The list of marts. A mart is a folder under `marts/` that defines one [`Mart`] constant;
//! adding its line to [`MARTS`] gives it its command, its place in `run` and `period` (or its
//! own period command), `explain`, its output dataset and its canonical form.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

use super::{top_campaigns, top_channels, weekly, Api};
use crate::error::Result;

/// Every mart, in the order `run` computes and prints them.
pub static MARTS: &[Mart] = &[top_campaigns::MART, top_channels::MART, weekly::MART];

/// When a mart is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// By `run` and `period`, and by its own command from a projection dataset.
    Run,
    /// By its own command, for a period of a warehouse or of raw exports (as `weekly`).
    Period,
}

/// A mart: what it is called, what it computes, and how its rows look.
#[derive(Clone, Copy)]
pub struct Mart {
    /// Its dataset's folder (`top_campaigns`); its command is the same with dashes.
    pub name: &'static str,
    /// One line for `--help` and the tables `run` prints.
    pub title: &'static str,
    /// The title of a period's table, before its dates.
    pub short: &'static str,
    pub scope: Scope,
    /// Its output schema.
    pub schema: fn() -> SchemaRef,
    /// Its transform over the registered `projection` table.
    pub transform: for<'a> fn(&'a SessionContext, Api) -> BoxFuture<'a, Result<DataFrame>>,
    /// Its rows as canonical CSV (see `crate::canonical`).
    pub canonical: fn(&[RecordBatch]) -> Result<String>,
}

impl std::fmt::Debug for Mart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for Mart {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Mart {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Its command: the name with dashes (`top-campaigns`).
    pub fn command(&self) -> String {
        self.name.replace('_', "-")
    }

    pub fn schema(&self) -> SchemaRef {
        (self.schema)()
    }

    /// Runs the transform over the registered `projection` table and collects its rows.
    pub async fn transform(&self, ctx: &SessionContext, api: Api) -> Result<Vec<RecordBatch>> {
        Ok((self.transform)(ctx, api).await?.collect().await?)
    }

    /// The transform as a DataFrame (for plans).
    pub async fn dataframe(&self, ctx: &SessionContext, api: Api) -> Result<DataFrame> {
        (self.transform)(ctx, api).await
    }
}

/// The marts of `scope`.
pub fn in_scope(scope: Scope) -> impl Iterator<Item = &'static Mart> {
    MARTS.iter().filter(move |m| m.scope == scope)
}

/// The mart named `name` (dataset name or command).
pub fn find(name: &str) -> Option<&'static Mart> {
    MARTS.iter().find(|m| m.name == name || m.command() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_schemas_name_their_columns() {
        let mut names: Vec<_> = MARTS.iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), MARTS.len());
        for m in MARTS {
            assert!(!m.schema().fields().is_empty(), "{}", m.name);
            assert_eq!(find(&m.command()), Some(m));
        }
    }
}
