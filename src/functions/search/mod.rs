//! Search and random-access table functions: [`vector::NAME`] (`vector_search`),
//! [`text::NAME`] (`fts`), [`hybrid::NAME`] (`hybrid_search`), [`take::NAME`] (`take`) and
//! [`sample::NAME`] (`sample`), listed once in [`SEARCH_FUNCTIONS`].
//!
//! Contract:
//! - The first argument names a table as a string. The engine resolves that table into the
//!   statement's catalog snapshot before planning (see [`table_argument`]), so planning does no
//!   I/O and the search reads the same version as every other read of the statement.
//! - Every argument is validated when the statement is planned (table, column, the query
//!   vector's type and dimension, `k`, each option), with an error naming the argument. An
//!   argument given as a bind parameter (`$1`) is validated when the parameter is bound
//!   ([`SearchTable::bind`]); its type is reported to clients from the table's column.
//! - The search itself runs in [`crate::physical::search::LanceSearchExec`] at execution.
//! - `'version', n` (or `'version', 'tag'`) among the options of `vector_search`, `fts` and
//!   `hybrid_search` searches the table as of that version: the engine resolves it with the
//!   statement's other time travel and hands the function the table at that version.
//! - Results carry the table's columns plus `_rowid` and `_rowaddr` (kept out of `SELECT *`, as
//!   for tables) and the function's own columns (`_distance`, `query_index`, `_score`, `_relevance_score`). A `WHERE` around
//!   the function filters its results; it is never pushed into the search.
//!
//! May depend on: `catalog` (the statement's snapshot), `provider` (`LanceTable`), `physical`,
//! `config`, `error`.

mod arguments;
pub mod hybrid;
pub mod order_by;
pub mod sample;
pub mod table;
pub mod take;
pub mod text;
pub mod vector;

use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::common::DFSchema;
use datafusion::datasource::TableProvider;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SessionContext, SessionState};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;

use crate::catalog::{CATALOG_NAME, StatementCatalog};
use crate::error::{Error, Result};
use crate::provider::table::LanceTable;
pub use table::SearchTable;

/// Every search table function, by name.
pub const SEARCH_FUNCTIONS: [&str; 5] = [
    vector::NAME,
    text::NAME,
    hybrid::NAME,
    take::NAME,
    sample::NAME,
];

/// Registers the search table functions.
pub fn register(context: &SessionContext) {
    context.register_udtf(vector::NAME, Arc::new(vector::VectorSearch));
    context.register_udtf(text::NAME, Arc::new(text::FullTextSearch));
    context.register_udtf(hybrid::NAME, Arc::new(hybrid::HybridSearch));
    context.register_udtf(take::NAME, Arc::new(take::Take));
    context.register_udtf(sample::NAME, Arc::new(sample::Sample));
}

/// Where the trailing `'option', value` pairs of search function `name` start (its argument
/// count before them), for functions that take options.
pub fn options_start(name: &str) -> Option<usize> {
    match name {
        vector::NAME => Some(vector::OPTIONS_START),
        text::NAME => Some(text::OPTIONS_START),
        hybrid::NAME => Some(hybrid::OPTIONS_START),
        _ => None,
    }
}

/// Whether `name` is one of the search table functions.
pub fn is_search_function(name: &str) -> bool {
    SEARCH_FUNCTIONS.contains(&name)
}

/// The lancesql session state a search function is planned in.
fn session_state<'a>(function: &str, session: &'a dyn Session) -> Result<&'a SessionState> {
    session
        .as_any()
        .downcast_ref::<SessionState>()
        .ok_or_else(|| Error::Internal {
            message: format!("{function} was planned outside a lancesql session"),
        })
}

/// The table `function`'s first argument names, from the statement's snapshot.
pub(crate) fn table_argument(
    function: &str,
    session: &dyn Session,
    name: &str,
) -> Result<Arc<LanceTable>> {
    let snapshot = session_state(function, session)?
        .catalog_list()
        .catalog(CATALOG_NAME)
        .and_then(|catalog| {
            catalog
                .downcast_ref::<StatementCatalog>()
                .and_then(|snapshot| snapshot.table(name).cloned())
        });
    snapshot.ok_or_else(|| Error::TableNotFound {
        table: name.to_string(),
    })
}

/// The `prefilter` option of `function`: a SQL condition planned against the table's columns.
fn prefilter(
    function: &str,
    table: &LanceTable,
    condition: &str,
    session: &dyn Session,
) -> Result<Expr> {
    let state = session_state(function, session)?;
    let schema = Arc::new(DFSchema::try_from(table.schema().as_ref().clone())?);
    let described = |error: DataFusionError| {
        Error::invalid(format!(
            "{function}: prefilter '{condition}' is not a condition on the columns of '{}': {}",
            table.name(),
            Error::from(error)
        ))
    };
    let expr = state
        .create_logical_expr(condition, &schema)
        .map_err(described)?;
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(schema.clone())
            .build(),
    );
    simplifier.coerce(expr, &schema).map_err(described)
}
