//! Postgres' binary COPY format, read.
//!
//! The data is a signature and header, tuples of length-prefixed fields (each value in its
//! type's binary wire encoding, length -1 for NULL), and a trailer of -1. Values are decoded
//! into the family of their column's type ([`WireType`]: integers of any width, floats, text,
//! bytea, dates, timestamps, numeric, one-dimensional arrays) and the finished columns are cast
//! to the exact Arrow types, so an integer too large for its column fails the COPY instead of
//! wrapping, and a `float4[]` loads into a fixed-size vector column.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;

use crate::engine::copy::cast_column;
use crate::error::{Error, Result};

/// The binary COPY signature: `PGCOPY\n\377\r\n\0`.
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (Postgres').
const POSTGRES_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The binary encoding a column's values arrive in, by its Arrow type's family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireType {
    Bool,
    /// `int2`, `int4` or `int8`, told apart by length.
    Integer,
    /// `float4` or `float8`, told apart by length.
    Float,
    Text,
    Bytes,
    Date,
    Timestamp(Option<Arc<str>>),
    /// `numeric` (decimals, and unsigned 64-bit integers, which do not fit `int8`).
    Numeric,
    /// A one-dimensional array of the element encoding.
    Array(Box<WireType>),
}

impl WireType {
    /// The encoding of values for a column of `data_type`; an error names types binary COPY
    /// cannot load.
    pub fn of(column: &str, data_type: &DataType) -> Result<WireType> {
        Ok(match data_type {
            DataType::Boolean => WireType::Bool,
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32 => WireType::Integer,
            DataType::UInt64 | DataType::Decimal128(..) | DataType::Decimal256(..) => {
                WireType::Numeric
            }
            DataType::Float16 | DataType::Float32 | DataType::Float64 => WireType::Float,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => WireType::Text,
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => WireType::Bytes,
            DataType::Date32 | DataType::Date64 => WireType::Date,
            DataType::Timestamp(_, zone) => WireType::Timestamp(zone.clone()),
            DataType::Dictionary(_, values) => WireType::of(column, values)?,
            DataType::List(element)
            | DataType::LargeList(element)
            | DataType::FixedSizeList(element, _) => {
                match WireType::of(column, element.data_type())? {
                    WireType::Array(_) => return Err(unloadable(column, data_type)),
                    element => WireType::Array(Box::new(element)),
                }
            }
            other => return Err(unloadable(column, other)),
        })
    }

    /// The Arrow type values are decoded to, before the column is cast to its own type.
    fn decoded_type(&self) -> DataType {
        match self {
            WireType::Bool => DataType::Boolean,
            WireType::Integer => DataType::Int64,
            WireType::Float => DataType::Float64,
            WireType::Text | WireType::Numeric => DataType::Utf8,
            WireType::Bytes => DataType::Binary,
            WireType::Date => DataType::Date32,
            WireType::Timestamp(zone) => DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
            WireType::Array(element) => {
                DataType::List(Arc::new(Field::new("item", element.decoded_type(), true)))
            }
        }
    }

    fn decode(&self, bytes: &[u8]) -> std::result::Result<ScalarValue, String> {
        Ok(match self {
            WireType::Bool => match bytes {
                [flag] => ScalarValue::Boolean(Some(*flag != 0)),
                _ => return Err(wrong_length("bool", bytes)),
            },
            WireType::Integer => ScalarValue::Int64(Some(match bytes.len() {
                2 => i64::from(i16::from_be_bytes(fixed(bytes)?)),
                4 => i64::from(i32::from_be_bytes(fixed(bytes)?)),
                8 => i64::from_be_bytes(fixed(bytes)?),
                _ => return Err(wrong_length("integer", bytes)),
            })),
            WireType::Float => ScalarValue::Float64(Some(match bytes.len() {
                4 => f64::from(f32::from_be_bytes(fixed(bytes)?)),
                8 => f64::from_be_bytes(fixed(bytes)?),
                _ => return Err(wrong_length("float", bytes)),
            })),
            WireType::Text => ScalarValue::Utf8(Some(
                String::from_utf8(bytes.to_vec()).map_err(|_| "text is not UTF-8".to_string())?,
            )),
            WireType::Bytes => ScalarValue::Binary(Some(bytes.to_vec())),
            WireType::Date => {
                let days = i32::from_be_bytes(fixed(bytes)?);
                ScalarValue::Date32(Some(days.checked_add(POSTGRES_EPOCH_DAYS).ok_or_else(
                    || "infinite or out-of-range dates cannot be loaded".to_string(),
                )?))
            }
            WireType::Timestamp(zone) => {
                let micros = i64::from_be_bytes(fixed(bytes)?);
                let micros = micros.checked_add(POSTGRES_EPOCH_MICROS).ok_or_else(|| {
                    "infinite or out-of-range timestamps cannot be loaded".to_string()
                })?;
                ScalarValue::TimestampMicrosecond(Some(micros), zone.clone())
            }
            WireType::Numeric => ScalarValue::Utf8(Some(numeric_text(bytes)?)),
            WireType::Array(element) => {
                let values = array_elements(bytes, element)?;
                ScalarValue::List(ScalarValue::new_list_nullable(
                    &values,
                    &element.decoded_type(),
                ))
            }
        })
    }
}

fn unloadable(column: &str, data_type: &DataType) -> Error {
    Error::Unsupported {
        what: format!(
            "binary COPY into column '{column}' of type {data_type}: use text or CSV COPY for it"
        ),
    }
}

fn wrong_length(what: &str, bytes: &[u8]) -> String {
    format!("a binary {what} of {} bytes", bytes.len())
}

fn fixed<const N: usize>(bytes: &[u8]) -> std::result::Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("a value of {} bytes where {N} were expected", bytes.len()))
}

/// Reads a big-endian `i32` at `*at`, moving past it.
fn read_i32(bytes: &[u8], at: &mut usize) -> Option<i32> {
    let value = i32::from_be_bytes(bytes.get(*at..*at + 4)?.try_into().ok()?);
    *at += 4;
    Some(value)
}

/// Reads a big-endian `i16` at `*at`, moving past it.
fn read_i16(bytes: &[u8], at: &mut usize) -> Option<i16> {
    let value = i16::from_be_bytes(bytes.get(*at..*at + 2)?.try_into().ok()?);
    *at += 2;
    Some(value)
}

/// The elements of a binary array: dimensions, then length-prefixed elements.
fn array_elements(
    bytes: &[u8],
    element: &WireType,
) -> std::result::Result<Vec<ScalarValue>, String> {
    let truncated = || "a truncated binary array".to_string();
    let mut at = 0;
    let dimensions = read_i32(bytes, &mut at).ok_or_else(truncated)?;
    // The null flag and the element type's OID: the column decides how elements decode.
    at += 8;
    let length = match dimensions {
        0 => 0,
        1 => {
            let length = read_i32(bytes, &mut at).ok_or_else(truncated)?;
            at += 4;
            usize::try_from(length).map_err(|_| "a negative array length".to_string())?
        }
        _ => {
            return Err(format!(
                "a {dimensions}-dimensional array (only one is loaded)"
            ));
        }
    };
    let null = element.decoded_type();
    let mut values = Vec::with_capacity(length.min(bytes.len()));
    for _ in 0..length {
        let size = read_i32(bytes, &mut at).ok_or_else(truncated)?;
        if size < 0 {
            values.push(ScalarValue::try_from(&null).map_err(|error| error.to_string())?);
            continue;
        }
        let end = at + usize::try_from(size).map_err(|_| truncated())?;
        let value = bytes.get(at..end).ok_or_else(truncated)?;
        values.push(element.decode(value)?);
        at = end;
    }
    Ok(values)
}

/// A binary `numeric` as decimal text (base-10000 digits, a weight, a sign and a scale).
fn numeric_text(bytes: &[u8]) -> std::result::Result<String, String> {
    let truncated = || "a truncated binary numeric".to_string();
    let mut at = 0;
    let count = read_i16(bytes, &mut at).ok_or_else(truncated)?;
    let weight = i32::from(read_i16(bytes, &mut at).ok_or_else(truncated)?);
    let sign = read_i16(bytes, &mut at).ok_or_else(truncated)? as u16;
    let scale = usize::try_from(read_i16(bytes, &mut at).ok_or_else(truncated)?)
        .map_err(|_| "a negative numeric scale".to_string())?;
    let digits = (0..count)
        .map(|_| read_i16(bytes, &mut at).ok_or_else(truncated))
        .collect::<std::result::Result<Vec<i16>, String>>()?;
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        _ => return Err("NaN and infinite numerics cannot be loaded".into()),
    };
    // The digit worth 10000^power.
    let digit = |power: i32| -> i16 {
        usize::try_from(weight - power)
            .ok()
            .and_then(|index| digits.get(index).copied())
            .unwrap_or(0)
    };
    let mut text = String::new();
    if negative {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        text.push_str(&digit(weight).to_string());
        for power in (0..weight).rev() {
            text.push_str(&format!("{:04}", digit(power)));
        }
    }
    if scale > 0 {
        let mut fraction = String::new();
        let mut power = -1;
        while fraction.len() < scale {
            fraction.push_str(&format!("{:04}", digit(power)));
            power -= 1;
        }
        fraction.truncate(scale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

/// Turns binary COPY data, as it arrives in pieces, into record batches of the target columns.
pub struct BinaryDecoder {
    schema: SchemaRef,
    /// Each column's encoding, or why it cannot be loaded (reported at its first value).
    wire: Vec<std::result::Result<WireType, String>>,
    /// Decoded values of the rows not yet in a batch, column by column.
    columns: Vec<Vec<ScalarValue>>,
    header_read: bool,
    ended: bool,
    tuples: usize,
}

impl BinaryDecoder {
    pub fn new(schema: SchemaRef) -> Self {
        let wire = schema
            .fields()
            .iter()
            .map(|field| {
                WireType::of(field.name(), field.data_type()).map_err(|error| error.to_string())
            })
            .collect();
        let columns = vec![Vec::new(); schema.fields().len()];
        BinaryDecoder {
            schema,
            wire,
            columns,
            header_read: false,
            ended: false,
            tuples: 0,
        }
    }

    /// Rows decoded and not yet taken into a batch.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }

    /// Decodes the complete tuples at the start of `bytes`; returns how many bytes they took.
    pub fn decode(&mut self, bytes: &[u8]) -> Result<usize> {
        let mut used = 0;
        if !self.header_read {
            let Some(after) = header_end(bytes)? else {
                return Ok(0);
            };
            self.header_read = true;
            used = after;
        }
        while !self.ended {
            let mut at = used;
            let Some(count) = read_i16(bytes, &mut at) else {
                break;
            };
            if count == -1 {
                self.ended = true;
                used = at;
                break;
            }
            if usize::try_from(count).ok() != Some(self.schema.fields().len()) {
                return Err(Error::invalid(format!(
                    "COPY row {}: {count} fields, but the COPY names {} columns",
                    self.tuples + 1,
                    self.schema.fields().len()
                )));
            }
            let mut fields = Vec::with_capacity(self.columns.len());
            let mut complete = true;
            for _ in 0..count {
                let Some(size) = read_i32(bytes, &mut at) else {
                    complete = false;
                    break;
                };
                let Ok(size) = usize::try_from(size) else {
                    fields.push(None);
                    continue;
                };
                let Some(value) = bytes.get(at..at + size) else {
                    complete = false;
                    break;
                };
                fields.push(Some(value));
                at += size;
            }
            if !complete {
                break;
            }
            self.tuples += 1;
            self.take_tuple(&fields)?;
            used = at;
        }
        // After the trailer nothing more is read, as in Postgres.
        if self.ended {
            used = bytes.len();
        }
        Ok(used)
    }

    fn take_tuple(&mut self, fields: &[Option<&[u8]>]) -> Result<()> {
        for (column, value) in fields.iter().enumerate() {
            let field = self.schema.field(column);
            let decoded = match value {
                None if !field.is_nullable() => {
                    return Err(Error::invalid(format!(
                        "COPY column '{}' cannot be NULL",
                        field.name()
                    )));
                }
                None => self.wire[column]
                    .as_ref()
                    .map_err(|reason| Error::invalid(reason.clone()))
                    .and_then(|wire| Ok(ScalarValue::try_from(&wire.decoded_type())?)),
                Some(bytes) => match &self.wire[column] {
                    Ok(wire) => wire.decode(bytes).map_err(|reason| {
                        Error::invalid(format!(
                            "COPY row {}, column '{}': {reason}",
                            self.tuples,
                            field.name()
                        ))
                    }),
                    Err(reason) => Err(Error::Unsupported {
                        what: reason.clone(),
                    }),
                },
            }?;
            self.columns[column].push(decoded);
        }
        Ok(())
    }

    /// The data ended: an error if it stopped inside the header or a tuple (`leftover` bytes).
    pub fn check_end(&self, leftover: usize) -> Result<()> {
        if leftover > 0 {
            return Err(Error::invalid(format!(
                "binary COPY data ended inside {}",
                if self.header_read {
                    format!("row {}", self.tuples + 1)
                } else {
                    "its header".to_string()
                }
            )));
        }
        Ok(())
    }

    /// The first `rows` decoded rows as a batch of the target columns.
    pub fn batch(&mut self, rows: usize) -> Result<RecordBatch> {
        let columns = self
            .columns
            .iter_mut()
            .zip(self.schema.fields())
            .map(|(values, field)| {
                let taken: Vec<ScalarValue> = values.drain(..rows).collect();
                let decoded: ArrayRef = if taken.is_empty() {
                    arrow::array::new_empty_array(field.data_type())
                } else {
                    ScalarValue::iter_to_array(taken)?
                };
                cast_column(&decoded, field)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

/// Where the header ends, once all of it has arrived; an error if it is not binary COPY's.
fn header_end(bytes: &[u8]) -> Result<Option<usize>> {
    let seen = bytes.len().min(SIGNATURE.len());
    if bytes[..seen] != SIGNATURE[..seen] {
        return Err(Error::invalid(
            "COPY data is not in binary COPY format (its signature is missing)",
        ));
    }
    let mut at = SIGNATURE.len();
    let (Some(_flags), Some(extension)) = (read_i32(bytes, &mut at), read_i32(bytes, &mut at))
    else {
        return Ok(None);
    };
    let extension = usize::try_from(extension)
        .map_err(|_| Error::invalid("binary COPY header with a negative extension length"))?;
    Ok((bytes.len() >= at + extension).then_some(at + extension))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float32Type, Int32Type, Schema};

    use super::*;

    fn field(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as i32).to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    fn float4_array(values: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [1i32, 0, 700, values.len() as i32, 1] {
            out.extend_from_slice(&part.to_be_bytes());
        }
        for value in values {
            out.extend(field(&value.to_be_bytes()));
        }
        out
    }

    fn data(rows: &[Vec<Option<Vec<u8>>>]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&[0; 8]);
        for row in rows {
            out.extend_from_slice(&(row.len() as i16).to_be_bytes());
            for value in row {
                match value {
                    Some(bytes) => out.extend(field(bytes)),
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    fn schema() -> SchemaRef {
        let vector = Field::new("item", DataType::Float32, true);
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int32, false),
            Field::new("price", DataType::Decimal128(10, 2), true),
            Field::new(
                "embedding",
                DataType::FixedSizeList(Arc::new(vector), 2),
                true,
            ),
        ]))
    }

    /// -12.5 as a binary numeric: one digit group 12 at weight 0, then 5000 at weight -1.
    fn numeric_minus_12_5() -> Vec<u8> {
        [2i16, 0, 0x4000, 1, 12, 5000]
            .iter()
            .flat_map(|part| part.to_be_bytes())
            .collect()
    }

    fn decode_in_pieces(bytes: &[u8], piece: usize) -> Result<RecordBatch> {
        let mut decoder = BinaryDecoder::new(schema());
        let mut pending = Vec::new();
        for chunk in bytes.chunks(piece) {
            pending.extend_from_slice(chunk);
            let used = decoder.decode(&pending)?;
            pending.drain(..used);
        }
        decoder.check_end(pending.len())?;
        let rows = decoder.rows();
        decoder.batch(rows)
    }

    #[test]
    fn tuples_split_anywhere_decode_into_the_column_types() {
        let bytes = data(&[
            vec![
                Some(7i32.to_be_bytes().to_vec()),
                Some(numeric_minus_12_5()),
                Some(float4_array(&[0.5, -1.0])),
            ],
            vec![Some(8i64.to_be_bytes().to_vec()), None, None],
        ]);
        for piece in [1, 3, 7, bytes.len()] {
            let batch = decode_in_pieces(&bytes, piece).expect("decodes");
            assert_eq!(batch.num_rows(), 2);
            let ids = batch.column(0).as_primitive::<Int32Type>();
            assert_eq!(ids.values().to_vec(), vec![7, 8]);
            let price = batch
                .column(1)
                .as_primitive::<arrow::datatypes::Decimal128Type>();
            assert_eq!(price.value(0), -1250);
            assert!(price.is_null(1));
            let vectors = batch.column(2).as_fixed_size_list();
            let first = vectors.value(0);
            assert_eq!(
                first.as_primitive::<Float32Type>().values().to_vec(),
                vec![0.5, -1.0]
            );
            assert!(vectors.is_null(1));
        }
    }

    #[test]
    fn bad_data_fails_with_what_was_wrong() {
        let overflow = data(&[vec![Some(i64::MAX.to_be_bytes().to_vec()), None, None]]);
        assert!(decode_in_pieces(&overflow, 5).is_err());
        let null_id = data(&[vec![None, None, None]]);
        let error = decode_in_pieces(&null_id, 5).expect_err("id is not nullable");
        assert!(error.to_string().contains("'id' cannot be NULL"), "{error}");
        let wrong_vector = data(&[vec![
            Some(1i32.to_be_bytes().to_vec()),
            None,
            Some(float4_array(&[1.0, 2.0, 3.0])),
        ]]);
        assert!(decode_in_pieces(&wrong_vector, 5).is_err());
        let text = b"1\t2\t3\n".to_vec();
        let error = decode_in_pieces(&text, 5).expect_err("not binary");
        assert!(error.to_string().contains("signature"), "{error}");
        let mut cut = data(&[vec![Some(1i32.to_be_bytes().to_vec()), None, None]]);
        cut.truncate(cut.len() - 4);
        let error = decode_in_pieces(&cut, 5).expect_err("cut short");
        assert!(error.to_string().contains("ended inside row 1"), "{error}");
    }

    #[test]
    fn numerics_keep_their_digits() {
        let encode = |parts: &[i16]| -> Vec<u8> {
            parts.iter().flat_map(|part| part.to_be_bytes()).collect()
        };
        // 10000.0001: groups 1, 0000 at weights 1, 0, then 0001 at -1; scale 4.
        assert_eq!(
            numeric_text(&encode(&[3, 1, 0, 4, 1, 0, 1])).as_deref(),
            Ok("10000.0001")
        );
        // 0.00012: groups 0001 and 2000 at weights -1 and -2, scale 5.
        assert_eq!(
            numeric_text(&encode(&[2, -1, 0, 5, 1, 2000])).as_deref(),
            Ok("0.00012")
        );
        // 0.00000001: one group 0001 at weight -2 (the first fraction group is zero).
        assert_eq!(
            numeric_text(&encode(&[1, -2, 0, 8, 1])).as_deref(),
            Ok("0.00000001")
        );
        assert_eq!(numeric_text(&encode(&[0, 0, 0, 0])).as_deref(), Ok("0"));
    }
}
