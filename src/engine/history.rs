//! Statements about a table's versions: tags and restore.
//!
//! Each is a procedure call, `CALL name(arguments)`, which sqlparser parses natively:
//! - `CALL create_tag('t', 'nightly' [, at])` tags a version (the latest without `at`);
//! - `CALL drop_tag('t', 'nightly')`;
//! - `CALL restore('t', at)` commits table `t` as of `at` as its newest version;
//!
//! where `at` is a version number, a tag name (a string) or `TIMESTAMP '...'`. The statements
//! users know from other engines are read as the same calls ([`parse_statement`]):
//! `ALTER TABLE t CREATE TAG nightly [AS OF VERSION 3 | AS OF TIMESTAMP '...']`,
//! `ALTER TABLE t DROP TAG [IF EXISTS] nightly`,
//! `RESTORE [TABLE] t [TO] VERSION AS OF 3 | TIMESTAMP AS OF '...' | TAG 'nightly'` and
//! `VACUUM [TABLE] t [RETAIN n HOURS | DAYS]` (`CALL vacuum('t' [, INTERVAL '7 days'])`, which
//! reports what it removed; old versions are kept 7 days unless told otherwise).
//! Tags and versions are listed by `system.tags` and `system.versions`.

use datafusion::sql::sqlparser::ast::{
    self, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments,
    Ident, ObjectName, ObjectNamePart, Value,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::{Error, Result};
use crate::storage::history::AsOf;

const CREATE_TAG: &str = "create_tag";
const DROP_TAG: &str = "drop_tag";
const DROP_TAG_IF_EXISTS: &str = "drop_tag_if_exists";
const RESTORE: &str = "restore";
const VACUUM: &str = "vacuum";

/// How long `VACUUM` keeps old versions unless told otherwise (Delta Lake's default).
const DEFAULT_RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// A history statement, ready to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryCommand {
    CreateTag {
        table: String,
        tag: String,
        at: Option<AsOf>,
    },
    DropTag {
        table: String,
        tag: String,
        if_exists: bool,
    },
    Restore {
        table: String,
        at: AsOf,
    },
    /// Removes versions older than `retain` (and files only they use), reporting what it did.
    Vacuum {
        table: String,
        retain: std::time::Duration,
    },
}

impl HistoryCommand {
    /// The command a `CALL` statement makes, if it calls one of ours.
    pub(super) fn from_statement(statement: &ast::Statement) -> Result<Option<HistoryCommand>> {
        let ast::Statement::Call(function) = statement else {
            return Ok(None);
        };
        let name = function.name.to_string().to_ascii_lowercase();
        let procedure = name.strip_prefix("lancesql.").unwrap_or(&name);
        if ![CREATE_TAG, DROP_TAG, DROP_TAG_IF_EXISTS, RESTORE, VACUUM].contains(&procedure) {
            return Err(Error::UndefinedFunction {
                name: format!(
                    "{name} (the procedures are create_tag, drop_tag, restore and vacuum)"
                ),
            });
        }
        let arguments: Vec<&Expr> = match &function.args {
            FunctionArguments::List(list) => list
                .args
                .iter()
                .map(|argument| match argument {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)) => Ok(expr),
                    other => Err(Error::invalid(format!(
                        "CALL {procedure}: arguments are positional values, not '{other}'"
                    ))),
                })
                .collect::<Result<_>>()?,
            FunctionArguments::None => Vec::new(),
            FunctionArguments::Subquery(_) => {
                return Err(Error::invalid(format!(
                    "CALL {procedure}: arguments are values, not a query"
                )));
            }
        };
        let usage = || {
            Error::invalid(match procedure {
                CREATE_TAG => {
                    "write CALL create_tag('table', 'tag' [, version | 'tag' | TIMESTAMP '...'])"
                }
                RESTORE => "write CALL restore('table', version | 'tag' | TIMESTAMP '...')",
                VACUUM => "write CALL vacuum('table' [, INTERVAL '7 days'])",
                _ => "write CALL drop_tag('table', 'tag')",
            })
        };
        Ok(Some(match (procedure, arguments.as_slice()) {
            (CREATE_TAG, [table, tag]) => HistoryCommand::CreateTag {
                table: text(table).ok_or_else(usage)?,
                tag: text(tag).ok_or_else(usage)?,
                at: None,
            },
            (CREATE_TAG, [table, tag, at]) => HistoryCommand::CreateTag {
                table: text(table).ok_or_else(usage)?,
                tag: text(tag).ok_or_else(usage)?,
                at: Some(as_of(at)?),
            },
            (DROP_TAG | DROP_TAG_IF_EXISTS, [table, tag]) => HistoryCommand::DropTag {
                table: text(table).ok_or_else(usage)?,
                tag: text(tag).ok_or_else(usage)?,
                if_exists: procedure == DROP_TAG_IF_EXISTS,
            },
            (RESTORE, [table, at]) => HistoryCommand::Restore {
                table: text(table).ok_or_else(usage)?,
                at: as_of(at)?,
            },
            (VACUUM, [table]) => HistoryCommand::Vacuum {
                table: text(table).ok_or_else(usage)?,
                retain: DEFAULT_RETENTION,
            },
            (VACUUM, [table, retain]) => HistoryCommand::Vacuum {
                table: text(table).ok_or_else(usage)?,
                retain: retention(retain)?,
            },
            _ => return Err(usage()),
        }))
    }
}

/// A retention written as `INTERVAL '...'`: days, hours, minutes or seconds (months and years
/// have no fixed length).
fn retention(expr: &Expr) -> Result<std::time::Duration> {
    let written = match expr {
        Expr::Interval(interval) => {
            let value = text(&interval.value).unwrap_or_else(|| interval.value.to_string());
            match &interval.leading_field {
                Some(unit) => format!("{value} {unit}"),
                None => value,
            }
        }
        other => text(other).unwrap_or_else(|| other.to_string()),
    };
    let invalid = || {
        Error::invalid(format!(
            "'{written}' is no retention: write a number of days, hours or minutes, such as \
             INTERVAL '7 days' (RETAIN 168 HOURS)"
        ))
    };
    let interval = arrow::compute::kernels::cast_utils::parse_interval_month_day_nano(&written)
        .map_err(|_| invalid())?;
    if interval.months != 0 || interval.days < 0 || interval.nanoseconds < 0 {
        return Err(invalid());
    }
    let seconds = u64::try_from(interval.days).map_err(|_| invalid())? * 24 * 3600;
    let nanos = u64::try_from(interval.nanoseconds).map_err(|_| invalid())?;
    Ok(std::time::Duration::from_secs(seconds) + std::time::Duration::from_nanos(nanos))
}

/// A string literal's text.
fn text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(text) => Some(text.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// A version number, a tag name or `TIMESTAMP '...'`.
fn as_of(expr: &Expr) -> Result<AsOf> {
    match expr {
        Expr::Value(value) if matches!(value.value, Value::Number(..)) => {
            super::time_travel::version_number(expr)
        }
        Expr::TypedString(_) => super::time_travel::timestamp(expr),
        _ => text(expr).map(AsOf::Tag).ok_or_else(|| {
            Error::invalid(format!(
                "'{expr}' names no version: give a version number, a tag name as a string, or \
                 TIMESTAMP '...'"
            ))
        }),
    }
}

/// Parses `ALTER TABLE ... CREATE TAG | DROP TAG` and `RESTORE` into their `CALL`s; fails,
/// consuming nothing when used through [`Parser::maybe_parse`], for any other statement.
pub(super) fn parse_statement(parser: &mut Parser) -> Result<ast::Statement, ParserError> {
    let (procedure, arguments) = if parser.parse_keywords(&[Keyword::ALTER, Keyword::TABLE]) {
        let table = parser.parse_object_name(false)?;
        if parser.parse_keywords(&[Keyword::CREATE, Keyword::TAG]) {
            let tag = parser.parse_identifier()?;
            let mut arguments = vec![table_literal(&table), string(&tag.value)];
            if parser.parse_keywords(&[Keyword::AS, Keyword::OF]) {
                arguments.push(parse_version_reference(parser)?);
            }
            (CREATE_TAG, arguments)
        } else if parser.parse_keywords(&[Keyword::DROP, Keyword::TAG]) {
            let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let tag = parser.parse_identifier()?;
            let procedure = if if_exists {
                DROP_TAG_IF_EXISTS
            } else {
                DROP_TAG
            };
            (procedure, vec![table_literal(&table), string(&tag.value)])
        } else {
            return parser.expected("CREATE TAG or DROP TAG", parser.peek_token());
        }
    } else if is_restore(&parser.peek_token().token) {
        parser.next_token();
        let _ = parser.parse_keyword(Keyword::TABLE);
        let table = parser.parse_object_name(false)?;
        let _ = parser.parse_keyword(Keyword::TO);
        (
            RESTORE,
            vec![table_literal(&table), parse_version_reference(parser)?],
        )
    } else if parser.parse_keyword(Keyword::VACUUM) {
        let _ = parser.parse_keyword(Keyword::TABLE);
        let table = parser.parse_object_name(false)?;
        let mut arguments = vec![table_literal(&table)];
        if parser.parse_keyword(Keyword::RETAIN) {
            let amount = parser.parse_number_value()?;
            let unit = parser.parse_identifier()?;
            arguments.push(string(&format!("{} {}", amount.value, unit.value)));
        }
        (VACUUM, arguments)
    } else {
        return parser.expected("ALTER TABLE, RESTORE or VACUUM", parser.peek_token());
    };
    if !matches!(parser.peek_token().token, Token::EOF | Token::SemiColon) {
        return parser.expected("end of statement", parser.peek_token());
    }
    Ok(ast::Statement::Call(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(procedure))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: arguments
                .into_iter()
                .map(|expr| FunctionArg::Unnamed(FunctionArgExpr::Expr(expr)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    }))
}

/// `VERSION AS OF n`, `VERSION n`, `TIMESTAMP AS OF '...'` or `TAG 'name'` (after `AS OF` or
/// `TO`).
fn parse_version_reference(parser: &mut Parser) -> Result<Expr, ParserError> {
    if parser.parse_keyword(Keyword::VERSION) {
        let _ = parser.parse_keywords(&[Keyword::AS, Keyword::OF]);
        let number = parser.parse_number_value()?;
        return Ok(Expr::Value(number));
    }
    if parser.parse_keyword(Keyword::TIMESTAMP) {
        let _ = parser.parse_keywords(&[Keyword::AS, Keyword::OF]);
        let written = parser.parse_literal_string()?;
        return Ok(Expr::TypedString(ast::TypedString {
            data_type: ast::DataType::Timestamp(None, ast::TimezoneInfo::None),
            value: Value::SingleQuotedString(written).into(),
            uses_odbc_syntax: false,
        }));
    }
    if parser.parse_keyword(Keyword::TAG) {
        let tag = parser.parse_literal_string()?;
        return Ok(string(&tag));
    }
    parser.expected(
        "VERSION AS OF n, TIMESTAMP AS OF '...' or TAG 'name'",
        parser.peek_token(),
    )
}

fn table_literal(name: &ObjectName) -> Expr {
    let reference = name
        .0
        .last()
        .and_then(ObjectNamePart::as_ident)
        .map(|ident| match ident.quote_style {
            Some(_) => ident.value.clone(),
            None => ident.value.to_lowercase(),
        })
        .unwrap_or_else(|| name.to_string());
    string(&reference)
}

fn string(text: &str) -> Expr {
    Expr::Value(Value::SingleQuotedString(text.to_string()).into())
}

/// Whether `token` is the word `RESTORE` (not one of sqlparser's keywords).
pub(super) fn is_restore(token: &Token) -> bool {
    matches!(token, Token::Word(word) if word.quote_style.is_none() && word.value.eq_ignore_ascii_case("restore"))
}
