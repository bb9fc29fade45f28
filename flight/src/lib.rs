//! An Arrow Flight SQL server over any provider of DataFusion sessions.
//!
//! Contract: this crate speaks Flight SQL (arrow-flight's `FlightSqlService`) and DataFusion,
//! and nothing of the engine behind it: an engine implements [`SessionSource`] and
//! [`SqlSession`] ([`backend`]) and [`FlightServer`] serves it. It never depends on Lance or on
//! the `lancesql` crate, so its tests run against in-memory tables.
//!
//! - [`backend`]: the session interface an engine implements.
//! - [`sessions`]: handshake logins, bearer tokens, one session per token.
//! - [`handle`]: stateless prepared-statement handles and tickets.
//! - [`queries`]: running queries by id, for cancellation.
//! - [`metadata`]: SqlInfo, XDBC types and the other fixed metadata answers.
//! - [`placeholders`]: JDBC's `?` placeholders numbered as `$1`, `$2`, ...
//! - [`service`]: the RPCs.
//! - [`server`]: binding (port 0 allowed), TLS, serving until shutdown.
//! - [`error`]: the one error type and its one mapping to gRPC codes.

pub mod backend;
pub mod error;
pub mod handle;
pub mod metadata;
pub mod placeholders;
pub mod queries;
pub mod server;
pub mod service;
pub mod sessions;

pub use backend::{
    BackendError, BackendResult, Executed, IfTableExists, IngestTarget, Planned, SessionSource,
    SqlSession, TableEntry,
};
pub use error::Error;
pub use server::{FlightConfig, FlightServer};
pub use sessions::Login;
/// gRPC status codes, as engines classify their errors ([`BackendError::code`]).
pub use tonic::Code;
