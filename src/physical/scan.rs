//! `LanceScanExec`: the execution node that reads a Lance dataset.
//!
//! The node holds only a plain description ([`ScanSpec`]): table name, dataset URI, the version
//! pinned at planning time, the fragment ids of each output partition, the columns, the pushed
//! filter and limit. It opens the dataset in [`ExecutionPlan::execute`] through the process's
//! [`DataRoot`] (found in the task's session config), so the same description could be shipped
//! to another process and run there. Opening is cheap after the first time: pinned versions are
//! cached by the data root.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::array::RecordBatchOptions;
use arrow::datatypes::SchemaRef;
use datafusion::common::stats::Precision;
use datafusion::common::{Statistics, internal_datafusion_err};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use lance::Dataset;
use lance_core::datatypes::BlobHandling;
use lance_core::{ROW_ADDR, ROW_ID};

use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use lance_datafusion::exec::ExecutionStatsCallback;

use crate::error::Error;
use crate::physical::metrics::ScanMetrics;
use crate::storage::{DataRoot, guard_stream_panics};

/// A pushed filter and whether DataFusion still re-checks it.
#[derive(Debug, Clone)]
pub struct PushedFilter {
    pub expr: Expr,
    pub exact: bool,
}

/// Everything needed to run a scan, as plain data.
#[derive(Debug, Clone)]
pub struct ScanSpec {
    /// SQL name of the table (for EXPLAIN and errors).
    pub table: String,
    /// Dataset URI.
    pub uri: String,
    /// The dataset version fixed when the statement was planned.
    pub version: u64,
    /// Fragment ids read by each output partition.
    pub partitions: Vec<Vec<u64>>,
    /// Columns to produce, by name, in output order (`_rowid` / `_rowaddr` allowed).
    pub columns: Vec<String>,
    /// Filters evaluated by Lance (the conjunction of all of them).
    pub filters: Vec<PushedFilter>,
    /// What Lance's filter planner will answer from scalar indices, for EXPLAIN.
    pub index_query: Option<String>,
    /// At most this many rows per partition.
    pub limit: Option<usize>,
    /// Use scalar indices for the filter.
    pub use_scalar_index: bool,
    /// Fragments read ahead per partition (None: Lance's default).
    pub fragment_readahead: Option<usize>,
    /// Rows per batch.
    pub batch_size: usize,
    /// Live rows per fragment id, for exact statistics when known.
    pub fragment_rows: Vec<(u64, Option<usize>)>,
    /// Top-level columns holding blobs: Lance 14 returns their bytes from scans but not from a
    /// take by row address, so late materialization reads them in the scan.
    pub blob_columns: Vec<String>,
}

impl ScanSpec {
    fn combined_filter(&self) -> Option<Expr> {
        self.filters
            .iter()
            .map(|filter| filter.expr.clone())
            .reduce(Expr::and)
    }

    fn rows_in(&self, fragment_ids: &[u64]) -> Option<usize> {
        fragment_ids
            .iter()
            .map(|id| {
                self.fragment_rows
                    .iter()
                    .find(|(fragment, _)| fragment == id)
                    .and_then(|(_, rows)| *rows)
            })
            .sum()
    }
}

/// Reads a pinned version of a Lance dataset, one stream per group of fragments.
#[derive(Debug)]
pub struct LanceScanExec {
    spec: ScanSpec,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl LanceScanExec {
    /// Builds the node; `schema` is the output schema, matching `spec.columns`.
    pub fn new(spec: ScanSpec, schema: SchemaRef) -> Self {
        let partitions = spec.partitions.len().max(1);
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        LanceScanExec {
            spec,
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The plain description this node runs.
    pub fn spec(&self) -> &ScanSpec {
        &self.spec
    }
}

impl DisplayAs for LanceScanExec {
    fn fmt_as(&self, format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let spec = &self.spec;
        let fragments: usize = spec.partitions.iter().map(Vec::len).sum();
        match format {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(
                    f,
                    "LanceScan: table={} version={} columns=[{}]",
                    spec.table,
                    spec.version,
                    spec.columns.join(", ")
                )?;
                if !spec.filters.is_empty() {
                    let filters: Vec<String> = spec
                        .filters
                        .iter()
                        .map(|filter| {
                            let exactness = if filter.exact { "exact" } else { "inexact" };
                            format!("{} ({exactness})", filter.expr)
                        })
                        .collect();
                    write!(f, " filter=[{}]", filters.join(", "))?;
                    match &spec.index_query {
                        Some(query) => write!(f, " index={query}")?,
                        None => write!(f, " index=none")?,
                    }
                }
                if let Some(limit) = spec.limit {
                    write!(f, " limit={limit}")?;
                }
                write!(
                    f,
                    " fragments={fragments} partitions={}",
                    spec.partitions.len().max(1)
                )
            }
            DisplayFormatType::TreeRender => {
                writeln!(f, "table={}", spec.table)?;
                writeln!(f, "version={}", spec.version)?;
                writeln!(f, "fragments={fragments}")
            }
        }
    }
}

impl ExecutionPlan for LanceScanExec {
    fn name(&self) -> &str {
        "LanceScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        super::leaf_without_children(self, &children)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let root = DataRoot::of_task(&context)?;
        let fragment_ids = match self.spec.partitions.get(partition) {
            Some(ids) => ids.clone(),
            None if self.spec.partitions.is_empty() && partition == 0 => Vec::new(),
            None => {
                return Err(internal_datafusion_err!(
                    "LanceScanExec has no partition {partition}"
                ));
            }
        };
        let spec = self.spec.clone();
        let schema = self.schema.clone();
        let output_schema = schema.clone();
        let metrics = ScanMetrics::new(&self.metrics, partition);
        let batches = futures::stream::once(async move {
            if fragment_ids.is_empty() {
                return Ok::<_, DataFusionError>(futures::stream::empty().boxed());
            }
            let started = metrics.started(fragment_ids.len());
            let dataset = root.open_pinned(&spec.uri, spec.version).await?;
            let finished = metrics.clone();
            let on_finish: ExecutionStatsCallback =
                Arc::new(move |summary| finished.finished(started, summary));
            let stream = scan_fragments(&dataset, &spec, &fragment_ids, on_finish).await?;
            let schema = output_schema.clone();
            Ok(root
                .classify_read_failures(&spec.table, &spec.uri, spec.version, stream)
                .and_then(move |batch| {
                    let conformed = conform(batch, &schema);
                    if let Ok(batch) = &conformed {
                        metrics.produced(batch.num_rows());
                    }
                    futures::future::ready(conformed)
                })
                .boxed())
        })
        .try_flatten();
        Ok(guard_stream_panics(
            &self.spec.table,
            Box::pin(RecordBatchStreamAdapter::new(schema, batches)),
        ))
    }

    fn partition_statistics(&self, partition: Option<usize>) -> DFResult<Arc<Statistics>> {
        let groups: Vec<&Vec<u64>> = match partition {
            Some(index) => self.spec.partitions.get(index).into_iter().collect(),
            None => self.spec.partitions.iter().collect(),
        };
        // Without a filter each partition yields exactly min(its live rows, limit) rows; with one,
        // the live rows are only an upper bound.
        let rows: Option<usize> = groups
            .iter()
            .map(|ids| {
                self.spec
                    .rows_in(ids)
                    .map(|rows| self.spec.limit.map_or(rows, |limit| rows.min(limit)))
            })
            .sum();
        let mut statistics = Statistics::new_unknown(&self.schema);
        statistics.num_rows = match rows {
            None => Precision::Absent,
            Some(rows) if self.spec.filters.is_empty() => Precision::Exact(rows),
            Some(rows) => Precision::Inexact(rows),
        };
        Ok(Arc::new(statistics))
    }

    fn supports_limit_pushdown(&self) -> bool {
        true
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn with_fetch(&self, limit: Option<usize>) -> Option<Arc<dyn ExecutionPlan>> {
        // Each partition applies the limit on its own; only a single partition's fetch is a
        // limit on the whole output, so with more the limit operator above must stay.
        if self.spec.partitions.len() > 1 {
            return None;
        }
        let mut spec = self.spec.clone();
        spec.limit = match (spec.limit, limit) {
            (Some(current), Some(new)) => Some(current.min(new)),
            (current, new) => new.or(current),
        };
        Some(Arc::new(LanceScanExec::new(spec, self.schema.clone())))
    }

    fn fetch(&self) -> Option<usize> {
        self.spec.limit
    }
}

async fn scan_fragments(
    dataset: &Arc<Dataset>,
    spec: &ScanSpec,
    fragment_ids: &[u64],
    on_finish: ExecutionStatsCallback,
) -> Result<lance::dataset::scanner::DatasetRecordBatchStream, DataFusionError> {
    let lance_error =
        |error| DataFusionError::from(Error::lance("planning the scan", &spec.uri, error));
    let fragments = dataset
        .fragments()
        .iter()
        .filter(|fragment| fragment_ids.contains(&fragment.id))
        .cloned()
        .collect();
    let mut scanner = dataset.scan();
    scanner.blob_handling(BlobHandling::AllBinary);
    scanner.with_fragments(fragments);
    scanner.batch_size(spec.batch_size);
    scanner.use_scalar_index(spec.use_scalar_index);
    scanner.scan_in_order(false);
    scanner.scan_stats_callback(on_finish);
    if let Some(readahead) = spec.fragment_readahead {
        scanner.fragment_readahead(readahead);
    }
    // An empty projection (COUNT(*) with a filter) still needs rows: read row ids and drop them
    // in `conform`.
    let columns: Vec<&str> = if spec.columns.is_empty() {
        vec![ROW_ID]
    } else {
        spec.columns.iter().map(String::as_str).collect()
    };
    scanner.project(&columns).map_err(lance_error)?;
    if let Some(filter) = spec.combined_filter() {
        scanner.filter_expr(filter);
    }
    if let Some(limit) = spec.limit {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        scanner.limit(Some(limit), None).map_err(lance_error)?;
    }
    scanner.try_into_stream().await.map_err(lance_error)
}

/// Gives a Lance batch a node's declared schema: the same columns by name, in its order, cast
/// where Lance's type differs from the declared one (a search's score columns); the row count
/// is kept for batches without columns.
pub(super) fn conform(batch: RecordBatch, schema: &SchemaRef) -> DFResult<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column = batch.column_by_name(field.name()).ok_or_else(|| {
                internal_datafusion_err!("Lance returned no column '{}'", field.name())
            })?;
            if column.data_type() == field.data_type() {
                Ok(column.clone())
            } else {
                Ok(arrow::compute::cast(column, field.data_type())?)
            }
        })
        .collect::<DFResult<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}

/// Splits fragments, in the table's order, into at most `target` runs of consecutive fragments
/// with row counts as even as runs allow (the largest run as small as possible). Runs keep the
/// table's order, so writing a scan's partitions one after another (`CREATE TABLE AS`, `INSERT
/// ... SELECT`, which write each partition at once) keeps the rows in the table's order.
pub fn partition_fragments(fragments: &[(u64, Option<usize>)], target: usize) -> Vec<Vec<u64>> {
    let rows: Vec<usize> = fragments
        .iter()
        .map(|(_, rows)| rows.unwrap_or(1).max(1))
        .collect();
    let target = target.max(1);
    if target >= fragments.len() {
        return fragments.iter().map(|(id, _)| vec![*id]).collect();
    }
    // Runs of at most `capacity` rows, each as long as it fits, except that once as few
    // fragments are left as runs could still start, each gets a run of its own (every core
    // gets work; no run grows).
    let runs_within = |capacity: usize| {
        let mut runs = Vec::new();
        let mut run: Vec<u64> = Vec::new();
        let mut load = 0;
        for (index, ((id, _), rows)) in fragments.iter().zip(&rows).enumerate() {
            let left = fragments.len() - index;
            let runs_after_this = target.saturating_sub(runs.len() + 1);
            if !run.is_empty() && (load + rows > capacity || left <= runs_after_this) {
                runs.push(std::mem::take(&mut run));
                load = 0;
            }
            run.push(*id);
            load += rows;
        }
        if !run.is_empty() {
            runs.push(run);
        }
        runs
    };
    // The smallest capacity whose greedy runs number at most `target` (binary search: the run
    // count only falls as the capacity grows).
    let mut low = rows.iter().copied().max().unwrap_or(0);
    let mut high: usize = rows.iter().sum();
    while low < high {
        let middle = low + (high - low) / 2;
        if runs_within(middle).len() <= target {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    runs_within(high)
}

/// `_rowid` and `_rowaddr`, the row-identity columns every Lance table exposes by name.
pub const ROW_IDENTITY_COLUMNS: [&str; 2] = [ROW_ID, ROW_ADDR];

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(filters: Vec<PushedFilter>, limit: Option<usize>) -> ScanSpec {
        ScanSpec {
            table: "t".into(),
            uri: "memory://t".into(),
            version: 1,
            partitions: vec![vec![0, 1], vec![2]],
            columns: vec![],
            filters,
            index_query: None,
            limit,
            use_scalar_index: true,
            fragment_readahead: None,
            batch_size: 1024,
            fragment_rows: vec![(0, Some(10)), (1, Some(5)), (2, Some(7))],
            blob_columns: vec![],
        }
    }

    fn rows(spec: ScanSpec, partition: Option<usize>) -> Precision<usize> {
        let schema = Arc::new(arrow::datatypes::Schema::empty());
        LanceScanExec::new(spec, schema)
            .partition_statistics(partition)
            .unwrap()
            .num_rows
    }

    #[test]
    fn statistics_are_exact_only_without_filters() {
        assert_eq!(rows(spec(vec![], None), None), Precision::Exact(22));
        assert_eq!(rows(spec(vec![], None), Some(1)), Precision::Exact(7));
        assert_eq!(rows(spec(vec![], Some(6)), None), Precision::Exact(12));
        let filter = PushedFilter {
            expr: datafusion::logical_expr::col("x").is_null(),
            exact: true,
        };
        assert_eq!(rows(spec(vec![filter], None), None), Precision::Inexact(22));
    }

    #[test]
    fn fragments_are_split_into_even_runs_in_table_order() {
        let fragments = vec![(0, Some(100)), (1, Some(10)), (2, Some(90)), (3, Some(5))];
        assert_eq!(
            partition_fragments(&fragments, 2),
            vec![vec![0], vec![1, 2, 3]]
        );
        assert_eq!(partition_fragments(&fragments, 8).len(), 4);
        assert_eq!(partition_fragments(&fragments, 1), vec![vec![0, 1, 2, 3]]);
        assert!(partition_fragments(&[], 4).is_empty());
        // Ten equal fragments in two halves; the table's order is kept even where ids are not
        // ascending (compaction rewrites fragments under new ids).
        let equal: Vec<(u64, Option<usize>)> = [7, 3, 9, 1, 0, 2, 8, 4, 6, 5]
            .iter()
            .map(|id| (*id, Some(1000)))
            .collect();
        assert_eq!(
            partition_fragments(&equal, 2),
            vec![vec![7, 3, 9, 1, 0], vec![2, 8, 4, 6, 5]]
        );
        // Unknown row counts count as one row each.
        let unknown = vec![(0, None), (1, None), (2, None)];
        assert_eq!(partition_fragments(&unknown, 2), vec![vec![0, 1], vec![2]]);
        // Four equal fragments over three cores: the largest run holds two whichever way, and
        // every core still gets a run.
        let four: Vec<(u64, Option<usize>)> = (0..4).map(|id| (id, Some(3000))).collect();
        assert_eq!(
            partition_fragments(&four, 3),
            vec![vec![0, 1], vec![2], vec![3]]
        );
    }
}
