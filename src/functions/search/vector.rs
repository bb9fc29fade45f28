//! `vector_search(table, column, query, k [, 'option', value]...)`: the k nearest rows to each
//! query vector, with `_distance`, nearest first.
//!
//! `query` is one vector (an array literal or a bind parameter) or an array of vectors (the
//! result then starts with `query_index`, 0-based). Options, as trailing name/value pairs:
//! `metric` (l2, cosine, dot, hamming), `nprobes`, `minimum_nprobes`, `maximum_nprobes`, `ef`,
//! `refine_factor`, `lower_bound` / `upper_bound` (a distance range), `prefilter` (a SQL
//! condition on the table's columns, applied before ranking), `fast_search` and `use_index`.
//! The index knobs need a vector index on the column; without one the search is exact.
//! Session settings `lance.nprobes`, `lance.refine_factor` and `lance.ef` are defaults for the
//! knobs where an index exists.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, FixedSizeListArray};
use arrow::compute::CastOptions;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::Expr;

use crate::config::LanceOptions;
use crate::error::{Error, Result};
use crate::physical::search::{
    DISTANCE_COLUMN, Metric, NearestSpec, QUERY_INDEX_COLUMN, SearchKind,
};
use crate::provider::table::LanceTable;

use super::arguments::{
    Argument, argument, boolean, describe, number, option_pairs, positive_integer, string,
    string_value,
};
use super::prefilter;
use super::table::{SearchFunction, call};

/// The function's SQL name.
pub const NAME: &str = "vector_search";

const USAGE: &str = "vector_search(table, column, query_vector, k [, 'option', value]...)";

/// Every option, by name.
pub const OPTIONS: [&str; 11] = [
    "metric",
    "nprobes",
    "minimum_nprobes",
    "maximum_nprobes",
    "ef",
    "refine_factor",
    "lower_bound",
    "upper_bound",
    "prefilter",
    "fast_search",
    "use_index",
];

/// Options that only mean something to a vector index.
const INDEX_OPTIONS: [&str; 6] = [
    "nprobes",
    "minimum_nprobes",
    "maximum_nprobes",
    "ef",
    "refine_factor",
    "fast_search",
];

const QUERY: usize = 2;
/// Options follow `table, column, query_vector, k`.
pub const OPTIONS_START: usize = 4;
const K: usize = 3;

/// `vector_search` as a table function.
#[derive(Debug)]
pub struct VectorSearch;

impl TableFunctionImpl for VectorSearch {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        call(Arc::new(VectorSearch), args)
    }
}

impl SearchFunction for VectorSearch {
    fn name(&self) -> &'static str {
        NAME
    }

    fn usage(&self) -> &'static str {
        USAGE
    }

    fn arity(&self) -> (usize, Option<usize>) {
        (4, None)
    }

    fn schema(&self, table: &LanceTable, arguments: &[Expr]) -> Result<SchemaRef> {
        let batch = match argument(NAME, "query_vector", &arguments[QUERY])? {
            Argument::Value(value) => is_batch(NAME, value)?,
            Argument::Parameter(placeholder) => placeholder
                .field
                .as_ref()
                .is_some_and(|field| list_element(field.data_type()).is_some_and(is_list)),
            Argument::Subquery(subquery) => subquery
                .subquery
                .schema()
                .fields()
                .first()
                .is_some_and(|field| list_element(field.data_type()).is_some_and(is_list)),
        };
        Ok(result_schema(table, batch))
    }

    fn resolve(
        &self,
        table: &LanceTable,
        arguments: &[Expr],
        session: &dyn Session,
    ) -> Result<Option<SearchKind>> {
        let options = option_pairs(NAME, &arguments[OPTIONS_START..], &OPTIONS)?;
        let nearest = nearest(
            NAME,
            table,
            [&arguments[1], &arguments[QUERY], &arguments[K]],
            &options,
            session,
        )?;
        Ok(nearest.map(|nearest| SearchKind::Nearest(Box::new(nearest))))
    }

    fn parameter_type(
        &self,
        table: &LanceTable,
        arguments: &[Expr],
        position: usize,
    ) -> Option<DataType> {
        match position {
            QUERY => query_parameter_type(table, &arguments[1]),
            K => Some(DataType::Int64),
            _ => None,
        }
    }
}

/// The columns of a nearest-neighbour search of `table`: `query_index` when several query
/// vectors were given (`batch`), the table's columns, `_distance`.
pub(super) fn result_schema(table: &LanceTable, batch: bool) -> SchemaRef {
    let mut fields = Vec::new();
    if batch {
        fields.push(Arc::new(Field::new(
            QUERY_INDEX_COLUMN,
            DataType::Int32,
            false,
        )));
    }
    fields.extend(table.schema().fields().iter().cloned());
    fields.push(Arc::new(Field::new(
        DISTANCE_COLUMN,
        DataType::Float32,
        true,
    )));
    Arc::new(Schema::new(fields))
}

/// The type a query vector bound as a parameter takes: a list of the column's element type.
pub(super) fn query_parameter_type(table: &LanceTable, column: &Expr) -> Option<DataType> {
    let column = string(NAME, "column", column).ok()?;
    let (element, _) = vector_column(NAME, table, &column).ok()?;
    Some(DataType::List(Arc::new(Field::new_list_field(
        element, true,
    ))))
}

/// The element type and dimension of vector column `column`.
pub(super) fn vector_column(
    function: &str,
    table: &LanceTable,
    column: &str,
) -> Result<(DataType, usize)> {
    let data_type = table
        .column_type(column)
        .ok_or_else(|| Error::ColumnNotFound {
            table: table.name().to_string(),
            column: column.to_string(),
        })?;
    match data_type {
        DataType::FixedSizeList(item, dimension)
            if matches!(
                item.data_type(),
                DataType::Float16
                    | DataType::Float32
                    | DataType::Float64
                    | DataType::Int8
                    | DataType::UInt8
            ) =>
        {
            Ok((
                item.data_type().clone(),
                usize::try_from(*dimension).unwrap_or(0),
            ))
        }
        other => Err(Error::invalid(format!(
            "{function}: column '{column}' of '{}' is not a vector column (a fixed-size list of \
             float16, float32, float64, int8 or uint8); it holds {other}",
            table.name()
        ))),
    }
}

fn is_list(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _)
    )
}

fn list_element(data_type: &DataType) -> Option<&DataType> {
    match data_type {
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            Some(item.data_type())
        }
        _ => None,
    }
}

/// Whether a query value holds several vectors.
fn is_batch(function: &str, value: &ScalarValue) -> Result<bool> {
    match list_element(&value.data_type()) {
        Some(element) => Ok(is_list(element)),
        None => Err(Error::invalid(format!(
            "{function}: argument 'query_vector' must be an array of numbers (or of arrays of \
             numbers), got {}",
            describe(value)
        ))),
    }
}

/// Row `row` of a list array.
fn list_row(array: &ArrayRef, row: usize) -> Option<ArrayRef> {
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::List(_) => Some(array.as_list::<i32>().value(row)),
        DataType::LargeList(_) => Some(array.as_list::<i64>().value(row)),
        DataType::FixedSizeList(_, _) => Some(array.as_fixed_size_list().value(row)),
        _ => None,
    }
}

/// The query vectors of `value`, converted to the column's element type, and whether several
/// were given.
pub(super) fn query_vectors(
    function: &str,
    value: &ScalarValue,
    column: &str,
    element: &DataType,
    dimension: usize,
) -> Result<(Arc<FixedSizeListArray>, bool)> {
    let batch = is_batch(function, value)?;
    let invalid = || {
        Error::invalid(format!(
            "{function}: argument 'query_vector' must not be NULL or hold NULLs"
        ))
    };
    let array = value.to_array().map_err(Error::from)?;
    let outer = list_row(&array, 0).ok_or_else(invalid)?;
    let vectors: Vec<ArrayRef> = if batch {
        (0..outer.len())
            .map(|row| list_row(&outer, row).ok_or_else(invalid))
            .collect::<Result<_>>()?
    } else {
        vec![outer]
    };
    if vectors.is_empty() {
        return Err(Error::invalid(format!(
            "{function}: argument 'query_vector' holds no vectors"
        )));
    }
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let mut converted = Vec::with_capacity(vectors.len());
    for (number, vector) in vectors.iter().enumerate() {
        if vector.null_count() > 0 {
            return Err(invalid());
        }
        if vector.len() != dimension {
            let which = if batch {
                format!("query vector {}", number + 1)
            } else {
                "the query vector".to_string()
            };
            return Err(Error::invalid(format!(
                "{function}: {which} has {} dimensions; column '{column}' has {dimension}",
                vector.len()
            )));
        }
        let cast =
            arrow::compute::cast_with_options(vector, element, &options).map_err(|error| {
                Error::invalid(format!(
                    "{function}: the query vector does not convert to the column's {element}: {error}"
                ))
            })?;
        converted.push(cast);
    }
    let parts: Vec<&dyn Array> = converted.iter().map(|array| array.as_ref()).collect();
    let values = arrow::compute::concat(&parts).map_err(Error::from)?;
    let queries = FixedSizeListArray::try_new(
        Arc::new(Field::new_list_field(element.clone(), true)),
        i32::try_from(dimension).unwrap_or(i32::MAX),
        values,
        None,
    )
    .map_err(Error::from)?;
    Ok((Arc::new(queries), batch))
}

/// The nearest-neighbour search `function` describes with `[column, query_vector, k]` and
/// `options` (vector options only), or `None` while the query vector or `k` is unbound.
pub(super) fn nearest(
    function: &str,
    table: &LanceTable,
    [column, query, k]: [&Expr; 3],
    options: &[(String, &ScalarValue)],
    session: &dyn Session,
) -> Result<Option<NearestSpec>> {
    let column = string(function, "column", column)?;
    let (element, dimension) = vector_column(function, table, &column)?;
    let queries = match argument(function, "query_vector", query)? {
        Argument::Value(value) => Some(query_vectors(
            function, value, &column, &element, dimension,
        )?),
        Argument::Parameter(_) | Argument::Subquery(_) => None,
    };
    let k = match argument(function, "k", k)? {
        Argument::Value(value) => Some(positive_integer(function, "k", value)?),
        Argument::Parameter(_) | Argument::Subquery(_) => None,
    };
    if !is_indexed(table, &column)
        && let Some((name, _)) = options
            .iter()
            .find(|(name, _)| INDEX_OPTIONS.contains(&name.as_str()))
    {
        return Err(Error::invalid(format!(
            "{function}: option '{name}' needs a vector index on column '{column}' of '{}', which \
                 has none (create one with CREATE INDEX ON {} USING IVF_PQ ({column}), or leave \
                 the option out for an exact search)",
            table.name(),
            table.name()
        )));
    }
    let defaults = LanceOptions::of(session.config_options());
    let placeholder = Arc::new(FixedSizeListArray::new_null(
        Arc::new(Field::new_list_field(element.clone(), true)),
        i32::try_from(dimension).unwrap_or(i32::MAX),
        0,
    ));
    let mut nearest = with_defaults(table, &column, placeholder, k.unwrap_or(1), &defaults);
    for (name, value) in options {
        let (name, value) = (name.as_str(), *value);
        match name {
            "metric" => {
                let text = string_value(function, "metric", value)?;
                let metric = Metric::parse(&text).ok_or_else(|| {
                    Error::invalid(format!(
                        "{function}: unknown metric '{text}'; metrics are {}",
                        Metric::ALL.map(|(name, _)| name).join(", ")
                    ))
                })?;
                if metric == Metric::Hamming && element != DataType::UInt8 {
                    return Err(Error::invalid(format!(
                        "{function}: metric 'hamming' needs a vector column of uint8 (packed \
                             bits); '{column}' holds {element}"
                    )));
                }
                nearest.metric = Some(metric);
            }
            "nprobes" => nearest.nprobes = Some(positive_integer(function, name, value)?),
            "minimum_nprobes" => {
                nearest.minimum_nprobes = Some(positive_integer(function, name, value)?)
            }
            "maximum_nprobes" => {
                nearest.maximum_nprobes = Some(positive_integer(function, name, value)?)
            }
            "ef" => nearest.ef = Some(positive_integer(function, name, value)?),
            "refine_factor" => {
                let factor = positive_integer(function, name, value)?;
                nearest.refine_factor = Some(u32::try_from(factor).map_err(|_| {
                    Error::invalid(format!("{function}: refine_factor {factor} is too large"))
                })?);
            }
            "lower_bound" => nearest.distance_range.0 = Some(number(function, name, value)? as f32),
            "upper_bound" => nearest.distance_range.1 = Some(number(function, name, value)? as f32),
            "prefilter" => {
                let condition = string_value(function, "prefilter", value)?;
                nearest.prefilter = Some(prefilter(function, table, &condition, session)?);
            }
            "fast_search" => nearest.fast_search = boolean(function, name, value)?,
            "use_index" => nearest.use_index = boolean(function, name, value)?,
            _ => {
                return Err(Error::Internal {
                    message: format!("{function}: option '{name}' is listed but not handled"),
                });
            }
        }
    }
    if let (Some(low), Some(high)) = nearest.distance_range
        && low >= high
    {
        return Err(Error::invalid(format!(
            "{function}: lower_bound ({low}) must be below upper_bound ({high})"
        )));
    }
    let (Some((queries, batch)), Some(k)) = (queries, k) else {
        return Ok(None);
    };
    nearest.queries = queries;
    nearest.batch = batch;
    nearest.k = k;
    Ok(Some(nearest))
}

/// Whether `column` of `table` has a vector index.
fn is_indexed(table: &LanceTable, column: &str) -> bool {
    table
        .indices()
        .iter()
        .any(|index| index.is_vector() && index.columns.first().map(String::as_str) == Some(column))
}

/// The `k`-nearest search of `column` for one query vector (`queries` holds one row) with every
/// knob at the session's defaults: the index knobs set only where the column has an index.
pub(super) fn with_defaults(
    table: &LanceTable,
    column: &str,
    queries: Arc<FixedSizeListArray>,
    k: usize,
    defaults: &LanceOptions,
) -> NearestSpec {
    let indexed = is_indexed(table, column);
    let setting = |value: usize| (indexed && value > 0).then_some(value);
    NearestSpec {
        column: column.to_string(),
        queries,
        batch: false,
        k,
        metric: None,
        nprobes: setting(defaults.nprobes),
        minimum_nprobes: None,
        maximum_nprobes: None,
        ef: setting(defaults.ef),
        refine_factor: setting(defaults.refine_factor).and_then(|f| u32::try_from(f).ok()),
        distance_range: (None, None),
        fast_search: false,
        use_index: true,
        prefilter: None,
        null_vectors_last: false,
    }
}
