//! `LanceSearchExec`: one Lance search on a pinned dataset version — nearest neighbours of
//! query vectors, rows matching a full-text query, the rows of given row ids, or a random
//! sample of rows — as an execution node.
//!
//! Like [`crate::physical::scan::LanceScanExec`] the node holds only a plain description
//! ([`SearchSpec`]: table, URI, version, columns, the query and every knob) and opens the dataset
//! in `execute` through the task's [`DataRoot`], so it could run in another process. Its output
//! has the order Lance gives: nearest first (per query, for several query vectors), best score
//! first, or the order
//! the row ids were given in, duplicates kept. It has one partition.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, RecordBatch, UInt64Array,
};
use arrow::datatypes::{DataType, Float32Type, SchemaRef, UInt64Type};
use datafusion::common::{ScalarValue, internal_datafusion_err};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{StreamExt, TryStreamExt};
use lance::Dataset;
use lance::dataset::ProjectionRequest;
use lance::dataset::rowids::get_row_id_index;
use lance_core::datatypes::BlobHandling;
use lance_core::{ROW_ADDR, ROW_ID};
use lance_datafusion::projection::ProjectionPlan;
use lance_index::scalar::FullTextSearchQuery;
use lance_index::scalar::inverted::query::FtsQuery;
use lance_linalg::distance::DistanceType;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::Error;
use crate::physical::by_address::{RowPosition, interleaved, projected, take_per_fragment};
use crate::storage::{DataRoot, guard_stream_panics};

use super::metrics::measured;
use super::scan::conform;

/// The distance column of a nearest-neighbour search.
pub const DISTANCE_COLUMN: &str = "_distance";
/// Which query vector a row answers, when several were given.
pub const QUERY_INDEX_COLUMN: &str = "query_index";
/// The BM25 score column of a full-text search.
pub const SCORE_COLUMN: &str = "_score";
/// The fused score of a hybrid search.
pub const RELEVANCE_COLUMN: &str = "_relevance_score";

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
    /// Rows matching a full-text query, best first.
    FullText(Box<FullTextSpec>),
    /// A vector and a full-text search fused into one ranking, best first.
    Hybrid(Box<HybridSpec>),
    /// The rows of these row ids, in this order, duplicates kept.
    Take {
        row_ids: Vec<u64>,
        missing: MissingRow,
    },
    /// `rows` distinct live rows chosen uniformly at random, in random order (every row when
    /// the table has fewer); the choice is fixed by `seed` and the version, or random without one.
    Sample {
        rows: usize,
        seed: Option<u64>,
    },
}

/// What a take does with a row id that names no live row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingRow {
    /// Fails the statement, naming the id (`take(table, row_ids)`).
    Fail,
    /// Leaves it out (`WHERE _rowid IN (...)`, which filters).
    Skip,
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
    /// When fewer than `k` rows with a vector match, rows (matching the prefilter) whose vector
    /// is NULL follow, with a NULL `_distance`, up to `k`: what `ORDER BY <distance> LIMIT k`
    /// returns, where NULL distances sort last. Lance's search skips NULL vectors.
    pub null_vectors_last: bool,
}

/// A full-text search (BM25) over the table's INVERTED indices.
#[derive(Debug, Clone)]
pub struct FullTextSpec {
    /// The query tree, every clause naming its column (serialisable as Lance's JSON form).
    pub query: FtsQuery,
    /// Best rows kept; all matches without one.
    pub limit: Option<usize>,
    /// Rows must match this before they are ranked.
    pub prefilter: Option<Expr>,
}

/// A hybrid search: each search returns its best `k` rows, and the best `k` of their union by
/// `fusion` are kept.
#[derive(Debug, Clone)]
pub struct HybridSpec {
    pub nearest: NearestSpec,
    pub full_text: FullTextSpec,
    pub k: usize,
    pub fusion: Fusion,
}

/// How a hybrid search ranks the union of its two result lists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// `Σ 1 / (k + rank)` over the lists holding the row, ranks from 1.
    ReciprocalRank { k: f32 },
    /// `vector_weight · (1 - normalised distance) + (1 - vector_weight) · normalised score`.
    Linear { vector_weight: f32 },
}

impl fmt::Display for Fusion {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Fusion::ReciprocalRank { k } => write!(f, "rrf(k={k})"),
            Fusion::Linear { vector_weight } => write!(f, "linear(vector_weight={vector_weight})"),
        }
    }
}

/// A distance metric, as SQL names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    metrics: ExecutionPlanMetricsSet,
}

impl LanceSearchExec {
    /// `schema` is the output: data columns of `spec.columns`, `_rowid`/`_rowaddr` when asked
    /// for, and the search's own columns (`_distance`, `query_index`).
    pub fn new(spec: SearchSpec, schema: SchemaRef) -> Self {
        let properties = super::one_final_partition(schema.clone());
        LanceSearchExec {
            spec,
            schema,
            properties,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    /// The plain description this node runs.
    pub fn spec(&self) -> &SearchSpec {
        &self.spec
    }

    /// The same node running `kind` instead: the same table, version, columns and output, as
    /// binding other values to a prepared search's parameters gives. The node's properties do
    /// not depend on the search (one partition, no ordering or statistics claimed), which is
    /// what lets a kept physical plan swap it ([`crate::engine`]'s kept plans).
    pub fn with_search(&self, kind: SearchKind) -> Self {
        let spec = &self.spec;
        LanceSearchExec {
            spec: SearchSpec {
                table: spec.table.clone(),
                uri: spec.uri.clone(),
                version: spec.version,
                columns: spec.columns.clone(),
                with_row_id: spec.with_row_id,
                with_row_addr: spec.with_row_addr,
                kind,
                batch_size: spec.batch_size,
            },
            schema: self.schema.clone(),
            properties: self.properties.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        }
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
                        if nearest.null_vectors_last {
                            write!(f, " null_vectors_last")?;
                        }
                    }
                    SearchKind::FullText(full_text) => {
                        write!(
                            f,
                            "LanceFullText: table={} version={} query={}",
                            spec.table, spec.version, full_text.query
                        )?;
                        if let Some(limit) = full_text.limit {
                            write!(f, " limit={limit}")?;
                        }
                        if let Some(prefilter) = &full_text.prefilter {
                            write!(f, " prefilter=[{prefilter}]")?;
                        }
                    }
                    SearchKind::Hybrid(hybrid) => {
                        write!(
                            f,
                            "LanceHybrid: table={} version={} k={} fusion={} vector=[column={} \
                             metric={}] text=[{}]",
                            spec.table,
                            spec.version,
                            hybrid.k,
                            hybrid.fusion,
                            hybrid.nearest.column,
                            hybrid.nearest.metric.map_or("default", Metric::name),
                            hybrid.full_text.query
                        )?;
                        if let Some(prefilter) = &hybrid.nearest.prefilter {
                            write!(f, " prefilter=[{prefilter}]")?;
                        }
                    }
                    SearchKind::Sample { rows, seed } => {
                        write!(
                            f,
                            "LanceSample: table={} version={} rows={rows}",
                            spec.table, spec.version
                        )?;
                        if let Some(seed) = seed {
                            write!(f, " seed={seed}")?;
                        }
                    }
                    SearchKind::Take { row_ids, missing } => {
                        write!(
                            f,
                            "LanceTakeRows: table={} version={} rows={}",
                            spec.table,
                            spec.version,
                            row_ids.len()
                        )?;
                        if *missing == MissingRow::Skip {
                            write!(f, " missing=skip")?;
                        }
                    }
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
        super::leaf_without_children(self, &children)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        super::only_partition("LanceSearchExec", partition)?;
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
                SearchKind::FullText(full_text) => {
                    full_text_stream(&root, &dataset, &spec, full_text).await?
                }
                SearchKind::Hybrid(hybrid) => {
                    let batch = hybrid_rows(&root, &dataset, &spec, hybrid, &output_schema).await?;
                    futures::stream::once(futures::future::ready(Ok(batch))).boxed()
                }
                SearchKind::Take { row_ids, missing } => {
                    let batch = take_rows(&root, &dataset, &spec, row_ids, *missing).await?;
                    futures::stream::once(futures::future::ready(Ok(batch))).boxed()
                }
                SearchKind::Sample { rows, seed } => {
                    let row_ids = sampled_row_ids(&dataset, &spec, *rows, *seed).await?;
                    let batch =
                        take_rows(&root, &dataset, &spec, &row_ids, MissingRow::Fail).await?;
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
            measured(
                Box::pin(RecordBatchStreamAdapter::new(schema, batches)),
                BaselineMetrics::new(&self.metrics, partition),
            ),
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
    let found = root.classify_read_failures(&spec.table, &spec.uri, spec.version, stream);
    if !nearest.null_vectors_last {
        return Ok(found);
    }
    let found: Vec<RecordBatch> = found.try_collect().await?;
    let rows: usize = found.iter().map(RecordBatch::num_rows).sum();
    let mut batches = found;
    if rows < nearest.k {
        batches.extend(null_vector_rows(root, dataset, spec, nearest, nearest.k - rows).await?);
    }
    Ok(futures::stream::iter(batches.into_iter().map(Ok)).boxed())
}

/// Up to `limit` rows matching `nearest`'s prefilter whose vector is NULL, with a NULL
/// `_distance`.
async fn null_vector_rows(
    root: &Arc<DataRoot>,
    dataset: &Arc<Dataset>,
    spec: &SearchSpec,
    nearest: &NearestSpec,
    limit: usize,
) -> DFResult<Vec<RecordBatch>> {
    let lance_error = |error| DataFusionError::from(Error::lance("searching", &spec.uri, error));
    let mut scanner = dataset.scan();
    scanner.blob_handling(BlobHandling::AllBinary);
    scanner.batch_size(spec.batch_size);
    scanner.project(&spec.columns).map_err(lance_error)?;
    if spec.with_row_id {
        scanner.with_row_id();
    }
    if spec.with_row_addr {
        scanner.with_row_address();
    }
    let is_null = datafusion::logical_expr::col(&nearest.column).is_null();
    scanner.filter_expr(match &nearest.prefilter {
        Some(prefilter) => prefilter.clone().and(is_null),
        None => is_null,
    });
    scanner
        .limit(Some(i64::try_from(limit).unwrap_or(i64::MAX)), None)
        .map_err(lance_error)?;
    let stream = scanner.try_into_stream().await.map_err(lance_error)?;
    let batches: Vec<RecordBatch> = root
        .classify_read_failures(&spec.table, &spec.uri, spec.version, stream)
        .try_collect()
        .await?;
    batches
        .into_iter()
        .map(|batch| {
            let distances: ArrayRef = Arc::new(Float32Array::new_null(batch.num_rows()));
            let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
            fields.push(Arc::new(arrow::datatypes::Field::new(
                DISTANCE_COLUMN,
                DataType::Float32,
                true,
            )));
            let mut columns = batch.columns().to_vec();
            columns.push(distances);
            Ok(RecordBatch::try_new(
                Arc::new(arrow::datatypes::Schema::new(fields)),
                columns,
            )?)
        })
        .collect()
}

/// The rows matching a full-text query, best first, with `_score`.
async fn full_text_stream(
    root: &Arc<DataRoot>,
    dataset: &Arc<Dataset>,
    spec: &SearchSpec,
    full_text: &FullTextSpec,
) -> DFResult<BatchStream> {
    let lance_error =
        |error| DataFusionError::from(Error::lance("searching text", &spec.uri, error));
    let mut scanner = dataset.scan();
    scanner.blob_handling(BlobHandling::AllBinary);
    scanner.batch_size(spec.batch_size);
    scanner.disable_scoring_autoprojection();
    let mut columns: Vec<&str> = spec.columns.iter().map(String::as_str).collect();
    columns.push(SCORE_COLUMN);
    if spec.with_row_id {
        columns.push(ROW_ID);
    }
    if spec.with_row_addr {
        columns.push(ROW_ADDR);
    }
    scanner.project(&columns).map_err(lance_error)?;
    if let Some(prefilter) = &full_text.prefilter {
        scanner.prefilter(true);
        scanner.filter_expr(prefilter.clone());
    }
    let limit = full_text
        .limit
        .map(|limit| i64::try_from(limit).unwrap_or(i64::MAX));
    scanner
        .full_text_search(FullTextSearchQuery::new_query(full_text.query.clone()).limit(limit))
        .map_err(lance_error)?;
    let stream = scanner.try_into_stream().await.map_err(lance_error)?;
    Ok(root.classify_read_failures(&spec.table, &spec.uri, spec.version, stream))
}

/// Both searches of a hybrid search, each with row ids, fused into one batch of the best `k`
/// rows: the data columns, `_distance` and `_score` (NULL where that search did not return the
/// row) and `_relevance_score`.
async fn hybrid_rows(
    root: &Arc<DataRoot>,
    dataset: &Arc<Dataset>,
    spec: &SearchSpec,
    hybrid: &HybridSpec,
    output_schema: &SchemaRef,
) -> DFResult<RecordBatch> {
    let mut with_ids = spec.clone();
    with_ids.with_row_id = true;
    let vector: Vec<RecordBatch> = nearest_stream(root, dataset, &with_ids, &hybrid.nearest)
        .await?
        .try_collect()
        .await?;
    let text: Vec<RecordBatch> = full_text_stream(root, dataset, &with_ids, &hybrid.full_text)
        .await?
        .try_collect()
        .await?;
    let mut columns: Vec<String> = spec.columns.clone();
    columns.push(ROW_ID.to_string());
    if spec.with_row_addr {
        columns.push(ROW_ADDR.to_string());
    }
    // Every returned row once, in one table: vector results first, then text results.
    let mut parts = Vec::new();
    for batch in vector.iter().chain(&text) {
        let projected = columns
            .iter()
            .map(|name| {
                batch
                    .column_by_name(name)
                    .cloned()
                    .ok_or_else(|| internal_datafusion_err!("a search returned no '{name}'"))
            })
            .collect::<DFResult<Vec<ArrayRef>>>()?;
        parts.push(projected);
    }
    let ids = |batches: &[RecordBatch]| -> DFResult<Vec<u64>> {
        let ids = column_of(batches, ROW_ID, &DataType::UInt64)?;
        Ok(ids.as_primitive::<UInt64Type>().values().to_vec())
    };
    let values = |batches: &[RecordBatch], name: &str| -> DFResult<Vec<f32>> {
        let values = column_of(batches, name, &DataType::Float32)?;
        let values = values.as_primitive::<Float32Type>();
        Ok(values
            .iter()
            .map(|value| value.unwrap_or(f32::NAN))
            .collect())
    };
    let ranked = fuse(
        &ids(&vector)?,
        &values(&vector, DISTANCE_COLUMN)?,
        &ids(&text)?,
        &values(&text, SCORE_COLUMN)?,
        hybrid.fusion,
        hybrid.k,
    );
    let order = UInt64Array::from_iter_values(ranked.iter().map(|row| row.position as u64));
    if ranked.is_empty() {
        return Ok(RecordBatch::new_empty(output_schema.clone()));
    }
    let mut output: Vec<ArrayRef> = Vec::with_capacity(columns.len() + 3);
    for index in 0..columns.len() {
        let pieces: Vec<&dyn Array> = parts.iter().map(|part| part[index].as_ref()).collect();
        let whole = arrow::compute::concat(&pieces)?;
        output.push(arrow::compute::take(whole.as_ref(), &order, None)?);
    }
    output.push(Arc::new(Float32Array::from_iter(
        ranked.iter().map(|row| row.distance),
    )));
    output.push(Arc::new(Float32Array::from_iter(
        ranked.iter().map(|row| row.score),
    )));
    output.push(Arc::new(Float32Array::from_iter_values(
        ranked.iter().map(|row| row.relevance),
    )));
    let mut fields: Vec<arrow::datatypes::FieldRef> = Vec::new();
    for (name, column) in columns.iter().zip(&output) {
        fields.push(Arc::new(arrow::datatypes::Field::new(
            name,
            column.data_type().clone(),
            true,
        )));
    }
    for name in [DISTANCE_COLUMN, SCORE_COLUMN, RELEVANCE_COLUMN] {
        fields.push(Arc::new(arrow::datatypes::Field::new(
            name,
            DataType::Float32,
            true,
        )));
    }
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(ranked.len()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(arrow::datatypes::Schema::new(fields)),
        output,
        &options,
    )?)
}

/// Column `name` of every batch, as one array of `data_type`.
fn column_of(batches: &[RecordBatch], name: &str, data_type: &DataType) -> DFResult<ArrayRef> {
    let columns = batches
        .iter()
        .map(|batch| {
            batch
                .column_by_name(name)
                .ok_or_else(|| internal_datafusion_err!("a search returned no '{name}'"))
        })
        .collect::<DFResult<Vec<_>>>()?;
    let pieces: Vec<&dyn Array> = columns.iter().map(|column| column.as_ref()).collect();
    let whole = if pieces.is_empty() {
        arrow::array::new_empty_array(data_type)
    } else {
        arrow::compute::concat(&pieces)?
    };
    Ok(arrow::compute::cast(&whole, data_type)?)
}

/// One row of a fused ranking.
#[derive(Debug, Clone, PartialEq)]
struct FusedRow {
    /// Where the row is among the vector results followed by the text results.
    position: usize,
    distance: Option<f32>,
    score: Option<f32>,
    relevance: f32,
}

/// The best `k` rows of the union of a vector result list (ids and distances, nearest first)
/// and a text result list (ids and scores, best first), best first; ties keep vector order.
fn fuse(
    vector_ids: &[u64],
    distances: &[f32],
    text_ids: &[u64],
    scores: &[f32],
    fusion: Fusion,
    k: usize,
) -> Vec<FusedRow> {
    let mut rows: Vec<FusedRow> = Vec::new();
    let mut by_id: HashMap<u64, usize> = HashMap::new();
    let (closest, farthest) = min_max(distances);
    let (lowest, highest) = min_max(scores);
    let normalised = |value: f32, low: f32, high: f32| {
        if high > low {
            (value - low) / (high - low)
        } else {
            1.0
        }
    };
    for (rank, (id, distance)) in vector_ids.iter().zip(distances).enumerate() {
        let relevance = match fusion {
            Fusion::ReciprocalRank { k } => 1.0 / (k + rank as f32 + 1.0),
            Fusion::Linear { vector_weight } => {
                vector_weight * (1.0 - normalised(*distance, closest, farthest))
            }
        };
        by_id.insert(*id, rows.len());
        rows.push(FusedRow {
            position: rank,
            distance: Some(*distance),
            score: None,
            relevance,
        });
    }
    for (rank, (id, score)) in text_ids.iter().zip(scores).enumerate() {
        let relevance = match fusion {
            Fusion::ReciprocalRank { k } => 1.0 / (k + rank as f32 + 1.0),
            Fusion::Linear { vector_weight } => {
                (1.0 - vector_weight) * normalised(*score, lowest, highest)
            }
        };
        match by_id.get(id) {
            Some(index) => {
                let row = &mut rows[*index];
                row.score = Some(*score);
                row.relevance += relevance;
            }
            None => {
                by_id.insert(*id, rows.len());
                rows.push(FusedRow {
                    position: vector_ids.len() + rank,
                    distance: None,
                    score: Some(*score),
                    relevance,
                });
            }
        }
    }
    rows.sort_by(|a, b| b.relevance.total_cmp(&a.relevance));
    rows.truncate(k);
    rows
}

/// The smallest and largest finite value (0 and 0 for none).
fn min_max(values: &[f32]) -> (f32, f32) {
    let finite = values.iter().copied().filter(|value| value.is_finite());
    let low = finite.clone().fold(f32::INFINITY, f32::min);
    let high = finite.fold(f32::NEG_INFINITY, f32::max);
    if low.is_finite() {
        (low, high)
    } else {
        (0.0, 0.0)
    }
}

/// The row ids of `rows` live rows chosen uniformly at random, in random order: positions among
/// the live rows are drawn, then Lance's take by position reads only their row ids.
async fn sampled_row_ids(
    dataset: &Arc<Dataset>,
    spec: &SearchSpec,
    rows: usize,
    seed: Option<u64>,
) -> DFResult<Vec<u64>> {
    let lance_error = |error| DataFusionError::from(Error::lance("sampling", &spec.uri, error));
    let live = dataset.count_rows(None).await.map_err(lance_error)?;
    let mut generator = match seed {
        Some(seed) => ChaCha8Rng::seed_from_u64(seed),
        None => ChaCha8Rng::from_os_rng(),
    };
    let mut positions = rand::seq::index::sample(&mut generator, live, rows.min(live)).into_vec();
    positions.shuffle(&mut generator);
    let mut sorted: Vec<u64> = positions.iter().map(|position| *position as u64).collect();
    sorted.sort_unstable();
    let taken = dataset
        .take(
            &sorted,
            ProjectionRequest::from_columns([ROW_ID], dataset.schema()),
        )
        .await
        .map_err(lance_error)?;
    let ids = taken
        .column_by_name(ROW_ID)
        .and_then(|column| column.as_any().downcast_ref::<UInt64Array>())
        .filter(|ids| ids.len() == sorted.len())
        .ok_or_else(|| internal_datafusion_err!("a take by position returned no {ROW_ID}"))?;
    let id_at: HashMap<u64, u64> = sorted
        .iter()
        .copied()
        .zip(ids.values().iter().copied())
        .collect();
    Ok(positions
        .iter()
        .filter_map(|position| id_at.get(&(*position as u64)).copied())
        .collect())
}

/// The rows of `row_ids` in the order given, duplicates kept; an id naming no live row fails
/// with [`Error::RowNotFound`] or is left out, as `missing` says. Each distinct id is read once.
async fn take_rows(
    root: &DataRoot,
    dataset: &Arc<Dataset>,
    spec: &SearchSpec,
    row_ids: &[u64],
    missing: MissingRow,
) -> DFResult<RecordBatch> {
    let mut distinct: Vec<u64> = row_ids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let projection = dataset
        .schema()
        .project(&spec.columns)
        .map_err(|error| DataFusionError::from(Error::lance("taking rows", &spec.uri, error)))?;
    let read = if projection.fields.iter().any(holds_blob) {
        taken_by_scan(dataset, spec, &distinct).await
    } else {
        taken_by_address(dataset, spec, &projection, &distinct).await
    };
    let taken = match read {
        Ok(read) => read,
        Err(error) => {
            let failure = root
                .read_failure(&spec.table, &spec.uri, spec.version, error)
                .await;
            return Err(DataFusionError::from(failure));
        }
    };
    // Where each distinct id landed: (batch, row).
    let mut position: HashMap<u64, RowPosition> = HashMap::with_capacity(distinct.len());
    for (batch_index, batch) in taken.batches().iter().enumerate() {
        let found = batch
            .column_by_name(ROW_ID)
            .and_then(|column| column.as_any().downcast_ref::<UInt64Array>())
            .ok_or_else(|| internal_datafusion_err!("a take by row id returned no {ROW_ID}"))?;
        for (row, id) in found.values().iter().enumerate() {
            position.insert(*id, (batch_index, row));
        }
    }
    let order = row_ids
        .iter()
        .filter_map(|id| match (position.get(id), missing) {
            (Some(position), _) => Some(Ok(*position)),
            (None, MissingRow::Skip) => None,
            (None, MissingRow::Fail) => Some(Err(DataFusionError::from(Error::RowNotFound {
                table: spec.table.clone(),
                version: spec.version,
                row_id: *id,
            }))),
        })
        .collect::<DFResult<Vec<RowPosition>>>()?;
    let lance_error = |error| DataFusionError::from(Error::lance("taking rows", &spec.uri, error));
    let rows = interleaved(taken.batches(), &order)?;
    match (rows, taken) {
        (Some(rows), Taken::Stored { plan, .. }) => {
            projected(&plan, rows).await.map_err(lance_error)
        }
        (Some(rows), Taken::Scanned { .. }) => Ok(rows),
        (None, Taken::Stored { plan, .. }) => Ok(RecordBatch::new_empty(Arc::new(
            plan.output_schema().map_err(lance_error)?,
        ))),
        (None, Taken::Scanned { schema, .. }) => Ok(RecordBatch::new_empty(schema)),
    }
}

/// Rows read for a take, each distinct id once, with `_rowid`, before they are put in the
/// order asked for.
enum Taken {
    /// Read as stored, by address: `plan` still to be applied ([`projected`]).
    Stored {
        batches: Vec<RecordBatch>,
        plan: ProjectionPlan,
    },
    /// Read by a Lance scan, already of `schema`, the output's.
    Scanned {
        batches: Vec<RecordBatch>,
        schema: SchemaRef,
    },
}

impl Taken {
    fn batches(&self) -> &[RecordBatch] {
        match self {
            Taken::Stored { batches, .. } | Taken::Scanned { batches, .. } => batches,
        }
    }
}

/// Whether `field` is, or holds, a Lance blob column.
fn holds_blob(field: &lance_core::datatypes::Field) -> bool {
    field.is_blob() || field.children.iter().any(holds_blob)
}

/// The live rows among `row_ids` (sorted, distinct) with `_rowid` (and `_rowaddr` if asked), a
/// batch per fragment, read by address from each fragment's Lance reader, without planning a
/// scan. Lance 14 cannot decode blob columns there (see [`taken_by_scan`]).
async fn taken_by_address(
    dataset: &Arc<Dataset>,
    spec: &SearchSpec,
    projection: &lance_core::datatypes::Schema,
    row_ids: &[u64],
) -> lance::Result<Taken> {
    let mut plan = ProjectionPlan::from_schema(dataset.clone(), projection)?;
    plan.include_row_id();
    if spec.with_row_addr {
        plan.include_row_addr();
    }
    let mut addresses = possible_addresses(dataset, row_ids).await?;
    // Under stable row ids, ids in order may live at addresses out of order.
    addresses.sort_unstable();
    let batches = if addresses.is_empty() {
        Vec::new()
    } else {
        take_per_fragment(dataset, &plan, &addresses).await?
    };
    Ok(Taken::Stored { batches, plan })
}

/// The live rows among `row_ids` (sorted, distinct) with `_rowid` (and `_rowaddr` if asked),
/// read by a Lance scan filtered on `_rowid IN (...)`, which Lance answers with a take and which
/// returns blob bytes as scans do.
async fn taken_by_scan(
    dataset: &Arc<Dataset>,
    spec: &SearchSpec,
    row_ids: &[u64],
) -> lance::Result<Taken> {
    let mut scanner = dataset.scan();
    scanner.blob_handling(BlobHandling::AllBinary);
    scanner.batch_size(spec.batch_size.max(row_ids.len()));
    let mut columns: Vec<&str> = spec.columns.iter().map(String::as_str).collect();
    columns.push(ROW_ID);
    if spec.with_row_addr {
        columns.push(ROW_ADDR);
    }
    scanner.project(&columns)?;
    let schema = scanner.schema().await?;
    if row_ids.is_empty() {
        return Ok(Taken::Scanned {
            batches: Vec::new(),
            schema,
        });
    }
    let ids: Vec<Expr> = row_ids
        .iter()
        .map(|id| Expr::Literal(ScalarValue::UInt64(Some(*id)), None))
        .collect();
    scanner.filter_expr(datafusion::logical_expr::col(ROW_ID).in_list(ids, false));
    let batches = scanner.try_into_stream().await?.try_collect().await?;
    Ok(Taken::Scanned { batches, schema })
}

/// The row addresses `row_ids` (sorted, distinct) may live at in `dataset`: looked up in the
/// row-id index under stable row ids, else the ids themselves, keeping only addresses inside an
/// existing fragment (Lance's take fails on the others). A deleted row keeps its address; the
/// take leaves it out.
async fn possible_addresses(dataset: &Dataset, row_ids: &[u64]) -> lance::Result<Vec<u64>> {
    if let Some(index) = get_row_id_index(dataset).await? {
        return Ok(index
            .get_many(row_ids)?
            .into_iter()
            .flatten()
            .map(u64::from)
            .collect());
    }
    let mut wanted: Vec<u64> = row_ids.iter().map(|address| address >> 32).collect();
    wanted.dedup();
    let mut physical_rows: HashMap<u64, u64> = HashMap::with_capacity(wanted.len());
    for fragment in dataset.fragments().iter() {
        if wanted.binary_search(&fragment.id).is_err() {
            continue;
        }
        let rows = match fragment.physical_rows {
            Some(rows) => rows,
            None => match dataset.get_fragment(fragment.id as usize) {
                Some(file_fragment) => file_fragment.physical_rows().await?,
                None => 0,
            },
        };
        physical_rows.insert(fragment.id, rows as u64);
    }
    Ok(row_ids
        .iter()
        .copied()
        .filter(|address| {
            physical_rows
                .get(&(address >> 32))
                .is_some_and(|rows| (address & u64::from(u32::MAX)) < *rows)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reciprocal_rank_fusion_sums_over_both_lists() {
        // Row 7 is second by vector and first by text; row 1 only first by vector.
        let fused = fuse(
            &[1, 7],
            &[0.1, 0.2],
            &[7, 9],
            &[3.0, 1.0],
            Fusion::ReciprocalRank { k: 60.0 },
            10,
        );
        let ids: Vec<usize> = fused.iter().map(|row| row.position).collect();
        assert_eq!(ids, vec![1, 0, 3]);
        assert_eq!(fused[0].relevance, 1.0 / 62.0 + 1.0 / 61.0);
        assert_eq!((fused[0].distance, fused[0].score), (Some(0.2), Some(3.0)));
        assert_eq!((fused[2].distance, fused[2].score), (None, Some(1.0)));
    }

    #[test]
    fn linear_fusion_normalises_each_list_and_keeps_k() {
        let fused = fuse(
            &[1, 2],
            &[0.0, 4.0],
            &[2, 3],
            &[10.0, 5.0],
            Fusion::Linear { vector_weight: 0.5 },
            2,
        );
        // Row 1: 0.5 · 1 = 0.5; row 2: 0.5 · 0 + 0.5 · 1 = 0.5; row 3: 0.5 · 0 = 0.
        assert_eq!(fused.len(), 2);
        assert_eq!(fused[0].relevance, 0.5);
        assert_eq!(fused[1].relevance, 0.5);
        assert_eq!(fused[0].position, 0);
    }
}
