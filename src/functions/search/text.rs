//! `fts(table, query [, 'option', value]...)`: full-text search over the table's INVERTED
//! indices, with `_score` (BM25), best first.
//!
//! `query` is text (a literal or a bind parameter). By default its terms are matched, any of
//! them (`operator` `or`), in every column that has an INVERTED index. Options, as trailing
//! name/value pairs:
//! - `columns`: the columns to search, `'title, body^2'` (a `^` gives a column's boost);
//! - `operator` (`or`, `and`), `fuzziness` (edits allowed per term, or `'auto'`),
//!   `max_expansions` (terms a fuzzy term may expand to), `prefix_length` (leading characters
//!   a fuzzy match keeps);
//! - `phrase` (the terms in order) and `slop` (words allowed between them; implies `phrase`);
//! - `must`, `should`, `must_not`: more text, matched like `query` on the same columns, that
//!   rows must match, raise the score of rows that match, or exclude rows;
//! - `json`: `query` is a query tree in Lance's JSON form (nested boolean and boosting queries),
//!   used as given;
//! - `prefilter` (a SQL condition applied before ranking) and `limit` (best rows kept).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::Expr;
use lance_index::scalar::inverted::query::{
    BooleanQuery, FtsQuery, FtsQueryNode, MatchQuery, MultiMatchQuery, Operator, PhraseQuery,
};

use crate::error::{Error, Result};
use crate::physical::search::{FullTextSpec, SCORE_COLUMN, SearchKind};
use crate::provider::table::LanceTable;

use super::arguments::{
    Argument, argument, boolean, describe, integer, option_pairs, positive_integer, string_value,
};
use super::prefilter;
use super::table::{SearchFunction, call};

/// The function's SQL name.
pub const NAME: &str = "fts";

const USAGE: &str = "fts(table, query [, 'option', value]...)";

/// The index kind full-text search needs.
pub const FULL_TEXT_INDEX: &str = "INVERTED";

/// Options that shape the query tree, which a JSON query already spells out.
const QUERY_OPTIONS: [&str; 11] = [
    "columns",
    "operator",
    "fuzziness",
    "max_expansions",
    "prefix_length",
    "phrase",
    "slop",
    "must",
    "should",
    "must_not",
    "boost",
];

/// The other options: how the query is read, and which rows are ranked and kept.
const RUN_OPTIONS: [&str; 3] = ["json", "prefilter", "limit"];

const QUERY: usize = 1;
/// Options follow `table, query`.
pub const OPTIONS_START: usize = QUERY + 1;

/// `fts` as a table function.
#[derive(Debug)]
pub struct FullTextSearch;

impl TableFunctionImpl for FullTextSearch {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        call(Arc::new(FullTextSearch), args)
    }
}

impl SearchFunction for FullTextSearch {
    fn name(&self) -> &'static str {
        NAME
    }

    fn usage(&self) -> &'static str {
        USAGE
    }

    fn arity(&self) -> (usize, Option<usize>) {
        (2, None)
    }

    fn schema(&self, table: &LanceTable, _arguments: &[Expr]) -> Result<SchemaRef> {
        let mut fields: Vec<_> = table.schema().fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(SCORE_COLUMN, DataType::Float32, true)));
        Ok(Arc::new(Schema::new(fields)))
    }

    fn resolve(
        &self,
        table: &LanceTable,
        arguments: &[Expr],
        session: &dyn Session,
    ) -> Result<Option<SearchKind>> {
        let known: Vec<&str> = QUERY_OPTIONS.iter().chain(&RUN_OPTIONS).copied().collect();
        let options = option_pairs(NAME, &arguments[OPTIONS_START..], &known)?;
        let full_text = full_text(NAME, table, &arguments[QUERY], &options, session)?;
        Ok(full_text.map(|full_text| SearchKind::FullText(Box::new(full_text))))
    }

    fn parameter_type(
        &self,
        _table: &LanceTable,
        _arguments: &[Expr],
        position: usize,
    ) -> Option<DataType> {
        (position == QUERY).then_some(DataType::Utf8)
    }
}

/// The columns of `table` with a full-text index.
fn full_text_columns(table: &LanceTable) -> Vec<String> {
    let mut columns: Vec<String> = table
        .indices()
        .iter()
        .filter(|index| index.kind == FULL_TEXT_INDEX)
        .filter_map(|index| index.columns.first().cloned())
        .collect();
    columns.sort();
    columns.dedup();
    columns
}

/// The `columns` option: `name[^boost]`, comma separated, each with a full-text index.
fn weighted_columns(
    function: &str,
    table: &LanceTable,
    indexed: &[String],
    value: &ScalarValue,
) -> Result<Vec<(String, f32)>> {
    let text = string_value(function, "columns", value)?;
    let mut columns = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (column, boost) = match part.split_once('^') {
            Some((column, boost)) => {
                let boost = boost
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|boost| boost.is_finite() && *boost > 0.0)
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "{function}: option 'columns': the boost of '{part}' is not a number \
                             above 0"
                        ))
                    })?;
                (column.trim(), boost)
            }
            None => (part, 1.0),
        };
        if column.is_empty() {
            return Err(Error::invalid(format!(
                "{function}: option 'columns' names no column in '{text}'"
            )));
        }
        check_indexed(function, table, indexed, column)?;
        columns.push((column.to_string(), boost));
    }
    Ok(columns)
}

fn check_indexed(
    function: &str,
    table: &LanceTable,
    indexed: &[String],
    column: &str,
) -> Result<()> {
    if table.column_type(column).is_none() {
        return Err(Error::ColumnNotFound {
            table: table.name().to_string(),
            column: column.to_string(),
        });
    }
    if !indexed.iter().any(|name| name == column) {
        return Err(Error::invalid(format!(
            "{function}: column '{column}' of '{}' has no full-text index; indexed columns: {}",
            table.name(),
            indexed.join(", ")
        )));
    }
    Ok(())
}

/// A whole number, zero or more.
fn count(function: &str, name: &str, value: &ScalarValue) -> Result<u32> {
    integer(value)
        .and_then(|number| u32::try_from(number).ok())
        .ok_or_else(|| {
            Error::invalid(format!(
                "{function}: option '{name}' must be a whole number, 0 or more, got {}",
                describe(value)
            ))
        })
}

/// `fuzziness`: edits per term, or `'auto'` (by term length, as Lance decides).
fn fuzziness(function: &str, value: &ScalarValue) -> Result<Option<u32>> {
    if let Ok(text) = string_value(function, "fuzziness", value) {
        return if text.eq_ignore_ascii_case("auto") {
            Ok(None)
        } else {
            Err(Error::invalid(format!(
                "{function}: option 'fuzziness' is a number of edits or 'auto', got '{text}'"
            )))
        };
    }
    count(function, "fuzziness", value).map(Some)
}

/// A query in Lance's JSON form, checked to search only indexed columns.
fn json_query(
    function: &str,
    table: &LanceTable,
    indexed: &[String],
    text: &str,
) -> Result<FtsQuery> {
    let query = lance_index::scalar::inverted::parser::from_json(text).map_err(|error| {
        Error::invalid(format!(
            "{function}: argument 'query' is not a JSON full-text query: {error}"
        ))
    })?;
    for column in query.columns() {
        check_indexed(function, table, indexed, &column)?;
    }
    if query.is_missing_column() {
        return Err(Error::invalid(format!(
            "{function}: every clause of a JSON query names its column"
        )));
    }
    Ok(query)
}

/// How the query text becomes a query tree.
struct QueryShape {
    columns: Vec<(String, f32)>,
    operator: Operator,
    fuzziness: Option<u32>,
    max_expansions: usize,
    prefix_length: u32,
    phrase: bool,
    slop: u32,
    boost: f32,
    must: Vec<String>,
    should: Vec<String>,
    must_not: Vec<String>,
}

impl QueryShape {
    fn new(indexed: Vec<String>) -> Self {
        let defaults = MatchQuery::new(String::new());
        QueryShape {
            columns: indexed.into_iter().map(|column| (column, 1.0)).collect(),
            operator: Operator::Or,
            fuzziness: defaults.fuzziness,
            max_expansions: defaults.max_expansions,
            prefix_length: defaults.prefix_length,
            phrase: false,
            slop: 0,
            boost: 1.0,
            must: Vec::new(),
            should: Vec::new(),
            must_not: Vec::new(),
        }
    }

    /// The tree for `text`: one clause on every column, combined with the boolean options.
    fn query(&self, text: &str) -> FtsQuery {
        let main = self.clause(text);
        if self.must.is_empty() && self.should.is_empty() && self.must_not.is_empty() {
            return main;
        }
        let clauses = |texts: &[String]| texts.iter().map(|text| self.clause(text)).collect();
        let mut must: Vec<FtsQuery> = vec![main];
        must.extend(clauses(&self.must));
        FtsQuery::Boolean(BooleanQuery {
            must,
            should: clauses(&self.should),
            must_not: clauses(&self.must_not),
        })
    }

    /// `text` matched (or as a phrase) in each column.
    fn clause(&self, text: &str) -> FtsQuery {
        if self.phrase {
            let mut phrases: Vec<FtsQuery> = self
                .columns
                .iter()
                .map(|(column, _)| {
                    FtsQuery::Phrase(
                        PhraseQuery::new(text.to_string())
                            .with_column(Some(column.clone()))
                            .with_slop(self.slop),
                    )
                })
                .collect();
            return if phrases.len() == 1 {
                phrases.remove(0)
            } else {
                FtsQuery::Boolean(BooleanQuery {
                    should: phrases,
                    must: Vec::new(),
                    must_not: Vec::new(),
                })
            };
        }
        let mut matches: Vec<MatchQuery> = self
            .columns
            .iter()
            .map(|(column, boost)| {
                let mut query = self.match_leaf(text, column);
                query.boost = self.boost * boost;
                query
            })
            .collect();
        if matches.len() == 1 {
            FtsQuery::Match(matches.remove(0))
        } else {
            FtsQuery::MultiMatch(MultiMatchQuery {
                match_queries: matches,
            })
        }
    }

    fn match_leaf(&self, text: &str, column: &str) -> MatchQuery {
        MatchQuery::new(text.to_string())
            .with_column(Some(column.to_string()))
            .with_operator(self.operator)
            .with_fuzziness(self.fuzziness)
            .with_max_expansions(self.max_expansions)
            .with_prefix_length(self.prefix_length)
    }
}

/// The full-text search `function` describes with its text `query` and `options` (full-text
/// options only), or `None` while the query is unbound.
pub(super) fn full_text(
    function: &str,
    table: &LanceTable,
    query: &Expr,
    options: &[(String, &ScalarValue)],
    session: &dyn Session,
) -> Result<Option<FullTextSpec>> {
    let text = match argument(function, "query", query)? {
        Argument::Value(value) => Some(string_value(function, "query", value)?),
        Argument::Parameter(_) | Argument::Subquery(_) => None,
    };
    let indexed = full_text_columns(table);
    if indexed.is_empty() {
        return Err(Error::invalid(format!(
            "{function}: '{}' has no full-text index (create one with CREATE INDEX ON {} USING \
                 INVERTED (column))",
            table.name(),
            table.name()
        )));
    }
    let mut shape = QueryShape::new(indexed.clone());
    let mut spec = FullTextSpec {
        query: FtsQuery::Match(MatchQuery::new(String::new())),
        limit: None,
        prefilter: None,
    };
    let json = match options.iter().find(|(name, _)| name == "json") {
        Some((_, value)) => boolean(function, "json", value)?,
        None => false,
    };
    for (name, value) in options {
        let (name, value) = (name.as_str(), *value);
        if json && QUERY_OPTIONS.contains(&name) {
            return Err(Error::invalid(format!(
                "{function}: option '{name}' does not apply to a JSON query, which spells out \
                     its own columns and clauses"
            )));
        }
        match name {
            "columns" => {
                shape.columns = weighted_columns(function, table, &indexed, value)?;
            }
            "operator" => {
                let text = string_value(function, name, value)?;
                shape.operator = Operator::try_from(text.as_str()).map_err(|_| {
                    Error::invalid(format!(
                        "{function}: option 'operator' is 'and' or 'or', got '{text}'"
                    ))
                })?;
            }
            "fuzziness" => shape.fuzziness = fuzziness(function, value)?,
            "max_expansions" => shape.max_expansions = positive_integer(function, name, value)?,
            "prefix_length" => shape.prefix_length = count(function, name, value)?,
            "phrase" => shape.phrase |= boolean(function, name, value)?,
            "slop" => {
                shape.slop = count(function, name, value)?;
                shape.phrase = true;
            }
            "must" => shape.must.push(string_value(function, name, value)?),
            "should" => shape.should.push(string_value(function, name, value)?),
            "must_not" => shape.must_not.push(string_value(function, name, value)?),
            "boost" => {
                let boost = super::arguments::number(function, name, value)?;
                if boost <= 0.0 {
                    return Err(Error::invalid(format!(
                        "{function}: option 'boost' must be above 0, got {boost}"
                    )));
                }
                shape.boost = boost as f32;
            }
            "json" => {}
            "prefilter" => {
                let condition = string_value(function, name, value)?;
                spec.prefilter = Some(prefilter(function, table, &condition, session)?);
            }
            "limit" => spec.limit = Some(positive_integer(function, name, value)?),
            _ => {
                return Err(Error::Internal {
                    message: format!("{function}: option '{name}' is listed but not handled"),
                });
            }
        }
    }
    if shape.phrase && shape.columns.iter().any(|(_, boost)| *boost != 1.0) {
        return Err(Error::invalid(format!(
            "{function}: column boosts apply to matched terms, not to phrases"
        )));
    }
    let Some(text) = text else {
        return Ok(None);
    };
    if text.trim().is_empty() {
        return Err(Error::invalid(format!(
            "{function}: argument 'query' is empty"
        )));
    }
    spec.query = if json {
        json_query(function, table, &indexed, &text)?
    } else {
        shape.query(&text)
    };
    Ok(Some(spec))
}
