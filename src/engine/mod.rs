//! The front door: every front end (shell, Postgres wire, Flight SQL) runs SQL through here.
//!
//! [`Engine`] is built once per process; [`LanceSession`] is one user's settings and state.
//! Statements are parsed by [`parse`], have `_rowid`/`_rowaddr` kept out of their wildcards by
//! [`hidden`], and are prepared into [`PreparedStatement`]s whose parameter
//! types and result schema are known before they run, and executed any number of times.
//! Front ends receive statements, schemas, record-batch streams and completion tags: never a
//! DataFusion `DataFrame`, a Lance dataset or the data root.

mod alter;
mod compat;
mod copy;
pub mod hidden;
mod history;
mod indices;
mod limits;
mod merge;
mod optimized;
pub mod parse;
mod planned;
mod recent;
mod search;
pub mod session;
mod session_functions;
mod time_travel;
mod transaction;
mod variables;
mod writes;

pub use copy::{CopyFormat, CopyInDecoder, CopyOptions};
pub use limits::stream_until;
pub use session::{
    CommandTag, Engine, IngestExisting, LanceSession, Outcome, PreparedStatement, StatementKind,
    TransactionControl,
};
pub use transaction::FetchCount;

/// The rows of a bulk write (`create_table`): one stream, or a plan's partitions written at once.
pub use crate::storage::WriteInput;
/// Progress of long statements, for front ends that show it (the shell).
pub use crate::storage::progress::WorkProgress;

#[cfg(test)]
mod tests;
