//! Vector distance functions: `l2_distance(a, b)`, `cosine_distance(a, b)`, `dot_distance(a, b)`
//! and `hamming_distance(a, b)`, ordinary scalar functions over two vectors.
//!
//! Contract: each computes the distance Lance's vector search reports as `_distance` for the
//! metric of the same name, so a query can compare, sort or filter by it and get the values a
//! search would: `l2` is the *squared* Euclidean distance, `cosine` is `1 - cos(a, b)`, `dot` is
//! `1 - a·b`, `hamming` counts differing bits of packed `uint8` vectors. Arguments are vectors
//! (fixed-size lists, lists or array literals) of numbers; a NULL vector gives NULL; vectors of
//! different lengths, or NULL elements, are an error naming both lengths or the row.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Float64Builder};
use arrow::datatypes::{DataType, Field, Float64Type, UInt8Type};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::error::Error;
use crate::physical::search::Metric;

/// The distance functions, one per metric.
pub fn all() -> Vec<ScalarUDF> {
    Metric::ALL
        .iter()
        .map(|(_, metric)| ScalarUDF::new_from_impl(Distance::new(*metric)))
        .collect()
}

/// The SQL name of `metric`'s distance function.
pub fn function_name(metric: Metric) -> String {
    format!("{}_distance", metric.name())
}

/// The metric of `function` when it is one of these distance functions (by implementation, not
/// by name: a function registered under the same name elsewhere is not one).
pub fn metric_of(function: &ScalarUDF) -> Option<Metric> {
    function
        .inner()
        .downcast_ref::<Distance>()
        .map(|distance| distance.metric)
}

/// A bad argument, reported as the user's error (not an internal one).
fn refused<T>(message: String) -> DFResult<T> {
    Err(DataFusionError::from(Error::invalid(message)))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Distance {
    metric: Metric,
    name: String,
    signature: Signature,
}

impl Distance {
    fn new(metric: Metric) -> Self {
        Distance {
            metric,
            name: function_name(metric),
            signature: Signature::any(2, Volatility::Immutable),
        }
    }

    /// The element type both arguments are converted to.
    fn element(&self) -> DataType {
        match self.metric {
            Metric::Hamming => DataType::UInt8,
            Metric::L2 | Metric::Cosine | Metric::Dot => DataType::Float64,
        }
    }

    fn distance(&self, a: &ArrayRef, b: &ArrayRef) -> f64 {
        let floats = |v: &ArrayRef| v.as_primitive::<Float64Type>().values().clone();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        match self.metric {
            Metric::Hamming => {
                let (a, b) = (
                    a.as_primitive::<UInt8Type>().values(),
                    b.as_primitive::<UInt8Type>().values(),
                );
                a.iter()
                    .zip(b.iter())
                    .map(|(x, y)| f64::from((x ^ y).count_ones()))
                    .sum()
            }
            Metric::L2 => {
                let (a, b) = (floats(a), floats(b));
                a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum()
            }
            Metric::Dot => 1.0 - dot(&floats(a), &floats(b)),
            Metric::Cosine => {
                let (a, b) = (floats(a), floats(b));
                let denominator = dot(&a, &a).sqrt() * dot(&b, &b).sqrt();
                if denominator == 0.0 {
                    // Lance's cosine distance of a zero vector.
                    1.0
                } else {
                    1.0 - dot(&a, &b) / denominator
                }
            }
        }
    }
}

impl ScalarUDFImpl for Distance {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arguments: &[DataType]) -> DFResult<DataType> {
        for (position, data_type) in arguments.iter().enumerate() {
            let element = match data_type {
                DataType::List(item)
                | DataType::LargeList(item)
                | DataType::FixedSizeList(item, _) => item.data_type(),
                DataType::Null => continue,
                other => {
                    return refused(format!(
                        "{}: argument {} must be a vector (an array of numbers), got {other}",
                        self.name,
                        position + 1
                    ));
                }
            };
            if !element.is_numeric() && *element != DataType::Null {
                return refused(format!(
                    "{}: argument {} must be a vector of numbers, got an array of {element}",
                    self.name,
                    position + 1
                ));
            }
        }
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [left, right] = arrays.as_slice() else {
            return refused(format!("{} takes 2 arguments", self.name));
        };
        let list = DataType::List(Arc::new(Field::new_list_field(self.element(), true)));
        let left = arrow::compute::cast(left, &list)?;
        let right = arrow::compute::cast(right, &list)?;
        let (left, right) = (left.as_list::<i32>(), right.as_list::<i32>());
        let mut distances = Float64Builder::with_capacity(rows);
        for row in 0..rows {
            if left.is_null(row) || right.is_null(row) {
                distances.append_null();
                continue;
            }
            let (a, b) = (left.value(row), right.value(row));
            if a.len() != b.len() {
                return refused(format!(
                    "{}: the vectors have different lengths ({} and {}) in row {}",
                    self.name,
                    a.len(),
                    b.len(),
                    row + 1
                ));
            }
            if a.null_count() > 0 || b.null_count() > 0 {
                return refused(format!(
                    "{}: a vector holds NULL in row {}",
                    self.name,
                    row + 1
                ));
            }
            distances.append_value(self.distance(&a, &b));
        }
        let result: Float64Array = distances.finish();
        let all_scalar = args
            .args
            .iter()
            .all(|argument| matches!(argument, ColumnarValue::Scalar(_)));
        let result: ArrayRef = Arc::new(result);
        if all_scalar {
            Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&result, 0)?,
            ))
        } else {
            Ok(ColumnarValue::Array(result))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(values: &[f64]) -> ArrayRef {
        Arc::new(Float64Array::from(values.to_vec()))
    }

    #[test]
    fn distances_are_lances() {
        let (a, b) = (vector(&[1.0, 2.0]), vector(&[3.0, 0.0]));
        assert_eq!(Distance::new(Metric::L2).distance(&a, &b), 8.0);
        assert_eq!(Distance::new(Metric::Dot).distance(&a, &b), -2.0);
        let cosine = Distance::new(Metric::Cosine).distance(&a, &b);
        assert!((cosine - (1.0 - 3.0 / (5f64.sqrt() * 3.0))).abs() < 1e-12);
        let bits: ArrayRef = Arc::new(arrow::array::UInt8Array::from(vec![0b1010u8, 0xff]));
        let other: ArrayRef = Arc::new(arrow::array::UInt8Array::from(vec![0b0110u8, 0x0f]));
        assert_eq!(Distance::new(Metric::Hamming).distance(&bits, &other), 6.0);
    }
}
