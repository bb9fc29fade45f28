//! Search and random-access table functions: [`vector::NAME`] (`vector_search`) and
//! [`take::NAME`] (`take`), listed once in [`SEARCH_FUNCTIONS`].
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
//! - Results carry the table's columns plus `_rowid` and `_rowaddr` (kept out of `SELECT *`, as
//!   for tables) and the function's own columns (`_distance`, `query_index`). A `WHERE` around
//!   the function filters its results; it is never pushed into the search.
//!
//! May depend on: `catalog` (the statement's snapshot), `provider` (`LanceTable`), `physical`,
//! `config`, `error`.

mod arguments;
pub mod table;
pub mod take;
pub mod vector;

use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::execution::context::{SessionContext, SessionState};

use crate::catalog::{CATALOG_NAME, StatementCatalog};
use crate::error::{Error, Result};
use crate::provider::table::LanceTable;
pub use table::SearchTable;

/// Every search table function, by name.
pub const SEARCH_FUNCTIONS: [&str; 2] = [vector::NAME, take::NAME];

/// Registers the search table functions.
pub fn register(context: &SessionContext) {
    context.register_udtf(vector::NAME, Arc::new(vector::VectorSearch));
    context.register_udtf(take::NAME, Arc::new(take::Take));
}

/// Whether `name` is one of the search table functions.
pub fn is_search_function(name: &str) -> bool {
    SEARCH_FUNCTIONS.contains(&name)
}

/// The table `function`'s first argument names, from the statement's snapshot.
fn table_argument(function: &str, session: &dyn Session, name: &str) -> Result<Arc<LanceTable>> {
    let state = session
        .as_any()
        .downcast_ref::<SessionState>()
        .ok_or_else(|| Error::Internal {
            message: format!("{function} was planned outside a lancesql session"),
        })?;
    let snapshot = state
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
