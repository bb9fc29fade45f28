//! `LanceWriteExec`: the execution node that changes a table's rows (INSERT, INSERT OVERWRITE,
//! UPDATE, DELETE, TRUNCATE) as one Lance commit.
//!
//! The node holds a plain description ([`WriteSpec`]: the table and what to do, with filters
//! and assignments as expressions over the table's own columns) and, for inserts, the plan
//! producing the new rows. It opens the table through the process's [`DataRoot`] in
//! [`ExecutionPlan::execute`], at its latest version: a write always applies to the newest
//! committed data, and Lance rebases it over concurrent commits where it can. Its one output
//! row is DataFusion's DML convention: `count` (UInt64), the rows the statement affected. An
//! append may compact the table's small fragments afterwards (`lance.auto_compact_fragments`).

use std::fmt;
use std::sync::Arc;

use arrow::array::{RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::internal_datafusion_err;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use crate::config::LanceOptions;
use crate::storage::{AutoCompact, DataRoot, WriteInput};

/// What a write does to its table.
#[derive(Debug, Clone)]
pub enum WriteOperation {
    /// Adds the input's rows (INSERT).
    Append,
    /// Replaces the table's rows with the input's (INSERT OVERWRITE).
    Overwrite,
    /// Removes the rows matching `filter`; all rows when there is none.
    Delete { filter: Option<Expr> },
    /// Sets `assignments` (column, SQL expression over the row's old values) in the rows
    /// matching `filter`; all rows when there is none.
    Update {
        assignments: Vec<(String, Expr)>,
        filter: Option<Expr>,
    },
    /// Removes every row (TRUNCATE).
    Truncate,
}

/// Everything needed to run a write, as plain data.
#[derive(Debug, Clone)]
pub struct WriteSpec {
    /// SQL name of the table (a table under the data root, never a pinned old version).
    pub table: String,
    pub operation: WriteOperation,
}

/// Writes to a Lance table; one partition, one output row.
#[derive(Debug)]
pub struct LanceWriteExec {
    spec: WriteSpec,
    /// The new rows (`Append`, `Overwrite`).
    input: Option<Arc<dyn ExecutionPlan>>,
    properties: Arc<PlanProperties>,
}

impl LanceWriteExec {
    /// A write of `spec`; `input` gives the rows of an insert and must be `None` otherwise.
    pub fn new(spec: WriteSpec, input: Option<Arc<dyn ExecutionPlan>>) -> Self {
        let properties = super::one_final_partition(count_schema());
        LanceWriteExec {
            spec,
            input,
            properties,
        }
    }

    /// The plain description this node runs.
    pub fn spec(&self) -> &WriteSpec {
        &self.spec
    }
}

/// The output of every write: the rows it affected.
fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

impl DisplayAs for LanceWriteExec {
    fn fmt_as(&self, format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let spec = &self.spec;
        let join = |filter: &Option<Expr>| {
            filter
                .as_ref()
                .map_or_else(|| "all rows".to_string(), ToString::to_string)
        };
        let describe = match &spec.operation {
            WriteOperation::Append => "append".to_string(),
            WriteOperation::Overwrite => "overwrite".to_string(),
            WriteOperation::Delete { filter } => format!("delete where={}", join(filter)),
            WriteOperation::Update {
                assignments,
                filter,
            } => {
                let set: Vec<String> = assignments
                    .iter()
                    .map(|(column, value)| format!("{column} = {value}"))
                    .collect();
                format!("update set=[{}] where={}", set.join(", "), join(filter))
            }
            WriteOperation::Truncate => "truncate".to_string(),
        };
        match format {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "LanceWrite: table={} {describe}", spec.table)
            }
            DisplayFormatType::TreeRender => {
                writeln!(f, "table={}", spec.table)?;
                writeln!(f, "{describe}")
            }
        }
    }
}

impl ExecutionPlan for LanceWriteExec {
    fn name(&self) -> &str {
        "LanceWriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.input.iter().collect()
    }

    /// The input's partitions are written as they come, each by a writer of its own: splitting
    /// one partition into several would only shuffle its rows.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false; self.input.iter().count()]
    }

    /// Rows are written in the order each input partition gives them, so a sort below (a
    /// single partition, in order) is kept, as `INSERT ... SELECT ... ORDER BY` asks.
    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true; self.input.iter().count()]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        match (&self.input, children.as_slice()) {
            (None, []) => Ok(self),
            (Some(_), [input]) => Ok(Arc::new(LanceWriteExec::new(
                self.spec.clone(),
                Some(input.clone()),
            ))),
            _ => Err(internal_datafusion_err!(
                "LanceWriteExec got {} children",
                children.len()
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        super::only_partition("LanceWriteExec", partition)?;
        let root = DataRoot::of_task(&context)?;
        let auto_compact = AutoCompact::of(&LanceOptions::of(context.session_config().options()));
        let spec = self.spec.clone();
        // Each input partition is written by a writer of its own, at once (storage::WriteInput).
        let input = self
            .input
            .as_ref()
            .map(|input| WriteInput::partitions(input.clone(), context))
            .transpose()?;
        let written = futures::stream::once(async move {
            let table = spec.table.as_str();
            let affected = match (spec.operation, input) {
                (WriteOperation::Append, Some(rows)) => {
                    root.append_table(table, rows, auto_compact).await
                }
                (WriteOperation::Overwrite, Some(rows)) => root.overwrite_rows(table, rows).await,
                (WriteOperation::Delete { filter }, None) => root.delete_rows(table, filter).await,
                (
                    WriteOperation::Update {
                        assignments,
                        filter,
                    },
                    None,
                ) => root.update_rows(table, &assignments, filter).await,
                (WriteOperation::Truncate, None) => root.delete_rows(table, None).await,
                _ => {
                    return Err(internal_datafusion_err!(
                        "LanceWriteExec: an insert needs its rows, and only an insert has them"
                    ));
                }
            }
            .map_err(DataFusionError::from)?;
            Ok(RecordBatch::try_new(
                count_schema(),
                vec![Arc::new(UInt64Array::from(vec![affected]))],
            )?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            written,
        )))
    }
}
