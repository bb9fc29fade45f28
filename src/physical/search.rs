//! `LanceSearchExec`: one Lance search on a pinned dataset version — nearest neighbours of
//! query vectors, or the rows of given row ids — as an execution node.
//!
//! Like [`crate::physical::scan::LanceScanExec`] the node holds only a plain description
//! ([`SearchSpec`]: table, URI, version, columns, the query and every knob) and opens the dataset
//! in `execute` through the task's [`DataRoot`], so it could run in another process. Its output
//! has the order Lance gives: nearest first (per query, for several query vectors), or the order
//! the row ids were given in, duplicates kept. It has one partition.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, FixedSizeListArray, RecordBatch, UInt64Array};
use arrow::datatypes::SchemaRef;
use datafusion::common::{ScalarValue, internal_datafusion_err};
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
use lance_linalg::distance::DistanceType;

use crate::error::Error;
use crate::storage::{DataRoot, guard_stream_panics};

/// The distance column of a nearest-neighbour search.
pub const DISTANCE_COLUMN: &str = "_distance";
/// Which query vector a row answers, when several were given.
pub const QUERY_INDEX_COLUMN: &str = "query_index";

/// What one search reads, as plain data.
#[derive(Debug, Clone)]
pub struct SearchSpec {
    /// SQL name of the table (for EXPLAIN and errors).
    pub table: String,
    /// Dataset URI.
    pub uri: String,
    /// The dataset version fixed when the statement was planned.
    pub version: u64,
    /// Data columns to produce, by name (row-identity and score columns are asked for below).
    pub columns: Vec<String>,
    pub with_row_id: bool,
    pub with_row_addr: bool,
    pub kind: SearchKind,
    /// Rows per batch.
    pub batch_size: usize,
}

/// The search itself.
#[derive(Debug, Clone)]
pub enum SearchKind {
    Nearest(Box<NearestSpec>),
    /// The rows of these row ids, in this order, duplicates kept; an id that names no live row
    /// fails the statement.
    Take {
        row_ids: Vec<u64>,
    },
}

/// A k-nearest-neighbour search and every knob Lance has for it.
#[derive(Debug, Clone)]
pub struct NearestSpec {
    /// The vector column searched.
    pub column: String,
    /// The query vectors, one per row, already of the column's element type and dimension.
    pub queries: Arc<FixedSizeListArray>,
    /// Several query vectors were given: the output carries `query_index`.
    pub batch: bool,
    pub k: usize,
    pub metric: Option<Metric>,
    pub nprobes: Option<usize>,
    pub minimum_nprobes: Option<usize>,
    pub maximum_nprobes: Option<usize>,
    pub ef: Option<usize>,
    pub refine_factor: Option<u32>,
    pub distance_range: (Option<f32>, Option<f32>),
    /// Search only the indexed rows.
    pub fast_search: bool,
    /// `false`: exact (flat) search even where an index exists.
    pub use_index: bool,
    /// Rows must match this before the search ranks them.
    pub prefilter: Option<Expr>,
}

/// A distance metric, as SQL names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    L2,
    Cosine,
    Dot,
    Hamming,
}

impl Metric {
    /// Every metric, by the name SQL uses.
    pub const ALL: [(&'static str, Metric); 4] = [
        ("l2", Metric::L2),
        ("cosine", Metric::Cosine),
        ("dot", Metric::Dot),
        ("hamming", Metric::Hamming),
    ];

    /// The metric called `name` (any case; `euclidean` is l2).
    pub fn parse(name: &str) -> Option<Metric> {
        let name = name.to_ascii_lowercase();
        let name = if name == "euclidean" { "l2" } else { &name };
        Metric::ALL
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, metric)| *metric)
    }

    pub fn name(self) -> &'static str {
        Metric::ALL
            .iter()
            .find(|(_, metric)| *metric == self)
            .map_or("l2", |(name, _)| name)
    }

    pub fn distance_type(self) -> DistanceType {
        match self {
            Metric::L2 => DistanceType::L2,
            Metric::Cosine => DistanceType::Cosine,
            Metric::Dot => DistanceType::Dot,
            Metric::Hamming => DistanceType::Hamming,
        }
    }
}

/// Runs one search against a pinned version of a Lance dataset.
#[derive(Debug)]
pub struct LanceSearchExec {
    spec: SearchSpec,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl LanceSearchExec {
    /// `schema` is the output: data columns of `spec.columns`, `_rowid`/`_rowaddr` when asked
    /// for, and the search's own columns (`_distance`, `query_index`).
    pub fn new(spec: SearchSpec, schema: SchemaRef) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        LanceSearchExec {
            spec,
            schema,
            properties: Arc::new(properties),
        }
    }

    /// The plain description this node runs.
    pub fn spec(&self) -> &SearchSpec {
        &self.spec
    }
}

impl DisplayAs for LanceSearchExec {
    fn fmt_as(&self, format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let spec = &self.spec;
        match format {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                match &spec.kind {
                    SearchKind::Nearest(nearest) => {
                        write!(
                            f,
                            "LanceNearest: table={} version={} column={} k={} queries={}",
                            spec.table,
                            spec.version,
                            nearest.column,
                            nearest.k,
                            nearest.queries.len()
                        )?;
                        write!(
                            f,
                            " metric={}",
                            nearest.metric.map_or("default", Metric::name)
                        )?;
                        if !nearest.use_index {
                            write!(f, " index=bypassed")?;
                        }
                        for (name, value) in [
                            ("nprobes", nearest.nprobes),
                            ("minimum_nprobes", nearest.minimum_nprobes),
                            ("maximum_nprobes", nearest.maximum_nprobes),
                            ("ef", nearest.ef),
                            ("refine_factor", nearest.refine_factor.map(|f| f as usize)),
                        ] {
                            if let Some(value) = value {
                                write!(f, " {name}={value}")?;
                            }
                        }
                        if nearest.distance_range != (None, None) {
                            write!(
                                f,
                                " distance_range=[{}, {})",
                                bound(nearest.distance_range.0),
                                bound(nearest.distance_range.1)
                            )?;
                        }
                        if nearest.fast_search {
                            write!(f, " fast_search")?;
                        }
                        if let Some(prefilter) = &nearest.prefilter {
                            write!(f, " prefilter=[{prefilter}]")?;
                        }
                    }
                    SearchKind::Take { row_ids } => write!(
                        f,
                        "LanceTakeRows: table={} version={} rows={}",
                        spec.table,
                        spec.version,
                        row_ids.len()
                    )?,
                }
                write!(f, " columns=[{}]", spec.columns.join(", "))
            }
            DisplayFormatType::TreeRender => {
                writeln!(f, "table={}", spec.table)?;
                writeln!(f, "version={}", spec.version)
            }
        }
    }
}

fn bound(value: Option<f32>) -> String {
    value.map_or_else(|| "-".to_string(), |value| value.to_string())
}

impl ExecutionPlan for LanceSearchExec {
    fn name(&self) -> &str {
        "LanceSearchExec"
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
        if children.is_empty() {
            Ok(self)
        } else {
            Err(internal_datafusion_err!("LanceSearchExec has no children"))
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(internal_datafusion_err!(
                "LanceSearchExec has no partition {partition}"
            ));
        }
        let root = DataRoot::of_task(&context)?;
        let spec = self.spec.clone();
        let schema = self.schema.clone();
        let output_schema = schema.clone();
        let batches = futures::stream::once(async move {
            let dataset = root.open_pinned(&spec.uri, spec.version).await?;
            let stream = match &spec.kind {
                SearchKind::Nearest(nearest) => {
                    nearest_stream(&root, &dataset, &spec, nearest).await?
                }
                SearchKind::Take { row_ids } => {
                    let batch = take_rows(&root, &dataset, &spec, row_ids).await?;
                    futures::stream::once(futures::future::ready(Ok(batch))).boxed()
                }
            };
            Ok::<_, DataFusionError>(
                stream
                    .and_then(move |batch| futures::future::ready(conform(batch, &output_schema))),
            )
        })
        .try_flatten();
        Ok(guard_stream_panics(
            &self.spec.table,
            Box::pin(RecordBatchStreamAdapter::new(schema, batches)),
        ))
    }
}

type BatchStream = futures::stream::BoxStream<'static, DFResult<RecordBatch>>;

async fn nearest_stream(
    root: &Arc<DataRoot>,
    dataset: &Arc<Dataset>,
    spec: &SearchSpec,
    nearest: &NearestSpec,
) -> DFResult<BatchStream> {
    let lance_error = |error| DataFusionError::from(Error::lance("searching", &spec.uri, error));
    let mut scanner = dataset.scan();
    scanner.blob_handling(BlobHandling::AllBinary);
    scanner.batch_size(spec.batch_size);
    scanner.disable_scoring_autoprojection();
    let mut columns: Vec<&str> = spec.columns.iter().map(String::as_str).collect();
    columns.push(DISTANCE_COLUMN);
    if spec.with_row_id {
        columns.push(ROW_ID);
    }
    if spec.with_row_addr {
        columns.push(ROW_ADDR);
    }
    scanner.project(&columns).map_err(lance_error)?;
    if let Some(prefilter) = &nearest.prefilter {
        scanner.prefilter(true);
        scanner.filter_expr(prefilter.clone());
    }
    let single: ArrayRef;
    let query: &dyn Array = if nearest.batch {
        nearest.queries.as_ref()
    } else {
        single = nearest.queries.value(0);
        single.as_ref()
    };
    scanner
        .nearest(&nearest.column, query, nearest.k)
        .map_err(lance_error)?;
    if let Some(metric) = nearest.metric {
        scanner.distance_metric(metric.distance_type());
    }
    if let Some(nprobes) = nearest.nprobes {
        scanner.nprobes(nprobes);
    }
    if let Some(minimum) = nearest.minimum_nprobes {
        scanner.minimum_nprobes(minimum);
    }
    if let Some(maximum) = nearest.maximum_nprobes {
        scanner.maximum_nprobes(maximum);
    }
    if let Some(ef) = nearest.ef {
        scanner.ef(ef);
    }
    if let Some(factor) = nearest.refine_factor {
        scanner.refine(factor);
    }
    if nearest.distance_range != (None, None) {
        scanner.distance_range(nearest.distance_range.0, nearest.distance_range.1);
    }
    if nearest.fast_search {
        scanner.fast_search();
    }
    scanner.use_index(nearest.use_index);
    let stream = scanner.try_into_stream().await.map_err(lance_error)?;
    let root = root.clone();
    let spec = spec.clone();
    Ok(stream
        .then(move |item| {
            let root = root.clone();
            let spec = spec.clone();
            async move {
                match item {
                    Ok(batch) => Ok(batch),
                    Err(error) => Err(DataFusionError::from(
                        root.read_failure(&spec.table, &spec.uri, spec.version, error)
                            .await,
                    )),
                }
            }
        })
        .boxed())
}

/// The rows of `row_ids` in the order given, duplicates kept. Each distinct id is read once,
/// by Lance's take path for `_rowid IN (...)` (which also returns blob bytes, as scans do).
async fn take_rows(
    root: &DataRoot,
    dataset: &Arc<Dataset>,
    spec: &SearchSpec,
    row_ids: &[u64],
) -> DFResult<RecordBatch> {
    let lance_error = |error| DataFusionError::from(Error::lance("taking rows", &spec.uri, error));
    let mut distinct: Vec<u64> = row_ids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let mut scanner = dataset.scan();
    scanner.blob_handling(BlobHandling::AllBinary);
    scanner.batch_size(spec.batch_size.max(distinct.len()));
    let mut columns: Vec<&str> = spec.columns.iter().map(String::as_str).collect();
    columns.push(ROW_ID);
    if spec.with_row_addr {
        columns.push(ROW_ADDR);
    }
    scanner.project(&columns).map_err(lance_error)?;
    let schema = scanner.schema().await.map_err(lance_error)?;
    if distinct.is_empty() {
        return Ok(RecordBatch::new_empty(schema));
    }
    let ids: Vec<Expr> = distinct
        .iter()
        .map(|id| Expr::Literal(ScalarValue::UInt64(Some(*id)), None))
        .collect();
    scanner.filter_expr(datafusion::logical_expr::col(ROW_ID).in_list(ids, false));
    let read = async {
        let stream = scanner.try_into_stream().await?;
        stream.try_collect::<Vec<RecordBatch>>().await
    };
    let batches = match read.await {
        Ok(batches) => batches,
        Err(error) => {
            let failure = root
                .read_failure(&spec.table, &spec.uri, spec.version, error)
                .await;
            return Err(DataFusionError::from(failure));
        }
    };
    let taken = arrow::compute::concat_batches(&schema, &batches)?;
    let found = taken
        .column_by_name(ROW_ID)
        .and_then(|column| column.as_any().downcast_ref::<UInt64Array>())
        .ok_or_else(|| internal_datafusion_err!("a take by row id returned no {ROW_ID}"))?;
    let position: HashMap<u64, u64> = found
        .values()
        .iter()
        .enumerate()
        .map(|(index, id)| (*id, index as u64))
        .collect();
    let order = row_ids
        .iter()
        .map(|id| {
            position.get(id).copied().ok_or_else(|| {
                DataFusionError::from(Error::RowNotFound {
                    table: spec.table.clone(),
                    version: spec.version,
                    row_id: *id,
                })
            })
        })
        .collect::<DFResult<Vec<u64>>>()?;
    let order = UInt64Array::from(order);
    let columns = taken
        .columns()
        .iter()
        .map(|column| arrow::compute::take(column.as_ref(), &order, None))
        .collect::<Result<Vec<_>, _>>()?;
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(order.len()));
    Ok(RecordBatch::try_new_with_options(
        taken.schema(),
        columns,
        &options,
    )?)
}

/// Gives a Lance batch the node's declared schema (same columns, same order, declared types).
fn conform(batch: RecordBatch, schema: &SchemaRef) -> DFResult<RecordBatch> {
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
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}
