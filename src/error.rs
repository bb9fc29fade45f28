//! The engine's one error type, its one [`ErrorKind`], and the kind's two mappings: to Postgres
//! SQLSTATE codes and to gRPC status codes.
//!
//! Every failure the engine reports carries the thing it is about (a table, a store URI, a file),
//! so a user can act on the message alone. Errors that cross DataFusion travel as
//! `DataFusionError::External(Box<Error>)` and are recovered by [`Error::from_datafusion`], so
//! front ends see the same variant whichever layer failed.
//!
//! [`Error::kind`] classifies an error by its type alone (our variants, DataFusion's, Arrow's and
//! Lance's, each match exhaustive, so a new upstream variant is a compile error here rather than
//! a silent internal error); no classification reads message text. Where DataFusion reports
//! distinct SQL conditions with one variant (an unknown table and an unknown function are both
//! `Plan` errors), the front door detects the condition before planning and raises our own
//! variant. [`ErrorKind::sqlstate`] and [`ErrorKind::grpc_code`] are the only places that assign
//! protocol codes; front ends must not invent others.
//!
//! Messages are for people: they never carry Rust source locations, Debug wrappers such as
//! `ParserError("...")`, or `LanceError(IO)` prefixes ([`describe_lance`], [`describe_datafusion`]).

use datafusion::error::DataFusionError;

/// A boxed error from a layer below us (object store, HTTP client, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A table name that names no dataset under the data root.
    #[error("table '{table}' does not exist")]
    TableNotFound { table: String },

    /// A column name that the table does not have.
    #[error("column '{column}' of table '{table}' does not exist")]
    ColumnNotFound { table: String, column: String },

    /// A row id that names no live row of the table at the version read.
    #[error("row id {row_id} does not exist in table '{table}' (version {version})")]
    RowNotFound {
        table: String,
        version: u64,
        row_id: u64,
    },

    /// `CREATE INDEX` of a name the table already has.
    #[error("index '{index}' already exists on table '{table}'")]
    IndexExists { table: String, index: String },

    /// An index name that the table (or, with no table named, any table) does not have.
    #[error("index '{index}' does not exist{}", table.as_ref().map(|table| format!(" on table '{table}'")).unwrap_or_default())]
    IndexNotFound {
        index: String,
        table: Option<String>,
    },

    /// A schema name that is not one of the catalog's.
    #[error("schema '{schema}' does not exist")]
    SchemaNotFound { schema: String },

    /// A write that would put NULL into a column declared `NOT NULL`.
    #[error("null value in column '{column}' of table '{table}' violates its NOT NULL constraint")]
    NotNullViolation { table: String, column: String },

    /// A function name that no registry knows.
    #[error("function '{name}' does not exist")]
    UndefinedFunction { name: String },

    /// A prepared statement whose result columns changed since it was prepared (a table it reads
    /// was altered by another writer); prepare it again.
    #[error("cached plan must not change result type: {detail}")]
    ResultTypeChanged { detail: String },

    /// CREATE TABLE / import of a name that is already a dataset.
    #[error("table '{table}' already exists")]
    TableExists { table: String },

    /// The local data folder does not exist.
    #[error(
        "data folder '{root}' does not exist: create it, or start with a command that writes \
         (`lancesql import`, `lancesql sql --demo-if-empty`)"
    )]
    RootNotFound { root: String },

    /// SQL text that does not parse.
    #[error("syntax error: {message}")]
    Syntax { message: String },

    /// A statement nested or chained deeper than the engine plans safely.
    #[error("statement too complex: {what}")]
    TooComplex { what: String },

    /// The statement was cancelled (Ctrl-C in the shell, a client's cancel request).
    #[error("canceling statement due to user request")]
    Cancelled,

    /// A Postgres parameter (`SET name ...`) that does not exist.
    #[error("unrecognized configuration parameter \"{name}\"")]
    UndefinedParameter { name: String },

    /// A SQL cursor (`FETCH`, `CLOSE`) that is not open in this session.
    #[error("cursor \"{name}\" does not exist")]
    UndefinedCursor { name: String },

    /// A `FETCH` from a cursor whose earlier `FETCH` is still handing out rows.
    #[error("cursor \"{name}\" is still handing out the rows of an earlier FETCH")]
    CursorBusy { name: String },

    /// `DECLARE` of a cursor name already open in this session.
    #[error("cursor \"{name}\" already exists")]
    DuplicateCursor { name: String },

    /// A statement that only works inside `BEGIN ... COMMIT` ran outside one.
    #[error("{statement} can only be used in transaction blocks")]
    NoActiveTransaction { statement: String },

    /// Something lancesql deliberately does not do; the message says what instead.
    #[error("not supported: {what}")]
    Unsupported { what: String },

    /// The client ended a `COPY ... FROM STDIN` with an error; nothing was written.
    #[error("COPY from stdin failed: {message}")]
    CopyFailed { message: String },

    /// The statement ran longer than the session's `statement_timeout`.
    #[error("canceling statement due to statement timeout ({after_ms} ms)")]
    StatementTimeout { after_ms: u64 },

    /// A statement that writes, on a server started read-only.
    #[error("cannot execute {statement} in a read-only server")]
    ReadOnly { statement: String },

    /// A statement that writes, inside a `READ ONLY` transaction block.
    #[error("cannot execute {statement} in a read-only transaction")]
    ReadOnlyTransaction { statement: String },

    /// A login whose password (or user) does not match; the message never says which.
    #[error("password authentication failed for user \"{user}\"")]
    AuthenticationFailed { user: String },

    /// A connection the server's access rules refuse (no TLS where TLS is required, ...).
    #[error("connection refused: {reason}")]
    ConnectionRejected { reason: String },

    /// The server already serves as many connections as it was allowed.
    #[error("sorry, too many clients already (the limit is {limit} connections)")]
    TooManyConnections { limit: usize },

    /// A bug: something that should not happen did; the statement fails, the process goes on.
    #[error("internal error: {message}")]
    Internal { message: String },

    /// A value the user gave is not acceptable; the message says which and why.
    #[error("{message}")]
    InvalidInput { message: String },

    /// The data root (or a dataset in it) cannot be reached: bad URI, network, permissions.
    #[error("cannot reach the data store at '{uri}': {}", describe_boxed(source.as_ref()))]
    StoreUnreachable {
        uri: String,
        #[source]
        source: BoxError,
    },

    /// The data store has no room left (a full disk or quota) for what we were doing.
    #[error("{context}: the data store at '{uri}' is full: {}", describe_boxed(source.as_ref()))]
    StoreFull {
        context: String,
        uri: String,
        #[source]
        source: BoxError,
    },

    /// A dataset exists but cannot be read: corrupt files or a format this build does not support.
    #[error(
        "dataset '{uri}' is corrupt or unsupported: {}",
        describe_lance(source)
    )]
    DatasetUnreadable {
        uri: String,
        #[source]
        source: Box<lance::Error>,
    },

    /// Any other Lance failure, with what we were doing when it happened.
    #[error("{context}: {}", describe_lance(source))]
    Lance {
        context: String,
        #[source]
        source: Box<lance::Error>,
    },

    /// A local file the user named (import source, `-f` script) could not be used.
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// Reading an input file (import source) failed; `source` says how.
    #[error("{path}: {source}")]
    Source { path: String, source: Box<Error> },

    /// Parsing, planning or execution failed inside DataFusion.
    #[error("{}", describe_datafusion(.0))]
    DataFusion(Box<DataFusionError>),

    /// One failure reported to several waiters (a shared dataset open or listing).
    #[error("{0}")]
    Shared(std::sync::Arc<Error>),
}

impl Error {
    /// Builds an [`Error::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput {
            message: message.into(),
        }
    }

    /// Wraps a Lance error with what we were doing, classifying the well-known cases.
    pub fn lance(context: impl Into<String>, uri: &str, source: lance::Error) -> Self {
        let uri = user_facing(uri);
        match source.find_root() {
            lance::Error::CorruptFile { .. } => Error::DatasetUnreadable {
                uri: uri.to_string(),
                source: Box::new(source),
            },
            lance::Error::IO { .. } if is_out_of_space(&source) => Error::StoreFull {
                context: context.into(),
                uri: uri.to_string(),
                source: Box::new(source),
            },
            lance::Error::IO { .. } => Error::StoreUnreachable {
                uri: uri.to_string(),
                source: Box::new(source),
            },
            _ => Error::Lance {
                context: context.into(),
                source: Box::new(source),
            },
        }
    }

    /// Recovers our own error from a shared one: the error itself when this was its only holder.
    pub fn from_shared(shared: std::sync::Arc<Error>) -> Self {
        std::sync::Arc::try_unwrap(shared).unwrap_or_else(Error::Shared)
    }

    /// Recovers our own error from one that travelled through DataFusion.
    pub fn from_datafusion(error: DataFusionError) -> Self {
        match error {
            DataFusionError::External(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(inner) => match inner.downcast::<lance::Error>() {
                    Ok(lance_error) => Error::Lance {
                        context: "Lance".to_string(),
                        source: lance_error,
                    },
                    Err(other) => Error::DataFusion(Box::new(DataFusionError::External(other))),
                },
            },
            DataFusionError::Context(context, inner) => match Error::from_datafusion(*inner) {
                Error::DataFusion(inner) => {
                    Error::DataFusion(Box::new(DataFusionError::Context(context, inner)))
                }
                ours => ours,
            },
            DataFusionError::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
                Ok(owned) => Error::from_datafusion(owned),
                Err(shared) => Error::DataFusion(Box::new(DataFusionError::Shared(shared))),
            },
            other => Error::DataFusion(Box::new(other)),
        }
    }

    /// What kind of failure this is; the protocol codes follow from it.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            Error::TableNotFound { .. } => K::UndefinedTable,
            Error::SchemaNotFound { .. } => K::UndefinedSchema,
            Error::ColumnNotFound { .. } => K::UndefinedColumn,
            Error::NotNullViolation { .. } => K::NotNullViolation,
            Error::RowNotFound { .. } => K::InvalidParameterValue,
            Error::IndexNotFound { .. } => K::UndefinedObject,
            Error::IndexExists { .. } => K::DuplicateTable,
            Error::UndefinedFunction { .. } => K::UndefinedFunction,
            Error::ResultTypeChanged { .. } => K::FeatureNotSupported,
            Error::TableExists { .. } => K::DuplicateTable,
            Error::RootNotFound { .. } => K::FileNotFound,
            Error::Syntax { .. } => K::SyntaxError,
            Error::TooComplex { .. } => K::StatementTooComplex,
            Error::Cancelled | Error::StatementTimeout { .. } | Error::CopyFailed { .. } => {
                K::QueryCanceled
            }
            Error::ReadOnly { .. } | Error::ReadOnlyTransaction { .. } => K::ReadOnlyTransaction,
            Error::UndefinedParameter { .. } => K::UndefinedObject,
            Error::UndefinedCursor { .. } => K::UndefinedCursor,
            Error::DuplicateCursor { .. } => K::DuplicateCursor,
            Error::CursorBusy { .. } => K::ObjectNotInPrerequisiteState,
            Error::NoActiveTransaction { .. } => K::NoActiveTransaction,
            Error::Unsupported { .. } => K::FeatureNotSupported,
            Error::AuthenticationFailed { .. } => K::InvalidPassword,
            Error::ConnectionRejected { .. } => K::InvalidAuthorization,
            Error::TooManyConnections { .. } => K::TooManyConnections,
            Error::Internal { .. } => K::Internal,
            Error::InvalidInput { .. } => K::InvalidParameterValue,
            Error::StoreUnreachable { .. } => K::StoreUnavailable,
            Error::StoreFull { .. } => K::DiskFull,
            Error::DatasetUnreadable { .. } => K::DataCorrupted,
            Error::Lance { source, .. } => lance_kind(source),
            Error::File { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => K::FileNotFound,
                _ => K::StoreUnavailable,
            },
            Error::Source { source, .. } => source.kind(),
            Error::DataFusion(inner) => datafusion_kind(inner),
            Error::Shared(inner) => inner.kind(),
        }
    }

    /// The Postgres SQLSTATE for this error.
    pub fn sqlstate(&self) -> &'static str {
        self.kind().sqlstate()
    }

    /// The gRPC status code for this error.
    pub fn grpc_code(&self) -> GrpcCode {
        self.kind().grpc_code()
    }
}

/// What went wrong, independent of protocol: the one classification both code mappings use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A table that does not exist.
    UndefinedTable,
    /// A schema that does not exist.
    UndefinedSchema,
    /// A column that does not exist.
    UndefinedColumn,
    /// A function that does not exist (or not for these argument types).
    UndefinedFunction,
    /// A setting, index, version or tag that does not exist.
    UndefinedObject,
    /// A SQL cursor that is not open.
    UndefinedCursor,
    /// A table that already exists.
    DuplicateTable,
    /// A SQL cursor name already open.
    DuplicateCursor,
    /// A column named twice.
    DuplicateColumn,
    /// A column name that matches more than one column.
    AmbiguousColumn,
    /// Values of a type that does not fit where they are used.
    DatatypeMismatch,
    /// SQL that does not parse.
    SyntaxError,
    /// SQL that parses but cannot be planned for another reason.
    InvalidStatement,
    /// Something the engine does not do (yet).
    FeatureNotSupported,
    /// A value given by the user (a setting, an argument, a name) that is not acceptable.
    InvalidParameterValue,
    /// Text that does not convert to the requested type.
    InvalidTextRepresentation,
    /// Division by zero.
    DivisionByZero,
    /// A number outside its type's range.
    NumericOutOfRange,
    /// Any other problem with the data a statement processes.
    DataException,
    /// A statement nested or chained too deep to plan safely.
    StatementTooComplex,
    /// The query needed more memory than the process allows it.
    OutOfMemory,
    /// Another resource (spill space, write capacity) is exhausted.
    InsufficientResources,
    /// The spill folder or the data store is full.
    DiskFull,
    /// Cancelled by the user, or timed out.
    QueryCanceled,
    /// A write on a read-only server.
    ReadOnlyTransaction,
    /// A statement that needs a transaction block, outside one.
    NoActiveTransaction,
    /// A login with a wrong password or an unknown user.
    InvalidPassword,
    /// A connection the server's access rules refuse.
    InvalidAuthorization,
    /// No connection slot is free.
    TooManyConnections,
    /// A concurrent writer won; retrying the statement may succeed.
    SerializationFailure,
    /// A NULL written into a `NOT NULL` column.
    NotNullViolation,
    /// The object is not in a state that allows this.
    ObjectNotInPrerequisiteState,
    /// The data store cannot be reached or refuses access.
    StoreUnavailable,
    /// A file or folder the user named does not exist.
    FileNotFound,
    /// Stored data is corrupt or in an unsupported format.
    DataCorrupted,
    /// A bug.
    Internal,
}

/// gRPC status codes (the canonical list; their numbers are the wire values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum GrpcCode {
    Cancelled = 1,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl ErrorKind {
    /// The Postgres SQLSTATE: the one mapping to Postgres codes.
    pub fn sqlstate(self) -> &'static str {
        use ErrorKind as K;
        match self {
            K::UndefinedTable => "42P01",
            K::UndefinedSchema => "3F000",
            K::UndefinedColumn => "42703",
            K::UndefinedFunction => "42883",
            K::UndefinedObject => "42704",
            K::UndefinedCursor => "34000",
            K::DuplicateTable => "42P07",
            K::DuplicateCursor => "42P03",
            K::DuplicateColumn => "42701",
            K::AmbiguousColumn => "42702",
            K::DatatypeMismatch => "42804",
            K::SyntaxError => "42601",
            K::InvalidStatement => "42000",
            K::FeatureNotSupported => "0A000",
            K::InvalidParameterValue => "22023",
            K::InvalidTextRepresentation => "22P02",
            K::DivisionByZero => "22012",
            K::NumericOutOfRange => "22003",
            K::DataException => "22000",
            K::StatementTooComplex => "54001",
            K::OutOfMemory => "53200",
            K::InsufficientResources => "53000",
            K::DiskFull => "53100",
            K::QueryCanceled => "57014",
            K::ReadOnlyTransaction => "25006",
            K::NoActiveTransaction => "25P01",
            K::InvalidPassword => "28P01",
            K::InvalidAuthorization => "28000",
            K::TooManyConnections => "53300",
            K::SerializationFailure => "40001",
            K::NotNullViolation => "23502",
            K::ObjectNotInPrerequisiteState => "55000",
            K::StoreUnavailable => "58030",
            K::FileNotFound => "58P01",
            K::DataCorrupted => "XX001",
            K::Internal => "XX000",
        }
    }

    /// The gRPC status code: the one mapping to gRPC codes.
    pub fn grpc_code(self) -> GrpcCode {
        use ErrorKind as K;
        match self {
            K::UndefinedTable
            | K::UndefinedSchema
            | K::UndefinedObject
            | K::UndefinedCursor
            | K::FileNotFound => GrpcCode::NotFound,
            K::UndefinedColumn
            | K::UndefinedFunction
            | K::DuplicateColumn
            | K::AmbiguousColumn
            | K::DatatypeMismatch
            | K::SyntaxError
            | K::InvalidStatement
            | K::InvalidParameterValue
            | K::InvalidTextRepresentation
            | K::DivisionByZero
            | K::DataException
            | K::NotNullViolation
            | K::StatementTooComplex => GrpcCode::InvalidArgument,
            K::NumericOutOfRange => GrpcCode::OutOfRange,
            K::DuplicateTable | K::DuplicateCursor => GrpcCode::AlreadyExists,
            K::FeatureNotSupported => GrpcCode::Unimplemented,
            K::OutOfMemory | K::InsufficientResources | K::DiskFull | K::TooManyConnections => {
                GrpcCode::ResourceExhausted
            }
            K::QueryCanceled => GrpcCode::Cancelled,
            K::ReadOnlyTransaction => GrpcCode::PermissionDenied,
            K::InvalidPassword | K::InvalidAuthorization => GrpcCode::Unauthenticated,
            K::SerializationFailure => GrpcCode::Aborted,
            K::ObjectNotInPrerequisiteState | K::NoActiveTransaction => {
                GrpcCode::FailedPrecondition
            }
            K::StoreUnavailable => GrpcCode::Unavailable,
            K::DataCorrupted => GrpcCode::DataLoss,
            K::Internal => GrpcCode::Internal,
        }
    }
}

/// Whether `error` comes from a store without room left: a local disk or quota that is full
/// (ENOSPC, EDQUOT). Lance often keeps only the text of the I/O error it wraps, so the text of
/// each error in the chain is read as well as its type.
fn is_out_of_space(error: &lance::Error) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = current {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        {
            return true;
        }
        let text = cause.to_string();
        if text.contains("(os error 28)") || text.contains("(os error 122)") {
            return true;
        }
        current = cause.source();
    }
    false
}

/// A dataset URI as its user names it: local paths without the `file://` / `file+uring://` scheme
/// (which only says which reader lancesql chose).
pub fn user_facing(uri: &str) -> &str {
    ["file+uring://", "file://"]
        .iter()
        .find_map(|scheme| uri.strip_prefix(scheme))
        .unwrap_or(uri)
}

/// A DataFusion error as a person should read it: the message without DataFusion's category
/// prefix, parser errors without their Debug wrapper, errors of ours or Lance's as they describe
/// themselves.
pub fn describe_datafusion(error: &DataFusionError) -> String {
    use datafusion::sql::sqlparser::parser::ParserError;
    let text = match error {
        DataFusionError::SQL(parser_error, _) => match parser_error.as_ref() {
            ParserError::TokenizerError(message) | ParserError::ParserError(message) => {
                format!("syntax error: {message}")
            }
            ParserError::RecursionLimitExceeded => format!(
                "statement too complex: nested more than {} levels deep",
                crate::engine::parse::MAX_NESTING
            ),
        },
        DataFusionError::ArrowError(arrow_error, _) => describe_arrow(arrow_error),
        DataFusionError::External(inner) => describe_boxed(inner.as_ref()),
        DataFusionError::Context(context, inner) => {
            format!("{context}: {}", describe_datafusion(inner))
        }
        DataFusionError::Diagnostic(_, inner) => describe_datafusion(inner),
        DataFusionError::Shared(inner) => describe_datafusion(inner),
        DataFusionError::Collection(errors) => errors
            .iter()
            .map(describe_datafusion)
            .collect::<Vec<_>>()
            .join("; "),
        DataFusionError::Internal(message) => format!("internal error: {message}"),
        DataFusionError::ResourcesExhausted(message) => {
            format!("out of memory for this query: {message}")
        }
        other => other.message().into_owned(),
    };
    strip_source_locations(&text)
}

fn describe_arrow(error: &arrow::error::ArrowError) -> String {
    match error {
        arrow::error::ArrowError::ExternalError(inner) => describe_boxed(inner.as_ref()),
        other => other.to_string(),
    }
}

/// A boxed error from below: ours, Lance's, DataFusion's or Arrow's described as above.
fn describe_boxed(error: &(dyn std::error::Error + Send + Sync + 'static)) -> String {
    if let Some(ours) = error.downcast_ref::<Error>() {
        ours.to_string()
    } else if let Some(lance_error) = error.downcast_ref::<lance::Error>() {
        describe_lance(lance_error)
    } else if let Some(datafusion_error) = error.downcast_ref::<DataFusionError>() {
        describe_datafusion(datafusion_error)
    } else if let Some(arrow_error) = error.downcast_ref::<arrow::error::ArrowError>() {
        describe_arrow(arrow_error)
    } else if let Some(object_store::Error::Generic { source, .. }) =
        error.downcast_ref::<object_store::Error>()
    {
        describe_boxed(source.as_ref())
    } else {
        strip_source_locations(&error.to_string())
    }
}

/// A Lance error without its `LanceError(...)` prefix and source location.
pub fn describe_lance(error: &lance::Error) -> String {
    use lance::Error as L;
    let text = match error {
        L::InvalidInput { source, .. } => describe_boxed(source.as_ref()),
        L::DatasetAlreadyExists { uri, .. } => format!("dataset already exists: {uri}"),
        L::SchemaMismatch { difference, .. } => format!("schema mismatch: {difference}"),
        L::DatasetNotFound { path, .. } => format!("no dataset at {path}"),
        L::CorruptFile { path, source, .. } => {
            format!("corrupt file {path}: {}", describe_boxed(source.as_ref()))
        }
        L::NotSupported { source, .. } => {
            format!("not supported: {}", describe_boxed(source.as_ref()))
        }
        L::CommitConflict {
            version, source, ..
        }
        | L::RetryableCommitConflict {
            version, source, ..
        } => format!(
            "a concurrent change conflicts at version {version}: {}",
            describe_boxed(source.as_ref())
        ),
        L::IncompatibleTransaction { source, .. } => format!(
            "a concurrent change conflicts: {}",
            describe_boxed(source.as_ref())
        ),
        L::TooMuchWriteContention { message, .. } => {
            format!("too many concurrent writers: {message}")
        }
        L::Timeout { message, .. } => format!("timed out: {message}"),
        L::Internal { message, .. } => format!("internal error in Lance: {message}"),
        L::PrerequisiteFailed { message, .. }
        | L::Unprocessable { message, .. }
        | L::Arrow { message, .. }
        | L::Schema { message, .. }
        | L::Index { message, .. }
        | L::Cloned { message, .. }
        | L::Execution { message, .. }
        | L::VersionConflict { message, .. }
        | L::Backpressure { message, .. }
        | L::InvalidTableLocation { message }
        | L::InvalidRef { message }
        | L::RefConflict { message }
        | L::RefNotFound { message }
        | L::Cleanup { message }
        | L::VersionNotFound { message } => message.clone(),
        L::NotFound { uri, .. } => format!("not found: {uri}"),
        L::IO { source, .. } | L::Namespace { source, .. } | L::External { source } => {
            let text = describe_boxed(source.as_ref());
            // The AWS SDK's failure is a Debug dump; what the user needs is what to set.
            if text.starts_with("Failed to get AWS credentials") {
                "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                 (or AWS_PROFILE), or pass --storage-option aws_access_key_id=...,aws_secret_access_key=..."
                    .to_string()
            } else {
                text
            }
        }
        L::Wrapped { error, .. } => describe_boxed(error.as_ref()),
        L::IndexNotFound { identity, .. } => format!("index not found: {identity}"),
        L::Stop => "the read was stopped".to_string(),
        L::FieldNotFound { source } => source.to_string(),
        L::DiskCapExceeded {
            cap_bytes,
            used_bytes,
            ..
        } => format!("spill space exhausted: {used_bytes} of {cap_bytes} bytes used"),
        L::Fenced {
            reason, message, ..
        } => format!("writer fenced ({reason}): {message}"),
        L::Shared { source } => describe_lance(source),
    };
    strip_source_locations(&text)
}

/// Removes `, path/to/file.rs:12:34` (and `location: ...`) fragments that Lance and its
/// dependencies append to messages, including messages nested inside other messages.
fn strip_source_locations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(".rs:") {
        let (before, after) = rest.split_at(at);
        // The location starts after the last separator before ".rs:".
        let start = before.rfind([' ', '(', '\n']).map_or(0, |index| index + 1);
        let digits_end = line_and_column_end(&after[4..]).map(|end| end + 4);
        let Some(digits_end) = digits_end.filter(|_| !before[start..].is_empty()) else {
            out.push_str(&rest[..at + 4]);
            rest = &rest[at + 4..];
            continue;
        };
        let kept = before[..start]
            .trim_end_matches("location: ")
            .trim_end_matches(' ')
            .trim_end_matches(',');
        out.push_str(kept);
        rest = &after[digits_end..];
    }
    out.push_str(rest);
    out
}

/// The length of a leading `<line>:<column>` in `text`, if it starts with one.
fn line_and_column_end(text: &str) -> Option<usize> {
    let line = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if line == 0 || !text[line..].starts_with(':') {
        return None;
    }
    let rest = &text[line + 1..];
    let column = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    (column > 0).then_some(line + 1 + column)
}

impl From<DataFusionError> for Error {
    fn from(error: DataFusionError) -> Self {
        Error::from_datafusion(error)
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(error: arrow::error::ArrowError) -> Self {
        Error::from_datafusion(datafusion::error::DataFusionError::ArrowError(
            Box::new(error),
            None,
        ))
    }
}

impl From<Error> for DataFusionError {
    fn from(error: Error) -> Self {
        match error {
            Error::DataFusion(inner) => *inner,
            ours => DataFusionError::External(Box::new(ours)),
        }
    }
}

fn datafusion_kind(error: &DataFusionError) -> ErrorKind {
    use ErrorKind as K;
    use datafusion::common::SchemaError;
    use datafusion::sql::sqlparser::parser::ParserError;
    match error {
        DataFusionError::ArrowError(arrow_error, _) => arrow_kind(arrow_error),
        DataFusionError::ParquetError(_) => K::DataCorrupted,
        DataFusionError::ObjectStore(_) | DataFusionError::IoError(_) => K::StoreUnavailable,
        DataFusionError::SQL(parser_error, _) => match parser_error.as_ref() {
            ParserError::RecursionLimitExceeded => K::StatementTooComplex,
            ParserError::TokenizerError(_) | ParserError::ParserError(_) => K::SyntaxError,
        },
        DataFusionError::NotImplemented(_) => K::FeatureNotSupported,
        DataFusionError::Internal(_) => K::Internal,
        DataFusionError::Plan(_) => K::InvalidStatement,
        DataFusionError::Configuration(_) => K::UndefinedObject,
        DataFusionError::SchemaError(schema_error, _) => match schema_error.as_ref() {
            SchemaError::AmbiguousReference { .. } => K::AmbiguousColumn,
            SchemaError::DuplicateQualifiedField { .. }
            | SchemaError::DuplicateUnqualifiedField { .. } => K::DuplicateColumn,
            SchemaError::FieldNotFound { .. } => K::UndefinedColumn,
        },
        DataFusionError::Execution(_) | DataFusionError::ExecutionJoin(_) => K::Internal,
        DataFusionError::ResourcesExhausted(_) => K::OutOfMemory,
        DataFusionError::External(inner) => boxed_kind(inner.as_ref()),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
            datafusion_kind(inner)
        }
        DataFusionError::Shared(inner) => datafusion_kind(inner),
        DataFusionError::Collection(errors) => errors.first().map_or(K::Internal, datafusion_kind),
        DataFusionError::Substrait(_) | DataFusionError::Ffi(_) => K::Internal,
    }
}

/// The kind of a boxed error from below, by its type.
fn boxed_kind(error: &(dyn std::error::Error + Send + Sync + 'static)) -> ErrorKind {
    if let Some(ours) = error.downcast_ref::<Error>() {
        ours.kind()
    } else if let Some(lance_error) = error.downcast_ref::<lance::Error>() {
        lance_kind(lance_error)
    } else if let Some(datafusion_error) = error.downcast_ref::<DataFusionError>() {
        datafusion_kind(datafusion_error)
    } else if let Some(arrow_error) = error.downcast_ref::<arrow::error::ArrowError>() {
        arrow_kind(arrow_error)
    } else {
        ErrorKind::Internal
    }
}

fn arrow_kind(error: &arrow::error::ArrowError) -> ErrorKind {
    use ErrorKind as K;
    use arrow::error::ArrowError;
    match error {
        ArrowError::DivideByZero => K::DivisionByZero,
        ArrowError::ArithmeticOverflow(_) => K::NumericOutOfRange,
        ArrowError::CastError(_) | ArrowError::ParseError(_) => K::InvalidTextRepresentation,
        ArrowError::InvalidArgumentError(_) => K::InvalidParameterValue,
        ArrowError::MemoryError(_) => K::OutOfMemory,
        ArrowError::IoError(_, _) => K::StoreUnavailable,
        ArrowError::NotYetImplemented(_) => K::FeatureNotSupported,
        ArrowError::ParquetError(_) => K::DataCorrupted,
        ArrowError::ExternalError(inner) => boxed_kind(inner.as_ref()),
        ArrowError::SchemaError(_)
        | ArrowError::ComputeError(_)
        | ArrowError::CsvError(_)
        | ArrowError::JsonError(_)
        | ArrowError::AvroError(_)
        | ArrowError::IpcError(_)
        | ArrowError::CDataInterface(_)
        | ArrowError::DictionaryKeyOverflowError
        | ArrowError::RunEndIndexOverflowError
        | ArrowError::OffsetOverflowError(_) => K::Internal,
    }
}

fn lance_kind(error: &lance::Error) -> ErrorKind {
    use ErrorKind as K;
    use lance::Error as L;
    match error {
        L::InvalidInput { .. } | L::InvalidTableLocation { .. } | L::InvalidRef { .. } => {
            K::InvalidParameterValue
        }
        L::DatasetAlreadyExists { .. } => K::DuplicateTable,
        L::SchemaMismatch { .. } | L::Schema { .. } => K::DatatypeMismatch,
        L::DatasetNotFound { .. } => K::UndefinedTable,
        L::CorruptFile { .. } => K::DataCorrupted,
        L::NotSupported { .. } => K::FeatureNotSupported,
        L::CommitConflict { .. }
        | L::IncompatibleTransaction { .. }
        | L::RetryableCommitConflict { .. }
        | L::TooMuchWriteContention { .. }
        | L::VersionConflict { .. }
        | L::RefConflict { .. }
        | L::Fenced { .. } => K::SerializationFailure,
        L::Timeout { .. } | L::Stop => K::QueryCanceled,
        L::PrerequisiteFailed { .. } => K::ObjectNotInPrerequisiteState,
        L::Unprocessable { .. } => K::DataException,
        L::NotFound { .. } => K::FileNotFound,
        L::IO { .. } => K::StoreUnavailable,
        L::IndexNotFound { .. } | L::RefNotFound { .. } | L::VersionNotFound { .. } => {
            K::UndefinedObject
        }
        L::FieldNotFound { .. } => K::UndefinedColumn,
        L::DiskCapExceeded { .. } => K::DiskFull,
        L::Backpressure { .. } => K::InsufficientResources,
        L::Wrapped { error, .. } => boxed_kind(error.as_ref()),
        L::External { source } => boxed_kind(source.as_ref()),
        L::Arrow { .. }
        | L::Index { .. }
        | L::Cloned { .. }
        | L::Execution { .. }
        | L::Cleanup { .. }
        | L::Namespace { .. }
        | L::Internal { .. } => K::Internal,
        L::Shared { source } => lance_kind(source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_variants_have_distinct_meaningful_codes() {
        assert_eq!(
            Error::TableNotFound { table: "t".into() }.sqlstate(),
            "42P01"
        );
        assert_eq!(Error::TableExists { table: "t".into() }.sqlstate(), "42P07");
        assert_eq!(Error::invalid("bad").sqlstate(), "22023");
        let unreachable = Error::StoreUnreachable {
            uri: "s3://b".into(),
            source: "connection refused".into(),
        };
        assert_eq!(unreachable.sqlstate(), "58030");
        let file = Error::File {
            path: "x.csv".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(file.sqlstate(), "58P01");
    }

    #[test]
    fn datafusion_errors_map_by_kind() {
        let parse = DataFusionError::SQL(
            Box::new(datafusion::sql::sqlparser::parser::ParserError::ParserError("x".into())),
            None,
        );
        assert_eq!(Error::from(parse).sqlstate(), "42601");
        // A Plan error is a generic planning failure: unknown tables and functions are found
        // by the front door before planning, never by reading DataFusion's message.
        let plan = DataFusionError::Plan("table 'lancesql.public.nope' not found".into());
        assert_eq!(Error::from(plan).sqlstate(), "42000");
        let divide =
            DataFusionError::ArrowError(Box::new(arrow::error::ArrowError::DivideByZero), None);
        assert_eq!(Error::from(divide).sqlstate(), "22012");
        assert_eq!(
            Error::from(DataFusionError::NotImplemented(String::from(
                "lateral join"
            )))
            .sqlstate(),
            "0A000"
        );
        assert_eq!(
            Error::from(DataFusionError::ResourcesExhausted("x".into())).sqlstate(),
            "53200"
        );
    }

    #[test]
    fn our_error_survives_a_trip_through_datafusion() {
        let original = Error::TableNotFound {
            table: "items".into(),
        };
        let travelled: DataFusionError = original.into();
        let wrapped = DataFusionError::Context("planning".into(), Box::new(travelled));
        let back = Error::from(wrapped);
        assert!(matches!(back, Error::TableNotFound { ref table } if table == "items"));
        assert_eq!(back.sqlstate(), "42P01");
    }

    #[test]
    fn messages_carry_no_source_locations_or_wrappers() {
        let lance_error = lance::Error::io("disk on fire");
        let text = Error::lance("reading", "file:///x", lance_error).to_string();
        assert!(
            !text.contains(".rs:") && !text.contains("LanceError"),
            "{text}"
        );
        assert!(text.contains("disk on fire"), "{text}");
        assert_eq!(
            strip_source_locations(
                "bad thing, /root/.cargo/registry/src/x/lance-14/src/io.rs:12:5: more"
            ),
            "bad thing: more"
        );
        assert_eq!(
            strip_source_locations("see main.rs: fine"),
            "see main.rs: fine"
        );
        let parse = DataFusionError::SQL(
            Box::new(
                datafusion::sql::sqlparser::parser::ParserError::ParserError(
                    "Expected: an expression".into(),
                ),
            ),
            None,
        );
        let text = Error::from(parse).to_string();
        assert_eq!(text, "syntax error: Expected: an expression");
        let too_deep = DataFusionError::SQL(
            Box::new(datafusion::sql::sqlparser::parser::ParserError::RecursionLimitExceeded),
            None,
        );
        assert_eq!(Error::from(too_deep).sqlstate(), "54001");
    }

    #[test]
    fn new_variants_have_their_codes() {
        assert_eq!(Error::RootNotFound { root: "x".into() }.sqlstate(), "58P01");
        assert_eq!(
            Error::Syntax {
                message: "x".into()
            }
            .sqlstate(),
            "42601"
        );
        assert_eq!(Error::TooComplex { what: "x".into() }.sqlstate(), "54001");
        assert_eq!(Error::Cancelled.sqlstate(), "57014");
        assert_eq!(
            Error::Internal {
                message: "x".into()
            }
            .sqlstate(),
            "XX000"
        );
    }

    #[test]
    fn search_and_index_errors_have_their_codes() {
        let column = Error::ColumnNotFound {
            table: "t".into(),
            column: "c".into(),
        };
        assert_eq!(
            (column.sqlstate(), column.grpc_code()),
            ("42703", GrpcCode::InvalidArgument)
        );
        let row = Error::RowNotFound {
            table: "t".into(),
            version: 3,
            row_id: 7,
        };
        assert_eq!(row.sqlstate(), "22023");
        assert_eq!(
            row.to_string(),
            "row id 7 does not exist in table 't' (version 3)"
        );
        let exists = Error::IndexExists {
            table: "t".into(),
            index: "i".into(),
        };
        assert_eq!(exists.sqlstate(), "42P07");
        let missing = Error::IndexNotFound {
            index: "i".into(),
            table: None,
        };
        assert_eq!(
            (missing.sqlstate(), missing.to_string().as_str()),
            ("42704", "index 'i' does not exist")
        );
        let missing_on = Error::IndexNotFound {
            index: "i".into(),
            table: Some("t".into()),
        };
        assert_eq!(
            missing_on.to_string(),
            "index 'i' does not exist on table 't'"
        );
    }

    #[test]
    fn lance_errors_are_classified() {
        let corrupt = lance::Error::corrupt_file(
            object_store::path::Path::from("x/data/a.lance"),
            "bad footer",
        );
        let error = Error::lance("opening", "file:///x", corrupt);
        assert!(matches!(error, Error::DatasetUnreadable { .. }));
        assert_eq!(error.sqlstate(), "XX001");
        let invalid = Error::lance("writing", "file:///x", lance::Error::invalid_input("nope"));
        assert_eq!(invalid.sqlstate(), "22023");
        let unsupported = Error::lance(
            "opening",
            "file:///x",
            lance::Error::not_supported("a newer storage format"),
        );
        assert!(!matches!(unsupported, Error::DatasetUnreadable { .. }));
        assert_eq!(unsupported.kind(), ErrorKind::FeatureNotSupported);
        assert_eq!(unsupported.grpc_code(), GrpcCode::Unimplemented);
        let io = Error::lance(
            "reading",
            "s3://b/t.lance",
            lance::Error::io("connection refused"),
        );
        assert_eq!(io.kind(), ErrorKind::StoreUnavailable);
        let full = Error::lance(
            "appending to table 't'",
            "file:///data/t.lance",
            lance::Error::io(format!(
                "failed to write: {}",
                std::io::Error::from_raw_os_error(28)
            )),
        );
        assert_eq!(full.kind(), ErrorKind::DiskFull);
        assert_eq!(full.sqlstate(), "53100");
        assert_eq!(full.grpc_code(), GrpcCode::ResourceExhausted);
        let message = full.to_string();
        assert!(
            message
                .starts_with("appending to table 't': the data store at '/data/t.lance' is full"),
            "{message}"
        );
    }

    const ALL_KINDS: [ErrorKind; 36] = [
        ErrorKind::NotNullViolation,
        ErrorKind::UndefinedTable,
        ErrorKind::UndefinedSchema,
        ErrorKind::UndefinedColumn,
        ErrorKind::UndefinedFunction,
        ErrorKind::UndefinedObject,
        ErrorKind::DuplicateTable,
        ErrorKind::DuplicateColumn,
        ErrorKind::AmbiguousColumn,
        ErrorKind::DatatypeMismatch,
        ErrorKind::SyntaxError,
        ErrorKind::InvalidStatement,
        ErrorKind::FeatureNotSupported,
        ErrorKind::InvalidParameterValue,
        ErrorKind::InvalidTextRepresentation,
        ErrorKind::DivisionByZero,
        ErrorKind::NumericOutOfRange,
        ErrorKind::DataException,
        ErrorKind::StatementTooComplex,
        ErrorKind::OutOfMemory,
        ErrorKind::InsufficientResources,
        ErrorKind::DiskFull,
        ErrorKind::QueryCanceled,
        ErrorKind::ReadOnlyTransaction,
        ErrorKind::InvalidPassword,
        ErrorKind::InvalidAuthorization,
        ErrorKind::TooManyConnections,
        ErrorKind::SerializationFailure,
        ErrorKind::ObjectNotInPrerequisiteState,
        ErrorKind::StoreUnavailable,
        ErrorKind::FileNotFound,
        ErrorKind::DataCorrupted,
        ErrorKind::Internal,
        ErrorKind::UndefinedCursor,
        ErrorKind::DuplicateCursor,
        ErrorKind::NoActiveTransaction,
    ];

    #[test]
    fn every_kind_has_its_own_sqlstate_and_a_grpc_code() {
        let mut seen = std::collections::HashSet::new();
        for kind in ALL_KINDS {
            let code = kind.sqlstate();
            assert_eq!(code.len(), 5, "{kind:?}");
            assert!(code.chars().all(|c| c.is_ascii_alphanumeric()), "{kind:?}");
            assert!(seen.insert(code), "{kind:?} shares {code}");
        }
        // The Postgres class and the gRPC code agree on who is at fault.
        for kind in ALL_KINDS {
            let class = &kind.sqlstate()[..2];
            let grpc = kind.grpc_code();
            match class {
                "42" | "22" | "54" => assert!(
                    matches!(
                        grpc,
                        GrpcCode::InvalidArgument
                            | GrpcCode::NotFound
                            | GrpcCode::AlreadyExists
                            | GrpcCode::OutOfRange
                    ),
                    "{kind:?}"
                ),
                "XX" => assert!(matches!(grpc, GrpcCode::Internal | GrpcCode::DataLoss)),
                "53" => assert_eq!(grpc, GrpcCode::ResourceExhausted),
                "28" => assert_eq!(grpc, GrpcCode::Unauthenticated),
                _ => {}
            }
        }
        assert_eq!(ErrorKind::UndefinedTable.grpc_code(), GrpcCode::NotFound);
        assert_eq!(
            ErrorKind::DuplicateTable.grpc_code(),
            GrpcCode::AlreadyExists
        );
        assert_eq!(ErrorKind::QueryCanceled.grpc_code(), GrpcCode::Cancelled);
        assert_eq!(
            ErrorKind::SerializationFailure.grpc_code(),
            GrpcCode::Aborted
        );
        assert_eq!(
            ErrorKind::StoreUnavailable.grpc_code(),
            GrpcCode::Unavailable
        );
        assert_eq!(GrpcCode::Unavailable as i32, 14);
    }

    #[test]
    fn shared_errors_keep_their_kind() {
        let shared = std::sync::Arc::new(Error::TableNotFound { table: "t".into() });
        let second_holder = shared.clone();
        let error = Error::from_shared(shared);
        assert!(matches!(error, Error::Shared(_)));
        assert_eq!(error.sqlstate(), "42P01");
        assert_eq!(error.to_string(), "table 't' does not exist");
        drop(error);
        assert!(matches!(
            Error::from_shared(second_holder),
            Error::TableNotFound { .. }
        ));
    }
}
