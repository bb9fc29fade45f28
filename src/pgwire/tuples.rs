//! Result rows in Postgres' wire layouts, encoded a batch at a time: the bodies of `DataRow`
//! messages (each field as a 32-bit length, -1 for NULL, and its bytes, in the text or binary
//! format the client asked for per column) and binary `COPY ... TO STDOUT` tuples (the same,
//! after a 16-bit field count).
//!
//! Contract:
//! - the bytes are exactly those arrow-pg's per-value encoders write for the same values, types
//!   and formats, so a value reads the same through `SELECT` in either format and through `COPY`
//!   (the tests compare the two for every type, in both formats);
//! - the common types are encoded here a column at a time: booleans, integers, floats and text
//!   in both formats, bytea and one-dimensional arrays of integers and floats (vectors) in
//!   binary. Every other type and format goes through arrow-pg's `encode_value`, value by value;
//! - a batch becomes one buffer, cut into one piece per row without copying: a profile of a
//!   narrow read showed a quarter of the server's time allocating per row and per value, and
//!   most of the rest dispatching on the type of every value.

use bytes::{BufMut, Bytes, BytesMut};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, BooleanArray, LargeBinaryArray,
    LargeStringArray, ListArray, OffsetSizeTrait, PrimitiveArray, StringArray, StringViewArray,
};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion_postgres::arrow_pg::encoder::{Encoder, encode_value};
use datafusion_postgres::pgwire::api::Type;
use datafusion_postgres::pgwire::api::results::{FieldFormat, FieldInfo};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::data::DataRow;
use datafusion_postgres::pgwire::types::ToSqlText;
use datafusion_postgres::pgwire::types::format::FormatOptions;
use postgres_types::{IsNull, ToSql};

/// The binary COPY tuples of `batch`'s rows, one per row; `fields` describes its columns as
/// sent (all binary).
pub fn copy_tuples(batch: &RecordBatch, fields: &[FieldInfo]) -> PgWireResult<Vec<Bytes>> {
    let (buffer, ends) = encode(batch, fields, true)?;
    let mut whole = buffer.freeze();
    Ok(cut(ends, |length| whole.split_to(length)))
}

/// The `DataRow` messages of `batch`'s rows; `fields` describes its columns as sent, each in
/// its own format.
pub fn data_rows(batch: &RecordBatch, fields: &[FieldInfo]) -> PgWireResult<Vec<DataRow>> {
    let (mut buffer, ends) = encode(batch, fields, false)?;
    let field_count = field_count(fields)?;
    Ok(cut(ends, |length| {
        DataRow::new(buffer.split_to(length), field_count)
    }))
}

/// One piece per row, from the end offsets of the rows in the buffer `take` cuts from.
fn cut<T>(ends: Vec<usize>, mut take: impl FnMut(usize) -> T) -> Vec<T> {
    let mut start = 0;
    ends.into_iter()
        .map(|end| {
            let row = take(end - start);
            start = end;
            row
        })
        .collect()
}

fn field_count(fields: &[FieldInfo]) -> PgWireResult<i16> {
    i16::try_from(fields.len()).map_err(|_| {
        PgWireError::ApiError(
            format!(
                "a row of {} columns is over Postgres' limit of 32767",
                fields.len()
            )
            .into(),
        )
    })
}

/// All rows of `batch` in one buffer, with where each row ends; each row starts with the field
/// count when `counted`.
fn encode(
    batch: &RecordBatch,
    fields: &[FieldInfo],
    counted: bool,
) -> PgWireResult<(BytesMut, Vec<usize>)> {
    let field_count = field_count(fields)?;
    let schema = batch.schema();
    let columns: Vec<Column> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .zip(fields)
        .map(|((array, arrow_field), pg_field)| Column::of(array, arrow_field, pg_field))
        .collect();
    let rows = batch.num_rows();
    let mut buffer = BytesMut::with_capacity(estimated_size(&columns, rows));
    let mut ends = Vec::with_capacity(rows);
    for row in 0..rows {
        if counted {
            buffer.put_i16(field_count);
        }
        for column in &columns {
            column.write(row, &mut buffer)?;
        }
        ends.push(buffer.len());
    }
    Ok((buffer, ends))
}

/// A first guess at a batch's encoded size (the buffer grows if it is short): a guess that is
/// short by half copies the whole batch once more as the buffer grows, into fresh memory.
fn estimated_size(columns: &[Column], rows: usize) -> usize {
    const FIELD_LENGTH: usize = 4;
    let column_sizes: usize = columns
        .iter()
        .map(|column| column.estimated_size(rows))
        .sum();
    column_sizes + rows * (2 + FIELD_LENGTH * columns.len())
}

/// How many values (or bytes) the offsets of a sliced list (or string) array span.
fn offsets_span<O: OffsetSizeTrait>(offsets: &[O]) -> usize {
    match (offsets.first(), offsets.last()) {
        (Some(first), Some(last)) => (*last - *first).as_usize(),
        _ => 0,
    }
}

/// One column of a batch, downcast once for all its rows.
enum Column<'a> {
    Bool(&'a BooleanArray, FieldFormat),
    Int16(&'a PrimitiveArray<Int16Type>, FieldFormat),
    Int32(&'a PrimitiveArray<Int32Type>, FieldFormat),
    Int64(&'a PrimitiveArray<Int64Type>, FieldFormat),
    Float32(&'a PrimitiveArray<Float32Type>, Floats<'a>),
    Float64(&'a PrimitiveArray<Float64Type>, Floats<'a>),
    /// Text is the same bytes in both formats.
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
    Utf8View(&'a StringViewArray),
    /// Bytea in binary format: the bytes themselves.
    Binary(&'a BinaryArray),
    LargeBinary(&'a LargeBinaryArray),
    BinaryView(&'a BinaryViewArray),
    /// Arrays in binary format.
    Int16List(NumberList<'a, Int16Type>),
    Int32List(NumberList<'a, Int32Type>),
    Int64List(NumberList<'a, Int64Type>),
    Float32List(NumberList<'a, Float32Type>),
    Float64List(NumberList<'a, Float64Type>),
    /// Any other type or format, encoded value by value by arrow-pg.
    Other {
        array: &'a ArrayRef,
        arrow_field: &'a Field,
        pg_field: &'a FieldInfo,
    },
}

/// How a float column is written: in binary by its bits, in text as the session's
/// `extra_float_digits` says.
#[derive(Clone, Copy)]
enum Floats<'a> {
    Binary,
    Text(&'a Type, &'a FormatOptions),
}

impl<'a> Column<'a> {
    /// The encoder of `array`: one of ours where its Arrow type, the Postgres type it is sent as
    /// and the format are one of the combinations above, arrow-pg's otherwise.
    fn of(array: &'a ArrayRef, arrow_field: &'a Field, pg_field: &'a FieldInfo) -> Self {
        let format = pg_field.format();
        let binary = format == FieldFormat::Binary;
        let pg_type = pg_field.datatype();
        let floats = if binary {
            Floats::Binary
        } else {
            Floats::Text(pg_type, pg_field.format_options())
        };
        let ours = match (array.data_type(), pg_type) {
            (DataType::Boolean, &Type::BOOL) => Some(Column::Bool(array.as_boolean(), format)),
            (DataType::Int16, &Type::INT2) => Some(Column::Int16(array.as_primitive(), format)),
            (DataType::Int32, &Type::INT4) => Some(Column::Int32(array.as_primitive(), format)),
            (DataType::Int64, &Type::INT8) => Some(Column::Int64(array.as_primitive(), format)),
            (DataType::Float32, &Type::FLOAT4) => {
                Some(Column::Float32(array.as_primitive(), floats))
            }
            (DataType::Float64, &Type::FLOAT8) => {
                Some(Column::Float64(array.as_primitive(), floats))
            }
            (DataType::Utf8, &Type::TEXT) => Some(Column::Utf8(array.as_string())),
            (DataType::LargeUtf8, &Type::TEXT) => Some(Column::LargeUtf8(array.as_string())),
            (DataType::Utf8View, &Type::TEXT) => Some(Column::Utf8View(array.as_string_view())),
            _ if !binary => None,
            (DataType::Binary, &Type::BYTEA) => Some(Column::Binary(array.as_binary())),
            (DataType::LargeBinary, &Type::BYTEA) => Some(Column::LargeBinary(array.as_binary())),
            (DataType::BinaryView, &Type::BYTEA) => {
                Some(Column::BinaryView(array.as_binary_view()))
            }
            (DataType::List(_), &Type::INT2_ARRAY) => {
                NumberList::of(array, Type::INT2).map(Column::Int16List)
            }
            (DataType::List(_), &Type::INT4_ARRAY) => {
                NumberList::of(array, Type::INT4).map(Column::Int32List)
            }
            (DataType::List(_), &Type::INT8_ARRAY) => {
                NumberList::of(array, Type::INT8).map(Column::Int64List)
            }
            (DataType::List(_), &Type::FLOAT4_ARRAY) => {
                NumberList::of(array, Type::FLOAT4).map(Column::Float32List)
            }
            (DataType::List(_), &Type::FLOAT8_ARRAY) => {
                NumberList::of(array, Type::FLOAT8).map(Column::Float64List)
            }
            _ => None,
        };
        ours.unwrap_or(Column::Other {
            array,
            arrow_field,
            pg_field,
        })
    }

    /// About how many bytes the values of this column's `rows` rows take on the wire, without
    /// the fields' lengths. Counted from the rows' own slices of the buffers, which a sliced
    /// array shares with the rest of its batch.
    fn estimated_size(&self, rows: usize) -> usize {
        fn width<T: WireNumber>(format: FieldFormat) -> usize {
            // Text is at most 20 digits (integers) or about 24 characters (floats).
            match format {
                FieldFormat::Binary => T::SIZE as usize,
                FieldFormat::Text => 3 * T::SIZE as usize,
            }
        }
        let float_format = |floats: &Floats| match floats {
            Floats::Binary => FieldFormat::Binary,
            Floats::Text(..) => FieldFormat::Text,
        };
        match self {
            Column::Bool(..) => rows,
            Column::Int16(_, format) => rows * width::<Int16Type>(*format),
            Column::Int32(_, format) => rows * width::<Int32Type>(*format),
            Column::Int64(_, format) => rows * width::<Int64Type>(*format),
            Column::Float32(_, floats) => rows * width::<Float32Type>(float_format(floats)),
            Column::Float64(_, floats) => rows * width::<Float64Type>(float_format(floats)),
            Column::Utf8(array) => offsets_span(array.value_offsets()),
            Column::LargeUtf8(array) => offsets_span(array.value_offsets()),
            Column::Utf8View(array) => array.total_bytes_len(),
            Column::Binary(array) => offsets_span(array.value_offsets()),
            Column::LargeBinary(array) => offsets_span(array.value_offsets()),
            Column::BinaryView(array) => array.total_bytes_len(),
            Column::Int16List(list) => list.estimated_size(rows),
            Column::Int32List(list) => list.estimated_size(rows),
            Column::Int64List(list) => list.estimated_size(rows),
            Column::Float32List(list) => list.estimated_size(rows),
            Column::Float64List(list) => list.estimated_size(rows),
            Column::Other { array, .. } => array.to_data().get_slice_memory_size().unwrap_or(0),
        }
    }

    /// Appends the field of `row`: its length and bytes, or -1 for NULL.
    fn write(&self, row: usize, buffer: &mut BytesMut) -> PgWireResult<()> {
        match self {
            Column::Bool(array, format) => {
                if array.is_null(row) {
                    buffer.put_i32(NULL);
                } else {
                    let value = array.value(row);
                    buffer.put_i32(1);
                    buffer.put_u8(match format {
                        FieldFormat::Binary => u8::from(value),
                        FieldFormat::Text if value => b't',
                        FieldFormat::Text => b'f',
                    });
                }
                Ok(())
            }
            Column::Int16(array, format) => write_integer(array, *format, row, buffer),
            Column::Int32(array, format) => write_integer(array, *format, row, buffer),
            Column::Int64(array, format) => write_integer(array, *format, row, buffer),
            Column::Float32(array, floats) => write_float(array, *floats, row, buffer),
            Column::Float64(array, floats) => write_float(array, *floats, row, buffer),
            Column::Utf8(array) => write_bytes(*array, row, buffer, |row| array.value(row)),
            Column::LargeUtf8(array) => write_bytes(*array, row, buffer, |row| array.value(row)),
            Column::Utf8View(array) => write_bytes(*array, row, buffer, |row| array.value(row)),
            Column::Binary(array) => write_bytes(*array, row, buffer, |row| array.value(row)),
            Column::LargeBinary(array) => write_bytes(*array, row, buffer, |row| array.value(row)),
            Column::BinaryView(array) => write_bytes(*array, row, buffer, |row| array.value(row)),
            Column::Int16List(list) => list.write(row, buffer),
            Column::Int32List(list) => list.write(row, buffer),
            Column::Int64List(list) => list.write(row, buffer),
            Column::Float32List(list) => list.write(row, buffer),
            Column::Float64List(list) => list.write(row, buffer),
            Column::Other {
                array,
                arrow_field,
                pg_field,
            } => encode_value(&mut FieldWriter(buffer), array, row, arrow_field, pg_field),
        }
    }
}

/// A number as Postgres' binary format has it: big-endian, floats by their bits.
trait WireNumber: ArrowPrimitiveType {
    const SIZE: i32;
    type Bytes: AsRef<[u8]>;
    fn wire_bytes(value: Self::Native) -> Self::Bytes;
}

impl WireNumber for Int16Type {
    const SIZE: i32 = 2;
    type Bytes = [u8; 2];
    fn wire_bytes(value: i16) -> [u8; 2] {
        value.to_be_bytes()
    }
}

impl WireNumber for Int32Type {
    const SIZE: i32 = 4;
    type Bytes = [u8; 4];
    fn wire_bytes(value: i32) -> [u8; 4] {
        value.to_be_bytes()
    }
}

impl WireNumber for Int64Type {
    const SIZE: i32 = 8;
    type Bytes = [u8; 8];
    fn wire_bytes(value: i64) -> [u8; 8] {
        value.to_be_bytes()
    }
}

impl WireNumber for Float32Type {
    const SIZE: i32 = 4;
    type Bytes = [u8; 4];
    fn wire_bytes(value: f32) -> [u8; 4] {
        value.to_be_bytes()
    }
}

impl WireNumber for Float64Type {
    const SIZE: i32 = 8;
    type Bytes = [u8; 8];
    fn wire_bytes(value: f64) -> [u8; 8] {
        value.to_be_bytes()
    }
}

const NULL: i32 = -1;

fn write_integer<T>(
    array: &PrimitiveArray<T>,
    format: FieldFormat,
    row: usize,
    buffer: &mut BytesMut,
) -> PgWireResult<()>
where
    T: WireNumber,
    T::Native: itoa::Integer,
{
    if array.is_null(row) {
        buffer.put_i32(NULL);
        return Ok(());
    }
    let value = array.value(row);
    match format {
        FieldFormat::Binary => {
            buffer.put_i32(T::SIZE);
            buffer.put_slice(T::wire_bytes(value).as_ref());
        }
        FieldFormat::Text => {
            let mut digits = itoa::Buffer::new();
            let text = digits.format(value);
            // At most 20 characters.
            buffer.put_i32(text.len() as i32);
            buffer.put_slice(text.as_bytes());
        }
    }
    Ok(())
}

fn write_float<T>(
    array: &PrimitiveArray<T>,
    floats: Floats,
    row: usize,
    buffer: &mut BytesMut,
) -> PgWireResult<()>
where
    T: WireNumber,
    T::Native: ToSqlText,
{
    if array.is_null(row) {
        buffer.put_i32(NULL);
        return Ok(());
    }
    let value = array.value(row);
    match floats {
        Floats::Binary => {
            buffer.put_i32(T::SIZE);
            buffer.put_slice(T::wire_bytes(value).as_ref());
            Ok(())
        }
        Floats::Text(pg_type, options) => {
            let start = buffer.len();
            buffer.put_i32(NULL);
            value
                .to_sql_text(pg_type, buffer, options)
                .map_err(PgWireError::ApiError)?;
            patch_length(buffer, start)
        }
    }
}

fn write_bytes<'v, V: AsRef<[u8]> + ?Sized + 'v>(
    array: &dyn Array,
    row: usize,
    buffer: &mut BytesMut,
    value: impl FnOnce(usize) -> &'v V,
) -> PgWireResult<()> {
    if array.is_null(row) {
        buffer.put_i32(NULL);
        return Ok(());
    }
    let bytes = value(row).as_ref();
    buffer.put_i32(field_length(bytes.len())?);
    buffer.put_slice(bytes);
    Ok(())
}

/// Writes the length of the field that starts at `start` (its length placeholder) and runs to
/// the end of `buffer`.
fn patch_length(buffer: &mut BytesMut, start: usize) -> PgWireResult<()> {
    let length = field_length(buffer.len() - start - 4)?;
    buffer[start..start + 4].copy_from_slice(&length.to_be_bytes());
    Ok(())
}

fn field_length(length: usize) -> PgWireResult<i32> {
    i32::try_from(length).map_err(|_| {
        PgWireError::ApiError(
            format!("a value of {length} bytes is over Postgres' 1 GB field limit").into(),
        )
    })
}

/// A list column of numbers, sent as a one-dimensional Postgres array (lower bound 1).
struct NumberList<'a, T: ArrowPrimitiveType> {
    lists: &'a ListArray,
    values: &'a PrimitiveArray<T>,
    element: Type,
}

impl<'a, T: WireNumber> NumberList<'a, T> {
    fn of(array: &'a ArrayRef, element: Type) -> Option<Self> {
        let lists = array.as_list_opt::<i32>()?;
        let values = lists.values().as_primitive_opt::<T>()?;
        Some(NumberList {
            lists,
            values,
            element,
        })
    }

    /// The array header (20 bytes) of each row and every element's length and bytes.
    fn estimated_size(&self, rows: usize) -> usize {
        const HEADER: usize = 20;
        let elements = offsets_span(self.lists.value_offsets());
        rows * HEADER + elements * (4 + T::SIZE as usize)
    }

    fn write(&self, row: usize, buffer: &mut BytesMut) -> PgWireResult<()> {
        if self.lists.is_null(row) {
            buffer.put_i32(NULL);
            return Ok(());
        }
        let offsets = self.lists.value_offsets();
        // Offsets of a valid ListArray are non-negative and ascending.
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        let has_nulls =
            self.values.null_count() > 0 && (start..end).any(|index| self.values.is_null(index));
        let length_at = buffer.len();
        buffer.put_i32(NULL);
        // Dimensions, flags, element type, then the one dimension's length and lower bound.
        buffer.put_i32(1);
        buffer.put_i32(i32::from(has_nulls));
        buffer.put_u32(self.element.oid());
        buffer.put_i32(field_length(end - start)?);
        buffer.put_i32(1);
        let values = &self.values.values()[start..end];
        if has_nulls {
            for (index, value) in (start..end).zip(values) {
                if self.values.is_null(index) {
                    buffer.put_i32(NULL);
                } else {
                    buffer.put_i32(T::SIZE);
                    buffer.put_slice(T::wire_bytes(*value).as_ref());
                }
            }
        } else {
            // Every element is its length and its bytes: sized once and filled in place, which
            // compiles to a loop without a capacity check per element (vectors are most of a
            // wide result's bytes).
            let element_length = T::SIZE.to_be_bytes();
            let stride = element_length.len() + T::SIZE as usize;
            let first = buffer.len();
            buffer.resize(first + values.len() * stride, 0);
            for (slot, value) in buffer[first..].chunks_exact_mut(stride).zip(values) {
                let (length, bytes) = slot.split_at_mut(element_length.len());
                length.copy_from_slice(&element_length);
                bytes.copy_from_slice(T::wire_bytes(*value).as_ref());
            }
        }
        patch_length(buffer, length_at)
    }
}

/// arrow-pg's encoders writing one field into our buffer, in the field's format.
struct FieldWriter<'b>(&'b mut BytesMut);

impl Encoder for FieldWriter<'_> {
    type Item = ();

    fn encode_field<T>(&mut self, value: &T, pg_field: &FieldInfo) -> PgWireResult<()>
    where
        T: ToSql + ToSqlText + Sized,
    {
        let start = self.0.len();
        self.0.put_i32(NULL);
        let written = match pg_field.format() {
            FieldFormat::Text => {
                value.to_sql_text(pg_field.datatype(), self.0, pg_field.format_options())
            }
            FieldFormat::Binary => value.to_sql(pg_field.datatype(), self.0),
        }
        .map_err(PgWireError::ApiError)?;
        if let IsNull::No = written {
            patch_length(self.0, start)?;
        }
        Ok(())
    }

    fn take_row(&mut self) {}
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        Date32Array, Decimal128Array, Float32Array, Float64Array, Int8Array, Int16Array,
        Int32Array, Int64Array, ListBuilder, PrimitiveBuilder, TimestampMicrosecondArray,
        UInt64Array,
    };
    use datafusion::arrow::datatypes::Schema;
    use datafusion_postgres::arrow_pg::datatypes::encode_recordbatch;
    use datafusion_postgres::pgwire::api::portal::Format;
    use datafusion_postgres::pgwire::api::results::CopyEncoder;

    use super::*;
    use crate::pgwire::wire_types::pg_fields;

    fn number_lists<T: ArrowPrimitiveType>(rows: &[Option<Vec<Option<T::Native>>>]) -> ArrayRef {
        let mut builder = ListBuilder::new(PrimitiveBuilder::<T>::new());
        for row in rows {
            match row {
                Some(values) => {
                    for value in values {
                        builder.values().append_option(*value);
                    }
                    builder.append(true);
                }
                None => builder.append(false),
            }
        }
        Arc::new(builder.finish())
    }

    /// A batch with every type encoded here, NULLs, empty values and arrays with NULL members,
    /// beside types arrow-pg encodes.
    fn every_type() -> RecordBatch {
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "bool",
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    None,
                    Some(false),
                    Some(true),
                ])),
            ),
            (
                "i8",
                Arc::new(Int8Array::from(vec![Some(-8), None, Some(0), Some(127)])),
            ),
            (
                "i16",
                Arc::new(Int16Array::from(vec![
                    Some(-300),
                    None,
                    Some(0),
                    Some(i16::MAX),
                ])),
            ),
            (
                "i32",
                Arc::new(Int32Array::from(vec![
                    Some(i32::MIN),
                    None,
                    Some(0),
                    Some(7),
                ])),
            ),
            (
                "i64",
                Arc::new(Int64Array::from(vec![
                    Some(i64::MAX),
                    None,
                    Some(-1),
                    Some(7),
                ])),
            ),
            (
                "u64",
                Arc::new(UInt64Array::from(vec![
                    Some(u64::MAX),
                    None,
                    Some(0),
                    Some(7),
                ])),
            ),
            (
                "f32",
                Arc::new(Float32Array::from(vec![
                    Some(1.5),
                    None,
                    Some(f32::NAN),
                    Some(-0.0),
                ])),
            ),
            (
                "f64",
                Arc::new(Float64Array::from(vec![
                    Some(1e300),
                    None,
                    Some(f64::INFINITY),
                    Some(0.1),
                ])),
            ),
            (
                "utf8",
                Arc::new(StringArray::from(vec![
                    Some("héllo"),
                    None,
                    Some(""),
                    Some("x"),
                ])),
            ),
            (
                "large_utf8",
                Arc::new(LargeStringArray::from(vec![
                    Some("a"),
                    None,
                    Some(""),
                    Some("b"),
                ])),
            ),
            (
                "utf8_view",
                Arc::new(StringViewArray::from(vec![
                    Some("a string longer than twelve bytes"),
                    None,
                    Some(""),
                    Some("z"),
                ])),
            ),
            (
                "binary",
                Arc::new(BinaryArray::from(vec![
                    Some(&b"\x00\xff"[..]),
                    None,
                    Some(&b""[..]),
                    Some(&b"b"[..]),
                ])),
            ),
            (
                "large_binary",
                Arc::new(LargeBinaryArray::from(vec![
                    Some(&b"\x01"[..]),
                    None,
                    Some(&b""[..]),
                    Some(&b"c"[..]),
                ])),
            ),
            (
                "binary_view",
                Arc::new(BinaryViewArray::from(vec![
                    Some(&b"\x02"[..]),
                    None,
                    Some(&b""[..]),
                    Some(&b"d"[..]),
                ])),
            ),
            (
                "f32_list",
                number_lists::<Float32Type>(&[
                    Some(vec![Some(1.0), Some(-2.5)]),
                    None,
                    Some(vec![]),
                    Some(vec![Some(3.0), None]),
                ]),
            ),
            (
                "f64_list",
                number_lists::<Float64Type>(&[
                    Some(vec![Some(1.0)]),
                    None,
                    Some(vec![]),
                    Some(vec![None, Some(4.0)]),
                ]),
            ),
            (
                "i16_list",
                number_lists::<Int16Type>(&[
                    Some(vec![Some(1)]),
                    None,
                    Some(vec![]),
                    Some(vec![None]),
                ]),
            ),
            (
                "i32_list",
                number_lists::<Int32Type>(&[
                    Some(vec![Some(1), Some(2)]),
                    None,
                    Some(vec![]),
                    Some(vec![Some(3)]),
                ]),
            ),
            (
                "i64_list",
                number_lists::<Int64Type>(&[
                    Some(vec![Some(i64::MIN)]),
                    None,
                    Some(vec![]),
                    Some(vec![Some(3), None]),
                ]),
            ),
            (
                "date",
                Arc::new(Date32Array::from(vec![
                    Some(19000),
                    None,
                    Some(0),
                    Some(-1),
                ])),
            ),
            (
                "timestamp",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![
                        Some(1),
                        None,
                        Some(0),
                        Some(1_700_000_000_000_000),
                    ])
                    .with_timezone("UTC"),
                ),
            ),
            (
                "decimal",
                Arc::new(
                    Decimal128Array::from(vec![Some(12345), None, Some(0), Some(-5)])
                        .with_precision_and_scale(10, 2)
                        .expect("a decimal type"),
                ),
            ),
        ];
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        RecordBatch::try_new(
            schema,
            columns.into_iter().map(|(_, array)| array).collect(),
        )
        .expect("a batch")
    }

    #[test]
    fn copy_tuples_are_the_bytes_arrow_pg_writes_for_every_type() {
        let batch = every_type();
        let fields = pg_fields(&batch.schema(), &Format::UnifiedBinary, None).expect("fields");
        let ours = copy_tuples(&batch, &fields).expect("encoded");
        assert_eq!(ours.len(), batch.num_rows());
        let mut theirs = CopyEncoder::new_binary(Arc::new(fields.clone()));
        let schema = batch.schema();
        for (row, tuple) in ours.iter().enumerate() {
            for ((array, arrow_field), pg_field) in
                batch.columns().iter().zip(schema.fields()).zip(&fields)
            {
                encode_value(&mut theirs, array, row, arrow_field, pg_field).expect("arrow-pg");
            }
            let expected = theirs.take_copy().data;
            // pgwire's encoder puts the COPY header before the first row.
            let expected = if row == 0 {
                expected.slice(19..)
            } else {
                expected
            };
            assert_eq!(tuple, &expected, "row {row}");
        }
    }

    #[test]
    fn a_slice_of_a_batch_encodes_as_the_same_rows_of_the_whole() {
        let batch = every_type();
        let fields = pg_fields(&batch.schema(), &Format::UnifiedBinary, None).expect("fields");
        let whole = copy_tuples(&batch, &fields).expect("encoded");
        let slice = copy_tuples(&batch.slice(1, 3), &fields).expect("encoded");
        assert_eq!(slice, whole[1..4]);
    }

    #[test]
    fn data_rows_are_the_rows_arrow_pg_writes_for_every_type_in_both_formats() {
        let batch = every_type();
        let options = Arc::new(FormatOptions::default());
        for format in [Format::UnifiedText, Format::UnifiedBinary] {
            let fields =
                pg_fields(&batch.schema(), &format, Some(options.clone())).expect("fields");
            let ours = data_rows(&batch, &fields).expect("encoded");
            let theirs: Vec<DataRow> = encode_recordbatch(Arc::new(fields), batch.clone())
                .collect::<PgWireResult<_>>()
                .expect("arrow-pg");
            assert_eq!(ours.len(), theirs.len());
            for (row, (ours, theirs)) in ours.iter().zip(&theirs).enumerate() {
                assert_eq!(ours, theirs, "{format:?} row {row}");
            }
        }
    }

    #[test]
    fn the_common_types_are_encoded_here_and_the_rest_by_arrow_pg() {
        let batch = every_type();
        let schema = batch.schema();
        let ours_in = |format: Format| -> Vec<String> {
            let fields = pg_fields(&schema, &format, None).expect("fields");
            batch
                .columns()
                .iter()
                .zip(schema.fields())
                .zip(&fields)
                .filter(|((array, arrow_field), pg_field)| {
                    !matches!(
                        Column::of(array, arrow_field, pg_field),
                        Column::Other { .. }
                    )
                })
                .map(|((_, arrow_field), _)| arrow_field.name().clone())
                .collect()
        };
        assert_eq!(
            ours_in(Format::UnifiedBinary),
            [
                "bool",
                "i16",
                "i32",
                "i64",
                "f32",
                "f64",
                "utf8",
                "large_utf8",
                "utf8_view",
                "binary",
                "large_binary",
                "binary_view",
                "f32_list",
                "f64_list",
                "i16_list",
                "i32_list",
                "i64_list"
            ]
        );
        assert_eq!(
            ours_in(Format::UnifiedText),
            [
                "bool",
                "i16",
                "i32",
                "i64",
                "f32",
                "f64",
                "utf8",
                "large_utf8",
                "utf8_view"
            ]
        );
    }
}
