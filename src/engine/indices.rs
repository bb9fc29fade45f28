//! `CREATE INDEX` and `DROP INDEX`: read from the statement, carried out by the data root (one
//! Lance commit each).
//!
//! `CREATE INDEX [IF NOT EXISTS] [name] ON table [USING kind] (column) [WITH (option = value,
//! ...)]`: the kind defaults to BTREE; `DROP INDEX [IF EXISTS] name [ON table]` finds the
//! table holding an index of that name when none is given (Lance names indices per table, so
//! a name held by several tables needs `ON table`).

use datafusion::sql::sqlparser::ast::{
    self, BinaryOperator, Expr, IndexType as AstIndexType, ObjectName, Value,
};

use crate::error::{Error, Result};
use crate::storage::index::{IndexDefinition, OptionValue};

/// The index a `CREATE INDEX` statement asks for.
pub fn definition(create: &ast::CreateIndex, table: String) -> Result<IndexDefinition> {
    if create.unique {
        return Err(Error::Unsupported {
            what: "CREATE UNIQUE INDEX: Lance indices do not enforce uniqueness".into(),
        });
    }
    if create.predicate.is_some() || !create.include.is_empty() {
        return Err(Error::Unsupported {
            what: "partial indices (WHERE) and INCLUDE columns in CREATE INDEX".into(),
        });
    }
    let [column] = create.columns.as_slice() else {
        return Err(Error::invalid(format!(
            "CREATE INDEX indexes one column; {} were given",
            create.columns.len()
        )));
    };
    let column = match &column.column.expr {
        Expr::Identifier(ident) => normalize(ident),
        other => {
            return Err(Error::invalid(format!(
                "CREATE INDEX indexes a column by name, not '{other}'"
            )));
        }
    };
    let kind = match &create.using {
        None | Some(AstIndexType::BTree) => "BTREE".to_string(),
        Some(AstIndexType::Bloom) => "BLOOMFILTER".to_string(),
        Some(AstIndexType::Custom(ident)) => ident.value.to_ascii_uppercase(),
        Some(other) => {
            return Err(Error::invalid(format!(
                "index kind '{other}' is Postgres' own; Lance's kinds are listed in docs/search.md"
            )));
        }
    };
    let name = match &create.name {
        None => None,
        Some(name) => Some(single_name("index", name)?),
    };
    let options = create.with.iter().map(option).collect::<Result<Vec<_>>>()?;
    Ok(IndexDefinition {
        table,
        name,
        column,
        kind,
        options,
        if_not_exists: create.if_not_exists,
    })
}

/// `name = value` in `WITH (...)`.
fn option(expr: &Expr) -> Result<(String, OptionValue)> {
    let Expr::BinaryOp {
        left,
        op: BinaryOperator::Eq,
        right,
    } = expr
    else {
        return Err(Error::invalid(format!(
            "CREATE INDEX options are written name = value, not '{expr}'"
        )));
    };
    let Expr::Identifier(name) = left.as_ref() else {
        return Err(Error::invalid(format!(
            "CREATE INDEX option names are plain words, not '{left}'"
        )));
    };
    let value = match right.as_ref() {
        Expr::Value(value) => match &value.value {
            Value::Number(number, _) => OptionValue::Number(number.to_string()),
            Value::SingleQuotedString(text) => OptionValue::Text(text.clone()),
            Value::Boolean(flag) => OptionValue::Boolean(*flag),
            other => {
                return Err(Error::invalid(format!(
                    "CREATE INDEX option '{name}' has a value of an unexpected kind: {other}"
                )));
            }
        },
        Expr::Identifier(word) => OptionValue::Text(word.value.clone()),
        other => {
            return Err(Error::invalid(format!(
                "CREATE INDEX option '{name}' must be a constant, not '{other}'"
            )));
        }
    };
    Ok((name.value.to_ascii_lowercase(), value))
}

/// An unqualified name (an index, in a statement naming one).
pub fn single_name(what: &str, name: &ObjectName) -> Result<String> {
    match name.0.as_slice() {
        [part] => part
            .as_ident()
            .map(normalize)
            .ok_or_else(|| Error::invalid(format!("'{name}' is not a valid {what} name"))),
        _ => Err(Error::invalid(format!(
            "{what} names are not qualified ('{name}'); name the table with ON table"
        ))),
    }
}

fn normalize(ident: &ast::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}
