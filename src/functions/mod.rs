//! SQL functions the engine adds to DataFusion's, registered by [`register_all`] (once per engine)
//! and [`register_catalog_functions`] (once per session): the one list.
//!
//! May depend on: `error`, `config`; the search functions ([`search`]) also on `catalog`,
//! `provider` and `physical`, the distance functions ([`distance`]) on `physical` (the metrics
//! they share with search); never on `engine` or front ends.

pub mod changes;
pub mod columns;
pub mod distance;
pub mod highlight;
pub mod overflow;
pub mod postgres;
pub mod search;

use std::sync::Arc;

use datafusion::execution::context::SessionContext;

/// Registers every function lancesql adds: Lance's own SQL functions, `sum` that fails on
/// overflow, the vector distance functions, `highlight`, and the Postgres functions clients call that the catalog emulation lacks or gets
/// wrong. Called after the catalog emulation installed its functions, so ours win where both
/// define a name. Checked
/// integer arithmetic is an expression planner, installed with the session state (see
/// [`overflow::CheckedArithmeticPlanner`]). The search table functions are listed in
/// [`search::SEARCH_FUNCTIONS`].
pub fn register_all(context: &SessionContext) {
    lance_datafusion::udf::register_functions(context);
    context.register_udaf(overflow::CheckedSum::udaf().as_ref().clone());
    context.register_udf(postgres::version());
    context.register_udf(postgres::to_regtype());
    context.register_udf(postgres::visible("pg_type_is_visible"));
    context.register_udf(postgres::visible("pg_function_is_visible"));
    for name in [
        "pg_get_function_result",
        "pg_get_function_arguments",
        "col_description",
        "pg_get_indexdef",
    ] {
        context.register_udf(postgres::null_text(name));
    }
    context.register_udf(postgres::my_temp_schema());
    context.register_udf(postgres::parse_ident());
    for function in distance::all() {
        context.register_udf(function);
    }
    context.register_udf(highlight::udf());
    search::register(context);
    context.register_udtf(changes::NAME, Arc::new(changes::TableChanges));
}

/// Registers the functions that list the catalogs of `context` itself (`lancesql_columns()`):
/// once per session, since each session has its own catalog list.
pub fn register_catalog_functions(context: &SessionContext) {
    context.register_udtf(
        columns::NAME,
        Arc::new(columns::ColumnsFunction::new(
            context.state().catalog_list().clone(),
        )),
    );
}
