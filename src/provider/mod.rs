//! The logical side of a Lance table: the DataFusion `TableProvider` ([`table`]), the one place
//! deciding filter pushdown ([`pushdown`]), and row identity (`_rowid`, `_rowaddr`) kept out of
//! wildcards ([`hidden`]).
//!
//! May depend on: `physical` (the nodes it plans), `storage` (opened datasets), `config`, `error`.

pub mod hidden;
pub mod pushdown;
pub mod table;
