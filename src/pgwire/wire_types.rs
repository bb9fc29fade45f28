//! Arrow types the row encoders (`arrow-pg`) cannot encode, converted before rows are encoded
//! into types they can, keeping every value: fixed-size and large lists (vectors) become lists,
//! `float16` becomes `float4`, fixed-size binary becomes binary, inside lists and structs too.
//! The Postgres types clients are told (RowDescription) are the same either way.
//!
//! Parameters are described by their Arrow type, except where the field is marked as a Postgres
//! `oid` (the catalog emulation's `Int32` with `pg.oid_alias = oid`): those are `oid` and
//! `oid[]`, which asyncpg's type introspection binds (its array codecs come from that query, so
//! it must need none it lacks).

use std::sync::Arc;

use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion_pg_catalog::pg_catalog::oid_field::{OID_ALIAS_KEY, kind};
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
use datafusion_postgres::pgwire::api::Type;
use datafusion_postgres::pgwire::error::PgWireResult;
use futures::StreamExt;

/// The Postgres type a parameter of `field` is described with.
pub fn parameter_type(field: &Field) -> PgWireResult<Type> {
    let is_oid = |field: &Field| {
        field
            .metadata()
            .get(OID_ALIAS_KEY)
            .is_some_and(|alias| alias == kind::OID)
    };
    match field.data_type() {
        DataType::Int32 if is_oid(field) => Ok(Type::OID),
        DataType::List(element) if element.data_type() == &DataType::Int32 && is_oid(element) => {
            Ok(Type::OID_ARRAY)
        }
        other => into_pg_type(other),
    }
}

/// The type values of `data_type` are encoded as.
fn wire_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::FixedSizeList(element, _)
        | DataType::LargeList(element)
        | DataType::List(element)
        | DataType::ListView(element)
        | DataType::LargeListView(element) => DataType::List(wire_field(element)),
        DataType::Float16 => DataType::Float32,
        DataType::FixedSizeBinary(_) => DataType::Binary,
        DataType::Struct(fields) => {
            DataType::Struct(fields.iter().map(wire_field).collect::<Fields>())
        }
        other => other.clone(),
    }
}

fn wire_field(field: &FieldRef) -> FieldRef {
    Arc::new(Field::new(
        field.name(),
        wire_type(field.data_type()),
        field.is_nullable(),
    ))
}

/// `stream` with every column in an encodable type (unchanged when all already are).
pub fn encodable(stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let fields: Vec<FieldRef> = schema.fields().iter().map(wire_field).collect();
    let unchanged = fields
        .iter()
        .zip(schema.fields())
        .all(|(wire, field)| wire.data_type() == field.data_type());
    if unchanged {
        return stream;
    }
    let wire_schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    let target = wire_schema.clone();
    let batches = stream.map(move |batch| {
        let batch = batch?;
        let columns = batch
            .columns()
            .iter()
            .zip(target.fields())
            .map(|(column, field)| cast(column, field.data_type()))
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(target.clone(), columns)
            .map_err(|error| DataFusionError::ArrowError(Box::new(error), None))
    });
    Box::pin(RecordBatchStreamAdapter::new(wire_schema, batches))
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, FixedSizeListArray, Float32Array, ListArray};
    use datafusion::physical_plan::memory::MemoryStream;

    use super::*;

    #[tokio::test]
    async fn vectors_become_lists_with_the_same_values() {
        let element = Arc::new(Field::new("item", DataType::Float32, true));
        let vectors = FixedSizeListArray::try_new(
            element.clone(),
            2,
            Arc::new(Float32Array::from(vec![1.0, 2.0, 3.0, 4.0])),
            None,
        )
        .expect("a vector array");
        let schema = Arc::new(Schema::new(vec![Field::new(
            "v",
            DataType::FixedSizeList(element, 2),
            true,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(vectors)]).expect("a batch");
        let stream = Box::pin(MemoryStream::try_new(vec![batch], schema, None).expect("stream"));
        let mut encodable = encodable(stream);
        let batch = encodable.next().await.expect("a batch").expect("converted");
        let lists = batch
            .column(0)
            .as_any()
            .downcast_ref::<ListArray>()
            .expect("a list");
        assert_eq!(lists.len(), 2);
        let second = lists.value(1);
        let second = second
            .as_any()
            .downcast_ref::<Float32Array>()
            .expect("floats");
        assert_eq!(second.values().to_vec(), vec![3.0, 4.0]);
    }
}
