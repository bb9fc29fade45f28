//! `lancesql.system`: relations about the data root, answered from the statement's listing:
//! `unreadable_entries`, `indices` (every index of every listed table, read from the
//! tables' manifests through the shared caches), `versions` (every version of every listed
//! table: one manifest and transaction file per version, so its cost grows with history) and
//! `tags`.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
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
/// `system.versions`: each table's versions, with what committed them.
pub const VERSIONS: &str = "versions";
/// `system.tags`: each table's tags and the versions they name.
pub const TAGS: &str = "tags";

const RELATIONS: [&str; 4] = [INDICES, TAGS, UNREADABLE_ENTRIES, VERSIONS];

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

    fn listed_tables(&self) -> &[String] {
        self.listing
            .as_ref()
            .map(|listing| listing.tables.as_slice())
            .unwrap_or_default()
    }

    async fn versions(&self) -> DFResult<Arc<dyn TableProvider>> {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("table_name", DataType::Utf8, false),
            Field::new("version", DataType::Int64, false),
            Field::new(
                "committed_at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("operation", DataType::Utf8, true),
            Field::new("rows_added", DataType::Int64, false),
            Field::new("rows_removed", DataType::Int64, false),
            Field::new("tags", DataType::Utf8, true),
            Field::new("metadata", DataType::Utf8, false),
        ]));
        let root = self.catalog.root();
        let mut rows = Vec::new();
        for name in self.listed_tables() {
            // A table dropped since the listing was taken has no history to show.
            let versions = match root.versions(name).await {
                Ok(versions) => versions,
                Err(crate::error::Error::TableNotFound { .. }) => continue,
                Err(error) => return Err(error.into()),
            };
            let tags = root.tags(name).await?;
            for version in versions {
                let tagged: Vec<&str> = tags
                    .iter()
                    .filter(|tag| tag.version == version.version)
                    .map(|tag| tag.tag.as_str())
                    .collect();
                rows.push((name.as_str(), version, tagged.join(", ")));
            }
        }
        let count = |rows: u64| i64::try_from(rows).unwrap_or(i64::MAX);
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|row| row.0))),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|row| count(row.1.version)),
                )),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        rows.iter().map(|row| row.1.committed_micros),
                    )
                    .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from_iter(
                    rows.iter().map(|row| row.1.operation.as_deref()),
                )),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|row| count(row.1.rows_added)),
                )),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|row| count(row.1.rows_removed)),
                )),
                Arc::new(StringArray::from_iter(
                    rows.iter()
                        .map(|row| (!row.2.is_empty()).then_some(row.2.as_str())),
                )),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|row| metadata_json(&row.1.metadata)),
                )),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }

    async fn tags(&self) -> DFResult<Arc<dyn TableProvider>> {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("table_name", DataType::Utf8, false),
            Field::new("tag_name", DataType::Utf8, false),
            Field::new("version", DataType::Int64, false),
        ]));
        let root = self.catalog.root();
        let mut rows = Vec::new();
        for name in self.listed_tables() {
            match root.tags(name).await {
                Ok(tags) => rows.extend(tags.into_iter().map(|tag| (name.as_str(), tag))),
                Err(crate::error::Error::TableNotFound { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|row| row.0))),
                Arc::new(StringArray::from_iter_values(
                    rows.iter().map(|row| row.1.tag.as_str()),
                )),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter()
                        .map(|row| i64::try_from(row.1.version).unwrap_or(i64::MAX)),
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
        RELATIONS.iter().map(|name| name.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        match name {
            UNREADABLE_ENTRIES => Ok(Some(self.unreadable_entries()?)),
            INDICES => Ok(Some(self.indices().await?)),
            VERSIONS => Ok(Some(self.versions().await?)),
            TAGS => Ok(Some(self.tags().await?)),
            _ => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        RELATIONS.contains(&name)
    }
}

/// A version's metadata as a JSON object (keys in order).
fn metadata_json(pairs: &[(String, String)]) -> String {
    let object: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
        .collect();
    serde_json::Value::Object(object).to_string()
}
