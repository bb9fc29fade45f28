//! A prepared query's optimised logical plan, kept for its next executions where reuse cannot
//! change what it computes.
//!
//! Contract: executing a prepared query binds its parameters, then analyses, optimises and plans
//! it physically. The analyser and optimiser do the same work every time unless something they
//! look at differs between executions. [`OptimizedOnce::for_query`] keeps their result only for
//! queries where nothing can:
//! - every parameter is an argument of a search function (`take('t', $1)`,
//!   `vector_search(..., $1, ...)`): those live inside the function's table, which the optimiser
//!   never inspects (it pushes no filter into it), so binding after optimising is the same as
//!   before; a placeholder anywhere else (a filter, a `LIMIT`) may steer a pushdown decision,
//!   so such a query is optimised per execution as before;
//! - no function call is volatile or stable (`now()`, `random()`): the optimiser folds stable
//!   calls to the time of the execution;
//! - it is a plain query, not `EXPLAIN` or a statement the session context carries out itself
//!   (`EXECUTE name`), and does not read the catalog listing (taken afresh each time).
//!
//! Whether the kept plan may be used at all is the session's decision: only while the prepared
//! statement is current (same table versions, same settings), exactly as for the logical plan.

use std::sync::{Arc, OnceLock};

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};

use super::StatementKind;
use crate::error::Result;

/// The optimised plan of one prepared query, made on its first execution.
#[derive(Debug, Clone, Default)]
pub struct OptimizedOnce {
    plan: Arc<OnceLock<LogicalPlan>>,
}

impl OptimizedOnce {
    /// A place for `plan`'s optimised form if reusing it cannot change results (module doc);
    /// `None` otherwise.
    pub fn for_query(
        kind: &StatementKind,
        plan: &LogicalPlan,
        reads_catalog: bool,
    ) -> Option<Self> {
        let reusable = matches!(kind, StatementKind::Query)
            && !reads_catalog
            && !matches!(
                plan,
                // Carried out by the session context itself (`EXECUTE name`), or rendered.
                LogicalPlan::Statement(_)
                    | LogicalPlan::Ddl(_)
                    | LogicalPlan::Explain(_)
                    | LogicalPlan::Analyze(_)
            )
            && plan
                .get_parameter_fields()
                .is_ok_and(|outside_searches| outside_searches.is_empty())
            && calls_only_immutable_functions(plan);
        reusable.then(Self::default)
    }

    /// Whether the optimised plan has been made.
    #[cfg(test)]
    pub fn is_made(&self) -> bool {
        self.plan.get().is_some()
    }

    /// `plan` analysed and optimised in `state`: done on the first call, kept for the others.
    pub fn optimize(&self, plan: &LogicalPlan, state: &SessionState) -> Result<LogicalPlan> {
        if let Some(optimized) = self.plan.get() {
            return Ok(optimized.clone());
        }
        let optimized = state.optimize(plan)?;
        // Two executions at once may both optimise; either result is the same plan.
        Ok(self.plan.get_or_init(|| optimized).clone())
    }
}

/// Whether every function `plan` calls (its subqueries included) gives the same result for the
/// same arguments whenever it runs.
fn calls_only_immutable_functions(plan: &LogicalPlan) -> bool {
    let mut immutable = true;
    let walked = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|expr| {
                let volatility = match expr {
                    Expr::ScalarFunction(call) => call.func.signature().volatility,
                    Expr::AggregateFunction(call) => call.func.signature().volatility,
                    Expr::WindowFunction(call) => call.fun.signature().volatility,
                    _ => Volatility::Immutable,
                };
                if volatility == Volatility::Immutable {
                    Ok(TreeNodeRecursion::Continue)
                } else {
                    immutable = false;
                    Ok(TreeNodeRecursion::Stop)
                }
            })
        })
    });
    walked.is_ok() && immutable
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    async fn plan_of(sql: &str) -> LogicalPlan {
        let context = SessionContext::new();
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        let batch = arrow::array::RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .expect("batch");
        let table = MemTable::try_new(schema, vec![vec![batch]]).expect("table");
        context
            .register_table("t", Arc::new(table))
            .expect("register");
        context
            .state()
            .create_logical_plan(sql)
            .await
            .expect("plan")
    }

    #[tokio::test]
    async fn only_queries_whose_optimisation_cannot_change_are_kept() {
        let kept = |sql: &'static str, kind: StatementKind| async move {
            OptimizedOnce::for_query(&kind, &plan_of(sql).await, false).is_some()
        };
        assert!(kept("SELECT a + 1 FROM t WHERE a > 1", StatementKind::Query).await);
        assert!(kept("SELECT count(*) FROM t", StatementKind::Query).await);
        // A placeholder the optimiser sees, a function folded per execution, EXPLAIN.
        assert!(!kept("SELECT a FROM t WHERE a > $1", StatementKind::Query).await);
        assert!(!kept("SELECT a FROM t LIMIT $1", StatementKind::Query).await);
        assert!(!kept("SELECT now(), a FROM t", StatementKind::Query).await);
        assert!(!kept("SELECT a FROM t WHERE random() < 0.5", StatementKind::Query).await);
        assert!(
            !kept(
                "SELECT (SELECT max(a) FROM t WHERE a < now()::bigint)",
                StatementKind::Query
            )
            .await
        );
        assert!(!kept("EXPLAIN SELECT a FROM t", StatementKind::Query).await);
        assert!(!kept("EXECUTE named", StatementKind::Query).await);
        // Only queries; nor one planned against the catalog listing.
        assert!(!kept("SELECT a FROM t", StatementKind::Show).await);
        let plan = plan_of("SELECT a FROM t").await;
        assert!(OptimizedOnce::for_query(&StatementKind::Query, &plan, true).is_none());
    }

    #[tokio::test]
    async fn the_first_optimisation_is_the_one_kept() {
        let plan = plan_of("SELECT a FROM t WHERE a > 1 + 1").await;
        let state = SessionContext::new().state();
        let once = OptimizedOnce::for_query(&StatementKind::Query, &plan, false).expect("kept");
        let first = once.optimize(&plan, &state).expect("optimise");
        // Folded by the optimiser, so this is the optimised plan, and the clone shares it.
        assert!(
            first.display_indent().to_string().contains("a > Int64(2)"),
            "{}",
            first.display_indent()
        );
        let shared = once.clone();
        let other = plan_of("SELECT a FROM t").await;
        assert_eq!(shared.optimize(&other, &state).expect("kept plan"), first);
    }
}
