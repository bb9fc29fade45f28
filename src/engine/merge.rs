//! `MERGE INTO target USING source ON target.k = source.k WHEN ...`, run as one Lance
//! merge-insert (one commit).
//!
//! The statement is turned into a query over `source` that yields rows shaped like the target
//! (its columns, by name) and the merge's keys and actions:
//! - `ON` is a conjunction of equalities between a target column and a source expression: the
//!   target columns are the keys, and the source expressions their values;
//! - `WHEN MATCHED THEN UPDATE SET ...` replaces a matched row whole, so it must set every
//!   column that is not a key, each from the source; `WHEN MATCHED THEN DELETE` deletes it;
//! - `WHEN NOT MATCHED [BY TARGET] THEN INSERT [(columns)] VALUES (...)` inserts the source row
//!   (columns it leaves out are NULL; the keys it must give, with the values they are matched
//!   on); where both an UPDATE and an INSERT give a column a value it must be the same
//!   expression;
//! - `WHEN NOT MATCHED BY SOURCE THEN DELETE` deletes target rows no source row matches.
//!
//! Conditions on clauses (`WHEN MATCHED AND ...`), values that read the target's columns, and
//! several clauses of one kind are refused, naming what to write instead.

use std::collections::HashMap;

use datafusion::sql::sqlparser::ast::{
    self, AssignmentTarget, BinaryOperator, Expr, MergeAction, MergeClauseKind, MergeInsertKind,
    TableFactor,
};

use crate::error::{Error, Result};
use crate::storage::rows::MergeActions;

/// A `MERGE` as the data root runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePlan {
    pub target: String,
    /// The query producing the source rows, shaped like the target.
    pub source_query: String,
    pub keys: Vec<String>,
    pub actions: MergeActions,
}

/// Reads `merge` against the target's data columns (in order).
pub(super) fn plan_merge(
    merge: &ast::Merge,
    target: &str,
    columns: &[String],
) -> Result<MergePlan> {
    let unsupported = |what: String| Error::Unsupported { what };
    let TableFactor::Table { name, alias, .. } = &merge.table else {
        return Err(unsupported(format!(
            "MERGE INTO {}: the target must be a table",
            merge.table
        )));
    };
    let target_ref = alias
        .as_ref()
        .map(|alias| normalize(&alias.name))
        .or_else(|| {
            name.0
                .last()
                .and_then(|part| part.as_ident())
                .map(normalize)
        })
        .unwrap_or_else(|| target.to_string());
    let reads_target = |expr: &Expr| references(expr, &target_ref);

    let mut values: HashMap<String, Expr> = HashMap::new();
    let mut keys = Vec::new();
    for conjunct in conjuncts(&merge.on) {
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = conjunct
        else {
            return Err(unsupported(format!(
                "MERGE ... ON {conjunct}: ON must be equalities of target columns and source \
                 values joined by AND"
            )));
        };
        let (column, value) = match (
            target_column(left, &target_ref),
            target_column(right, &target_ref),
        ) {
            (Some(column), None) if !reads_target(right) => (column, right.as_ref()),
            (None, Some(column)) if !reads_target(left) => (column, left.as_ref()),
            _ => {
                return Err(unsupported(format!(
                    "MERGE ... ON {conjunct}: each equality compares a column of the target \
                     ({target_ref}.column) with a value from the source"
                )));
            }
        };
        if !columns.contains(&column) {
            return Err(Error::ColumnNotFound {
                table: target.to_string(),
                column,
            });
        }
        keys.push(column.clone());
        values.insert(column, value.clone());
    }

    let mut actions = MergeActions {
        matched_update: None,
        insert_unmatched: false,
        delete_unmatched_target: false,
    };
    let mut updated: Option<Vec<String>> = None;
    let mut seen = Vec::new();
    for clause in &merge.clauses {
        if let Some(predicate) = &clause.predicate {
            return Err(unsupported(format!(
                "MERGE ... WHEN ... AND {predicate}: conditions on clauses; filter the source \
                 instead (USING (SELECT ... WHERE ...))"
            )));
        }
        let kind = match clause.clause_kind {
            MergeClauseKind::NotMatchedByTarget => MergeClauseKind::NotMatched,
            other => other,
        };
        if seen.contains(&kind) {
            return Err(unsupported(format!(
                "MERGE with two WHEN {kind} clauses: give each kind of row one action"
            )));
        }
        seen.push(kind);
        match (kind, &clause.action) {
            (MergeClauseKind::Matched, MergeAction::Delete { .. }) => {
                actions.matched_update = Some(false);
            }
            (MergeClauseKind::Matched, MergeAction::Update(update)) => {
                if update.update_predicate.is_some() || update.delete_predicate.is_some() {
                    return Err(unsupported("MERGE ... UPDATE ... WHERE".into()));
                }
                let mut set = Vec::new();
                for assignment in &update.assignments {
                    let AssignmentTarget::ColumnName(name) = &assignment.target else {
                        return Err(unsupported(format!("MERGE ... SET {}", assignment.target)));
                    };
                    let column = name
                        .0
                        .last()
                        .and_then(|part| part.as_ident())
                        .map(normalize)
                        .unwrap_or_else(|| name.to_string());
                    if keys.contains(&column) {
                        return Err(unsupported(format!(
                            "MERGE ... SET {column}: '{column}' is a key of the merge"
                        )));
                    }
                    assign(
                        &mut values,
                        target,
                        columns,
                        &column,
                        &assignment.value,
                        &reads_target,
                    )?;
                    set.push(column);
                }
                updated = Some(set);
                actions.matched_update = Some(true);
            }
            (MergeClauseKind::NotMatched, MergeAction::Insert(insert)) => {
                let MergeInsertKind::Values(rows) = &insert.kind else {
                    return Err(unsupported("MERGE ... INSERT ROW".into()));
                };
                let [row] = rows.rows.as_slice() else {
                    return Err(unsupported("MERGE ... INSERT with several rows".into()));
                };
                let named: Vec<String> = if insert.columns.is_empty() {
                    columns.to_vec()
                } else {
                    insert
                        .columns
                        .iter()
                        .map(|name| {
                            name.0
                                .last()
                                .and_then(|part| part.as_ident())
                                .map(normalize)
                                .unwrap_or_else(|| name.to_string())
                        })
                        .collect()
                };
                if named.len() != row.content.len() {
                    return Err(Error::invalid(format!(
                        "MERGE ... INSERT names {} columns and gives {} values",
                        named.len(),
                        row.content.len()
                    )));
                }
                if let Some(key) = keys.iter().find(|key| !named.contains(key)) {
                    return Err(unsupported(format!(
                        "MERGE ... INSERT leaving out key '{key}': insert the value it is \
                         matched on ({})",
                        values
                            .get(key)
                            .map_or_else(String::new, ToString::to_string)
                    )));
                }
                for (column, value) in named.iter().zip(&row.content) {
                    assign(&mut values, target, columns, column, value, &reads_target)?;
                }
                actions.insert_unmatched = true;
            }
            (MergeClauseKind::NotMatchedBySource, MergeAction::Delete { .. }) => {
                actions.delete_unmatched_target = true;
            }
            (kind, action) => {
                return Err(unsupported(format!("MERGE ... WHEN {kind} THEN {action}")));
            }
        }
    }
    if let Some(set) = &updated {
        let missing: Vec<&String> = columns
            .iter()
            .filter(|column| !keys.contains(column) && !set.contains(column))
            .collect();
        if !missing.is_empty() {
            return Err(unsupported(format!(
                "MERGE ... UPDATE SET leaving out {}: a matched row is replaced whole, so SET \
                 every column that is not a key (to its own value from the source if unchanged)",
                missing
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    // Deletes alone need only the keys; inserts and updates need whole rows.
    let shaped: Vec<&String> = if actions.insert_unmatched || updated.is_some() {
        columns.iter().collect()
    } else {
        keys.iter().collect()
    };
    let projection: Vec<String> = shaped
        .iter()
        .map(|column| {
            let value = values
                .get(*column)
                .map_or_else(|| "NULL".to_string(), ToString::to_string);
            format!("{value} AS \"{}\"", column.replace('"', "\"\""))
        })
        .collect();
    Ok(MergePlan {
        target: target.to_string(),
        source_query: format!("SELECT {} FROM {}", projection.join(", "), merge.source),
        keys,
        actions,
    })
}

/// Records `value` for `column`, which an UPDATE and an INSERT must agree on.
fn assign(
    values: &mut HashMap<String, Expr>,
    target: &str,
    columns: &[String],
    column: &str,
    value: &Expr,
    reads_target: &dyn Fn(&Expr) -> bool,
) -> Result<()> {
    if !columns.iter().any(|known| known == column) {
        return Err(Error::ColumnNotFound {
            table: target.to_string(),
            column: column.to_string(),
        });
    }
    if reads_target(value) {
        return Err(Error::Unsupported {
            what: format!(
                "MERGE value {value} for '{column}' reads the target: values come from the source \
                 alone (Lance's merge replaces or inserts source rows)"
            ),
        });
    }
    match values.get(column) {
        Some(known) if known != value => Err(Error::Unsupported {
            what: format!(
                "MERGE giving '{column}' two values ({known} and {value}): UPDATE and INSERT must \
                 agree, as both write the source row"
            ),
        }),
        _ => {
            values.insert(column.to_string(), value.clone());
            Ok(())
        }
    }
}

/// The parts of an `AND` chain.
fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            let mut parts = conjuncts(left);
            parts.extend(conjuncts(right));
            parts
        }
        Expr::Nested(inner) => conjuncts(inner),
        other => vec![other],
    }
}

/// The target column `expr` names (`target_ref.column`), if it is one.
fn target_column(expr: &Expr, target_ref: &str) -> Option<String> {
    match expr {
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [qualifier, column] if normalize(qualifier) == target_ref => Some(normalize(column)),
            _ => None,
        },
        Expr::Nested(inner) => target_column(inner, target_ref),
        _ => None,
    }
}

/// Whether `expr` reads a column qualified by the target's name.
fn references(expr: &Expr, target_ref: &str) -> bool {
    use std::ops::ControlFlow;
    let mut found = false;
    let _ = ast::visit_expressions(expr, |inner: &Expr| {
        if let Expr::CompoundIdentifier(parts) = inner
            && parts.len() >= 2
            && normalize(&parts[parts.len() - 2]) == target_ref
        {
            found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

fn normalize(ident: &ast::Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}
