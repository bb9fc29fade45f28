//! The SQL test runner: `.slt` files and oracle comparisons against the embedded engine, and the
//! same `.slt` files over the Postgres wire protocol and Arrow Flight SQL.
//!
//! - Every `slt/*.slt` file runs in a fresh session over the same fixture root, with
//!   sqllogictest's own runner (`query`, `statement ok`, `statement error <regex>`), three
//!   times: in the embedded engine (label `embedded`), and through the real `lancesql serve`
//!   binary with a real Postgres client (label `pgwire`) and with arrow-flight's Flight SQL
//!   client (label `flightsql`), against the same expectations. Values are compared as the
//!   engine formats them (Flight SQL brings Arrow, formatted as embedded results are); the
//!   wire's text forms of booleans are mapped back, and the few records whose text differs by
//!   protocol say so with `skipif`/`onlyif`. Errors read `[SQLSTATE] message` on every path
//!   (Flight SQL sends the SQLSTATE in the `x-sqlstate` header).
//! - Every query in `oracle.sql` runs twice, once over the Lance fixture and once over the same
//!   rows in a DataFusion `MemTable` (`oracle.public.<table>`), and the sorted results must match.
//!   `{t}` stands for each table with the basic schema, `{evolved}` for the schema-evolved one,
//!   `{labels}` for the table with a LABEL_LIST-indexed list column.
//!
//! The engine is reached through [`SqlTarget`], one per protocol. Arguments: an optional substring; only files and oracle queries
//! containing it run. `LANCESQL_SLT_COMPLETE=1` rewrites the expected results of the selected
//! `.slt` files from the engine's output (review the diff before committing). Ends with `N passed, N failed` and a non-zero exit status on failure.

mod fixtures;

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use futures::TryStreamExt;
use lancesql::engine::session::Outcome;
use lancesql::{Engine, EngineConfig, LanceSession, StoreConfig};
use sqllogictest::{DBOutput, DefaultColumnType};

/// The rows of a result as text, with the column types.
struct Rows {
    types: Vec<DataType>,
    rows: Vec<Vec<String>>,
}

/// A failed statement as every protocol reports it: its SQLSTATE and message.
#[derive(Debug)]
struct TargetError {
    sqlstate: String,
    message: String,
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}] {}", self.sqlstate, self.message)
    }
}

impl From<lancesql::Error> for TargetError {
    fn from(error: lancesql::Error) -> Self {
        TargetError {
            sqlstate: error.sqlstate().to_string(),
            message: error.to_string(),
        }
    }
}

impl From<tokio_postgres::Error> for TargetError {
    fn from(error: tokio_postgres::Error) -> Self {
        match error.as_db_error() {
            Some(db) => TargetError {
                sqlstate: db.code().code().to_string(),
                message: db.message().to_string(),
            },
            None => TargetError {
                sqlstate: "08000".to_string(),
                message: error.to_string(),
            },
        }
    }
}

/// Where SQL goes: the embedded engine or a protocol front end.
#[async_trait]
trait SqlTarget: Send {
    /// The sqllogictest label of the protocol (`skipif pgwire`).
    const LABEL: &'static str;

    /// Runs one statement (or several) and returns the rows of the last result as text.
    async fn query(&mut self, sql: &str) -> Result<Option<Rows>, TargetError>;
}

struct Embedded {
    session: LanceSession,
}

#[async_trait]
impl SqlTarget for Embedded {
    const LABEL: &'static str = "embedded";

    async fn query(&mut self, sql: &str) -> Result<Option<Rows>, TargetError> {
        let mut last = None;
        for statement in self.session.parse(sql)? {
            last = match self.session.run(statement).await? {
                Outcome::Done(_) => None,
                Outcome::Rows { stream, .. } => {
                    let types = stream
                        .schema()
                        .fields()
                        .iter()
                        .map(|field| field.data_type().clone())
                        .collect();
                    let batches: Vec<RecordBatch> =
                        stream.try_collect().await.map_err(lancesql::Error::from)?;
                    Some(Rows {
                        types,
                        rows: format_rows(&batches)?,
                    })
                }
            };
        }
        Ok(last)
    }
}

/// Formats cells as DataFusion's own sqllogictest suite does: NULL, `(empty)` for empty
/// strings, and one output row per line of a multi-line cell (EXPLAIN plans).
fn format_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, lancesql::Error> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|formatter| formatter.value(row).to_string())
                .collect();
            push_row(&mut rows, &cells);
        }
    }
    Ok(rows)
}

/// Adds one result row: empty strings as `(empty)`, and one output row per line of a
/// multi-line cell.
fn push_row(rows: &mut Vec<Vec<String>>, cells: &[String]) {
    let lines: Vec<Vec<&str>> = cells
        .iter()
        .map(|cell| match cell.as_str() {
            "" => vec!["(empty)"],
            cell => cell.trim_end().lines().collect(),
        })
        .collect();
    let height = lines.iter().map(Vec::len).max().unwrap_or(1).max(1);
    for line in 0..height {
        rows.push(
            lines
                .iter()
                .map(|cell_lines| {
                    cell_lines
                        .get(line)
                        .map_or("", |l| l.trim_end())
                        .to_string()
                })
                .collect(),
        );
    }
}

/// The same SQL through `lancesql serve` and a real Postgres client.
struct PgWire {
    client: tokio_postgres::Client,
}

impl PgWire {
    async fn connect(address: &str) -> PgWire {
        let (host, port) = address.rsplit_once(':').expect("host:port");
        let (client, connection) = tokio_postgres::Config::new()
            .host(host)
            .port(port.parse().expect("a port number"))
            .user("lancesql")
            .dbname("lancesql")
            .connect(tokio_postgres::NoTls)
            .await
            .expect("a connection to lancesql serve");
        // A broken connection shows as failing statements; the server's end is its own.
        tokio::spawn(connection);
        PgWire { client }
    }
}

#[async_trait]
impl SqlTarget for PgWire {
    const LABEL: &'static str = "pgwire";

    async fn query(&mut self, sql: &str) -> Result<Option<Rows>, TargetError> {
        use tokio_postgres::SimpleQueryMessage as M;
        let mut last = None;
        let mut current: Option<Vec<Vec<String>>> = None;
        for message in self.client.simple_query(sql).await? {
            match message {
                M::RowDescription(_) => current = Some(Vec::new()),
                M::Row(row) => {
                    let cells: Vec<String> = (0..row.len())
                        .map(|index| row.get(index).unwrap_or("NULL").to_string())
                        .collect();
                    push_row(current.get_or_insert_with(Vec::new), &cells);
                }
                M::CommandComplete(_) => last = current.take(),
                _ => {}
            }
        }
        let Some(rows) = last else {
            return Ok(None);
        };
        // The simple protocol carries no types: Describe the statement for them (a script of
        // several statements is typed as text).
        let types = match self.client.prepare(sql).await {
            Ok(statement) => statement
                .columns()
                .iter()
                .map(|column| arrow_type_of(column.type_()))
                .collect(),
            Err(_) => vec![DataType::Utf8; rows.first().map_or(0, Vec::len)],
        };
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .zip(&types)
                    .map(|(cell, data_type)| match (data_type, cell.as_str()) {
                        (DataType::Boolean, "t") => "true".to_string(),
                        (DataType::Boolean, "f") => "false".to_string(),
                        (DataType::Timestamp(..), text) if text != "NULL" => {
                            arrow_timestamp_text(text)
                        }
                        _ => cell,
                    })
                    .collect()
            })
            .collect();
        // `numeric` is how unsigned 64-bit integers travel (they do not fit `int8`); its OID
        // does not say whether it holds integers, so integral columns count as integers.
        let types = types
            .into_iter()
            .enumerate()
            .map(|(index, data_type)| {
                let integral = rows.iter().all(|row| {
                    row.get(index)
                        .is_some_and(|cell| cell == "NULL" || cell.parse::<i128>().is_ok())
                });
                match data_type {
                    DataType::Decimal128(..) if integral => DataType::Int64,
                    other => other,
                }
            })
            .collect();
        Ok(Some(Rows { types, rows }))
    }
}

/// The same SQL through `lancesql serve` and arrow-flight's Flight SQL client (logged in, so
/// one session keeps its settings).
struct FlightSql {
    client: arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
}

impl FlightSql {
    async fn connect(address: &str) -> FlightSql {
        let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
            .expect("a Flight SQL URI")
            .connect()
            .await
            .expect("a connection to lancesql serve's Flight SQL");
        let mut client = arrow_flight::sql::client::FlightSqlServiceClient::new(channel);
        // The server admits anyone (it trusts loopback); the handshake gives the session a token.
        client
            .handshake("lancesql", "")
            .await
            .expect("a Flight SQL session");
        FlightSql { client }
    }
}

impl From<arrow_flight::error::FlightError> for TargetError {
    fn from(error: arrow_flight::error::FlightError) -> Self {
        match error {
            arrow_flight::error::FlightError::Tonic(status) => TargetError {
                sqlstate: status
                    .metadata()
                    .get("x-sqlstate")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or("XX000")
                    .to_string(),
                message: status.message().to_string(),
            },
            other => TargetError {
                sqlstate: "08000".to_string(),
                message: other.to_string(),
            },
        }
    }
}

#[async_trait]
impl SqlTarget for FlightSql {
    const LABEL: &'static str = "flightsql";

    async fn query(&mut self, sql: &str) -> Result<Option<Rows>, TargetError> {
        let info = self.client.execute(sql.to_string(), None).await?;
        // A statement without rows ran at GetFlightInfo and names no endpoint.
        if info.endpoint.is_empty() {
            return Ok(None);
        }
        let schema = info
            .clone()
            .try_decode_schema()
            .map_err(|error| TargetError {
                sqlstate: "08000".to_string(),
                message: error.to_string(),
            })?;
        let mut batches = Vec::new();
        for endpoint in info.endpoint {
            let Some(ticket) = endpoint.ticket else {
                continue;
            };
            let stream = self.client.do_get(ticket).await?;
            batches.extend(stream.try_collect::<Vec<_>>().await?);
        }
        Ok(Some(Rows {
            types: schema
                .fields()
                .iter()
                .map(|field| field.data_type().clone())
                .collect(),
            rows: format_rows(&batches)?,
        }))
    }
}

/// The Arrow type class of a Postgres column type, for sqllogictest's column letters.
fn arrow_type_of(pg: &tokio_postgres::types::Type) -> DataType {
    use tokio_postgres::types::Type;
    match *pg {
        Type::INT2 | Type::INT4 | Type::INT8 => DataType::Int64,
        Type::FLOAT4 | Type::FLOAT8 => DataType::Float64,
        Type::NUMERIC => DataType::Decimal128(38, 0),
        Type::BOOL => DataType::Boolean,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None)
        }
        _ => DataType::Utf8,
    }
}

/// A Postgres timestamp's text (`2023-11-23 05:13:20.000000+00`) as Arrow writes the same
/// instant in UTC (`2023-11-23T05:13:20Z`): the two protocols' spellings of one value.
fn arrow_timestamp_text(text: &str) -> String {
    let (local, utc) = match text.strip_suffix("+00") {
        Some(local) => (local, true),
        None => (text, false),
    };
    let mut local = local.replacen(' ', "T", 1);
    if local.contains('.') {
        let trimmed = local.trim_end_matches('0').trim_end_matches('.').len();
        local.truncate(trimmed);
    }
    if utc {
        local.push('Z');
    }
    local
}

/// Compares whole rows with whitespace collapsed, so continuation lines of a multi-line cell
/// (whose other cells are empty) compare equal to their indented text.
fn row_validator(
    normalizer: sqllogictest::Normalizer,
    actual: &[Vec<String>],
    expected: &[String],
) -> bool {
    let actual: Vec<String> = actual
        .iter()
        .map(|row| normalizer(&row.join(" ")))
        .collect();
    let expected: Vec<String> = expected.iter().map(normalizer).collect();
    actual == expected
}

/// The sqllogictest letter of a column: `I` integers, `R` floating point and decimals, `T`
/// everything else (what DataFusion's own suite uses).
fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if data_type.is_floating()
        || matches!(
            data_type,
            DataType::Decimal128(..) | DataType::Decimal256(..)
        )
    {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

struct SltDb<T: SqlTarget>(T);

/// An error as `.slt` files see it: `[SQLSTATE] message`, so `statement error` lines can
/// assert the code as well as the words.
#[derive(Debug)]
struct SltError(TargetError);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SltError {}

#[async_trait]
impl<T: SqlTarget> sqllogictest::AsyncDB for SltDb<T> {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        match self.0.query(sql).await.map_err(SltError)? {
            None => Ok(DBOutput::StatementComplete(0)),
            Some(Rows { types, rows }) => Ok(DBOutput::Rows {
                types: types.iter().map(column_type).collect(),
                rows,
            }),
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        T::LABEL
    }
}

async fn session_for(engine: &Engine, oracle: &[fixtures::Oracle]) -> LanceSession {
    let session = engine.session().expect("session");
    fixtures::register_oracle(&session, oracle);
    session
}

async fn run_slt_files(
    engine: &Engine,
    filter: &str,
    complete: bool,
    server: &Served,
) -> (usize, Vec<String>) {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("sql-tests/slt exists")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "slt"))
        .filter(|path| path.to_string_lossy().contains(filter))
        .collect();
    files.sort();
    let mut passed = 0;
    let mut failures = Vec::new();
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        // As the server's sessions are: no oracle catalog beside the engine's.
        let session = engine.session().expect("session");
        let embedded = sqllogictest::Runner::new(move || {
            let session = session.clone();
            async move { Ok(SltDb(Embedded { session })) }
        });
        if complete {
            // Maintainer mode: rewrite expected results with what the engine returns now.
            let mut runner = prepared_runner(embedded);
            let updated = runner
                .update_test_file(
                    &file,
                    " ",
                    row_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::strict_column_validator,
                )
                .await;
            match updated {
                Ok(()) => println!("slt {name} ... rewritten"),
                Err(error) => failures.push(format!("slt {name}: {error}")),
            }
            continue;
        }
        let address = server.pg.clone();
        let pgwire = sqllogictest::Runner::new(move || {
            let address = address.clone();
            async move { Ok(SltDb(PgWire::connect(&address).await)) }
        });
        let address = server.flight.clone();
        let flightsql = sqllogictest::Runner::new(move || {
            let address = address.clone();
            async move { Ok(SltDb(FlightSql::connect(&address).await)) }
        });
        for outcome in [
            run_file(prepared_runner(embedded), &file).await,
            run_file(prepared_runner(pgwire), &file).await,
            run_file(prepared_runner(flightsql), &file).await,
        ] {
            match outcome {
                Ok(label) => {
                    println!("slt {name} ({label}) ... ok");
                    passed += 1;
                }
                Err((label, error)) => {
                    println!("slt {name} ({label}) ... FAILED\n{error}");
                    failures.push(format!("slt {name} ({label})"));
                }
            }
        }
    }
    (passed, failures)
}

/// A runner with the suite's comparison rules and its protocol's label.
fn prepared_runner<T, F>(
    mut runner: sqllogictest::Runner<SltDb<T>, F>,
) -> sqllogictest::Runner<SltDb<T>, F>
where
    T: SqlTarget + 'static,
    F: sqllogictest::MakeConnection<Conn = SltDb<T>>,
{
    runner.add_label(T::LABEL);
    runner.with_validator(row_validator);
    runner.with_column_validator(sqllogictest::strict_column_validator);
    runner
}

async fn run_file<T, F>(
    mut runner: sqllogictest::Runner<SltDb<T>, F>,
    file: &Path,
) -> Result<&'static str, (&'static str, String)>
where
    T: SqlTarget + 'static,
    F: sqllogictest::MakeConnection<Conn = SltDb<T>>,
{
    runner
        .run_file_async(file)
        .await
        .map(|()| T::LABEL)
        .map_err(|error| (T::LABEL, error.to_string()))
}

/// Where the real binary serves the fixture root.
struct Served {
    pg: String,
    flight: String,
}

/// Starts the real binary serving `root` over the Postgres wire and Flight SQL on free loopback
/// ports; returns the process and its addresses.
fn start_server(root: &str) -> (std::process::Child, Served) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lancesql"))
        .args(["--data", root, "--target-partitions", "2", "serve"])
        .args(["--pg-listen", "127.0.0.1:0", "--pg-auth", "trust"])
        .args(["--flight-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("lancesql serve starts");
    let stdout = child.stdout.take().expect("its stdout");
    let mut lines = std::io::BufReader::new(stdout);
    let (mut pg, mut flight) = (None, None);
    while pg.is_none() || flight.is_none() {
        let mut line = String::new();
        let read = lines
            .read_line(&mut line)
            .expect("lancesql serve prints its addresses");
        assert!(
            read > 0,
            "lancesql serve stopped before printing its addresses"
        );
        let address = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        if line.contains("Postgres wire protocol on") {
            pg = Some(address);
        } else if line.contains("Arrow Flight SQL on") {
            flight = Some(address);
        }
    }
    // The server may print more: keep reading, or it writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
    let served = Served {
        pg: pg.unwrap_or_default(),
        flight: flight.unwrap_or_default(),
    };
    (child, served)
}

async fn run_oracle_queries(
    engine: &Engine,
    oracle: &[fixtures::Oracle],
    filter: &str,
) -> (usize, Vec<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-tests/oracle.sql");
    let text = std::fs::read_to_string(&path).expect("sql-tests/oracle.sql exists");
    let without_comments: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let templates: Vec<String> = without_comments
        .split(';')
        .map(|query| query.trim().to_string())
        .filter(|query| !query.is_empty() && query.contains(filter))
        .collect();
    let mut target = Embedded {
        session: session_for(engine, oracle).await,
    };
    let mut passed = 0;
    let mut failures = Vec::new();
    for template in &templates {
        let (template, must_push) = match template.strip_prefix(PUSHED_MARK) {
            Some(rest) => (rest.trim(), true),
            None => (template.as_str(), false),
        };
        let Some((placeholder, tables)) = placeholder_tables(template) else {
            println!("oracle template without a table placeholder: {template}");
            failures.push(format!("oracle template without a placeholder: {template}"));
            continue;
        };
        // With ORDER BY the order is part of the answer; otherwise rows may come in any order.
        let ordered = template.to_ascii_uppercase().contains("ORDER BY");
        for table in tables {
            let lance_sql = template.replace(placeholder, table);
            let oracle_table = format!("oracle.public.{table}");
            let oracle_sql = template.replace(placeholder, &oracle_table);
            let lance = target
                .query(&lance_sql)
                .await
                .map(|rows| comparable(rows, ordered));
            let expected = target
                .query(&oracle_sql)
                .await
                .map(|rows| comparable(rows, ordered));
            let results_match = match (lance, expected) {
                (Ok(actual), Ok(expected)) if actual == expected => true,
                (actual, expected) => {
                    println!(
                        "oracle mismatch for: {lance_sql}\n  lance:  {actual:?}\n  oracle: {expected:?}"
                    );
                    false
                }
            };
            let pushed = !must_push || filter_is_pushed(&mut target, &lance_sql).await;
            if results_match && pushed {
                passed += 1;
            } else {
                failures.push(format!("oracle {lance_sql}"));
            }
        }
    }
    println!("oracle: {passed} comparisons matched");
    (passed, failures)
}

/// Marks an oracle query whose whole `WHERE` clause must be evaluated by the Lance scan.
const PUSHED_MARK: &str = "@pushed";

/// The placeholder a template uses and the fixtures it stands for; `None` when it has none.
fn placeholder_tables(template: &str) -> Option<(&'static str, Vec<&'static str>)> {
    if template.contains("{t}") {
        Some(("{t}", fixtures::BASIC_TABLES.to_vec()))
    } else if template.contains("{labels}") {
        Some(("{labels}", vec!["t_labels"]))
    } else if template.contains("{evolved}") {
        Some(("{evolved}", vec!["t_evolved"]))
    } else {
        None
    }
}

/// Whether the physical plan of `sql` leaves no filter to DataFusion (every condition went into
/// the scan); prints the plan when it does not.
async fn filter_is_pushed(target: &mut Embedded, sql: &str) -> bool {
    let plan = match target.query(&format!("EXPLAIN {sql}")).await {
        Ok(Some(rows)) => rows
            .rows
            .iter()
            .map(|row| row.join(" "))
            .collect::<Vec<_>>()
            .join("\n"),
        Ok(None) => String::new(),
        Err(error) => format!("EXPLAIN failed: {error}"),
    };
    let physical = plan.split("physical_plan").nth(1).unwrap_or_default();
    let pushed = !physical.is_empty() && !physical.contains("FilterExec");
    if !pushed {
        println!("filter not pushed into the scan for: {sql}\n{plan}");
    }
    pushed
}

/// Rows to compare: as they came when the query orders them, sorted otherwise.
fn comparable(rows: Option<Rows>, ordered: bool) -> Vec<Vec<String>> {
    let mut rows = rows.map(|rows| rows.rows).unwrap_or_default();
    if !ordered {
        rows.sort();
    }
    rows
}

fn main() {
    // `cargo test` passes libtest flags (e.g. --nocapture); only a bare word is a filter.
    let filter = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .unwrap_or_default();
    let complete = std::env::var_os("LANCESQL_SLT_COMPLETE").is_some();
    // The engine's own runtime and statement thread, as the binary runs them: the suite plans
    // statements as deep as the engine admits.
    let runtime = lancesql::runtime::build().expect("tokio runtime");
    let (passed, failures) = lancesql::runtime::run_on_statement_thread(&runtime, || async {
        let root = tempfile::tempdir().expect("temporary data root");
        let root_path = root.path().to_string_lossy().to_string();
        let oracle = fixtures::write_fixtures(&root_path).await;
        let engine = Engine::new(
            &StoreConfig::local(root_path.clone()),
            EngineConfig {
                target_partitions: Some(2),
                ..EngineConfig::default()
            },
        )
        .expect("engine over the fixture root");
        let (mut server, served) = start_server(&root_path);
        let (slt_passed, mut failures) = run_slt_files(&engine, &filter, complete, &served).await;
        let _ = server.kill();
        let _ = server.wait();
        let (oracle_passed, oracle_failures) = run_oracle_queries(&engine, &oracle, &filter).await;
        failures.extend(oracle_failures);
        (slt_passed + oracle_passed, failures)
    })
    .expect("the statement thread");
    println!("{passed} passed, {} failed", failures.len());
    if !failures.is_empty() {
        for failure in &failures {
            println!("  failed: {failure}");
        }
        std::process::exit(1);
    }
}
