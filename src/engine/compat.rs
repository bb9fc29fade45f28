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
//! - `pg_class` gains `reloptions` and `relacl` (NULL), which SQLAlchemy's index reflection
//!   reads.
//! - `information_schema.columns` likewise has Postgres' type names and numbering.
//! - `pg_attribute` (qualified or not) is read through a view that takes each column's type
//!   and number from `lancesql_columns()`: the emulation types arrays, `timestamptz` and
//!   unsigned columns as `text` or `numeric`, and numbers the row-identity columns like any
//!   other (see `functions::columns`).
//! - `generate_subscripts(array, dim)` in a select list (SQLAlchemy's key reflection, beside
//!   `unnest(array)`) is `unnest(range(1, array_length(array, dim) + 1))`: DataFusion zips the
//!   unnests of one select list as Postgres zips its set-returning functions.
//! - `regproc` columns compared with `'pg_catalog.array_in'::regproc` (DBeaver's type query)
//!   compare with the function's name, as the emulation stores it (see [`regproc_name`]).
//! - `user` is `session_user`, as in Postgres (Grafana's search-path query).
//! - Functions in `FROM` with only a table alias name their one column too, as in Postgres:
//!   `generate_series(1, 3) AS i` has a column `i`, and `string_to_array(...) AS s` (a scalar
//!   function) is a one-row relation with a column `s` (Grafana's search-path query).
//! - `CAST(x AS "text")`: a quoted built-in type name is that type (Trino's PostgreSQL
//!   connector).
//! - asyncpg's type introspection is recognised whole and answered by a plain query
//!   ([`known_statement`]).
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

/// `pg_attribute` with each column's type, width, array dimensions and number as the wire
/// describes them (`lancesql_columns()`); the emulation's own values where that has no row.
/// In column order, as Postgres reads it out: clients list columns without `ORDER BY` (the
/// ADBC driver's table schema).
const PG_ATTRIBUTE_VIEW: &str = "SELECT a.attrelid, a.attname, \
     COALESCE(t.pg_type_oid, a.atttypid) AS atttypid, a.attstattarget, \
     COALESCE(t.pg_type_len, a.attlen) AS attlen, COALESCE(t.attnum, a.attnum) AS attnum, \
     COALESCE(t.pg_array_dims, a.attndims) AS attndims, a.attcacheoff, a.atttypmod, \
     COALESCE(t.pg_type_len > 0, a.attbyval) AS attbyval, a.attalign, a.attstorage, \
     a.attcompression, a.attnotnull, a.atthasdef, a.atthasmissing, a.attidentity, \
     a.attgenerated, a.attisdropped, a.attislocal, a.attinhcount, a.attcollation, a.attacl, \
     a.attoptions, a.attfdwoptions, a.attmissingval \
     FROM pg_catalog.pg_attribute AS a \
     LEFT JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid \
     LEFT JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace \
     LEFT JOIN lancesql_columns() AS t ON t.table_schema = n.nspname \
     AND t.table_name = c.relname AND t.column_name = a.attname \
     ORDER BY 1, 6";

/// `information_schema.columns` (DataFusion's) with Postgres' type names (`bigint`, `ARRAY`,
/// `timestamp with time zone`, with `udt_name` the `pg_type` name), numbered from 1, and without
/// the row-identity columns, which Postgres lists there no more than its system columns.
const INFORMATION_SCHEMA_COLUMNS_VIEW: &str = "SELECT c.table_catalog, c.table_schema, \
     c.table_name, c.column_name, \
     COALESCE(CAST(t.attnum AS BIGINT), CAST(c.ordinal_position AS BIGINT) + 1) \
     AS ordinal_position, c.column_default, c.is_nullable, \
     COALESCE(CASE WHEN t.pg_array_dims > 0 THEN 'ARRAY' \
     ELSE format_type(t.pg_type_oid, -1) END, c.data_type) AS data_type, \
     c.character_maximum_length, c.character_octet_length, c.numeric_precision, \
     c.numeric_precision_radix, c.numeric_scale, c.datetime_precision, c.interval_type, \
     t.pg_type AS udt_name \
     FROM information_schema.columns AS c \
     LEFT JOIN lancesql_columns() AS t ON t.table_catalog = c.table_catalog \
     AND t.table_schema = c.table_schema AND t.table_name = c.table_name \
     AND t.column_name = c.column_name \
     WHERE t.attnum IS NULL OR t.attnum > 0";

/// `pg_class` with the columns the emulation lacks that clients read: `reloptions` (SQLAlchemy's
/// index reflection, so `pandas.read_sql` of a table name) and `relacl`, both NULL.
const PG_CLASS_VIEW: &str = "SELECT *, CAST(NULL AS TEXT[]) AS reloptions, \
     CAST(NULL AS TEXT[]) AS relacl FROM pg_catalog.pg_class";

/// `pg_indexes`, which the emulation lacks: no rows yet (lancesql's indices are Lance's, listed
/// with their tables), with Postgres' columns (DuckDB's postgres scanner reads it on attach).
const PG_INDEXES_VIEW: &str = "SELECT CAST(NULL AS TEXT) AS schemaname, \
     CAST(NULL AS TEXT) AS tablename, CAST(NULL AS TEXT) AS indexname, \
     CAST(NULL AS TEXT) AS tablespace, CAST(NULL AS TEXT) AS indexdef WHERE false";

/// The start of asyncpg's type introspection (a recursive walk through domains, composites,
/// ranges and array elements, with correlated recursive subqueries DataFusion cannot plan),
/// whitespace collapsed.
const ASYNCPG_TYPE_INTROSPECTION: &str = "WITH RECURSIVE typeinfo_tree( oid, ns, name, kind, \
     basetype, elemtype, elemdelim, range_subtype, attrtypoids, attrnames, depth) AS (";

/// What asyncpg's type introspection returns over lancesql's types, which are base types and
/// arrays of them only: each type asked for at depth 0, and each array's element at depth 1,
/// with the columns asyncpg reads. Every column has a type asyncpg decodes without asking
/// (the always-NULL array columns are `text[]`), or it would introspect again, without end.
const TYPE_INTROSPECTION: &str = "SELECT DISTINCT t.oid, ns.nspname AS ns, \
     t.typname AS name, t.typtype AS kind, CAST(NULL AS INT) AS basetype, \
     t.typelem AS elemtype, elem_t.typdelim AS elemdelim, CAST(NULL AS INT) AS range_subtype, \
     CAST(NULL AS TEXT[]) AS attrtypoids, CAST(NULL AS TEXT[]) AS attrnames, r.depth, \
     CAST(NULL AS TEXT) AS basetype_name, elem_t.typname AS elemtype_name, \
     CAST(NULL AS TEXT) AS range_subtype_name \
     FROM (SELECT unnest($1::oid[]) AS oid, 0 AS depth \
     UNION ALL SELECT t0.typelem AS oid, 1 AS depth FROM pg_catalog.pg_type t0 \
     WHERE t0.oid = ANY($1::oid[]) AND t0.typelem <> 0) AS r \
     JOIN pg_catalog.pg_type t ON t.oid = r.oid \
     JOIN pg_catalog.pg_namespace ns ON ns.oid = t.typnamespace \
     LEFT JOIN pg_catalog.pg_type elem_t ON t.typlen = -1 AND t.typelem <> 0 \
     AND t.typelem = elem_t.oid \
     ORDER BY depth DESC";

/// A client statement recognised whole and answered by an equivalent one: asyncpg's type
/// introspection (see [`TYPE_INTROSPECTION`]).
pub fn known_statement(sql: &str) -> Option<&'static str> {
    // Every statement passes here: only one that names the walk is looked at closely.
    if !sql.contains("typeinfo_tree") {
        return None;
    }
    let collapsed = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .starts_with(ASYNCPG_TYPE_INTROSPECTION)
        .then_some(TYPE_INTROSPECTION)
}

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
        regproc_name(expr);
        tuple_id_range(expr);
        quoted_type_name(expr);
        user_keyword(expr);
        generate_subscripts(expr);
        ControlFlow::Continue(())
    }

    // After the children: a view's own read of its table is not visited again.
    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        catalog_view(factor);
        function_in_from(factor);
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

/// Reads of `pg_catalog.pg_constraint`, `pg_catalog.pg_index`, `pg_indexes`, `pg_attribute`,
/// `pg_class` and `information_schema.columns` go through [`PG_CONSTRAINT_VIEW`],
/// [`PG_INDEX_VIEW`], [`PG_INDEXES_VIEW`], [`PG_ATTRIBUTE_VIEW`], [`PG_CLASS_VIEW`] and
/// [`INFORMATION_SCHEMA_COLUMNS_VIEW`], under the name (or alias) the statement gave.
fn catalog_view(factor: &mut TableFactor) {
    let TableFactor::Table { name, args, .. } = factor else {
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
    if args.is_some() {
        return;
    }
    if let ["information_schema", "columns"] | ["lancesql", "information_schema", "columns"] =
        parts.as_slice()
    {
        replace_with_view(factor, INFORMATION_SCHEMA_COLUMNS_VIEW, "columns");
        return;
    }
    let relation = match parts.as_slice() {
        ["pg_catalog" | "lancesql", .., relation] | [relation] => *relation,
        _ => return,
    };
    let (view, default_alias) = match relation {
        "pg_constraint" if parts.len() > 1 => (PG_CONSTRAINT_VIEW, "pg_constraint"),
        "pg_index" if parts.len() > 1 => (PG_INDEX_VIEW, "pg_index"),
        "pg_indexes" => (PG_INDEXES_VIEW, "pg_indexes"),
        "pg_attribute" => (PG_ATTRIBUTE_VIEW, "pg_attribute"),
        "pg_class" => (PG_CLASS_VIEW, "pg_class"),
        _ => return,
    };
    replace_with_view(factor, view, default_alias);
}

/// Replaces the table `factor` reads with the derived table `view`, under the alias the
/// statement gave or else `default_alias`.
fn replace_with_view(factor: &mut TableFactor, view: &str, default_alias: &str) {
    let TableFactor::Table { alias, .. } = factor else {
        return;
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

/// Scalar functions whose call Postgres allows in `FROM` as a one-row relation, which clients
/// use so: the relation's one column is named after its alias.
const SCALAR_FUNCTIONS_IN_FROM: [&str; 2] = ["string_to_array", "current_schemas"];

/// Set-returning functions in `FROM` whose one column Postgres names after the table alias
/// when no column list is given (DataFusion names it `value`).
const ONE_COLUMN_TABLE_FUNCTIONS: [&str; 2] = ["generate_series", "range"];

/// `f(args) AS a` in `FROM`: a one-column set-returning function gets the column list `a(a)`;
/// a scalar function from [`SCALAR_FUNCTIONS_IN_FROM`] becomes `(SELECT f(args) AS a) AS a`.
fn function_in_from(factor: &mut TableFactor) {
    let TableFactor::Table {
        name,
        alias: Some(alias),
        args: Some(args),
        ..
    } = factor
    else {
        return;
    };
    if !alias.columns.is_empty() {
        return;
    }
    let Some(function) = name
        .0
        .last()
        .and_then(|part| part.as_ident())
        .map(|ident| ident.value.to_ascii_lowercase())
    else {
        return;
    };
    if ONE_COLUMN_TABLE_FUNCTIONS.contains(&function.as_str()) {
        alias.columns = vec![ast::TableAliasColumnDef {
            name: alias.name.clone(),
            data_type: None,
        }];
        return;
    }
    if !SCALAR_FUNCTIONS_IN_FROM.contains(&function.as_str()) {
        return;
    }
    let call = format!(
        "SELECT {name}({}) AS {column}",
        args.args
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        column = alias.name,
    );
    let Ok(mut statements) = Parser::parse_sql(&PostgreSqlDialect {}, &call) else {
        return;
    };
    let Some(ast::Statement::Query(subquery)) = statements.pop() else {
        return;
    };
    *factor = TableFactor::Derived {
        lateral: false,
        subquery,
        alias: Some(alias.clone()),
        sample: None,
    };
}

/// The keyword `user` (a call without parentheses) is `session_user`.
fn user_keyword(expr: &mut Expr) {
    if let Expr::Function(function) = expr
        && matches!(function.args, ast::FunctionArguments::None)
        && let [part] = function.name.0.as_slice()
        && part.as_ident().is_some_and(|ident| {
            ident.quote_style.is_none() && ident.value.eq_ignore_ascii_case("user")
        })
    {
        function.name = ast::ObjectName::from(vec![Ident::new("session_user")]);
    }
}

/// A `regproc` column compared with a function named as `'schema.name'::regproc`, which the
/// emulation's rewrite turns into `(SELECT oid FROM pg_catalog.pg_proc WHERE proname = '...')`,
/// compares with the bare name instead: the emulation stores `regproc` columns as names.
fn regproc_name(expr: &mut Expr) {
    let Expr::BinaryOp { left, right, .. } = expr else {
        return;
    };
    let other = if is_regproc_column(left) {
        right
    } else if is_regproc_column(right) {
        left
    } else {
        return;
    };
    if let Some(name) = function_lookup_name(other) {
        let bare = name.rsplit('.').next().unwrap_or(&name).to_string();
        **other = Expr::Value(Value::SingleQuotedString(bare).into());
    }
}

/// The name in `'name'::regproc` or in the emulation's rewrite of it,
/// `(SELECT oid FROM pg_catalog.pg_proc WHERE proname = 'name')`.
fn function_lookup_name(expr: &Expr) -> Option<String> {
    let quoted = |expr: &Expr| match expr {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(text) => Some(text.clone()),
            _ => None,
        },
        _ => None,
    };
    match expr {
        Expr::Cast {
            expr, data_type, ..
        } if data_type.to_string().eq_ignore_ascii_case("regproc") => quoted(expr),
        Expr::Subquery(query) => {
            let ast::SetExpr::Select(select) = query.body.as_ref() else {
                return None;
            };
            let reads_pg_proc = select.from.len() == 1
                && select.from[0]
                    .to_string()
                    .to_ascii_lowercase()
                    .ends_with("pg_proc");
            match &select.selection {
                Some(Expr::BinaryOp {
                    left,
                    op: ast::BinaryOperator::Eq,
                    right,
                }) if reads_pg_proc && left.to_string().eq_ignore_ascii_case("proname") => {
                    quoted(right)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// `CAST(x AS "text")`: a type name is an identifier in Postgres, so a quoted built-in name is
/// that type (Trino's PostgreSQL connector quotes every name); DataFusion reads it as an unknown
/// custom type. Only an exact (case-sensitive, as quoting means) built-in name is replaced.
fn quoted_type_name(expr: &mut Expr) {
    let Expr::Cast { data_type, .. } = expr else {
        return;
    };
    let ast::DataType::Custom(name, modifiers) = data_type else {
        return;
    };
    let [part] = name.0.as_slice() else {
        return;
    };
    let Some(ident) = part.as_ident() else {
        return;
    };
    if ident.quote_style != Some('"') || !modifiers.is_empty() {
        return;
    }
    let unquoted = ident.value.as_str();
    if unquoted
        .chars()
        .any(|c| !c.is_ascii_lowercase() && !c.is_ascii_digit() && c != ' ')
    {
        return;
    }
    let parsed = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(unquoted)
        .and_then(|mut parser| parser.parse_data_type());
    if let Ok(builtin) = parsed
        && !matches!(builtin, ast::DataType::Custom(..))
    {
        *data_type = builtin;
    }
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
    fn functions_in_from_name_their_column_after_the_alias() {
        assert_eq!(
            rewritten("SELECT s[i] FROM generate_series(1, 2) AS i, string_to_array('a,b', ',') s"),
            "SELECT s[i] FROM generate_series(1, 2) AS i (i), \
             (SELECT string_to_array('a,b', ',') AS s) s"
        );
        let kept = "SELECT * FROM generate_series(1, 2) AS g(n), unnest(a) AS u";
        assert_eq!(
            rewritten(kept),
            "SELECT * FROM generate_series(1, 2) AS g (n), UNNEST(a) AS u"
        );
    }

    #[test]
    fn user_is_session_user_and_regproc_names_compare_as_names() {
        assert_eq!(rewritten("SELECT user"), "SELECT session_user");
        assert_eq!(
            rewritten("SELECT 1 FROM pg_type WHERE typinput = 'pg_catalog.array_in'::regproc"),
            "SELECT 1 FROM pg_type WHERE typinput = 'array_in'"
        );
        assert_eq!(
            rewritten(
                "SELECT 1 FROM pg_type WHERE typinput = \
                 (SELECT oid FROM pg_catalog.pg_proc WHERE proname = 'pg_catalog.array_in')"
            ),
            "SELECT 1 FROM pg_type WHERE typinput = 'array_in'"
        );
    }

    #[test]
    fn asyncpg_type_introspection_is_recognised_whole() {
        let asked = "WITH RECURSIVE typeinfo_tree(\n    oid, ns, name, kind, basetype, elemtype, \
                     elemdelim,\n    range_subtype, attrtypoids, attrnames, depth)\nAS (\n SELECT 1)";
        assert_eq!(known_statement(asked), Some(TYPE_INTROSPECTION));
        assert_eq!(
            known_statement("WITH RECURSIVE t(n) AS (SELECT 1) SELECT n FROM t"),
            None
        );
        Parser::parse_sql(&PostgreSqlDialect {}, TYPE_INTROSPECTION).expect("parses");
    }

    #[test]
    fn quoted_builtin_type_names_are_those_types() {
        assert_eq!(
            rewritten(r#"SELECT CAST($1 AS "text"), CAST(a AS "int8") FROM t"#),
            "SELECT CAST($1 AS TEXT), CAST(a AS INT8) FROM t"
        );
        let kept = r#"SELECT CAST(a AS "TEXT"), CAST(b AS "my_type") FROM t"#;
        assert_eq!(rewritten(kept), kept);
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
