//! Building and dropping indices: one Lance commit each, through the write URI (Lance's safe
//! commit handler), so a concurrent writer's commit is never overwritten.
//!
//! [`IndexDefinition`] is what `CREATE INDEX` asks for, as plain data; [`DataRoot::create_index`]
//! turns its kind and `WITH (...)` options into Lance's index parameters, refusing unknown
//! kinds and options by name before any work starts.

use lance::index::DatasetIndexExt;
use lance::index::vector::VectorIndexParams;
use lance_index::scalar::ScalarIndexParams;
use lance_index::vector::hnsw::builder::HnswBuildParams;
use lance_index::vector::ivf::IvfBuildParams;
use lance_index::vector::pq::PQBuildParams;
use lance_index::vector::sq::builder::SQBuildParams;
use lance_index::{IndexParams, IndexType};
use lance_linalg::distance::DistanceType;

use std::sync::Arc;

use crate::error::{Error, Result};

use super::DataRoot;
use super::progress::{LanceProgress, WorkProgress};

/// An option value as written in `WITH (name = value)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionValue {
    Number(String),
    Text(String),
    Boolean(bool),
}

impl OptionValue {
    fn to_json(&self) -> serde_json::Value {
        match self {
            OptionValue::Number(text) => serde_json::from_str(text)
                .unwrap_or_else(|_| serde_json::Value::String(text.clone())),
            OptionValue::Text(text) => serde_json::Value::String(text.clone()),
            OptionValue::Boolean(flag) => serde_json::Value::Bool(*flag),
        }
    }
}

impl std::fmt::Display for OptionValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionValue::Number(text) | OptionValue::Text(text) => f.write_str(text),
            OptionValue::Boolean(flag) => write!(f, "{flag}"),
        }
    }
}

/// What `CREATE INDEX` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDefinition {
    pub table: String,
    /// The index name (Lance names it `<column>_idx` when absent).
    pub name: Option<String>,
    pub column: String,
    /// The kind as written (`IVF_PQ`, `btree`, ...), any case.
    pub kind: String,
    pub options: Vec<(String, OptionValue)>,
    /// `IF NOT EXISTS`: an index of that name already there is not an error.
    pub if_not_exists: bool,
}

/// Every kind `CREATE INDEX ... USING <kind>` accepts, and its options.
pub const INDEX_KINDS: [(&str, &[&str]); 15] = [
    ("IVF_PQ", &VECTOR_OPTIONS),
    ("IVF_HNSW_SQ", &VECTOR_OPTIONS),
    ("IVF_HNSW_PQ", &VECTOR_OPTIONS),
    ("IVF_HNSW_FLAT", &VECTOR_OPTIONS),
    ("IVF_FLAT", &VECTOR_OPTIONS),
    ("IVF_SQ", &VECTOR_OPTIONS),
    ("BTREE", &["zone_size"]),
    ("BITMAP", &[]),
    ("LABEL_LIST", &[]),
    ("INVERTED", &INVERTED_OPTIONS),
    ("FTS", &INVERTED_OPTIONS),
    ("NGRAM", &[]),
    ("ZONEMAP", &["rows_per_zone"]),
    ("BLOOMFILTER", &["number_of_items", "probability"]),
    ("SCALAR", &[]),
];

const VECTOR_OPTIONS: [&str; 9] = [
    "metric",
    "num_partitions",
    "target_partition_size",
    "num_sub_vectors",
    "num_bits",
    "max_iterations",
    "sample_rate",
    "m",
    "ef_construction",
];

const INVERTED_OPTIONS: [&str; 12] = [
    "base_tokenizer",
    "language",
    "with_position",
    "max_token_length",
    "lower_case",
    "stem",
    "remove_stop_words",
    "ascii_folding",
    "min_ngram_length",
    "max_ngram_length",
    "prefix_only",
    "custom_stop_words",
];

impl DataRoot {
    /// Builds the index `definition` asks for on the table's latest version and commits it;
    /// `false` when `IF NOT EXISTS` found an index of that name.
    ///
    /// Lance reports the build's stages to `progress`.
    pub async fn create_index(
        &self,
        definition: &IndexDefinition,
        progress: Option<Arc<dyn WorkProgress>>,
    ) -> Result<bool> {
        let table = &definition.table;
        let kind = definition.kind.to_ascii_uppercase();
        let Some((_, allowed)) = INDEX_KINDS.iter().find(|(known, _)| *known == kind) else {
            return Err(Error::invalid(format!(
                "unknown index kind '{}'; kinds are {}",
                definition.kind,
                INDEX_KINDS.map(|(known, _)| known).join(", ")
            )));
        };
        if let Some((name, _)) = definition
            .options
            .iter()
            .find(|(name, _)| !allowed.contains(&name.as_str()))
        {
            return Err(Error::invalid(format!(
                "{kind} indices have no option '{name}'{}",
                if allowed.is_empty() {
                    " (they take no options)".to_string()
                } else {
                    format!("; options are {}", allowed.join(", "))
                }
            )));
        }
        let gate = self.write_gate(table).await;
        let mut dataset = self.open_for_write(table, &gate).await?;
        let name = definition
            .name
            .clone()
            .unwrap_or_else(|| format!("{}_idx", definition.column));
        let field =
            dataset
                .schema()
                .field(&definition.column)
                .ok_or_else(|| Error::ColumnNotFound {
                    table: table.clone(),
                    column: definition.column.clone(),
                })?;
        let (index_type, params): (IndexType, Box<dyn IndexParams>) = if kind.starts_with("IVF") {
            let dimension = match field.data_type() {
                arrow::datatypes::DataType::FixedSizeList(_, dimension) => {
                    usize::try_from(dimension).unwrap_or(0)
                }
                other => {
                    return Err(Error::invalid(format!(
                        "{kind} indexes vectors; column '{}' of '{table}' holds {other}",
                        definition.column
                    )));
                }
            };
            let params = vector_params(&kind, dimension, &definition.options)?;
            (params.index_type(), Box::new(params))
        } else {
            let (index_type, lance_name) = match kind.as_str() {
                "BTREE" | "SCALAR" => (IndexType::BTree, "btree"),
                "BITMAP" => (IndexType::Bitmap, "bitmap"),
                "LABEL_LIST" => (IndexType::LabelList, "labellist"),
                "INVERTED" | "FTS" => (IndexType::Inverted, "inverted"),
                "NGRAM" => (IndexType::NGram, "ngram"),
                "ZONEMAP" => (IndexType::ZoneMap, "zonemap"),
                _ => (IndexType::BloomFilter, "bloomfilter"),
            };
            let mut params = ScalarIndexParams::new(lance_name.to_string());
            if !definition.options.is_empty() {
                let json: serde_json::Map<String, serde_json::Value> = definition
                    .options
                    .iter()
                    .map(|(name, value)| (name.clone(), value.to_json()))
                    .collect();
                params.params = Some(serde_json::Value::Object(json).to_string());
            }
            (index_type, Box::new(params))
        };
        if has_index(&dataset, table, &name).await? {
            if definition.if_not_exists {
                return Ok(false);
            }
            return Err(Error::IndexExists {
                table: table.clone(),
                index: name,
            });
        }
        let columns = [definition.column.as_str()];
        let mut builder = dataset
            .create_index_builder(&columns, index_type, params.as_ref())
            .name(name.clone())
            .replace(false);
        if let Some(progress) = progress {
            builder = builder.progress(Arc::new(LanceProgress(progress)));
        }
        builder.await.map_err(|error| {
            Error::lance(
                format!("building {kind} index '{name}' on '{table}'"),
                dataset.uri(),
                error,
            )
        })?;
        Ok(true)
    }

    /// Drops index `name` of `table` in one commit; `false` when the table has no such index.
    pub async fn drop_index(&self, table: &str, name: &str) -> Result<bool> {
        let gate = self.write_gate(table).await;
        let mut dataset = self.open_for_write(table, &gate).await?;
        if !has_index(&dataset, table, name).await? {
            return Ok(false);
        }
        dataset.drop_index(name).await.map_err(|error| {
            Error::lance(
                format!("dropping index '{name}' of '{table}'"),
                dataset.uri(),
                error,
            )
        })?;
        Ok(true)
    }
}

/// Whether `dataset` (of `table`) has an index called `name`, readable by this build or not.
async fn has_index(dataset: &lance::Dataset, table: &str, name: &str) -> Result<bool> {
    let existing = dataset.load_indices().await.map_err(|error| {
        Error::lance(
            format!("listing indices of '{table}'"),
            dataset.uri(),
            error,
        )
    })?;
    Ok(existing.iter().any(|index| index.name == name))
}

/// A whole number option.
fn whole(kind: &str, name: &str, value: &OptionValue) -> Result<usize> {
    match value {
        OptionValue::Number(text) => text.parse::<usize>().ok().filter(|n| *n > 0),
        _ => None,
    }
    .ok_or_else(|| {
        Error::invalid(format!(
            "{kind} option '{name}' must be a positive integer, got {value}"
        ))
    })
}

fn metric(kind: &str, value: &OptionValue) -> Result<DistanceType> {
    let text = match value {
        OptionValue::Text(text) => text.to_ascii_lowercase(),
        other => other.to_string(),
    };
    match text.as_str() {
        "l2" | "euclidean" => Ok(DistanceType::L2),
        "cosine" => Ok(DistanceType::Cosine),
        "dot" => Ok(DistanceType::Dot),
        "hamming" => Ok(DistanceType::Hamming),
        _ => Err(Error::invalid(format!(
            "{kind} option 'metric' must be l2, cosine, dot or hamming, got {value}"
        ))),
    }
}

/// Lance's parameters for vector index `kind` over vectors of `dimension`.
fn vector_params(
    kind: &str,
    dimension: usize,
    options: &[(String, OptionValue)],
) -> Result<VectorIndexParams> {
    let mut distance = DistanceType::L2;
    let mut ivf = IvfBuildParams::default();
    let mut pq = PQBuildParams {
        // Lance's advice: sub-vectors of 8 or 16 dimensions.
        num_sub_vectors: [16, 8, 4, 2, 1]
            .into_iter()
            .find(|width| dimension.is_multiple_of(*width) && dimension / width > 0)
            .map_or(1, |width| dimension / width),
        ..PQBuildParams::default()
    };
    let mut sq = SQBuildParams::default();
    let mut hnsw = HnswBuildParams::default();
    for (name, value) in options {
        match name.as_str() {
            "metric" => distance = metric(kind, value)?,
            "num_partitions" => ivf.num_partitions = Some(whole(kind, name, value)?),
            "target_partition_size" => ivf.target_partition_size = Some(whole(kind, name, value)?),
            "num_sub_vectors" => {
                let count = whole(kind, name, value)?;
                if !dimension.is_multiple_of(count) {
                    return Err(Error::invalid(format!(
                        "{kind} option 'num_sub_vectors' ({count}) must divide the vectors' \
                         dimension ({dimension})"
                    )));
                }
                pq.num_sub_vectors = count;
            }
            "num_bits" => {
                let bits = whole(kind, name, value)?;
                pq.num_bits = bits;
                sq.num_bits = u16::try_from(bits).unwrap_or(u16::MAX);
            }
            "max_iterations" => {
                let iterations = whole(kind, name, value)?;
                ivf.max_iters = iterations;
                pq.max_iters = iterations;
            }
            "sample_rate" => {
                let rate = whole(kind, name, value)?;
                ivf.sample_rate = rate;
                pq.sample_rate = rate;
                sq.sample_rate = rate;
            }
            "m" => hnsw = hnsw.num_edges(whole(kind, name, value)?),
            "ef_construction" => hnsw = hnsw.ef_construction(whole(kind, name, value)?),
            _ => {}
        }
    }
    Ok(match kind {
        "IVF_PQ" => VectorIndexParams::with_ivf_pq_params(distance, ivf, pq),
        "IVF_HNSW_SQ" => VectorIndexParams::with_ivf_hnsw_sq_params(distance, ivf, hnsw, sq),
        "IVF_HNSW_PQ" => VectorIndexParams::with_ivf_hnsw_pq_params(distance, ivf, hnsw, pq),
        "IVF_HNSW_FLAT" => VectorIndexParams::ivf_hnsw(distance, ivf, hnsw),
        "IVF_SQ" => VectorIndexParams::with_ivf_sq_params(distance, ivf, sq),
        _ => VectorIndexParams::with_ivf_flat_params(distance, ivf),
    })
}
