//! Turning SQL text into statements, in bounded time and stack.
//!
//! Contract: [`parse_statements`] either returns the statements of a SQL text or fails with a
//! clear error; it never runs for long and never admits a statement whose expressions are deeper
//! than [`MAX_EXPRESSION_DEPTH`], the depth the engine's threads are sized for (see
//! [`crate::runtime`]). Three defences, each against a measured failure:
//! - [`LanceSqlDialect`]: PostgreSQL's dialect without the named-argument speculation that makes
//!   sqlparser 0.62 parse nested calls in time doubling per level (30 nested `abs()` took over 13
//!   minutes), and with table versions (`VERSION AS OF`, `TIMESTAMP AS OF`) turned on.
//! - the parser's recursion limit ([`MAX_NESTING`]) bounds parentheses, calls and subqueries;
//! - [`expression_depth_bound`] bounds what the parser builds without recursing: long operator
//!   chains (`a OR b OR ...`, `1 + 1 + ...`) become trees as deep as the chain is long, and
//!   planning them recurses once per level.
//!
//! Both limits report SQLSTATE 54001 ("statement too complex"), as Postgres does.

use std::any::TypeId;

use datafusion::error::DataFusionError;
use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::sqlparser::dialect::{Dialect, PostgreSqlDialect, Precedence};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{Error, Result};

/// Deepest nesting of parentheses, calls and subqueries the parser accepts.
pub const MAX_NESTING: usize = 64;

/// Largest [`expression_depth_bound`] a statement may have.
pub const MAX_EXPRESSION_DEPTH: usize = 500;

/// Splits `sql` into statements (semicolons inside strings and comments are respected), refusing
/// statements too complex to plan safely.
pub fn parse_statements(sql: &str) -> Result<Vec<Statement>> {
    let depth = expression_depth_bound(sql)?;
    if depth > MAX_EXPRESSION_DEPTH {
        return Err(Error::TooComplex {
            what: format!(
                "an expression chains about {depth} operators; at most {MAX_EXPRESSION_DEPTH} \
                 are allowed (use IN (...) for long lists of alternatives)"
            ),
        });
    }
    let dialect = LanceSqlDialect;
    let mut parser = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .with_recursion_limit(MAX_NESTING)
        .build()?;
    let mut statements = Vec::new();
    let mut expecting_delimiter = false;
    loop {
        while parser.parser.consume_token(&Token::SemiColon) {
            expecting_delimiter = false;
        }
        let next = parser.parser.peek_token();
        if next.token == Token::EOF {
            break;
        }
        if expecting_delimiter {
            return Err(Error::Syntax {
                message: format!("Expected: end of statement, found: {next}"),
            });
        }
        // Postgres' COPY (`COPY t TO STDOUT`, options in parentheses) is sqlparser's, not
        // DataFusion's (which copies to files).
        let history = if is_keyword(&next.token, Keyword::ALTER)
            || is_keyword(&next.token, Keyword::VACUUM)
            || super::history::is_restore(&next.token)
        {
            parser
                .parser
                .maybe_parse(super::history::parse_statement)
                .map_err(|error| DataFusionError::SQL(Box::new(error), None))?
        } else {
            None
        };
        let statement = if let Some(call) = history {
            Statement::Statement(Box::new(call))
        } else if is_keyword(&next.token, Keyword::COPY) {
            let copy = parser
                .parser
                .parse_statement()
                .map_err(|error| DataFusionError::SQL(Box::new(error), None))?;
            Statement::Statement(Box::new(copy))
        } else {
            parser.parse_statement()?
        };
        statements.push(statement);
        expecting_delimiter = true;
    }
    Ok(statements)
}

fn is_keyword(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(word) if word.keyword == keyword)
}

/// An upper bound on the depth of every expression tree in `sql`, computed from its tokens
/// without recursion: within one bracket level, every operator between two separators (a comma,
/// a semicolon or a clause keyword) may add a level, and every bracket adds one.
pub fn expression_depth_bound(sql: &str) -> Result<usize> {
    let dialect = LanceSqlDialect;
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize()
        .map_err(|error| Error::Syntax {
            message: error.to_string(),
        })?;
    let mut levels = vec![Level::default()];
    for token in &tokens {
        match token {
            Token::LParen | Token::LBracket | Token::LBrace => levels.push(Level::default()),
            Token::RParen | Token::RBracket | Token::RBrace => {
                // An unbalanced closing bracket is the parser's to report.
                if levels.len() > 1
                    && let Some(inner) = levels.pop()
                    && let Some(outer) = levels.last_mut()
                {
                    outer.child_depth = outer.child_depth.max(inner.finish() + 1);
                }
            }
            Token::Comma | Token::SemiColon => current(&mut levels).end_segment(),
            Token::Word(word) if SEPARATING_KEYWORDS.contains(&word.keyword) => {
                current(&mut levels).end_segment()
            }
            Token::Word(word) if OPERATOR_KEYWORDS.contains(&word.keyword) => {
                current(&mut levels).operators += 1
            }
            token if is_operand_or_space(token) => {}
            _ => current(&mut levels).operators += 1,
        }
    }
    Ok(levels.into_iter().map(Level::finish).max().unwrap_or(0))
}

fn current(levels: &mut [Level]) -> &mut Level {
    // `levels` always holds the outermost level: it is never popped.
    let last = levels.len() - 1;
    &mut levels[last]
}

/// What is known about one bracket level while scanning it.
#[derive(Default)]
struct Level {
    /// Operators in the current segment.
    operators: usize,
    /// Deepest bracketed group in the current segment.
    child_depth: usize,
    /// Deepest finished segment.
    deepest: usize,
}

impl Level {
    fn end_segment(&mut self) {
        self.deepest = self.deepest.max(self.operators + self.child_depth);
        self.operators = 0;
        self.child_depth = 0;
    }

    fn finish(mut self) -> usize {
        self.end_segment();
        self.deepest
    }
}

/// Keywords that end one expression and start another at the same level.
const SEPARATING_KEYWORDS: &[Keyword] = &[
    Keyword::SELECT,
    Keyword::FROM,
    Keyword::WHERE,
    Keyword::GROUP,
    Keyword::HAVING,
    Keyword::ORDER,
    Keyword::LIMIT,
    Keyword::OFFSET,
    Keyword::ON,
    Keyword::USING,
    Keyword::JOIN,
    Keyword::WHEN,
    Keyword::THEN,
    Keyword::ELSE,
    Keyword::END,
    Keyword::VALUES,
    Keyword::SET,
    Keyword::UNION,
    Keyword::EXCEPT,
    Keyword::INTERSECT,
    Keyword::RETURNING,
    Keyword::WINDOW,
];

/// Keywords that are operators: each may add a level to the expression it stands in.
const OPERATOR_KEYWORDS: &[Keyword] = &[
    Keyword::AND,
    Keyword::OR,
    Keyword::XOR,
    Keyword::NOT,
    Keyword::IS,
    Keyword::LIKE,
    Keyword::ILIKE,
    Keyword::SIMILAR,
    Keyword::BETWEEN,
    Keyword::IN,
    Keyword::AT,
    Keyword::COLLATE,
    Keyword::OVERLAPS,
    Keyword::DIV,
];

/// Tokens that never add depth: names, literals, placeholders, white space, `.`.
fn is_operand_or_space(token: &Token) -> bool {
    matches!(
        token,
        Token::EOF
            | Token::Word(_)
            | Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::TripleSingleQuotedString(_)
            | Token::TripleDoubleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::TripleSingleQuotedByteStringLiteral(_)
            | Token::TripleDoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedRawStringLiteral(_)
            | Token::DoubleQuotedRawStringLiteral(_)
            | Token::TripleSingleQuotedRawStringLiteral(_)
            | Token::TripleDoubleQuotedRawStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::QuoteDelimitedStringLiteral(_)
            | Token::NationalQuoteDelimitedStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::Whitespace(_)
            | Token::Placeholder(_)
            | Token::Period
    )
}

/// lancesql's SQL dialect: PostgreSQL's, with two capabilities changed (see the module docs).
/// It reports PostgreSQL's type id, so every "is this PostgreSQL?" check in the parser holds.
#[derive(Debug, Default, Clone, Copy)]
pub struct LanceSqlDialect;

const POSTGRES: PostgreSqlDialect = PostgreSqlDialect {};

impl Dialect for LanceSqlDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<PostgreSqlDialect>()
    }

    fn supports_named_fn_args_with_expr_name(&self) -> bool {
        false
    }

    fn supports_table_versioning(&self) -> bool {
        true
    }

    fn supports_optimize_table(&self) -> bool {
        true
    }

    // Everything below is PostgreSQL's own answer.
    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        POSTGRES.identifier_quote_style(identifier)
    }
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        POSTGRES.is_delimited_identifier_start(ch)
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        POSTGRES.is_identifier_start(ch)
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        POSTGRES.is_identifier_part(ch)
    }
    fn supports_unicode_string_literal(&self) -> bool {
        POSTGRES.supports_unicode_string_literal()
    }
    fn is_reserved_for_identifier(&self, keyword: Keyword) -> bool {
        POSTGRES.is_reserved_for_identifier(keyword)
    }
    fn is_custom_operator_part(&self, ch: char) -> bool {
        POSTGRES.is_custom_operator_part(ch)
    }
    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        POSTGRES.get_next_precedence(parser)
    }
    fn supports_filter_during_aggregation(&self) -> bool {
        POSTGRES.supports_filter_during_aggregation()
    }
    fn supports_group_by_expr(&self) -> bool {
        POSTGRES.supports_group_by_expr()
    }
    fn prec_value(&self, precedence: Precedence) -> u8 {
        POSTGRES.prec_value(precedence)
    }
    fn allow_extract_custom(&self) -> bool {
        POSTGRES.allow_extract_custom()
    }
    fn allow_extract_single_quotes(&self) -> bool {
        POSTGRES.allow_extract_single_quotes()
    }
    fn supports_create_index_with_clause(&self) -> bool {
        POSTGRES.supports_create_index_with_clause()
    }
    fn supports_explain_with_utility_options(&self) -> bool {
        POSTGRES.supports_explain_with_utility_options()
    }
    fn supports_listen_notify(&self) -> bool {
        POSTGRES.supports_listen_notify()
    }
    fn supports_factorial_operator(&self) -> bool {
        POSTGRES.supports_factorial_operator()
    }
    fn supports_bitwise_shift_operators(&self) -> bool {
        POSTGRES.supports_bitwise_shift_operators()
    }
    fn supports_comment_on(&self) -> bool {
        POSTGRES.supports_comment_on()
    }
    fn supports_load_extension(&self) -> bool {
        POSTGRES.supports_load_extension()
    }
    fn supports_named_fn_args_with_colon_operator(&self) -> bool {
        POSTGRES.supports_named_fn_args_with_colon_operator()
    }
    fn supports_empty_projections(&self) -> bool {
        POSTGRES.supports_empty_projections()
    }
    fn supports_nested_comments(&self) -> bool {
        POSTGRES.supports_nested_comments()
    }
    fn supports_string_escape_constant(&self) -> bool {
        POSTGRES.supports_string_escape_constant()
    }
    fn supports_numeric_literal_underscores(&self) -> bool {
        POSTGRES.supports_numeric_literal_underscores()
    }
    fn supports_array_typedef_with_brackets(&self) -> bool {
        POSTGRES.supports_array_typedef_with_brackets()
    }
    fn supports_geometric_types(&self) -> bool {
        POSTGRES.supports_geometric_types()
    }
    fn supports_set_names(&self) -> bool {
        POSTGRES.supports_set_names()
    }
    fn supports_alter_column_type_using(&self) -> bool {
        POSTGRES.supports_alter_column_type_using()
    }
    fn supports_notnull_operator(&self) -> bool {
        POSTGRES.supports_notnull_operator()
    }
    fn supports_interval_options(&self) -> bool {
        POSTGRES.supports_interval_options()
    }
    fn supports_insert_table_alias(&self) -> bool {
        POSTGRES.supports_insert_table_alias()
    }
    fn supports_create_table_like_parenthesized(&self) -> bool {
        POSTGRES.supports_create_table_like_parenthesized()
    }
    fn supports_select_wildcard_with_alias(&self) -> bool {
        POSTGRES.supports_select_wildcard_with_alias()
    }
    fn supports_comma_separated_trim(&self) -> bool {
        POSTGRES.supports_comma_separated_trim()
    }
    fn supports_xml_expressions(&self) -> bool {
        POSTGRES.supports_xml_expressions()
    }
    fn supports_comment_optimizer_hint(&self) -> bool {
        POSTGRES.supports_comment_optimizer_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(operator: &str, terms: usize) -> String {
        let body = vec!["1"; terms].join(operator);
        format!("SELECT {body}")
    }

    #[test]
    fn depth_bound_counts_chains_not_lists() {
        assert_eq!(expression_depth_bound("SELECT 1").unwrap(), 0);
        assert_eq!(expression_depth_bound("SELECT 1 + 2 * 3").unwrap(), 2);
        // A list of any length is flat.
        let list = format!(
            "SELECT * FROM t WHERE x IN ({})",
            vec!["1"; 10_000].join(",")
        );
        assert_eq!(expression_depth_bound(&list).unwrap(), 2);
        // Each select item is its own expression.
        let items = vec!["a + b"; 3_000].join(", ");
        assert_eq!(
            expression_depth_bound(&format!("SELECT {items} FROM t")).unwrap(),
            1
        );
        // Brackets add a level (a nested expression) to what they hold.
        assert_eq!(expression_depth_bound("SELECT ((1 + 1) + 1)").unwrap(), 4);
        assert_eq!(
            expression_depth_bound(&chain(" OR ", 7_000)).unwrap(),
            6_999
        );
    }

    /// Parsed statements at the depth limit need the engine's stack (dropping one recurses).
    fn on_statement_stack<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::Builder::new()
            .stack_size(crate::runtime::STATEMENT_STACK_BYTES)
            .spawn(work)
            .and_then(|thread| thread.join().map_err(|_| std::io::Error::other("panicked")))
            .unwrap()
    }

    #[test]
    fn long_chains_are_too_complex() {
        on_statement_stack(|| {
            let error = parse_statements(&chain(" + ", MAX_EXPRESSION_DEPTH + 2)).unwrap_err();
            assert_eq!(error.sqlstate(), "54001", "{error}");
            assert!(parse_statements(&chain(" + ", MAX_EXPRESSION_DEPTH + 1)).is_ok());
        });
    }

    #[test]
    fn deep_nesting_is_too_complex() {
        let nested =
            |levels: usize| format!("SELECT {}1{}", "abs(".repeat(levels), ")".repeat(levels));
        // Before the dialect fix, 30 levels took over 13 minutes to parse.
        assert!(parse_statements(&nested(30)).is_ok());
        let error = parse_statements(&nested(200)).unwrap_err();
        assert_eq!(error.sqlstate(), "54001", "{error}");
    }

    #[test]
    fn table_versions_parse() {
        let statements = parse_statements("SELECT * FROM t VERSION AS OF 3").unwrap();
        assert_eq!(statements.len(), 1);
    }
}
