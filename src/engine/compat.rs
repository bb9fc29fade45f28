//! Postgres idioms in client catalog queries that `datafusion-pg-catalog`'s rewrite rules do
//! not cover, rewritten into SQL that means the same over its tables.
//!
//! Contract: a rewrite here changes only expressions whose Postgres meaning is certain from the
//! syntax alone, and leaves every other statement untouched.
//!
//! - `typreceive != 0` and other `regproc` columns compared with `0` (see [`regproc_zero`]).
//! - `pg_catalog.pg_constraint` is read through a view whose `conkey` and `confkey` are
//!   `smallint[]`, as in Postgres: the emulation stores them as text, and clients unnest them
//!   (the ADBC driver's column listing, SQLAlchemy's key reflection).
//! - `pg_catalog.pg_index` likewise has `indkey` and `indoption` as `smallint[]`.
//! - `pg_indexes`, which the emulation lacks, is an empty view with Postgres' columns.
//! - `generate_subscripts(array, dim)` in a select list (SQLAlchemy's key reflection, beside
//!   `unnest(array)`) is `unnest(range(1, array_length(array, dim) + 1))`: DataFusion zips the
//!   unnests of one select list as Postgres zips its set-returning functions.
//! - `ctid BETWEEN '(page,tuple)'::tid AND '(page,tuple)'::tid` (DuckDB's postgres scanner splits
//!   its reads so) is a range of Lance row addresses (`_rowaddr`, fragment << 32 | offset): both
//!   name where a row is stored, so every row falls in exactly one of the scanner's ranges.

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

/// `pg_index` with its `int2vector` columns as `smallint[]` (the emulation stores `"1 2"`), which
/// clients unnest (SQLAlchemy's index reflection).
const PG_INDEX_VIEW: &str = "SELECT indexrelid, indrelid, indnatts, indnkeyatts, indisunique, \
     indnullsnotdistinct, indisprimary, indisexclusion, indimmediate, indisclustered, indisvalid, \
     indcheckxmin, indisready, indislive, indisreplident, \
     CAST(string_to_array(indkey, ' ') AS SMALLINT[]) AS indkey, indcollation, indclass, \
     CAST(string_to_array(indoption, ' ') AS SMALLINT[]) AS indoption, indexprs, indpred \
     FROM pg_catalog.pg_index";

/// `pg_indexes`, which the emulation lacks: no rows yet (lancesql's indices are Lance's, listed
/// with their tables), with Postgres' columns (DuckDB's postgres scanner reads it on attach).
const PG_INDEXES_VIEW: &str = "SELECT CAST(NULL AS TEXT) AS schemaname, \
     CAST(NULL AS TEXT) AS tablename, CAST(NULL AS TEXT) AS indexname, \
     CAST(NULL AS TEXT) AS tablespace, CAST(NULL AS TEXT) AS indexdef WHERE false";

/// Applies every rewrite of this module to `statement`.
pub fn rewrite(statement: &mut ast::Statement) {
    let _ = statement.visit(&mut Rewrites);
}

/// Every rewrite below, in one walk of the statement.
struct Rewrites;

impl VisitorMut for Rewrites {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        regproc_zero(expr);
        tuple_id_range(expr);
        generate_subscripts(expr);
        ControlFlow::Continue(())
    }

    // After the children: a view's own read of its table is not visited again.
    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        catalog_view(factor);
        ControlFlow::Continue(())
    }
}

/// `generate_subscripts(array, dim)` as `unnest(range(1, array_length(array, dim) + 1))`.
fn generate_subscripts(expr: &mut Expr) {
    let Expr::Function(function) = expr else {
        return;
    };
    let named = function
        .name
        .0
        .last()
        .and_then(|part| part.as_ident())
        .is_some_and(|name| name.value.eq_ignore_ascii_case("generate_subscripts"));
    let ast::FunctionArguments::List(list) = &function.args else {
        return;
    };
    let (true, [array, dimension]) = (named, list.args.as_slice()) else {
        return;
    };
    let sql = format!("unnest(range(1, CAST(array_length({array}, {dimension}) AS BIGINT) + 1))");
    if let Ok(rewritten) = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&sql)
        .and_then(|mut parser| parser.parse_expr())
    {
        *expr = rewritten;
    }
}

/// `ctid BETWEEN '(a,b)'::tid AND '(c,d)'::tid` as `_rowaddr BETWEEN a << 32 | b AND ...`.
fn tuple_id_range(expr: &mut Expr) {
    let Expr::Between {
        expr: column,
        low,
        high,
        ..
    } = expr
    else {
        return;
    };
    let (Some(low_address), Some(high_address)) = (tuple_id(low), tuple_id(high)) else {
        return;
    };
    let renamed = match column.as_mut() {
        Expr::Identifier(name) if name.value.eq_ignore_ascii_case("ctid") => name,
        Expr::CompoundIdentifier(parts) => match parts.last_mut() {
            Some(name) if name.value.eq_ignore_ascii_case("ctid") => name,
            _ => return,
        },
        _ => return,
    };
    *renamed = Ident::new("_rowaddr");
    **low = Expr::Value(Value::Number(low_address.to_string(), false).into());
    **high = Expr::Value(Value::Number(high_address.to_string(), false).into());
}

/// The row address a `'(page,tuple)'::tid` literal stands for.
fn tuple_id(expr: &Expr) -> Option<u64> {
    let Expr::Cast {
        expr, data_type, ..
    } = expr
    else {
        return None;
    };
    if !data_type.to_string().eq_ignore_ascii_case("tid") {
        return None;
    }
    let Expr::Value(value) = expr.as_ref() else {
        return None;
    };
    let Value::SingleQuotedString(text) = &value.value else {
        return None;
    };
    let (page, tuple) = text
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')?
        .split_once(',')?;
    let page: u32 = page.trim().parse().ok()?;
    let tuple: u32 = tuple.trim().parse().ok()?;
    Some(u64::from(page) << 32 | u64::from(tuple))
}

/// Reads of `pg_catalog.pg_constraint`, `pg_catalog.pg_index` and `pg_indexes` go through
/// [`PG_CONSTRAINT_VIEW`], [`PG_INDEX_VIEW`] and [`PG_INDEXES_VIEW`], under the name (or alias)
/// the statement gave.
fn catalog_view(factor: &mut TableFactor) {
    let TableFactor::Table {
        name, alias, args, ..
    } = factor
    else {
        return;
    };
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|part| {
            part.as_ident()
                .map(|ident| ident.value.to_ascii_lowercase())
        })
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let relation = match parts.as_slice() {
        ["pg_catalog" | "lancesql", .., relation] | [relation] if args.is_none() => *relation,
        _ => return,
    };
    let (view, default_alias) = match relation {
        "pg_constraint" if parts.len() > 1 => (PG_CONSTRAINT_VIEW, "pg_constraint"),
        "pg_index" if parts.len() > 1 => (PG_INDEX_VIEW, "pg_index"),
        "pg_indexes" => (PG_INDEXES_VIEW, "pg_indexes"),
        _ => return,
    };
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, view) else {
        return;
    };
    let Some(ast::Statement::Query(view)) = statements.pop() else {
        return;
    };
    let alias = alias.take().unwrap_or_else(|| TableAlias {
        explicit: true,
        at: None,
        name: Ident::new(default_alias),
        columns: Vec::new(),
    });
    *factor = TableFactor::Derived {
        lateral: false,
        subquery: view,
        alias: Some(alias),
        sample: None,
    };
}

/// `typreceive != 0` (the ADBC PostgreSQL driver's type query) compares a `regproc` with the
/// null function reference: over names it is `typreceive != '-'`.
fn regproc_zero(expr: &mut Expr) {
    if let Expr::BinaryOp { left, right, .. } = expr {
        if is_regproc_column(left) && is_zero(right) {
            **right = none_function();
        } else if is_regproc_column(right) && is_zero(left) {
            **left = none_function();
        }
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
        let index = rewritten("SELECT indkey FROM pg_catalog.pg_index JOIN pg_indexes ON true");
        assert!(index.contains("AS SMALLINT[]) AS indkey"), "{index}");
        assert!(index.contains(") AS pg_index JOIN (SELECT"), "{index}");
        assert!(
            index.ends_with("WHERE false) AS pg_indexes ON true"),
            "{index}"
        );
    }

    #[test]
    fn tuple_id_ranges_are_row_address_ranges() {
        assert_eq!(
            rewritten(
                "SELECT a FROM t WHERE ctid BETWEEN '(0,0)'::tid AND '(4294967295,0)'::tid AND a > 1"
            ),
            "SELECT a FROM t WHERE _rowaddr BETWEEN 0 AND 18446744069414584320 AND a > 1"
        );
        assert_eq!(
            rewritten("SELECT 1 FROM t WHERE t.ctid BETWEEN '(2,5)'::tid AND '(3,0)'::tid"),
            "SELECT 1 FROM t WHERE t._rowaddr BETWEEN 8589934597 AND 12884901888"
        );
    }

    #[test]
    fn generate_subscripts_is_an_unnest_of_a_range() {
        assert_eq!(
            rewritten("SELECT unnest(c.conkey), generate_subscripts(c.conkey, $1::INTEGER) FROM c"),
            "SELECT unnest(c.conkey), unnest(range(1, CAST(array_length(c.conkey, $1::INTEGER) \
             AS BIGINT) + 1)) FROM c"
        );
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
