//! `take(table, row_ids)`: the rows of the given `_rowid`s, in the order given, duplicates kept.
//! `row_ids` is an array of whole numbers, integers or `numeric` (a literal or a bind
//! parameter); an id that names no live row fails the statement, naming the id.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Decimal128Type, Field, SchemaRef, UInt64Type};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::Expr;

use crate::error::{Error, Result};
use crate::physical::search::{MissingRow, SearchKind};
use crate::provider::table::LanceTable;

use super::arguments::{Argument, argument, describe};
use super::table::{SearchFunction, call};

/// The function's SQL name.
pub const NAME: &str = "take";

const USAGE: &str = "take(table, row_ids)";

const ROW_IDS: usize = 1;

/// `take` as a table function.
#[derive(Debug)]
pub struct Take;

impl TableFunctionImpl for Take {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        call(Arc::new(Take), args)
    }
}

impl SearchFunction for Take {
    fn name(&self) -> &'static str {
        NAME
    }

    fn usage(&self) -> &'static str {
        USAGE
    }

    fn arity(&self) -> (usize, Option<usize>) {
        (2, Some(2))
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
        match argument(NAME, "row_ids", &arguments[ROW_IDS])? {
            Argument::Value(value) => Ok(Some(SearchKind::Take {
                row_ids: row_ids(value)?,
                missing: MissingRow::Fail,
            })),
            Argument::Parameter(_) | Argument::Subquery(_) => Ok(None),
        }
    }

    fn parameter_type(
        &self,
        _table: &LanceTable,
        _arguments: &[Expr],
        position: usize,
    ) -> Option<DataType> {
        (position == ROW_IDS)
            .then(|| DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true))))
    }
}

/// The row ids of an array of integers.
fn row_ids(value: &ScalarValue) -> Result<Vec<u64>> {
    let refused = || {
        Error::invalid(format!(
            "{NAME}: argument 'row_ids' must be an array of row ids (integers from 0), got {}",
            describe(value)
        ))
    };
    let array = value.to_array().map_err(Error::from)?;
    let ids = match array.data_type() {
        DataType::List(_) if !array.is_null(0) => array.as_list::<i32>().value(0),
        DataType::LargeList(_) if !array.is_null(0) => array.as_list::<i64>().value(0),
        DataType::FixedSizeList(_, _) if !array.is_null(0) => array.as_fixed_size_list().value(0),
        _ => return Err(refused()),
    };
    // `[]` has no element type of its own.
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Whole numbers only. `numeric` counts: psycopg sends a list of Python ints of mixed
    // sizes (row ids past 2^32 beside small ones) as `numeric[]`.
    let whole = match ids.data_type() {
        data_type if data_type.is_integer() => true,
        DataType::Decimal128(_, scale) => {
            // A negative scale multiplies: every value is whole (unit 1).
            let unit = 10i128.checked_pow(u32::try_from(*scale).unwrap_or(0));
            unit.is_some_and(|unit| {
                ids.as_primitive::<Decimal128Type>()
                    .values()
                    .iter()
                    .all(|value| value % unit == 0)
            })
        }
        _ => false,
    };
    if !whole || ids.null_count() > 0 {
        return Err(refused());
    }
    // A negative id fails the conversion rather than wrapping around.
    let options = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let ids = arrow::compute::cast_with_options(&ids, &DataType::UInt64, &options)
        .map_err(|_| refused())?;
    Ok(ids.as_primitive::<UInt64Type>().values().to_vec())
}
