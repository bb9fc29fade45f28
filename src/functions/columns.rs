//! `lancesql_columns()`: every column of every table, with its Arrow type and the Postgres type
//! it has on the wire.
//!
//! Contract: the Postgres type is the one the wire protocol describes the column with (the same
//! `arrow-pg` mapping the front end's RowDescription uses), so what a client reads from the
//! catalog and what it receives agree. The Postgres catalog emulation reads `pg_attribute`
//! through this function (see `engine::compat`): the emulation alone types every array,
//! `timestamptz` and unsigned column as `text` or `numeric`. The row-identity columns `_rowid`
//! and `_rowaddr` are numbered like Postgres' system columns (negative `attnum`), so catalog
//! listings that keep `attnum > 0` (psql's `\d`, pgjdbc, Trino) leave them out, as `SELECT *`
//! does. Tables are listed when the function is scanned, so tables another process created
//! appear without reconnecting.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int16Array, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProviderList, TableFunctionArgs, TableFunctionImpl};
use datafusion::catalog::{TableProvider, streaming::StreamingTable};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
use datafusion_postgres::pgwire::api::Type;
use lance_core::{ROW_ADDR, ROW_ID};

/// The name the function is registered under.
pub const NAME: &str = "lancesql_columns";

/// The table function; lists the catalogs it was given at the time each scan runs.
#[derive(Debug)]
pub struct ColumnsFunction {
    catalogs: Arc<dyn CatalogProviderList>,
}

impl ColumnsFunction {
    pub fn new(catalogs: Arc<dyn CatalogProviderList>) -> Self {
        Self { catalogs }
    }
}

impl TableFunctionImpl for ColumnsFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return Err(DataFusionError::Plan(format!(
                "{NAME}() takes no arguments, got {}",
                args.exprs().len()
            )));
        }
        let partition = ColumnsPartition {
            schema: columns_schema(),
            catalogs: self.catalogs.clone(),
        };
        Ok(Arc::new(StreamingTable::try_new(
            columns_schema(),
            vec![Arc::new(partition)],
        )?))
    }
}

fn columns_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("table_catalog", DataType::Utf8, false),
        Field::new("table_schema", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        // Postgres' numbering: 1.. in schema order, negative for the row-identity columns.
        Field::new("attnum", DataType::Int16, false),
        Field::new("arrow_type", DataType::Utf8, false),
        Field::new("pg_type", DataType::Utf8, false),
        Field::new("pg_type_oid", DataType::Int32, false),
        // Postgres' `attlen`: the byte width of a fixed-width type, -1 otherwise.
        Field::new("pg_type_len", DataType::Int16, false),
        Field::new("pg_array_dims", DataType::Int32, false),
    ]))
}

#[derive(Debug)]
struct ColumnsPartition {
    schema: SchemaRef,
    catalogs: Arc<dyn CatalogProviderList>,
}

impl PartitionStream for ColumnsPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _context: Arc<TaskContext>) -> SendableRecordBatchStream {
        let schema = self.schema.clone();
        let catalogs = self.catalogs.clone();
        let batch = futures::stream::once(async move { list_columns(schema, catalogs).await });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batch))
    }
}

#[derive(Default)]
struct Rows {
    catalogs: Vec<String>,
    schemas: Vec<String>,
    tables: Vec<String>,
    columns: Vec<String>,
    attnums: Vec<i16>,
    arrow_types: Vec<String>,
    pg_types: Vec<String>,
    pg_type_oids: Vec<i32>,
    pg_type_lens: Vec<i16>,
    pg_array_dims: Vec<i32>,
}

async fn list_columns(
    schema: SchemaRef,
    catalogs: Arc<dyn CatalogProviderList>,
) -> Result<RecordBatch> {
    let mut rows = Rows::default();
    for catalog_name in catalogs.catalog_names() {
        let Some(catalog) = catalogs.catalog(&catalog_name) else {
            continue;
        };
        for schema_name in catalog.schema_names() {
            let Some(tables) = catalog.schema(&schema_name) else {
                continue;
            };
            for table_name in tables.table_names() {
                // A table dropped since the listing is skipped, as Postgres' catalog would.
                let Some(table) = tables.table(&table_name).await? else {
                    continue;
                };
                let mut next_visible = 0i16;
                let mut next_hidden = 0i16;
                for field in table.schema().fields() {
                    let attnum = if [ROW_ID, ROW_ADDR].contains(&field.name().as_str()) {
                        next_hidden -= 1;
                        next_hidden
                    } else {
                        next_visible += 1;
                        next_visible
                    };
                    let pg_type = postgres_type(field.data_type());
                    rows.catalogs.push(catalog_name.clone());
                    rows.schemas.push(schema_name.clone());
                    rows.tables.push(table_name.clone());
                    rows.columns.push(field.name().clone());
                    rows.attnums.push(attnum);
                    rows.arrow_types.push(field.data_type().to_string());
                    rows.pg_types.push(pg_type.name().to_string());
                    rows.pg_type_oids
                        .push(i32::try_from(pg_type.oid()).unwrap_or(0));
                    rows.pg_type_lens.push(fixed_width(&pg_type));
                    rows.pg_array_dims.push(array_dims(&pg_type));
                }
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(rows.catalogs)),
        Arc::new(StringArray::from(rows.schemas)),
        Arc::new(StringArray::from(rows.tables)),
        Arc::new(StringArray::from(rows.columns)),
        Arc::new(Int16Array::from(rows.attnums)),
        Arc::new(StringArray::from(rows.arrow_types)),
        Arc::new(StringArray::from(rows.pg_types)),
        Arc::new(Int32Array::from(rows.pg_type_oids)),
        Arc::new(Int16Array::from(rows.pg_type_lens)),
        Arc::new(Int32Array::from(rows.pg_array_dims)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The Postgres type a column of `data_type` is described with on the wire; `text` for the
/// types the wire encodes as text without a Postgres type of their own (maps, unions).
fn postgres_type(data_type: &DataType) -> Type {
    into_pg_type(data_type).unwrap_or(Type::TEXT)
}

fn fixed_width(pg_type: &Type) -> i16 {
    match *pg_type {
        Type::BOOL | Type::CHAR => 1,
        Type::INT2 => 2,
        Type::INT4 | Type::FLOAT4 | Type::DATE => 4,
        Type::INT8 | Type::FLOAT8 | Type::TIME | Type::TIMESTAMP | Type::TIMESTAMPTZ => 8,
        Type::INTERVAL => 16,
        _ => -1,
    }
}

fn array_dims(pg_type: &Type) -> i32 {
    match pg_type.kind() {
        postgres_types::Kind::Array(_) => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::TimeUnit;

    use super::*;

    #[test]
    fn columns_are_typed_as_the_wire_describes_them() {
        let vector =
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), 4);
        let vector_type = postgres_type(&vector);
        assert_eq!((vector_type.oid(), array_dims(&vector_type)), (1021, 1));
        let instant = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        assert_eq!(postgres_type(&instant).oid(), 1184);
        assert_eq!(fixed_width(&postgres_type(&instant)), 8);
        let map_field = Field::new(
            "entries",
            DataType::Struct(
                vec![
                    Field::new("key", DataType::Utf8, false),
                    Field::new("value", DataType::Utf8, true),
                ]
                .into(),
            ),
            false,
        );
        let map = DataType::Map(Arc::new(map_field), false);
        assert_eq!(postgres_type(&map), Type::TEXT);
        assert_eq!(fixed_width(&Type::TEXT), -1);
    }
}
