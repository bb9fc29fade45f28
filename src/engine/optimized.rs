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
//! Such a query also keeps the physical plan its first execution made ([`KeptPhysical`]) when
//! that plan holds, besides search nodes, only nodes that keep no state from one execution to
//! the next and look up no function while they run (projections, filters, limits, DataFusion's
//! cooperative wrapper): no repartitioning, join, sort or aggregate, whose executions share
//! build sides, dynamic filters or channels; nor when a search argument is a scalar subquery,
//! which is evaluated each time the search is planned physically. Without parameters
//! (`take('t', [1, 2])`, `WHERE _rowid IN (...)` run again by its text) the plan runs again as
//! it is. With parameters, they must all go to one search: the search node claims the same
//! properties whatever it searches for (one partition, no ordering, no statistics), so no
//! choice of the physical optimizer depended on the first values; each later execution binds
//! its values into the search (validated as at planning) and swaps that search into the kept
//! plan, and a value that would give the search other columns is planned afresh instead.
//!
//! Whether the kept plans may be used at all is the session's decision: only while the prepared
//! statement is current (same table versions, same settings), exactly as for the logical plan.

use std::sync::{Arc, OnceLock};

use datafusion::catalog::Session;
use datafusion::common::ParamValues;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::TableProvider;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::limit::{GlobalLimitExec, LocalLimitExec};
use datafusion::physical_plan::projection::ProjectionExec;

use super::StatementKind;
use crate::error::Result;
use crate::functions::search::SearchTable;
use crate::physical::search::LanceSearchExec;

/// The optimised plan of one prepared query, made on its first execution, and the physical plan
/// made from it where that can be kept too.
#[derive(Debug, Clone, Default)]
pub struct OptimizedOnce {
    plan: Arc<OnceLock<LogicalPlan>>,
    /// Decided on the first execution that plans physically: `None` inside when not kept.
    physical: Arc<OnceLock<Option<KeptPhysical>>>,
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

    /// The physical plan kept by [`Self::keep_physical`], if it kept one.
    pub fn physical(&self) -> Option<&KeptPhysical> {
        self.physical.get().and_then(Option::as_ref)
    }

    /// Decides, once, whether to keep `physical`: the optimised plan, with the first
    /// execution's values bound if `bound`, planned physically as it is (module doc).
    pub fn keep_physical(&self, physical: &Arc<dyn ExecutionPlan>, bound: bool) -> Result<()> {
        if self.physical.get().is_some() {
            return Ok(());
        }
        let Some(optimized) = self.plan.get() else {
            return Ok(());
        };
        let kept = KeptPhysical::of(optimized, physical, bound)?;
        // Two executions at once may both decide; either decision is the same.
        let _ = self.physical.set(kept);
        Ok(())
    }
}

/// A prepared query's physical plan, run again as it is, or with each execution's search
/// swapped in.
#[derive(Debug)]
pub struct KeptPhysical {
    /// The plan's one search taking the parameters, unbound; `None` for a query without any.
    search: Option<SearchTable>,
    plan: Arc<dyn ExecutionPlan>,
}

impl KeptPhysical {
    /// `physical` kept for `optimized`, its logical plan before any binding (`bound`: values
    /// were bound into `physical`), if running it again, with another search swapped in where
    /// values were bound, is the same as planning afresh (module doc).
    fn of(
        optimized: &LogicalPlan,
        physical: &Arc<dyn ExecutionPlan>,
        bound: bool,
    ) -> Result<Option<Self>> {
        if super::search::searches_evaluate_subqueries(optimized)? {
            return Ok(None);
        }
        let search = if bound {
            let Some(search) = super::search::sole_bound_search(optimized)? else {
                return Ok(None);
            };
            Some(search)
        } else {
            None
        };
        let swappable =
            search_nodes(physical).is_some_and(|searches| search.is_none() || searches == 1);
        Ok(swappable.then(|| KeptPhysical {
            search,
            plan: physical.clone(),
        }))
    }

    /// The kept plan to run with `values`: as it is for a query without parameters; otherwise
    /// with `values` bound into its search (validated as at planning), or `None` when the bound
    /// search would have other columns, so the execution plans afresh.
    pub fn bound(
        &self,
        values: Option<&ParamValues>,
        session: &dyn Session,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let (search, values) = match (&self.search, values) {
            (None, None) => return Ok(Some(self.plan.clone())),
            (Some(search), Some(values)) => (search, values),
            // Kept for the other case: a statement's parameters do not change.
            _ => return Ok(None),
        };
        let bound = search.bind(values, session)?;
        if bound.schema() != search.schema() {
            return Ok(None);
        }
        let Some(search) = bound.into_search() else {
            return Ok(None);
        };
        let swapped = self.plan.clone().transform_up(|node| {
            match node.downcast_ref::<LanceSearchExec>() {
                Some(planned) => Ok(Transformed::yes(
                    Arc::new(planned.with_search(search.clone())) as Arc<dyn ExecutionPlan>,
                )),
                None => Ok(Transformed::no(node)),
            }
        })?;
        Ok(Some(swapped.data))
    }
}

/// How many search nodes `plan` holds, if every other node keeps nothing from one execution to
/// the next and looks up no function while it runs; `None` otherwise.
fn search_nodes(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    let mut searches = 0;
    let mut stateless = true;
    let walked = plan.apply(|node| {
        if node.is::<LanceSearchExec>() {
            searches += 1;
        } else if !(node.is::<CooperativeExec>()
            || node.is::<ProjectionExec>()
            || node.is::<FilterExec>()
            || node.is::<GlobalLimitExec>()
            || node.is::<LocalLimitExec>())
        {
            stateless = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    (walked.is_ok() && stateless).then_some(searches)
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
