//! `lancesql.system`: relations about the data root, answered from the statement's listing:
//! `unreadable_entries`, and `indices` (every index of every listed table, read from the
//! tables' manifests through the shared caches).

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{MemTable, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DFResult;

use super::Catalog;
use crate::storage::TableListing;

/// `system.unreadable_entries`: entries under the root that look like tables but cannot be read.
pub const UNREADABLE_ENTRIES: &str = "unreadable_entries";
/// `system.indices`: each table's indices, with how many rows they cover and miss.
pub const INDICES: &str = "indices";

/// `system` for one statement.
#[derive(Debug)]
pub struct SystemSchema {
    catalog: Arc<Catalog>,
    listing: Option<Arc<TableListing>>,
}

impl SystemSchema {
    pub fn new(catalog: Arc<Catalog>, listing: Option<Arc<TableListing>>) -> Self {
        SystemSchema { catalog, listing }
    }

    async fn indices(&self) -> DFResult<Arc<dyn TableProvider>> {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("table_name", DataType::Utf8, false),
            Field::new("index_name", DataType::Utf8, false),
            Field::new("index_type", DataType::Utf8, false),
            Field::new("columns", DataType::Utf8, false),
            Field::new("rows_indexed", DataType::Int64, false),
            Field::new("rows_unindexed", DataType::Int64, false),
        ]));
        let tables = self
            .listing
            .as_ref()
            .map(|listing| listing.tables.as_slice())
            .unwrap_or_default();
        let mut rows = Vec::new();
        for name in tables {
            // A table dropped since the listing was taken has no indices to show.
            let Some(table) = self.catalog.table(name).await? else {
                continue;
            };
            for index in table.indices() {
                rows.push((name.clone(), index.clone()));
            }
        }
        let count = |rows: u64| i64::try_from(rows).unwrap_or(i64::MAX);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(table, _)| table.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(_, index)| index.name.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(_, index)| index.kind.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|(_, index)| index.columns.join(", ")),
                )),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|(_, index)| count(index.rows_indexed)),
                )),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|(_, index)| count(index.rows_unindexed)),
                )),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }

    fn unreadable_entries(&self) -> DFResult<Arc<dyn TableProvider>> {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("entry", DataType::Utf8, false),
            Field::new("reason", DataType::Utf8, false),
        ]));
        let entries = self
            .listing
            .as_ref()
            .map(|listing| listing.unreadable.as_slice())
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
        vec![INDICES.to_string(), UNREADABLE_ENTRIES.to_string()]
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        match name {
            UNREADABLE_ENTRIES => Ok(Some(self.unreadable_entries()?)),
            INDICES => Ok(Some(self.indices().await?)),
            _ => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        name == UNREADABLE_ENTRIES || name == INDICES
    }
}
