//! Statements that change a table's rows: `INSERT INTO ... VALUES | SELECT`, `INSERT OVERWRITE`,
//! `UPDATE ... SET ... WHERE`, `DELETE FROM ... WHERE`, `TRUNCATE`.
//!
//! DataFusion plans them and the table's write hooks turn them into one Lance commit each (see
//! [`crate::physical::write`]). This module is what the engine adds around that:
//! - an `INSERT` without a column list means the table's data columns, never `_rowid` or
//!   `_rowaddr` (which Lance assigns and no statement may set);
//! - a write names a table as it is now: a pinned old version (`t VERSION AS OF 3`) is refused;
//! - `UPDATE` and `DELETE` conditions and values may read only the target's own columns: a
//!   subquery, `UPDATE ... FROM` or `DELETE ... USING` is refused before anything runs, rather
//!   than having DataFusion drop the part of the condition it cannot hand to the table;
//! - the completion reports the rows affected, as Postgres' tags do.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{DmlStatement, Expr, LogicalPlan, WriteOp};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{self, Ident, ObjectName, ObjectNamePart, TableObject};
use lance_core::{ROW_ADDR, ROW_ID};

use crate::catalog::{StatementCatalog, is_versioned_name};
use crate::error::{Error, Result};
use crate::provider::table::LanceTable;

/// Which rows-changing statement a statement is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowChange {
    Insert,
    Update,
    Delete,
    Truncate,
}

impl RowChange {
    /// The kind of `statement`, if it changes rows.
    pub(super) fn of(statement: &ast::Statement) -> Option<RowChange> {
        use ast::Statement as S;
        Some(match statement {
            S::Insert(_) => RowChange::Insert,
            S::Update(_) => RowChange::Update,
            S::Delete(_) => RowChange::Delete,
            S::Truncate(_) => RowChange::Truncate,
            _ => return None,
        })
    }
}

/// Gives an `INSERT` without a column list the target's data columns, so that its values fill
/// those and not the row identity columns; refuses a list naming `_rowid` or `_rowaddr`.
pub(super) fn name_inserted_columns(
    statement: &mut DFStatement,
    snapshot: &StatementCatalog,
) -> Result<()> {
    let DFStatement::Statement(inner) = statement else {
        return Ok(());
    };
    let ast::Statement::Insert(insert) = inner.as_mut() else {
        return Ok(());
    };
    let TableObject::TableName(name) = &insert.table else {
        return Ok(());
    };
    let Some(table) = snapshot_table(snapshot, name) else {
        // DataFusion reports the unknown table.
        return Ok(());
    };
    if let Some(identity) = insert.columns.iter().find(|column| {
        let column = column.to_string();
        column == ROW_ID || column == ROW_ADDR
    }) {
        return Err(Error::invalid(format!(
            "column '{identity}' of table '{}' is assigned by Lance and cannot be inserted",
            table.name()
        )));
    }
    if insert.columns.is_empty() {
        insert.columns = table
            .schema_without_row_identity()
            .fields()
            .iter()
            .map(|field| {
                ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote(
                    '"',
                    field.name(),
                ))])
            })
            .collect();
    }
    Ok(())
}

fn snapshot_table<'a>(
    snapshot: &'a StatementCatalog,
    name: &ObjectName,
) -> Option<&'a Arc<LanceTable>> {
    let reference =
        datafusion::sql::planner::object_name_to_table_reference(name.clone(), true).ok()?;
    snapshot.table(reference.table())
}

/// Refuses writes that cannot run as one commit against the table's own rows (see the module
/// docs). `plan` is the statement's plan before optimisation.
pub(super) fn check_write(plan: &LogicalPlan) -> Result<()> {
    let LogicalPlan::Dml(DmlStatement {
        table_name,
        op,
        input,
        ..
    }) = plan
    else {
        return Ok(());
    };
    if is_versioned_name(table_name.table()) {
        return Err(Error::invalid(format!(
            "'{}' is an old version of a table, which cannot be written; write the table itself, \
             or RESTORE it to that version first",
            table_name.table()
        )));
    }
    if !matches!(op, WriteOp::Update | WriteOp::Delete) {
        return Ok(());
    }
    let mut scans = 0;
    let mut refusal = None;
    input.apply(|node| {
        if let LogicalPlan::TableScan(_) = node {
            scans += 1;
        }
        if matches!(node, LogicalPlan::Join(_) | LogicalPlan::Subquery(_)) {
            refusal = Some("a join (UPDATE ... FROM, DELETE ... USING)");
        }
        for expr in node.expressions() {
            let mut subquery = false;
            expr.apply(|inner| {
                subquery |= matches!(
                    inner,
                    Expr::Exists(_) | Expr::InSubquery(_) | Expr::ScalarSubquery(_)
                );
                Ok(TreeNodeRecursion::Continue)
            })?;
            if subquery {
                refusal = Some("a subquery");
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if scans != 1 && refusal.is_none() {
        refusal = Some("a second table");
    }
    match refusal {
        Some(what) => Err(Error::Unsupported {
            what: format!(
                "{} of table '{}' with {what}: conditions and values may read only the table's \
                 own columns (select the keys first, or use MERGE INTO)",
                if *op == WriteOp::Update {
                    "UPDATE"
                } else {
                    "DELETE"
                },
                table_name.table()
            ),
        }),
        None => Ok(()),
    }
}

/// The rows a write affected, from its one-row `count` result.
pub(super) fn affected_rows(batches: &[RecordBatch]) -> Result<u64> {
    let counted = batches
        .iter()
        .find(|batch| batch.num_rows() > 0)
        .and_then(|batch| {
            let column = batch.column_by_name("count")?;
            let counts = column.as_primitive_opt::<UInt64Type>()?;
            (!counts.is_null(0)).then(|| counts.value(0))
        });
    counted.ok_or_else(|| Error::Internal {
        message: "a write reported no row count".into(),
    })
}
