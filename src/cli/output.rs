//! Writing query results for people and programs: aligned tables, CSV, JSON and Arrow IPC.
//!
//! Contract: [`write_results`] writes a result stream batch by batch, so memory stays flat for
//! any result size and the first rows appear as soon as they exist. Every type lancesql reads
//! can be written in every format: CSV and tables write vectors, lists, structs, maps and binary
//! as text; JSON writes explicit nulls and writes NaN and infinities as the strings `"NaN"`,
//! `"Infinity"` and `"-Infinity"`, so they are told apart from NULL. The table format shows at
//! most `max_rows` rows (0: all) and says how many there were. Nothing but results goes to the
//! writer: counts and timings are the caller's to print, and only next to a table.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{
    DataType, Field, FieldRef, Float16Type, Float32Type, Float64Type, Schema, SchemaRef,
};
use arrow::error::ArrowError;
use arrow::json::writer::{Encoder, EncoderFactory, EncoderOptions, NullableEncoder};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;

use crate::error::{Error, Result};

/// How results are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON array of objects per result.
    Json,
    /// Arrow IPC stream (binary) per result.
    Arrow,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Rows in the result.
    pub rows: usize,
    /// Rows shown (fewer than `rows` only for a table cut at its row limit).
    pub shown: usize,
}

/// Rows read before the table format fixes its column widths.
const WIDTH_SAMPLE_ROWS: usize = 1_000;

/// Writes every batch of `stream` to `out` in `format`; `max_rows` bounds the rows a table shows
/// (0: no bound), the rest are counted but not printed.
pub async fn write_results(
    format: OutputFormat,
    stream: SendableRecordBatchStream,
    max_rows: usize,
    out: &mut dyn Write,
) -> Result<Written> {
    let mut keeper = KeepIoError {
        inner: out,
        error: None,
    };
    let written = write_all(format, stream, max_rows, &mut keeper).await;
    match (written, keeper.error) {
        // Arrow's writers report I/O failures as text; the failure itself says what happened.
        (Err(_), Some(io)) => Err(output_error(io)),
        (written, _) => written,
    }
}

/// Passes writes through, keeping the last I/O error so it can be reported as itself.
struct KeepIoError<'a> {
    inner: &'a mut dyn Write,
    error: Option<std::io::Error>,
}

impl Write for KeepIoError<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(|error| {
            self.error = Some(std::io::Error::new(error.kind(), error.to_string()));
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().inspect_err(|error| {
            self.error = Some(std::io::Error::new(error.kind(), error.to_string()));
        })
    }
}

async fn write_all(
    format: OutputFormat,
    mut stream: SendableRecordBatchStream,
    max_rows: usize,
    out: &mut dyn Write,
) -> Result<Written> {
    let schema = stream.schema();
    let mut written = Written { rows: 0, shown: 0 };
    match format {
        OutputFormat::Table => {
            let mut table = TableWriter::new(&schema, max_rows);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                written.rows += batch.num_rows();
                table.push(&batch, out)?;
            }
            written.shown = table.finish(out)?;
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            let mut wrote_any = false;
            while let Some(batch) = stream.next().await {
                let batch = as_text_where_needed(&batch?)?;
                written.rows += batch.num_rows();
                writer.write(&batch)?;
                wrote_any = true;
            }
            if !wrote_any {
                let empty = as_text_where_needed(&RecordBatch::new_empty(schema.clone()))?;
                writer.write(&empty)?;
            }
            written.shown = written.rows;
        }
        OutputFormat::Json => {
            let mut writer = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .with_encoder_factory(Arc::new(NonFiniteFloatsAsStrings))
                .build::<_, arrow::json::writer::JsonArray>(&mut *out);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                written.rows += batch.num_rows();
                writer.write(&batch)?;
            }
            writer.finish()?;
            writeln!(out).map_err(output_error)?;
            written.shown = written.rows;
        }
        OutputFormat::Arrow => {
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut *out, &schema)?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                written.rows += batch.num_rows();
                writer.write(&batch)?;
            }
            writer.finish()?;
            written.shown = written.rows;
        }
    }
    out.flush().map_err(output_error)?;
    Ok(written)
}

/// An error writing results (a closed pipe, a full disk).
pub fn output_error(source: std::io::Error) -> Error {
    Error::File {
        path: STDOUT.into(),
        source,
    }
}

/// Whether `error` means the reader of our output went away (`| head`): not worth reporting.
pub fn is_closed_output(error: &Error) -> bool {
    matches!(error, Error::File { path, source } if path == STDOUT && source.kind() == std::io::ErrorKind::BrokenPipe)
}

const STDOUT: &str = "<stdout>";

/// CSV cannot hold nested or binary values: those columns become their display text.
fn as_text_where_needed(batch: &RecordBatch) -> Result<RecordBatch> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|field| needs_text(field.data_type()))
    {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let mut fields: Vec<FieldRef> = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if needs_text(field.data_type()) {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            let text: StringArray = (0..column.len())
                .map(|row| {
                    column
                        .is_valid(row)
                        .then(|| formatter.value(row).to_string())
                })
                .collect();
            fields.push(Arc::new(Field::new(field.name(), DataType::Utf8, true)));
            columns.push(Arc::new(text));
        } else {
            fields.push(field.clone());
            columns.push(column.clone());
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

fn needs_text(data_type: &DataType) -> bool {
    match data_type {
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..)
        | DataType::Union(..)
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_)
        | DataType::RunEndEncoded(..) => true,
        DataType::Dictionary(_, value) => needs_text(value),
        _ => false,
    }
}

/// Aligned text table, printed as rows arrive: column widths come from the first rows (up to
/// [`WIDTH_SAMPLE_ROWS`]); a later, wider cell widens only its own line.
struct TableWriter {
    names: Vec<String>,
    max_rows: usize,
    /// Rows formatted but not printed yet (until the widths are fixed).
    pending: Vec<Vec<String>>,
    widths: Option<Vec<usize>>,
    shown: usize,
}

impl TableWriter {
    fn new(schema: &SchemaRef, max_rows: usize) -> Self {
        TableWriter {
            names: schema.fields().iter().map(|f| f.name().clone()).collect(),
            max_rows,
            pending: Vec::new(),
            widths: None,
            shown: 0,
        }
    }

    fn room(&self) -> usize {
        if self.max_rows == 0 {
            usize::MAX
        } else {
            self.max_rows - self.shown - self.pending.len()
        }
    }

    fn push(&mut self, batch: &RecordBatch, out: &mut dyn Write) -> Result<()> {
        let take = batch.num_rows().min(self.room());
        if take == 0 {
            return Ok(());
        }
        let options = FormatOptions::default().with_null("NULL");
        let formatters = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for row in 0..take {
            let cells = formatters
                .iter()
                .map(|formatter| one_line(&formatter.value(row).to_string()))
                .collect();
            self.pending.push(cells);
        }
        if self.widths.is_some() || self.pending.len() >= WIDTH_SAMPLE_ROWS {
            self.flush_pending(out)?;
        }
        Ok(())
    }

    fn flush_pending(&mut self, out: &mut dyn Write) -> Result<()> {
        if self.widths.is_none() {
            let mut widths: Vec<usize> =
                self.names.iter().map(|name| display_width(name)).collect();
            for row in &self.pending {
                for (width, cell) in widths.iter_mut().zip(row) {
                    *width = (*width).max(display_width(cell));
                }
            }
            let rule = rule_line(&widths);
            let header = table_line(&self.names, &widths);
            write!(out, "{rule}\n{header}\n{rule}\n").map_err(output_error)?;
            self.widths = Some(widths);
        }
        let widths = self.widths.as_deref().unwrap_or_default();
        for row in self.pending.drain(..) {
            writeln!(out, "{}", table_line(&row, widths)).map_err(output_error)?;
            self.shown += 1;
        }
        out.flush().map_err(output_error)
    }

    /// Prints what is left and the closing rule; returns the rows shown.
    fn finish(mut self, out: &mut dyn Write) -> Result<usize> {
        self.flush_pending(out)?;
        if let Some(widths) = &self.widths {
            writeln!(out, "{}", rule_line(widths)).map_err(output_error)?;
        }
        Ok(self.shown)
    }
}

/// Cells are one line in a table: line breaks and tabs become visible escapes.
fn one_line(text: &str) -> String {
    if text.contains(['\n', '\r', '\t']) {
        text.replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace('\t', "\\t")
    } else {
        text.to_string()
    }
}

fn display_width(text: &str) -> usize {
    text.chars().count()
}

fn rule_line(widths: &[usize]) -> String {
    let mut line = String::from("+");
    for width in widths {
        line.push_str(&"-".repeat(width + 2));
        line.push('+');
    }
    line
}

fn table_line<S: AsRef<str>>(cells: &[S], widths: &[usize]) -> String {
    let mut line = String::from("|");
    for (cell, width) in cells.iter().zip(widths) {
        let cell = cell.as_ref();
        let padding = width.saturating_sub(display_width(cell));
        line.push(' ');
        line.push_str(cell);
        line.push_str(&" ".repeat(padding));
        line.push_str(" |");
    }
    line
}

/// JSON has no NaN or infinity: write them as strings (as Postgres' `to_json` does), so they
/// are not confused with NULL, which arrow-json would write for them.
#[derive(Debug)]
struct NonFiniteFloatsAsStrings;

impl EncoderFactory for NonFiniteFloatsAsStrings {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> std::result::Result<Option<NullableEncoder<'a>>, ArrowError> {
        let values: Vec<f64> = match array.data_type() {
            DataType::Float16 => array
                .as_primitive::<Float16Type>()
                .values()
                .iter()
                .map(|v| v.to_f64())
                .collect(),
            DataType::Float32 => array
                .as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|v| f64::from(*v))
                .collect(),
            DataType::Float64 => array.as_primitive::<Float64Type>().values().to_vec(),
            _ => return Ok(None),
        };
        let encoder = FloatEncoder {
            values,
            is_f64: matches!(array.data_type(), DataType::Float64),
        };
        Ok(Some(NullableEncoder::new(
            Box::new(encoder),
            array.nulls().cloned(),
        )))
    }
}

struct FloatEncoder {
    values: Vec<f64>,
    /// Narrower floats print their shortest f32 form (0.1f32 as `0.1`, not `0.10000000149`).
    is_f64: bool,
}

impl Encoder for FloatEncoder {
    fn encode(&mut self, index: usize, out: &mut Vec<u8>) {
        let value = self.values[index];
        if value.is_nan() {
            out.extend_from_slice(b"\"NaN\"");
        } else if value.is_infinite() {
            out.extend_from_slice(if value > 0.0 {
                b"\"Infinity\"".as_slice()
            } else {
                b"\"-Infinity\"".as_slice()
            });
        } else if self.is_f64 {
            out.extend_from_slice(value.to_string().as_bytes());
        } else {
            out.extend_from_slice((value as f32).to_string().as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float32Array, Float64Array, Int32Array, ListArray};
    use arrow::datatypes::Int32Type;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    fn stream_of(batch: RecordBatch) -> SendableRecordBatchStream {
        let schema = batch.schema();
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(vec![Ok(batch)]),
        ))
    }

    fn sample() -> RecordBatch {
        let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            None,
            Some(vec![]),
        ]);
        RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int32Array::from(vec![1, 2, 3])) as ArrayRef),
            (
                "x",
                Arc::new(Float64Array::from(vec![
                    Some(f64::NAN),
                    None,
                    Some(f64::NEG_INFINITY),
                ])),
            ),
            (
                "v",
                Arc::new(Float32Array::from(vec![0.1, f32::INFINITY, 2.5])),
            ),
            ("tags", Arc::new(list)),
        ])
        .unwrap()
    }

    async fn render(format: OutputFormat, max_rows: usize) -> (String, Written) {
        let mut out = Vec::new();
        let written = write_results(format, stream_of(sample()), max_rows, &mut out)
            .await
            .unwrap();
        (String::from_utf8(out).unwrap(), written)
    }

    #[tokio::test]
    async fn json_tells_nan_and_infinity_from_null() {
        let (json, _) = render(OutputFormat::Json, 0).await;
        let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(rows[0]["x"], "NaN");
        assert_eq!(rows[1]["x"], serde_json::Value::Null);
        assert_eq!(rows[2]["x"], "-Infinity");
        assert_eq!(rows[0]["v"], serde_json::json!(0.1));
        assert_eq!(rows[1]["v"], "Infinity");
        assert_eq!(rows[1]["tags"], serde_json::Value::Null);
        assert_eq!(rows[0]["tags"], serde_json::json!([1, 2]));
    }

    #[tokio::test]
    async fn csv_writes_lists_as_text() {
        let (csv, written) = render(OutputFormat::Csv, 0).await;
        assert_eq!(written.rows, 3);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "id,x,v,tags");
        assert_eq!(lines[1], "1,NaN,0.1,\"[1, 2]\"");
        assert_eq!(lines[2], "2,,inf,");
    }

    #[tokio::test]
    async fn tables_stop_at_the_row_limit_but_count_every_row() {
        let (table, written) = render(OutputFormat::Table, 2).await;
        assert_eq!(written, Written { rows: 3, shown: 2 });
        assert!(table.contains("| 1  | NaN "), "{table}");
        assert!(!table.contains("| 3 "), "{table}");
        let (all, written) = render(OutputFormat::Table, 0).await;
        assert_eq!(written.shown, 3);
        assert!(all.contains("[1, 2]") && all.contains("NULL"), "{all}");
    }
}
