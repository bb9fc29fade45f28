//! `lancesql` as a session sees it between statements: the catalog Postgres emulation
//! (`pg_catalog`, from `datafusion-pg-catalog`) enumerates, and where it is registered.
//!
//! Statements are planned against their own snapshot ([`super::StatementCatalog`]); that
//! snapshot answers `public` and `system` itself and hands every other schema (`pg_catalog`) to
//! this catalog. Tables come from the listing the front door took for the statement (the
//! statement reads `pg_catalog`, so it took one), opened through the shared caches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::TableType;

use super::{Catalog, SCHEMA_NAME};

/// One session's `lancesql` catalog outside statements.
#[derive(Debug)]
pub struct LiveCatalog {
    public: Arc<LiveTables>,
    others: Mutex<HashMap<String, Arc<dyn SchemaProvider>>>,
}

impl LiveCatalog {
    pub fn new(catalog: Arc<Catalog>) -> Self {
        LiveCatalog {
            public: Arc::new(LiveTables { catalog }),
            others: Mutex::new(HashMap::new()),
        }
    }

    fn others(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<dyn SchemaProvider>>> {
        // Only whole entries are inserted, so a poisoned map is still consistent.
        self.others
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl CatalogProvider for LiveCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.others().keys().cloned().collect();
        names.push(SCHEMA_NAME.to_string());
        names.sort();
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == SCHEMA_NAME {
            return Some(self.public.clone());
        }
        self.others().get(name).cloned()
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> DFResult<Option<Arc<dyn SchemaProvider>>> {
        Ok(self.others().insert(name.to_string(), schema))
    }
}

/// `public` between statements: the latest listing's tables.
#[derive(Debug)]
struct LiveTables {
    catalog: Arc<Catalog>,
}

#[async_trait]
impl SchemaProvider for LiveTables {
    fn table_names(&self) -> Vec<String> {
        self.catalog
            .last_listing()
            .map(|listing| listing.tables.clone())
            .unwrap_or_default()
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let table = self.catalog.table(name).await?;
        Ok(table.map(|table| table as Arc<dyn TableProvider>))
    }

    async fn table_type(&self, name: &str) -> DFResult<Option<TableType>> {
        Ok(self.table_exist(name).then_some(TableType::Base))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.catalog
            .last_listing()
            .is_some_and(|listing| listing.tables.iter().any(|table| table == name))
    }
}
