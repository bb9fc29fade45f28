//! The logical side of a Lance table: the DataFusion `TableProvider` ([`table`], which exposes
//! the row-identity columns `_rowid` and `_rowaddr`) and the one place deciding filter pushdown
//! ([`pushdown`]).
//!
//! May depend on: `physical` (the nodes it plans), `storage` (opened datasets), `config`, `error`.

pub mod pushdown;
pub mod table;
