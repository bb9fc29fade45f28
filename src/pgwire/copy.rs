//! COPY on the wire.
//!
//! - `COPY ... TO STDOUT`: the engine's rows in Postgres' text, CSV or binary COPY format,
//!   streamed as CopyData messages (one per row, as PostgreSQL sends them and as psycopg's row
//!   reader expects) between CopyOutResponse and CopyDone. Text and CSV values are encoded by
//!   `arrow-pg`, the same encoders as query results; binary rows by [`tuples`], which
//!   writes the same bytes a batch at a time. So a value reads the same through `SELECT` and
//!   through `COPY`.
//! - `COPY table FROM STDIN`: the client's CopyData goes through the engine's
//!   [`CopyInDecoder`] into record batches, which stream (a few batches ahead at most) into one
//!   append of the table, committed at CopyDone. A decoding error, a CopyFail or a lost
//!   connection ends the stream with an error, so nothing is committed.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion_postgres::arrow_pg::encoder::{Encoder, encode_value};
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{
    CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions, FieldInfo, Response,
};
use datafusion_postgres::pgwire::error::PgWireResult;
use datafusion_postgres::pgwire::messages::copy::CopyData;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::engine::{
    CommandTag, CopyFormat, CopyInDecoder, CopyOptions, LanceSession, PreparedStatement,
    StatementKind,
};
use crate::error::Error;
use crate::pgwire::handlers::wire_error;
use crate::pgwire::tuples;
use crate::pgwire::wire_types::pg_fields;

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
    let fields = Arc::new(pg_fields(&schema, &column_format, Some(format_options))?);
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
                    let ending =
                        matches!(state.encoder, RowEncoder::Binary).then_some(BINARY_TRAILER);
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
    encoder: RowEncoder,
    fields: Arc<Vec<FieldInfo>>,
    preamble: Option<Bytes>,
    pending: VecDeque<PgWireResult<CopyData>>,
    finished: bool,
}

impl CopyRows {
    /// Queues one message per row of `batch` (stopping at the first value that fails).
    fn encode(&mut self, batch: &RecordBatch) {
        let delimited = match &mut self.encoder {
            RowEncoder::Binary => {
                match tuples::copy_tuples(batch, &self.fields) {
                    Ok(rows) => {
                        for row in rows {
                            let preamble = self.preamble.take();
                            self.pending
                                .push_back(Ok(with_preamble(preamble, CopyData::new(row))));
                        }
                    }
                    Err(error) => {
                        self.finished = true;
                        self.pending.push_back(Err(error));
                    }
                }
                return;
            }
            RowEncoder::Delimited(encoder) => encoder,
        };
        for row in 0..batch.num_rows() {
            match encode_row(delimited, batch, row, &self.fields) {
                Ok(data) => {
                    let preamble = self.preamble.take();
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

/// How a COPY's rows become messages.
enum RowEncoder {
    /// Binary tuples, a batch at a time ([`tuples`]).
    Binary,
    /// Text or CSV lines, value by value by arrow-pg.
    Delimited(CopyEncoder),
}

fn encoder(options: &CopyOptions, fields: Arc<Vec<FieldInfo>>) -> RowEncoder {
    match options.format {
        CopyFormat::Text => RowEncoder::Delimited(CopyEncoder::new_text(
            fields,
            CopyTextOptions {
                delimiter: options.delimiter.unwrap_or('\t').to_string().into(),
                null_string: options.null.clone().unwrap_or_else(|| "\\N".into()).into(),
            },
        )),
        CopyFormat::Csv => {
            let quote = options.quote.unwrap_or('"');
            RowEncoder::Delimited(CopyEncoder::new_csv(
                fields,
                CopyCsvOptions {
                    delimiter: options.delimiter.unwrap_or(',').to_string().into(),
                    quote: quote.to_string().into(),
                    escape: options.escape.unwrap_or(quote).to_string().into(),
                    null_string: options.null.clone().unwrap_or_default().into(),
                    force_quote: Vec::new(),
                },
            ))
        }
        CopyFormat::Binary => RowEncoder::Binary,
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

/// Batches decoded ahead of the table write.
const COPY_IN_BATCHES_AHEAD: usize = 2;

type BatchResult = Result<RecordBatch, DataFusionError>;

/// A `COPY table FROM STDIN` receiving data.
pub struct CopyIn {
    decoder: CopyInDecoder,
    batches: mpsc::Sender<BatchResult>,
    write: JoinHandle<Result<CommandTag, Error>>,
}

impl CopyIn {
    /// Starts the table write and returns the CopyInResponse asking the client for rows.
    pub fn start(session: LanceSession, prepared: Arc<PreparedStatement>) -> (CopyIn, Response) {
        let schema = prepared.schema();
        let options = match prepared.kind() {
            StatementKind::CopyIn { options, .. } => options.clone(),
            _ => CopyOptions::default(),
        };
        let (sender, receiver) = mpsc::channel::<BatchResult>(COPY_IN_BATCHES_AHEAD);
        let rows = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|batch| (batch, receiver))
        });
        let rows = Box::pin(RecordBatchStreamAdapter::new(schema.clone(), rows));
        let write = tokio::spawn(async move { session.copy_in(&prepared, rows).await });
        let columns = schema.fields().len();
        // The overall format tells the client what to send (psycopg follows it).
        let format = i8::from(options.format == CopyFormat::Binary);
        let copy = CopyIn {
            decoder: CopyInDecoder::new(schema, options),
            batches: sender,
            write,
        };
        let response = CopyResponse::new(format, columns, futures::stream::empty());
        (copy, Response::CopyIn(response))
    }

    /// Decodes one CopyData message and passes on the batches it completed; `Err(None)` when
    /// the table write already ended (finish or abort says why).
    pub async fn push(&mut self, data: &[u8]) -> Result<(), Option<Error>> {
        for batch in self.decoder.push(data).map_err(Some)? {
            self.batches.send(Ok(batch)).await.map_err(|_| None)?;
        }
        Ok(())
    }

    /// The client's data ended: the last rows, then the commit.
    pub async fn finish(mut self) -> Result<CommandTag, Error> {
        let last = match self.decoder.finish() {
            Ok(last) => last,
            Err(error) => return Err(self.abort(Some(error)).await),
        };
        for batch in last {
            if self.batches.send(Ok(batch)).await.is_err() {
                return Err(self.abort(None).await);
            }
        }
        drop(self.batches);
        joined(self.write.await)
    }

    /// Ends the write with `error` (nothing is committed) and returns the error to report: the
    /// write's own when it ended first (`error` is `None`).
    pub async fn abort(self, error: Option<Error>) -> Error {
        if let Some(error) = &error {
            let stopped = Error::CopyFailed {
                message: error.to_string(),
            };
            // A closed channel means the write already ended; its result says why.
            let _ = self.batches.send(Err(DataFusionError::from(stopped))).await;
        }
        drop(self.batches);
        let written = joined(self.write.await);
        match (error, written) {
            (Some(error), _) => error,
            (None, Err(write_error)) => write_error,
            (None, Ok(_)) => Error::Internal {
                message: "a COPY's table write ended before its data".into(),
            },
        }
    }
}

fn joined(
    result: Result<Result<CommandTag, Error>, tokio::task::JoinError>,
) -> Result<CommandTag, Error> {
    result.map_err(|error| Error::Internal {
        message: format!("the table write of a COPY stopped: {error}"),
    })?
}
