//! The data root: the folder or object-store prefix whose `<name>.lance` datasets are our tables.
//!
//! This module owns every interaction with Lance's storage layer: resolving URIs, listing
//! datasets, opening a dataset at its latest or at a pinned version, writing new datasets and
//! removing them. It keeps one Lance [`Session`] (metadata and index caches) for the process and a
//! bounded cache of opened datasets ([`cache`]) that every session shares.
//! Nothing above this module builds a Lance URI or calls a Lance open/write function directly.
//!
//! Safety rules every function here keeps, because other processes (pylance, another lancesql)
//! read and write the same root at any moment:
//! - a table name becomes a path only through [`DataRoot::table_uri`], which refuses names that
//!   are not plain identifiers, so no statement reaches outside the root;
//! - creating a table commits exactly once, as version 1, or not at all: a writer that loses a
//!   race for the name gets [`Error::TableExists`] and removes only the data files it wrote;
//! - a failed write removes nothing but its own files (Lance removes a failed writer's data files
//!   itself, [`parts`] those of the other writers of the same write; after a failed commit a
//!   write's files are removed only if the table's latest version does not use them; we never
//!   remove a table folder after a failure);
//! - dropping a table removes its version manifests first, so readers and listings see either
//!   the whole table or none of it;
//! - every write holds its table's gate ([`gate`]) from opening the table to its last commit, and
//!   a drop waits for the gate, so no write of this process commits into a dropped table;
//! - listing never fails because of one bad entry: bad entries are reported beside the tables.
//!
//! Local roots become `file+uring://` URIs (Lance's io_uring reader) when the kernel and the
//! container allow io_uring, `file://` otherwise or when `--local-io threads` asks for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use datafusion::common::internal_datafusion_err;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt, TryStreamExt};
use lance::Dataset;
use lance::dataset::builder::DatasetBuilder;
use lance::dataset::transaction::{Operation, Transaction};
use lance::dataset::{CommitBuilder, WriteMode, WriteParams};
use lance::io::{ObjectStore, ObjectStoreParams, StorageOptionsAccessor};
use lance::session::Session;
use object_store::path::Path;

use crate::config::{LocalIo, StoreConfig};

mod cache;
mod chunks;
mod gate;
pub mod history;
pub mod index;
pub mod maintenance;
mod parts;
pub mod progress;
pub mod rows;
pub mod schema;
#[cfg(test)]
mod test_rows;
mod write_ahead;
use crate::error::{Error, Result};
use cache::DatasetCache;
use gate::TableGates;
pub(crate) use gate::WriteGate;
pub use maintenance::AutoCompact;
pub use parts::WriteInput;
use parts::{Destination, PartsFailure};

/// The suffix that marks a directory under the root as a table.
pub const DATASET_SUFFIX: &str = ".lance";

/// How often `DROP TABLE` tries to remove a folder that a concurrent writer keeps adding to.
const DROP_ATTEMPTS: u32 = 5;

/// The root of all tables, shared by every session of the process.
#[derive(Debug)]
pub struct DataRoot {
    uri: String,
    storage_options: HashMap<String, String>,
    session: Arc<Session>,
    datasets: DatasetCache,
    gates: TableGates,
}

/// What a listing of the root found.
#[derive(Debug, Clone, Default)]
pub struct TableListing {
    /// Tables that opened at their latest version, sorted by name.
    pub tables: Vec<String>,
    /// Entries that look like tables but cannot be used, with the reason, sorted by entry.
    pub unreadable: Vec<UnreadableEntry>,
}

/// An entry under the root named like a table that cannot be read as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableEntry {
    /// The entry's name under the root (`x.lance`).
    pub entry: String,
    /// Why it is not a usable table.
    pub reason: String,
}

/// How many datasets a listing opens at once.
const LISTING_CONCURRENCY: usize = 8;

impl DataRoot {
    /// Resolves the configured root. A local folder must exist (see [`create_local_root`] for
    /// the commands that write); remote roots are used as given.
    /// `cached_datasets` bounds how many opened (table, version)s are kept.
    pub fn new(config: &StoreConfig, cached_datasets: u64) -> Result<Self> {
        let uri = normalize_root(&config.data, config.local_io)?;
        Ok(DataRoot {
            uri,
            storage_options: config.lance_storage_options(),
            session: Arc::new(Session::default()),
            datasets: DatasetCache::new(cached_datasets),
            gates: TableGates::default(),
        })
    }

    /// The data root a running plan reads from: execution nodes carry only plain descriptions
    /// and find the root in their task's session config (see [`crate::engine::session::Engine::session`]).
    pub fn of_task(context: &TaskContext) -> datafusion::error::Result<Arc<DataRoot>> {
        context
            .session_config()
            .get_extension::<DataRoot>()
            .ok_or_else(|| internal_datafusion_err!("the session has no Lance data root"))
    }

    /// Where the tables live, as a user names it: the folder for local roots (whichever reader
    /// the URI's scheme selects), the URI otherwise.
    pub fn location(&self) -> &str {
        crate::error::user_facing(&self.uri)
    }

    /// The dataset URI that backs `table`: the one place a table name becomes a path, so the
    /// name is checked here (no `..`, no `/`, nothing outside the root).
    pub fn table_uri(&self, table: &str) -> Result<String> {
        validate_table_name(table)?;
        Ok(format!("{}/{}{}", self.uri, table, DATASET_SUFFIX))
    }

    /// The URI writes to `table` go through. Lance 14 picks a safe (conditional-put) commit
    /// handler for `file://` but an unsafe one for `file+uring://`, so local writes always use
    /// `file://`; io_uring only serves reads.
    fn write_uri(&self, table: &str) -> Result<String> {
        let uri = self.table_uri(table)?;
        Ok(match uri.strip_prefix("file+uring://") {
            Some(path) => format!("file://{path}"),
            None => uri,
        })
    }

    fn store_params(&self) -> ObjectStoreParams {
        ObjectStoreParams {
            storage_options_accessor: Some(Arc::new(StorageOptionsAccessor::with_static_options(
                self.storage_options.clone(),
            ))),
            ..Default::default()
        }
    }

    /// The object store and path behind `uri` (the root or a dataset under it).
    async fn store(&self, uri: &str) -> Result<(Arc<ObjectStore>, Path)> {
        ObjectStore::from_uri_and_params(self.session.store_registry(), uri, &self.store_params())
            .await
            .map_err(|source| self.unreachable(source))
    }

    fn unreachable(&self, source: lance::Error) -> Error {
        Error::StoreUnreachable {
            uri: self.location().to_string(),
            source: Box::new(source),
        }
    }

    /// Lists the tables under the root. Every entry named `<name>.lance` is opened at its latest
    /// version; those that open are tables, the rest are reported with the reason. Folders with
    /// no committed version yet (a create in progress, a drop half done) are neither. Fails only
    /// when the root itself cannot be listed.
    pub async fn list_tables(&self) -> Result<TableListing> {
        let (store, root_path) = self.store(&self.uri).await?;
        let entries = store
            .list_with_delimiter(Some(&root_path))
            .await
            .map_err(|source| self.unreachable(source))?;
        let mut listing = TableListing::default();
        let mut candidates = Vec::new();
        for file in &entries.objects {
            if let Some(name) = file.location.filename()
                && name.ends_with(DATASET_SUFFIX)
            {
                listing.unreadable.push(UnreadableEntry {
                    entry: name.to_string(),
                    reason: "a file, not a dataset folder".into(),
                });
            }
        }
        for folder in &entries.common_prefixes {
            let Some(entry) = folder.filename() else {
                continue;
            };
            let Some(table) = entry.strip_suffix(DATASET_SUFFIX) else {
                continue;
            };
            match validate_table_name(table) {
                Ok(()) => candidates.push(table.to_string()),
                Err(error) => listing.unreadable.push(UnreadableEntry {
                    entry: entry.to_string(),
                    reason: error.to_string(),
                }),
            }
        }
        let opened: Vec<(String, Result<Option<Arc<Dataset>>>)> = futures::stream::iter(candidates)
            .map(|table| async move {
                let opened = self.open_latest(&table).await;
                (table, opened)
            })
            .buffered(LISTING_CONCURRENCY)
            .collect()
            .await;
        for (table, opened) in opened {
            match opened {
                Ok(Some(_)) => listing.tables.push(table),
                Ok(None) => {}
                Err(error) => listing.unreadable.push(UnreadableEntry {
                    entry: format!("{table}{DATASET_SUFFIX}"),
                    reason: error.to_string(),
                }),
            }
        }
        for bad in &listing.unreadable {
            tracing::warn!(entry = %bad.entry, reason = %bad.reason, "skipping an unreadable entry under the data root");
        }
        listing.tables.sort();
        listing.unreadable.sort_by(|a, b| a.entry.cmp(&b.entry));
        Ok(listing)
    }

    /// Opens `table` at its latest version, or `None` if no such dataset exists. Shared with
    /// every caller asking at the same time (see [`DatasetCache`]).
    pub async fn open_latest(&self, table: &str) -> Result<Option<Arc<Dataset>>> {
        let uri = self.table_uri(table)?;
        let opening = self.datasets.latest(&uri, || self.builder(&uri).load());
        guard_panics(&uri, opening)
            .await?
            .map_err(|source| Error::lance(format!("opening table '{table}'"), &uri, source))
    }

    /// Opens the dataset at `uri` as it was at `version`; shared with every caller asking for the
    /// same version.
    pub async fn open_pinned(&self, uri: &str, version: u64) -> Result<Arc<Dataset>> {
        let opening = self.datasets.pinned(uri, version, || {
            self.builder(uri).with_version(version).load()
        });
        guard_panics(uri, opening).await?.map_err(|source| {
            Error::lance(format!("opening '{uri}' at version {version}"), uri, source)
        })
    }

    /// How many times a dataset was opened from the store (cache misses), for tests and stats.
    pub fn dataset_opens(&self) -> u64 {
        self.datasets.opens()
    }

    /// Holds `table` against this process's `DROP TABLE` until the gate is dropped (see
    /// [`gate`]). Every write takes one before it opens the table and keeps it until its last
    /// commit.
    pub(crate) async fn write_gate(&self, table: &str) -> WriteGate {
        self.gates.writing(table).await
    }

    /// `table` at its latest version, opened through [`Self::write_uri`] so that what it commits
    /// goes through Lance's safe commit handler. `gate` is the caller's hold on the table, which
    /// it keeps until it has committed.
    ///
    /// The latest version is the one [`Self::open_latest`] finds (on a local disk by looking
    /// up two files, see [`cache`]), opened by its number: opening "the latest" through another
    /// URI would list every manifest of the table's history again. A commit made before this
    /// write commits is found by Lance's conflict check, as with any read version.
    pub(crate) async fn open_for_write(&self, table: &str, gate: &WriteGate) -> Result<Dataset> {
        if gate.table() != table {
            return Err(Error::Internal {
                message: format!(
                    "opening '{table}' for writing under the gate of '{}'",
                    gate.table()
                ),
            });
        }
        let Some(latest) = self.open_latest(table).await? else {
            return Err(Error::TableNotFound {
                table: table.to_string(),
            });
        };
        let uri = self.write_uri(table)?;
        let version = latest.version_id();
        let opened = match self.builder(&uri).with_version(version).load().await {
            Ok(dataset) => Ok(dataset),
            // Removed meanwhile (another process committed and cleaned up old versions, or
            // dropped the table): open whatever is there now, which reports what went wrong.
            Err(error) => {
                tracing::debug!(table, version, %error, "opening the latest version by its number failed");
                self.builder(&uri).load().await
            }
        };
        opened.map_err(|source| {
            Error::lance(format!("opening table '{table}' for writing"), &uri, source)
        })
    }

    /// `written` (the outcome of a write to `table`), except that a failure of a write whose
    /// table is gone is [`Error::TableNotFound`]: a concurrent `DROP TABLE` makes a write fail in
    /// whatever Lance was doing at that moment (persisting a data file into a removed folder,
    /// reading a removed manifest), and that message would not tell the user what happened.
    pub(super) async fn unless_dropped<T>(&self, table: &str, written: Result<T>) -> Result<T> {
        match written {
            Err(error)
                if !matches!(error, Error::TableNotFound { .. })
                    && matches!(self.open_latest(table).await, Ok(None)) =>
            {
                tracing::debug!(table, %error, "a write failed because its table was dropped");
                Err(Error::TableNotFound {
                    table: table.to_string(),
                })
            }
            other => other,
        }
    }

    fn builder(&self, uri: &str) -> DatasetBuilder {
        DatasetBuilder::from_uri(uri)
            .with_session(self.session.clone())
            .with_storage_options(self.storage_options.clone())
    }

    /// Writes `data` as the new table `table`, committed as its version 1.
    ///
    /// Exactly one of several writers creating the same name at once succeeds; the others get
    /// [`Error::TableExists`] and their data files are removed. A failed write leaves whatever
    /// was there before: Lance removes the data files of a failed write itself, and a failed
    /// commit removes only the files this call wrote. When the input stream fails, its error is
    /// the one reported.
    pub async fn create_table(&self, table: &str, data: WriteInput) -> Result<Arc<Dataset>> {
        let uri = self.write_uri(table)?;
        // Held until the commit: a drop of the same name would otherwise remove the data files
        // this create has written but not yet committed.
        let _gate = self.write_gate(table).await;
        let exists = || Error::TableExists {
            table: table.to_string(),
        };
        // No existence check first: a Create write refuses an existing dataset itself.
        let params = WriteParams {
            mode: WriteMode::Create,
            store_params: Some(self.store_params()),
            session: Some(self.session.clone()),
            ..Default::default()
        };
        let written = self
            .write_parts(&uri, Destination::New(uri.clone()), params, data)
            .await;
        let transaction = match written {
            Ok(transaction) => transaction,
            Err(PartsFailure::Lance(lance::Error::DatasetAlreadyExists { .. })) => {
                return Err(exists());
            }
            Err(failure) => {
                return Err(failure.into_error(format!("writing table '{table}'"), &uri));
            }
        };
        // No retries: a retried create would commit over a table another writer just created.
        let committed = CommitBuilder::new(uri.as_str())
            .with_store_params(self.store_params())
            .with_session(self.session.clone())
            .with_max_retries(0)
            .execute(transaction.clone())
            .await;
        match committed {
            Ok(dataset) => Ok(Arc::new(dataset)),
            Err(source) => {
                self.discard_uncommitted(table, &uri, &transaction).await;
                if self.open_latest(table).await?.is_some() {
                    Err(exists())
                } else {
                    Err(Error::lance(
                        format!("committing table '{table}'"),
                        &uri,
                        source,
                    ))
                }
            }
        }
    }

    /// Appends `data` to `table` as one new version (one Lance commit; concurrent appends by
    /// other writers are rebased by Lance). Batches may leave out nullable columns, which are
    /// written as NULL; every other column must be there, no other column may be, and every
    /// value must convert to its column's type. If `data` fails, nothing is committed and the
    /// table stays as it was. Returns the rows appended.
    ///
    /// When the append leaves as many small fragments as `auto_compact` says, they are compacted
    /// right after, as a commit of their own ([`DataRoot::compact_if_fragmented`]).
    pub async fn append_table(
        &self,
        table: &str,
        data: WriteInput,
        auto_compact: AutoCompact,
    ) -> Result<u64> {
        let gate = self.write_gate(table).await;
        let (rows, dataset) = self
            .write_existing(&gate, data, WriteMode::Append, true)
            .await?;
        self.compact_if_fragmented(table, dataset, auto_compact)
            .await;
        Ok(rows)
    }

    /// Replaces `table`'s rows with `data`, keeping its columns (`INSERT OVERWRITE`): `data` is
    /// shaped to them as [`Self::append_table`] does, and the rows replace the old ones as one
    /// new version. Returns the rows written.
    pub async fn overwrite_rows(&self, table: &str, data: WriteInput) -> Result<u64> {
        let gate = self.write_gate(table).await;
        let (rows, _) = self
            .write_existing(&gate, data, WriteMode::Overwrite, true)
            .await?;
        Ok(rows)
    }

    /// Replaces `table`'s rows and columns with `data`, as one new version (older versions stay
    /// readable by time travel). If `data` fails, nothing is committed and the table stays as
    /// it was. Returns the rows written.
    pub async fn replace_table(&self, table: &str, data: WriteInput) -> Result<u64> {
        let gate = self.write_gate(table).await;
        let (rows, _) = self
            .write_existing(&gate, data, WriteMode::Overwrite, false)
            .await?;
        Ok(rows)
    }

    /// One commit of `data` into the existing table `gate` holds, appended or overwriting it;
    /// with `keep_columns`, `data` is shaped to the table's columns, else it brings its own.
    /// Returns the rows written and the version committed.
    async fn write_existing(
        &self,
        gate: &WriteGate,
        data: WriteInput,
        mode: WriteMode,
        keep_columns: bool,
    ) -> Result<(u64, Dataset)> {
        let table = gate.table();
        let uri = self.write_uri(table)?;
        let dataset = Arc::new(self.open_for_write(table, gate).await?);
        let appending = matches!(mode, WriteMode::Append);
        let doing = if appending {
            "appending to"
        } else {
            "replacing"
        };
        let schema = if keep_columns {
            Arc::new(arrow::datatypes::Schema::from(dataset.schema()))
        } else {
            data.schema()
        };
        let written_rows = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let data = data.map_parts(|part| {
            let counter = written_rows.clone();
            let shape = schema.clone();
            let name = table.to_string();
            let counted = part.map(move |batch| {
                let batch = if keep_columns {
                    widen_to(&name, &shape, batch?)?
                } else {
                    batch?
                };
                counter.fetch_add(
                    batch.num_rows() as u64,
                    std::sync::atomic::Ordering::Relaxed,
                );
                Ok(batch)
            });
            Box::pin(RecordBatchStreamAdapter::new(schema.clone(), counted))
        });
        let params = WriteParams {
            mode,
            store_params: Some(self.store_params()),
            session: Some(self.session.clone()),
            ..Default::default()
        };
        let written = self
            .write_parts(&uri, Destination::Existing(dataset.clone()), params, data)
            .await;
        let transaction = match written {
            Ok(transaction) => transaction,
            Err(failure) => {
                let error = failure.into_error(format!("{doing} table '{table}'"), &uri);
                return self.unless_dropped(table, Err(error)).await;
            }
        };
        // Concurrent commits are rebased over (Lance's default retries), as a one-stream write's.
        let committed = CommitBuilder::new(dataset)
            .with_store_params(self.store_params())
            .with_session(self.session.clone())
            .execute(transaction.clone())
            .await;
        match committed {
            Ok(committed) => Ok((
                written_rows.load(std::sync::atomic::Ordering::Relaxed),
                committed,
            )),
            Err(source) => {
                self.discard_uncommitted(table, &uri, &transaction).await;
                let error = Error::lance(format!("{doing} table '{table}'"), &uri, source);
                self.unless_dropped(table, Err(error)).await
            }
        }
    }

    /// `stream`'s batches, its failures reported as [`DataRoot::read_failure`] describes.
    pub fn classify_read_failures(
        self: &Arc<Self>,
        table: &str,
        uri: &str,
        version: u64,
        stream: impl Stream<Item = std::result::Result<RecordBatch, lance::Error>> + Send + 'static,
    ) -> BoxStream<'static, datafusion::error::Result<RecordBatch>> {
        let root = self.clone();
        let (table, uri) = (Arc::<str>::from(table), Arc::<str>::from(uri));
        stream
            .then(move |item| {
                let (root, table, uri) = (root.clone(), table.clone(), uri.clone());
                async move {
                    match item {
                        Ok(batch) => Ok(batch),
                        Err(error) => Err(DataFusionError::from(
                            root.read_failure(&table, &uri, version, error).await,
                        )),
                    }
                }
            })
            .boxed()
    }

    /// The error to report for a read of `table` (at `uri`, `version`) that failed with `error`.
    /// A file that ended early is corruption (XX001), not an I/O failure: the data files shorter
    /// than the manifest records are named, which costs one size lookup per data file, on this
    /// error path only.
    pub async fn read_failure(
        &self,
        table: &str,
        uri: &str,
        version: u64,
        error: lance::Error,
    ) -> Error {
        if !ends_early(&error) {
            return Error::lance(format!("reading table '{table}'"), uri, error);
        }
        let truncated = self.truncated_files(uri, version).await;
        let (path, detail) = match truncated.first() {
            Some((path, actual, expected)) => (
                path.clone(),
                format!(
                    "table '{table}': the data file is truncated ({actual} of {expected} bytes)"
                ),
            ),
            None => (
                Path::from(uri),
                format!(
                    "table '{table}': a data file ended early ({})",
                    crate::error::describe_lance(&error)
                ),
            ),
        };
        Error::DatasetUnreadable {
            uri: crate::error::user_facing(uri).to_string(),
            source: Box::new(lance::Error::corrupt_file(path, detail)),
        }
    }

    /// Data files of `uri` at `version` shorter than their recorded size: (path, size, recorded).
    async fn truncated_files(&self, uri: &str, version: u64) -> Vec<(Path, u64, u64)> {
        let Ok(dataset) = self.open_pinned(uri, version).await else {
            return Vec::new();
        };
        let Ok((store, base)) = self.store(uri).await else {
            return Vec::new();
        };
        let data_dir = base.clone().join("data");
        let mut truncated = Vec::new();
        for fragment in dataset.fragments().iter() {
            for file in &fragment.files {
                let Some(expected) = file.file_size_bytes.get() else {
                    continue;
                };
                let path = data_dir.clone().join(file.path.as_str());
                if let Ok(actual) = store.size(&path).await
                    && actual < expected.get()
                {
                    truncated.push((path, actual, expected.get()));
                }
            }
        }
        truncated
    }

    /// After a commit that reported failure: removes the data files `transaction` wrote, unless
    /// the table's latest version uses them (the commit went through after all, or this cannot
    /// be told); those stay, since removing them would break the table.
    async fn discard_uncommitted(&self, table: &str, uri: &str, transaction: &Transaction) {
        let ours: std::collections::HashSet<&str> = written_fragments(transaction)
            .iter()
            .flat_map(|fragment| fragment.files.iter().map(|file| file.path.as_str()))
            .collect();
        let in_use = match self.open_latest(table).await {
            Ok(Some(latest)) => latest.fragments().iter().any(|fragment| {
                fragment
                    .files
                    .iter()
                    .any(|file| ours.contains(file.path.as_str()))
            }),
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(%uri, %error, "cannot tell whether a failed commit wrote its version; its data files stay");
                true
            }
        };
        if in_use {
            return;
        }
        if let Err(cleanup) = self.remove_written_files(uri, transaction).await {
            tracing::warn!(%uri, error = %cleanup, "could not remove the data files of a failed write");
        }
    }

    /// Removes the data files an uncommitted `transaction` wrote (and nothing else).
    async fn remove_written_files(&self, uri: &str, transaction: &Transaction) -> Result<()> {
        let (store, path) = self.store(uri).await?;
        let data_dir = path.clone().join("data");
        for fragment in written_fragments(transaction) {
            for file in &fragment.files {
                match store
                    .delete(&data_dir.clone().join(file.path.as_str()))
                    .await
                {
                    Ok(()) | Err(lance::Error::NotFound { .. }) => {}
                    Err(source) => return Err(Error::lance("removing a data file", uri, source)),
                }
            }
        }
        Ok(())
    }

    /// Removes `table` and all its versions; returns false if there was no such table. Works on
    /// a dataset too corrupt to open. The version manifests go first (oldest first, the latest
    /// last), so a reader opening the table meanwhile finds either its latest version, whole, or
    /// no table. Waits for this process's writes to `table` that have begun; those that begin
    /// later find no table.
    pub async fn drop_table(&self, table: &str) -> Result<bool> {
        let uri = self.write_uri(table)?;
        let _dropping = self.gates.dropping(table).await;
        let (store, path) = self.store(&uri).await?;
        let contents = store
            .list_with_delimiter(Some(&path))
            .await
            .map_err(|source| Error::lance(format!("listing table '{table}'"), &uri, source))?;
        if contents.objects.is_empty() && contents.common_prefixes.is_empty() {
            if store.exists(&path).await.unwrap_or(false) {
                return Err(Error::invalid(format!(
                    "'{table}{DATASET_SUFFIX}' under the data root is a file, not a dataset; \
                     lancesql does not remove it"
                )));
            }
            return Ok(false);
        }
        let mut manifests: Vec<(u64, Path)> = store
            .list(Some(path.clone().join("_versions")))
            .try_filter_map(|meta| async move {
                Ok(manifest_version(&meta.location).map(|version| (version, meta.location)))
            })
            .try_collect()
            .await
            .map_err(|source| {
                Error::lance(format!("listing versions of '{table}'"), &uri, source)
            })?;
        manifests.sort();
        let latest_manifest = path.clone().join("_latest.manifest");
        for location in manifests
            .into_iter()
            .map(|(_, location)| location)
            .chain(std::iter::once(latest_manifest))
        {
            match store.delete(&location).await {
                Ok(()) | Err(lance::Error::NotFound { .. }) => {}
                Err(source) => {
                    return Err(Error::lance(
                        format!("dropping table '{table}'"),
                        &uri,
                        source,
                    ));
                }
            }
        }
        // The table is gone once its manifests are. A writer of another process may add files
        // while the folder is removed; those files belong to no version and no reader sees
        // them, so a folder that keeps refilling is logged, not an error of the DROP.
        let mut attempt = 1;
        loop {
            match store.remove_dir_all(path.clone()).await {
                Ok(()) | Err(lance::Error::NotFound { .. }) => break,
                Err(error) if attempt < DROP_ATTEMPTS => {
                    tracing::debug!(table, attempt, %error, "removing a dropped table's folder again");
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(error) => {
                    tracing::warn!(table, %uri, %error, "table dropped, but files a concurrent writer added are left in its folder");
                    break;
                }
            }
        }
        self.datasets.forget(&uri).await;
        self.datasets.forget(&self.table_uri(table)?).await;
        Ok(true)
    }
}

/// Whether a read failed because a file ended before the data it should hold.
fn ends_early(error: &lance::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
        {
            return true;
        }
        cause = current.source();
    }
    false
}

/// The version a manifest file holds: `<n>.manifest` (Lance's first naming scheme) or a 20-digit
/// `<u64::MAX - n>.manifest` (its second, which lists the newest first).
fn manifest_version(location: &Path) -> Option<u64> {
    let stem = location.filename()?.strip_suffix(".manifest")?;
    let number: u64 = stem.parse().ok()?;
    Some(if stem.len() == 20 {
        u64::MAX - number
    } else {
        number
    })
}

/// `batch` with the columns of `target` (the columns of `table`) in its order: columns it lacks
/// are NULL; a NULL in a column that is not nullable is [`Error::NotNullViolation`].
pub(super) fn widen_to(
    table: &str,
    target: &arrow::datatypes::SchemaRef,
    batch: RecordBatch,
) -> datafusion::error::Result<RecordBatch> {
    let not_null = |column: &str| {
        DataFusionError::from(Error::NotNullViolation {
            table: table.to_string(),
            column: column.to_string(),
        })
    };
    if let Some(extra) = batch
        .schema()
        .fields()
        .iter()
        .find(|field| target.field_with_name(field.name()).is_err())
    {
        return Err(DataFusionError::from(Error::invalid(format!(
            "the table has no column '{}'",
            extra.name()
        ))));
    }
    // A value that does not convert is an error, never a silent NULL.
    let strict = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let columns = target
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if !field.is_nullable() && column.null_count() > 0 => {
                Err(not_null(field.name()))
            }
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            Some(column) => Ok(arrow::compute::cast_with_options(
                column,
                field.data_type(),
                &strict,
            )?),
            None if field.is_nullable() || batch.num_rows() == 0 => Ok(
                arrow::array::new_null_array(field.data_type(), batch.num_rows()),
            ),
            None => Err(not_null(field.name())),
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(target.clone(), columns)?)
}

/// Passes `data` through, keeping the first error it yields in `slot` (shared by the parts of a
/// write) so that a write failing because its input failed reports the input's error (division
/// by zero, a bad CSV line), not Lance's wrapping of it.
fn remember_first_error(
    data: SendableRecordBatchStream,
    slot: &FirstError,
) -> SendableRecordBatchStream {
    let keeper = slot.clone();
    let schema = data.schema();
    let stream = data.map(move |item: datafusion::error::Result<RecordBatch>| {
        item.map_err(|error| {
            let text = error.to_string();
            keeper.keep(error);
            DataFusionError::Execution(text)
        })
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// The new fragments of a write's `transaction` (none for other operations).
fn written_fragments(transaction: &Transaction) -> &[lance_table::format::Fragment] {
    match &transaction.operation {
        Operation::Overwrite { fragments, .. } | Operation::Append { fragments } => fragments,
        _ => &[],
    }
}

/// The first error seen by [`remember_first_error`].
#[derive(Clone, Default)]
struct FirstError(Arc<Mutex<Option<DataFusionError>>>);

impl FirstError {
    fn keep(&self, error: DataFusionError) {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slot.get_or_insert(error);
    }

    fn take(&self) -> Option<DataFusionError> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

/// Runs a Lance call, turning a panic inside it (Lance asserts on some malformed files) into
/// [`Error::DatasetUnreadable`] for `uri`, so one bad dataset cannot take the process down.
async fn guard_panics<T>(
    uri: &str,
    call: impl std::future::Future<Output = lance::Result<T>>,
) -> Result<lance::Result<T>> {
    match std::panic::AssertUnwindSafe(call).catch_unwind().await {
        Ok(result) => Ok(result),
        Err(panic) => Err(Error::DatasetUnreadable {
            uri: crate::error::user_facing(uri).to_string(),
            source: Box::new(lance::Error::corrupt_file(
                Path::from(uri),
                format!("reading its metadata failed: {}", panic_message(&panic)),
            )),
        }),
    }
}

/// What a task that did not finish (a writer, a reader of a write's input) says: its panic's
/// message, or why it was cancelled.
fn task_failure_message(failure: tokio::task::JoinError) -> String {
    if failure.is_panic() {
        panic_message(&failure.into_panic()).to_string()
    } else {
        failure.to_string()
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown failure")
}

/// Ends `stream` with an error, instead of unwinding through the caller, when polling it panics
/// (a bug inside Lance while reading `table`): only the statement reading it fails.
pub fn guard_stream_panics(
    table: &str,
    stream: SendableRecordBatchStream,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let table = table.to_string();
    let guarded = std::panic::AssertUnwindSafe(stream)
        .catch_unwind()
        .map(move |item| match item {
            Ok(item) => item,
            Err(panic) => Err(DataFusionError::from(Error::Internal {
                message: format!(
                    "reading table '{table}' failed inside Lance: {}",
                    panic_message(&panic)
                ),
            })),
        });
    Box::pin(RecordBatchStreamAdapter::new(schema, guarded))
}

/// Creates a local data folder if it is missing, for the commands that write (import, the demo
/// tables); returns whether it was created. Remote roots are left alone.
pub fn create_local_root(data: &str) -> Result<bool> {
    let Some(path) = local_path(data) else {
        return Ok(false);
    };
    if std::path::Path::new(path).exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(path).map_err(|source| Error::File {
        path: path.to_string(),
        source,
    })?;
    Ok(true)
}

/// The folder of a local root (`./data`, `file:///x`, `file+uring:///x`), `None` for remote ones.
fn local_path(data: &str) -> Option<&str> {
    let trimmed = data.trim();
    match trimmed.split_once("://") {
        Some(("file" | "file+uring", path)) => Some(path),
        Some(_) => None,
        None => Some(trimmed),
    }
}

/// Table names become directory names and SQL identifiers: keep them to a portable set.
pub fn validate_table_name(table: &str) -> Result<()> {
    let valid = !table.is_empty()
        && table.len() <= 128
        && table
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !table.starts_with('-');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid table name '{table}': use letters, digits, '_' and '-' (at most 128)"
        )))
    }
}

/// The root as a URI Lance understands: remote URIs as given (without a trailing slash), local
/// folders (plain paths, `file://`, `file+uring://`), which must exist, made absolute and given
/// the scheme of the chosen local reader.
fn normalize_root(data: &str, local_io: LocalIo) -> Result<String> {
    let trimmed = data.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(Error::invalid(
            "--data must name a folder or an object-store URI",
        ));
    }
    let (local_path, local_io) = match trimmed.split_once("://") {
        Some(("file", path)) => (path, local_io),
        Some(("file+uring", path)) => (path, LocalIo::Uring),
        Some(("s3" | "s3a" | "memory", _)) => return Ok(trimmed.to_string()),
        Some((other, _)) => {
            return Err(Error::invalid(format!(
                "unsupported data URI scheme '{other}' in '{data}': use a local path, file:// or s3://"
            )));
        }
        None => (trimmed, local_io),
    };
    if !std::path::Path::new(local_path).is_dir() {
        return Err(Error::RootNotFound {
            root: local_path.to_string(),
        });
    }
    let absolute = std::path::Path::new(local_path)
        .canonicalize()
        .map_err(|source| Error::File {
            path: local_path.to_string(),
            source,
        })?;
    let absolute = absolute.to_string_lossy();
    let scheme = match local_io {
        LocalIo::Threads => "file",
        LocalIo::Auto if io_uring_available() => "file+uring",
        LocalIo::Auto => "file",
        LocalIo::Uring if io_uring_available() => "file+uring",
        LocalIo::Uring => {
            return Err(Error::invalid(
                "--local-io uring: this kernel or container does not allow io_uring; use --local-io threads",
            ));
        }
    };
    Ok(format!("{scheme}://{}", absolute.trim_end_matches('/')))
}

/// Whether this process may create an io_uring instance (kernels before 5.1 cannot, and container
/// seccomp profiles often forbid it).
fn io_uring_available() -> bool {
    #[cfg(target_os = "linux")]
    {
        io_uring::IoUring::new(2).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_checked() {
        assert!(validate_table_name("items_2024").is_ok());
        assert!(validate_table_name("my-table").is_ok());
        let error = validate_table_name("../etc").unwrap_err().to_string();
        assert!(error.contains("../etc"), "{error}");
        assert!(validate_table_name("").is_err());
        assert!(validate_table_name("-x").is_err());
        for escape in [
            "..",
            "a/b",
            "a\\b",
            ".hidden",
            "x.lance",
            "a b",
            "\u{e9}t\u{e9}",
        ] {
            assert!(validate_table_name(escape).is_err(), "{escape}");
        }
    }

    #[test]
    fn every_table_path_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::new(&StoreConfig::local(dir.path().to_str().unwrap()), 8).unwrap();
        assert!(root.table_uri("../victim").is_err());
        assert!(root.write_uri("../victim").is_err());
        assert!(root.table_uri("ok").unwrap().ends_with("/ok.lance"));
    }

    #[tokio::test]
    async fn a_panicking_stream_ends_with_an_error() {
        let schema = Arc::new(arrow::datatypes::Schema::empty());
        let panicking = futures::stream::poll_fn(
            |_| -> std::task::Poll<Option<datafusion::error::Result<RecordBatch>>> {
                panic!("decoder bug")
            },
        );
        let stream: SendableRecordBatchStream =
            Box::pin(RecordBatchStreamAdapter::new(schema, panicking));
        let items: Vec<_> = guard_stream_panics("items", stream).collect().await;
        assert_eq!(items.len(), 1);
        let error = Error::from(items.into_iter().next().unwrap().unwrap_err());
        assert_eq!(error.sqlstate(), "XX000");
        let text = error.to_string();
        assert!(
            text.contains("items") && text.contains("decoder bug"),
            "{text}"
        );
    }

    #[test]
    fn manifest_names_give_versions() {
        assert_eq!(
            manifest_version(&Path::from("t/_versions/3.manifest")),
            Some(3)
        );
        let v2 = format!("t/_versions/{:020}.manifest", u64::MAX - 7);
        assert_eq!(manifest_version(&Path::from(v2.as_str())), Some(7));
        assert_eq!(manifest_version(&Path::from("t/_versions/x.txn")), None);
    }

    #[test]
    fn roots_are_normalized() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b/");
        let missing = normalize_root(nested.to_str().unwrap(), LocalIo::Threads).unwrap_err();
        assert_eq!(missing.sqlstate(), "58P01", "{missing}");
        assert!(create_local_root(nested.to_str().unwrap()).unwrap());
        assert!(!create_local_root(nested.to_str().unwrap()).unwrap());
        let root = normalize_root(nested.to_str().unwrap(), LocalIo::Threads).unwrap();
        assert!(
            root.starts_with("file:///") && root.ends_with("a/b"),
            "{root}"
        );
        assert!(nested.is_dir());
        let auto = normalize_root(&format!("file://{}", nested.display()), LocalIo::Auto).unwrap();
        let expected_scheme = if io_uring_available() {
            "file+uring"
        } else {
            "file"
        };
        assert_eq!(
            auto,
            format!("{expected_scheme}://{}", &root["file://".len()..])
        );
        assert_eq!(
            normalize_root("s3://bucket/p/", LocalIo::Auto).unwrap(),
            "s3://bucket/p"
        );
        let error = normalize_root("ftp://x", LocalIo::Auto)
            .unwrap_err()
            .to_string();
        assert!(error.contains("ftp"), "{error}");
    }
}
