//! The command-line front end: the interactive shell and script runner, result formatting,
//! file import and demo data. It talks to the engine only through [`crate::engine`].
//!
//! May depend on: `engine`, `config`, `error`; never on Lance, `storage`, `catalog`, `provider`
//! or `physical` (checked by `scripts/check-layers`).

pub mod args;
pub mod demo;
pub mod import;
pub mod output;
pub mod progress;
pub mod shell;
