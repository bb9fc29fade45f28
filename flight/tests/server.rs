//! The Flight SQL server end to end: a real listener on 127.0.0.1 port 0, arrow-flight's own
//! `FlightSqlServiceClient`, and an engine of in-memory DataFusion tables behind the session
//! interface (no Lance).

use std::sync::Arc;
use std::time::Duration;

use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::sql::{
    CommandGetDbSchemas, CommandGetTables, CommandStatementIngest, SqlInfo, TableDefinitionOptions,
    TableExistsOption, TableNotExistOption,
};
use arrow_flight::{FlightInfo, Ticket};
use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, AsArray, Float32Array, Int64Array, ListArray, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Int64Type, Schema, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use futures::{StreamExt, TryStreamExt};
use lancesql_flight::{
    BackendError, BackendResult, Executed, FlightConfig, FlightServer, IfTableExists, IngestTarget,
    Login, Planned, SessionSource, SqlSession, TableEntry,
};
use prost::Message;
use tonic::transport::Channel;

/// Sessions over one shared set of in-memory tables.
struct MemorySource {
    tables: Arc<SessionContext>,
}

struct MemorySession {
    context: SessionContext,
}

fn failed(error: DataFusionError) -> BackendError {
    let code = match &error {
        DataFusionError::Plan(_) | DataFusionError::SQL(..) => tonic::Code::InvalidArgument,
        _ => tonic::Code::Internal,
    };
    BackendError::new(code, error.to_string())
}

impl SessionSource for MemorySource {
    type Session = MemorySession;

    fn open_session(&self) -> BackendResult<MemorySession> {
        // Each session sees the shared catalog but keeps its own settings.
        let context = SessionContext::new_with_state(self.tables.state());
        Ok(MemorySession { context })
    }

    fn check_password(&self, user: &str, password: &str) -> bool {
        user == "ann" && password == "secret"
    }

    fn has_users(&self) -> bool {
        true
    }
}

#[async_trait]
impl SqlSession for MemorySession {
    async fn plan(&self, sql: &str, values: Vec<ScalarValue>) -> BackendResult<Planned> {
        let plan = self
            .context
            .state()
            .create_logical_plan(sql)
            .await
            .map_err(failed)?;
        let types = plan.get_parameter_types().map_err(failed)?;
        let mut names: Vec<&String> = types.keys().collect();
        names.sort_by_key(|name| name.trim_start_matches('$').parse::<usize>().unwrap_or(0));
        let parameters = names
            .into_iter()
            .map(|name| {
                let data_type = types[name].clone().unwrap_or(DataType::Null);
                Field::new(name, data_type, true)
            })
            .collect::<Vec<_>>();
        let result = if values.is_empty() {
            plan.schema().as_arrow().clone()
        } else {
            let bound = plan
                .clone()
                .with_param_values(ParamValues::List(
                    values.into_iter().map(Into::into).collect(),
                ))
                .map_err(failed)?;
            bound.schema().as_arrow().clone()
        };
        let returns_rows = !matches!(
            plan,
            datafusion::logical_expr::LogicalPlan::Ddl(_)
                | datafusion::logical_expr::LogicalPlan::Dml(_)
                | datafusion::logical_expr::LogicalPlan::Statement(_)
        );
        Ok(Planned {
            parameters: Arc::new(Schema::new(parameters)),
            schema: Arc::new(result),
            returns_rows,
        })
    }

    async fn execute(&self, sql: &str, parameters: Vec<ScalarValue>) -> BackendResult<Executed> {
        let frame = self.context.sql(sql).await.map_err(failed)?;
        let frame = frame
            .with_param_values(ParamValues::List(
                parameters.into_iter().map(Into::into).collect(),
            ))
            .map_err(failed)?;
        let stream = frame.execute_stream().await.map_err(failed)?;
        Ok(Executed::Rows(stream))
    }

    async fn tables(&self) -> BackendResult<Vec<TableEntry>> {
        let mut tables = Vec::new();
        for catalog_name in self.context.catalog_names() {
            let Some(catalog) = self.context.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                for name in schema.table_names() {
                    tables.push(TableEntry {
                        catalog: catalog_name.clone(),
                        schema: schema_name.clone(),
                        name,
                        table_type: "TABLE".into(),
                    });
                }
            }
        }
        Ok(tables)
    }

    async fn table_schema(&self, table: &TableEntry) -> BackendResult<SchemaRef> {
        let reference = format!("{}.{}.{}", table.catalog, table.schema, table.name);
        let provider = self
            .context
            .table_provider(reference)
            .await
            .map_err(failed)?;
        Ok(provider.schema())
    }

    async fn ingest(
        &self,
        target: &IngestTarget,
        data: SendableRecordBatchStream,
    ) -> BackendResult<u64> {
        let schema = data.schema();
        let batches: Vec<RecordBatch> = data.try_collect().await.map_err(failed)?;
        let rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>() as u64;
        let exists = self.context.table_exist(&target.table).map_err(failed)?;
        let mut all = Vec::new();
        match (exists, target.if_exists, target.create_if_missing) {
            (true, IfTableExists::Fail, _) => {
                return Err(BackendError::new(
                    tonic::Code::AlreadyExists,
                    "table exists",
                ));
            }
            (true, IfTableExists::Append, _) => {
                let frame = self.context.table(&target.table).await.map_err(failed)?;
                all = frame.collect().await.map_err(failed)?;
            }
            (false, _, false) => {
                return Err(BackendError::new(tonic::Code::NotFound, "no such table"));
            }
            _ => {}
        }
        all.extend(batches);
        let table = MemTable::try_new(schema, vec![all]).map_err(failed)?;
        self.context
            .deregister_table(&target.table)
            .map_err(failed)?;
        self.context
            .register_table(&target.table, Arc::new(table))
            .map_err(failed)?;
        Ok(rows)
    }
}

struct Running {
    address: std::net::SocketAddr,
    service: Arc<lancesql_flight::service::FlightSqlEngine<MemorySource>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(login: Login) -> Running {
    let tables = SessionContext::new();
    let numbers = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec![Some("one"), None, Some("three")])),
        ],
    )
    .expect("batch");
    tables.register_batch("numbers", numbers).expect("register");
    let config = FlightConfig {
        listen: "127.0.0.1:0".into(),
        login,
        anonymous_network: false,
        tls_cert: None,
        tls_key: None,
        session_idle_timeout: Duration::from_secs(600),
        server_name: "test".into(),
        server_version: "1".into(),
    };
    let server = FlightServer::bind(
        MemorySource {
            tables: Arc::new(tables),
        },
        &config,
    )
    .await
    .expect("bind");
    let address = server.local_addr().expect("address");
    let service = server.service();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    Running {
        address,
        service,
        _stop: stop,
    }
}

async fn connect(running: &Running) -> FlightSqlServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", running.address))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    FlightSqlServiceClient::new(channel)
}

async fn logged_in(running: &Running) -> FlightSqlServiceClient<Channel> {
    let mut client = connect(running).await;
    client.handshake("ann", "secret").await.expect("login");
    client
}

async fn fetch(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for endpoint in info.endpoint {
        let ticket = endpoint.ticket.expect("ticket");
        let stream = client.do_get(ticket).await.expect("do_get");
        batches.extend(stream.try_collect::<Vec<_>>().await.expect("batches"));
    }
    batches
}

fn ints(batches: &[RecordBatch], column: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|batch| {
            batch
                .column(column)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

#[tokio::test]
async fn queries_prepared_statements_and_settings() {
    let running = start(Login::Password).await;
    let mut client = logged_in(&running).await;

    let info = client
        .execute("SELECT id, name FROM numbers ORDER BY id".into(), None)
        .await
        .expect("execute");
    let schema = info.clone().try_decode_schema().expect("schema");
    assert_eq!(schema.field(0).name(), "id");
    let batches = fetch(&mut client, info).await;
    assert_eq!(ints(&batches, 0), vec![1, 2, 3]);

    // A prepared statement with an integer and a float-list parameter, run twice.
    let mut prepared = client
        .prepare(
            "SELECT id, $2 AS vector FROM numbers WHERE id > $1 ORDER BY id".into(),
            None,
        )
        .await
        .expect("prepare");
    assert_eq!(
        prepared
            .parameter_schema()
            .expect("parameters")
            .fields()
            .len(),
        2
    );
    for (above, expected) in [(1, vec![2, 3]), (2, vec![3])] {
        let vector = ListArray::from_iter_primitive::<Float32Type, _, _>(vec![Some(vec![
            Some(0.5f32),
            Some(1.0),
            Some(2.0),
        ])]);
        let parameters = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("$1", DataType::Int64, true),
                Field::new("$2", vector.data_type().clone(), true),
            ])),
            vec![Arc::new(Int64Array::from(vec![above])), Arc::new(vector)],
        )
        .expect("parameters");
        prepared.set_parameters(parameters).expect("bind");
        let info = prepared.execute().await.expect("execute prepared");
        let batches = fetch(&mut client, info).await;
        assert_eq!(ints(&batches, 0), expected);
        let vector = batches[0].column(1).as_list::<i32>().value(0);
        assert_eq!(
            vector.as_primitive::<Float32Type>().values().to_vec(),
            vec![0.5, 1.0, 2.0]
        );
    }
    prepared.close().await.expect("close");

    // Settings persist in the token's session, not in others.
    client
        .execute_update("SET datafusion.execution.batch_size = 2".into(), None)
        .await
        .expect("set");
    let info = client
        .execute("SELECT id FROM numbers".into(), None)
        .await
        .expect("execute");
    let batches = fetch(&mut client, info).await;
    assert!(
        batches.iter().all(|batch| batch.num_rows() <= 2),
        "{batches:?}"
    );
    let mut other = logged_in(&running).await;
    let info = other
        .execute("SELECT id FROM numbers".into(), None)
        .await
        .expect("execute");
    let batches = fetch(&mut other, info).await;
    assert_eq!(batches.iter().map(RecordBatch::num_rows).max(), Some(3));
    // A float column comes back as floats.
    let info = client
        .execute("SELECT CAST(1.5 AS REAL) AS x".into(), None)
        .await
        .expect("execute");
    let batches = fetch(&mut client, info).await;
    let floats = batches[0].column(0).as_any().downcast_ref::<Float32Array>();
    assert_eq!(floats.map(|floats| floats.value(0)), Some(1.5));
}

#[tokio::test]
async fn metadata_calls_answer_with_the_specified_schemas() {
    let running = start(Login::Password).await;
    let mut client = logged_in(&running).await;

    let info = client.get_catalogs().await.expect("catalogs");
    let batches = fetch(&mut client, info).await;
    let catalogs = batches[0].column(0).as_string::<i32>();
    assert_eq!(catalogs.value(0), "datafusion");

    let info = client
        .get_db_schemas(CommandGetDbSchemas {
            catalog: Some("datafusion".into()),
            db_schema_filter_pattern: Some("pub%".into()),
        })
        .await
        .expect("schemas");
    let batches = fetch(&mut client, info).await;
    assert_eq!(batches[0].num_rows(), 1);

    for include_schema in [false, true] {
        let info = client
            .get_tables(CommandGetTables {
                catalog: None,
                db_schema_filter_pattern: None,
                table_name_filter_pattern: Some("num%".into()),
                table_types: vec![],
                include_schema,
            })
            .await
            .expect("tables");
        let announced = info.clone().try_decode_schema().expect("schema");
        let batches = fetch(&mut client, info).await;
        assert_eq!(batches[0].schema().as_ref(), &announced);
        assert_eq!(batches[0].num_rows(), 1);
        assert_eq!(batches[0].num_columns(), if include_schema { 5 } else { 4 });
        if include_schema {
            let bytes = batches[0].column(4).as_binary::<i32>().value(0);
            let schema = Schema::try_from(arrow_flight::IpcMessage(bytes.to_vec().into()))
                .expect("an IPC schema");
            assert_eq!(schema.field(0).name(), "id");
        }
    }

    let info = client
        .get_sql_info(vec![SqlInfo::FlightSqlServerName])
        .await
        .expect("sql info");
    let batches = fetch(&mut client, info).await;
    assert_eq!(batches[0].num_rows(), 1);

    let info = client.get_table_types().await.expect("table types");
    let batches = fetch(&mut client, info).await;
    assert_eq!(batches[0].num_rows(), 3);

    let info = client
        .get_primary_keys(arrow_flight::sql::CommandGetPrimaryKeys {
            catalog: None,
            db_schema: None,
            table: "numbers".into(),
        })
        .await
        .expect("primary keys");
    let announced = info.clone().try_decode_schema().expect("schema");
    let batches = fetch(&mut client, info).await;
    assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 0);
    assert!(
        batches
            .iter()
            .all(|batch| batch.schema().as_ref() == &announced)
    );
}

#[tokio::test]
async fn ingest_creates_appends_and_replaces() {
    let running = start(Login::Password).await;
    let mut client = logged_in(&running).await;
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)])),
        vec![Arc::new(Int64Array::from(vec![10, 20]))],
    )
    .expect("batch");
    let ingest =
        |if_not_exist: TableNotExistOption, if_exists: TableExistsOption| CommandStatementIngest {
            table_definition_options: Some(TableDefinitionOptions {
                if_not_exist: if_not_exist.into(),
                if_exists: if_exists.into(),
            }),
            table: "landed".into(),
            schema: None,
            catalog: None,
            temporary: false,
            transaction_id: None,
            options: Default::default(),
        };
    let send = |batch: &RecordBatch| futures::stream::iter(vec![Ok(batch.clone())]);
    let rows = client
        .execute_ingest(
            ingest(TableNotExistOption::Create, TableExistsOption::Fail),
            send(&batch),
        )
        .await
        .expect("create");
    assert_eq!(rows, 2);
    let refused = client
        .execute_ingest(
            ingest(TableNotExistOption::Create, TableExistsOption::Fail),
            send(&batch),
        )
        .await
        .expect_err("exists");
    assert!(refused.to_string().contains("table exists"), "{refused}");
    client
        .execute_ingest(
            ingest(TableNotExistOption::Fail, TableExistsOption::Append),
            send(&batch),
        )
        .await
        .expect("append");
    let count = |client: &mut FlightSqlServiceClient<Channel>| {
        let mut client = client.clone();
        async move {
            let info = client
                .execute("SELECT count(*) AS n FROM landed".into(), None)
                .await
                .expect("count");
            ints(&fetch(&mut client, info).await, 0)[0]
        }
    };
    assert_eq!(count(&mut client).await, 4);
    client
        .execute_ingest(
            ingest(TableNotExistOption::Create, TableExistsOption::Replace),
            send(&batch),
        )
        .await
        .expect("replace");
    assert_eq!(count(&mut client).await, 2);
}

#[tokio::test]
async fn refusals_keep_the_server_serving() {
    let running = start(Login::Password).await;

    let mut anonymous = connect(&running).await;
    let error = anonymous
        .execute("SELECT 1".into(), None)
        .await
        .expect_err("no token");
    assert_eq!(code(&error), Some(tonic::Code::Unauthenticated), "{error}");
    let error = anonymous
        .handshake("ann", "wrong")
        .await
        .expect_err("bad password");
    // The client wraps a refused handshake in an error of its own.
    assert!(
        error.to_string().contains("wrong user name or password"),
        "{error}"
    );
    anonymous.set_token("forged".into());
    let error = anonymous
        .execute("SELECT 1".into(), None)
        .await
        .expect_err("bad token");
    assert_eq!(code(&error), Some(tonic::Code::Unauthenticated), "{error}");

    let mut client = logged_in(&running).await;
    let error = client
        .execute("SELEC 1".into(), None)
        .await
        .expect_err("bad sql");
    assert_eq!(code(&error), Some(tonic::Code::InvalidArgument), "{error}");
    let error = client
        .do_get(Ticket {
            ticket: b"garbage".to_vec().into(),
        })
        .await
        .expect_err("bad ticket");
    assert!(!error.to_string().is_empty());
    let info = client
        .execute("SELECT 1 AS one".into(), None)
        .await
        .expect("still serving");
    assert_eq!(ints(&fetch(&mut client, info).await, 0), vec![1]);

    // Anonymous access, when chosen, needs no login.
    let open = start(Login::Anonymous).await;
    let mut anonymous = connect(&open).await;
    let info = anonymous
        .execute("SELECT 2 AS two".into(), None)
        .await
        .expect("anonymous");
    assert_eq!(ints(&fetch(&mut anonymous, info).await, 0), vec![2]);
}

#[tokio::test]
async fn cancelling_and_dropping_free_the_query() {
    let running = start(Login::Password).await;
    let mut client = logged_in(&running).await;
    let endless = "SELECT value FROM generate_series(1, 1000000000000) AS t(value)";
    // A client that stops reading mid-stream: the server frees the query.
    let info = client.execute(endless.into(), None).await.expect("execute");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let mut stream = client.do_get(ticket).await.expect("do_get");
    stream.next().await.expect("a batch").expect("ok");
    assert_eq!(running.service.queries().running(), 1);
    drop(stream);
    wait_until(|| running.service.queries().running() == 0).await;

    // CancelFlightInfo stops a running query.
    let info = client.execute(endless.into(), None).await.expect("execute");
    let ticket = info.endpoint[0].ticket.clone().expect("ticket");
    let mut stream = client.do_get(ticket).await.expect("do_get");
    stream.next().await.expect("a batch").expect("ok");
    let action = arrow_flight::Action {
        r#type: "CancelFlightInfo".into(),
        body: arrow_flight::CancelFlightInfoRequest::new(info)
            .encode_to_vec()
            .into(),
    };
    let replies = client.do_action(action).await.expect("cancel");
    let replies: Vec<_> = replies.try_collect().await.expect("cancel result");
    let result =
        arrow_flight::CancelFlightInfoResult::decode(replies[0].body.as_ref()).expect("decode");
    assert_eq!(result.status, arrow_flight::CancelStatus::Cancelled as i32);
    let mut ended = None;
    while let Some(item) = stream.next().await {
        if let Err(error) = item {
            ended = Some(error.to_string());
            break;
        }
    }
    let ended = ended.expect("the stream ends with an error");
    assert!(ended.contains("cancelled"), "{ended}");
    wait_until(|| running.service.queries().running() == 0).await;
}

fn code(error: &arrow_flight::error::FlightError) -> Option<tonic::Code> {
    match error {
        arrow_flight::error::FlightError::Tonic(status) => Some(status.code()),
        _ => None,
    }
}

async fn wait_until(condition: impl Fn() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the condition never held");
}
