//! Where data lands: datasets written and committed in one atomic step ([`output`]), what a
//! job may replace and one writer at a time ([`claim`]), what a stopped job leaves behind
//! ([`cleanup`]), intermediates ([`scratch`], [`intermediate`]), the warehouse's layout
//! ([`warehouse`]), its Delta Lake tables ([`delta`]) and the files they were converted from
//! ([`sources`]).

pub mod claim;
pub mod cleanup;
pub mod delta;
pub mod intermediate;
pub mod output;
pub mod scratch;
pub mod sources;
pub mod tables;
pub mod warehouse;

use datafusion::prelude::SessionContext;

/// Registers `table` under `name`, replacing a table of that name.
pub fn replace_table(
    ctx: &SessionContext,
    name: &str,
    table: std::sync::Arc<dyn datafusion::catalog::TableProvider>,
) -> crate::error::Result<()> {
    ctx.deregister_table(name)?;
    ctx.register_table(name, table)?;
    Ok(())
}
