//! The process's open datasets: a bounded, least-recently-used cache keyed by (URI, version).
//!
//! Contract:
//! - a (dataset, version) is opened once however many partitions, statements or sessions ask
//!   for it at the same moment: concurrent misses for one key wait for a single open;
//! - asking for the latest version costs no manifest read when nothing changed, and on a local
//!   disk two file lookups instead of a listing of every version, plus one per version committed
//!   since (up to a few; an object store is listed, or probed through Lance's version hint), so
//!   a table written by another process is seen at the next statement however many versions it
//!   has;
//! - a dataset dropped and created again under the same name is never confused with its former
//!   self: a cached version is reused only while its manifest file is the one the store holds;
//! - a dataset removed while it is being opened (a `DROP TABLE` deleting its manifests) is
//!   missing, not a store failure;
//! - failures are not cached: the next ask tries again.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lance::Dataset;
use lance_table::io::commit::ManifestLocation;
use moka::future::Cache;

/// Opened datasets shared by every session of the process.
#[derive(Debug)]
pub struct DatasetCache {
    /// Every opened (URI, version).
    versions: Cache<(String, u64), Arc<Dataset>>,
    /// The most recently seen version of each URI, from which the latest is looked up.
    heads: Cache<String, Arc<Dataset>>,
    opens: AtomicU64,
}

impl DatasetCache {
    /// A cache holding at most `capacity` opened versions (and as many heads).
    pub fn new(capacity: u64) -> Self {
        DatasetCache {
            versions: Cache::new(capacity),
            heads: Cache::new(capacity),
            opens: AtomicU64::new(0),
        }
    }

    /// How many times a dataset was actually opened (a manifest read from the store).
    pub fn opens(&self) -> u64 {
        self.opens.load(Ordering::Relaxed)
    }

    /// The latest version of the dataset at `uri`. `open` opens it afresh when nothing about the
    /// URI is cached; `Ok(None)` when there is no dataset there.
    pub async fn latest<F, Fut>(&self, uri: &str, open: F) -> lance::Result<Option<Arc<Dataset>>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = lance::Result<Dataset>>,
    {
        // The first open of a URI also fills its version's entry before anyone waiting for it
        // goes on, so a scan of that version finds it.
        let first_open = async {
            let head = self.counted(open).await?;
            let key = (uri.to_string(), head.version_id());
            self.versions.insert(key, head.clone()).await;
            Ok::<_, lance::Error>(head)
        };
        let entry = self
            .heads
            .entry_by_ref(uri)
            .or_try_insert_with(first_open)
            .await;
        let head = match entry {
            Ok(entry) if entry.is_fresh() => return Ok(Some(entry.into_value())),
            Ok(entry) => entry.into_value(),
            Err(error) if is_missing(&error) => return Ok(None),
            Err(error) => return Err(lance::Error::Shared { source: error }),
        };
        let location = match local_head(&head).await {
            LocalHead::Unchanged => return Ok(Some(head)),
            LocalHead::Moved(location) => location,
            LocalHead::Unknown => match head.latest_manifest().await {
                Ok((_, location)) => location,
                Err(error) if is_missing(&error) => {
                    self.forget(uri).await;
                    return Ok(None);
                }
                Err(error) => return Err(error),
            },
        };
        if same_manifest(head.manifest_location(), &location) {
            return Ok(Some(head));
        }
        let latest = self.version(uri, &location, || head.checkout_version(location.version));
        let latest = match latest.await {
            Ok(latest) => latest,
            // Listed and then gone: a DROP TABLE (or another process) removed it meanwhile.
            Err(error) if is_missing(&error) => {
                self.forget(uri).await;
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        self.heads.insert(uri.to_string(), latest.clone()).await;
        Ok(Some(latest))
    }

    /// The dataset at `uri` as it was at `version`; `open` opens it when it is not cached.
    pub async fn pinned<F, Fut>(
        &self,
        uri: &str,
        version: u64,
        open: F,
    ) -> lance::Result<Arc<Dataset>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = lance::Result<Dataset>>,
    {
        self.versions
            .try_get_with((uri.to_string(), version), self.counted(open))
            .await
            .map_err(|source| lance::Error::Shared { source })
    }

    /// Drops everything cached about `uri` (after this process dropped or replaced it).
    pub async fn forget(&self, uri: &str) {
        self.heads.invalidate(uri).await;
        let stale: Vec<_> = self
            .versions
            .iter()
            .filter(|(key, _)| key.0 == uri)
            .map(|(key, _)| (*key).clone())
            .collect();
        for key in stale {
            self.versions.invalidate(&key).await;
        }
    }

    /// The cached `location.version` of `uri` if it is the manifest `location` names, else a
    /// fresh open (replacing a cached version of a former dataset of the same name).
    async fn version<F, Fut>(
        &self,
        uri: &str,
        location: &ManifestLocation,
        open: F,
    ) -> lance::Result<Arc<Dataset>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = lance::Result<Dataset>>,
    {
        let key = (uri.to_string(), location.version);
        if let Some(cached) = self.versions.get(&key).await {
            if same_manifest(cached.manifest_location(), location) {
                return Ok(cached);
            }
            self.versions.invalidate(&key).await;
        }
        self.versions
            .try_get_with(key, self.counted(open))
            .await
            .map_err(|source| lance::Error::Shared { source })
    }

    async fn counted<F, Fut>(&self, open: F) -> lance::Result<Arc<Dataset>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = lance::Result<Dataset>>,
    {
        self.opens.fetch_add(1, Ordering::Relaxed);
        open().await.map(Arc::new)
    }
}

/// What a few file lookups say about the latest version of `head`'s dataset on a local disk.
#[derive(Debug)]
enum LocalHead {
    /// `head` is certainly still the latest version.
    Unchanged,
    /// Versions were committed after `head`; this is the manifest of the latest of them.
    Moved(ManifestLocation),
    /// Not a local dataset, something other than new versions changed (the table was dropped
    /// or created again), or more new versions than are worth looking up one by one: ask the
    /// listing.
    Unknown,
}

/// Most new versions looked up one file at a time before listing them is cheaper: a statement
/// of this process commits one, another process writing many rows several.
const MOST_VERSIONS_LOOKED_UP: u64 = 8;

/// The latest version of `head`'s dataset on the local file system, judged by file lookups:
/// `head`'s manifest is still the same file (same entity tag), and the manifests of the
/// versions after it exist up to the first that does not. Versions are committed one after
/// another, so no later one can exist without those before it. Listing the versions instead
/// (Lance's way) reads every version's name: a table written one row at a time for a while has
/// thousands, and listing them cost milliseconds for every statement, and for the next one after
/// every write. [`LocalHead::Unknown`] means "ask the listing", which also handles object
/// stores, dropped tables and every doubt.
async fn local_head(head: &Dataset) -> LocalHead {
    let local = head
        .object_store(None)
        .await
        .is_ok_and(|store| store.has_direct_local_paths());
    let cached = head.manifest_location();
    if !local || cached.e_tag.is_none() {
        return LocalHead::Unknown;
    }
    let current = std::path::PathBuf::from(lance_io::local::to_local_path(&cached.path));
    // Each lookup is a single metadata read, as cheap as one directory read of a listing.
    match std::fs::metadata(&current) {
        Ok(metadata)
            if same_manifest(
                cached,
                &located(cached, cached.path.clone(), cached.version, &metadata),
            ) => {}
        _ => return LocalHead::Unknown,
    }
    let mut versions_folder: Vec<_> = cached.path.parts().collect();
    versions_folder.pop();
    let mut latest = None;
    for step in 1..=MOST_VERSIONS_LOOKED_UP + 1 {
        let Some(version) = cached.version.checked_add(step) else {
            return LocalHead::Unknown;
        };
        let Some(name) = cached
            .naming_scheme
            .manifest_path(&object_store::path::Path::default(), version)
            .filename()
            .map(str::to_string)
        else {
            return LocalHead::Unknown;
        };
        match std::fs::symlink_metadata(current.with_file_name(&name)) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return match latest {
                    None => LocalHead::Unchanged,
                    Some(location) => LocalHead::Moved(location),
                };
            }
            Ok(metadata) if metadata.is_file() => {
                let object_path = versions_folder
                    .iter()
                    .cloned()
                    .chain([name.as_str().into()])
                    .collect();
                latest = Some(located(cached, object_path, version, &metadata));
            }
            _ => return LocalHead::Unknown,
        }
    }
    LocalHead::Unknown
}

/// The location of the manifest of `version`, a local file with `metadata` at `object_path`
/// in the store, as Lance would report it; named as `head`'s is.
fn located(
    head: &ManifestLocation,
    object_path: object_store::path::Path,
    version: u64,
    metadata: &std::fs::Metadata,
) -> ManifestLocation {
    ManifestLocation {
        version,
        path: object_path,
        size: Some(metadata.len()),
        naming_scheme: head.naming_scheme,
        e_tag: Some(lance_io::object_writer::get_etag(metadata)),
        identity: None,
    }
}

/// Whether two locations name the same manifest file: the same version, and the same object
/// (by entity tag, else by size) where the store reports one.
fn same_manifest(cached: &ManifestLocation, current: &ManifestLocation) -> bool {
    if cached.version != current.version {
        return false;
    }
    match (&cached.e_tag, &current.e_tag) {
        (Some(cached), Some(current)) => bare_tag(cached) == bare_tag(current),
        _ => match (cached.size, current.size) {
            (Some(cached), Some(current)) => cached == current,
            _ => true,
        },
    }
}

/// An entity tag without the quotes (and weak marker) some reads add and listings do not.
fn bare_tag(tag: &str) -> &str {
    tag.trim_start_matches("W/").trim_matches('"')
}

/// Whether `error` says the dataset (or the manifest just listed) is not in the store; Lance
/// reports a manifest removed between listing and reading as an I/O error caused by a missing
/// object, which counts too.
fn is_missing(error: &lance::Error) -> bool {
    matches!(error.find_root(), lance::Error::DatasetNotFound { .. }) || error.is_not_found()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_gone_between_listing_and_reading_is_missing() {
        let gone = lance::Error::not_found("t.lance/_versions/1.manifest");
        assert!(is_missing(&gone));
        let read_failure = lance::Error::io_source(Box::new(gone));
        assert!(is_missing(&read_failure));
        let unreachable = lance::Error::io_source(Box::new(std::io::Error::other("refused")));
        assert!(!is_missing(&unreachable));
    }

    /// Writes a one-column dataset of `rows` at `uri` (created, or appended to).
    async fn write(uri: &str, rows: i64, mode: lance::dataset::WriteMode) {
        use arrow::array::{Int64Array, RecordBatch, RecordBatchIterator};
        use arrow::datatypes::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let ids = Arc::new(Int64Array::from_iter_values(0..rows));
        let batch = RecordBatch::try_new(schema.clone(), vec![ids]).expect("batch");
        let params = lance::dataset::WriteParams {
            mode,
            ..Default::default()
        };
        let batches = RecordBatchIterator::new([Ok(batch)], schema);
        Dataset::write(batches, uri, Some(params))
            .await
            .expect("write");
    }

    /// What `cache` says is the latest version at `uri`, opening it plainly on a miss.
    async fn latest_of(cache: &DatasetCache, uri: &str) -> Option<Arc<Dataset>> {
        cache
            .latest(uri, || Dataset::open(uri))
            .await
            .expect("latest")
    }

    fn unchanged(head: LocalHead) -> bool {
        matches!(head, LocalHead::Unchanged)
    }

    #[tokio::test]
    async fn a_local_head_is_current_until_another_version_or_another_dataset_appears() {
        use lance::dataset::WriteMode;
        let root = tempfile::tempdir().expect("root");
        let uri = root.path().join("t.lance").to_string_lossy().into_owned();
        write(&uri, 3, WriteMode::Create).await;
        let head = Dataset::open(&uri).await.expect("open");
        assert!(unchanged(local_head(&head).await), "just opened");
        let cache = DatasetCache::new(8);
        let first = latest_of(&cache, &uri).await.expect("exists");
        assert_eq!(first.version_id(), 1);
        // Another writer commits the next version.
        write(&uri, 2, WriteMode::Append).await;
        assert!(
            !unchanged(local_head(&head).await),
            "a newer version exists"
        );
        // Checked out from the cached head, and then current by the quick look.
        let latest = latest_of(&cache, &uri).await.expect("exists");
        assert_eq!(latest.count_rows(None).await.expect("count"), 5);
        assert!(unchanged(local_head(&latest).await), "opened at the latest");
        // Dropped and created again with as many versions: same version, other file.
        std::fs::remove_dir_all(root.path().join("t.lance")).expect("drop");
        write(&uri, 7, WriteMode::Create).await;
        write(&uri, 1, WriteMode::Append).await;
        assert!(
            matches!(local_head(&latest).await, LocalHead::Unknown),
            "another dataset"
        );
        let again = latest_of(&cache, &uri).await.expect("exists");
        assert_eq!(again.count_rows(None).await.expect("count"), 8);
        // Dropped: not current, and the cache says so.
        std::fs::remove_dir_all(root.path().join("t.lance")).expect("drop");
        assert!(
            matches!(local_head(&again).await, LocalHead::Unknown),
            "dropped"
        );
        assert!(latest_of(&cache, &uri).await.is_none());
    }

    #[tokio::test]
    async fn new_local_versions_are_found_by_lookups_up_to_a_few_and_by_listing_past_them() {
        use lance::dataset::WriteMode;
        let root = tempfile::tempdir().expect("root");
        let uri = root.path().join("t.lance").to_string_lossy().into_owned();
        write(&uri, 1, WriteMode::Create).await;
        let cache = DatasetCache::new(8);
        let head = latest_of(&cache, &uri).await.expect("exists");
        for _ in 0..3 {
            write(&uri, 1, WriteMode::Append).await;
        }
        let LocalHead::Moved(location) = local_head(&head).await else {
            panic!("three new versions not found by lookups");
        };
        assert_eq!(location.version, 4);
        let latest = latest_of(&cache, &uri).await.expect("exists");
        assert_eq!(latest.version_id(), 4);
        assert_eq!(latest.count_rows(None).await.expect("count"), 4);
        // The lookup names the manifest as Lance does, so a cached open of it is reused.
        assert!(same_manifest(latest.manifest_location(), &location));
        let opens = cache.opens();
        assert!(Arc::ptr_eq(
            &cache
                .version(&uri, &location, || Dataset::open(&uri))
                .await
                .expect("cached"),
            &latest
        ));
        assert_eq!(cache.opens(), opens, "opened again");
        // More new versions than worth looking up one by one: the listing finds the latest.
        for _ in 0..=MOST_VERSIONS_LOOKED_UP {
            write(&uri, 1, WriteMode::Append).await;
        }
        assert!(matches!(local_head(&latest).await, LocalHead::Unknown));
        let listed = latest_of(&cache, &uri).await.expect("exists");
        assert_eq!(listed.version_id(), 5 + MOST_VERSIONS_LOOKED_UP);
        assert_eq!(
            listed.count_rows(None).await.expect("count"),
            5 + MOST_VERSIONS_LOOKED_UP as usize
        );
    }
}
