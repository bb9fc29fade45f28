//! `lancesql.system`: relations about the data root, answered from the statement's listing.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{MemTable, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DFResult;

use crate::storage::TableListing;

/// `system.unreadable_entries`: entries under the root that look like tables but cannot be read.
pub const UNREADABLE_ENTRIES: &str = "unreadable_entries";

/// `system` for one statement.
#[derive(Debug)]
pub struct SystemSchema {
    listing: Option<Arc<TableListing>>,
}

impl SystemSchema {
    pub fn new(listing: Option<Arc<TableListing>>) -> Self {
        SystemSchema { listing }
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
