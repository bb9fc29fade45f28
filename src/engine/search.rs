//! The engine's side of the search table functions ([`crate::functions::search`]): which tables
//! a statement searches (resolved into its snapshot like the tables it names), the types of
//! bind parameters given to search functions, and binding their values before execution.
//!
//! A search function turns its arguments into a table provider while the statement is planned,
//! so a `$n` among its arguments is not in the logical plan's expressions: DataFusion neither
//! reports it nor binds it. This module does both, on the plan's table scans.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::datatypes::FieldRef;
use datafusion::catalog::Session;
use datafusion::common::ParamValues;
use datafusion::common::tree_node::Transformed;
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    self, FunctionArg, FunctionArgExpr, TableFactor, Value, Visit, Visitor,
};

use crate::error::{Error, Result};
use crate::functions::search::{SearchTable, is_search_function};

/// The tables the statement's search-function and `table_changes` calls name in their first
/// argument.
pub fn searched_tables(statement: &DFStatement) -> Vec<String> {
    struct Calls(Vec<String>);
    impl Visitor for Calls {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name,
                args: Some(args),
                ..
            } = factor
                && let [function] = name.0.as_slice()
                && function.as_ident().is_some_and(|ident| {
                    let name = ident.value.to_lowercase();
                    is_search_function(&name) || name == crate::functions::changes::NAME
                })
                && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(ast::Expr::Value(value)))) =
                    args.args.first()
                && let Value::SingleQuotedString(table) = &value.value
            {
                self.0.push(table.clone());
            }
            ControlFlow::Continue(())
        }
    }
    let mut calls = Calls(Vec::new());
    match statement {
        DFStatement::Statement(inner) => {
            let _ = inner.visit(&mut calls);
        }
        DFStatement::Explain(explain) => return searched_tables(&explain.statement),
        _ => {}
    }
    calls.0
}

/// The search functions of `plan` (and its subqueries).
fn search_tables(
    plan: &LogicalPlan,
) -> Result<Vec<Arc<dyn datafusion::datasource::TableProvider>>> {
    let mut found = Vec::new();
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && provider.downcast_ref::<SearchTable>().is_some()
        {
            found.push(provider);
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    })?;
    Ok(found)
}

/// The bind parameters given to search functions in `plan`, by id (`$1`), with their types.
pub fn parameter_fields(plan: &LogicalPlan) -> Result<HashMap<String, FieldRef>> {
    let mut fields = HashMap::new();
    for provider in search_tables(plan)? {
        if let Some(search) = provider.downcast_ref::<SearchTable>() {
            fields.extend(search.parameters());
        }
    }
    Ok(fields)
}

/// The search function of `plan` (its subqueries included) when it calls exactly one and that
/// one takes bind parameters.
pub fn sole_bound_search(plan: &LogicalPlan) -> Result<Option<SearchTable>> {
    let searches = search_tables(plan)?;
    let [provider] = searches.as_slice() else {
        return Ok(None);
    };
    Ok(provider
        .downcast_ref::<SearchTable>()
        .filter(|search| !search.parameters().is_empty())
        .cloned())
}

/// Whether a search function of `plan` (its subqueries included) has a scalar subquery among
/// its arguments.
pub fn searches_evaluate_subqueries(plan: &LogicalPlan) -> Result<bool> {
    Ok(search_tables(plan)?.iter().any(|provider| {
        provider
            .downcast_ref::<SearchTable>()
            .is_some_and(SearchTable::has_subquery_argument)
    }))
}

/// `plan` with `values` bound into the arguments of its search functions (each validated again
/// with the values).
pub fn bind_parameters(
    plan: LogicalPlan,
    values: &ParamValues,
    session: &dyn Session,
) -> Result<LogicalPlan> {
    let bound = plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::TableScan(mut scan) = node else {
            return Ok(Transformed::no(node));
        };
        let replacement = match source_as_provider(&scan.source) {
            Ok(provider) => match provider.downcast_ref::<SearchTable>() {
                Some(search) if !search.parameters().is_empty() => Some(
                    search
                        .bind(values, session)
                        .map_err(datafusion::error::DataFusionError::from)?,
                ),
                _ => None,
            },
            Err(_) => None,
        };
        match replacement {
            Some(search) => {
                scan.source = provider_as_source(Arc::new(search));
                Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
            }
            None => Ok(Transformed::no(LogicalPlan::TableScan(scan))),
        }
    });
    bound
        .map(|transformed| transformed.data)
        .map_err(Error::from)
}
