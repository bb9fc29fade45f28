//! The catalog: every Lance dataset under the data root is a table in `lancesql.public`.
//!
//! Nothing is cached between statements: `table()` opens the dataset's latest version each time a
//! statement is planned, and `table_names()` lists the root each time it is asked, so datasets
//! created, changed or dropped by another process (pylance, another lancesql) are seen at once.
//! Creating and dropping tables goes through the engine (see [`crate::session`]), which writes
//! through [`DataRoot`]; `register_table` is refused so nothing can shadow a dataset in memory.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result as DFResult};

use crate::blocking::BlockingBridge;
use crate::storage::DataRoot;
use crate::table::LanceTable;

/// The catalog name clients see (the Postgres "database").
pub const CATALOG_NAME: &str = "lancesql";
/// The one schema holding all tables (Postgres clients expect `public`).
pub const SCHEMA_NAME: &str = "public";

/// `lancesql`: one schema, `public`.
#[derive(Debug)]
pub struct LanceCatalog {
    schema: Arc<LanceSchema>,
}

impl LanceCatalog {
    pub fn new(root: Arc<DataRoot>, bridge: Arc<BlockingBridge>) -> Self {
        LanceCatalog {
            schema: Arc::new(LanceSchema { root, bridge }),
        }
    }
}

impl CatalogProvider for LanceCatalog {
    fn schema_names(&self) -> Vec<String> {
        vec![SCHEMA_NAME.to_string()]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        (name == SCHEMA_NAME).then(|| self.schema.clone() as Arc<dyn SchemaProvider>)
    }
}

/// `public`: the datasets under the data root.
#[derive(Debug)]
pub struct LanceSchema {
    root: Arc<DataRoot>,
    bridge: Arc<BlockingBridge>,
}

impl LanceSchema {
    fn list(&self) -> Vec<String> {
        let root = self.root.clone();
        match self.bridge.run(async move { root.list_tables().await }) {
            Ok(Ok(names)) => names,
            Ok(Err(error)) | Err(error) => {
                tracing::warn!(%error, "could not list tables");
                Vec::new()
            }
        }
    }
}

#[async_trait]
impl SchemaProvider for LanceSchema {
    fn table_names(&self) -> Vec<String> {
        self.list()
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        match self.root.open_latest(name).await? {
            Some(dataset) => Ok(Some(Arc::new(LanceTable::new(name, dataset).await?))),
            None => Ok(None),
        }
    }

    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::NotImplemented(format!(
            "cannot register '{name}' in {CATALOG_NAME}.{SCHEMA_NAME}: tables there are Lance datasets; \
             create one with CREATE TABLE {name} AS SELECT ... or `lancesql import`"
        )))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.list().iter().any(|table| table == name)
    }
}
