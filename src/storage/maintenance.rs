//! `OPTIMIZE t`: small fragments compacted into larger ones, and rows appended since an index was
//! built folded into it, so scans open fewer files and searches use the index for every row.
//!
//! Indices go first: Lance compacts only fragments with the same index coverage together, so
//! folding new rows into the indices first lets one `OPTIMIZE` merge every small fragment.
//!
//! Contract: each step is one Lance commit, through the write URI (Lance's safe commit handler),
//! and only when it has work: a table with nothing to compact and every row indexed stays at its
//! version. Compaction rewrites live rows into new files and keeps the old ones for older
//! versions (removing them is `VACUUM`'s job, never this one's), so a reader of any version sees
//! the same rows before and after. Index optimisation appends the unindexed rows to each index
//! as a delta, without retraining. A concurrent writer's commit is rebased or the step fails
//! with nothing changed.
//!
//! Appends compact too ([`DataRoot::compact_if_fragmented`]): row-at-a-time writers (ORMs, test
//! suites, one-row INSERTs) leave one tiny fragment per statement, and scans slow down with every
//! file they open. As Delta Lake's auto compaction does, the append that leaves
//! `lance.auto_compact_fragments` small fragments compacts them after its own commit, as a
//! separate commit that changes no row.

use lance::Dataset;
use lance::dataset::optimize::{CompactionOptions, compact_files};
use lance::index::DatasetIndexExt;
use lance_index::optimize::OptimizeOptions;
use lance_table::system_index::is_system_index;

use std::sync::Arc;

use crate::config::LanceOptions;
use crate::error::{Error, Result};

use super::DataRoot;
use super::progress::{LanceProgress, WorkProgress};

/// What `OPTIMIZE` did to one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptimizeReport {
    /// Fragments compaction replaced, and the fragments it wrote in their place.
    pub fragments_removed: usize,
    pub fragments_added: usize,
    /// Data and deletion files no longer referenced by the new version, and files written.
    pub files_removed: usize,
    pub files_added: usize,
    /// Indices that had unindexed rows, all folded in.
    pub indices_optimized: usize,
    /// The table's version afterwards.
    pub version: u64,
}

/// When an append compacts its table's small fragments right after its commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoCompact {
    /// Compact once the table has at least this many small fragments (0: never).
    pub fragments: usize,
    /// A fragment of fewer rows is small, and compaction makes fragments of up to this many.
    pub rows_per_fragment: usize,
}

impl AutoCompact {
    /// The policy of a session's `lance.*` settings: `auto_compact_fragments` small fragments,
    /// small meaning under `max_rows_per_file` rows (the data files its writes make).
    pub fn of(options: &LanceOptions) -> Self {
        AutoCompact {
            fragments: options.auto_compact_fragments,
            rows_per_fragment: options.max_rows_per_file,
        }
    }
}

/// Lance's compaction, making fragments of up to `rows_per_fragment` rows.
fn compaction(rows_per_fragment: usize) -> CompactionOptions {
    CompactionOptions {
        target_rows_per_fragment: rows_per_fragment.max(1),
        ..CompactionOptions::default()
    }
}

impl DataRoot {
    /// Compacts `table`'s fragments of fewer than `rows_per_fragment` rows (the session's
    /// `lance.max_rows_per_file`) into fragments of up to that many, and folds unindexed rows
    /// into its indices, reporting the index work's stages to `progress`.
    pub async fn optimize_table(
        &self,
        table: &str,
        rows_per_fragment: usize,
        progress: Option<Arc<dyn WorkProgress>>,
    ) -> Result<OptimizeReport> {
        let gate = self.write_gate(table).await;
        let mut dataset = self.open_for_write(table, &gate).await?;
        let indices = dataset.load_indices().await.map_err(|error| {
            Error::lance(
                format!("listing indices of '{table}'"),
                dataset.uri(),
                error,
            )
        })?;
        let fragments: Vec<u32> = dataset
            .fragments()
            .iter()
            .filter_map(|fragment| u32::try_from(fragment.id).ok())
            .collect();
        // One index name may have several segments (a base and deltas); it is behind when its
        // segments together miss a fragment.
        let mut behind: Vec<String> = Vec::new();
        let mut names: Vec<&str> = indices
            .iter()
            .filter(|index| !is_system_index(index))
            .map(|index| index.name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let covers = |fragment: &u32| {
                indices.iter().any(|index| {
                    index.name == name
                        && index
                            .fragment_bitmap
                            .as_ref()
                            .is_some_and(|bitmap| bitmap.contains(*fragment))
                })
            };
            if !fragments.iter().all(covers) {
                behind.push(name.to_string());
            }
        }
        if !behind.is_empty() {
            let mut options = OptimizeOptions::default();
            options.index_names = Some(behind.clone());
            if let Some(progress) = progress {
                options.progress = Arc::new(LanceProgress(progress));
            }
            dataset.optimize_indices(&options).await.map_err(|error| {
                Error::lance(
                    format!(
                        "folding new rows into the indices of '{table}' ({})",
                        behind.join(", ")
                    ),
                    dataset.uri(),
                    error,
                )
            })?;
        }
        let metrics = compact_files(&mut dataset, compaction(rows_per_fragment), None)
            .await
            .map_err(|error| {
                Error::lance(
                    format!("compacting the fragments of '{table}'"),
                    dataset.uri(),
                    error,
                )
            })?;
        Ok(OptimizeReport {
            fragments_removed: metrics.fragments_removed,
            fragments_added: metrics.fragments_added,
            files_removed: metrics.files_removed,
            files_added: metrics.files_added,
            indices_optimized: behind.len(),
            version: dataset.version_id(),
        })
    }
}

impl DataRoot {
    /// Compacts the small fragments of `dataset` (the version an append to `table` just
    /// committed) when there are at least `policy.fragments` of them; 0 never compacts. A
    /// fragment is small below `policy.rows_per_fragment` rows, and Lance's compaction planner
    /// picks what to merge, as for `OPTIMIZE`. The append is committed whatever happens here: a
    /// failed compaction (a concurrent writer rewrote the same fragments, say) changes nothing
    /// and is only logged, and the next append or `OPTIMIZE` tries again.
    pub(super) async fn compact_if_fragmented(
        &self,
        table: &str,
        mut dataset: Dataset,
        policy: AutoCompact,
    ) {
        if policy.fragments == 0 {
            return;
        }
        let options = compaction(policy.rows_per_fragment);
        let small = dataset
            .fragments()
            .iter()
            .filter(|fragment| {
                fragment
                    .physical_rows
                    .is_none_or(|rows| rows < options.target_rows_per_fragment)
            })
            .count();
        if small < policy.fragments {
            return;
        }
        match compact_files(&mut dataset, options, None).await {
            Ok(metrics) => tracing::debug!(
                table,
                small_fragments = small,
                fragments_removed = metrics.fragments_removed,
                fragments_added = metrics.fragments_added,
                version = dataset.version_id(),
                "compacted small fragments after an append"
            ),
            Err(error) => tracing::warn!(
                table,
                %error,
                "compacting small fragments after an append failed; the append stays committed"
            ),
        }
    }
}

/// What `VACUUM` removed from one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VacuumReport {
    pub versions_removed: u64,
    /// Data, deletion, index and transaction files removed, and their bytes.
    pub files_removed: u64,
    pub bytes_removed: u64,
}

impl DataRoot {
    /// `VACUUM t RETAIN ...`: removes the versions of `table` committed more than `retain` ago,
    /// and the files only they used. Never the latest version, never a tagged one, and never a
    /// file no manifest lists (it may belong to another writer's commit in progress).
    pub async fn vacuum_table(
        &self,
        table: &str,
        retain: std::time::Duration,
    ) -> Result<VacuumReport> {
        let gate = self.write_gate(table).await;
        let dataset = self.open_for_write(table, &gate).await?;
        let retain = chrono::TimeDelta::from_std(retain)
            .map_err(|_| Error::invalid(format!("VACUUM {table}: the retention is too long")))?;
        let removed = dataset
            .cleanup_old_versions(retain, Some(false), Some(false))
            .await
            .map_err(|source| {
                Error::lance(
                    format!("removing old versions of table '{table}'"),
                    dataset.uri(),
                    source,
                )
            })?;
        let uri = self.table_uri(table)?;
        self.datasets.forget(&uri).await;
        Ok(VacuumReport {
            versions_removed: removed.old_versions,
            files_removed: removed.data_files_removed
                + removed.deletion_files_removed
                + removed.index_files_removed
                + removed.transaction_files_removed,
            bytes_removed: removed.bytes_removed,
        })
    }
}
