//! `LanceTakeExec`: fetches more columns for rows already found, by row address.
//!
//! The node's input yields rows that carry `_rowaddr` (row addresses of one pinned dataset
//! version) and some of the output columns. For every input batch the node reads the missing
//! columns of exactly those rows with one Lance take and emits the output columns in the input's
//! row order. Like [`crate::physical::scan::LanceScanExec`] it holds only a plain description
//! ([`TakeSpec`]) and opens the dataset in `execute` through the session's [`DataRoot`].
//!
//! Addresses, not row ids, are followed: they come from a scan of the same pinned version, so
//! they name live rows directly and the take needs no row-id index lookup.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch, UInt64Array};
use arrow::datatypes::SchemaRef;
use datafusion::common::internal_datafusion_err;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::TryStreamExt;
use lance_core::ROW_ADDR;
use lance_core::datatypes::BlobHandling;
use lance_datafusion::projection::ProjectionPlan;

use std::time::Instant;

use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};

use crate::error::Error;
use crate::physical::by_address::{RowPosition, interleaved, projected, take_per_fragment};
use crate::physical::metrics::TakeMetrics;
use crate::storage::{DataRoot, guard_stream_panics};

/// What a take reads, as plain data.
#[derive(Debug, Clone)]
pub struct TakeSpec {
    /// SQL name of the table (for EXPLAIN and errors).
    pub table: String,
    /// Dataset URI.
    pub uri: String,
    /// The pinned dataset version the input's row addresses belong to.
    pub version: u64,
    /// Data columns read by the take (the output columns the input does not carry).
    pub columns: Vec<String>,
}

/// Reads `spec.columns` for the rows of its input, found by their `_rowaddr`.
#[derive(Debug)]
pub struct LanceTakeExec {
    spec: TakeSpec,
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl LanceTakeExec {
    /// `schema` is the output: every field is either an input column (same name) or one of
    /// `spec.columns`. The input must carry `_rowaddr`.
    pub fn try_new(
        spec: TakeSpec,
        input: Arc<dyn ExecutionPlan>,
        schema: SchemaRef,
    ) -> DFResult<Self> {
        let input_schema = input.schema();
        if input_schema.index_of(ROW_ADDR).is_err() {
            return Err(internal_datafusion_err!(
                "the input of a take on '{}' has no {ROW_ADDR} column",
                spec.table
            ));
        }
        if let Some(field) = schema.fields().iter().find(|field| {
            input_schema.index_of(field.name()).is_err() && !spec.columns.contains(field.name())
        }) {
            return Err(internal_datafusion_err!(
                "a take on '{}' cannot produce column '{}'",
                spec.table,
                field.name()
            ));
        }
        let ordering = input
            .properties()
            .output_ordering()
            .and_then(|ordering| carried_ordering(ordering, &schema));
        let equivalence = match ordering {
            Some(ordering) => EquivalenceProperties::new_with_orderings(schema.clone(), [ordering]),
            None => EquivalenceProperties::new(schema.clone()),
        };
        let properties = PlanProperties::new(
            equivalence,
            input.properties().partitioning.clone(),
            input.properties().emission_type,
            input.properties().boundedness,
        );
        Ok(LanceTakeExec {
            spec,
            input,
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The plain description this node runs.
    pub fn spec(&self) -> &TakeSpec {
        &self.spec
    }
}

/// The longest prefix of the input's ordering whose columns all appear in `schema`, rebound to
/// their positions there. Plain column orderings only: anything else ends the prefix.
fn carried_ordering(ordering: &LexOrdering, schema: &SchemaRef) -> Option<LexOrdering> {
    let carried = ordering.iter().map_while(|sort| {
        let column = sort.expr.downcast_ref::<Column>()?;
        let index = schema.index_of(column.name()).ok()?;
        Some(PhysicalSortExpr::new(
            Arc::new(Column::new(column.name(), index)),
            sort.options,
        ))
    });
    LexOrdering::new(carried)
}

impl DisplayAs for LanceTakeExec {
    fn fmt_as(&self, format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let spec = &self.spec;
        match format {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "LanceTake: table={} version={} columns=[{}] by={ROW_ADDR}",
                spec.table,
                spec.version,
                spec.columns.join(", ")
            ),
            DisplayFormatType::TreeRender => {
                writeln!(f, "table={}", spec.table)?;
                writeln!(f, "columns={}", spec.columns.join(", "))
            }
        }
    }
}

impl ExecutionPlan for LanceTakeExec {
    fn name(&self) -> &str {
        "LanceTakeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(LanceTakeExec::try_new(
                self.spec.clone(),
                input,
                self.schema.clone(),
            )?)),
            _ => Err(internal_datafusion_err!(
                "LanceTakeExec takes exactly one child"
            )),
        }
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let root = DataRoot::of_task(&context)?;
        let input = self.input.execute(partition, context)?;
        let spec = Arc::new(self.spec.clone());
        let schema = self.schema.clone();
        let metrics = TakeMetrics::new(&self.metrics, partition);
        let batches = input.and_then(move |batch| {
            let root = root.clone();
            let spec = spec.clone();
            let schema = schema.clone();
            let metrics = metrics.clone();
            async move { take_columns(&root, &spec, &schema, batch, &metrics).await }
        });
        Ok(guard_stream_panics(
            &self.spec.table,
            Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches)),
        ))
    }
}

/// The output batch for one input batch: carried columns as they are, the rest taken.
async fn take_columns(
    root: &DataRoot,
    spec: &TakeSpec,
    schema: &SchemaRef,
    batch: RecordBatch,
    metrics: &TakeMetrics,
) -> DFResult<RecordBatch> {
    if batch.num_rows() == 0 {
        return Ok(RecordBatch::new_empty(schema.clone()));
    }
    let started = Instant::now();
    let addresses = batch
        .column_by_name(ROW_ADDR)
        .and_then(|column| column.as_any().downcast_ref::<UInt64Array>())
        .filter(|addresses| addresses.null_count() == 0)
        .ok_or_else(|| internal_datafusion_err!("a take needs non-null UInt64 {ROW_ADDR}"))?;
    let dataset = root.open_pinned(&spec.uri, spec.version).await?;
    let lance_error = |error| DataFusionError::from(Error::lance("taking rows", &spec.uri, error));
    let projection = dataset
        .schema()
        .project(&spec.columns)
        .map_err(lance_error)?;
    let mut plan =
        ProjectionPlan::from_schema(dataset.clone(), &projection).map_err(lance_error)?;
    plan.physical_projection = plan
        .physical_projection
        .with_blob_handling(BlobHandling::AllBinary);
    let mut sorted = addresses.values().to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let batches = match take_per_fragment(&dataset, &plan, &sorted).await {
        Ok(batches) => batches,
        Err(error) => {
            let failure = root
                .read_failure(&spec.table, &spec.uri, spec.version, error)
                .await;
            return Err(DataFusionError::from(failure));
        }
    };
    let taken_rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    metrics.took(started, taken_rows, batches.len());
    // The addresses come from a scan of the same pinned version: every one is a live row.
    if taken_rows != sorted.len() {
        return Err(internal_datafusion_err!(
            "a take on '{}' returned {taken_rows} rows for {} addresses",
            spec.table,
            sorted.len()
        ));
    }
    let sorted_positions: Vec<RowPosition> = batches
        .iter()
        .enumerate()
        .flat_map(|(index, batch)| (0..batch.num_rows()).map(move |row| (index, row)))
        .collect();
    let order = addresses
        .values()
        .iter()
        .map(|address| {
            sorted
                .binary_search(address)
                .map(|index| sorted_positions[index])
                .map_err(|_| internal_datafusion_err!("address {address} was not taken"))
        })
        .collect::<DFResult<Vec<_>>>()?;
    let taken = interleaved(&batches, &order)?
        .ok_or_else(|| internal_datafusion_err!("a take of rows returned no batch"))?;
    let taken = projected(&plan, taken).await.map_err(lance_error)?;
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            batch
                .column_by_name(field.name())
                .or_else(|| taken.column_by_name(field.name()))
                .cloned()
                .ok_or_else(|| internal_datafusion_err!("a take returned no '{}'", field.name()))
        })
        .collect::<DFResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
