//! The catalog: every Lance dataset under the data root is a table in `lancesql.public`, and
//! `lancesql.system` holds relations about the root itself.
//!
//! Contract:
//! - [`Catalog`] is shared by every session of the process. [`Catalog::resolve`] opens, once and
//!   asynchronously, the tables a statement names (at their latest versions, through the shared
//!   dataset cache) and returns a [`StatementCatalog`]: the snapshot that statement is planned
//!   against, so every read within it sees one version of each table and planning does no I/O.
//!   This follows DataFusion's `AsyncSchemaProvider` model; nothing blocks a thread on storage.
//! - Listing (`information_schema`, `SHOW TABLES`, `system.unreadable_entries`) answers from a
//!   listing of the root taken when the statement reads the catalog and kept for the configured
//!   time-to-live, so catalog-heavy clients do not list the object store per query. A root that
//!   cannot be listed fails the statement with an error naming the root, never an empty list.
//!   Entries that cannot be read are left out of the tables, logged as warnings, and shown with
//!   the reason in `system.unreadable_entries`.
//! - Table metadata (schema, scalar indices, fragment row counts) is derived once per opened
//!   (table, version) and shared.
//! - Creating and dropping tables goes through the engine, which writes through [`DataRoot`] and
//!   then calls [`Catalog::forget_listing`]; `register_table` is refused so nothing can shadow a
//!   dataset in memory.
//!
//! May depend on: `provider`, `storage`, `config`, `error`.

pub mod live;
mod system;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::TableType;
use lance::Dataset;
use moka::future::Cache;

use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::provider::table::LanceTable;
use crate::storage::{DataRoot, TableListing};
use system::SystemSchema;

/// The catalog name clients see (the Postgres "database").
pub const CATALOG_NAME: &str = "lancesql";
/// The one schema holding all tables (Postgres clients expect `public`).
pub const SCHEMA_NAME: &str = "public";
/// The schema of relations about the data root.
pub const SYSTEM_SCHEMA_NAME: &str = "system";
pub use system::UNREADABLE_ENTRIES;

/// The tables under the data root, shared by all sessions.
#[derive(Debug)]
pub struct Catalog {
    root: Arc<DataRoot>,
    tables: Cache<(String, u64), Arc<LanceTable>>,
    listing: Cache<(), Arc<TableListing>>,
    /// The most recent listing taken, for catalog emulation between statements.
    last_listing: std::sync::Mutex<Option<Arc<TableListing>>>,
    /// Tests make listings slow to show they block nobody else.
    #[cfg(test)]
    pub(crate) listing_delay: std::sync::Mutex<std::time::Duration>,
}

impl Catalog {
    pub fn new(root: Arc<DataRoot>, config: &EngineConfig) -> Self {
        Catalog {
            root,
            tables: Cache::new(config.dataset_cache_entries),
            listing: Cache::builder()
                .max_capacity(1)
                .time_to_live(config.listing_ttl)
                .build(),
            last_listing: std::sync::Mutex::new(None),
            #[cfg(test)]
            listing_delay: std::sync::Mutex::new(std::time::Duration::ZERO),
        }
    }

    /// The data root the tables live under.
    pub fn root(&self) -> &Arc<DataRoot> {
        &self.root
    }

    /// `table` at its latest version (a [`versioned_name`] at its version), or `None` when
    /// there is no such table.
    pub async fn table(&self, table: &str) -> Result<Option<Arc<LanceTable>>> {
        if let Some((table, version)) = split_versioned(table) {
            return self.table_at(table, version).await.map(Some);
        }
        let Some(dataset) = self.root.open_latest(table).await? else {
            return Ok(None);
        };
        self.derived(table, dataset).await.map(Some)
    }

    /// `table` as it was at `version` (which must exist: see `DataRoot::version_as_of`).
    pub async fn table_at(&self, table: &str, version: u64) -> Result<Arc<LanceTable>> {
        let uri = self.root.table_uri(table)?;
        let dataset = self.root.open_pinned(&uri, version).await?;
        self.derived(table, dataset).await
    }

    /// The table metadata of `dataset` (opened as `table`), derived once per (table, version).
    async fn derived(&self, table: &str, dataset: Arc<Dataset>) -> Result<Arc<LanceTable>> {
        let key = (table.to_string(), dataset.version_id());
        let derived = self
            .tables
            .try_get_with_by_ref(&key, async {
                LanceTable::new(table, dataset.clone()).await.map(Arc::new)
            })
            .await
            .map_err(Error::from_shared)?;
        if derived.is_of(&dataset) {
            return Ok(derived);
        }
        // The same name and version, but another dataset (dropped and created again).
        let fresh = Arc::new(LanceTable::new(table, dataset).await?);
        self.tables.insert(key, fresh.clone()).await;
        Ok(fresh)
    }

    /// The most recent listing any statement took (`None` before the first).
    pub fn last_listing(&self) -> Option<Arc<TableListing>> {
        self.last_listing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The tables under the root, listed at most once per time-to-live.
    pub async fn listing(&self) -> Result<Arc<TableListing>> {
        let listing = self.fetch_listing().await?;
        *self
            .last_listing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(listing.clone());
        Ok(listing)
    }

    async fn fetch_listing(&self) -> Result<Arc<TableListing>> {
        self.listing
            .try_get_with((), async {
                #[cfg(test)]
                {
                    let delay = *self
                        .listing_delay
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    tokio::time::sleep(delay).await;
                }
                self.root.list_tables().await.map(Arc::new)
            })
            .await
            .map_err(Error::from_shared)
    }

    /// Makes the next listing go to the store (after this process created or dropped a table).
    pub async fn forget_listing(&self) {
        self.listing.invalidate(&()).await;
    }

    /// Opens the tables of `public` among `names` (those in `pinned` at the version given there,
    /// [`versioned_name`]s at theirs) and, when `with_listing`, takes the listing: the snapshot
    /// one statement is planned against. Names that are no table are left out.
    pub async fn resolve(
        self: &Arc<Self>,
        names: &[String],
        pinned: &HashMap<String, Arc<LanceTable>>,
        with_listing: bool,
        others: Option<Arc<dyn CatalogProvider>>,
    ) -> Result<StatementCatalog> {
        let listing = if with_listing {
            Some(self.listing().await?)
        } else {
            None
        };
        let opened = futures::future::try_join_all(names.iter().map(|name| async move {
            let table = match pinned.get(name) {
                Some(table) => Some(table.clone()),
                None => self.table(name).await?,
            };
            Ok::<_, Error>((name.clone(), table))
        }))
        .await?;
        let tables = opened
            .into_iter()
            .filter_map(|(name, table)| table.map(|table| (name, table)))
            .collect();
        let listing_for_system = listing.clone();
        Ok(StatementCatalog {
            public: Arc::new(StatementTables {
                catalog: self.clone(),
                tables,
                listing,
            }),
            system: Arc::new(SystemSchema::new(self.clone(), listing_for_system)),
            others,
        })
    }
}

/// The name a statement's snapshot gives `table` as of `version` (`FROM t VERSION AS OF 3`):
/// never a table's own name, since table names have no `@`.
pub fn versioned_name(table: &str, version: u64) -> String {
    format!("{table}@{version}")
}

/// Whether `name` is a [`versioned_name`]: a table pinned at an old version.
pub fn is_versioned_name(name: &str) -> bool {
    split_versioned(name).is_some()
}

/// The table and version a [`versioned_name`] stands for.
fn split_versioned(name: &str) -> Option<(&str, u64)> {
    let (table, version) = name.rsplit_once('@')?;
    Some((table, version.parse().ok()?))
}

/// `lancesql` as one statement sees it.
#[derive(Debug)]
pub struct StatementCatalog {
    public: Arc<StatementTables>,
    system: Arc<SystemSchema>,
    /// Where schemas other than `public` and `system` (`pg_catalog`) come from.
    others: Option<Arc<dyn CatalogProvider>>,
}

impl StatementCatalog {
    /// A table this statement resolved, by name.
    pub fn table(&self, name: &str) -> Option<&Arc<LanceTable>> {
        self.public.tables.get(name)
    }
}

impl CatalogProvider for StatementCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = vec![SCHEMA_NAME.to_string(), SYSTEM_SCHEMA_NAME.to_string()];
        if let Some(others) = &self.others {
            names.extend(
                others
                    .schema_names()
                    .into_iter()
                    .filter(|name| name != SCHEMA_NAME && name != SYSTEM_SCHEMA_NAME),
            );
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match name {
            SCHEMA_NAME => Some(self.public.clone()),
            SYSTEM_SCHEMA_NAME => Some(self.system.clone()),
            _ => self.others.as_ref().and_then(|others| others.schema(name)),
        }
    }
}

/// `public` for one statement: the tables it names, opened before planning, and the listing
/// when it reads the catalog.
#[derive(Debug)]
struct StatementTables {
    catalog: Arc<Catalog>,
    tables: HashMap<String, Arc<LanceTable>>,
    listing: Option<Arc<TableListing>>,
}

impl StatementTables {
    fn lists(&self, name: &str) -> bool {
        self.tables.contains_key(name)
            || self
                .listing
                .as_ref()
                .is_some_and(|listing| listing.tables.iter().any(|table| table == name))
    }
}

#[async_trait]
impl SchemaProvider for StatementTables {
    fn table_names(&self) -> Vec<String> {
        match &self.listing {
            Some(listing) => listing.tables.clone(),
            None => {
                let mut names: Vec<String> = self.tables.keys().cloned().collect();
                names.sort();
                names
            }
        }
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        if let Some(table) = self.tables.get(name) {
            return Ok(Some(table.clone()));
        }
        // `information_schema.columns` asks for every listed table; those open here, once each,
        // through the shared caches.
        if self.listing.is_some() && self.lists(name) {
            let table = self.catalog.table(name).await?;
            return Ok(table.map(|table| table as Arc<dyn TableProvider>));
        }
        Ok(None)
    }

    async fn table_type(&self, name: &str) -> DFResult<Option<TableType>> {
        // Listed names are tables; answering without opening keeps `information_schema.tables`
        // to one listing.
        Ok(self.lists(name).then_some(TableType::Base))
    }

    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::Plan(format!(
            "cannot register '{name}' in {CATALOG_NAME}.{SCHEMA_NAME}: tables there are Lance datasets; \
             create one with CREATE TABLE {name} AS SELECT ... or `lancesql import`"
        )))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.lists(name)
    }
}
