//! `LanceTable`: a Lance dataset, pinned at one version, as a DataFusion table.
//!
//! One `LanceTable` exists per opened (table, version) and is shared by every statement that
//! resolves the table at that version (see [`crate::catalog`]), so every read within a statement
//! sees the same version. The table exposes the dataset's columns plus `_rowid` and `_rowaddr`; the engine's SQL
//! front door keeps those two out of `SELECT *`. Pushdown decisions are delegated to
//! [`crate::provider::pushdown`]; the physical read is a [`LanceScanExec`]. Writes (DataFusion's
//! `insert_into`, `delete_from`, `update`, `truncate`) become a [`LanceWriteExec`] that applies
//! to the table's latest version, whichever version this table was resolved at.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{Schema, SchemaRef};
use arrow_schema::extension::EXTENSION_TYPE_NAME_KEY;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::{DFSchema, Statistics};
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column as PhysicalColumn;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::filter::FilterExecBuilder;
use datafusion::physical_plan::projection::ProjectionExec;
use lance::Dataset;
use lance::index::DatasetIndexExt;
use lance::index::DatasetIndexInternalExt;
use lance::index::ScalarIndexInfo;
use lance_arrow::json::lance_json_to_arrow_json;
use lance_core::datatypes::BlobHandling;
use lance_core::{ROW_ADDR, ROW_ADDR_FIELD, ROW_ID, ROW_ID_FIELD};

use crate::config::LanceOptions;
use crate::error::{Error, Result};
use crate::physical::scan::{LanceScanExec, PushedFilter, ScanSpec, partition_fragments};
use crate::physical::search::{LanceSearchExec, MissingRow, SearchKind, SearchSpec};
use crate::physical::write::{LanceWriteExec, WriteOperation, WriteSpec};
use crate::provider::pushdown::{
    FilterContext, FilterDecision, ListedRows, classify, listed_rows, selects_rows_by_identity,
    unqualify,
};

/// A Lance dataset at a fixed version, queryable with SQL.
#[derive(Debug)]
pub struct LanceTable {
    name: String,
    dataset: Arc<Dataset>,
    schema: SchemaRef,
    indices: Arc<ScalarIndexInfo>,
    fragment_rows: Vec<(u64, Option<usize>)>,
    blob_columns: Vec<String>,
    index_summaries: Vec<IndexSummary>,
    decisions: Mutex<HashMap<Expr, Arc<FilterDecision>>>,
}

/// A copy of the same table at the same version; the remembered filter decisions (a cache) start
/// empty.
impl Clone for LanceTable {
    fn clone(&self) -> Self {
        LanceTable {
            name: self.name.clone(),
            dataset: self.dataset.clone(),
            schema: self.schema.clone(),
            indices: self.indices.clone(),
            fragment_rows: self.fragment_rows.clone(),
            blob_columns: self.blob_columns.clone(),
            index_summaries: self.index_summaries.clone(),
            decisions: Mutex::new(HashMap::new()),
        }
    }
}

/// One index of a table, as `system.indices` and the search functions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSummary {
    pub name: String,
    /// Lance's name for the kind, upper case (`IVF_PQ`, `BTREE`, `INVERTED`, ...).
    pub kind: String,
    /// The columns it is built on.
    pub columns: Vec<String>,
    /// Live rows in the fragments it covers.
    pub rows_indexed: u64,
    /// Live rows appended since it was built or last optimized (searched without it).
    pub rows_unindexed: u64,
}

impl IndexSummary {
    /// Whether this is a vector index (IVF_*, HNSW).
    pub fn is_vector(&self) -> bool {
        self.kind.starts_with("IVF") || self.kind == "VECTOR"
    }
}

/// Pushdown decisions a table remembers (all are forgotten when the table has seen more
/// distinct filters: they are cheap to make again, and a bound keeps memory flat).
const REMEMBERED_DECISIONS: usize = 256;

impl LanceTable {
    /// Wraps an opened dataset, loading what planning needs (schema, index list, row counts).
    pub async fn new(name: &str, dataset: Arc<Dataset>) -> Result<Self> {
        let data_schema = Schema::from(
            &dataset
                .full_projection()
                .with_blob_handling(BlobHandling::AllBinary)
                .to_bare_schema(),
        );
        let mut fields: Vec<_> = data_schema
            .fields()
            .iter()
            .map(|field| Arc::new(lance_json_to_arrow_json(&without_blob_markers(field))))
            .collect();
        fields.push(Arc::new(ROW_ID_FIELD.clone()));
        fields.push(Arc::new(ROW_ADDR_FIELD.clone()));
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            data_schema.metadata().clone(),
        ));
        let indices = dataset.scalar_index_info().await.map_err(|source| {
            Error::lance(
                format!("loading indices of '{name}'"),
                dataset.uri(),
                source,
            )
        })?;
        let fragment_rows: Vec<(u64, Option<usize>)> = dataset
            .fragments()
            .iter()
            .map(|fragment| (fragment.id, fragment.num_rows()))
            .collect();
        let index_summaries = summarize_indices(name, &dataset, &fragment_rows).await?;
        let blob_columns = dataset
            .schema()
            .fields
            .iter()
            .filter(|field| holds_blob(field))
            .map(|field| field.name.clone())
            .collect();
        Ok(LanceTable {
            name: name.to_string(),
            dataset,
            schema,
            indices: Arc::new(indices),
            fragment_rows,
            blob_columns,
            index_summaries,
            decisions: Mutex::new(HashMap::new()),
        })
    }

    /// The table's SQL name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dataset's URI.
    pub fn uri(&self) -> &str {
        self.dataset.uri()
    }

    /// The table's indices (system indices, such as fragment reuse, left out).
    pub fn indices(&self) -> &[IndexSummary] {
        &self.index_summaries
    }

    /// The table's data columns: its schema without `_rowid` and `_rowaddr`.
    pub fn schema_without_row_identity(&self) -> Schema {
        let fields: Vec<_> = self
            .schema
            .fields()
            .iter()
            .filter(|field| !is_row_identity(field.name()))
            .cloned()
            .collect();
        Schema::new_with_metadata(fields, self.schema.metadata().clone())
    }

    /// The description of a search (or take) over this table producing `output`: the data
    /// columns of `output` that are this table's, and `_rowid`/`_rowaddr` when `output` has them.
    /// Other columns of `output` (`_distance`, `_score`, ...) are the search's own.
    pub fn search_spec(&self, output: &Schema, kind: SearchKind, batch_size: usize) -> SearchSpec {
        let has = |name: &str| output.index_of(name).is_ok();
        SearchSpec {
            table: self.name.clone(),
            uri: self.uri().to_string(),
            version: self.version(),
            columns: output
                .fields()
                .iter()
                .map(|field| field.name())
                .filter(|name| !is_row_identity(name) && self.column_type(name).is_some())
                .cloned()
                .collect(),
            with_row_id: has(ROW_ID),
            with_row_addr: has(ROW_ADDR),
            kind,
            batch_size,
        }
    }

    /// The rows `listed` names (ids naming no live row left out), as `projection` of the table's
    /// columns, with its other conditions checked on the taken rows by DataFusion's filter,
    /// which stops after `limit` rows.
    fn take_listed(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        listed: ListedRows<'_>,
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let ListedRows {
            row_ids,
            conditions,
        } = listed;
        let mut columns: Vec<usize> = match projection {
            Some(indices) => indices.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let output_width = columns.len();
        for condition in &conditions {
            for column in condition.column_refs() {
                let index = self.schema.index_of(&column.name)?;
                if !columns.contains(&index) {
                    columns.push(index);
                }
            }
        }
        let read = Arc::new(self.schema.project(&columns)?);
        let batch_size = state.config_options().execution.batch_size;
        let take = SearchKind::Take {
            row_ids,
            missing: MissingRow::Skip,
        };
        let spec = self.search_spec(&read, take, batch_size);
        let taken: Arc<dyn ExecutionPlan> = Arc::new(LanceSearchExec::new(spec, read.clone()));
        let Some(predicate) = conjunction(conditions.into_iter().cloned()) else {
            return Ok(taken);
        };
        let predicate = state.create_physical_expr(predicate, &DFSchema::try_from(read)?)?;
        let checked = FilterExecBuilder::new(predicate, taken)
            .apply_projection((columns.len() > output_width).then(|| (0..output_width).collect()))?
            .with_fetch(limit)
            .build()?;
        Ok(Arc::new(checked))
    }

    /// The type of data column `name`, if the table has it.
    pub fn column_type(&self, name: &str) -> Option<&arrow::datatypes::DataType> {
        self.schema
            .field_with_name(name)
            .ok()
            .map(|field| field.data_type())
    }

    /// Whether this table reads exactly `dataset` (the same open, not only the same version).
    pub fn is_of(&self, dataset: &Arc<Dataset>) -> bool {
        Arc::ptr_eq(&self.dataset, dataset)
    }

    /// The dataset version this table reads.
    pub fn version(&self) -> u64 {
        self.dataset.version_id()
    }

    /// How `filter` is pushed: decided once per distinct filter for this (table, version), so
    /// Lance's filter planner runs once per filter however often DataFusion asks.
    fn decide(&self, filter: &Expr) -> Arc<FilterDecision> {
        let filter = unqualify(filter.clone());
        let mut decisions = self
            .decisions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(decision) = decisions.get(&filter) {
            return decision.clone();
        }
        let decision = Arc::new(classify(&filter, &self.filter_context()));
        if decisions.len() >= REMEMBERED_DECISIONS {
            decisions.clear();
        }
        decisions.insert(filter, decision.clone());
        decision
    }

    fn filter_context(&self) -> FilterContext<'_> {
        FilterContext {
            schema: &self.schema,
            indices: self.indices.as_ref(),
        }
    }

    fn live_rows(&self) -> Option<usize> {
        self.fragment_rows.iter().map(|(_, rows)| *rows).sum()
    }
}

/// The user-visible indices of `dataset`, with how many live rows each covers and misses.
async fn summarize_indices(
    name: &str,
    dataset: &Dataset,
    fragment_rows: &[(u64, Option<usize>)],
) -> Result<Vec<IndexSummary>> {
    let described = dataset.describe_indices(None).await.map_err(|source| {
        Error::lance(
            format!("describing the indices of '{name}'"),
            dataset.uri(),
            source,
        )
    })?;
    let schema = dataset.schema();
    Ok(described
        .iter()
        // System indices (fragment reuse, MemWAL) are Lance's bookkeeping, not the user's.
        .filter(|index| !matches!(index.index_type(), "FragmentReuse" | "MemWal"))
        .map(|index| {
            let covered = |fragment: u64| {
                index.segments().iter().any(|segment| {
                    segment.fragment_bitmap.as_ref().is_some_and(|bitmap| {
                        u32::try_from(fragment).is_ok_and(|id| bitmap.contains(id))
                    })
                })
            };
            let (mut indexed, mut unindexed) = (0u64, 0u64);
            for (fragment, rows) in fragment_rows {
                let rows = rows.unwrap_or(0) as u64;
                if covered(*fragment) {
                    indexed += rows;
                } else {
                    unindexed += rows;
                }
            }
            IndexSummary {
                name: index.name().to_string(),
                kind: index.index_type().to_uppercase(),
                columns: index
                    .field_ids()
                    .iter()
                    .filter_map(|id| i32::try_from(*id).ok())
                    .filter_map(|id| schema.field_by_id(id))
                    .map(|field| field.name.clone())
                    .collect(),
                rows_indexed: indexed,
                rows_unindexed: unindexed,
            }
        })
        .collect())
}

/// Field metadata marking a legacy (v1) Lance blob column.
const LEGACY_BLOB_MARKER: &str = "lance-encoding:blob";

/// Blob columns are read as plain bytes (`BlobHandling::AllBinary`), so the markers saying "this
/// is a blob" must go: clients such as pylance reject a blob extension type on binary storage.
fn without_blob_markers(field: &arrow::datatypes::FieldRef) -> arrow::datatypes::Field {
    let mut metadata = field.metadata().clone();
    metadata.remove(LEGACY_BLOB_MARKER);
    if metadata
        .get(EXTENSION_TYPE_NAME_KEY)
        .is_some_and(|name| name.starts_with("lance.blob"))
    {
        metadata.remove(EXTENSION_TYPE_NAME_KEY);
    }
    field.as_ref().clone().with_metadata(metadata)
}

/// Whether `field` or any field nested in it stores blobs.
fn holds_blob(field: &lance_core::datatypes::Field) -> bool {
    field.is_blob() || field.children.iter().any(holds_blob)
}

#[async_trait]
impl TableProvider for LanceTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|filter| self.decide(filter).pushdown.clone())
            .collect())
    }

    fn statistics(&self) -> Option<Statistics> {
        let mut statistics = Statistics::new_unknown(&self.schema);
        statistics.num_rows = self.live_rows().map_or(Precision::Absent, Precision::Exact);
        Some(statistics)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let config = state.config_options();
        let options = LanceOptions::of(config);
        // DataFusion hands the scan only filters this table called `Exact`; their decisions
        // (and index queries) were made once, when it asked.
        let decisions: Vec<Arc<FilterDecision>> =
            filters.iter().map(|filter| self.decide(filter)).collect();
        let pushed: Vec<PushedFilter> = filters
            .iter()
            .zip(&decisions)
            .map(|(filter, decision)| PushedFilter {
                exact: decision.is_exact(),
                expr: unqualify(filter.clone()),
            })
            .collect();
        // Rows listed by `_rowid` are taken by address, as `take(table, row_ids)` takes them:
        // no scan for Lance to plan (which would read every fragment through a row mask).
        if let Some(listed) = listed_rows(pushed.iter().map(|filter| &filter.expr)) {
            return self.take_listed(state, projection, listed, limit);
        }
        let output_schema = match projection {
            Some(indices) => Arc::new(self.schema.project(indices)?),
            None => self.schema.clone(),
        };
        let columns = output_schema
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        let index_queries: Vec<&str> = decisions
            .iter()
            .filter_map(|decision| decision.index_query.as_deref())
            .collect();
        let index_query = match index_queries.as_slice() {
            _ if !options.use_scalar_index => None,
            [] => None,
            [single] => Some(single.to_string()),
            several => Some(format!("AND({})", several.join(","))),
        };

        // A take of listed rows is one Lance call; only a scan is worth splitting.
        let is_take = pushed
            .iter()
            .any(|filter| selects_rows_by_identity(&filter.expr));
        let target_partitions = if is_take {
            1
        } else {
            config.execution.target_partitions
        };
        let partitions = partition_fragments(&self.fragment_rows, target_partitions);
        let spec = ScanSpec {
            table: self.name.clone(),
            uri: self.dataset.uri().to_string(),
            version: self.version(),
            partitions,
            columns,
            filters: pushed,
            index_query,
            limit,
            use_scalar_index: options.use_scalar_index,
            fragment_readahead: (options.fragment_readahead > 0)
                .then_some(options.fragment_readahead),
            batch_size: config.execution.batch_size,
            fragment_rows: self.fragment_rows.clone(),
            blob_columns: self.blob_columns.clone(),
        };
        Ok(Arc::new(LanceScanExec::new(spec, output_schema)))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let operation = match insert_op {
            InsertOp::Append => WriteOperation::Append,
            InsertOp::Overwrite => WriteOperation::Overwrite,
            InsertOp::Replace => {
                return Err(Error::Unsupported {
                    what: "REPLACE INTO: use MERGE INTO, or DELETE then INSERT".into(),
                }
                .into());
            }
        };
        // The row identity columns are Lance's to assign: the insert's rows are the data
        // columns only.
        let input_schema = input.schema();
        let data_columns: Vec<(Arc<dyn PhysicalExpr>, String)> = input_schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, field)| !is_row_identity(field.name()))
            .map(|(index, field)| {
                (
                    Arc::new(PhysicalColumn::new(field.name(), index)) as Arc<dyn PhysicalExpr>,
                    field.name().clone(),
                )
            })
            .collect();
        let rows = Arc::new(ProjectionExec::try_new(data_columns, input)?);
        Ok(Arc::new(LanceWriteExec::new(
            self.write_spec(operation),
            Some(rows),
        )))
    }

    async fn delete_from(
        &self,
        _state: &dyn Session,
        filters: Vec<Expr>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let filter = self.own_filter(filters)?;
        Ok(Arc::new(LanceWriteExec::new(
            self.write_spec(WriteOperation::Delete { filter }),
            None,
        )))
    }

    async fn update(
        &self,
        _state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let filter = self.own_filter(filters)?;
        let mut own = Vec::with_capacity(assignments.len());
        for (column, value) in assignments {
            if is_row_identity(&column) {
                return Err(Error::invalid(format!(
                    "column '{column}' of table '{}' is assigned by Lance and cannot be set",
                    self.name
                ))
                .into());
            }
            own.push((column, self.own_expr(value)?));
        }
        Ok(Arc::new(LanceWriteExec::new(
            self.write_spec(WriteOperation::Update {
                assignments: own,
                filter,
            }),
            None,
        )))
    }

    async fn truncate(&self, _state: &dyn Session) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(LanceWriteExec::new(
            self.write_spec(WriteOperation::Truncate),
            None,
        )))
    }
}

impl LanceTable {
    fn write_spec(&self, operation: WriteOperation) -> WriteSpec {
        WriteSpec {
            table: self.name.clone(),
            operation,
        }
    }

    /// The conjunction of `filters`, over this table's columns alone.
    fn own_filter(&self, filters: Vec<Expr>) -> DFResult<Option<Expr>> {
        filters
            .into_iter()
            .map(|filter| self.own_expr(filter))
            .reduce(|left, right| Ok(left?.and(right?)))
            .transpose()
    }

    /// `expr` without table qualifiers, checked to read only this table's columns (a write
    /// evaluates it against the table's rows, nothing else).
    fn own_expr(&self, expr: Expr) -> DFResult<Expr> {
        let expr = unqualify(expr);
        for column in expr.column_refs() {
            if self.schema.field_with_name(&column.name).is_err() {
                return Err(Error::Unsupported {
                    what: format!(
                        "a write to table '{}' whose condition or values read '{}', which is \
                         not one of its columns",
                        self.name, column.name
                    ),
                }
                .into());
            }
        }
        Ok(expr)
    }
}

/// Whether `column` is one of the row identity columns Lance assigns.
fn is_row_identity(column: &str) -> bool {
    column == ROW_ID || column == ROW_ADDR
}
