//! `highlight(text, query [, open_tag [, close_tag]])`: `text` with every word that matches a
//! word of `query` wrapped in `open_tag` / `close_tag` (`<b>` and `</b>` by default), for showing
//! why a full-text search (`fts`) returned a row.
//!
//! Contract: words are runs of letters and digits; a word matches a query word when both are
//! equal ignoring case and a plural ending (`s`, `es`), an approximation of the stemming an
//! INVERTED index does. Everything else in `text` is returned unchanged. NULL text gives NULL.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::error::Error;

/// The function's SQL name.
pub const NAME: &str = "highlight";

/// `highlight` as a scalar function.
pub fn udf() -> ScalarUDF {
    let text = || DataType::Utf8;
    ScalarUDF::new_from_impl(Highlight {
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![text(), text()]),
                TypeSignature::Exact(vec![text(), text(), text()]),
                TypeSignature::Exact(vec![text(), text(), text(), text()]),
            ],
            Volatility::Immutable,
        ),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Highlight {
    signature: Signature,
}

impl ScalarUDFImpl for Highlight {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arguments: &[DataType]) -> DFResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let texts: Vec<ArrayRef> = arrays
            .iter()
            .map(|array| arrow::compute::cast(array, &DataType::Utf8))
            .collect::<Result<_, _>>()?;
        let text = |position: usize| texts.get(position).map(|array| array.as_string::<i32>());
        let (Some(values), Some(queries)) = (text(0), text(1)) else {
            return Err(DataFusionError::from(Error::invalid(format!(
                "{NAME} takes 2 to 4 arguments: {NAME}(text, query [, open_tag [, close_tag]])"
            ))));
        };
        let tag = |position: usize, row: usize, default: &'static str| -> String {
            text(position)
                .filter(|tags| !tags.is_null(row))
                .map_or(default.to_string(), |tags| tags.value(row).to_string())
        };
        let mut highlighted = StringBuilder::with_capacity(rows, rows * 32);
        for row in 0..rows {
            if values.is_null(row) {
                highlighted.append_null();
                continue;
            }
            let terms = if queries.is_null(row) {
                HashSet::new()
            } else {
                query_terms(queries.value(row))
            };
            highlighted.append_value(mark(
                values.value(row),
                &terms,
                &tag(2, row, "<b>"),
                &tag(3, row, "</b>"),
            ));
        }
        let result: ArrayRef = Arc::new(highlighted.finish());
        if args
            .args
            .iter()
            .all(|argument| matches!(argument, ColumnarValue::Scalar(_)))
        {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?))
        } else {
            Ok(ColumnarValue::Array(result))
        }
    }
}

/// A word as matching compares it: lower case, without a plural ending.
fn normalised(word: &str) -> String {
    let lower = word.to_lowercase();
    for ending in ["es", "s"] {
        if let Some(stem) = lower.strip_suffix(ending)
            && stem.chars().count() >= 3
        {
            return stem.to_string();
        }
    }
    lower
}

fn query_terms(query: &str) -> HashSet<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(normalised)
        .collect()
}

/// `text` with each matching word wrapped in the tags.
fn mark(text: &str, terms: &HashSet<String>, open: &str, close: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word_start: Option<usize> = None;
    let flush = |out: &mut String, word: &str| {
        if terms.contains(&normalised(word)) {
            out.push_str(open);
            out.push_str(word);
            out.push_str(close);
        } else {
            out.push_str(word);
        }
    };
    for (index, character) in text.char_indices() {
        if character.is_alphanumeric() {
            word_start.get_or_insert(index);
        } else {
            if let Some(start) = word_start.take() {
                flush(&mut out, &text[start..index]);
            }
            out.push(character);
        }
    }
    if let Some(start) = word_start {
        flush(&mut out, &text[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_words_are_wrapped_and_the_rest_kept() {
        let terms = query_terms("Vector SEARCH");
        assert_eq!(
            mark(
                "Searches over vectors, not vectorised text.",
                &terms,
                "[",
                "]"
            ),
            "[Searches] over [vectors], not vectorised text."
        );
        assert_eq!(mark("", &terms, "[", "]"), "");
        assert_eq!(mark("search", &HashSet::new(), "[", "]"), "search");
    }
}
