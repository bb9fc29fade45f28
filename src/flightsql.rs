//! The engine behind the Flight SQL front end (the `lancesql-flight` crate).
//!
//! Contract: implements that crate's session interface with [`Engine`] and [`LanceSession`],
//! through the front door only (`prepare_sql_reusing`, `execute`, `ingest`), so Flight SQL sees
//! the SQL, settings and errors pgwire and the shell see. A Flight SQL query names its statement
//! by text in several calls; the session's recent queries spare planning it for each. Errors
//! keep their one classification: [`Error::grpc_code`] chooses the status code, here and for
//! failures while streaming. Like the other front ends it imports nothing of Lance or the
//! layers below the engine.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::scalar::ScalarValue;
use futures::TryStreamExt;
use lancesql_flight::{
    BackendError, BackendResult, Executed, IfTableExists, IngestTarget, Planned, SessionSource,
    SqlSession, TableEntry,
};

use crate::engine::{Engine, IngestExisting, LanceSession, Outcome};
use crate::error::Error;
use crate::pgwire::access::Users;

/// The catalog and schema that hold the data root's tables.
const CATALOG: &str = "lancesql";
const SCHEMA: &str = "public";
/// Schemas whose tables describe the database rather than hold data.
const SYSTEM_SCHEMAS: [&str; 3] = ["information_schema", "pg_catalog", "system"];

/// Sessions of one engine, for the Flight SQL server.
pub struct FlightSessions {
    engine: Engine,
    users: Arc<Users>,
}

impl FlightSessions {
    pub fn new(engine: Engine, users: Arc<Users>) -> Self {
        FlightSessions { engine, users }
    }
}

/// One Flight SQL client's session.
pub struct FlightSession {
    session: LanceSession,
}

/// The engine's error as the Flight SQL front end reports it.
fn backend_error(error: Error) -> BackendError {
    let code = tonic_code(error.grpc_code() as i32);
    BackendError::new(code, error.to_string()).with_sqlstate(error.sqlstate())
}

fn tonic_code(code: i32) -> lancesql_flight::Code {
    // `GrpcCode`'s numbers are the wire values, which is what tonic reads.
    lancesql_flight::Code::from(code)
}

impl SessionSource for FlightSessions {
    type Session = FlightSession;

    fn open_session(&self) -> BackendResult<FlightSession> {
        let session = self.engine.session().map_err(backend_error)?;
        Ok(FlightSession { session })
    }

    fn check_password(&self, user: &str, password: &str) -> bool {
        self.users.verify(user, password)
    }

    fn has_users(&self) -> bool {
        !self.users.is_empty()
    }
}

/// Rows shaped as `schema` (the statement's planned result, which GetFlightInfo announced:
/// clients check that the stream matches it), whose failures keep the engine's classification.
fn classified(stream: SendableRecordBatchStream, schema: SchemaRef) -> SendableRecordBatchStream {
    let shape = schema.clone();
    let mapped = stream
        .map_err(|error| {
            DataFusionError::External(Box::new(backend_error(Error::from_datafusion(error))))
        })
        .and_then(move |batch| std::future::ready(reshaped(batch, &shape)));
    Box::pin(RecordBatchStreamAdapter::new(schema, mapped))
}

/// `batch` under `schema`: execution may report a column's nullability or type differently from
/// planning (a nullable list of non-null values, a view type); the values are the same.
fn reshaped(batch: RecordBatch, schema: &SchemaRef) -> datafusion::error::Result<RecordBatch> {
    if batch.schema_ref() == schema {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(column.clone())
            } else {
                datafusion::arrow::compute::cast(column, field.data_type())
            }
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}

fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

#[async_trait]
impl SqlSession for FlightSession {
    async fn plan(&self, sql: &str, parameters: Vec<ScalarValue>) -> BackendResult<Planned> {
        let prepared = self
            .session
            .prepare_sql_reusing(sql)
            .await
            .map_err(backend_error)?;
        let schema = prepared.schema_with(&parameters).map_err(backend_error)?;
        let parameters: Vec<Field> = prepared
            .parameter_fields()
            .iter()
            .enumerate()
            .map(|(index, field)| {
                let data_type = field
                    .as_ref()
                    .map_or(DataType::Null, |field| field.data_type().clone());
                Field::new(format!("${}", index + 1), data_type, true)
            })
            .collect();
        Ok(Planned {
            parameters: Arc::new(Schema::new(parameters)),
            schema,
            returns_rows: prepared.kind().returns_rows(),
        })
    }

    async fn execute(&self, sql: &str, parameters: Vec<ScalarValue>) -> BackendResult<Executed> {
        let prepared = self
            .session
            .prepare_sql_reusing(sql)
            .await
            .map_err(backend_error)?;
        let schema = prepared.schema_with(&parameters).map_err(backend_error)?;
        match self
            .session
            .execute(&prepared, parameters)
            .await
            .map_err(backend_error)?
        {
            Outcome::Rows { stream, .. } => Ok(Executed::Rows(classified(stream, schema))),
            Outcome::Done(tag) => Ok(Executed::Done {
                affected: tag.rows(),
            }),
        }
    }

    async fn tables(&self) -> BackendResult<Vec<TableEntry>> {
        let listing = "SELECT table_catalog, table_schema, table_name, table_type \
                       FROM information_schema.tables";
        let stream = self
            .session
            .sql_stream(listing)
            .await
            .map_err(backend_error)?;
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|error| backend_error(Error::from_datafusion(error)))?;
        let mut tables = Vec::new();
        for batch in &batches {
            let text = |column: usize| batch.column(column).as_string::<i32>();
            let (catalogs, schemas, names, types) = (text(0), text(1), text(2), text(3));
            for row in 0..batch.num_rows() {
                let schema = schemas.value(row);
                let table_type = if SYSTEM_SCHEMAS.contains(&schema) {
                    "SYSTEM TABLE"
                } else if types.value(row) == "VIEW" {
                    "VIEW"
                } else {
                    "TABLE"
                };
                tables.push(TableEntry {
                    catalog: catalogs.value(row).to_string(),
                    schema: schema.to_string(),
                    name: names.value(row).to_string(),
                    table_type: table_type.to_string(),
                });
            }
        }
        Ok(tables)
    }

    async fn table_schema(&self, table: &TableEntry) -> BackendResult<SchemaRef> {
        let sql = format!(
            "SELECT * FROM {}.{}.{}",
            quoted(&table.catalog),
            quoted(&table.schema),
            quoted(&table.name)
        );
        let prepared = self
            .session
            .prepare_sql(&sql)
            .await
            .map_err(backend_error)?;
        Ok(prepared.schema())
    }

    async fn ingest(
        &self,
        target: &IngestTarget,
        data: SendableRecordBatchStream,
    ) -> BackendResult<u64> {
        let elsewhere = |given: &Option<String>, ours: &str| {
            given.as_deref().is_some_and(|given| given != ours)
        };
        if elsewhere(&target.catalog, CATALOG) || elsewhere(&target.schema, SCHEMA) {
            return Err(backend_error(Error::invalid(format!(
                "tables are ingested into {CATALOG}.{SCHEMA}, not {}.{}",
                target.catalog.as_deref().unwrap_or(CATALOG),
                target.schema.as_deref().unwrap_or(SCHEMA)
            ))));
        }
        let existing = match target.if_exists {
            IfTableExists::Fail => IngestExisting::Fail,
            IfTableExists::Append => IngestExisting::Append,
            IfTableExists::Replace => IngestExisting::Replace,
        };
        self.session
            .ingest(&target.table, target.create_if_missing, existing, data)
            .await
            .map_err(backend_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn status_codes_are_the_engine_mapping() {
        for (error, code) in [
            (
                Error::TableNotFound { table: "t".into() },
                lancesql_flight::Code::NotFound,
            ),
            (Error::invalid("x"), lancesql_flight::Code::InvalidArgument),
            (
                Error::ReadOnly {
                    statement: "INSERT".into(),
                },
                lancesql_flight::Code::PermissionDenied,
            ),
        ] {
            assert_eq!(backend_error(error).code, code);
        }
        // Every kind's number is a code tonic knows by that number.
        for kind in [
            ErrorKind::QueryCanceled,
            ErrorKind::OutOfMemory,
            ErrorKind::Internal,
        ] {
            let number = kind.grpc_code() as i32;
            assert_eq!(tonic_code(number) as i32, number);
        }
    }

    #[test]
    fn identifiers_are_quoted_safely() {
        assert_eq!(quoted("a\"b"), "\"a\"\"b\"");
    }
}
