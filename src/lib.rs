//! lancesql: SQL over Lance datasets.
//!
//! The layers, from the front ends down (`docs/architecture.md` has the dependency rules):
//! - [`cli`]: the command-line front end (shell, script runner, import, demo data).
//! - [`pgwire`]: the Postgres wire protocol front end (`lancesql serve`).
//! - [`flightsql`]: the engine behind the Flight SQL front end (the `lancesql-flight` crate).
//! - [`engine`]: the front door: sessions, parsing, prepared statements, statement dispatch.
//! - [`catalog`]: datasets under the root as tables of `lancesql.public`, resolved per statement.
//! - [`functions`]: the SQL functions the engine adds, in one list.
//! - [`provider`]: a dataset as a DataFusion table, and the one place deciding pushdown.
//! - [`physical`]: execution nodes (scan, take, late materialization).
//! - [`storage`]: the data root; the only layer that opens, writes or removes datasets.
//! - [`config`], [`error`], [`runtime`]: typed configuration, the one error type and its
//!   mappings, the runtime statements run on.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod engine;
pub mod error;
pub mod flightsql;
pub mod functions;
pub mod pgwire;
pub mod physical;
pub mod provider;
pub mod runtime;
pub mod storage;

pub use config::{EngineConfig, LanceOptions, StoreConfig};
pub use engine::{Engine, LanceSession, Outcome};
pub use error::{Error, Result};
