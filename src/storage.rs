//! The data root: the folder or object-store prefix whose `<name>.lance` datasets are our tables.
//!
//! This module owns every interaction with Lance's storage layer: resolving URIs, listing
//! datasets, opening a dataset at its latest or at a pinned version, writing new datasets and
//! removing them. It keeps one Lance [`Session`] (metadata and index caches) for the process and a
//! small cache of datasets opened at pinned versions, which are immutable and so safe to share.
//! Nothing above this module builds a Lance URI or calls a Lance open/write function directly.
//! Local roots become `file+uring://` URIs (Lance's io_uring reader) when the kernel and the
//! container allow io_uring, `file://` otherwise or when `--local-io threads` asks for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::common::internal_datafusion_err;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use lance::Dataset;
use lance::dataset::builder::DatasetBuilder;
use lance::dataset::{InsertBuilder, WriteMode, WriteParams};
use lance::io::{ObjectStore, ObjectStoreParams, StorageOptionsAccessor};
use lance::session::Session;

use crate::config::{LocalIo, StoreConfig};
use crate::error::{Error, Result};

/// The suffix that marks a directory under the root as a table.
pub const DATASET_SUFFIX: &str = ".lance";

/// How many pinned-version datasets stay open; pinned versions never change, so this bounds only
/// memory, never correctness.
const PINNED_CACHE_CAPACITY: usize = 64;

/// The root of all tables, shared by every session of the process.
#[derive(Debug)]
pub struct DataRoot {
    uri: String,
    storage_options: HashMap<String, String>,
    session: Arc<Session>,
    pinned: Mutex<HashMap<(String, u64), Arc<Dataset>>>,
}

impl DataRoot {
    /// Resolves the configured root. A local folder is created if missing, so a fresh checkout
    /// can run against `./data` at once; remote roots are used as given.
    pub fn new(config: &StoreConfig) -> Result<Self> {
        let uri = normalize_root(&config.data, config.local_io)?;
        Ok(DataRoot {
            uri,
            storage_options: config.lance_storage_options(),
            session: Arc::new(Session::default()),
            pinned: Mutex::new(HashMap::new()),
        })
    }

    /// The data root a running plan reads from: execution nodes carry only plain descriptions
    /// and find the root in their task's session config (see [`crate::session::Engine::session`]).
    pub fn of_task(context: &TaskContext) -> datafusion::error::Result<Arc<DataRoot>> {
        context
            .session_config()
            .get_extension::<DataRoot>()
            .ok_or_else(|| internal_datafusion_err!("the session has no Lance data root"))
    }

    /// Where the tables live, as a user names it: the folder for local roots (whichever reader
    /// the URI's scheme selects), the URI otherwise.
    pub fn location(&self) -> &str {
        ["file+uring://", "file://"]
            .iter()
            .find_map(|scheme| self.uri.strip_prefix(scheme))
            .unwrap_or(&self.uri)
    }

    /// The dataset URI that backs `table`.
    pub fn table_uri(&self, table: &str) -> String {
        format!("{}/{}{}", self.uri, table, DATASET_SUFFIX)
    }

    /// The URI writes to `table` go through. Lance 14 picks a safe (conditional-put) commit
    /// handler for `file://` but an unsafe one for `file+uring://`, so local writes always use
    /// `file://`; io_uring only serves reads.
    fn write_uri(&self, table: &str) -> String {
        let uri = self.table_uri(table);
        match uri.strip_prefix("file+uring://") {
            Some(path) => format!("file://{path}"),
            None => uri,
        }
    }

    fn store_params(&self) -> ObjectStoreParams {
        ObjectStoreParams {
            storage_options_accessor: Some(Arc::new(StorageOptionsAccessor::with_static_options(
                self.storage_options.clone(),
            ))),
            ..Default::default()
        }
    }

    /// The names of all tables under the root, sorted.
    pub async fn list_tables(&self) -> Result<Vec<String>> {
        let (store, root_path) = ObjectStore::from_uri_and_params(
            self.session.store_registry(),
            &self.uri,
            &self.store_params(),
        )
        .await
        .map_err(|source| Error::StoreUnreachable {
            uri: self.uri.clone(),
            source: Box::new(source),
        })?;
        let entries = match store.read_dir(root_path).await {
            Ok(entries) => entries,
            Err(lance::Error::NotFound { .. }) => Vec::new(),
            Err(source) => {
                return Err(Error::StoreUnreachable {
                    uri: self.uri.clone(),
                    source: Box::new(source),
                });
            }
        };
        let mut names: Vec<String> = entries
            .into_iter()
            .filter_map(|entry| {
                let entry = entry.trim_end_matches('/');
                let name = entry.rsplit('/').next().unwrap_or(entry);
                name.strip_suffix(DATASET_SUFFIX)
                    .filter(|table| !table.is_empty())
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Opens `table` at its latest version, or `None` if no such dataset exists.
    pub async fn open_latest(&self, table: &str) -> Result<Option<Arc<Dataset>>> {
        let uri = self.table_uri(table);
        match guard_panics(&uri, self.builder(&uri).load()).await? {
            Ok(dataset) => {
                let dataset = Arc::new(dataset);
                self.remember_pinned(&uri, &dataset);
                Ok(Some(dataset))
            }
            Err(lance::Error::DatasetNotFound { .. } | lance::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(Error::lance(
                format!("opening table '{table}'"),
                &uri,
                source,
            )),
        }
    }

    /// Opens the dataset at `uri` as it was at `version`; shared with every caller asking for the
    /// same version.
    pub async fn open_pinned(&self, uri: &str, version: u64) -> Result<Arc<Dataset>> {
        let key = (uri.to_string(), version);
        if let Some(dataset) = self.pinned_cache().get(&key) {
            return Ok(dataset.clone());
        }
        let dataset = guard_panics(uri, self.builder(uri).with_version(version).load())
            .await?
            .map_err(|source| {
                Error::lance(format!("opening '{uri}' at version {version}"), uri, source)
            })?;
        let dataset = Arc::new(dataset);
        self.remember_pinned(uri, &dataset);
        Ok(dataset)
    }

    fn builder(&self, uri: &str) -> DatasetBuilder {
        DatasetBuilder::from_uri(uri)
            .with_session(self.session.clone())
            .with_storage_options(self.storage_options.clone())
    }

    fn pinned_cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u64), Arc<Dataset>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts and
        // clears), so a poisoned lock is still safe to use.
        self.pinned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remember_pinned(&self, uri: &str, dataset: &Arc<Dataset>) {
        let mut cache = self.pinned_cache();
        if cache.len() >= PINNED_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(
            (uri.to_string(), dataset.version().version),
            dataset.clone(),
        );
    }

    /// Writes `data` as the new table `table`. Fails with [`Error::TableExists`] if it exists,
    /// leaving it untouched; a failed write leaves no table behind.
    pub async fn create_table(
        &self,
        table: &str,
        data: SendableRecordBatchStream,
    ) -> Result<Arc<Dataset>> {
        validate_table_name(table)?;
        if self.open_latest(table).await?.is_some() {
            return Err(Error::TableExists {
                table: table.to_string(),
            });
        }
        let uri = self.write_uri(table);
        let params = WriteParams {
            mode: WriteMode::Create,
            store_params: Some(self.store_params()),
            session: Some(self.session.clone()),
            ..Default::default()
        };
        let written = InsertBuilder::new(uri.as_str())
            .with_params(&params)
            .execute_stream(data)
            .await;
        match written {
            Ok(dataset) => Ok(Arc::new(dataset)),
            Err(lance::Error::DatasetAlreadyExists { .. }) => Err(Error::TableExists {
                table: table.to_string(),
            }),
            Err(source) => {
                // Lance commits the manifest last, so a failed create leaves only unreferenced
                // data files; remove them so the name is free again.
                if let Err(cleanup) = self.remove_dataset_files(&uri).await {
                    tracing::warn!(%uri, error = %cleanup, "could not clean up a failed create");
                }
                Err(Error::lance(
                    format!("writing table '{table}'"),
                    &uri,
                    source,
                ))
            }
        }
    }

    /// Removes `table` and all its versions. Returns false if it did not exist.
    pub async fn drop_table(&self, table: &str) -> Result<bool> {
        if self.open_latest(table).await?.is_none() {
            return Ok(false);
        }
        let uri = self.table_uri(table);
        self.remove_dataset_files(&uri).await?;
        self.pinned_cache().retain(|(cached, _), _| cached != &uri);
        Ok(true)
    }

    async fn remove_dataset_files(&self, uri: &str) -> Result<()> {
        let (store, path) = ObjectStore::from_uri_and_params(
            self.session.store_registry(),
            uri,
            &self.store_params(),
        )
        .await
        .map_err(|source| Error::lance("resolving", uri, source))?;
        match store.remove_dir_all(path).await {
            Ok(()) | Err(lance::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(Error::lance(format!("removing '{uri}'"), uri, source)),
        }
    }
}

/// Runs a Lance call, turning a panic inside it (Lance asserts on some malformed files) into
/// [`Error::DatasetUnreadable`] for `uri`, so one bad dataset cannot take the process down.
async fn guard_panics<T>(
    uri: &str,
    call: impl std::future::Future<Output = lance::Result<T>>,
) -> Result<lance::Result<T>> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(call).catch_unwind().await {
        Ok(result) => Ok(result),
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown failure");
            Err(Error::DatasetUnreadable {
                uri: uri.to_string(),
                source: Box::new(lance::Error::corrupt_file(
                    object_store::path::Path::from(uri),
                    format!("reading its metadata failed: {reason}"),
                )),
            })
        }
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
/// folders (plain paths, `file://`, `file+uring://`) created if missing, made absolute, and given
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
    ensure_local_dir(local_path)?;
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

fn ensure_local_dir(path: &str) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| Error::File {
        path: path.to_string(),
        source,
    })
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
    }

    #[test]
    fn roots_are_normalized() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b/");
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
