//! `table_changes('t', from_version, to_version)`: the rows inserted, updated and deleted after
//! `from_version` up to `to_version`, with `_change_type` ('insert', 'update', 'delete') and
//! `_rowid`, from Lance's row-level version metadata (tables with stable row ids only; others
//! get an error saying so).
//!
//! Contract: the arguments are checked when the statement is planned (the table from the
//! statement's snapshot, the versions as whole numbers, oldest first); the changes are read
//! when it runs, by [`crate::physical::changes::LanceChangesExec`]. The columns are the table's
//! current ones: a column the table did not have at a version is NULL in that version's rows.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use lance_core::ROW_ID_FIELD;

use crate::error::Error;
use crate::physical::changes::{CHANGE_TYPE, ChangesSpec, LanceChangesExec};

/// The function's SQL name.
pub const NAME: &str = "table_changes";

const USAGE: &str = "table_changes('table', from_version, to_version)";

/// `table_changes` as a table function.
#[derive(Debug)]
pub struct TableChanges;

impl TableFunctionImpl for TableChanges {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        let usage = || Error::invalid(format!("{NAME}: write {USAGE}"));
        let [table, from, to] = args.exprs() else {
            return Err(usage().into());
        };
        let Expr::Literal(ScalarValue::Utf8(Some(name)), _) = table else {
            return Err(usage().into());
        };
        let version = |expr: &Expr, which: &str| match expr {
            Expr::Literal(value, _) => value
                .cast_to(&DataType::UInt64)
                .ok()
                .and_then(|value| match value {
                    ScalarValue::UInt64(Some(version)) if version > 0 => Some(version),
                    _ => None,
                })
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "{NAME}: {which} is a version number from 1, not {expr}"
                    ))
                }),
            _ => Err(usage()),
        };
        let (from, to) = (version(from, "from_version")?, version(to, "to_version")?);
        if from >= to {
            return Err(Error::invalid(format!(
                "{NAME}('{name}', {from}, {to}): from_version must be older than to_version"
            ))
            .into());
        }
        let table = crate::functions::search::table_argument(NAME, args.session(), name)?;
        let mut fields: Vec<_> = table
            .schema_without_row_identity()
            .fields()
            .iter()
            .map(|field| Arc::new(field.as_ref().clone().with_nullable(true)))
            .collect();
        fields.push(Arc::new(ROW_ID_FIELD.clone()));
        fields.push(Arc::new(Field::new(CHANGE_TYPE, DataType::Utf8, false)));
        Ok(Arc::new(ChangesTable {
            spec: ChangesSpec {
                table: name.clone(),
                from,
                to,
            },
            schema: Arc::new(Schema::new(fields)),
        }))
    }
}

/// One call's result, read when the statement runs.
#[derive(Debug)]
struct ChangesTable {
    spec: ChangesSpec,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for ChangesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let output = match projection {
            Some(columns) => Arc::new(self.schema.project(columns)?),
            None => self.schema.clone(),
        };
        Ok(Arc::new(LanceChangesExec::new(self.spec.clone(), output)))
    }
}
