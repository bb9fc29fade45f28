//! Postgres idioms in client catalog queries that `datafusion-pg-catalog`'s rewrite rules do
//! not cover, rewritten into SQL that means the same over its tables.
//!
//! Contract: a rewrite here changes only expressions whose Postgres meaning is certain from the
//! syntax alone, and leaves every other statement untouched.
//!
//! - `typreceive != 0` and other `regproc` columns compared with `0` (see [`RegprocZero`]).
//! - `pg_catalog.pg_constraint` is read through a view whose `conkey` and `confkey` are
//!   `smallint[]`, as in Postgres: the emulation stores them as text, and clients unnest them
//!   (the ADBC driver's column listing, SQLAlchemy's key reflection).

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    self, Expr, Ident, TableAlias, TableFactor, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Columns of `pg_catalog` whose Postgres type is `regproc`: a function reference, `0` (shown as
/// `-`) for none. `datafusion-pg-catalog` stores them as the function's name, with `-` for none.
const REGPROC_COLUMNS: [&str; 10] = [
    "typinput",
    "typoutput",
    "typreceive",
    "typsend",
    "typmodin",
    "typmodout",
    "typanalyze",
    "typsubscript",
    "aggtransfn",
    "aggfinalfn",
];

/// `pg_constraint` with its key columns as arrays (every other column as the emulation has it).
const PG_CONSTRAINT_VIEW: &str = "SELECT oid, conname, connamespace, contype, condeferrable, \
     condeferred, convalidated, conrelid, contypid, conindid, conparentid, confrelid, \
     confupdtype, confdeltype, confmatchtype, conislocal, coninhcount, connoinherit, \
     CAST(string_to_array(replace(btrim(conkey, '[]'), ' ', ''), ',') AS SMALLINT[]) AS conkey, \
     CAST(string_to_array(replace(btrim(confkey, '[]'), ' ', ''), ',') AS SMALLINT[]) AS confkey, \
     conpfeqop, conppeqop, conffeqop, confdelsetcols, conexclop, conbin \
     FROM pg_catalog.pg_constraint";

/// Applies every rewrite of this module to `statement`.
pub fn rewrite(statement: &mut ast::Statement) {
    let _ = statement.visit(&mut RegprocZero);
    let _ = statement.visit(&mut ConstraintKeys);
}

/// Reads of `pg_catalog.pg_constraint` go through [`PG_CONSTRAINT_VIEW`], under the name (or
/// alias) the statement gave the table.
struct ConstraintKeys;

impl VisitorMut for ConstraintKeys {
    type Break = ();

    // After the children: the view's own read of `pg_constraint` is not visited again.
    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name, alias, args, ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|part| {
                part.as_ident()
                    .map(|ident| ident.value.to_ascii_lowercase())
            })
            .collect();
        let is_constraints = args.is_none()
            && matches!(
                parts
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .as_slice(),
                ["pg_catalog", "pg_constraint"] | ["lancesql", "pg_catalog", "pg_constraint"]
            );
        if !is_constraints {
            return ControlFlow::Continue(());
        }
        let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, PG_CONSTRAINT_VIEW)
        else {
            return ControlFlow::Continue(());
        };
        let Some(ast::Statement::Query(view)) = statements.pop() else {
            return ControlFlow::Continue(());
        };
        let alias = alias.take().unwrap_or_else(|| TableAlias {
            explicit: true,
            at: None,
            name: Ident::new("pg_constraint"),
            columns: Vec::new(),
        });
        *factor = TableFactor::Derived {
            lateral: false,
            subquery: view,
            alias: Some(alias),
            sample: None,
        };
        ControlFlow::Continue(())
    }
}

/// `typreceive != 0` (the ADBC PostgreSQL driver's type query) compares a `regproc` with the
/// null function reference: over names it is `typreceive != '-'`.
struct RegprocZero;

impl VisitorMut for RegprocZero {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::BinaryOp { left, right, .. } = expr {
            if is_regproc_column(left) && is_zero(right) {
                **right = none_function();
            } else if is_regproc_column(right) && is_zero(left) {
                **left = none_function();
            }
        }
        ControlFlow::Continue(())
    }
}

fn is_regproc_column(expr: &Expr) -> bool {
    let name = match expr {
        Expr::Identifier(identifier) => identifier,
        Expr::CompoundIdentifier(parts) => match parts.last() {
            Some(last) => last,
            None => return false,
        },
        _ => return false,
    };
    REGPROC_COLUMNS
        .iter()
        .any(|column| name.value.eq_ignore_ascii_case(column))
}

fn is_zero(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(value) if matches!(&value.value, Value::Number(digits, _) if digits == "0"))
}

fn none_function() -> Expr {
    Expr::Value(Value::SingleQuotedString("-".into()).into())
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        rewrite(&mut statements[0]);
        statements[0].to_string()
    }

    #[test]
    fn constraint_keys_are_read_as_arrays_under_the_same_name() {
        let sql = rewritten(
            "SELECT con.conname FROM pg_catalog.pg_constraint AS con WHERE con.conrelid = 1",
        );
        assert!(sql.contains("AS SMALLINT[]) AS conkey"), "{sql}");
        assert!(sql.ends_with(") AS con WHERE con.conrelid = 1"), "{sql}");
        assert_eq!(sql.matches("pg_catalog.pg_constraint").count(), 1, "{sql}");
        let unaliased = rewritten("SELECT conkey FROM pg_catalog.pg_constraint");
        assert!(unaliased.ends_with(") AS pg_constraint"), "{unaliased}");
    }

    #[test]
    fn regproc_compared_with_zero_compares_with_the_none_name() {
        assert_eq!(
            rewritten("SELECT oid FROM pg_type WHERE (typreceive != 0 OR 0 <> t.typsend)"),
            "SELECT oid FROM pg_type WHERE (typreceive <> '-' OR '-' <> t.typsend)"
        );
        // Other columns and other numbers are left alone.
        assert_eq!(
            rewritten("SELECT 1 FROM t WHERE typrelid != 0 AND typreceive = 1"),
            "SELECT 1 FROM t WHERE typrelid <> 0 AND typreceive = 1"
        );
    }
}
