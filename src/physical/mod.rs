//! Execution nodes: each carries a plain, serialisable description (table, URI, pinned version,
//! fragments, columns, filter, limit) and opens the dataset through the data root in `execute`.
//!
//! May depend on: `storage`, `config`, `error`; never on `catalog`, `engine` or front ends.

pub mod by_address;
pub mod changes;
pub mod late_materialization;
pub mod metrics;
pub mod scan;
pub mod search;
pub mod take;
pub mod write;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::internal_datafusion_err;
use datafusion::error::Result as DFResult;
use datafusion::physical_expr::{EquivalenceProperties, Partitioning};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{ExecutionPlan, PlanProperties};

/// The properties of a node with one output partition that produces its rows once its work is
/// done (a search, a write, a change listing).
fn one_final_partition(schema: SchemaRef) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema),
        Partitioning::UnknownPartitioning(1),
        EmissionType::Final,
        Boundedness::Bounded,
    ))
}

/// `with_new_children` of a leaf node: the node itself, given no children.
fn leaf_without_children(
    node: Arc<dyn ExecutionPlan>,
    children: &[Arc<dyn ExecutionPlan>],
) -> DFResult<Arc<dyn ExecutionPlan>> {
    if children.is_empty() {
        Ok(node)
    } else {
        Err(internal_datafusion_err!("{} has no children", node.name()))
    }
}

/// Fails unless `partition` is 0, the only partition of `node`.
fn only_partition(node: &str, partition: usize) -> DFResult<()> {
    if partition == 0 {
        Ok(())
    } else {
        Err(internal_datafusion_err!(
            "{node} has no partition {partition}"
        ))
    }
}
