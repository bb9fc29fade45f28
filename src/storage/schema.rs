//! Schema evolution: one column change of an existing table per commit, through Lance's
//! zero-copy operations. Adding a column writes only the new column's files (existing data files
//! are untouched); dropping and renaming change metadata only; a type change rewrites that one
//! column. Older versions keep their schema for time travel.
//!
//! A computed column's value is a DataFusion expression over the table's columns (planned and
//! typed by the engine), evaluated here batch by batch: no expression goes through SQL text
//! again.

use std::sync::{Arc, Mutex, PoisonError};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::create_physical_expr;
use datafusion::physical_expr::execution_props::ExecutionProps;
use lance::dataset::{BatchUDF, ColumnAlteration, NewColumnTransform};

use super::DataRoot;
use crate::error::{Error, Result};

/// One change to a table's columns.
#[derive(Debug, Clone)]
pub enum ColumnChange {
    /// A new column, NULL in every existing row.
    AddNulls(Field),
    /// A new column whose value in every existing row is `value`, computed once and stored.
    AddComputed {
        field: Field,
        value: Expr,
    },
    Drop(String),
    Rename {
        from: String,
        to: String,
    },
    SetType {
        column: String,
        data_type: DataType,
    },
    SetNullable {
        column: String,
        nullable: bool,
    },
}

impl DataRoot {
    /// Applies `change` to `table` as one new version.
    pub async fn alter_table(&self, table: &str, change: ColumnChange) -> Result<()> {
        let gate = self.write_gate(table).await;
        let mut dataset = self.open_for_write(table, &gate).await?;
        let has = |column: &str| dataset.schema().field(column).is_some();
        let missing = |column: &str| Error::ColumnNotFound {
            table: table.to_string(),
            column: column.to_string(),
        };
        let exists = |column: &str| {
            Error::invalid(format!("table '{table}' already has a column '{column}'"))
        };
        let uri = dataset.uri().to_string();
        let committed = match ChangeOf::from(change) {
            ChangeOf::Add(field, _) if has(field.name()) => return Err(exists(field.name())),
            ChangeOf::Add(field, None) => {
                let schema = Arc::new(Schema::new(vec![field]));
                dataset
                    .add_columns(NewColumnTransform::AllNulls(schema), None, None)
                    .await
            }
            ChangeOf::Add(field, Some(value)) => {
                let reads: Vec<String> = value
                    .column_refs()
                    .into_iter()
                    .map(|column| column.name.clone())
                    .collect();
                let output = Arc::new(Schema::new(vec![field.clone()]));
                let mapper = computed_column(table, field, value);
                dataset
                    .add_columns(
                        NewColumnTransform::BatchUDF(BatchUDF {
                            mapper: Box::new(mapper),
                            output_schema: output,
                            result_checkpoint: None,
                        }),
                        Some(reads),
                        Some(COMPUTED_COLUMN_BATCH_ROWS),
                    )
                    .await
            }
            ChangeOf::Drop(column) if !has(&column) => return Err(missing(&column)),
            ChangeOf::Drop(column) => dataset.drop_columns(&[column.as_str()]).await,
            ChangeOf::Alter(alteration) if !has(&alteration.path) => {
                return Err(missing(&alteration.path));
            }
            ChangeOf::Alter(alteration) => {
                if let Some(to) = &alteration.rename
                    && has(to)
                {
                    return Err(exists(to));
                }
                dataset.alter_columns(&[alteration]).await
            }
        };
        committed.map_err(|source| {
            Error::lance(
                format!("changing the columns of table '{table}'"),
                &uri,
                source,
            )
        })
    }
}

/// A [`ColumnChange`] in the shape Lance's calls take.
enum ChangeOf {
    Add(Field, Option<Expr>),
    Drop(String),
    Alter(ColumnAlteration),
}

impl From<ColumnChange> for ChangeOf {
    fn from(change: ColumnChange) -> Self {
        match change {
            ColumnChange::AddNulls(field) => ChangeOf::Add(field, None),
            ColumnChange::AddComputed { field, value } => ChangeOf::Add(field, Some(value)),
            ColumnChange::Drop(column) => ChangeOf::Drop(column),
            ColumnChange::Rename { from, to } => {
                ChangeOf::Alter(ColumnAlteration::new(from).rename(to))
            }
            ColumnChange::SetType { column, data_type } => {
                ChangeOf::Alter(ColumnAlteration::new(column).cast_to(data_type))
            }
            ColumnChange::SetNullable { column, nullable } => {
                ChangeOf::Alter(ColumnAlteration::new(column).set_nullable(nullable))
            }
        }
    }
}

/// Rows read per batch to compute a new column. Lance's default (1024) makes ten thousand
/// batches of a 10M-row table, each with its own read, evaluation and hand-off to the writer; an
/// expression reads only the columns it names, so a larger batch stays small in memory.
const COMPUTED_COLUMN_BATCH_ROWS: u32 = 8192;

/// Computes `value` for each batch of the columns it reads, as the single column `field`. The
/// physical expression is built for the first batch and kept while batches keep its schema
/// (Lance reads every batch of an `add_columns` with the same columns).
fn computed_column(
    table: &str,
    field: Field,
    value: Expr,
) -> impl Fn(&RecordBatch) -> lance::Result<RecordBatch> + Send + Sync + 'static {
    let table = table.to_string();
    let output = Arc::new(Schema::new(vec![field.clone()]));
    let planned: Mutex<Option<(SchemaRef, Arc<dyn PhysicalExpr>)>> = Mutex::new(None);
    move |batch: &RecordBatch| {
        let failed = |error: datafusion::error::DataFusionError| {
            lance::Error::invalid_input(format!(
                "computing column '{}' of table '{table}': {}",
                field.name(),
                Error::from(error)
            ))
        };
        let expr = {
            let mut planned = planned.lock().unwrap_or_else(PoisonError::into_inner);
            match planned.as_ref() {
                Some((schema, expr)) if *schema == batch.schema() => expr.clone(),
                _ => {
                    let input =
                        DFSchema::try_from(batch.schema().as_ref().clone()).map_err(failed)?;
                    let expr = create_physical_expr(&value, &input, &ExecutionProps::new())
                        .map_err(failed)?;
                    *planned = Some((batch.schema(), expr.clone()));
                    expr
                }
            }
        };
        let column = expr
            .evaluate(batch)
            .and_then(|computed| computed.into_array(batch.num_rows()))
            .map_err(failed)?;
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(lance::Error::invalid_input(format!(
                "{}",
                Error::NotNullViolation {
                    table: table.clone(),
                    column: field.name().clone(),
                }
            )));
        }
        RecordBatch::try_new(output.clone(), vec![column]).map_err(|error| failed(error.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, ArrayRef, Int64Array};
    use datafusion::prelude::{col, lit};

    fn batch(columns: Vec<(&str, Vec<Option<i64>>)>) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, _)| Field::new(*name, DataType::Int64, true))
            .collect();
        let arrays: Vec<ArrayRef> = columns
            .into_iter()
            .map(|(_, values)| Arc::new(Int64Array::from(values)) as ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("batch")
    }

    fn values(computed: &RecordBatch) -> Vec<Option<i64>> {
        let column = computed
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("Int64");
        (0..column.len())
            .map(|row| column.is_valid(row).then(|| column.value(row)))
            .collect()
    }

    #[test]
    fn computes_every_batch_and_plans_again_when_the_columns_move() {
        let doubled = Field::new("doubled", DataType::Int64, true);
        let compute = computed_column("t", doubled, col("value") * lit(2i64));
        let first = compute(&batch(vec![("value", vec![Some(1), Some(2)])])).expect("first");
        let second = compute(&batch(vec![("value", vec![Some(5), None])])).expect("second");
        // The same column at another position: an expression kept from the batches before
        // would read `other`.
        let moved = compute(&batch(vec![
            ("other", vec![Some(100)]),
            ("value", vec![Some(7)]),
        ]))
        .expect("moved");
        assert_eq!(values(&first), vec![Some(2), Some(4)]);
        assert_eq!(values(&second), vec![Some(10), None]);
        assert_eq!(values(&moved), vec![Some(14)]);
        assert_eq!(first.schema().field(0).name(), "doubled");
    }

    #[test]
    fn a_null_in_a_not_null_column_names_the_table_and_column() {
        let doubled = Field::new("doubled", DataType::Int64, false);
        let compute = computed_column("items", doubled, col("value") * lit(2i64));
        let error = compute(&batch(vec![("value", vec![Some(1), None])]))
            .expect_err("NULL in a NOT NULL column");
        let message = error.to_string();
        assert!(
            message.contains("items") && message.contains("doubled"),
            "{message}"
        );
    }
}
