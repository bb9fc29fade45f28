//! `COPY ... TO STDOUT` on the wire: the engine's rows in Postgres' text, CSV or binary COPY
//! format, streamed as CopyData messages (one per row) between CopyOutResponse and CopyDone.
//!
//! Values are encoded by `arrow-pg`, the same encoders as query results, so a value reads the
//! same through `SELECT` and through `COPY`.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::arrow_pg::encoder::{Encoder, encode_value};
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{
    CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions, FieldInfo, Response,
};
use datafusion_postgres::pgwire::error::PgWireResult;
use datafusion_postgres::pgwire::messages::copy::CopyData;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::StreamExt;

use crate::engine::{CopyFormat, CopyOptions};
use crate::error::Error;
use crate::pgwire::handlers::wire_error;

/// The binary COPY signature, flags and header extension length.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The binary COPY trailer: a tuple of -1 fields.
const BINARY_TRAILER: &[u8] = &[0xff, 0xff];

/// The CopyOut response writing `stream` as `options` say.
pub fn copy_out(
    stream: SendableRecordBatchStream,
    options: &CopyOptions,
    format_options: Arc<FormatOptions>,
) -> PgWireResult<Response> {
    let schema = stream.schema();
    let binary = options.format == CopyFormat::Binary;
    let column_format = if binary {
        Format::UnifiedBinary
    } else {
        Format::UnifiedText
    };
    let fields = Arc::new(arrow_schema_to_pg_fields(
        &schema,
        &column_format,
        Some(format_options),
    )?);
    let columns = fields.len();
    let state = CopyRows {
        encoder: encoder(options, fields.clone()),
        // Before the first row, in its message so that it is not counted as a row; alone at
        // the end when there are no rows.
        preamble: match options.format {
            CopyFormat::Csv if options.header => Some(csv_header(options, &fields)),
            CopyFormat::Binary => Some(Bytes::from_static(BINARY_HEADER)),
            CopyFormat::Csv | CopyFormat::Text => None,
        },
        binary,
        fields,
        stream,
        pending: VecDeque::new(),
        finished: false,
    };
    let rows = futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(message) = state.pending.pop_front() {
                return Some((message, state));
            }
            if state.finished {
                return None;
            }
            match state.stream.next().await {
                Some(Ok(batch)) => state.encode(&batch),
                Some(Err(error)) => {
                    state.finished = true;
                    state.pending.push_back(Err(wire_error(Error::from(error))));
                }
                None => {
                    state.finished = true;
                    // The binary trailer, joined to the header when there were no rows (clients
                    // read a header alone as a row).
                    let ending = state.binary.then_some(BINARY_TRAILER);
                    let message = match (state.preamble.take(), ending) {
                        (None, None) => None,
                        (preamble, ending) => Some(with_preamble(
                            preamble,
                            CopyData::new(Bytes::from_static(ending.unwrap_or_default())),
                        )),
                    };
                    state.pending.extend(message.map(Ok));
                }
            }
        }
    });
    // Built with an empty stream, then given ours: it writes the binary trailer itself.
    let mut response = CopyResponse::new(i8::from(binary), columns, futures::stream::empty());
    *response.data_stream() = Box::pin(rows);
    Ok(Response::CopyOut(response))
}

/// The rows of a COPY being encoded.
struct CopyRows {
    stream: SendableRecordBatchStream,
    encoder: CopyEncoder,
    fields: Arc<Vec<FieldInfo>>,
    preamble: Option<Bytes>,
    binary: bool,
    pending: VecDeque<PgWireResult<CopyData>>,
    finished: bool,
}

impl CopyRows {
    /// Queues one message per row of `batch` (stopping at the first value that fails).
    fn encode(&mut self, batch: &RecordBatch) {
        for row in 0..batch.num_rows() {
            match encode_row(&mut self.encoder, batch, row, &self.fields) {
                Ok(data) => {
                    // pgwire's binary encoder writes the header itself, with the first row.
                    let preamble = self.preamble.take().filter(|_| !self.binary);
                    self.pending.push_back(Ok(with_preamble(preamble, data)));
                }
                Err(error) => {
                    self.finished = true;
                    self.pending.push_back(Err(error));
                    return;
                }
            }
        }
    }
}

fn encoder(options: &CopyOptions, fields: Arc<Vec<FieldInfo>>) -> CopyEncoder {
    match options.format {
        CopyFormat::Text => CopyEncoder::new_text(
            fields,
            CopyTextOptions {
                delimiter: options.delimiter.unwrap_or('\t').to_string().into(),
                null_string: options.null.clone().unwrap_or_else(|| "\\N".into()).into(),
            },
        ),
        CopyFormat::Csv => {
            let quote = options.quote.unwrap_or('"');
            CopyEncoder::new_csv(
                fields,
                CopyCsvOptions {
                    delimiter: options.delimiter.unwrap_or(',').to_string().into(),
                    quote: quote.to_string().into(),
                    escape: options.escape.unwrap_or(quote).to_string().into(),
                    null_string: options.null.clone().unwrap_or_default().into(),
                    force_quote: Vec::new(),
                },
            )
        }
        CopyFormat::Binary => CopyEncoder::new_binary(fields),
    }
}

fn encode_row(
    encoder: &mut CopyEncoder,
    batch: &RecordBatch,
    row: usize,
    fields: &[FieldInfo],
) -> PgWireResult<CopyData> {
    let schema = batch.schema();
    for ((column, arrow_field), pg_field) in batch.columns().iter().zip(schema.fields()).zip(fields)
    {
        encode_value(encoder, column, row, arrow_field, pg_field)?;
    }
    Ok(encoder.take_row())
}

fn with_preamble(preamble: Option<Bytes>, data: CopyData) -> CopyData {
    match preamble {
        None => data,
        Some(preamble) => {
            let mut joined = BytesMut::with_capacity(preamble.len() + data.data.len());
            joined.put_slice(&preamble);
            joined.put_slice(&data.data);
            CopyData::new(joined.freeze())
        }
    }
}

/// The CSV header line: column names, quoted where CSV needs it.
fn csv_header(options: &CopyOptions, fields: &[FieldInfo]) -> Bytes {
    let delimiter = options.delimiter.unwrap_or(',');
    let quote = options.quote.unwrap_or('"');
    let names: Vec<String> = fields
        .iter()
        .map(|field| {
            let name = field.name();
            if name.contains([delimiter, quote, '\n', '\r']) {
                let doubled = name.replace(quote, &format!("{quote}{quote}"));
                format!("{quote}{doubled}{quote}")
            } else {
                name.to_string()
            }
        })
        .collect();
    let mut line = names.join(&delimiter.to_string());
    line.push('\n');
    Bytes::from(line)
}
