//! The Flight SQL service: every RPC, answered through a session of the engine.
//!
//! Contract:
//! - Queries: GetFlightInfo plans (so errors and the result schema come back at once) and
//!   answers one endpoint whose ticket carries the statement, its bound parameters and a query
//!   id; DoGet runs it and streams the engine's batches as they come (gRPC flow control is the
//!   backpressure; nothing is collected in the server). A statement that returns no rows
//!   (DDL, `SET`, writes) sent as a query runs at GetFlightInfo and answers no endpoints.
//! - Prepared statements are stateless ([`crate::handle`]): create plans and returns the
//!   parameter and result schemas; binding returns a new handle; close frees nothing.
//! - Updates (`CommandStatementUpdate`, prepared updates) return the rows the engine reports
//!   affected, or -1 when it reports none.
//! - Ingest hands the client's batch stream to the engine, which commits once.
//! - Metadata calls use arrow-flight's builders, so their schemas are the specification's.
//! - Errors become statuses through [`crate::error`] only; no error stops the server.

use std::pin::Pin;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::{DictionaryHandling, FlightDataEncoderBuilder};
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{GetCatalogsBuilder, GetDbSchemasBuilder, SqlInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionCancelQueryRequest, ActionCancelQueryResult, ActionClosePreparedStatementRequest,
    ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult, Any, Command,
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys,
    CommandGetImportedKeys, CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, CommandGetXdbcTypeInfo, CommandPreparedStatementQuery,
    CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TableExistsOption, TableNotExistOption, TicketStatementQuery,
};
use arrow_flight::{
    Action, ActionType, CancelFlightInfoRequest, CancelFlightInfoResult, CancelStatus,
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::common::spawn_buffered;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use crate::backend::{
    BackendError, Executed, IfTableExists, IngestTarget, SessionSource, SqlSession, TableEntry,
};
use crate::error::{Error, Result};
use crate::handle::{QueryTicket, StatementHandle};
use crate::queries::{CancelOutcome, RunningQueries};
use crate::sessions::{CallSession, Sessions};
use crate::{metadata, placeholders};

/// The action type of Flight's `CancelFlightInfo` (not part of Flight SQL's own list).
const CANCEL_FLIGHT_INFO: &str = "CancelFlightInfo";

type DataStream =
    Pin<Box<dyn Stream<Item = std::result::Result<arrow_flight::FlightData, Status>> + Send>>;

/// The Flight SQL service over the sessions of one engine.
pub struct FlightSqlEngine<S: SessionSource> {
    sessions: Sessions<S>,
    queries: RunningQueries,
    sql_info: SqlInfoData,
}

impl<S: SessionSource> FlightSqlEngine<S> {
    pub fn new(sessions: Sessions<S>, sql_info: SqlInfoData) -> Self {
        FlightSqlEngine {
            sessions,
            queries: RunningQueries::default(),
            sql_info,
        }
    }

    /// The registry of streaming queries (to observe cancellation in tests).
    pub fn queries(&self) -> &RunningQueries {
        &self.queries
    }

    fn session(&self, metadata: &MetadataMap) -> Result<CallSession<S::Session>> {
        self.sessions.session(metadata)
    }

    /// Plans a query statement and answers where to fetch its rows; runs a command at once.
    async fn statement_info(
        &self,
        metadata: &MetadataMap,
        statement: StatementHandle,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>> {
        let CallSession { session, issued } = self.session(metadata)?;
        // The first bound row's values decide the types of untyped placeholders (`SELECT $1`).
        let first_row = statement
            .parameter_rows()?
            .into_iter()
            .next()
            .unwrap_or_default();
        let planned = session.plan(&statement.sql, first_row).await?;
        if !planned.returns_rows {
            let affected = run_command(session.as_ref(), &statement).await?;
            let info = flight_info(&Schema::empty(), None, descriptor)?;
            return Ok(with_token(
                Response::new(info.with_total_records(affected)),
                issued,
            ));
        }
        let ticket = QueryTicket {
            statement: Some(statement),
            query_id: crate::sessions::random_id()?,
        };
        let ticket = TicketStatementQuery {
            statement_handle: ticket.encode_to_vec().into(),
        };
        let info = flight_info(&planned.schema, Some(ticket.as_any()), descriptor)?;
        Ok(with_token(Response::new(info), issued))
    }

    /// Runs a ticket's statement, once per bound parameter row, streaming the rows.
    async fn run_ticket(
        &self,
        metadata: &MetadataMap,
        ticket: QueryTicket,
    ) -> Result<Response<DataStream>> {
        let CallSession { session, issued } = self.session(metadata)?;
        let statement = ticket
            .statement
            .ok_or_else(|| Error::invalid("the ticket names no statement"))?;
        let registration = self.queries.start(&ticket.query_id)?;
        let rows = statement.parameter_rows()?;
        let mut streams = Vec::with_capacity(rows.len());
        for parameters in rows {
            match session.execute(&statement.sql, parameters).await? {
                Executed::Rows(stream) => streams.push(stream),
                Executed::Done { .. } => {}
            }
        }
        let schema = match streams.first() {
            Some(stream) => stream.schema(),
            None => session.plan(&statement.sql, Vec::new()).await?.schema,
        };
        let batches = futures::stream::iter(streams)
            .flatten()
            .map_err(|error| FlightError::ExternalError(Box::new(error)));
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            // The result schema GetFlightInfo announced keeps dictionaries as they are.
            .with_dictionary_handling(DictionaryHandling::Resend)
            .build(batches)
            .map_err(flight_error);
        let guarded = registration.guard(Box::pin(encoded));
        let stream: DataStream = Box::pin(guarded.map_err(Status::from));
        Ok(with_token(Response::new(stream), issued))
    }

    async fn tables(
        &self,
        session: &S::Session,
        catalog: Option<&str>,
        schema_pattern: Option<&str>,
        table_pattern: Option<&str>,
        table_types: &[String],
    ) -> Result<Vec<TableEntry>> {
        let mut tables = session.tables().await?;
        tables.retain(|table| {
            catalog.is_none_or(|catalog| catalog == table.catalog)
                && (table_types.is_empty() || table_types.contains(&table.table_type))
        });
        let schemas: Vec<&str> = tables.iter().map(|table| table.schema.as_str()).collect();
        let names: Vec<&str> = tables.iter().map(|table| table.name.as_str()).collect();
        let keep_schema = like(&schemas, schema_pattern)?;
        let keep_name = like(&names, table_pattern)?;
        Ok(tables
            .into_iter()
            .enumerate()
            .filter(|(index, _)| keep_schema[*index] && keep_name[*index])
            .map(|(_, table)| table)
            .collect())
    }

    fn cancel(&self, info: &FlightInfo) -> Result<CancelOutcome> {
        let mut outcome = CancelOutcome::NotRunning;
        for endpoint in &info.endpoint {
            let Some(ticket) = &endpoint.ticket else {
                continue;
            };
            let any = Any::decode(ticket.ticket.as_ref())
                .map_err(|error| Error::invalid(format!("not a ticket: {error}")))?;
            let Ok(Command::TicketStatementQuery(ticket)) = Command::try_from(any) else {
                continue;
            };
            let query = QueryTicket::decode_ticket(&ticket.statement_handle)?;
            if self.queries.cancel(&query.query_id) == CancelOutcome::Cancelled {
                outcome = CancelOutcome::Cancelled;
            }
        }
        Ok(outcome)
    }
}

/// `response`, carrying the token of a session made for its call (anonymous access).
fn with_token<T>(mut response: Response<T>, issued: Option<String>) -> Response<T> {
    if let Some(token) = issued
        && let Ok(header) = format!("Bearer {token}").parse()
    {
        response.metadata_mut().insert("authorization", header);
    }
    response
}

/// Runs a statement that returns no rows, once per bound parameter row; the rows it affected,
/// or -1 when the engine does not say.
async fn run_command<T: SqlSession + ?Sized>(
    session: &T,
    statement: &StatementHandle,
) -> Result<i64> {
    let mut total: Option<u64> = None;
    for parameters in statement.parameter_rows()? {
        let affected = match session.execute(&statement.sql, parameters).await? {
            Executed::Done { affected } => affected,
            Executed::Rows(stream) => Some(count_rows(stream).await?),
        };
        if let Some(affected) = affected {
            total = Some(total.unwrap_or(0) + affected);
        }
    }
    Ok(total.map_or(-1, |total| i64::try_from(total).unwrap_or(i64::MAX)))
}

async fn count_rows(mut stream: SendableRecordBatchStream) -> Result<u64> {
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        rows += batch.map_err(engine_error)?.num_rows() as u64;
    }
    Ok(rows)
}

/// An engine stream's error, with the code the engine chose when it said.
fn engine_error(error: DataFusionError) -> Error {
    if let DataFusionError::External(source) = &error
        && let Some(backend) = source.downcast_ref::<BackendError>()
    {
        return Error::Backend(backend.clone());
    }
    Error::Backend(BackendError::new(tonic::Code::Internal, error.to_string()))
}

fn flight_error(error: FlightError) -> Error {
    match error {
        FlightError::ExternalError(source) => match source.downcast::<DataFusionError>() {
            Ok(error) => engine_error(*error),
            Err(other) => {
                Error::Backend(BackendError::new(tonic::Code::Internal, other.to_string()))
            }
        },
        FlightError::Arrow(error) => Error::arrow("encoding results", error),
        other => Error::Backend(BackendError::new(tonic::Code::Internal, other.to_string())),
    }
}

/// Which of `values` match the SQL `LIKE` pattern (all of them without one).
fn like(values: &[&str], pattern: Option<&str>) -> Result<Vec<bool>> {
    let Some(pattern) = pattern else {
        return Ok(vec![true; values.len()]);
    };
    let values = StringArray::from(values.to_vec());
    let matched = datafusion::arrow::compute::kernels::comparison::like(
        &values,
        &StringArray::new_scalar(pattern),
    )
    .map_err(|error| Error::invalid(format!("bad name pattern '{pattern}': {error}")))?;
    Ok(matched
        .iter()
        .map(|matched| matched == Some(true))
        .collect())
}

fn flight_info(
    schema: &Schema,
    ticket: Option<Any>,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo> {
    let mut info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|error| Error::arrow("encoding the result schema", error))?
        .with_descriptor(descriptor)
        .with_ordered(true);
    if let Some(ticket) = ticket {
        info = info.with_endpoint(FlightEndpoint::new().with_ticket(Ticket {
            ticket: ticket.encode_to_vec().into(),
        }));
    }
    Ok(info)
}

/// A FlightInfo whose ticket is the metadata command itself (answered by the matching DoGet).
fn metadata_info(
    schema: &Schema,
    command: Any,
    request: &Request<FlightDescriptor>,
) -> std::result::Result<Response<FlightInfo>, Status> {
    Ok(Response::new(flight_info(
        schema,
        Some(command),
        request.get_ref().clone(),
    )?))
}

fn batch_stream(batch: RecordBatch) -> Response<DataStream> {
    let schema = batch.schema();
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::iter([Ok(batch)]))
        .map_err(|error| Status::from(flight_error(error)));
    Response::new(Box::pin(encoded))
}

fn built(batch: std::result::Result<RecordBatch, FlightError>) -> Result<RecordBatch> {
    batch.map_err(flight_error)
}

fn schema_bytes(schema: &Schema) -> Result<bytes::Bytes> {
    let message: std::result::Result<IpcMessage, _> =
        SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into();
    let IpcMessage(bytes) = message.map_err(|error| Error::arrow("encoding a schema", error))?;
    Ok(bytes)
}

/// The record batches of a DoPut, after its first message named the command.
async fn put_batches(request: Request<PeekableFlightDataStream>) -> Result<Vec<RecordBatch>> {
    put_stream(request)
        .try_collect()
        .await
        .map_err(|error| Error::invalid(format!("the data sent does not decode: {error}")))
}

fn put_stream(request: Request<PeekableFlightDataStream>) -> FlightRecordBatchStream {
    // The peekable stream still yields the first message (the descriptor and the schema).
    let data = request.into_inner().map_err(FlightError::from);
    FlightRecordBatchStream::new_from_flight_data(data)
}

/// Batches an ingest receives ahead of the writer.
const INGEST_READ_AHEAD_BATCHES: usize = 8;

/// `data`, received and decoded by a task of its own up to [`INGEST_READ_AHEAD_BATCHES`] ahead of
/// the consumer: the writer encodes while the client keeps sending, where reading only when the
/// writer asks would stall the client on flow control for every page Lance encodes. Dropping the
/// result stops the task.
fn read_ahead(data: SendableRecordBatchStream) -> SendableRecordBatchStream {
    spawn_buffered(data, INGEST_READ_AHEAD_BATCHES)
}

fn ingest_target(command: &CommandStatementIngest) -> Result<IngestTarget> {
    if command.temporary {
        return Err(Error::Unsupported(
            "temporary tables are not supported: ingest into a table".into(),
        ));
    }
    if command.transaction_id.is_some() {
        return Err(Error::Unsupported(
            "transactions are not supported: each ingest commits on its own".into(),
        ));
    }
    let options = command.table_definition_options.unwrap_or_default();
    let create_if_missing = match TableNotExistOption::try_from(options.if_not_exist) {
        Ok(TableNotExistOption::Create) => true,
        Ok(TableNotExistOption::Fail | TableNotExistOption::Unspecified) => false,
        Err(_) => return Err(Error::invalid("unknown if_not_exist option")),
    };
    let if_exists = match TableExistsOption::try_from(options.if_exists) {
        Ok(TableExistsOption::Append) => IfTableExists::Append,
        Ok(TableExistsOption::Replace) => IfTableExists::Replace,
        Ok(TableExistsOption::Fail | TableExistsOption::Unspecified) => IfTableExists::Fail,
        Err(_) => return Err(Error::invalid("unknown if_exists option")),
    };
    Ok(IngestTarget {
        catalog: command.catalog.clone(),
        schema: command.schema.clone(),
        table: command.table.clone(),
        create_if_missing,
        if_exists,
    })
}

#[tonic::async_trait]
impl<S: SessionSource> FlightSqlService for FlightSqlEngine<S> {
    type FlightService = FlightSqlEngine<S>;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> std::result::Result<
        Response<
            Pin<Box<dyn Stream<Item = std::result::Result<HandshakeResponse, Status>> + Send>>,
        >,
        Status,
    > {
        let token = self.sessions.handshake(request.metadata())?;
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into_bytes().into(),
        };
        let mut response: Response<
            Pin<Box<dyn Stream<Item = std::result::Result<HandshakeResponse, Status>> + Send>>,
        > = Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        let header = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::internal("a session token is not a valid header"))?;
        response.metadata_mut().insert("authorization", header);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        if query.transaction_id.is_some() {
            return Err(Error::Unsupported("transactions are not supported".into()).into());
        }
        Ok(self
            .statement_info(
                request.metadata(),
                StatementHandle::new(placeholders::numbered(&query.query)),
                request.get_ref().clone(),
            )
            .await?)
    }

    async fn get_flight_info_prepared_statement(
        &self,
        command: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let statement = StatementHandle::decode_handle(&command.prepared_statement_handle)?;
        Ok(self
            .statement_info(request.metadata(), statement, request.get_ref().clone())
            .await?)
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        metadata_info(&query.into_builder().schema(), query.as_any(), &request)
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        metadata_info(
            &query.clone().into_builder().schema(),
            query.as_any(),
            &request,
        )
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        metadata_info(
            &query.clone().into_builder().schema(),
            query.as_any(),
            &request,
        )
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        metadata_info(&query.into_builder().schema(), query.as_any(), &request)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        metadata_info(&self.sql_info.schema(), query.as_any(), &request)
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        metadata_info(&metadata::primary_keys_schema(), query.as_any(), &request)
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        metadata_info(&metadata::foreign_keys_schema(), query.as_any(), &request)
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        metadata_info(&metadata::foreign_keys_schema(), query.as_any(), &request)
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        metadata_info(&metadata::foreign_keys_schema(), query.as_any(), &request)
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        metadata_info(
            &metadata::xdbc_type_info().schema(),
            query.as_any(),
            &request,
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let ticket = QueryTicket::decode_ticket(&ticket.statement_handle)?;
        Ok(self.run_ticket(request.metadata(), ticket).await?)
    }

    async fn do_get_prepared_statement(
        &self,
        command: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let ticket = QueryTicket {
            statement: Some(StatementHandle::decode_handle(
                &command.prepared_statement_handle,
            )?),
            query_id: crate::sessions::random_id()?,
        };
        Ok(self.run_ticket(request.metadata(), ticket).await?)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let CallSession { session, issued } = self.session(request.metadata())?;
        let mut catalogs: Vec<String> = session
            .tables()
            .await
            .map_err(Error::from)?
            .into_iter()
            .map(|table| table.catalog)
            .collect();
        catalogs.sort();
        catalogs.dedup();
        let mut builder: GetCatalogsBuilder = query.into_builder();
        for catalog in catalogs {
            builder.append(catalog);
        }
        Ok(with_token(batch_stream(built(builder.build())?), issued))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let CallSession { session, issued } = self.session(request.metadata())?;
        let mut schemas: Vec<(String, String)> = session
            .tables()
            .await
            .map_err(Error::from)?
            .into_iter()
            .map(|table| (table.catalog, table.schema))
            .collect();
        schemas.sort();
        schemas.dedup();
        let mut builder: GetDbSchemasBuilder = query.into_builder();
        for (catalog, schema) in schemas {
            builder.append(catalog, schema);
        }
        Ok(with_token(batch_stream(built(builder.build())?), issued))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let CallSession { session, issued } = self.session(request.metadata())?;
        let tables = self
            .tables(
                session.as_ref(),
                query.catalog.as_deref(),
                query.db_schema_filter_pattern.as_deref(),
                query.table_name_filter_pattern.as_deref(),
                &query.table_types,
            )
            .await?;
        let include_schema = query.include_schema;
        let mut builder = query.into_builder();
        for table in tables {
            let schema = if include_schema {
                session.table_schema(&table).await.map_err(Error::from)?
            } else {
                SchemaRef::new(Schema::empty())
            };
            builder
                .append(
                    &table.catalog,
                    &table.schema,
                    &table.name,
                    &table.table_type,
                    &schema,
                )
                .map_err(flight_error)?;
        }
        Ok(with_token(batch_stream(built(builder.build())?), issued))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let mut builder = query.into_builder();
        for table_type in metadata::TABLE_TYPES {
            builder.append(table_type);
        }
        Ok(batch_stream(built(builder.build())?))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(batch_stream(built(
            query.into_builder(&self.sql_info).build(),
        )?))
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        _request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(batch_stream(metadata::no_rows(
            metadata::primary_keys_schema(),
        )))
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        _request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(batch_stream(metadata::no_rows(
            metadata::foreign_keys_schema(),
        )))
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        _request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(batch_stream(metadata::no_rows(
            metadata::foreign_keys_schema(),
        )))
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        _request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(batch_stream(metadata::no_rows(
            metadata::foreign_keys_schema(),
        )))
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        _request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        Ok(batch_stream(built(
            query.into_builder(metadata::xdbc_type_info()).build(),
        )?))
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> std::result::Result<i64, Status> {
        if command.transaction_id.is_some() {
            return Err(Error::Unsupported("transactions are not supported".into()).into());
        }
        let session = self.session(request.metadata())?.session;
        let statement = StatementHandle::new(placeholders::numbered(&command.query));
        Ok(run_command(session.as_ref(), &statement).await?)
    }

    async fn do_put_statement_ingest(
        &self,
        command: CommandStatementIngest,
        request: Request<PeekableFlightDataStream>,
    ) -> std::result::Result<i64, Status> {
        let target = ingest_target(&command)?;
        let session = self.session(request.metadata())?.session;
        let mut batches = put_stream(request);
        let first =
            batches.next().await.transpose().map_err(|error| {
                Error::invalid(format!("the data sent does not decode: {error}"))
            })?;
        let schema = batches
            .schema()
            .cloned()
            .or_else(|| first.as_ref().map(RecordBatch::schema))
            .ok_or_else(|| Error::invalid("the ingest sent no schema"))?;
        let rest = batches.map_err(|error| {
            DataFusionError::External(Box::new(BackendError::new(
                tonic::Code::InvalidArgument,
                format!("the data sent does not decode: {error}"),
            )))
        });
        let data = futures::stream::iter(first.map(Ok)).chain(rest);
        let data: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(schema, data));
        let rows = session
            .ingest(&target, read_ahead(data))
            .await
            .map_err(Error::from)?;
        Ok(i64::try_from(rows).unwrap_or(i64::MAX))
    }

    async fn do_put_prepared_statement_query(
        &self,
        command: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> std::result::Result<DoPutPreparedStatementResult, Status> {
        let statement = StatementHandle::decode_handle(&command.prepared_statement_handle)?;
        let batches = put_batches(request).await?;
        let bound = statement.with_parameters(&batches)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(bound.encode_to_vec().into()),
        })
    }

    async fn do_put_prepared_statement_update(
        &self,
        command: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> std::result::Result<i64, Status> {
        let mut statement = StatementHandle::decode_handle(&command.prepared_statement_handle)?;
        let session = self.session(request.metadata())?.session;
        // Parameters come with the update itself, or were bound to the handle before.
        let batches = put_batches(request).await?;
        if batches.iter().any(|batch| batch.num_rows() > 0) {
            statement = statement.with_parameters(&batches)?;
        }
        Ok(run_command(session.as_ref(), &statement).await?)
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> std::result::Result<ActionCreatePreparedStatementResult, Status> {
        if query.transaction_id.is_some() {
            return Err(Error::Unsupported("transactions are not supported".into()).into());
        }
        let session = self.session(request.metadata())?.session;
        let sql = placeholders::numbered(&query.query);
        let planned = session.plan(&sql, Vec::new()).await.map_err(Error::from)?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: StatementHandle::new(sql).encode_to_vec().into(),
            dataset_schema: schema_bytes(&planned.schema)?,
            parameter_schema: schema_bytes(&planned.parameters)?,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> std::result::Result<(), Status> {
        // Handles carry everything; there is nothing to free.
        Ok(())
    }

    async fn do_action_cancel_query(
        &self,
        query: ActionCancelQueryRequest,
        request: Request<Action>,
    ) -> std::result::Result<ActionCancelQueryResult, Status> {
        self.sessions.authorize(request.metadata())?;
        let info = FlightInfo::decode(query.info.as_ref())
            .map_err(|error| Error::invalid(format!("not a FlightInfo: {error}")))?;
        // The deprecated action's `CancelResult` (not exported by arrow-flight) numbers its
        // values as `CancelStatus` does.
        let result = match self.cancel(&info)? {
            CancelOutcome::Cancelled => CancelStatus::Cancelled,
            CancelOutcome::NotRunning => CancelStatus::NotCancellable,
        };
        Ok(ActionCancelQueryResult {
            result: result as i32,
        })
    }

    async fn do_action_fallback(
        &self,
        request: Request<Action>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoActionStream>, Status> {
        if request.get_ref().r#type != CANCEL_FLIGHT_INFO {
            return Err(Error::Unsupported(format!(
                "unknown action '{}'",
                request.get_ref().r#type
            ))
            .into());
        }
        self.sessions.authorize(request.metadata())?;
        let cancel = CancelFlightInfoRequest::decode(request.get_ref().body.as_ref())
            .map_err(|error| Error::invalid(format!("not a CancelFlightInfoRequest: {error}")))?;
        let info = cancel
            .info
            .ok_or_else(|| Error::invalid("CancelFlightInfo names no FlightInfo"))?;
        let status = match self.cancel(&info)? {
            CancelOutcome::Cancelled => CancelStatus::Cancelled,
            CancelOutcome::NotRunning => CancelStatus::NotCancellable,
        };
        let result = arrow_flight::Result {
            body: CancelFlightInfoResult::new(status).encode_to_vec().into(),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(result)]))))
    }

    async fn list_custom_actions(&self) -> Option<Vec<std::result::Result<ActionType, Status>>> {
        Some(vec![Ok(ActionType {
            r#type: CANCEL_FLIGHT_INFO.into(),
            description: "Cancels a query: CancelFlightInfoRequest in, CancelFlightInfoResult out"
                .into(),
        })])
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
