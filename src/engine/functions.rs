//! The project's SQL functions: registered on every context this process builds and, in
//! cluster mode, on every executor, so a plan that names them runs anywhere.

use datafusion::prelude::SessionContext;

/// Registers the attribution's and the marts' functions on `ctx`.
pub fn register_functions(ctx: &SessionContext) {
    for udaf in crate::attribution::functions::udafs() {
        ctx.register_udaf(udaf);
    }
    for udf in crate::attribution::functions::udfs()
        .into_iter()
        .chain(crate::marts::weekly::iso_week::udfs())
    {
        ctx.register_udf(udf);
    }
}
