//! What the Flight SQL front end needs from an engine, in DataFusion's terms only.
//!
//! Contract: a [`SessionSource`] checks credentials and opens sessions; a [`SqlSession`] plans
//! and runs one SQL statement at a time with bound parameters, lists its tables and ingests
//! record batches. Nothing here names a storage format, so the server serves any engine built
//! on DataFusion (in-memory tables in this crate's tests, Lance in `lancesql`).
//!
//! Every failure is a [`BackendError`] carrying the gRPC code the engine's own (single)
//! mapping chose, so the front end never classifies errors by their text.

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::scalar::ScalarValue;

/// A failure inside the engine, classified by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendError {
    pub code: tonic::Code,
    pub message: String,
    /// The SQL standard's SQLSTATE, when the engine has one; sent as the `x-sqlstate` header.
    pub sqlstate: Option<String>,
}

impl BackendError {
    pub fn new(code: tonic::Code, message: impl Into<String>) -> Self {
        BackendError {
            code,
            message: message.into(),
            sqlstate: None,
        }
    }

    pub fn with_sqlstate(mut self, sqlstate: impl Into<String>) -> Self {
        self.sqlstate = Some(sqlstate.into());
        self
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BackendError {}

pub type BackendResult<T> = std::result::Result<T, BackendError>;

/// A statement planned without running it.
#[derive(Debug, Clone)]
pub struct Planned {
    /// One field per placeholder (`$1`, `$2`, ...), in order; `Null` where the statement does
    /// not determine a type.
    pub parameters: SchemaRef,
    /// The columns executing the statement yields (no columns for commands).
    pub schema: SchemaRef,
    /// Whether executing the statement yields rows (a query) or only completes (a command).
    pub returns_rows: bool,
}

/// What running a statement produced.
pub enum Executed {
    /// Rows, streamed as the engine produces them. A failure while streaming should be a
    /// `DataFusionError::External` holding a [`BackendError`], so it keeps its code; any other
    /// error reaches the client as `Internal`.
    Rows(SendableRecordBatchStream),
    /// A command that completed, with the rows it affected where that is known.
    Done { affected: Option<u64> },
}

/// One table (or view) a session can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    pub catalog: String,
    pub schema: String,
    pub name: String,
    /// `TABLE`, `VIEW` or `SYSTEM TABLE`.
    pub table_type: String,
}

/// What an ingest does when its table already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfTableExists {
    /// Refuse the ingest.
    Fail,
    /// Add the rows to the table's.
    Append,
    /// Replace the table's rows (and columns) with the ingested ones.
    Replace,
}

/// Where and how an ingest writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestTarget {
    pub catalog: Option<String>,
    pub schema: Option<String>,
    pub table: String,
    /// Create the table when it does not exist (otherwise that is an error).
    pub create_if_missing: bool,
    pub if_exists: IfTableExists,
}

/// A provider of sessions: the engine behind the server.
pub trait SessionSource: Send + Sync + 'static {
    type Session: SqlSession;

    /// A new session, with its own settings.
    fn open_session(&self) -> BackendResult<Self::Session>;

    /// Whether `user` may log in with `password`. Only asked when the server requires logins.
    fn check_password(&self, user: &str, password: &str) -> bool;

    /// Whether any user could log in (a server requiring logins refuses to start without one).
    fn has_users(&self) -> bool;
}

/// One client's session: the settings it changed persist across its statements.
#[async_trait]
pub trait SqlSession: Send + Sync + 'static {
    /// Plans `sql` (exactly one statement) without running it. `parameters`, when given, are
    /// values about to be bound: placeholders the statement leaves untyped take their types,
    /// and the result schema is the one executing with them yields.
    async fn plan(&self, sql: &str, parameters: Vec<ScalarValue>) -> BackendResult<Planned>;

    /// Runs `sql` (exactly one statement) with `parameters` bound to `$1`, `$2`, ... in order.
    async fn execute(&self, sql: &str, parameters: Vec<ScalarValue>) -> BackendResult<Executed>;

    /// Every table and view the session can name, in every catalog and schema.
    async fn tables(&self) -> BackendResult<Vec<TableEntry>>;

    /// The columns `SELECT *` of `table` yields.
    async fn table_schema(&self, table: &TableEntry) -> BackendResult<SchemaRef>;

    /// Writes `data` into `target` in one commit; returns the rows written. A failure leaves
    /// the table as it was.
    async fn ingest(
        &self,
        target: &IngestTarget,
        data: SendableRecordBatchStream,
    ) -> BackendResult<u64>;
}
