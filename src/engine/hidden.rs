//! Keeps `_rowid` and `_rowaddr` out of `SELECT *` while leaving them selectable by name.
//!
//! DataFusion has no notion of hidden columns: a wildcard expands to every field of a table's
//! schema. Lance tables carry their row-identity columns in the schema (so `SELECT _rowid` and
//! `WHERE _rowid IN (...)` resolve), and this rewrite runs on the parsed statement, before
//! planning, turning each wildcard that covers a Lance table into one that excludes them:
//!
//! - `SELECT * FROM t` and `SELECT t.* FROM t` gain `EXCLUDE (_rowid, _rowaddr)`;
//! - `SELECT * FROM a JOIN b ON ...` becomes `SELECT a.* EXCLUDE (...), b.* EXCLUDE (...)`.
//!
//! A relation is a Lance table when it names a table (not a CTE, subquery or table function) in
//! the engine's catalog and schema, or calls a search function (`vector_search`, `take`), whose
//! results carry the identity columns too. Joins with `USING` or `NATURAL` merge columns in `*`, which
//! qualified wildcards cannot express; they are left as written (the identity columns show).

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    ExcludeSelectItem, Ident, JoinConstraint, JoinOperator, ObjectName, Query, Select, SelectItem,
    SelectItemQualifiedWildcardKind, SetExpr, Statement, TableFactor, TableWithJoins, VisitMut,
    VisitorMut, WildcardAdditionalOptions,
};

use crate::catalog::{CATALOG_NAME, SCHEMA_NAME};
use crate::physical::scan::ROW_IDENTITY_COLUMNS;

/// Rewrites every wildcard over a Lance table in `statement` to exclude the identity columns.
pub fn hide_row_identity_columns(statement: &mut Statement) {
    let mut cte_names = HashSet::new();
    collect_cte_names(statement, &mut cte_names);
    let mut rewriter = WildcardRewriter { cte_names };
    // The visitor never breaks.
    let _ = statement.visit(&mut rewriter);
}

fn collect_cte_names(statement: &mut Statement, names: &mut HashSet<String>) {
    struct Collector<'a>(&'a mut HashSet<String>);
    impl VisitorMut for Collector<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            if let Some(with) = &query.with {
                for cte in &with.cte_tables {
                    self.0.insert(normalize(&cte.alias.name));
                }
            }
            ControlFlow::Continue(())
        }
    }
    let _ = statement.visit(&mut Collector(names));
}

struct WildcardRewriter {
    cte_names: HashSet<String>,
}

impl VisitorMut for WildcardRewriter {
    type Break = ();

    fn post_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.rewrite_set_expr(&mut query.body);
        ControlFlow::Continue(())
    }
}

/// A relation in a FROM clause: the name it is referred to by, and whether it is a Lance table.
struct Relation {
    reference: Option<ObjectName>,
    is_lance: bool,
}

impl WildcardRewriter {
    fn rewrite_set_expr(&self, body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => self.rewrite_select(select),
            SetExpr::SetOperation { left, right, .. } => {
                self.rewrite_set_expr(left);
                self.rewrite_set_expr(right);
            }
            // Nested queries are visited on their own; other bodies have no wildcard over a table.
            _ => {}
        }
    }

    fn rewrite_select(&self, select: &mut Select) {
        let relations: Vec<Relation> = select.from.iter().flat_map(|t| self.relations(t)).collect();
        if !relations.iter().any(|relation| relation.is_lance) {
            return;
        }
        let merges_columns = select.from.iter().any(has_using_or_natural);
        let mut projection = Vec::with_capacity(select.projection.len());
        for item in select.projection.drain(..) {
            match item {
                SelectItem::Wildcard(options) if relations.len() == 1 => {
                    projection.push(SelectItem::Wildcard(exclude_identity(options)));
                }
                SelectItem::Wildcard(options)
                    if !merges_columns && relations.iter().all(|r| r.reference.is_some()) =>
                {
                    for relation in &relations {
                        let Some(reference) = &relation.reference else {
                            continue;
                        };
                        let mut relation_options = options.clone();
                        if relation.is_lance {
                            relation_options = exclude_identity(relation_options);
                        }
                        projection.push(SelectItem::QualifiedWildcard(
                            SelectItemQualifiedWildcardKind::ObjectName(reference.clone()),
                            relation_options,
                        ));
                    }
                }
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(name),
                    options,
                ) => {
                    let is_lance = relations.iter().any(|relation| {
                        relation.is_lance
                            && relation
                                .reference
                                .as_ref()
                                .is_some_and(|r| same_name(r, &name))
                    });
                    let options = if is_lance {
                        exclude_identity(options)
                    } else {
                        options
                    };
                    projection.push(SelectItem::QualifiedWildcard(
                        SelectItemQualifiedWildcardKind::ObjectName(name),
                        options,
                    ));
                }
                other => projection.push(other),
            }
        }
        select.projection = projection;
    }

    fn relations(&self, table: &TableWithJoins) -> Vec<Relation> {
        std::iter::once(&table.relation)
            .chain(table.joins.iter().map(|join| &join.relation))
            .map(|factor| self.relation(factor))
            .collect()
    }

    fn relation(&self, factor: &TableFactor) -> Relation {
        match factor {
            TableFactor::Table {
                name, alias, args, ..
            } => {
                // A search function's result carries the identity columns as a table does.
                let is_lance = match args {
                    None => self.names_lance_table(name),
                    Some(_) => names_search_function(name),
                };
                let reference = match alias {
                    Some(alias) => Some(ObjectName::from(vec![alias.name.clone()])),
                    None => Some(name.clone()),
                };
                Relation {
                    reference,
                    is_lance,
                }
            }
            TableFactor::Derived { alias, .. }
            | TableFactor::TableFunction { alias, .. }
            | TableFactor::Function { alias, .. }
            | TableFactor::UNNEST { alias, .. } => Relation {
                reference: alias
                    .as_ref()
                    .map(|alias| ObjectName::from(vec![alias.name.clone()])),
                is_lance: false,
            },
            _ => Relation {
                reference: None,
                is_lance: false,
            },
        }
    }

    fn names_lance_table(&self, name: &ObjectName) -> bool {
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|part| part.as_ident().map(normalize))
            .collect();
        if parts.len() != name.0.len() {
            return false;
        }
        match parts.as_slice() {
            [table] => !self.cte_names.contains(table),
            [schema, _] => schema == SCHEMA_NAME,
            [catalog, schema, _] => catalog == CATALOG_NAME && schema == SCHEMA_NAME,
            _ => false,
        }
    }
}

fn names_search_function(name: &ObjectName) -> bool {
    match name.0.as_slice() {
        [function] => function
            .as_ident()
            .is_some_and(|ident| crate::functions::search::is_search_function(&normalize(ident))),
        _ => false,
    }
}

fn exclude_identity(mut options: WildcardAdditionalOptions) -> WildcardAdditionalOptions {
    let mut excluded: Vec<ObjectName> = match options.opt_exclude.take() {
        Some(ExcludeSelectItem::Single(name)) => vec![name],
        Some(ExcludeSelectItem::Multiple(names)) => names,
        None => Vec::new(),
    };
    for column in ROW_IDENTITY_COLUMNS {
        let already = excluded.iter().any(|name| {
            name.0.len() == 1 && name.0[0].as_ident().is_some_and(|i| normalize(i) == column)
        });
        if !already {
            excluded.push(ObjectName::from(vec![Ident::new(column)]));
        }
    }
    options.opt_exclude = Some(ExcludeSelectItem::Multiple(excluded));
    options
}

fn has_using_or_natural(table: &TableWithJoins) -> bool {
    table.joins.iter().any(|join| {
        let constraint = match &join.join_operator {
            JoinOperator::Join(c)
            | JoinOperator::Inner(c)
            | JoinOperator::Left(c)
            | JoinOperator::LeftOuter(c)
            | JoinOperator::Right(c)
            | JoinOperator::RightOuter(c)
            | JoinOperator::FullOuter(c)
            | JoinOperator::CrossJoin(c)
            | JoinOperator::Semi(c)
            | JoinOperator::LeftSemi(c)
            | JoinOperator::RightSemi(c)
            | JoinOperator::Anti(c)
            | JoinOperator::LeftAnti(c)
            | JoinOperator::RightAnti(c)
            | JoinOperator::StraightJoin(c) => Some(c),
            _ => None,
        };
        matches!(
            constraint,
            Some(JoinConstraint::Using(_) | JoinConstraint::Natural)
        )
    })
}

fn same_name(a: &ObjectName, b: &ObjectName) -> bool {
    let last = |name: &ObjectName| name.0.last().and_then(|p| p.as_ident()).map(normalize);
    a.0.len() == b.0.len() && last(a) == last(b)
}

/// Unquoted identifiers fold to lower case, as DataFusion resolves them.
fn normalize(ident: &Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewrite(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        let mut statement = statements.remove(0);
        hide_row_identity_columns(&mut statement);
        statement.to_string()
    }

    #[test]
    fn single_table_wildcards_exclude_identity_columns() {
        assert_eq!(
            rewrite("SELECT * FROM t"),
            "SELECT * EXCLUDE (_rowid, _rowaddr) FROM t"
        );
        assert_eq!(
            rewrite("SELECT x.* FROM public.t AS x"),
            "SELECT x.* EXCLUDE (_rowid, _rowaddr) FROM public.t AS x"
        );
    }

    #[test]
    fn joins_expand_to_qualified_wildcards() {
        assert_eq!(
            rewrite("SELECT * FROM a JOIN b ON a.id = b.id"),
            "SELECT a.* EXCLUDE (_rowid, _rowaddr), b.* EXCLUDE (_rowid, _rowaddr) FROM a JOIN b ON a.id = b.id"
        );
        assert_eq!(
            rewrite("SELECT * FROM a JOIN b USING (id)"),
            "SELECT * FROM a JOIN b USING(id)"
        );
    }

    #[test]
    fn non_tables_are_left_alone() {
        assert_eq!(
            rewrite("WITH t AS (SELECT 1 AS a) SELECT * FROM t"),
            "WITH t AS (SELECT 1 AS a) SELECT * FROM t"
        );
        assert_eq!(
            rewrite("SELECT * FROM information_schema.tables"),
            "SELECT * FROM information_schema.tables"
        );
        assert_eq!(
            rewrite("SELECT * FROM (SELECT * FROM t) AS s"),
            "SELECT * FROM (SELECT * EXCLUDE (_rowid, _rowaddr) FROM t) AS s"
        );
        assert_eq!(
            rewrite("SELECT _rowid, name FROM t"),
            "SELECT _rowid, name FROM t"
        );
    }
}
