//! The engine's one error type, and its one mapping to SQLSTATE codes.
//!
//! Every failure the engine reports carries the thing it is about (a table, a store URI, a file),
//! so a user can act on the message alone. Errors that cross DataFusion travel as
//! `DataFusionError::External(Box<Error>)` and are recovered by [`Error::from_datafusion`], so
//! front ends see the same variant whichever layer failed. [`Error::sqlstate`] is the only place
//! that assigns Postgres SQLSTATE codes; it is exhaustive over our variants, over DataFusion's and
//! over Lance's, so a new upstream variant is a compile error here rather than a silent `XX000`.

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

    /// A value the user gave is not acceptable; the message says which and why.
    #[error("{message}")]
    InvalidInput { message: String },

    /// The data root (or a dataset in it) cannot be reached: bad URI, network, permissions.
    #[error("cannot reach the data store at '{uri}': {source}")]
    StoreUnreachable {
        uri: String,
        #[source]
        source: BoxError,
    },

    /// A dataset exists but cannot be read: corrupt files or a format this build does not support.
    #[error("dataset '{uri}' is corrupt or unsupported: {source}")]
    DatasetUnreadable {
        uri: String,
        #[source]
        source: Box<lance::Error>,
    },

    /// Any other Lance failure, with what we were doing when it happened.
    #[error("{context}: {source}")]
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
    #[error("{0}")]
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
    match error {
        DataFusionError::ArrowError(arrow_error, _) => arrow_sqlstate(arrow_error),
        DataFusionError::ParquetError(_) => "XX001",
        DataFusionError::ObjectStore(_) => "58030",
        DataFusionError::IoError(_) => "58030",
        DataFusionError::SQL(_, _) => "42601",
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
