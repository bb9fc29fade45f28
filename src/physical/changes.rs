//! `LanceChangesExec`: reads a table's row changes between two versions (see
//! [`crate::functions::changes`]). It holds a plain description ([`ChangesSpec`]) and asks the
//! data root for the changes in `execute`. The changes are gathered in memory before the first
//! batch is produced.

use std::fmt;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use crate::storage::DataRoot;

/// The column saying what happened to a row (named here, where it is filled in).
pub const CHANGE_TYPE: &str = "_change_type";

/// Everything needed to read a table's changes, as plain data.
#[derive(Debug, Clone)]
pub struct ChangesSpec {
    pub table: String,
    /// Changes after this version ...
    pub from: u64,
    /// ... up to and including this one.
    pub to: u64,
}

/// Reads the rows `spec` describes, as the columns of its schema (the table's columns,
/// `_rowid`, `_change_type`, or some of them).
#[derive(Debug)]
pub struct LanceChangesExec {
    spec: ChangesSpec,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl LanceChangesExec {
    pub fn new(spec: ChangesSpec, schema: SchemaRef) -> Self {
        let properties = super::one_final_partition(schema.clone());
        LanceChangesExec {
            spec,
            schema,
            properties,
        }
    }
}

impl DisplayAs for LanceChangesExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "LanceChanges: table={} from={} to={}",
            self.spec.table, self.spec.from, self.spec.to
        )
    }
}

impl ExecutionPlan for LanceChangesExec {
    fn name(&self) -> &str {
        "LanceChangesExec"
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
        super::only_partition("LanceChangesExec", partition)?;
        let root = DataRoot::of_task(&context)?;
        let spec = self.spec.clone();
        let schema = self.schema.clone();
        let output = schema.clone();
        let batches = futures::stream::once(async move {
            let changes = root
                .table_changes(&spec.table, spec.from, spec.to)
                .await
                .map_err(DataFusionError::from)?;
            let batches = changes
                .into_iter()
                .map(|(kind, batch)| shaped(&output, kind, &batch))
                .collect::<Vec<_>>();
            Ok::<_, DataFusionError>(futures::stream::iter(batches))
        });
        use futures::TryStreamExt;
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            batches.try_flatten(),
        )))
    }
}

/// `batch` with the columns of `schema`: its own by name (cast to their types), NULL where it
/// lacks one, and `kind` as the change type.
fn shaped(schema: &SchemaRef, kind: &str, batch: &RecordBatch) -> DFResult<RecordBatch> {
    let rows = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            if field.name() == CHANGE_TYPE {
                return Ok(Arc::new(StringArray::from(vec![kind; rows])) as _);
            }
            match batch.column_by_name(field.name()) {
                Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
                Some(column) => Ok(arrow::compute::cast(column, field.data_type())?),
                None => Ok(arrow::array::new_null_array(field.data_type(), rows)),
            }
        })
        .collect::<DFResult<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
