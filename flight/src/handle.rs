//! Prepared-statement handles and tickets that carry everything needed to run them.
//!
//! Contract: the server keeps no state per prepared statement. A handle holds the SQL and, once
//! parameters are bound (DoPut), those parameters as an Arrow IPC stream; binding answers with
//! a new handle. A ticket holds the same plus a query id that `CancelFlightInfo` names. So any
//! server process can serve any handle or ticket, and closing a handle frees nothing.
//!
//! Handles and tickets are protobuf messages of our own; what a client sends back is decoded
//! and checked like any other input (a malformed one is `InvalidArgument`).

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::scalar::ScalarValue;
use prost::Message;

use crate::error::{Error, Result};

/// A statement with its bound parameters (the prepared-statement handle's content).
#[derive(Clone, PartialEq, Message)]
pub struct StatementHandle {
    #[prost(string, tag = "1")]
    pub sql: String,
    /// One Arrow IPC stream of parameter rows; empty when none are bound.
    #[prost(bytes = "bytes", tag = "2")]
    pub parameters: Bytes,
}

/// What DoGet runs: a statement, and the id `CancelFlightInfo` names it by.
#[derive(Clone, PartialEq, Message)]
pub struct QueryTicket {
    #[prost(message, optional, tag = "1")]
    pub statement: Option<StatementHandle>,
    #[prost(string, tag = "2")]
    pub query_id: String,
}

impl StatementHandle {
    pub fn new(sql: impl Into<String>) -> Self {
        StatementHandle {
            sql: sql.into(),
            parameters: Bytes::new(),
        }
    }

    pub fn decode_handle(bytes: &[u8]) -> Result<Self> {
        StatementHandle::decode(bytes)
            .map_err(|error| Error::invalid(format!("not a prepared statement handle: {error}")))
    }

    /// This statement with `batches` (the parameter rows a client bound) in place of any bound
    /// before.
    pub fn with_parameters(&self, batches: &[RecordBatch]) -> Result<Self> {
        let mut parameters = Vec::new();
        if let Some(first) = batches.first() {
            let mut writer = StreamWriter::try_new(&mut parameters, &first.schema())
                .map_err(|error| Error::arrow("encoding bound parameters", error))?;
            for batch in batches {
                writer
                    .write(batch)
                    .map_err(|error| Error::arrow("encoding bound parameters", error))?;
            }
            writer
                .finish()
                .map_err(|error| Error::arrow("encoding bound parameters", error))?;
        }
        Ok(StatementHandle {
            sql: self.sql.clone(),
            parameters: parameters.into(),
        })
    }

    /// The bound parameter rows, each as the values of `$1`, `$2`, ...; one empty row when no
    /// parameters are bound (the statement runs once).
    pub fn parameter_rows(&self) -> Result<Vec<Vec<ScalarValue>>> {
        if self.parameters.is_empty() {
            return Ok(vec![Vec::new()]);
        }
        let reader = StreamReader::try_new(std::io::Cursor::new(self.parameters.as_ref()), None)
            .map_err(|error| Error::invalid(format!("bound parameters do not decode: {error}")))?;
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|error| {
                Error::invalid(format!("bound parameters do not decode: {error}"))
            })?;
            rows.extend(batch_rows(&batch)?);
        }
        Ok(rows)
    }
}

/// Each row of `batch` as one value per column.
fn batch_rows(batch: &RecordBatch) -> Result<Vec<Vec<ScalarValue>>> {
    (0..batch.num_rows())
        .map(|row| {
            batch
                .columns()
                .iter()
                .map(|column| {
                    ScalarValue::try_from_array(column, row).map_err(|error| {
                        Error::invalid(format!("a bound parameter cannot be read: {error}"))
                    })
                })
                .collect()
        })
        .collect()
}

impl QueryTicket {
    pub fn decode_ticket(bytes: &[u8]) -> Result<Self> {
        QueryTicket::decode(bytes)
            .map_err(|error| Error::invalid(format!("not a ticket of this server: {error}")))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Array, Float32Array, Int64Array, ListArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn a_handle_carries_its_sql_and_parameters() {
        let vector =
            ListArray::from_iter_primitive::<datafusion::arrow::datatypes::Float32Type, _, _>(
                vec![Some(vec![Some(0.5), Some(1.0)]), Some(vec![Some(2.0)])],
            );
        let schema = Arc::new(Schema::new(vec![
            Field::new("$1", DataType::Int64, true),
            Field::new("$2", vector.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![7, 8])), Arc::new(vector)],
        )
        .expect("batch");
        let handle = StatementHandle::new("SELECT $1, $2")
            .with_parameters(&[batch])
            .expect("encode");
        let decoded = StatementHandle::decode_handle(&handle.encode_to_vec()).expect("decode");
        assert_eq!(decoded.sql, "SELECT $1, $2");
        let rows = decoded.parameter_rows().expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0], ScalarValue::Int64(Some(7)));
        let ScalarValue::List(list) = &rows[1][1] else {
            panic!("a list parameter, got {:?}", rows[1][1]);
        };
        let values = list.value(0);
        let floats = values
            .as_any()
            .downcast_ref::<Float32Array>()
            .expect("float32 values");
        assert_eq!(floats.values().to_vec(), vec![2.0]);
    }

    #[test]
    fn no_parameters_run_once() {
        let rows = StatementHandle::new("SELECT 1")
            .parameter_rows()
            .expect("rows");
        assert_eq!(rows, vec![Vec::<ScalarValue>::new()]);
    }

    #[test]
    fn garbage_is_refused_not_trusted() {
        let error = StatementHandle::decode_handle(b"\xff\xff\xff").expect_err("garbage");
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        let handle = StatementHandle {
            sql: "SELECT $1".into(),
            parameters: Bytes::from_static(b"not arrow"),
        };
        let error = handle.parameter_rows().expect_err("bad parameters");
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
    }
}
