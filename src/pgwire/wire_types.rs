//! Arrow types the row encoders (`arrow-pg`) cannot encode, converted before rows are encoded
//! into types they can, keeping every value: fixed-size and large lists (vectors) become lists,
//! `float16` becomes `float4`, fixed-size binary becomes binary, inside lists too. Structs and
//! maps (and lists of them) become JSON text, described as `json`, as are columns marked with
//! Arrow's JSON extension type. Row descriptions come from [`pg_fields`], so a statement's
//! Describe and its rows agree.
//!
//! Parameters are described by their Arrow type, except where the field is marked as a Postgres
//! `oid` (the catalog emulation's `Int32` with `pg.oid_alias = oid`): those are `oid` and
//! `oid[]`, which asyncpg's type introspection binds (its array codecs come from that query, so
//! it must need none it lacks).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{EncoderOptions, make_encoder};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion_pg_catalog::pg_catalog::oid_field::{OID_ALIAS_KEY, kind};
use datafusion_postgres::arrow_pg::datatypes::{field_into_pg_type, into_pg_type};
use datafusion_postgres::pgwire::api::Type;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::FieldInfo;
use datafusion_postgres::pgwire::error::PgWireResult;
use datafusion_postgres::pgwire::types::format::FormatOptions;
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

/// Arrow's extension name for JSON text, which marks the columns described as `json`.
const JSON_EXTENSION: &str = "arrow.json";
const EXTENSION_NAME_KEY: &str = "ARROW:extension:name";

/// Whether values of `data_type` are sent as JSON text: structs and maps, and lists of them.
fn is_json(data_type: &DataType) -> bool {
    match data_type {
        DataType::Struct(_) | DataType::Map(..) => true,
        DataType::FixedSizeList(element, _)
        | DataType::LargeList(element)
        | DataType::List(element)
        | DataType::ListView(element)
        | DataType::LargeListView(element) => is_json(element.data_type()),
        _ => false,
    }
}

fn is_json_field(field: &Field) -> bool {
    field
        .metadata()
        .get(EXTENSION_NAME_KEY)
        .is_some_and(|name| name == JSON_EXTENSION)
}

/// The type values of `data_type` are encoded as (not for JSON columns, see [`wire_field`]).
fn wire_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::FixedSizeList(element, _)
        | DataType::LargeList(element)
        | DataType::List(element)
        | DataType::ListView(element)
        | DataType::LargeListView(element) => DataType::List(wire_field(element)),
        DataType::Float16 => DataType::Float32,
        DataType::FixedSizeBinary(_) => DataType::Binary,
        other => other.clone(),
    }
}

fn wire_field(field: &FieldRef) -> FieldRef {
    if is_json(field.data_type()) {
        let metadata = [(EXTENSION_NAME_KEY.to_string(), JSON_EXTENSION.to_string())];
        return Arc::new(
            Field::new(field.name(), DataType::Utf8, field.is_nullable())
                .with_metadata(metadata.into()),
        );
    }
    Arc::new(
        Field::new(
            field.name(),
            wire_type(field.data_type()),
            field.is_nullable(),
        )
        .with_metadata(field.metadata().clone()),
    )
}

/// The row description of `schema` as sent: each column's Postgres type after the conversions
/// above, `json` for JSON columns.
pub fn pg_fields(
    schema: &Schema,
    format: &Format,
    options: Option<Arc<FormatOptions>>,
) -> PgWireResult<Vec<FieldInfo>> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let wire = wire_field(field);
            let pg_type = if is_json_field(&wire) {
                Type::JSON
            } else {
                field_into_pg_type(&wire)?
            };
            let info = FieldInfo::new(
                field.name().clone(),
                None,
                None,
                pg_type,
                format.format_for(index),
            );
            Ok(match &options {
                Some(options) => info.with_format_options(options.clone()),
                None => info,
            })
        })
        .collect()
}

/// Each value of `column` as JSON text (NULL stays NULL; a NULL member is `null`, as
/// Postgres' `to_json` writes it).
fn json_text(field: &FieldRef, column: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let options = EncoderOptions::default().with_explicit_nulls(true);
    let mut encoder = make_encoder(field, column.as_ref(), &options)?;
    let mut texts = StringBuilder::with_capacity(column.len(), column.len() * 16);
    let mut buffer = Vec::new();
    for row in 0..column.len() {
        if encoder.is_null(row) {
            texts.append_null();
            continue;
        }
        buffer.clear();
        encoder.encode(row, &mut buffer);
        texts.append_value(String::from_utf8_lossy(&buffer));
    }
    Ok(Arc::new(texts.finish()))
}

/// `stream` with every column in an encodable type (unchanged when all already are).
pub fn encodable(stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let fields: Vec<FieldRef> = schema.fields().iter().map(wire_field).collect();
    let unchanged = fields
        .iter()
        .zip(schema.fields())
        .all(|(wire, field)| wire.data_type() == field.data_type() && !is_json_field(wire));
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
            .zip(batch.schema().fields())
            .zip(target.fields())
            .map(|((column, field), wire)| {
                if is_json(field.data_type()) {
                    json_text(field, column)
                } else {
                    cast(column, wire.data_type())
                }
            })
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
    async fn structs_and_maps_become_json_described_as_json() {
        use datafusion::arrow::array::{Int64Array, StringArray, StructArray};

        let point = StructArray::from(vec![
            (
                Arc::new(Field::new("x", DataType::Int64, true)),
                Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("tag", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec![Some("a\"b"), Some("c")])) as ArrayRef,
            ),
        ]);
        let schema = Arc::new(Schema::new(vec![Field::new(
            "p",
            point.data_type().clone(),
            true,
        )]));
        let described = pg_fields(&schema, &Format::UnifiedText, None).expect("described");
        assert_eq!(described[0].datatype(), &Type::JSON);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(point)]).expect("batch");
        let stream = Box::pin(MemoryStream::try_new(vec![batch], schema, None).expect("stream"));
        let batch = encodable(stream)
            .next()
            .await
            .expect("a batch")
            .expect("converted");
        let texts = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("text");
        assert_eq!(texts.value(0), r#"{"x":1,"tag":"a\"b"}"#);
        assert_eq!(texts.value(1), r#"{"x":null,"tag":"c"}"#);
    }

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
