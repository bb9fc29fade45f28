//! pgwire's query handlers over one connection's [`LanceSession`].
//!
//! Simple queries run each statement in turn and stop at the first error (as Postgres does);
//! extended queries keep the [`PreparedStatement`] the engine planned at Parse, answer Describe
//! from its parameter types and result schema, and execute it with the bound parameters.
//! Results stream from the engine straight into data rows (text or binary, as the client asks).

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::common::spawn_buffered;
use datafusion_postgres::pgwire::api::auth::StartupHandler;
use datafusion_postgres::pgwire::api::cancel::CancelHandler;
use datafusion_postgres::pgwire::api::copy::CopyHandler;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::{
    ExtendedQueryHandler, SimpleQueryHandler, send_describe_response,
};
use datafusion_postgres::pgwire::api::results::{
    DescribePortalResponse, FieldInfo, QueryResponse, Response, Tag,
};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use datafusion_postgres::pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use datafusion_postgres::pgwire::messages::data::DataRow;
use datafusion_postgres::pgwire::messages::extendedquery::{Describe, TARGET_TYPE_BYTE_PORTAL};
use datafusion_postgres::pgwire::messages::startup::ParameterStatus;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use futures::SinkExt;
use futures::{Sink, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, watch};

use crate::engine::{
    CommandTag, LanceSession, Outcome, PreparedStatement, StatementKind, TransactionControl,
};
use crate::error::Error;
use crate::pgwire::access::Access;
use crate::pgwire::cancel::{CancelSignal, Canceller, Connections, cancellable, until_cancelled};
use crate::pgwire::copy::{CopyIn, copy_out};
use crate::pgwire::parameters::bound_values;
use crate::pgwire::startup::Startup;
use crate::pgwire::tuples::data_rows;
use crate::pgwire::wire_types::{encodable, parameter_type, pg_fields};

/// A statement as the extended protocol stores it: `None` for an empty query string.
pub type WireStatement = Option<Arc<PreparedStatement>>;

/// Everything pgwire asks of one connection.
pub struct ConnectionHandlers {
    queries: Arc<QueryHandler>,
    startup: Arc<Startup>,
    cancel: Arc<Canceller>,
}

impl ConnectionHandlers {
    /// Handlers for one connection; `slot` is its place under the connection limit (`None`
    /// refuses it at startup).
    pub fn new(
        session: LanceSession,
        access: Arc<Access>,
        slot: Option<OwnedSemaphorePermit>,
        connections: Arc<Connections>,
    ) -> Result<Self, Error> {
        let signal = Arc::new(CancelSignal::new());
        Ok(ConnectionHandlers {
            startup: Arc::new(Startup::new(
                session.clone(),
                access,
                slot,
                connections.clone(),
                signal.clone(),
            )?),
            queries: Arc::new(QueryHandler {
                parser: Arc::new(StatementParser {
                    session: session.clone(),
                }),
                session,
                signal,
                copy_in: tokio::sync::Mutex::new(None),
            }),
            cancel: Arc::new(Canceller { connections }),
        })
    }
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.cancel.clone()
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.queries.clone()
    }
}

/// Runs simple and extended queries through the session's front door.
pub struct QueryHandler {
    session: LanceSession,
    parser: Arc<StatementParser>,
    signal: Arc<CancelSignal>,
    /// The `COPY ... FROM STDIN` receiving data, if any.
    copy_in: tokio::sync::Mutex<Option<CopyIn>>,
}

#[async_trait]
impl SimpleQueryHandler for QueryHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        // A query sent again as it was (a dashboard's refresh, a script's loop) runs the plan
        // the session kept for its text while that is current, as in the extended protocol.
        if let Some(kept) = self.session.reusable(query).await.map_err(wire_error)? {
            let cancel = self.signal.watch();
            let outcome =
                until_cancelled(self.session.execute(&kept, Vec::new()), cancel.clone()).await;
            report_changes(client, self.session.take_reported_changes()).await?;
            return Ok(vec![match outcome {
                Ok(outcome) => respond(outcome, &Format::UnifiedText, options, cancel)?,
                Err(error) => Response::Error(Box::new(error_info(&error))),
            }]);
        }
        let statements = self.session.parse(query).map_err(wire_error)?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let single = statements.len() == 1;
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            // Postgres runs a multi-statement query until the first error, and reports it.
            let cancel = self.signal.watch();
            let step = async {
                let prepared = self.session.prepare(statement).await?;
                if matches!(prepared.kind(), StatementKind::CopyIn { .. }) {
                    return Ok(Err(prepared));
                }
                if single {
                    self.session.remember_copy(query, &prepared);
                }
                self.session.execute_fresh(prepared).await.map(Ok)
            };
            let outcome = until_cancelled(step, cancel.clone()).await;
            report_changes(client, self.session.take_reported_changes()).await?;
            match outcome {
                Ok(Ok(outcome)) => responses.push(respond(
                    outcome,
                    &Format::UnifiedText,
                    options.clone(),
                    cancel,
                )?),
                // The client sends the rows next; statements after a COPY are not run.
                Ok(Err(copy)) => {
                    responses.push(self.start_copy_in(Arc::new(copy)).await);
                    break;
                }
                Err(error) => {
                    responses.push(Response::Error(Box::new(error_info(&error))));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for QueryHandler {
    type Statement = WireStatement;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    /// A SQL cursor is also a portal of the same name, as in Postgres: psycopg describes the
    /// cursor it declared to learn its columns.
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if message.target_type == TARGET_TYPE_BYTE_PORTAL
            && let Some(name) = message.name.as_deref()
            && client.portal_store().get_portal(name).is_none()
            && let Ok(schema) = self.session.cursor_schema(name)
        {
            let fields = pg_fields(&schema, &Format::UnifiedText, None)?;
            return send_describe_response(client, &DescribePortalResponse::new(fields)).await;
        }
        self._on_describe(client, message).await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(prepared) = &portal.statement.statement else {
            return Ok(Response::EmptyQuery);
        };
        let parameters = bound_values(portal, prepared)?;
        tracing::debug!(?parameters, "binding");
        if matches!(prepared.kind(), StatementKind::CopyIn { .. }) {
            return Ok(self.start_copy_in(prepared.clone()).await);
        }
        let cancel = self.signal.watch();
        let outcome =
            until_cancelled(self.session.execute(prepared, parameters), cancel.clone()).await;
        report_changes(client, self.session.take_reported_changes()).await?;
        let outcome = outcome.map_err(wire_error)?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        respond(outcome, &portal.result_column_format, options, cancel)
    }
}

impl QueryHandler {
    /// Starts receiving the rows of a prepared `COPY ... FROM STDIN`.
    async fn start_copy_in(&self, prepared: Arc<PreparedStatement>) -> Response {
        let (copy, response) = CopyIn::start(self.session.clone(), prepared);
        *self.copy_in.lock().await = Some(copy);
        response
    }

    async fn take_copy_in(&self) -> PgWireResult<CopyIn> {
        self.copy_in
            .lock()
            .await
            .take()
            .ok_or_else(|| wire_error(Error::invalid("no COPY ... FROM STDIN is in progress")))
    }
}

#[async_trait]
impl CopyHandler for QueryHandler {
    async fn on_copy_data<C>(&self, _client: &mut C, data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut copy = self.take_copy_in().await?;
        match copy.push(&data.data).await {
            Ok(()) => {
                *self.copy_in.lock().await = Some(copy);
                Ok(())
            }
            Err(error) => Err(wire_error(copy.abort(error).await)),
        }
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let copy = self.take_copy_in().await?;
        let tag = copy.finish().await.map_err(wire_error)?;
        client
            .send(PgWireBackendMessage::CommandComplete(
                Tag::new(&tag.to_string()).into(),
            ))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let failed = Error::CopyFailed {
            message: fail.message,
        };
        match self.take_copy_in().await {
            Ok(copy) => wire_error(copy.abort(Some(failed)).await),
            Err(error) => error,
        }
    }
}

/// Prepares statements for the extended protocol.
pub struct StatementParser {
    session: LanceSession,
}

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = WireStatement;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Self::Statement>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        // Drivers send a parameterised query's text again for every execution.
        if let Some(kept) = self.session.reusable(sql).await.map_err(wire_error)? {
            return Ok(Some(kept));
        }
        let mut statements = self.session.parse(sql).map_err(wire_error)?;
        match statements.len() {
            0 => Ok(None),
            1 => {
                let prepared = self
                    .session
                    .prepare(statements.remove(0))
                    .await
                    .map_err(wire_error)?;
                let prepared = Arc::new(prepared);
                self.session.remember(sql, &prepared);
                Ok(Some(prepared))
            }
            _ => Err(wire_error(Error::Syntax {
                message: "cannot insert multiple commands into a prepared statement".into(),
            })),
        }
    }

    fn get_parameter_types(&self, statement: &Self::Statement) -> PgWireResult<Vec<Type>> {
        let Some(prepared) = statement else {
            return Ok(Vec::new());
        };
        prepared
            .parameter_fields()
            .iter()
            .map(|field| match field {
                Some(field) => parameter_type(field),
                None => Ok(Type::UNKNOWN),
            })
            .collect()
    }

    fn get_result_schema(
        &self,
        statement: &Self::Statement,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        match statement {
            Some(prepared) if prepared.kind().returns_rows() => pg_fields(
                &prepared.schema(),
                format.unwrap_or(&Format::UnifiedText),
                None,
            ),
            _ => Ok(Vec::new()),
        }
    }
}

/// Tells the client about Postgres parameters a statement changed (`SET application_name`,
/// `SET TIME ZONE`, `RESET ALL`), as Postgres does with ParameterStatus messages.
async fn report_changes<C>(client: &mut C, changes: Vec<(String, String)>) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for (name, value) in changes {
        client
            .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                name, value,
            )))
            .await?;
    }
    Ok(())
}

/// Batches a result computes ahead of the rows being sent.
const RESULT_READ_AHEAD_BATCHES: usize = 2;

/// `stream`, computed by a task of its own up to [`RESULT_READ_AHEAD_BATCHES`] ahead of the
/// sender. Computed only when the sender asks, the next batch (read and decoded from Lance, then
/// converted for the wire) started when the previous one had been handed to the socket, and the
/// client sat idle once the socket's buffer drained: wide rows read ~25% slower than the server's
/// CPU time allowed. Dropping the result (the client went away or the statement was cancelled)
/// stops the task.
fn read_ahead(stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
    spawn_buffered(stream, RESULT_READ_AHEAD_BATCHES)
}

/// The wire response for what a statement produced.
fn respond(
    outcome: Outcome,
    format: &Format,
    options: Arc<FormatOptions>,
    cancel: watch::Receiver<u64>,
) -> PgWireResult<Response> {
    match outcome {
        Outcome::Rows {
            stream,
            kind: StatementKind::CopyOut(copy),
        } => copy_out(
            read_ahead(encodable(cancellable(stream, cancel))),
            &copy,
            options,
        ),
        Outcome::Rows { stream, kind } => {
            let stream = read_ahead(encodable(cancellable(stream, cancel)));
            let fields = Arc::new(pg_fields(stream.schema().as_ref(), format, Some(options))?);
            let encoding = fields.clone();
            let rows = stream
                .map(move |batch| {
                    let encoded = batch
                        .map_err(|error| wire_error(Error::from(error)))
                        .and_then(|batch| data_rows(&batch, &encoding));
                    let rows: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> =
                        match encoded {
                            Ok(rows) => Box::new(rows.into_iter().map(Ok)),
                            Err(error) => Box::new(std::iter::once(Err(error))),
                        };
                    futures::stream::iter(rows)
                })
                .flatten();
            let mut response = QueryResponse::new(fields, rows);
            response.set_command_tag(match kind {
                StatementKind::Show => "SHOW",
                StatementKind::Explain => "EXPLAIN",
                StatementKind::Fetch { .. } => "FETCH",
                _ => "SELECT",
            });
            Ok(Response::Query(response))
        }
        Outcome::Done(tag) => Ok(match tag {
            CommandTag::Select { rows } => Response::Execution(
                Tag::new("SELECT").with_rows(usize::try_from(rows).unwrap_or(usize::MAX)),
            ),
            CommandTag::Transaction(TransactionControl::Begin(_)) => {
                Response::TransactionStart(Tag::new("BEGIN"))
            }
            CommandTag::Transaction(control) if control.ends_block() => {
                Response::TransactionEnd(Tag::new(control.tag()))
            }
            other => Response::Execution(Tag::new(&other.to_string())),
        }),
    }
}

/// An engine error as the client sees it: its SQLSTATE from the engine's one mapping.
fn error_info(error: &Error) -> ErrorInfo {
    ErrorInfo::new(
        "ERROR".to_string(),
        error.sqlstate().to_string(),
        error.to_string(),
    )
}

pub(crate) fn wire_error(error: Error) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(&error)))
}
