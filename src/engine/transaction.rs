//! The transaction block (`BEGIN ... COMMIT`) and the SQL cursors (`DECLARE ... CURSOR FOR`,
//! `FETCH`, `CLOSE`) it scopes.
//!
//! Every statement commits on its own (one Lance commit per write), so a block does not make
//! writes atomic. What it does:
//! - `READ ONLY` refuses writes until the block ends (25006).
//! - `REPEATABLE READ` and `SERIALIZABLE` give the block one snapshot: each table reads at the
//!   version the block first read it at, whatever other writers commit meanwhile. Writes in such
//!   a block are refused (0A000), since they would commit at once, outside the snapshot.
//! - It scopes cursors, as below.
//!
//! A cursor is a query executed once, at `DECLARE`, whose rows are handed out a `FETCH` at a
//! time: it reads one snapshot of its tables however long it stays open, and holds no more rows
//! in memory than the batch being handed out. TransactionBlock scroll forward only. As in Postgres, a
//! cursor without `WITH HOLD` needs a transaction block (`BEGIN`) and closes at its end; a
//! `WITH HOLD` cursor stays open until `CLOSE` or the end of the session. Transaction blocks
//! have no other meaning here: every statement still commits on its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::sql::sqlparser::ast;
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::provider::table::LanceTable;

/// A cursor statement, as the session carries it out.
#[derive(Debug, Clone, PartialEq)]
pub enum CursorStatement {
    /// `DECLARE name [NO SCROLL] CURSOR [WITH HOLD | WITHOUT HOLD] FOR query`.
    Declare {
        name: String,
        holdable: bool,
        query: Box<ast::Query>,
    },
    /// `FETCH [FORWARD] [count | ALL | NEXT] FROM name`.
    Fetch { name: String, count: FetchCount },
    /// `CLOSE name`, or `CLOSE ALL` (`None`).
    Close(Option<String>),
}

/// How many rows a `FETCH` hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchCount {
    Rows(u64),
    All,
}

impl CursorStatement {
    /// The cursor statement `statement` is, if it is one; scrolling that is not forward is
    /// refused here, with the reason.
    pub fn from_statement(statement: &ast::Statement) -> Result<Option<Self>> {
        Ok(Some(match statement {
            ast::Statement::Declare { stmts } => {
                let [declare] = stmts.as_slice() else {
                    return Err(Error::invalid("DECLARE takes one cursor at a time"));
                };
                declaration(declare)?
            }
            ast::Statement::Fetch {
                name,
                direction,
                into,
                ..
            } => {
                if into.is_some() {
                    return Err(Error::Unsupported {
                        what: "FETCH ... INTO".into(),
                    });
                }
                CursorStatement::Fetch {
                    name: name.value.clone(),
                    count: fetch_count(direction)?,
                }
            }
            ast::Statement::Close { cursor } => CursorStatement::Close(match cursor {
                ast::CloseCursor::All => None,
                ast::CloseCursor::Specific { name } => Some(name.value.clone()),
            }),
            _ => return Ok(None),
        }))
    }
}

fn declaration(declare: &ast::Declare) -> Result<CursorStatement> {
    let (Some(query), [name]) = (&declare.for_query, declare.names.as_slice()) else {
        return Err(Error::Unsupported {
            what: "DECLARE of anything but one cursor (DECLARE name CURSOR FOR query)".into(),
        });
    };
    if declare.binary == Some(true) {
        return Err(Error::Unsupported {
            what: "BINARY cursors: fetch with the extended protocol's binary format instead".into(),
        });
    }
    if declare.scroll == Some(true) {
        return Err(Error::Unsupported {
            what: "SCROLL cursors: lancesql's cursors move forward only".into(),
        });
    }
    Ok(CursorStatement::Declare {
        name: name.value.clone(),
        holdable: declare.hold == Some(true),
        query: query.clone(),
    })
}

fn fetch_count(direction: &ast::FetchDirection) -> Result<FetchCount> {
    use ast::FetchDirection as D;
    let count = |limit: &ast::ValueWithSpan| -> Result<FetchCount> {
        match &limit.value {
            ast::Value::Number(digits, _) => match digits.parse::<i64>() {
                Ok(rows) if rows >= 0 => Ok(FetchCount::Rows(rows.unsigned_abs())),
                Ok(_) => Err(backwards()),
                Err(_) => Err(Error::invalid(format!(
                    "FETCH count must be a whole number, not {digits}"
                ))),
            },
            other => Err(Error::invalid(format!(
                "FETCH count must be a whole number, not {other}"
            ))),
        }
    };
    match direction {
        D::Next | D::Forward { limit: None } => Ok(FetchCount::Rows(1)),
        D::Count { limit } | D::Forward { limit: Some(limit) } => count(limit),
        D::All | D::ForwardAll => Ok(FetchCount::All),
        D::Prior
        | D::First
        | D::Last
        | D::Absolute { .. }
        | D::Relative { .. }
        | D::Backward { .. }
        | D::BackwardAll => Err(backwards()),
    }
}

fn backwards() -> Error {
    Error::Unsupported {
        what: "cursors move forward only: use FETCH [FORWARD] count, NEXT or ALL".into(),
    }
}

/// How a block was begun (`BEGIN ISOLATION LEVEL ... READ ONLY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockModes {
    /// `REPEATABLE READ` or `SERIALIZABLE`: one snapshot for the whole block.
    pub snapshot: bool,
    pub read_only: bool,
}

/// One session's transaction block and open cursors.
#[derive(Clone, Default)]
pub struct TransactionBlock {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    in_transaction: bool,
    modes: BlockModes,
    /// The tables a snapshot block has read, at the versions it read them.
    pinned: HashMap<String, Arc<LanceTable>>,
    open: HashMap<String, Cursor>,
}

struct Cursor {
    schema: SchemaRef,
    holdable: bool,
    /// `None` while a `FETCH` is handing its rows out.
    rows: Option<Rows>,
}

/// Where a cursor stands in its query's result.
struct Rows {
    stream: SendableRecordBatchStream,
    /// The part of the last batch a `FETCH` did not hand out.
    pending: Option<RecordBatch>,
    finished: bool,
}

impl TransactionBlock {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every change below is a single map or flag update: a poisoned lock is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `BEGIN`: cursors without `WITH HOLD` may be declared until the block ends. A `BEGIN`
    /// inside a block changes nothing (Postgres warns and goes on).
    pub fn begin(&self, modes: BlockModes) {
        let mut state = self.state();
        if !state.in_transaction {
            state.in_transaction = true;
            state.modes = modes;
        }
    }

    /// `COMMIT` or `ROLLBACK`: the block ends, with its snapshot and its cursors without
    /// `WITH HOLD`.
    pub fn end_transaction(&self) {
        let mut state = self.state();
        state.in_transaction = false;
        state.modes = BlockModes::default();
        state.pinned.clear();
        state.open.retain(|_, cursor| cursor.holdable);
    }

    /// The modes of the block the session is in (defaults outside a block).
    pub fn modes(&self) -> BlockModes {
        self.state().modes
    }

    /// In a snapshot block, the version of `name` the block read first.
    pub fn pinned(&self, name: &str) -> Option<Arc<LanceTable>> {
        let state = self.state();
        if !state.modes.snapshot {
            return None;
        }
        state.pinned.get(name).cloned()
    }

    /// In a snapshot block, keeps `table` as the version of `name` the block reads from now on
    /// (the first version read wins).
    pub fn pin(&self, name: &str, table: &Arc<LanceTable>) {
        let mut state = self.state();
        if state.modes.snapshot {
            state
                .pinned
                .entry(name.to_string())
                .or_insert_with(|| table.clone());
        }
    }

    /// Checks that `name` may be declared now (before its query runs).
    pub fn check_declare(&self, name: &str, holdable: bool) -> Result<()> {
        let state = self.state();
        if !holdable && !state.in_transaction {
            return Err(Error::NoActiveTransaction {
                statement: "DECLARE CURSOR (without WITH HOLD)".into(),
            });
        }
        if state.open.contains_key(name) {
            return Err(Error::DuplicateCursor { name: name.into() });
        }
        Ok(())
    }

    /// Opens cursor `name` over `stream`, the running query's rows.
    pub fn declare(
        &self,
        name: &str,
        holdable: bool,
        stream: SendableRecordBatchStream,
    ) -> Result<()> {
        self.check_declare(name, holdable)?;
        let cursor = Cursor {
            schema: stream.schema(),
            holdable,
            rows: Some(Rows {
                stream,
                pending: None,
                finished: false,
            }),
        };
        self.state().open.insert(name.into(), cursor);
        Ok(())
    }

    /// The columns cursor `name` yields.
    pub fn schema(&self, name: &str) -> Result<SchemaRef> {
        self.state()
            .open
            .get(name)
            .map(|cursor| cursor.schema.clone())
            .ok_or_else(|| Error::UndefinedCursor { name: name.into() })
    }

    /// The next `count` rows of cursor `name`, streamed; the cursor moves past them as they
    /// are read, and takes back what was not read when the stream is dropped.
    pub fn fetch(&self, name: &str, count: FetchCount) -> Result<SendableRecordBatchStream> {
        let (schema, rows) = {
            let mut state = self.state();
            let cursor = state
                .open
                .get_mut(name)
                .ok_or_else(|| Error::UndefinedCursor { name: name.into() })?;
            let rows = cursor
                .rows
                .take()
                .ok_or_else(|| Error::CursorBusy { name: name.into() })?;
            (cursor.schema.clone(), rows)
        };
        let lease = Lease {
            cursors: self.clone(),
            name: name.into(),
            rows: Some(rows),
            remaining: match count {
                FetchCount::Rows(rows) => Some(rows),
                FetchCount::All => None,
            },
        };
        let batches = futures::stream::unfold(lease, |mut lease| async move {
            let batch = lease.next_batch().await?;
            Some((batch, lease))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }

    /// `CLOSE name` (`None`: `CLOSE ALL`).
    pub fn close(&self, name: Option<&str>) -> Result<()> {
        let mut state = self.state();
        match name {
            None => state.open.clear(),
            Some(name) => {
                state
                    .open
                    .remove(name)
                    .ok_or_else(|| Error::UndefinedCursor { name: name.into() })?;
            }
        }
        Ok(())
    }

    /// `DISCARD ALL`: every cursor closed and the transaction block left.
    pub fn discard(&self) {
        self.end_transaction();
        self.state().open.clear();
    }
}

/// A cursor's rows, borrowed by one `FETCH` and given back when it is dropped.
struct Lease {
    cursors: TransactionBlock,
    name: String,
    rows: Option<Rows>,
    /// Rows still to hand out; `None` for `FETCH ALL`.
    remaining: Option<u64>,
}

impl Lease {
    async fn next_batch(&mut self) -> Option<datafusion::error::Result<RecordBatch>> {
        if self.remaining == Some(0) {
            return None;
        }
        let rows = self.rows.as_mut()?;
        let batch = match rows.pending.take() {
            Some(batch) => batch,
            None if rows.finished => return None,
            None => match rows.stream.next().await {
                Some(Ok(batch)) => batch,
                Some(Err(error)) => {
                    rows.finished = true;
                    return Some(Err(error));
                }
                None => {
                    rows.finished = true;
                    return None;
                }
            },
        };
        let wanted = match self.remaining {
            Some(remaining) => usize::try_from(remaining).unwrap_or(usize::MAX),
            None => usize::MAX,
        };
        let batch = if batch.num_rows() > wanted {
            rows.pending = Some(batch.slice(wanted, batch.num_rows() - wanted));
            batch.slice(0, wanted)
        } else {
            batch
        };
        if let Some(remaining) = self.remaining.as_mut() {
            *remaining -= u64::try_from(batch.num_rows()).unwrap_or(u64::MAX);
        }
        Some(Ok(batch))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(rows) = self.rows.take() else {
            return;
        };
        // A cursor closed (or its transaction ended) meanwhile stays closed.
        if let Some(cursor) = self.cursors.state().open.get_mut(&self.name) {
            cursor.rows = Some(rows);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::memory::MemoryStream;

    fn numbers(batches: &[&[i64]]) -> SendableRecordBatchStream {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batches = batches
            .iter()
            .map(|range| {
                RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(Int64Array::from(range.to_vec()))],
                )
                .expect("a batch of the schema")
            })
            .collect();
        Box::pin(MemoryStream::try_new(batches, schema, None).expect("a memory stream"))
    }

    async fn fetch(cursors: &TransactionBlock, name: &str, count: FetchCount) -> Vec<i64> {
        let batches: Vec<RecordBatch> = cursors
            .fetch(name, count)
            .expect("the cursor is open")
            .map(|batch| batch.expect("a batch"))
            .collect()
            .await;
        batches
            .iter()
            .flat_map(|batch| {
                batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .expect("int64")
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[tokio::test]
    async fn fetches_continue_where_the_last_one_stopped_across_batches() {
        let cursors = TransactionBlock::default();
        cursors.begin(BlockModes::default());
        cursors
            .declare("c", false, numbers(&[&[0, 1, 2], &[3, 4, 5, 6]]))
            .expect("declared");
        assert_eq!(fetch(&cursors, "c", FetchCount::Rows(2)).await, vec![0, 1]);
        assert_eq!(
            fetch(&cursors, "c", FetchCount::Rows(3)).await,
            vec![2, 3, 4]
        );
        assert_eq!(fetch(&cursors, "c", FetchCount::All).await, vec![5, 6]);
        assert!(fetch(&cursors, "c", FetchCount::Rows(5)).await.is_empty());
        assert_eq!(cursors.schema("c").expect("open").fields().len(), 1);
    }

    #[tokio::test]
    async fn cursors_without_hold_need_a_transaction_and_end_with_it() {
        let cursors = TransactionBlock::default();
        let outside = cursors.declare("c", false, numbers(&[&[0]]));
        assert!(matches!(outside, Err(Error::NoActiveTransaction { .. })));
        cursors.begin(BlockModes::default());
        cursors
            .declare("c", false, numbers(&[&[0]]))
            .expect("declared");
        cursors
            .declare("held", true, numbers(&[&[0]]))
            .expect("declared");
        assert!(matches!(
            cursors.declare("c", false, numbers(&[&[0]])),
            Err(Error::DuplicateCursor { .. })
        ));
        cursors.end_transaction();
        assert!(matches!(
            cursors.schema("c"),
            Err(Error::UndefinedCursor { .. })
        ));
        assert_eq!(fetch(&cursors, "held", FetchCount::All).await, vec![0]);
        cursors.close(Some("held")).expect("closed");
        assert!(matches!(
            cursors.close(Some("held")),
            Err(Error::UndefinedCursor { .. })
        ));
    }

    #[test]
    fn only_forward_fetches_are_accepted() {
        use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
        use datafusion::sql::sqlparser::parser::Parser;
        let parse = |sql: &str| {
            let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
            CursorStatement::from_statement(&statements[0])
        };
        assert_eq!(
            parse("FETCH FORWARD 5 FROM c").expect("accepted"),
            Some(CursorStatement::Fetch {
                name: "c".into(),
                count: FetchCount::Rows(5)
            })
        );
        assert_eq!(
            parse("FETCH ALL IN c").expect("accepted"),
            Some(CursorStatement::Fetch {
                name: "c".into(),
                count: FetchCount::All
            })
        );
        assert!(matches!(
            parse("FETCH BACKWARD 1 FROM c"),
            Err(Error::Unsupported { .. })
        ));
        assert!(matches!(
            parse("DECLARE c SCROLL CURSOR FOR SELECT 1"),
            Err(Error::Unsupported { .. })
        ));
        assert!(matches!(
            parse("DECLARE c CURSOR WITH HOLD FOR SELECT 1").expect("accepted"),
            Some(CursorStatement::Declare { holdable: true, .. })
        ));
        assert_eq!(
            parse("CLOSE ALL").expect("accepted"),
            Some(CursorStatement::Close(None))
        );
    }
}
