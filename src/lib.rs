//! lancesql: SQL over Lance datasets.
//!
//! Module map (each module's own docs state its contract):
//! - [`config`]: typed process configuration and the `lance.*` session options.
//! - [`error`]: the one error type and its SQLSTATE mapping.
//! - [`parse`]: SQL text to statements, in bounded time and depth (the lancesql dialect).
//! - [`overflow`]: integer arithmetic and `sum` that fail on overflow.
//! - [`runtime`]: the runtime statements run on (threads with enough stack).
//! - [`storage`]: the data root; the only module that opens, writes or removes datasets.
//! - [`catalog`]: datasets under the root as tables of `lancesql.public`.
//! - [`table`]: one dataset at a pinned version as a DataFusion table.
//! - [`pushdown`]: the one place deciding filter pushdown exactness.
//! - [`scan`]: the scan execution node, a plain description run against the data root.
//! - [`take`]: the take execution node, fetching columns of known rows by row address.
//! - [`late_materialization`]: the optimizer rule that splits `ORDER BY ... LIMIT k` into a
//!   narrow scan, the top-k, and a take.
//! - [`hidden`]: keeps `_rowid` / `_rowaddr` out of `SELECT *`.
//! - [`session`]: the engine and its sessions, the SQL front door for every front end.
//! - [`shell`], [`output`], [`import`], [`demo`]: the command-line front end.

pub mod blocking;
pub mod catalog;
pub mod config;
pub mod demo;
pub mod error;
pub mod hidden;
pub mod import;
pub mod late_materialization;
pub mod output;
pub mod overflow;
pub mod parse;
pub mod pushdown;
pub mod runtime;
pub mod scan;
pub mod session;
pub mod shell;
pub mod storage;
pub mod table;
pub mod take;

pub use config::{EngineConfig, LanceOptions, StoreConfig};
pub use error::{Error, Result};
pub use session::{Engine, LanceSession, Outcome};
