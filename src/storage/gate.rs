//! Per-table gates that order this process's writes against its own `DROP TABLE`.
//!
//! Contract:
//! - any number of writes to one table hold its gate together ([`TableGates::writing`]); Lance's
//!   commit protocol orders them among themselves;
//! - `DROP TABLE` holds the gate alone ([`TableGates::dropping`]): it waits for the writes that
//!   already hold it, and writes that arrive later wait for the drop and then find no table.
//!   Without this, a write committing while the drop removed the folder would write its manifest
//!   into a new, empty folder and bring back a table that references deleted data files;
//! - a waiting drop lets no new write in before it (tokio's lock is fair), so a busy table
//!   cannot starve a drop;
//! - gates are kept only while someone holds or awaits them.
//!
//! Only writers of this process are ordered. Lance has no lock shared by processes, so a write
//! by another process (pylance, a second server) racing a drop can still leave such a folder.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// A write's hold on its table's gate: the table cannot be dropped by this process until it is
/// released.
#[derive(Debug)]
pub struct WriteGate {
    table: String,
    _held: OwnedRwLockReadGuard<()>,
}

impl WriteGate {
    /// The table this gate holds.
    pub fn table(&self) -> &str {
        &self.table
    }
}

/// A drop's exclusive hold on its table's gate.
#[derive(Debug)]
pub struct DropGate {
    _held: OwnedRwLockWriteGuard<()>,
}

/// The gates of every table of a data root.
#[derive(Debug, Default)]
pub struct TableGates {
    gates: Mutex<HashMap<String, Weak<RwLock<()>>>>,
}

/// How many gate entries are kept before released ones are swept out.
const SWEEP_ABOVE: usize = 64;

impl TableGates {
    /// Waits until `table` is not being dropped, and holds it so while the gate lives.
    pub async fn writing(&self, table: &str) -> WriteGate {
        WriteGate {
            table: table.to_string(),
            _held: self.gate(table).read_owned().await,
        }
    }

    /// Waits until no write to `table` holds its gate, and keeps new ones out while the gate
    /// lives.
    pub async fn dropping(&self, table: &str) -> DropGate {
        DropGate {
            _held: self.gate(table).write_owned().await,
        }
    }

    fn gate(&self, table: &str) -> Arc<RwLock<()>> {
        // A poisoned map only means a panic while it was held; the map itself stays valid.
        let mut gates = self
            .gates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(gate) = gates.get(table).and_then(Weak::upgrade) {
            return gate;
        }
        if gates.len() >= SWEEP_ABOVE {
            gates.retain(|_, gate| gate.strong_count() > 0);
        }
        let gate = Arc::new(RwLock::new(()));
        gates.insert(table.to_string(), Arc::downgrade(&gate));
        gate
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_drop_waits_for_the_writes_holding_the_gate_and_keeps_later_ones_out() {
        let gates = Arc::new(TableGates::default());
        let first = gates.writing("t").await;
        let second = gates.writing("t").await;
        let dropping = tokio::spawn({
            let gates = gates.clone();
            async move { gates.dropping("t").await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!dropping.is_finished(), "the drop waits for both writes");
        let late = tokio::spawn({
            let gates = gates.clone();
            async move { gates.writing("t").await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !late.is_finished(),
            "a write arriving after the drop waits for it"
        );
        let other = tokio::time::timeout(Duration::from_secs(1), gates.writing("u")).await;
        assert!(other.is_ok(), "other tables are not held up");
        drop((first, second));
        let held = dropping.await.expect("the drop gets the gate");
        assert!(
            !late.is_finished(),
            "the late write still waits while the drop holds it"
        );
        drop(held);
        assert_eq!(
            late.await.expect("the late write gets the gate").table(),
            "t"
        );
    }

    #[tokio::test]
    async fn released_gates_are_swept() {
        let gates = TableGates::default();
        for index in 0..(SWEEP_ABOVE * 3) {
            drop(gates.writing(&format!("t{index}")).await);
        }
        let kept = gates.gates.lock().map(|map| map.len()).unwrap_or(0);
        assert!(kept <= SWEEP_ABOVE + 1, "{kept} gates kept");
    }
}
