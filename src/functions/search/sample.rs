//! `sample(table, n [, seed])`: `n` rows of the table chosen uniformly at random, without
//! replacement, in random order (all rows, shuffled, when the table has fewer). With a seed the
//! choice is the same for the same seed and table version; without one it differs each time.
//! The rows are read by taking their row ids, not by scanning the table.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::Expr;

use crate::error::{Error, Result};
use crate::physical::search::SearchKind;
use crate::provider::table::LanceTable;

use super::arguments::{Argument, argument, describe, integer, positive_integer};
use super::table::{SearchFunction, call};

/// The function's SQL name.
pub const NAME: &str = "sample";

const USAGE: &str = "sample(table, n [, seed])";
const N: usize = 1;
const SEED: usize = 2;

/// `sample` as a table function.
#[derive(Debug)]
pub struct Sample;

impl TableFunctionImpl for Sample {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        call(Arc::new(Sample), args)
    }
}

impl SearchFunction for Sample {
    fn name(&self) -> &'static str {
        NAME
    }

    fn usage(&self) -> &'static str {
        USAGE
    }

    fn arity(&self) -> (usize, Option<usize>) {
        (2, Some(3))
    }

    fn schema(&self, table: &LanceTable, _arguments: &[Expr]) -> Result<SchemaRef> {
        Ok(table.schema())
    }

    fn resolve(
        &self,
        _table: &LanceTable,
        arguments: &[Expr],
        _session: &dyn Session,
    ) -> Result<Option<SearchKind>> {
        let rows = match argument(NAME, "n", &arguments[N])? {
            Argument::Value(value) => Some(positive_integer(NAME, "n", value)?),
            Argument::Parameter(_) | Argument::Subquery(_) => None,
        };
        let seed = match arguments.get(SEED).map(|seed| argument(NAME, "seed", seed)) {
            None => Some(None),
            Some(Ok(Argument::Value(value))) => {
                let seed = integer(value)
                    .and_then(|seed| u64::try_from(seed).ok())
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "{NAME}: argument 'seed' must be a whole number from 0, got {}",
                            describe(value)
                        ))
                    })?;
                Some(Some(seed))
            }
            Some(Ok(Argument::Parameter(_) | Argument::Subquery(_))) => None,
            Some(Err(error)) => return Err(error),
        };
        let (Some(rows), Some(seed)) = (rows, seed) else {
            return Ok(None);
        };
        Ok(Some(SearchKind::Sample { rows, seed }))
    }

    fn parameter_type(
        &self,
        _table: &LanceTable,
        _arguments: &[Expr],
        position: usize,
    ) -> Option<DataType> {
        matches!(position, N | SEED).then_some(DataType::Int64)
    }
}
