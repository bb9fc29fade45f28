//! The catalog: every Lance dataset under the data root is a table in `lancesql.public`, and
//! `lancesql.system` holds relations about the root itself.
//!
//! Contract:
//! - `table()` opens the dataset's latest version each time a statement is planned, so datasets
//!   created, changed or dropped by another process (pylance, another lancesql) are seen at once.
//!   A name that is not a valid table name is an error, never a path (see [`DataRoot::table_uri`]).
//! - Listing (`table_names`, used by `information_schema` and `SHOW TABLES`) answers from the
//!   snapshot the session takes with [`LanceCatalog::refresh`] before each statement that reads
//!   the catalog, so a root that cannot be listed fails that statement with an error naming the
//!   root instead of looking empty. Entries that cannot be read are left out of the listing,
//!   logged as warnings, and shown with the reason in `system.unreadable_entries`.
//! - Creating and dropping tables goes through the engine (see [`crate::session`]), which writes
//!   through [`DataRoot`]; `register_table` is refused so nothing can shadow a dataset in memory.

use std::sync::{Arc, Mutex};

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemTable, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::TableType;

use crate::blocking::BlockingBridge;
use crate::error::Result;
use crate::storage::{DataRoot, TableListing};
use crate::table::LanceTable;

/// The catalog name clients see (the Postgres "database").
pub const CATALOG_NAME: &str = "lancesql";
/// The one schema holding all tables (Postgres clients expect `public`).
pub const SCHEMA_NAME: &str = "public";
/// The schema of relations about the data root.
pub const SYSTEM_SCHEMA_NAME: &str = "system";
/// `system.unreadable_entries`: entries under the root that look like tables but cannot be read.
pub const UNREADABLE_ENTRIES: &str = "unreadable_entries";

/// `lancesql`: `public` (the datasets) and `system`.
#[derive(Debug)]
pub struct LanceCatalog {
    tables: Arc<LanceSchema>,
    system: Arc<SystemSchema>,
}

impl LanceCatalog {
    pub fn new(root: Arc<DataRoot>, bridge: Arc<BlockingBridge>) -> Self {
        let listing = Arc::new(Mutex::new(None));
        LanceCatalog {
            tables: Arc::new(LanceSchema {
                root: root.clone(),
                bridge,
                listing: listing.clone(),
            }),
            system: Arc::new(SystemSchema { listing }),
        }
    }

    /// Lists the root now and keeps the result for this session's next statement; fails (naming
    /// the root) when the root cannot be listed.
    pub async fn refresh(&self) -> Result<()> {
        let listing = self.tables.root.list_tables().await?;
        *self.tables.snapshot() = Some(listing);
        Ok(())
    }
}

impl CatalogProvider for LanceCatalog {
    fn schema_names(&self) -> Vec<String> {
        vec![SCHEMA_NAME.to_string(), SYSTEM_SCHEMA_NAME.to_string()]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match name {
            SCHEMA_NAME => Some(self.tables.clone()),
            SYSTEM_SCHEMA_NAME => Some(self.system.clone()),
            _ => None,
        }
    }
}

type SharedListing = Arc<Mutex<Option<TableListing>>>;

fn lock(listing: &SharedListing) -> std::sync::MutexGuard<'_, Option<TableListing>> {
    // Only whole values are stored, so a poisoned lock still holds a consistent one.
    listing
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `public`: the datasets under the data root.
#[derive(Debug)]
pub struct LanceSchema {
    root: Arc<DataRoot>,
    bridge: Arc<BlockingBridge>,
    listing: SharedListing,
}

impl LanceSchema {
    fn snapshot(&self) -> std::sync::MutexGuard<'_, Option<TableListing>> {
        lock(&self.listing)
    }

    /// The snapshot's tables, or a fresh listing when no statement took one (a caller outside
    /// the engine's front door); a failure then can only be logged, DataFusion's hook being
    /// infallible.
    fn names(&self) -> Vec<String> {
        if let Some(listing) = self.snapshot().as_ref() {
            return listing.tables.clone();
        }
        let root = self.root.clone();
        match self.bridge.run(async move { root.list_tables().await }) {
            Ok(Ok(listing)) => listing.tables,
            Ok(Err(error)) | Err(error) => {
                tracing::warn!(%error, "could not list tables");
                Vec::new()
            }
        }
    }

    /// Whether `name` is a listed table (asked once per table by `information_schema`, so the
    /// snapshot is searched in place rather than copied).
    fn lists(&self, name: &str) -> bool {
        if let Some(listing) = self.snapshot().as_ref() {
            return listing.tables.iter().any(|table| table == name);
        }
        self.names().iter().any(|table| table == name)
    }
}

#[async_trait]
impl SchemaProvider for LanceSchema {
    fn table_names(&self) -> Vec<String> {
        self.names()
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        match self.root.open_latest(name).await? {
            Some(dataset) => Ok(Some(Arc::new(LanceTable::new(name, dataset).await?))),
            None => Ok(None),
        }
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

/// `system`: relations about the data root.
#[derive(Debug)]
pub struct SystemSchema {
    listing: SharedListing,
}

impl SystemSchema {
    fn unreadable_entries(&self) -> DFResult<Arc<dyn TableProvider>> {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("entry", DataType::Utf8, false),
            Field::new("reason", DataType::Utf8, false),
        ]));
        let entries = lock(&self.listing)
            .as_ref()
            .map(|listing| listing.unreadable.clone())
            .unwrap_or_default();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    entries.iter().map(|bad| bad.entry.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    entries.iter().map(|bad| bad.reason.as_str()),
                )),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        vec![UNREADABLE_ENTRIES.to_string()]
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        match name {
            UNREADABLE_ENTRIES => Ok(Some(self.unreadable_entries()?)),
            _ => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        name == UNREADABLE_ENTRIES
    }
}
