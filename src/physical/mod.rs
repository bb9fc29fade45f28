//! Execution nodes: each carries a plain, serialisable description (table, URI, pinned version,
//! fragments, columns, filter, limit) and opens the dataset through the data root in `execute`.
//!
//! May depend on: `storage`, `config`, `error`; never on `catalog`, `engine` or front ends.

pub mod changes;
pub mod late_materialization;
pub mod metrics;
pub mod scan;
pub mod search;
pub mod take;
pub mod write;
