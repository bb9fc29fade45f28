//! The Flight SQL front end's one error type, and its one mapping to gRPC status codes.
//!
//! Contract: engine failures keep the code the engine chose ([`BackendError`]); the front
//! end's own failures (a malformed request, a missing or unknown token, bad credentials) are
//! classified here, exhaustively, and every [`Error`] becomes a [`tonic::Status`] through
//! [`Error::code`] only.

use crate::backend::BackendError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine failed; it chose the code.
    #[error("{0}")]
    Backend(#[from] BackendError),

    /// The request is malformed or names something this server does not accept.
    #[error("{0}")]
    InvalidRequest(String),

    /// A request this server does not implement.
    #[error("{0}")]
    Unsupported(String),

    /// No bearer token on a call that needs one, an unknown or expired token, or wrong
    /// credentials.
    #[error("{0}")]
    Unauthenticated(String),

    /// The query was cancelled (by CancelFlightInfo, or the server shutting down).
    #[error("the query was cancelled")]
    Cancelled,

    /// Arrow could not encode or decode the data.
    #[error("{context}: {source}")]
    Arrow {
        context: &'static str,
        source: datafusion::arrow::error::ArrowError,
    },

    /// The server could not start (listen address, TLS files, no users).
    #[error("{0}")]
    Startup(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidRequest(message.into())
    }

    pub fn arrow(context: &'static str, source: datafusion::arrow::error::ArrowError) -> Self {
        Error::Arrow { context, source }
    }

    /// The gRPC status code: the front end's one mapping.
    pub fn code(&self) -> tonic::Code {
        match self {
            Error::Backend(error) => error.code,
            Error::InvalidRequest(_) => tonic::Code::InvalidArgument,
            Error::Unsupported(_) => tonic::Code::Unimplemented,
            Error::Unauthenticated(_) => tonic::Code::Unauthenticated,
            Error::Cancelled => tonic::Code::Cancelled,
            // A batch we encode ourselves that Arrow refuses is our bug; one a client sent is
            // refused with InvalidArgument where it is decoded (see `Error::invalid`).
            Error::Arrow { .. } => tonic::Code::Internal,
            Error::Startup(_) => tonic::Code::FailedPrecondition,
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        let code = error.code();
        if code == tonic::Code::Internal {
            tracing::error!(%error, "internal error");
        } else {
            tracing::debug!(%error, ?code, "request failed");
        }
        let mut metadata = tonic::metadata::MetadataMap::new();
        if let Error::Backend(BackendError {
            sqlstate: Some(sqlstate),
            ..
        }) = &error
            && let Ok(value) = sqlstate.parse()
        {
            metadata.insert(SQLSTATE_HEADER, value);
        }
        tonic::Status::with_metadata(code, error.to_string(), metadata)
    }
}

/// The response header carrying an engine error's SQLSTATE.
pub const SQLSTATE_HEADER: &str = "x-sqlstate";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_its_code() {
        let cases = [
            (
                Error::Backend(BackendError::new(tonic::Code::NotFound, "no table t")),
                tonic::Code::NotFound,
            ),
            (Error::invalid("bad handle"), tonic::Code::InvalidArgument),
            (
                Error::Unsupported("substrait".into()),
                tonic::Code::Unimplemented,
            ),
            (
                Error::Unauthenticated("no token".into()),
                tonic::Code::Unauthenticated,
            ),
            (Error::Cancelled, tonic::Code::Cancelled),
            (
                Error::arrow(
                    "encoding",
                    datafusion::arrow::error::ArrowError::ComputeError("x".into()),
                ),
                tonic::Code::Internal,
            ),
            (
                Error::Startup("no users".into()),
                tonic::Code::FailedPrecondition,
            ),
        ];
        for (error, code) in cases {
            let message = error.to_string();
            let status = tonic::Status::from(error);
            assert_eq!(status.code(), code, "{message}");
            assert_eq!(status.message(), message);
        }
    }

    #[test]
    fn an_engine_sqlstate_travels_as_a_header() {
        let error = Error::Backend(
            BackendError::new(tonic::Code::NotFound, "no table t").with_sqlstate("42P01"),
        );
        let status = tonic::Status::from(error);
        let header = status.metadata().get(SQLSTATE_HEADER);
        assert_eq!(header.and_then(|value| value.to_str().ok()), Some("42P01"));
    }
}
