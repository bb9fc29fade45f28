//! `ORDER BY <distance>(column, vector) LIMIT k` over a Lance table, run as a Lance vector search
//! ([`NearestOrderBy`], a logical optimizer rule).
//!
//! The rule changes only which rows reach the sort. The table scan under `Sort(fetch = k)`
//! becomes a `k`-nearest search of the same table, version and columns, with the scan's filters
//! (the `WHERE` conjuncts, each pushed as `Exact`) as the search's prefilter. The sort and the
//! limit stay above it and compute the distance with the same scalar function, so every value
//! and the order are SQL's; Lance only picks the k rows. Under `lance.nearest_order_by`:
//! - `exact` (default): the search bypasses vector indices, so it picks the rows the sort would
//!   have kept. Rows with a NULL vector follow when fewer than `k` have one, as NULL distances
//!   sort last. Lance computes distances in the column's type (float32 for most), the function
//!   in float64, so two rows whose distances differ only by rounding may trade places at the
//!   k-th position, as any two equal distances may.
//! - `index`: through the column's vector index with the session's `nprobes` / `ef` /
//!   `refine_factor`; approximate, as pgvector's index scans are.
//! - `off`: never.
//!
//! It applies when all of these hold, and otherwise leaves the plan as it was:
//! - the sort has one key, ascending with NULLs last, and a fetch `k`;
//! - the key is `l2_distance`, `cosine_distance`, `dot_distance` or `hamming_distance` (of
//!   uint8 columns) of a vector column of the table and one constant vector of the column's
//!   dimension (integer columns: of whole numbers in range), directly or through the
//!   projections and aliases that name it;
//! - between the sort and the scan are only projections and subquery aliases, so DataFusion
//!   filters nothing itself (every `WHERE` conjunct was pushed into the scan);
//! - the scan reads a Lance table and has no fetch of its own.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::{TableProvider, provider_as_source, source_as_provider};
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, LogicalPlan, Projection, Sort, SubqueryAlias, TableScan};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::config::{LanceOptions, NearestOrderBy as Mode};
use crate::functions::distance::metric_of;
use crate::physical::search::{Metric, SearchKind};
use crate::provider::pushdown::unqualify;
use crate::provider::table::LanceTable;

use super::table::SearchTable;
use super::vector::{VectorSearch, query_vectors, result_schema, vector_column, with_defaults};

/// The optimizer rule (see the module documentation).
#[derive(Debug, Default)]
pub struct NearestOrderBy;

impl OptimizerRule for NearestOrderBy {
    fn name(&self) -> &str {
        "lance_nearest_order_by"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        config: &dyn OptimizerConfig,
    ) -> DFResult<Transformed<LogicalPlan>> {
        let options = LanceOptions::of(&config.options());
        if options.nearest_order_by == Mode::Off {
            return Ok(Transformed::no(plan));
        }
        let LogicalPlan::Sort(sort) = &plan else {
            return Ok(Transformed::no(plan));
        };
        let (Some(k), [key]) = (sort.fetch, sort.expr.as_slice()) else {
            return Ok(Transformed::no(plan));
        };
        if !key.asc || key.nulls_first {
            return Ok(Transformed::no(plan));
        }
        let key_expr = key.expr.clone().unalias_nested().data;
        match searched(&sort.input, &key_expr, k, &options) {
            Some(input) => Ok(Transformed::yes(LogicalPlan::Sort(Sort {
                expr: sort.expr.clone(),
                input: Arc::new(input),
                fetch: sort.fetch,
            }))),
            None => Ok(Transformed::no(plan)),
        }
    }
}

/// `plan` with its table scan replaced by the `k` nearest rows by `key` (an expression over
/// `plan`'s output), or `None` where the rule does not apply.
fn searched(
    plan: &LogicalPlan,
    key: &Expr,
    k: usize,
    options: &LanceOptions,
) -> Option<LogicalPlan> {
    match plan {
        LogicalPlan::Projection(projection) => {
            let key = through(key, |column| {
                let index = projection.schema.index_of_column(column).ok()?;
                Some(projection.expr.get(index)?.clone().unalias_nested().data)
            })?;
            let input = searched(&projection.input, &key, k, options)?;
            Projection::try_new_with_schema(
                projection.expr.clone(),
                Arc::new(input),
                projection.schema.clone(),
            )
            .ok()
            .map(LogicalPlan::Projection)
        }
        LogicalPlan::SubqueryAlias(alias) => {
            let key = through(key, |column| {
                let index = alias.schema.index_of_column(column).ok()?;
                let (qualifier, field) = alias.input.schema().qualified_field(index);
                Some(Expr::Column(Column::from((qualifier, field))))
            })?;
            let input = searched(&alias.input, &key, k, options)?;
            SubqueryAlias::try_new(Arc::new(input), alias.alias.clone())
                .ok()
                .map(LogicalPlan::SubqueryAlias)
        }
        LogicalPlan::TableScan(scan) if scan.fetch.is_none() => {
            search_scan(scan, key, k, options).map(LogicalPlan::TableScan)
        }
        _ => None,
    }
}

/// `key` with each column replaced by what `resolve` says it is below a node.
fn through(key: &Expr, resolve: impl Fn(&Column) -> Option<Expr>) -> Option<Expr> {
    key.clone()
        .transform(|expr| match &expr {
            Expr::Column(column) => match resolve(column) {
                Some(resolved) => Ok(Transformed::yes(resolved)),
                None => datafusion::common::plan_err!("unresolved"),
            },
            _ => Ok(Transformed::no(expr)),
        })
        .ok()
        .map(|transformed| transformed.data)
}

/// The scan `scan` as a nearest-neighbour search by `key`, when `key` is a distance function of
/// one of its vector columns and a constant vector.
fn search_scan(
    scan: &TableScan,
    key: &Expr,
    k: usize,
    options: &LanceOptions,
) -> Option<TableScan> {
    let Expr::ScalarFunction(call) = key else {
        return None;
    };
    let metric = metric_of(&call.func)?;
    let (column, query) = match call.args.as_slice() {
        [Expr::Column(column), Expr::Literal(query, _)]
        | [Expr::Literal(query, _), Expr::Column(column)] => (column, query),
        _ => return None,
    };
    scan.projected_schema.index_of_column(column).ok()?;
    let provider = source_as_provider(&scan.source).ok()?;
    let table = provider.downcast_ref::<LanceTable>()?.clone();
    let (element, dimension) = vector_column("ORDER BY", &table, &column.name).ok()?;
    if metric == Metric::Hamming && element != DataType::UInt8 {
        return None;
    }
    if element.is_integer() && !whole_numbers_in(query, &element) {
        return None;
    }
    let (queries, batch) =
        query_vectors("ORDER BY", query, &column.name, &element, dimension).ok()?;
    if batch {
        return None;
    }
    let mut nearest = with_defaults(&table, &column.name, queries, k, options);
    nearest.metric = Some(metric);
    nearest.null_vectors_last = true;
    nearest.prefilter = conjunction(scan.filters.iter().cloned().map(unqualify));
    if options.nearest_order_by == Mode::Exact {
        nearest.use_index = false;
        (nearest.nprobes, nearest.ef, nearest.refine_factor) = (None, None, None);
    }
    let columns = table.schema().fields().len();
    let schema = result_schema(&table, false);
    let search = SearchTable::of_search(
        Arc::new(VectorSearch),
        Arc::new(table),
        schema,
        SearchKind::Nearest(Box::new(nearest)),
    );
    Some(TableScan {
        source: provider_as_source(Arc::new(search)),
        // The search adds `_distance` after the table's columns: name the table's explicitly.
        projection: Some(
            scan.projection
                .clone()
                .unwrap_or_else(|| (0..columns).collect()),
        ),
        filters: Vec::new(),
        ..scan.clone()
    })
}

/// Whether every element of the vector `query` is a whole number that `element` (an integer
/// type) holds, so converting the query to the column's type changes no distance.
fn whole_numbers_in(query: &ScalarValue, element: &DataType) -> bool {
    let Ok(array) = query.to_array() else {
        return false;
    };
    let values = match array.data_type() {
        DataType::List(_) => array
            .as_any()
            .downcast_ref::<arrow::array::ListArray>()
            .map(|list| list.values().clone()),
        DataType::LargeList(_) => array
            .as_any()
            .downcast_ref::<arrow::array::LargeListArray>()
            .map(|list| list.values().clone()),
        DataType::FixedSizeList(_, _) => array
            .as_any()
            .downcast_ref::<arrow::array::FixedSizeListArray>()
            .map(|list| list.values().clone()),
        _ => None,
    };
    let Some(values) = values else {
        return false;
    };
    let (Ok(as_element), Ok(as_float)) = (
        arrow::compute::cast(&values, element),
        arrow::compute::cast(&values, &DataType::Float64),
    ) else {
        return false;
    };
    let Ok(back) = arrow::compute::cast(&as_element, &DataType::Float64) else {
        return false;
    };
    as_element.null_count() == values.null_count() && back.as_ref() == as_float.as_ref()
}
