//! Queries a session prepared recently, by their SQL text.
//!
//! Contract: clients send the same query text again and again (a Flight SQL query is named by
//! its text in CreatePreparedStatement, GetFlightInfo and DoGet; drivers re-send a
//! parameterised query with new parameters through the Postgres extended protocol). A session
//! keeps its [`KEPT`] most recently used queries here so that a repeat is not parsed and planned
//! again. The cache only remembers: whether an entry may be used is the session's decision
//! ([`super::LanceSession::is_current`]: same table versions, same settings), so a hit runs
//! exactly what preparing afresh would. Only queries are kept (statements of kind
//! [`StatementKind::Query`]), and executing any other statement empties the cache, since it may
//! change what names resolve to.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{PreparedStatement, StatementKind};

/// How many prepared queries a session keeps.
pub const KEPT: usize = 32;

/// A session's recently prepared queries, most recently used first.
#[derive(Default)]
pub struct RecentQueries {
    entries: Mutex<VecDeque<(String, Arc<PreparedStatement>)>>,
}

impl RecentQueries {
    fn entries(&self) -> MutexGuard<'_, VecDeque<(String, Arc<PreparedStatement>)>> {
        // Entries are inserted and removed whole, so a poisoned cache is still consistent.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The query prepared from `sql`, if kept (it becomes the most recently used).
    pub fn get(&self, sql: &str) -> Option<Arc<PreparedStatement>> {
        let mut entries = self.entries();
        let position = entries.iter().position(|(kept, _)| kept == sql)?;
        let entry = entries.remove(position)?;
        let prepared = entry.1.clone();
        entries.push_front(entry);
        Some(prepared)
    }

    /// Keeps `prepared`, prepared from `sql`, if it is a query; the least recently used entry
    /// goes when more than [`KEPT`] are kept.
    pub fn keep(&self, sql: &str, prepared: &Arc<PreparedStatement>) {
        if !matches!(prepared.kind(), StatementKind::Query) {
            return;
        }
        let mut entries = self.entries();
        entries.retain(|(kept, _)| kept != sql);
        entries.push_front((sql.to_string(), prepared.clone()));
        entries.truncate(KEPT);
    }

    pub fn clear(&self) {
        self.entries().clear();
    }
}
