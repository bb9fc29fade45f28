//! Row-level changes to an existing table: `DELETE` and `UPDATE`, each one Lance commit at the
//! table's latest version, or none.
//!
//! Filters and assignments are DataFusion expressions over the table's own columns (the engine
//! checked that they reference nothing else), evaluated by Lance's scanner and by DataFusion's
//! physical expressions: no expression goes through SQL text again. A commit that a concurrent
//! writer makes impossible to rebase is retried from the start at the new latest version, a few
//! times, and then reported as a serialization failure (SQLSTATE 40001). A failed write leaves
//! the table as it was: an UPDATE removes the data files it wrote when its commit fails.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{SchemaRef, UInt64Type};
use bytes::Bytes;
use datafusion::common::DFSchema;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, lit};
use datafusion::physical_expr::create_physical_expr;
use datafusion::physical_expr::execution_props::ExecutionProps;
use datafusion::physical_plan::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use lance::Dataset;
use lance::dataset::transaction::{Operation, Transaction, UpdateMode};
use lance::dataset::{CommitBuilder, DeleteBuilder, InsertBuilder, WriteMode, WriteParams};
use lance_core::datatypes::BlobHandling;
use lance_core::{ROW_ADDR, ROW_ID};
use lance_select::RowAddrTreeMap;
use lance_table::format::{Fragment, InlineRowIds, RowIdMeta};
use lance_table::rowids::{RowIdSequence, write_row_ids};

use super::DataRoot;
use crate::error::{Error, Result};

/// How often a statement starts over when concurrent commits keep invalidating its work.
const WRITE_ATTEMPTS: u32 = 10;

impl DataRoot {
    /// Deletes the rows of `table` matching `filter` (all rows without one) as one commit.
    /// Returns the rows deleted.
    pub async fn delete_rows(&self, table: &str, filter: Option<Expr>) -> Result<u64> {
        let uri = self.write_uri(table)?;
        let gate = self.write_gate(table).await;
        let dataset = Arc::new(self.open_for_write(table, &gate).await?);
        let deleted = DeleteBuilder::from_expr(dataset, filter.unwrap_or_else(|| lit(true)))
            .conflict_retries(WRITE_ATTEMPTS)
            .execute()
            .await
            .map_err(|source| write_failure(table, &uri, "deleting from", source));
        Ok(self.unless_dropped(table, deleted).await?.num_deleted_rows)
    }

    /// Sets `assignments` (column, new value as an expression over the row's old values) in
    /// the rows of `table` matching `filter` (all rows without one), as one commit: the rows are
    /// rewritten into new fragments and deleted from their old ones. Rows keep their stable row
    /// ids where the table has them. Returns the rows updated; when none match, nothing is
    /// committed.
    pub async fn update_rows(
        &self,
        table: &str,
        assignments: &[(String, Expr)],
        filter: Option<Expr>,
    ) -> Result<u64> {
        let uri = self.write_uri(table)?;
        let mut attempt = 1;
        let gate = self.write_gate(table).await;
        loop {
            let dataset = Arc::new(self.open_for_write(table, &gate).await?);
            match self
                .update_once(table, &uri, dataset, assignments, filter.clone())
                .await
            {
                Err(Attempt::Conflict(source)) if attempt < WRITE_ATTEMPTS => {
                    tracing::debug!(table, attempt, error = %source, "UPDATE conflicted; starting over");
                    attempt += 1;
                }
                Err(Attempt::Conflict(source)) => {
                    return Err(write_failure(table, &uri, "updating", source));
                }
                Err(Attempt::Failed(error)) => return self.unless_dropped(table, Err(error)).await,
                Ok(rows) => return Ok(rows),
            }
        }
    }

    async fn update_once(
        &self,
        table: &str,
        uri: &str,
        dataset: Arc<Dataset>,
        assignments: &[(String, Expr)],
        filter: Option<Expr>,
    ) -> std::result::Result<u64, Attempt> {
        let failed =
            |doing: &str, source| Attempt::Failed(write_failure(table, uri, doing, source));
        let mut scanner = dataset.scan();
        scanner
            .with_row_id()
            .with_row_address()
            .blob_handling(BlobHandling::AllBinary);
        if let Some(filter) = filter {
            scanner.filter_expr(filter);
        }
        let matching: SendableRecordBatchStream = scanner
            .try_into_stream()
            .await
            .map_err(|source| failed("reading the rows to update in", source))?
            .into();
        let data_schema: SchemaRef = Arc::new(arrow::datatypes::Schema::from(dataset.schema()));
        let rewrite = Rewrite::new(table, &matching.schema(), data_schema.clone(), assignments)
            .map_err(Attempt::Failed)?;
        let identities = rewrite.identities.clone();
        let rows = matching.map(move |batch| rewrite.apply(batch?));
        let params = WriteParams {
            mode: WriteMode::Append,
            store_params: Some(self.store_params()),
            session: Some(self.session.clone()),
            ..Default::default()
        };
        let written = InsertBuilder::new(dataset.clone())
            .with_params(&params)
            .execute_uncommitted_stream(Box::pin(RecordBatchStreamAdapter::new(data_schema, rows))
                as SendableRecordBatchStream)
            .await
            .map_err(|source| failed("writing the updated rows of", source))?;
        let (row_ids, row_addresses) = identities.take();
        if row_addresses.is_empty() {
            self.discard(uri, &written).await;
            return Ok(0);
        }
        let committed = self
            .commit_update(&dataset, &written, assignments, &row_ids, &row_addresses)
            .await;
        match committed {
            Ok(()) => Ok(row_addresses.len() as u64),
            Err(source) => {
                self.discard(uri, &written).await;
                Err(match source {
                    lance::Error::RetryableCommitConflict { .. } => Attempt::Conflict(source),
                    source => failed("committing the update of", source),
                })
            }
        }
    }

    /// Commits the rows `written` as replacing the rows at `row_addresses` of `dataset`.
    async fn commit_update(
        &self,
        dataset: &Arc<Dataset>,
        written: &Transaction,
        assignments: &[(String, Expr)],
        row_ids: &[u64],
        row_addresses: &[u64],
    ) -> lance::Result<()> {
        let mut new_fragments: Vec<Fragment> = match &written.operation {
            Operation::Append { fragments } => fragments.clone(),
            other => {
                return Err(lance::Error::internal(format!(
                    "an append wrote a {} operation",
                    other.name()
                )));
            }
        };
        if dataset.manifest.uses_stable_row_ids() {
            keep_row_ids(&mut new_fragments, row_ids)?;
        }
        let mut deletions: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for address in row_addresses {
            // A row address is the fragment id in the high half and the offset in the low.
            deletions
                .entry((address >> 32) as u32)
                .or_default()
                .push(*address as u32);
        }
        let (mut updated_fragments, mut removed_fragment_ids) = (Vec::new(), Vec::new());
        for (fragment_id, offsets) in deletions {
            let fragment = dataset.get_fragment(fragment_id as usize).ok_or_else(|| {
                lance::Error::internal(format!("fragment {fragment_id} vanished while updating"))
            })?;
            match fragment.extend_deletions(offsets).await? {
                Some(remaining) => updated_fragments.push(remaining.metadata().clone()),
                None => removed_fragment_ids.push(u64::from(fragment_id)),
            }
        }
        let mut fields_for_preserving_frag_bitmap = Vec::new();
        for (column, _) in assignments {
            if let Some(field) = dataset.schema().field(column) {
                collect_field_ids(field, &mut fields_for_preserving_frag_bitmap);
            }
        }
        let operation = Operation::Update {
            removed_fragment_ids,
            updated_fragments,
            new_fragments,
            // Updated rows move to new fragments, so no index covers them.
            fields_modified: Vec::new(),
            compacted_sstables: Vec::new(),
            fields_for_preserving_frag_bitmap,
            update_mode: Some(UpdateMode::RewriteRows),
            inserted_rows_filter: None,
            updated_fragment_offsets: None,
        };
        let transaction = Transaction::new(dataset.manifest.version, operation, None);
        CommitBuilder::new(dataset.clone())
            .with_affected_rows(row_addresses.iter().copied().collect::<RowAddrTreeMap>())
            .execute(transaction)
            .await?;
        Ok(())
    }

    /// Removes the data files of an uncommitted write (logged, not raised: the write's own
    /// failure is what the user needs to see, and unreferenced files harm no reader).
    async fn discard(&self, uri: &str, written: &Transaction) {
        if let Err(error) = self.remove_written_files(uri, written).await {
            tracing::warn!(%uri, %error, "could not remove the data files of an abandoned write");
        }
    }
}

/// One try of a statement that may have to start over.
enum Attempt {
    /// A concurrent commit made this one impossible; starting over may succeed.
    Conflict(lance::Error),
    Failed(Error),
}

/// A Lance write failure, with a lost race reported as such.
fn write_failure(table: &str, uri: &str, doing: &str, source: lance::Error) -> Error {
    Error::lance(format!("{doing} table '{table}'"), uri, source)
}

/// Turns scanned rows (data columns, `_rowid`, `_rowaddr`) into their updated data columns,
/// remembering each row's identity.
struct Rewrite {
    table: String,
    data_schema: SchemaRef,
    /// Per data column: its new value, or `None` to keep the old one.
    values: Vec<Option<Arc<dyn PhysicalExpr>>>,
    identities: Identities,
}

impl Rewrite {
    fn new(
        table: &str,
        scanned: &SchemaRef,
        data_schema: SchemaRef,
        assignments: &[(String, Expr)],
    ) -> Result<Self> {
        let input = DFSchema::try_from(scanned.as_ref().clone())?;
        let props = ExecutionProps::new();
        let mut values = vec![None; data_schema.fields().len()];
        for (column, value) in assignments {
            let index = data_schema
                .index_of(column)
                .map_err(|_| Error::ColumnNotFound {
                    table: table.to_string(),
                    column: column.clone(),
                })?;
            values[index] = Some(create_physical_expr(value, &input, &props)?);
        }
        Ok(Rewrite {
            table: table.to_string(),
            data_schema,
            values,
            identities: Identities::default(),
        })
    }

    fn apply(&self, batch: RecordBatch) -> datafusion::error::Result<RecordBatch> {
        let identity = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|column| column.as_primitive_opt::<UInt64Type>())
                .map(|column| column.values().to_vec())
                .ok_or_else(|| {
                    DataFusionError::Internal(format!("the scan for an UPDATE lost {name}"))
                })
        };
        self.identities
            .extend(identity(ROW_ID)?, identity(ROW_ADDR)?);
        let strict = arrow::compute::CastOptions {
            safe: false,
            ..Default::default()
        };
        let mut columns = Vec::with_capacity(self.values.len());
        for (field, value) in self.data_schema.fields().iter().zip(&self.values) {
            let column = match value {
                Some(value) => value.evaluate(&batch)?.into_array(batch.num_rows())?,
                None => batch.column_by_name(field.name()).cloned().ok_or_else(|| {
                    DataFusionError::Internal(format!(
                        "the scan for an UPDATE lost column {}",
                        field.name()
                    ))
                })?,
            };
            if !field.is_nullable() && column.null_count() > 0 {
                return Err(DataFusionError::from(Error::NotNullViolation {
                    table: self.table.clone(),
                    column: field.name().clone(),
                }));
            }
            columns.push(if column.data_type() == field.data_type() {
                column
            } else {
                arrow::compute::cast_with_options(&column, field.data_type(), &strict)?
            });
        }
        Ok(RecordBatch::try_new(self.data_schema.clone(), columns)?)
    }
}

/// The row ids and row addresses of the rows an UPDATE rewrote, in the order it wrote them.
#[derive(Clone, Default)]
struct Identities(Arc<Mutex<(Vec<u64>, Vec<u64>)>>);

impl Identities {
    fn extend(&self, row_ids: Vec<u64>, row_addresses: Vec<u64>) {
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.0.extend(row_ids);
        seen.1.extend(row_addresses);
    }

    fn take(&self) -> (Vec<u64>, Vec<u64>) {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }
}

/// Gives the rewritten rows in `fragments` (written in the order of `row_ids`) their old
/// stable row ids, so an updated row stays the same row.
fn keep_row_ids(fragments: &mut [Fragment], row_ids: &[u64]) -> lance::Result<()> {
    let mut rest = row_ids;
    for fragment in fragments {
        let rows = fragment.physical_rows.ok_or_else(|| {
            lance::Error::internal("a fragment written by an UPDATE has no row count")
        })?;
        if rest.len() < rows {
            return Err(lance::Error::internal(
                "an UPDATE wrote more rows than it read",
            ));
        }
        let (these, after) = rest.split_at(rows);
        let encoded = write_row_ids(&RowIdSequence::from(these));
        fragment.row_id_meta = Some(RowIdMeta::Inline(InlineRowIds::from(Bytes::from(encoded))));
        rest = after;
    }
    Ok(())
}

/// `field`'s id and those of every field nested in it.
fn collect_field_ids(field: &lance_core::datatypes::Field, ids: &mut Vec<u32>) {
    if let Ok(id) = u32::try_from(field.id) {
        ids.push(id);
    }
    for child in &field.children {
        collect_field_ids(child, ids);
    }
}

/// What a `MERGE` does with each kind of row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeActions {
    /// A target row matched by a source row: replaced by it (`Some(true)`), deleted
    /// (`Some(false)`), or kept (`None`).
    pub matched_update: Option<bool>,
    /// A source row matching no target row is inserted.
    pub insert_unmatched: bool,
    /// A target row no source row matches is deleted.
    pub delete_unmatched_target: bool,
}

/// The rows a `MERGE` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MergeCounts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
}

impl DataRoot {
    /// Merges `source` (rows with the target's columns, matched on `keys`) into `table` as one
    /// commit with Lance's merge-insert, retried by Lance over concurrent commits. A key that
    /// two source rows share is an error (a target row may be changed once per statement).
    pub async fn merge_rows(
        &self,
        table: &str,
        source: SendableRecordBatchStream,
        keys: Vec<String>,
        actions: MergeActions,
    ) -> Result<MergeCounts> {
        use lance::dataset::{
            MergeInsertBuilder, WhenMatched, WhenNotMatched, WhenNotMatchedBySource,
        };
        let uri = self.write_uri(table)?;
        let gate = self.write_gate(table).await;
        let dataset = Arc::new(self.open_for_write(table, &gate).await?);
        let target: SchemaRef = Arc::new(arrow::datatypes::Schema::from(dataset.schema()));
        let failed = |source| write_failure(table, &uri, "merging into", source);
        let mut builder = MergeInsertBuilder::try_new(dataset.clone(), keys).map_err(failed)?;
        builder
            .when_matched(match actions.matched_update {
                Some(true) => WhenMatched::UpdateAll,
                Some(false) => WhenMatched::Delete,
                None => WhenMatched::DoNothing,
            })
            .when_not_matched(if actions.insert_unmatched {
                WhenNotMatched::InsertAll
            } else {
                WhenNotMatched::DoNothing
            })
            .when_not_matched_by_source(if actions.delete_unmatched_target {
                WhenNotMatchedBySource::Delete
            } else {
                WhenNotMatchedBySource::Keep
            })
            .conflict_retries(WRITE_ATTEMPTS);
        let job = builder.try_build().map_err(failed)?;
        // The source brings the target's columns by name; values are cast to their types.
        let name = table.to_string();
        let shape = if source.schema().fields().len() == target.fields().len() {
            target.clone()
        } else {
            // Only the key columns (a delete by key): cast those.
            Arc::new(arrow::datatypes::Schema::new(
                source
                    .schema()
                    .fields()
                    .iter()
                    .map(|field| {
                        target
                            .field_with_name(field.name())
                            .cloned()
                            .unwrap_or_else(|_| field.as_ref().clone())
                    })
                    .collect::<Vec<_>>(),
            ))
        };
        let shaped_schema = shape.clone();
        let shaped = source.map(move |batch| super::widen_to(&name, &shape, batch?));
        let merged = job
            .execute(Box::pin(RecordBatchStreamAdapter::new(
                shaped_schema,
                shaped,
            )))
            .await
            .map_err(failed);
        let (_, stats) = self.unless_dropped(table, merged).await?;
        Ok(MergeCounts {
            inserted: stats.num_inserted_rows,
            updated: stats.num_updated_rows,
            deleted: stats.num_deleted_rows,
        })
    }
}
