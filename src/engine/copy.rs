//! `COPY ... TO STDOUT`: a query whose rows a front end writes in one of Postgres' COPY formats.
//!
//! Contract: [`CopyOut::from_statement`] turns `COPY table [(columns)] TO STDOUT` and
//! `COPY (query) TO STDOUT` into the query that produces the rows plus the checked
//! [`CopyOptions`] (text, CSV or binary; delimiter, NULL string, header, quote, escape), or
//! refuses what lancesql does not do with a reason: COPY to or from files or programs on the
//! server (SQL never touches the server's files), `COPY ... FROM STDIN` (not yet), and options
//! such as `FORCE_QUOTE`. The engine plans and runs the query like any other; the protocol front
//! end encodes the rows.

use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Ident, ObjectName,
    Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{Error, Result};

/// The COPY format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    /// Tab-separated text, `\N` for NULL, backslash escapes.
    Text,
    /// Comma-separated values, empty for NULL, `"` quoting.
    Csv,
    /// Postgres' binary COPY format (each value in its binary wire encoding).
    Binary,
}

/// How `COPY ... TO STDOUT` writes rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub format: CopyFormat,
    /// Field separator (text: tab, CSV: comma).
    pub delimiter: Option<char>,
    /// The text written for NULL (text: `\N`, CSV: empty).
    pub null: Option<String>,
    /// CSV only: a first line with the column names.
    pub header: bool,
    /// CSV only: the quote and escape characters (both `"` by default).
    pub quote: Option<char>,
    pub escape: Option<char>,
}

/// A `COPY ... TO STDOUT` statement, taken apart.
pub(crate) struct CopyOut {
    /// The query producing the rows.
    pub query: Statement,
    pub options: CopyOptions,
}

impl CopyOut {
    /// The COPY `statement` is, if it is one lancesql runs; an error for the forms it refuses.
    pub fn from_statement(statement: &Statement) -> Result<Option<CopyOut>> {
        let Statement::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } = statement
        else {
            return Ok(None);
        };
        match (to, target) {
            (true, CopyTarget::Stdout) => {}
            (_, CopyTarget::File { .. } | CopyTarget::Program { .. }) => {
                return Err(unsupported(
                    "COPY to or from a file or program on the server: use COPY ... TO STDOUT \
                     from a Postgres client (psql's \\copy writes a local file), or `lancesql \
                     sql --format csv` locally",
                ));
            }
            (false, _) => {
                return Err(unsupported(
                    "COPY ... FROM STDIN (yet): load data with `lancesql import` or CREATE TABLE \
                     ... AS",
                ));
            }
            (true, CopyTarget::Stdin) => return Err(unsupported("COPY ... TO STDIN")),
        }
        let query = match source {
            CopySource::Query(query) => Statement::Query(query.clone()),
            CopySource::Table {
                table_name,
                columns,
            } => select_columns(table_name, columns)?,
        };
        Ok(Some(CopyOut {
            query,
            options: copy_options(options, legacy_options)?,
        }))
    }
}

fn unsupported(what: &str) -> Error {
    Error::Unsupported {
        what: what.to_string(),
    }
}

/// `SELECT columns FROM table` (`*` when no columns are named), from the parsed names (whose
/// text keeps their quoting).
fn select_columns(table: &ObjectName, columns: &[Ident]) -> Result<Statement> {
    let projection = if columns.is_empty() {
        "*".to_string()
    } else {
        columns
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!("SELECT {projection} FROM {table}");
    let mut statements =
        Parser::parse_sql(&PostgreSqlDialect {}, &sql).map_err(|error| Error::Internal {
            message: format!("COPY's query `{sql}` does not parse: {error}"),
        })?;
    match (statements.pop(), statements.is_empty()) {
        (Some(query @ Statement::Query(_)), true) => Ok(query),
        _ => Err(Error::Internal {
            message: format!("COPY's query `{sql}` is not one query"),
        }),
    }
}

/// The options of a `COPY`, checked.
fn copy_options(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<CopyOptions> {
    let mut copy = CopyOptions {
        format: CopyFormat::Text,
        delimiter: None,
        null: None,
        header: false,
        quote: None,
        escape: None,
    };
    for option in options {
        match option {
            CopyOption::Format(name) => {
                copy.format = match name.value.to_ascii_lowercase().as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    "binary" => CopyFormat::Binary,
                    other => {
                        return Err(Error::invalid(format!(
                            "COPY format \"{other}\" not recognized (text, csv or binary)"
                        )));
                    }
                }
            }
            CopyOption::Delimiter(delimiter) => copy.delimiter = Some(*delimiter),
            CopyOption::Null(null) => copy.null = Some(null.clone()),
            CopyOption::Header(header) => copy.header = *header,
            CopyOption::Quote(quote) => copy.quote = Some(*quote),
            CopyOption::Escape(escape) => copy.escape = Some(*escape),
            CopyOption::Encoding(encoding)
                if encoding.eq_ignore_ascii_case("utf8")
                    || encoding.eq_ignore_ascii_case("utf-8") => {}
            other => return Err(unsupported(&format!("the COPY option {other}"))),
        }
    }
    for option in legacy {
        match option {
            CopyLegacyOption::Binary => copy.format = CopyFormat::Binary,
            CopyLegacyOption::Delimiter(delimiter) => copy.delimiter = Some(*delimiter),
            CopyLegacyOption::Null(null) => copy.null = Some(null.clone()),
            CopyLegacyOption::Header => copy.header = true,
            CopyLegacyOption::Csv(csv) => {
                copy.format = CopyFormat::Csv;
                for option in csv {
                    match option {
                        CopyLegacyCsvOption::Header => copy.header = true,
                        CopyLegacyCsvOption::Quote(quote) => copy.quote = Some(*quote),
                        CopyLegacyCsvOption::Escape(escape) => copy.escape = Some(*escape),
                        other => return Err(unsupported(&format!("the COPY option {other}"))),
                    }
                }
            }
            other => return Err(unsupported(&format!("the COPY option {other}"))),
        }
    }
    let csv_only = copy.header || copy.quote.is_some() || copy.escape.is_some();
    if csv_only && copy.format != CopyFormat::Csv {
        return Err(Error::invalid(
            "COPY HEADER, QUOTE and ESCAPE are available only in CSV format",
        ));
    }
    if copy.format == CopyFormat::Binary && (copy.delimiter.is_some() || copy.null.is_some()) {
        return Err(Error::invalid(
            "COPY DELIMITER and NULL cannot be given in BINARY format",
        ));
    }
    Ok(copy)
}
