//! A prepared statement's plan and what it was planned against, replaced whole when the
//! statement is planned again.
//!
//! Contract: a prepared statement's plan holds while every table it read keeps the version it
//! resolved and the session keeps the settings it was planned with
//! ([`super::LanceSession::is_current`]). An execution that finds the plan stale plans the
//! statement again and puts the new [`Plan`] in the statement's [`PlanSlot`], so the executions
//! after it run that plan as they ran the first one, instead of each planning afresh for as long
//! as the statement lives (after one write to a table a prepared query reads, or one `SET`).
//! Only the plan and what it depends on are replaced: the parameters' types and the result's
//! columns are the statement's promise to its client and stay (planning again fails where the
//! columns would change). A slot is only a cache: any plan in it is checked before it runs, so
//! two executions racing to replace it leave a plan that is as good as the other.

use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::common::config::ConfigOptions;
use datafusion::logical_expr::LogicalPlan;

use super::optimized::OptimizedOnce;
use crate::provider::table::LanceTable;

/// A statement planned against the tables it resolved.
#[derive(Debug)]
pub struct Plan {
    pub logical: LogicalPlan,
    /// The tables the plan reads, as resolved.
    pub tables: Vec<(String, Arc<LanceTable>)>,
    /// Whether the plan read a listing of the root (`information_schema`, `pg_catalog`, ...),
    /// which every execution takes afresh.
    pub reads_catalog: bool,
    /// The session's settings the plan was made with, for statements DataFusion planned. A
    /// `SET` gives the session a new allocation (DataFusion copies settings on write while
    /// this one is shared), so the same allocation means the same settings.
    pub settings: Option<Arc<ConfigOptions>>,
    /// Where a query's optimised plan is kept when reusing it cannot change results.
    pub optimized: Option<OptimizedOnce>,
}

impl Plan {
    /// A plan every execution runs as it is, never checked for currency: that of a statement
    /// the session carries out without DataFusion (transaction control, `SET`, index and
    /// history commands), which depends on nothing, or of one prepared a moment ago to run
    /// once.
    pub fn unchecked(logical: LogicalPlan) -> Self {
        Plan {
            logical,
            tables: Vec::new(),
            reads_catalog: false,
            settings: None,
            optimized: None,
        }
    }
}

/// The plan a prepared statement runs now.
#[derive(Debug)]
pub struct PlanSlot(Mutex<Arc<Plan>>);

impl PlanSlot {
    pub fn new(plan: Plan) -> Self {
        PlanSlot(Mutex::new(Arc::new(plan)))
    }

    fn locked(&self) -> MutexGuard<'_, Arc<Plan>> {
        // The slot holds one `Arc`, replaced whole: a poisoned lock still holds a whole plan.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The plan as it is now; a replacement does not change what an execution already holds.
    pub fn get(&self) -> Arc<Plan> {
        self.locked().clone()
    }

    /// Puts `plan`, made because the one held was stale, in its place.
    pub fn replace(&self, plan: Arc<Plan>) {
        *self.locked() = plan;
    }
}

impl Clone for PlanSlot {
    /// A slot of its own holding the same plan: a copied statement is planned again on its own.
    fn clone(&self) -> Self {
        PlanSlot(Mutex::new(self.get()))
    }
}
