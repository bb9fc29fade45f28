//! The engine's one error type, and its one mapping to SQLSTATE codes.
//!
//! Every failure the engine reports carries the thing it is about (a table, a store URI, a file),
//! so a user can act on the message alone. Errors that cross DataFusion travel as
//! `DataFusionError::External(Box<Error>)` and are recovered by [`Error::from_datafusion`], so
//! front ends see the same variant whichever layer failed. [`Error::sqlstate`] is the only place
//! that assigns Postgres SQLSTATE codes; it is exhaustive over our variants, over DataFusion's and
//! over Lance's, so a new upstream variant is a compile error here rather than a silent `XX000`.
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
        match source {
            lance::Error::CorruptFile { .. } | lance::Error::NotSupported { .. } => {
                Error::DatasetUnreadable {
                    uri: uri.to_string(),
                    source: Box::new(source),
                }
            }
            lance::Error::IO { .. } if is_unreachable(&source) => Error::StoreUnreachable {
                uri: uri.to_string(),
                source: Box::new(source),
            },
            other => Error::Lance {
                context: context.into(),
                source: Box::new(other),
            },
        }
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

    /// The Postgres SQLSTATE for this error (the one mapping; front ends must not invent others).
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::TableNotFound { .. } => "42P01",
            Error::TableExists { .. } => "42P07",
            Error::RootNotFound { .. } => "58P01",
            Error::Syntax { .. } => "42601",
            Error::TooComplex { .. } => "54001",
            Error::Cancelled => "57014",
            Error::Internal { .. } => "XX000",
            Error::InvalidInput { .. } => "22023",
            Error::StoreUnreachable { .. } => "58030",
            Error::DatasetUnreadable { .. } => "XX001",
            Error::Lance { source, .. } => lance_sqlstate(source),
            Error::File { .. } => "58P01",
            Error::Source { source, .. } => source.sqlstate(),
            Error::DataFusion(inner) => datafusion_sqlstate(inner),
        }
    }
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
                crate::parse::MAX_NESTING
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

fn is_unreachable(error: &lance::Error) -> bool {
    let text = error.to_string().to_ascii_lowercase();
    [
        "connect",
        "dns",
        "timed out",
        "permission denied",
        "access denied",
        "no such bucket",
    ]
    .iter()
    .any(|needle| text.contains(needle))
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

fn datafusion_sqlstate(error: &DataFusionError) -> &'static str {
    use datafusion::common::SchemaError;
    use datafusion::sql::sqlparser::parser::ParserError;
    match error {
        DataFusionError::ArrowError(arrow_error, _) => arrow_sqlstate(arrow_error),
        DataFusionError::ParquetError(_) => "XX001",
        DataFusionError::ObjectStore(_) => "58030",
        DataFusionError::IoError(_) => "58030",
        DataFusionError::SQL(parser_error, _) => match parser_error.as_ref() {
            ParserError::RecursionLimitExceeded => "54001",
            ParserError::TokenizerError(_) | ParserError::ParserError(_) => "42601",
        },
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::Internal(_) => "XX000",
        DataFusionError::Plan(message) => plan_sqlstate(message),
        DataFusionError::Configuration(_) => "42704",
        DataFusionError::SchemaError(schema_error, _) => match schema_error.as_ref() {
            SchemaError::AmbiguousReference { .. } => "42702",
            SchemaError::DuplicateQualifiedField { .. }
            | SchemaError::DuplicateUnqualifiedField { .. } => "42701",
            SchemaError::FieldNotFound { .. } => "42703",
        },
        DataFusionError::Execution(message) => execution_sqlstate(message),
        DataFusionError::ExecutionJoin(_) => "XX000",
        DataFusionError::ResourcesExhausted(_) => "53000",
        DataFusionError::External(inner) => match inner.downcast_ref::<Error>() {
            Some(ours) => ours.sqlstate(),
            None => match inner.downcast_ref::<lance::Error>() {
                Some(lance_error) => lance_sqlstate(lance_error),
                None => "XX000",
            },
        },
        DataFusionError::Context(_, inner) => datafusion_sqlstate(inner),
        DataFusionError::Substrait(_) => "XX000",
        DataFusionError::Diagnostic(_, inner) => datafusion_sqlstate(inner),
        DataFusionError::Collection(errors) => {
            errors.first().map(datafusion_sqlstate).unwrap_or("XX000")
        }
        DataFusionError::Shared(inner) => datafusion_sqlstate(inner),
        DataFusionError::Ffi(_) => "XX000",
    }
}

/// DataFusion reports several distinct SQL conditions as `Plan` errors with fixed wording.
fn plan_sqlstate(message: &str) -> &'static str {
    if message.starts_with("table '") && message.contains("not found") {
        "42P01"
    } else if message.contains("Invalid function") || message.contains("not found in registry") {
        "42883"
    } else if message.contains("already exists") {
        "42P07"
    } else {
        "42000"
    }
}

fn execution_sqlstate(message: &str) -> &'static str {
    if message.contains("Divide by zero") {
        "22012"
    } else {
        "XX000"
    }
}

fn arrow_sqlstate(error: &arrow::error::ArrowError) -> &'static str {
    use arrow::error::ArrowError;
    match error {
        ArrowError::DivideByZero => "22012",
        ArrowError::ArithmeticOverflow(_) => "22003",
        ArrowError::CastError(_) | ArrowError::ParseError(_) => "22P02",
        ArrowError::InvalidArgumentError(_) => "22023",
        ArrowError::MemoryError(_) => "53200",
        ArrowError::IoError(_, _) => "58030",
        ArrowError::NotYetImplemented(_) => "0A000",
        ArrowError::ParquetError(_) => "XX001",
        ArrowError::ExternalError(_)
        | ArrowError::SchemaError(_)
        | ArrowError::ComputeError(_)
        | ArrowError::CsvError(_)
        | ArrowError::JsonError(_)
        | ArrowError::AvroError(_)
        | ArrowError::IpcError(_)
        | ArrowError::CDataInterface(_)
        | ArrowError::DictionaryKeyOverflowError
        | ArrowError::RunEndIndexOverflowError
        | ArrowError::OffsetOverflowError(_) => "XX000",
    }
}

fn lance_sqlstate(error: &lance::Error) -> &'static str {
    use lance::Error as L;
    match error {
        L::InvalidInput { .. } => "22023",
        L::DatasetAlreadyExists { .. } => "42P07",
        L::SchemaMismatch { .. } => "42804",
        L::DatasetNotFound { .. } => "42P01",
        L::CorruptFile { .. } => "XX001",
        L::NotSupported { .. } => "0A000",
        L::CommitConflict { .. }
        | L::IncompatibleTransaction { .. }
        | L::RetryableCommitConflict { .. }
        | L::TooMuchWriteContention { .. }
        | L::VersionConflict { .. }
        | L::RefConflict { .. } => "40001",
        L::Timeout { .. } => "57014",
        L::Internal { .. } => "XX000",
        L::PrerequisiteFailed { .. } => "55000",
        L::Unprocessable { .. } => "22000",
        L::Arrow { .. } => "XX000",
        L::Schema { .. } => "42804",
        L::NotFound { .. } => "58P01",
        L::IO { .. } => "58030",
        L::Index { .. } => "XX000",
        L::IndexNotFound { .. } => "42704",
        L::InvalidTableLocation { .. } => "22023",
        L::Stop => "57014",
        L::Wrapped { .. } => "XX000",
        L::Cloned { .. } => "XX000",
        L::Execution { .. } => "XX000",
        L::InvalidRef { .. } => "22023",
        L::RefNotFound { .. } => "42704",
        L::Cleanup { .. } => "XX000",
        L::VersionNotFound { .. } => "42704",
        L::Namespace { .. } => "XX000",
        L::External { .. } => "XX000",
        L::FieldNotFound { .. } => "42703",
        L::DiskCapExceeded { .. } => "53100",
        L::Fenced { .. } => "40001",
        L::Backpressure { .. } => "53000",
        L::Shared { source } => lance_sqlstate(source),
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
        let missing = DataFusionError::Plan("table 'lancesql.public.nope' not found".into());
        assert_eq!(Error::from(missing).sqlstate(), "42P01");
        let unknown_function = DataFusionError::Plan("Invalid function 'nope'".into());
        assert_eq!(Error::from(unknown_function).sqlstate(), "42883");
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
            "53000"
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
    }
}
