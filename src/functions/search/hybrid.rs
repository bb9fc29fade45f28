//! `hybrid_search(table, vector_column, query_vector, text_query, k [, 'option', value]...)`:
//! a vector search and a full-text search of the same table, fused into one ranking, best
//! first, with `_distance`, `_score` (each NULL where that search did not return the row) and
//! `_relevance_score`.
//!
//! Each search returns its `k` best rows; the union is ranked by `fusion`:
//! - `'rrf'` (default): reciprocal rank fusion, `Σ 1 / (rrf_k + rank)` over the searches that
//!   returned the row (ranks from 1, `rrf_k` 60 by default);
//! - `'linear'`: `vector_weight · (1 - normalised distance) + (1 - vector_weight) · normalised
//!   score`, each normalised to [0, 1] over its own results (`vector_weight` 0.7 by default).
//!
//! Vector options (`metric`, `nprobes`, `minimum_nprobes`, `maximum_nprobes`, `ef`,
//! `refine_factor`, `use_index`) go to the vector search, full-text options (`columns`,
//! `operator`, `fuzziness`) to the text search, and `prefilter` to both.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DFResult;
use datafusion::logical_expr::Expr;

use crate::error::{Error, Result};
use crate::physical::search::{
    DISTANCE_COLUMN, Fusion, HybridSpec, RELEVANCE_COLUMN, SCORE_COLUMN, SearchKind,
};
use crate::provider::table::LanceTable;

use super::arguments::{number, option_pairs, positive_integer, string_value};
use super::table::{SearchFunction, call};
use super::text::full_text;
use super::vector::{self, nearest};

/// The function's SQL name.
pub const NAME: &str = "hybrid_search";

const USAGE: &str =
    "hybrid_search(table, vector_column, query_vector, text_query, k [, 'option', value]...)";

/// Options of the vector search.
const VECTOR_OPTIONS: [&str; 7] = [
    "metric",
    "nprobes",
    "minimum_nprobes",
    "maximum_nprobes",
    "ef",
    "refine_factor",
    "use_index",
];
/// Options of the full-text search.
const TEXT_OPTIONS: [&str; 3] = ["columns", "operator", "fuzziness"];
/// Options of the fusion.
const FUSION_OPTIONS: [&str; 3] = ["fusion", "rrf_k", "vector_weight"];

/// The default `rrf_k`.
pub const DEFAULT_RRF_K: f32 = 60.0;
/// The default `vector_weight` of linear fusion.
pub const DEFAULT_VECTOR_WEIGHT: f32 = 0.7;

const QUERY_VECTOR: usize = 2;
const TEXT_QUERY: usize = 3;
const K: usize = 4;
/// Options follow `table, vector_column, query_vector, text_query, k`.
pub const OPTIONS_START: usize = K + 1;

/// `hybrid_search` as a table function.
#[derive(Debug)]
pub struct HybridSearch;

impl TableFunctionImpl for HybridSearch {
    fn call_with_args(&self, args: TableFunctionArgs) -> DFResult<Arc<dyn TableProvider>> {
        call(Arc::new(HybridSearch), args)
    }
}

impl SearchFunction for HybridSearch {
    fn name(&self) -> &'static str {
        NAME
    }

    fn usage(&self) -> &'static str {
        USAGE
    }

    fn arity(&self) -> (usize, Option<usize>) {
        (5, None)
    }

    fn schema(&self, table: &LanceTable, _arguments: &[Expr]) -> Result<SchemaRef> {
        let mut fields: Vec<_> = table.schema().fields().iter().cloned().collect();
        for column in [DISTANCE_COLUMN, SCORE_COLUMN] {
            fields.push(Arc::new(Field::new(column, DataType::Float32, true)));
        }
        fields.push(Arc::new(Field::new(
            RELEVANCE_COLUMN,
            DataType::Float32,
            false,
        )));
        Ok(Arc::new(Schema::new(fields)))
    }

    fn resolve(
        &self,
        table: &LanceTable,
        arguments: &[Expr],
        session: &dyn Session,
    ) -> Result<Option<SearchKind>> {
        let known: Vec<&str> = VECTOR_OPTIONS
            .iter()
            .chain(&TEXT_OPTIONS)
            .chain(&FUSION_OPTIONS)
            .chain(&["prefilter"])
            .copied()
            .collect();
        let options = option_pairs(NAME, &arguments[OPTIONS_START..], &known)?;
        let of = |names: &[&str]| -> Vec<(String, &ScalarValue)> {
            options
                .iter()
                .filter(|(name, _)| name == "prefilter" || names.contains(&name.as_str()))
                .cloned()
                .collect()
        };
        let nearest = nearest(
            NAME,
            table,
            [&arguments[1], &arguments[QUERY_VECTOR], &arguments[K]],
            &of(&VECTOR_OPTIONS),
            session,
        )?;
        let full_text = full_text(
            NAME,
            table,
            &arguments[TEXT_QUERY],
            &of(&TEXT_OPTIONS),
            session,
        )?;
        let fusion = fusion(&options)?;
        let (Some(nearest), Some(mut full_text)) = (nearest, full_text) else {
            return Ok(None);
        };
        if nearest.batch {
            return Err(Error::invalid(format!(
                "{NAME}: argument 'query_vector' must be one vector"
            )));
        }
        full_text.limit = Some(nearest.k);
        Ok(Some(SearchKind::Hybrid(Box::new(HybridSpec {
            k: nearest.k,
            nearest,
            full_text,
            fusion,
        }))))
    }

    fn parameter_type(
        &self,
        table: &LanceTable,
        arguments: &[Expr],
        position: usize,
    ) -> Option<DataType> {
        match position {
            QUERY_VECTOR => vector::query_parameter_type(table, &arguments[1]),
            TEXT_QUERY => Some(DataType::Utf8),
            K => Some(DataType::Int64),
            _ => None,
        }
    }
}

/// The fusion the options choose.
fn fusion(options: &[(String, &ScalarValue)]) -> Result<Fusion> {
    let option = |name: &str| {
        options
            .iter()
            .find(|(given, _)| given == name)
            .map(|(_, value)| *value)
    };
    let method = match option("fusion") {
        Some(value) => string_value(NAME, "fusion", value)?.to_ascii_lowercase(),
        None => "rrf".to_string(),
    };
    match method.as_str() {
        "rrf" => {
            if option("vector_weight").is_some() {
                return Err(Error::invalid(format!(
                    "{NAME}: option 'vector_weight' applies to fusion 'linear', not 'rrf'"
                )));
            }
            let k = match option("rrf_k") {
                Some(value) => positive_integer(NAME, "rrf_k", value)? as f32,
                None => DEFAULT_RRF_K,
            };
            Ok(Fusion::ReciprocalRank { k })
        }
        "linear" => {
            if option("rrf_k").is_some() {
                return Err(Error::invalid(format!(
                    "{NAME}: option 'rrf_k' applies to fusion 'rrf', not 'linear'"
                )));
            }
            let weight = match option("vector_weight") {
                Some(value) => number(NAME, "vector_weight", value)?,
                None => f64::from(DEFAULT_VECTOR_WEIGHT),
            };
            if !(0.0..=1.0).contains(&weight) {
                return Err(Error::invalid(format!(
                    "{NAME}: option 'vector_weight' must be between 0 and 1, got {weight}"
                )));
            }
            Ok(Fusion::Linear {
                vector_weight: weight as f32,
            })
        }
        other => Err(Error::invalid(format!(
            "{NAME}: option 'fusion' is 'rrf' or 'linear', got '{other}'"
        ))),
    }
}
