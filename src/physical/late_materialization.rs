//! Late materialization for `ORDER BY ... LIMIT k` over a Lance scan.
//!
//! A `TableProvider::scan` knows nothing of the sort above it, so DataFusion's top-k reads every
//! projected column of every row and keeps `k`. This physical optimizer rule narrows the scan to
//! the columns the sort (and any filter between) needs plus `_rowaddr`, and fetches the remaining
//! columns of the `k` surviving rows with one [`LanceTakeExec`] above the top-k:
//!
//! ```text
//!   [SortPreservingMergeExec fetch=k]        LanceTakeExec (other columns, by _rowaddr)
//!     SortExec TopK(fetch=k)                   [SortPreservingMergeExec fetch=k]
//!       [pass-through]*               ==>        SortExec TopK(fetch=k)
//!         LanceScanExec (all columns)              [pass-through]*
//!                                                    LanceScanExec (sort keys + _rowaddr)
//! ```
//!
//! Blob columns stay in the narrow scan: Lance 14 returns blob bytes from scans but fails to
//! decode them in a take by row address.
//!
//! Pass-through nodes are those the rule can rebuild over fewer columns without changing any
//! row or value: `FilterExec` (its predicate's columns are kept in the narrow scan), projections
//! that only select columns, non-hash `RepartitionExec`, `CoalescePartitionsExec` without a
//! fetch, and `CooperativeExec`. Anything else leaves the plan as it was. The rule also declines
//! when `k` exceeds `lance.late_materialization_max_rows` (random reads of many rows cost more
//! than one sequential scan) or keeps every row of the table.
//!
//! Results are unchanged by construction: the same rows reach the same sort; the take only
//! re-reads, at the same pinned version, values the wide scan would have read.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::config::ConfigOptions;
use datafusion::error::Result as DFResult;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::utils::{collect_columns, reassign_expr_columns};
use datafusion::physical_expr::{LexOrdering, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};
use lance_core::ROW_ADDR;

use crate::config::LanceOptions;
use crate::physical::scan::{LanceScanExec, ROW_IDENTITY_COLUMNS};
use crate::physical::take::{LanceTakeExec, TakeSpec};

/// The physical optimizer rule described in the module docs.
#[derive(Debug, Default)]
pub struct TopKLateMaterialization;

/// Why a top-k was left alone (logged at debug level).
type Decline = String;

impl PhysicalOptimizerRule for TopKLateMaterialization {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let max_rows = LanceOptions::of(config).late_materialization_max_rows;
        if max_rows == 0 {
            return Ok(plan);
        }
        Ok(plan
            .transform_down(|node| match rewrite(&node, max_rows) {
                Ok(Some(rewritten)) => {
                    Ok(Transformed::new(rewritten, true, TreeNodeRecursion::Jump))
                }
                Ok(None) => Ok(Transformed::no(node)),
                Err(reason) => {
                    tracing::debug!("top-k late materialization declined: {reason}");
                    Ok(Transformed::no(node))
                }
            })?
            .data)
    }

    fn name(&self) -> &str {
        "lance_topk_late_materialization"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `Ok(None)`: `node` is not the root of a top-k. `Err`: a top-k the rule declines.
fn rewrite(
    node: &Arc<dyn ExecutionPlan>,
    max_rows: usize,
) -> Result<Option<Arc<dyn ExecutionPlan>>, Decline> {
    let (merge, sort) = if let Some(merge) = node.downcast_ref::<SortPreservingMergeExec>() {
        match merge.input().downcast_ref::<SortExec>() {
            Some(sort) if merge.fetch().is_some() && sort.preserve_partitioning() => {
                (Some(merge), sort)
            }
            _ => return Ok(None),
        }
    } else if let Some(sort) = node.downcast_ref::<SortExec>() {
        if sort.preserve_partitioning() {
            // The merge above is the top-k's root; it is rewritten from there.
            return Ok(None);
        }
        (None, sort)
    } else {
        return Ok(None);
    };
    let Some(sort_fetch) = sort.fetch() else {
        return Ok(None);
    };
    let fetch = merge.and_then(|merge| merge.fetch()).unwrap_or(sort_fetch);
    if fetch > max_rows {
        return Err(format!(
            "k={fetch} exceeds lance.late_materialization_max_rows={max_rows}"
        ));
    }

    // Walk from the sort down to the scan, collecting the columns each node reads.
    let mut needed: HashSet<String> = HashSet::new();
    for sort_expr in sort.expr().iter() {
        needed.extend(column_names(&sort_expr.expr));
    }
    let mut chain: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
    let mut current = sort.input().clone();
    let scan = loop {
        if let Some(scan) = current.downcast_ref::<LanceScanExec>() {
            break scan;
        }
        check_pass_through(&current)?;
        if let Some(filter) = current.downcast_ref::<FilterExec>() {
            needed.extend(column_names(filter.predicate()));
        }
        chain.push(current.clone());
        let [child] = &current.children()[..] else {
            return Err(format!(
                "{} does not have exactly one child",
                current.name()
            ));
        };
        current = (*child).clone();
    };

    let spec = scan.spec();
    let table_rows: Option<usize> = spec
        .fragment_rows
        .iter()
        .map(|(_, rows)| *rows)
        .sum::<Option<usize>>();
    if table_rows.is_some_and(|rows| fetch >= rows) {
        return Err("the limit keeps every row".into());
    }

    let scan_schema = scan.schema();
    let narrow_columns: Vec<String> = spec
        .columns
        .iter()
        .filter(|name| {
            needed.contains(*name)
                || ROW_IDENTITY_COLUMNS.contains(&name.as_str())
                || spec.blob_columns.contains(*name)
        })
        .cloned()
        .chain((!spec.columns.iter().any(|name| name == ROW_ADDR)).then(|| ROW_ADDR.to_string()))
        .collect();
    let mut narrow_spec = spec.clone();
    narrow_spec.columns = narrow_columns;
    let narrow_schema = Arc::new(
        arrow::datatypes::Schema::new(
            narrow_spec
                .columns
                .iter()
                .map(|name| {
                    scan_schema.field_with_name(name).cloned().or_else(|_| {
                        (name == ROW_ADDR)
                            .then(|| lance_core::ROW_ADDR_FIELD.clone())
                            .ok_or_else(|| format!("the scan has no column '{name}'"))
                    })
                })
                .collect::<Result<Vec<_>, Decline>>()?,
        )
        .with_metadata(scan_schema.metadata().clone()),
    );

    let mut input: Arc<dyn ExecutionPlan> =
        Arc::new(LanceScanExec::new(narrow_spec, narrow_schema));
    for node in chain.iter().rev() {
        input = rebuild(node, input)?;
    }
    let narrow_top = input.schema();
    let mut top: Arc<dyn ExecutionPlan> = Arc::new(
        SortExec::new(rebind_ordering(sort.expr(), &narrow_top)?, input)
            .with_preserve_partitioning(sort.preserve_partitioning())
            .with_fetch(sort.fetch()),
    );
    if let Some(merge) = merge {
        top = Arc::new(
            SortPreservingMergeExec::new(rebind_ordering(merge.expr(), &narrow_top)?, top)
                .with_fetch(merge.fetch()),
        );
    }

    let original = node.schema();
    let fetched: Vec<String> = original
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .filter(|name| narrow_top.index_of(name).is_err())
        .collect();
    if fetched.is_empty() {
        return Err("the sort already reads every output column".into());
    }
    let take = TakeSpec {
        table: spec.table.clone(),
        uri: spec.uri.clone(),
        version: spec.version,
        columns: fetched,
    };
    let take = LanceTakeExec::try_new(take, top, original.clone()).map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(take)))
}

/// `Ok` if [`rebuild`] can re-create `node` over a narrower input without changing its rows.
fn check_pass_through(node: &Arc<dyn ExecutionPlan>) -> Result<(), Decline> {
    let decline = |why: &str| {
        Err(format!(
            "{} between the sort and the scan {why}",
            node.name()
        ))
    };
    if node.fetch().is_some() {
        return decline("has a fetch");
    }
    if node.is::<FilterExec>()
        || node.is::<CoalescePartitionsExec>()
        || node.is::<CooperativeExec>()
    {
        return Ok(());
    }
    if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
        let selects_columns = projection.expr().iter().all(|projected| {
            projected
                .expr
                .downcast_ref::<Column>()
                .is_some_and(|column| column.name() == projected.alias)
        });
        return if selects_columns {
            Ok(())
        } else {
            decline("computes or renames columns")
        };
    }
    if let Some(repartition) = node.downcast_ref::<RepartitionExec>() {
        return if matches!(repartition.partitioning(), Partitioning::Hash(..)) {
            decline("hash-partitions")
        } else {
            Ok(())
        };
    }
    decline("is not a known pass-through node")
}

/// `node` over `input`, which has a subset of its original input's columns plus `_rowaddr`.
/// Each node keeps the columns it had that `input` still has, and `_rowaddr`.
fn rebuild(
    node: &Arc<dyn ExecutionPlan>,
    input: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>, Decline> {
    let input_schema = input.schema();
    let kept_indices = || -> Vec<usize> {
        let output = node.schema();
        input_schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, field)| field.name() == ROW_ADDR || output.index_of(field.name()).is_ok())
            .map(|(index, _)| index)
            .collect()
    };
    if let Some(filter) = node.downcast_ref::<FilterExec>() {
        let predicate = reassign_expr_columns(filter.predicate().clone(), &input_schema)
            .map_err(|e| e.to_string())?;
        let rebuilt = FilterExecBuilder::new(predicate, input)
            .with_default_selectivity(filter.default_selectivity())
            .apply_projection(Some(kept_indices()))
            .and_then(FilterExecBuilder::build)
            .map_err(|e| e.to_string())?;
        return Ok(Arc::new(rebuilt));
    }
    if node.is::<ProjectionExec>() {
        let columns = kept_indices()
            .into_iter()
            .map(|index| {
                let name = input_schema.field(index).name().clone();
                (
                    Arc::new(Column::new(&name, index)) as Arc<dyn PhysicalExpr>,
                    name,
                )
            })
            .collect::<Vec<_>>();
        let rebuilt = ProjectionExec::try_new(columns, input).map_err(|e| e.to_string())?;
        return Ok(Arc::new(rebuilt));
    }
    node.clone()
        .with_new_children(vec![input])
        .map_err(|e| e.to_string())
}

fn column_names(expr: &Arc<dyn PhysicalExpr>) -> impl Iterator<Item = String> {
    collect_columns(expr)
        .into_iter()
        .map(|column| column.name().to_string())
}

/// `ordering` with each column re-resolved by name against `schema`.
fn rebind_ordering(
    ordering: &LexOrdering,
    schema: &arrow::datatypes::SchemaRef,
) -> Result<LexOrdering, Decline> {
    let exprs = ordering
        .iter()
        .map(|sort| {
            reassign_expr_columns(sort.expr.clone(), schema)
                .map(|expr| PhysicalSortExpr::new(expr, sort.options))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, Decline>>()?;
    LexOrdering::new(exprs).ok_or_else(|| "empty ordering".to_string())
}
