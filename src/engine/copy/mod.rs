//! Postgres' `COPY` between a client and a table.
//!
//! Contract: [`Copy::from_statement`] turns
//! - `COPY table [(columns)] TO STDOUT` and `COPY (query) TO STDOUT` into the query producing
//!   the rows (the engine plans and runs it like any other; the front end encodes the rows);
//! - `COPY table [(columns)] FROM STDIN` into the table and the query naming its target columns
//!   (planned to resolve and type them); the front end feeds the client's bytes to a
//!   [`CopyInDecoder`] (text and CSV here, binary in [`binary`]), whose record batches the
//!   session appends in one commit;
//!
//! each with its checked [`CopyOptions`] (text, CSV or binary; delimiter, NULL string, header,
//! quote, escape). It refuses, with a reason, what lancesql does not do: COPY to or from files or
//! programs on the server (SQL never touches the server's files), and options such as
//! `FORCE_QUOTE`.

pub mod binary;

use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Ident, ObjectName,
    Statement,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{Field, SchemaRef};

use crate::engine::copy::binary::BinaryDecoder;
use crate::error::{Error, Result};

/// The COPY format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CopyFormat {
    /// Tab-separated text, `\N` for NULL, backslash escapes.
    #[default]
    Text,
    /// Comma-separated values, empty for NULL, `"` quoting.
    Csv,
    /// Postgres' binary COPY format (each value in its binary wire encoding).
    Binary,
}

/// How a COPY writes or reads rows (the default: text, tab-separated, `\N` for NULL).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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

/// A `COPY` statement lancesql runs, taken apart.
pub(crate) enum Copy {
    /// `COPY ... TO STDOUT`: the query producing the rows.
    Out {
        query: Statement,
        options: CopyOptions,
    },
    /// `COPY table FROM STDIN`: the table, the query selecting its target columns, and the
    /// columns the statement names (empty: all of them).
    In {
        table: ObjectName,
        columns: Statement,
        column_names: Vec<String>,
        options: CopyOptions,
    },
}

impl Copy {
    /// The COPY `statement` is, if it is one lancesql runs; an error for the forms it refuses.
    pub fn from_statement(statement: &Statement) -> Result<Option<Copy>> {
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
            (true, CopyTarget::Stdout) | (false, CopyTarget::Stdin) => {}
            (_, CopyTarget::File { .. } | CopyTarget::Program { .. }) => {
                return Err(unsupported(
                    "COPY to or from a file or program on the server: use COPY ... TO STDOUT / \
                     FROM STDIN from a Postgres client (psql's \\copy reads and writes local \
                     files), or `lancesql import` / `lancesql sql --format csv` locally",
                ));
            }
            (true, CopyTarget::Stdin) => return Err(unsupported("COPY ... TO STDIN")),
            (false, CopyTarget::Stdout) => return Err(unsupported("COPY ... FROM STDOUT")),
        }
        let options = copy_options(options, legacy_options)?;
        Ok(Some(match (source, to) {
            (CopySource::Query(query), true) => Copy::Out {
                query: Statement::Query(query.clone()),
                options,
            },
            (
                CopySource::Table {
                    table_name,
                    columns,
                },
                true,
            ) => Copy::Out {
                query: select_columns(table_name, columns)?,
                options,
            },
            (
                CopySource::Table {
                    table_name,
                    columns,
                },
                false,
            ) => Copy::In {
                table: table_name.clone(),
                columns: select_columns(table_name, columns)?,
                column_names: columns.iter().map(|column| column.value.clone()).collect(),
                options,
            },
            (CopySource::Query(_), false) => {
                return Err(Error::Syntax {
                    message: "COPY FROM needs a table, not a query".into(),
                });
            }
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
    let mut copy = CopyOptions::default();
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

/// Rows decoded per record batch.
const COPY_BATCH_ROWS: usize = 8192;

/// Turns the bytes of a `COPY ... FROM STDIN`, as they arrive in pieces, into record batches of
/// the target columns. Text and CSV values are read as text and cast to the column types; a
/// value that does not convert fails the COPY with 22P02, a line with the wrong number of
/// fields with its line number. Binary data is decoded by [`BinaryDecoder`].
pub struct CopyInDecoder {
    schema: SchemaRef,
    options: CopyOptions,
    /// Set for binary COPY, which decodes typed values instead of text records.
    binary: Option<BinaryDecoder>,
    /// Bytes of a record not yet complete.
    pending: Vec<u8>,
    /// Complete records not yet in a batch.
    rows: Vec<Vec<Option<String>>>,
    /// Records seen (for messages and the CSV header).
    records: usize,
    /// The text format's `\.` end marker was seen.
    ended: bool,
}

impl CopyInDecoder {
    pub fn new(schema: SchemaRef, options: CopyOptions) -> Self {
        let binary =
            (options.format == CopyFormat::Binary).then(|| BinaryDecoder::new(schema.clone()));
        CopyInDecoder {
            schema,
            options,
            binary,
            pending: Vec::new(),
            rows: Vec::new(),
            records: 0,
            ended: false,
        }
    }

    /// Takes the next piece of data; returns the batches it completed.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<RecordBatch>> {
        self.pending.extend_from_slice(data);
        if let Some(binary) = self.binary.as_mut() {
            let used = binary.decode(&self.pending)?;
            self.pending.drain(..used);
            return self.full_batches(false);
        }
        let mut start = 0;
        while let Some(end) = self.record_end(start) {
            let record = self.pending[start..end].to_vec();
            start = end + 1;
            self.take_record(&record)?;
        }
        self.pending.drain(..start);
        self.full_batches(false)
    }

    /// The data ended: the last record (without a final newline) and the last batch.
    pub fn finish(&mut self) -> Result<Vec<RecordBatch>> {
        if let Some(binary) = &self.binary {
            binary.check_end(self.pending.len())?;
            return self.full_batches(true);
        }
        if !self.pending.is_empty() {
            let record = std::mem::take(&mut self.pending);
            self.take_record(&record)?;
        }
        self.full_batches(true)
    }

    /// Where the record starting at `start` ends (its newline), if it is complete: CSV newlines
    /// inside quotes belong to the value.
    fn record_end(&self, start: usize) -> Option<usize> {
        let bytes = &self.pending[start..];
        match self.options.format {
            CopyFormat::Csv => {
                let quote = self.options.quote.unwrap_or('"') as u8;
                let mut quoted = false;
                bytes.iter().position(|&byte| {
                    if byte == quote {
                        quoted = !quoted;
                    }
                    byte == b'\n' && !quoted
                })
            }
            _ => bytes.iter().position(|&byte| byte == b'\n'),
        }
        .map(|offset| start + offset)
    }

    fn take_record(&mut self, record: &[u8]) -> Result<()> {
        let record = record.strip_suffix(b"\r").unwrap_or(record);
        if self.ended {
            return Ok(());
        }
        self.records += 1;
        let fields = match self.options.format {
            CopyFormat::Csv => {
                if self.options.header && self.records == 1 {
                    return Ok(());
                }
                self.csv_fields(record)?
            }
            _ => {
                if record == b"\\." {
                    self.ended = true;
                    return Ok(());
                }
                self.text_fields(record)?
            }
        };
        if fields.len() != self.schema.fields().len() {
            return Err(Error::invalid(format!(
                "COPY line {}: {} fields, but the COPY names {} columns",
                self.records,
                fields.len(),
                self.schema.fields().len()
            )));
        }
        self.rows.push(fields);
        Ok(())
    }

    /// One line of the text format: delimited fields, `\N` for NULL, backslash escapes.
    fn text_fields(&self, record: &[u8]) -> Result<Vec<Option<String>>> {
        let delimiter = self.options.delimiter.unwrap_or('\t') as u8;
        let null = self.options.null.as_deref().unwrap_or("\\N").as_bytes();
        let mut fields = Vec::new();
        let mut raw_start = 0;
        let mut escaped = false;
        for (index, &byte) in record.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == delimiter {
                fields.push(&record[raw_start..index]);
                raw_start = index + 1;
            }
        }
        fields.push(&record[raw_start..]);
        fields
            .into_iter()
            .map(|raw| {
                if raw == null {
                    return Ok(None);
                }
                let mut value = Vec::with_capacity(raw.len());
                let mut bytes = raw.iter();
                while let Some(&byte) = bytes.next() {
                    if byte != b'\\' {
                        value.push(byte);
                        continue;
                    }
                    value.push(match bytes.next() {
                        Some(b'n') => b'\n',
                        Some(b't') => b'\t',
                        Some(b'r') => b'\r',
                        Some(b'b') => 0x08,
                        Some(b'f') => 0x0c,
                        Some(b'v') => 0x0b,
                        Some(&other) => other,
                        None => b'\\',
                    });
                }
                self.text(value).map(Some)
            })
            .collect()
    }

    /// One CSV record: quoted values may hold delimiters, quotes (doubled, or after the escape
    /// character) and newlines; an unquoted empty value (or the NULL string) is NULL.
    fn csv_fields(&self, record: &[u8]) -> Result<Vec<Option<String>>> {
        let delimiter = self.options.delimiter.unwrap_or(',') as u8;
        let quote = self.options.quote.unwrap_or('"') as u8;
        let escape = self.options.escape.map_or(quote, |escape| escape as u8);
        let null = self.options.null.as_deref().unwrap_or("").as_bytes();
        let mut fields = Vec::new();
        let mut value = Vec::new();
        let (mut quoted, mut was_quoted) = (false, false);
        let mut index = 0;
        while index < record.len() {
            let byte = record[index];
            if quoted {
                if byte == escape && record.get(index + 1) == Some(&quote) {
                    value.push(quote);
                    index += 1;
                } else if byte == quote {
                    quoted = false;
                } else {
                    value.push(byte);
                }
            } else if byte == quote {
                quoted = true;
                was_quoted = true;
            } else if byte == delimiter {
                fields.push(self.csv_value(std::mem::take(&mut value), was_quoted, null)?);
                was_quoted = false;
            } else {
                value.push(byte);
            }
            index += 1;
        }
        if quoted {
            return Err(Error::invalid(format!(
                "COPY line {}: unterminated CSV quoted field",
                self.records
            )));
        }
        fields.push(self.csv_value(value, was_quoted, null)?);
        Ok(fields)
    }

    fn csv_value(&self, value: Vec<u8>, quoted: bool, null: &[u8]) -> Result<Option<String>> {
        if !quoted && value == null {
            Ok(None)
        } else {
            self.text(value).map(Some)
        }
    }

    fn text(&self, value: Vec<u8>) -> Result<String> {
        String::from_utf8(value).map_err(|_| {
            Error::invalid(format!("COPY line {}: the data is not UTF-8", self.records))
        })
    }

    /// Batches of the rows read so far: full ones, and with `last` the rest.
    fn full_batches(&mut self, last: bool) -> Result<Vec<RecordBatch>> {
        let mut batches = Vec::new();
        if let Some(binary) = self.binary.as_mut() {
            while binary.rows() >= COPY_BATCH_ROWS || (last && binary.rows() > 0) {
                let take = binary.rows().min(COPY_BATCH_ROWS);
                batches.push(binary.batch(take)?);
            }
            return Ok(batches);
        }
        while self.rows.len() >= COPY_BATCH_ROWS || (last && !self.rows.is_empty()) {
            let take = self.rows.len().min(COPY_BATCH_ROWS);
            let rows: Vec<Vec<Option<String>>> = self.rows.drain(..take).collect();
            batches.push(self.batch(rows)?);
        }
        Ok(batches)
    }

    fn batch(&self, rows: Vec<Vec<Option<String>>>) -> Result<RecordBatch> {
        let columns = self
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(column, field)| {
                let text: StringArray = rows.iter().map(|row| row[column].as_deref()).collect();
                if !field.is_nullable() && text.null_count() > 0 {
                    return Err(Error::invalid(format!(
                        "COPY column '{}' cannot be NULL",
                        field.name()
                    )));
                }
                cast_column(&text, field)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// Decoded values cast to their column's type, strictly: a value that does not fit fails the
/// COPY, naming the column.
fn cast_column(decoded: &dyn Array, field: &Field) -> Result<ArrayRef> {
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    cast_with_options(decoded, field.data_type(), &options).map_err(|error| {
        Error::from(datafusion::error::DataFusionError::ArrowError(
            Box::new(error),
            Some(format!("COPY column '{}'", field.name())),
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
        ]))
    }

    fn decode(options: CopyOptions, pieces: &[&[u8]]) -> Result<Vec<RecordBatch>> {
        let mut decoder = CopyInDecoder::new(schema(), options);
        let mut batches = Vec::new();
        for piece in pieces {
            batches.extend(decoder.push(piece)?);
        }
        batches.extend(decoder.finish()?);
        Ok(batches)
    }

    #[test]
    fn text_rows_split_anywhere_decode_with_escapes_and_nulls() {
        let batches = decode(
            CopyOptions::default(),
            &[
                b"1\ta\\tb\t2.",
                b"5\n2\t\\N\t\\N\n3\tback\\\\sl",
                b"ash\t1\n\\.\nignored\n",
            ],
        )
        .expect("decodes");
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 3);
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("ids");
        let names = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("names");
        let scores = batch
            .column(2)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("scores");
        assert_eq!(ids.values(), &[1, 2, 3]);
        assert_eq!(names.value(0), "a\tb");
        assert!(names.is_null(1) && scores.is_null(1));
        assert_eq!(names.value(2), "back\\slash");
        assert_eq!(scores.value(0), 2.5);
    }

    #[test]
    fn csv_quotes_may_hold_delimiters_quotes_and_newlines() {
        let options = CopyOptions {
            format: CopyFormat::Csv,
            header: true,
            ..CopyOptions::default()
        };
        let batches = decode(
            options,
            &[
                b"id,name,score\n1,\"a,\"\"b\"\"",
                b"\nc\",\n2,\"\",3\r\n3,,",
            ],
        )
        .expect("decodes");
        let names = batches[0]
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("names");
        assert_eq!(names.value(0), "a,\"b\"\nc");
        // A quoted empty value is an empty string; an unquoted one is NULL.
        assert_eq!(names.value(1), "");
        assert!(names.is_null(2));
    }

    #[test]
    fn bad_rows_fail_with_their_line() {
        let wrong_fields = decode(CopyOptions::default(), &[b"1\ta\n2\tb\t3\t4\n"]);
        assert!(wrong_fields.is_err_and(|e| e.to_string().contains("line 1")));
        let bad_number = decode(CopyOptions::default(), &[b"1\ta\tlots\n"]);
        assert!(bad_number.is_err_and(|e| e.sqlstate() == "22P02" || e.sqlstate() == "22023"));
        let null_id = decode(CopyOptions::default(), &[b"\\N\ta\t1\n"]);
        assert!(null_id.is_err_and(|e| e.to_string().contains("cannot be NULL")));
    }
}
