//! `ALTER TABLE` on a table's columns, one change per statement (each is one commit):
//! `ADD [COLUMN] [IF NOT EXISTS] c type` (NULL in existing rows), `ADD COLUMN c type
//! GENERATED ALWAYS AS (expr) STORED` (computed once over the existing rows and stored),
//! `DROP [COLUMN] [IF EXISTS] c`, `RENAME COLUMN a TO b`, `ALTER [COLUMN] c [SET DATA] TYPE t`,
//! `ALTER [COLUMN] c SET NOT NULL | DROP NOT NULL`.
//!
//! Types are SQL types as `CREATE TABLE` takes them, and a generated column's expression is
//! planned against the table's columns by DataFusion, cast to the column's type, before
//! anything is written; the data root applies the change ([`ColumnChange`]).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field};
use datafusion::common::DFSchema;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::logical_expr::{Expr, ExprSchemable};
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::sql::sqlparser::ast::{
    self, AlterColumnOperation, AlterTableOperation, ColumnOption, GeneratedExpressionMode, Ident,
};

use crate::error::{Error, Result};
use crate::provider::table::LanceTable;
use crate::storage::schema::ColumnChange;

/// The change one `ALTER TABLE` operation makes to `table`; `None` when `IF [NOT] EXISTS`
/// finds nothing to do.
pub(super) fn column_change(
    state: &SessionState,
    table: &LanceTable,
    operation: &AlterTableOperation,
) -> Result<Option<ColumnChange>> {
    let unsupported = || Error::Unsupported {
        what: format!(
            "ALTER TABLE {operation}: lancesql alters columns (ADD, DROP, RENAME, ALTER TYPE, \
             SET/DROP NOT NULL); use CALL create_tag / ALTER TABLE ... CREATE TAG for tags"
        ),
    };
    let has = |column: &str| table.column_type(column).is_some();
    Ok(Some(match operation {
        AlterTableOperation::AddColumn {
            if_not_exists,
            column_def,
            column_position: None,
            ..
        } => {
            let name = normalize(&column_def.name);
            if *if_not_exists && has(&name) {
                return Ok(None);
            }
            let data_type = sql_type(state, &column_def.data_type)?;
            let mut nullable = true;
            let mut generated = None;
            for option in &column_def.options {
                match &option.option {
                    ColumnOption::NotNull => nullable = false,
                    ColumnOption::Null => nullable = true,
                    ColumnOption::Generated {
                        generation_expr: Some(expr),
                        generation_expr_mode,
                        ..
                    } => {
                        if generation_expr_mode == &Some(GeneratedExpressionMode::Virtual) {
                            return Err(Error::Unsupported {
                                what: format!(
                                    "VIRTUAL generated column '{name}': lancesql stores \
                                     generated columns (GENERATED ALWAYS AS (...) STORED)"
                                ),
                            });
                        }
                        generated = Some(expr);
                    }
                    other => {
                        return Err(Error::Unsupported {
                            what: format!(
                                "column option '{other}' in ALTER TABLE ADD COLUMN '{name}'"
                            ),
                        });
                    }
                }
            }
            let field = Field::new(&name, data_type.clone(), nullable);
            match generated {
                Some(expr) => ColumnChange::AddComputed {
                    value: column_value(state, table, expr, &data_type)?,
                    field,
                },
                None if !nullable => {
                    return Err(Error::invalid(format!(
                        "new column '{name}' of table '{}' is NOT NULL but its existing rows \
                         have no value: give it one with GENERATED ALWAYS AS (...) STORED",
                        table.name()
                    )));
                }
                None => ColumnChange::AddNulls(field),
            }
        }
        AlterTableOperation::DropColumn {
            column_names,
            if_exists,
            ..
        } => {
            let [column] = column_names.as_slice() else {
                return Err(Error::invalid(
                    "ALTER TABLE drops one column at a time (each change is one version)",
                ));
            };
            let column = normalize(column);
            if *if_exists && !has(&column) {
                return Ok(None);
            }
            ColumnChange::Drop(column)
        }
        AlterTableOperation::RenameColumn {
            old_column_name,
            new_column_name,
        } => ColumnChange::Rename {
            from: normalize(old_column_name),
            to: normalize(new_column_name),
        },
        AlterTableOperation::AlterColumn { column_name, op } => {
            let column = normalize(column_name);
            match op {
                AlterColumnOperation::SetNotNull => ColumnChange::SetNullable {
                    column,
                    nullable: false,
                },
                AlterColumnOperation::DropNotNull => ColumnChange::SetNullable {
                    column,
                    nullable: true,
                },
                AlterColumnOperation::SetDataType {
                    data_type,
                    using: None,
                    ..
                } => ColumnChange::SetType {
                    column,
                    data_type: sql_type(state, data_type)?,
                },
                _ => return Err(unsupported()),
            }
        }
        _ => return Err(unsupported()),
    }))
}

/// A column name as SQL means it: folded to lower case unless quoted.
fn normalize(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// The Arrow type DataFusion gives SQL type `data_type` (as in `CREATE TABLE`).
fn sql_type(state: &SessionState, data_type: &ast::DataType) -> Result<DataType> {
    let empty = DFSchema::empty();
    let typed = state
        .create_logical_expr(&format!("CAST(NULL AS {data_type})"), &empty)
        .map_err(|error| {
            Error::invalid(format!(
                "'{data_type}' is not a column type: {}",
                Error::from(error)
            ))
        })?;
    Ok(typed.get_type(&empty)?)
}

/// A generated column's expression, planned against `table`'s columns and cast to its type.
fn column_value(
    state: &SessionState,
    table: &LanceTable,
    expr: &ast::Expr,
    data_type: &DataType,
) -> Result<Expr> {
    let schema = Arc::new(DFSchema::try_from(table.schema_without_row_identity())?);
    let described = |error: datafusion::error::DataFusionError| {
        Error::invalid(format!(
            "GENERATED ALWAYS AS ({expr}) is not an expression over the columns of '{}': {}",
            table.name(),
            Error::from(error)
        ))
    };
    let planned = state
        .create_logical_expr(&expr.to_string(), &schema)
        .map_err(described)?;
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(schema.clone())
            .build(),
    );
    let typed = simplifier.coerce(planned, &schema).map_err(described)?;
    typed.cast_to(data_type, schema.as_ref()).map_err(described)
}
