//! A table's history as SQL names it: `VERSION AS OF n`, `VERSION AS OF 'tag'` and
//! `TIMESTAMP AS OF '...'` resolved to a version number that exists now.
//!
//! Contract: resolving reads only the table's manifests and tags, never data (a version number
//! only its own manifest); a version that
//! was never written or has been removed, a tag that does not exist, or a time before the table
//! existed is an error naming the table and what was asked for.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, UInt64Array};
use arrow::datatypes::UInt64Type;

use crate::error::{Error, Result};

use super::DataRoot;

/// Which version of a table a statement reads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AsOf {
    /// That version number.
    Version(u64),
    /// The version a tag names.
    Tag(String),
    /// The newest version committed at or before this time (nanoseconds since the epoch, UTC),
    /// as the statement wrote it (for errors).
    Timestamp { nanos: i64, written: String },
}

impl std::fmt::Display for AsOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AsOf::Version(version) => write!(f, "version {version}"),
            AsOf::Tag(tag) => write!(f, "tag '{tag}'"),
            AsOf::Timestamp { written, .. } => write!(f, "time '{written}'"),
        }
    }
}

impl DataRoot {
    /// The version of `table` that `at` names.
    pub async fn version_as_of(&self, table: &str, at: &AsOf) -> Result<u64> {
        let dataset = self
            .open_latest(table)
            .await?
            .ok_or_else(|| Error::TableNotFound {
                table: table.to_string(),
            })?;
        let lance_error =
            |what: &str, error| Error::lance(format!("{what} of '{table}'"), dataset.uri(), error);
        let (wanted_version, wanted_time) = match at {
            AsOf::Tag(tag) => {
                return dataset
                    .tags()
                    .get_version(tag)
                    .await
                    .map_err(|error| match error {
                        lance_core::Error::RefNotFound { .. }
                        | lance_core::Error::InvalidRef { .. } => {
                            Error::invalid(format!("table '{table}' has no tag '{tag}'"))
                        }
                        other => lance_error("reading the tags", other),
                    });
            }
            AsOf::Version(version) => (Some(*version), None),
            AsOf::Timestamp { nanos, written } => (None, Some((*nanos, written))),
        };
        // A version number is checked by opening it (one manifest read, cached for the read
        // that follows); listing every version's manifest is for times and for errors only.
        if let Some(version) = wanted_version
            && self
                .open_pinned(&self.table_uri(table)?, version)
                .await
                .is_ok()
        {
            return Ok(version);
        }
        let versions = dataset
            .versions()
            .await
            .map_err(|error| lance_error("listing the versions", error))?;
        if let Some(version) = wanted_version {
            if versions.iter().any(|kept| kept.version == version) {
                return Ok(version);
            }
            let kept = match (versions.first(), versions.last()) {
                (Some(first), Some(last)) if first.version == last.version => {
                    format!("its one version is {}", first.version)
                }
                (Some(first), Some(last)) => {
                    format!("its versions are {} to {}", first.version, last.version)
                }
                _ => "it has no versions".to_string(),
            };
            return Err(Error::invalid(format!(
                "table '{table}' has no version {version} ({kept})"
            )));
        }
        let Some((nanos, written)) = wanted_time else {
            return Err(Error::Internal {
                message: format!("no version or time asked of '{table}'"),
            });
        };
        versions
            .iter()
            .filter(|kept| {
                kept.timestamp
                    .timestamp_nanos_opt()
                    .is_some_and(|committed| committed <= nanos)
            })
            .map(|kept| kept.version)
            .max()
            .ok_or_else(|| {
                let first = versions
                    .first()
                    .map(|first| format!("; its first version is from {}", first.timestamp))
                    .unwrap_or_default();
                Error::invalid(format!(
                    "table '{table}' has no version at or before '{written}'{first}"
                ))
            })
    }
}

/// One version of a table, as `system.versions` shows it.
#[derive(Debug, Clone)]
pub struct VersionRecord {
    pub version: u64,
    /// When it was committed, in microseconds since the epoch (UTC).
    pub committed_micros: i64,
    /// The Lance operation that committed it (`Append`, `Delete`, `Update`, `Restore`, ...),
    /// when its transaction file is there to say.
    pub operation: Option<String>,
    /// Live rows in fragments this version added.
    pub rows_added: u64,
    /// Live rows of the previous version that this one no longer has.
    pub rows_removed: u64,
    /// Lance's key-value metadata of the version.
    pub metadata: Vec<(String, String)>,
}

/// One tag of a table.
#[derive(Debug, Clone)]
pub struct TagRecord {
    pub tag: String,
    pub version: u64,
}

impl DataRoot {
    /// Every version of `table` that still exists, oldest first. Reads each version's manifest
    /// (cached afterwards) and transaction file.
    pub async fn versions(&self, table: &str) -> Result<Vec<VersionRecord>> {
        let dataset = self.latest_or_missing(table).await?;
        let uri = self.table_uri(table)?;
        let lance_error =
            |what: &str, error| Error::lance(format!("{what} of '{table}'"), dataset.uri(), error);
        let versions = dataset
            .versions()
            .await
            .map_err(|error| lance_error("listing the versions", error))?;
        let mut records = Vec::with_capacity(versions.len());
        let mut previous: Option<std::collections::HashMap<u64, u64>> = None;
        for version in versions {
            let at = self.open_pinned(&uri, version.version).await?;
            let live: std::collections::HashMap<u64, u64> = at
                .fragments()
                .iter()
                .map(|fragment| (fragment.id, fragment.num_rows().unwrap_or(0) as u64))
                .collect();
            let (rows_added, rows_removed) = match &previous {
                None => (live.values().sum(), 0),
                Some(before) => {
                    // A fragment may also regain rows (a restore of an older version).
                    let added = live
                        .iter()
                        .map(|(id, rows)| rows.saturating_sub(before.get(id).copied().unwrap_or(0)))
                        .sum();
                    let removed = before
                        .iter()
                        .map(|(id, rows)| rows.saturating_sub(live.get(id).copied().unwrap_or(0)))
                        .sum();
                    (added, removed)
                }
            };
            let operation = at
                .read_transaction_by_version(version.version)
                .await
                .ok()
                .flatten()
                .map(|transaction| transaction.operation.name().to_string());
            records.push(VersionRecord {
                version: version.version,
                committed_micros: version.timestamp.timestamp_micros(),
                operation,
                rows_added,
                rows_removed,
                metadata: version.metadata.into_iter().collect(),
            });
            previous = Some(live);
        }
        Ok(records)
    }

    /// The tags of `table`, by name.
    pub async fn tags(&self, table: &str) -> Result<Vec<TagRecord>> {
        let dataset = self.latest_or_missing(table).await?;
        let tags = dataset.tags().list().await.map_err(|error| {
            Error::lance(
                format!("listing the tags of '{table}'"),
                dataset.uri(),
                error,
            )
        })?;
        let mut records: Vec<TagRecord> = tags
            .into_iter()
            .map(|(tag, contents)| TagRecord {
                tag,
                version: contents.version,
            })
            .collect();
        records.sort_by(|a, b| a.tag.cmp(&b.tag));
        Ok(records)
    }

    /// Tags `table` as of `at` (its latest version without one) with `tag`; returns the
    /// version tagged. A tag that exists is an error: tags are moved by dropping them first.
    pub async fn create_tag(&self, table: &str, tag: &str, at: Option<&AsOf>) -> Result<u64> {
        let version = match at {
            Some(at) => self.version_as_of(table, at).await?,
            None => self.latest_or_missing(table).await?.version_id(),
        };
        let gate = self.write_gate(table).await;
        let dataset = self.open_for_write(table, &gate).await?;
        match dataset.tags().create(tag, version).await {
            Ok(()) => Ok(version),
            Err(lance_core::Error::RefConflict { .. }) => Err(Error::invalid(format!(
                "table '{table}' already has a tag '{tag}'; drop it first to move it"
            ))),
            Err(lance_core::Error::InvalidRef { message }) => Err(Error::invalid(format!(
                "'{tag}' cannot name a tag of table '{table}': {message}"
            ))),
            Err(error) => Err(Error::lance(
                format!("tagging table '{table}'"),
                dataset.uri(),
                error,
            )),
        }
    }

    /// Removes `tag` from `table`; returns false when it had no such tag. The tagged version
    /// stays until a `VACUUM` finds it untagged and old enough.
    pub async fn drop_tag(&self, table: &str, tag: &str) -> Result<bool> {
        let gate = self.write_gate(table).await;
        let dataset = self.open_for_write(table, &gate).await?;
        match dataset.tags().delete(tag).await {
            Ok(()) => Ok(true),
            Err(lance_core::Error::RefNotFound { .. }) => Ok(false),
            Err(error) => Err(Error::lance(
                format!("dropping tag '{tag}' of table '{table}'"),
                dataset.uri(),
                error,
            )),
        }
    }

    /// Makes `table` as of `at` its latest version again, as a new version (the versions in
    /// between stay readable). Returns the new version.
    pub async fn restore_table(&self, table: &str, at: &AsOf) -> Result<u64> {
        let version = self.version_as_of(table, at).await?;
        let gate = self.write_gate(table).await;
        let dataset = self.open_for_write(table, &gate).await?;
        let lance_error = |error| {
            Error::lance(
                format!("restoring table '{table}' to version {version}"),
                dataset.uri(),
                error,
            )
        };
        let mut old = dataset
            .checkout_version(version)
            .await
            .map_err(lance_error)?;
        old.restore().await.map_err(lance_error)?;
        Ok(old.version_id())
    }

    async fn latest_or_missing(&self, table: &str) -> Result<Arc<lance::Dataset>> {
        self.open_latest(table)
            .await?
            .ok_or_else(|| Error::TableNotFound {
                table: table.to_string(),
            })
    }
}

/// The `_change_type` values of [`DataRoot::table_changes`].
pub const CHANGE_INSERT: &str = "insert";
pub const CHANGE_UPDATE: &str = "update";
pub const CHANGE_DELETE: &str = "delete";

impl DataRoot {
    /// The rows of `table` inserted, updated and deleted after version `from` up to version
    /// `to`, from Lance's row-level version metadata: each batch carries the table's columns
    /// (as of `to`; a deleted row's values as of `from`), `_rowid` and `_change_type`. A row
    /// inserted and then updated in the range is an insert. Only tables with stable row ids
    /// keep that metadata; for others this is an error saying so.
    pub async fn table_changes(
        &self,
        table: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<(&'static str, RecordBatch)>> {
        use futures::TryStreamExt;
        if from >= to {
            return Err(Error::invalid(format!(
                "table_changes('{table}', {from}, {to}): the first version must be older than \
                 the second"
            )));
        }
        let uri = self.table_uri(table)?;
        self.version_as_of(table, &AsOf::Version(from)).await?;
        self.version_as_of(table, &AsOf::Version(to)).await?;
        let end = self.open_pinned(&uri, to).await?;
        let begin = self.open_pinned(&uri, from).await?;
        if !begin.manifest.uses_stable_row_ids() {
            return Err(Error::Unsupported {
                what: format!(
                    "table_changes of table '{table}': it was written without stable row ids, \
                     so Lance keeps no row-level history for it (tables written with \
                     enable_stable_row_ids=True have it); compare two versions with time travel \
                     instead"
                ),
            });
        }
        let lance_error = |error| {
            Error::lance(
                format!("reading the changes of table '{table}' from version {from} to {to}"),
                &uri,
                error,
            )
        };
        let delta = end
            .as_ref()
            .clone()
            .delta()
            .with_begin_version(from)
            .with_end_version(to)
            .build()
            .map_err(lance_error)?;
        let mut changes = Vec::new();
        for (kind, stream) in [
            (
                CHANGE_INSERT,
                delta.get_inserted_rows().await.map_err(lance_error)?,
            ),
            (
                CHANGE_UPDATE,
                delta.get_updated_rows().await.map_err(lance_error)?,
            ),
        ] {
            let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(lance_error)?;
            changes.extend(batches.into_iter().map(|batch| (kind, batch)));
        }
        let deleted: Vec<RecordBatch> = delta
            .get_deleted_row_ids()
            .await
            .map_err(lance_error)?
            .try_collect()
            .await
            .map_err(lance_error)?;
        let row_ids: Vec<u64> = deleted
            .iter()
            .filter_map(|batch| {
                batch
                    .column_by_name(lance_core::ROW_ID)
                    .and_then(|column| column.as_primitive_opt::<UInt64Type>())
                    .map(|ids| ids.values().to_vec())
            })
            .flatten()
            .collect();
        if !row_ids.is_empty() {
            let projection = begin.schema().clone();
            let mut taken = begin
                .take_rows(&row_ids, projection)
                .await
                .map_err(lance_error)?;
            // `take_rows` returns the rows in the order asked, without their ids: add them.
            let ids: ArrayRef = Arc::new(UInt64Array::from(row_ids));
            let mut fields = taken.schema().fields().to_vec();
            fields.push(Arc::new(lance_core::ROW_ID_FIELD.clone()));
            let mut columns = taken.columns().to_vec();
            columns.push(ids);
            taken = RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns)
                .map_err(|error| Error::Internal {
                    message: format!("assembling deleted rows: {error}"),
                })?;
            changes.push((CHANGE_DELETE, taken));
        }
        Ok(changes)
    }
}
