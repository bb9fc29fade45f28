//! The engine behind the Flight SQL front end (the `lancesql-flight` crate).
//!
//! Contract: implements that crate's session interface with [`Engine`] and [`LanceSession`],
//! through the front door only (`prepare_sql`, `execute`, `ingest`), so Flight SQL sees the
//! SQL, settings and errors pgwire and the shell see. Errors keep their one classification:
//! [`Error::grpc_code`] chooses the status code, here and for failures while streaming. Like the
//! other front ends it imports nothing of Lance or the layers below the engine.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

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

use crate::engine::{
    Engine, IngestExisting, LanceSession, Outcome, PreparedStatement, StatementKind,
};
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
    queries: PreparedQueries,
}

/// How many prepared queries a session keeps.
const PREPARED_QUERIES_KEPT: usize = 32;

/// Queries a session prepared, by their SQL text, most recently used first. One Flight SQL
/// query names its statement by text in several calls (CreatePreparedStatement, GetFlightInfo,
/// DoGet, and again for every execution of a prepared statement); each call finds the statement
/// here instead of parsing and planning it again. An entry is used only while the engine says
/// it [is current](LanceSession::is_current) (same table versions and settings), so a hit plans
/// exactly what a miss would; any statement other than a query empties the cache too (it may
/// change what names resolve to). Handles stay stateless: another process, or an evicted entry,
/// simply prepares again.
#[derive(Default)]
struct PreparedQueries {
    entries: Mutex<VecDeque<(String, Arc<PreparedStatement>)>>,
}

impl PreparedQueries {
    fn entries(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, Arc<PreparedStatement>)>> {
        // Entries are inserted and removed whole, so a poisoned cache is still consistent.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, sql: &str) -> Option<Arc<PreparedStatement>> {
        let mut entries = self.entries();
        let position = entries.iter().position(|(cached, _)| cached == sql)?;
        let entry = entries.remove(position)?;
        let prepared = entry.1.clone();
        entries.push_front(entry);
        Some(prepared)
    }

    fn keep(&self, sql: &str, prepared: Arc<PreparedStatement>) {
        let mut entries = self.entries();
        entries.retain(|(cached, _)| cached != sql);
        entries.push_front((sql.to_string(), prepared));
        entries.truncate(PREPARED_QUERIES_KEPT);
    }

    fn clear(&self) {
        self.entries().clear();
    }
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
        Ok(FlightSession {
            session,
            queries: PreparedQueries::default(),
        })
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

impl FlightSession {
    /// `sql` prepared: the session's cached statement while it is current, else prepared anew
    /// (and kept, if it is a query).
    async fn prepared(&self, sql: &str) -> crate::error::Result<Arc<PreparedStatement>> {
        if let Some(cached) = self.queries.get(sql)
            && self.session.is_current(&cached).await?
        {
            return Ok(cached);
        }
        let prepared = Arc::new(self.session.prepare_sql(sql).await?);
        if matches!(prepared.kind(), StatementKind::Query) {
            self.queries.keep(sql, prepared.clone());
        }
        Ok(prepared)
    }
}

#[async_trait]
impl SqlSession for FlightSession {
    async fn plan(&self, sql: &str, parameters: Vec<ScalarValue>) -> BackendResult<Planned> {
        let prepared = self.prepared(sql).await.map_err(backend_error)?;
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
        let prepared = self.prepared(sql).await.map_err(backend_error)?;
        if !matches!(prepared.kind(), StatementKind::Query) {
            self.queries.clear();
        }
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
    fn a_session_keeps_its_most_recent_queries_until_a_command_runs() {
        let runtime = crate::runtime::build().expect("runtime");
        crate::runtime::run_on_statement_thread(&runtime, || async {
            let root = tempfile::tempdir().expect("root");
            let store =
                crate::config::StoreConfig::local(root.path().to_str().expect("utf-8 path"));
            let engine =
                Engine::new(&store, crate::config::EngineConfig::default()).expect("engine");
            let sessions = FlightSessions::new(engine, Arc::new(Users::default()));
            let session = sessions.open_session().expect("session");
            let query = |n: usize| format!("SELECT {n} AS n");
            let first = session.prepared(&query(0)).await.expect("prepare");
            let again = session.prepared(&query(0)).await.expect("prepare again");
            assert!(
                Arc::ptr_eq(&first, &again),
                "a repeated query is planned again"
            );
            for n in 1..=PREPARED_QUERIES_KEPT {
                session.prepared(&query(n)).await.expect("prepare");
            }
            assert!(
                session.queries.get(&query(0)).is_none(),
                "the oldest is dropped"
            );
            assert!(session.queries.get(&query(1)).is_some());
            // A command is not kept, and empties the cache.
            session
                .execute("SET lance.nprobes = 3", Vec::new())
                .await
                .expect("SET");
            assert!(session.queries.get(&query(1)).is_none());
            assert!(session.queries.get("SET lance.nprobes = 3").is_none());
        })
        .expect("the test thread");
    }

    #[test]
    fn identifiers_are_quoted_safely() {
        assert_eq!(quoted("a\"b"), "\"a\"\"b\"");
    }
}
