//! Demo data: a small but realistic shop catalog, written when the data root is empty.
//!
//! `products` (2,000 rows: text, numbers, categories, timestamps with zone, a 16-dimensional
//! float32 embedding, some NULL ratings) and `reviews` (6,000 rows referencing products). The
//! generator is deterministic, so every fresh checkout shows the same rows.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeListArray, Float32Array, Float64Array, Int8Array, Int32Array, Int64Array,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::physical_plan::memory::MemoryStream;

use crate::engine::session::LanceSession;
use crate::error::Result;

const PRODUCTS: usize = 2_000;
const REVIEWS: usize = 6_000;
const EMBEDDING_DIM: i32 = 16;
/// 2024-01-01T00:00:00Z in microseconds.
const EPOCH_2024_US: i64 = 1_704_067_200_000_000;

const CATEGORIES: [&str; 6] = [
    "books",
    "electronics",
    "garden",
    "kitchen",
    "sports",
    "toys",
];
const ADJECTIVES: [&str; 8] = [
    "compact",
    "durable",
    "elegant",
    "lightweight",
    "modern",
    "classic",
    "portable",
    "quiet",
];
const NOUNS: [&str; 8] = [
    "lamp", "kettle", "backpack", "novel", "drone", "planter", "racket", "puzzle",
];
const OPINIONS: [&str; 6] = [
    "works as described",
    "arrived late but fine",
    "excellent value for money",
    "broke after a week",
    "my kids love it",
    "would buy again",
];

/// Writes the demo tables if the root has no tables yet; returns whether it did.
pub async fn ensure_demo_data(session: &LanceSession) -> Result<bool> {
    if !session.table_names().await?.is_empty() {
        return Ok(false);
    }
    let products = products()?;
    session
        .create_table("products", single_batch_stream(products)?.into())
        .await?;
    session
        .create_table("reviews", single_batch_stream(reviews()?)?.into())
        .await?;
    tracing::info!("wrote demo tables 'products' and 'reviews'");
    Ok(true)
}

fn single_batch_stream(
    batch: RecordBatch,
) -> Result<datafusion::execution::SendableRecordBatchStream> {
    let schema = batch.schema();
    Ok(Box::pin(MemoryStream::try_new(vec![batch], schema, None)?))
}

/// A small deterministic generator (xorshift), so the demo needs no random-number crate.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn products() -> Result<RecordBatch> {
    let mut random = Generator(0x5eed_1a2c_e5d1_0001);
    let mut names = Vec::with_capacity(PRODUCTS);
    let mut categories = Vec::with_capacity(PRODUCTS);
    let mut descriptions = Vec::with_capacity(PRODUCTS);
    let mut prices = Vec::with_capacity(PRODUCTS);
    let mut stock = Vec::with_capacity(PRODUCTS);
    let mut ratings = Vec::with_capacity(PRODUCTS);
    let mut launched = Vec::with_capacity(PRODUCTS);
    let mut embedding = Vec::with_capacity(PRODUCTS * EMBEDDING_DIM as usize);
    for id in 0..PRODUCTS {
        let category = random.below(CATEGORIES.len());
        let adjective = ADJECTIVES[random.below(ADJECTIVES.len())];
        let noun = NOUNS[random.below(NOUNS.len())];
        names.push(format!("{adjective} {noun} {id}"));
        categories.push(CATEGORIES[category]);
        descriptions.push(format!(
            "A {adjective} {noun} for {} lovers. {}.",
            CATEGORIES[category],
            OPINIONS[random.below(OPINIONS.len())]
        ));
        prices.push(((random.unit() * 200.0 + 2.0) * 100.0).round() / 100.0);
        stock.push(random.below(500) as i32);
        ratings.push((random.below(10) != 0).then(|| 1.0 + (random.unit() * 4.0) as f32));
        launched.push(EPOCH_2024_US + (random.below(700 * 24 * 3600) as i64) * 1_000_000);
        // Embeddings cluster by category so nearest-neighbour queries look sensible.
        for dim in 0..EMBEDDING_DIM as usize {
            let centre = if dim % CATEGORIES.len() == category {
                1.0
            } else {
                0.0
            };
            embedding.push(centre + (random.unit() as f32 - 0.5) * 0.4);
        }
    }
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("description", DataType::Utf8, false),
        Field::new("price", DataType::Float64, false),
        Field::new("in_stock", DataType::Int32, false),
        Field::new("rating", DataType::Float32, true),
        Field::new("launched_at", utc_micros(), false),
        Field::new(
            "embedding",
            DataType::FixedSizeList(item.clone(), EMBEDDING_DIM),
            true,
        ),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..PRODUCTS as i64)),
        Arc::new(StringArray::from(names)),
        Arc::new(StringArray::from(categories)),
        Arc::new(StringArray::from(descriptions)),
        Arc::new(Float64Array::from(prices)),
        Arc::new(Int32Array::from(stock)),
        Arc::new(Float32Array::from(ratings)),
        Arc::new(TimestampMicrosecondArray::from(launched).with_timezone("UTC")),
        Arc::new(FixedSizeListArray::try_new(
            item,
            EMBEDDING_DIM,
            Arc::new(Float32Array::from(embedding)),
            None,
        )?),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn reviews() -> Result<RecordBatch> {
    let mut random = Generator(0x5eed_1a2c_e5d1_0002);
    let mut product_ids = Vec::with_capacity(REVIEWS);
    let mut stars = Vec::with_capacity(REVIEWS);
    let mut bodies = Vec::with_capacity(REVIEWS);
    let mut created = Vec::with_capacity(REVIEWS);
    let mut helpful = Vec::with_capacity(REVIEWS);
    for _ in 0..REVIEWS {
        product_ids.push(random.below(PRODUCTS) as i64);
        stars.push(1 + random.below(5) as i8);
        bodies.push(OPINIONS[random.below(OPINIONS.len())].to_string());
        created.push(EPOCH_2024_US + (random.below(700 * 24 * 3600) as i64) * 1_000_000);
        helpful.push((random.below(4) != 0).then(|| random.below(100) as i32));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("product_id", DataType::Int64, false),
        Field::new("stars", DataType::Int8, false),
        Field::new("body", DataType::Utf8, false),
        Field::new("created_at", utc_micros(), false),
        Field::new("helpful_votes", DataType::Int32, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..REVIEWS as i64)),
        Arc::new(Int64Array::from(product_ids)),
        Arc::new(Int8Array::from(stars)),
        Arc::new(StringArray::from(bodies)),
        Arc::new(TimestampMicrosecondArray::from(created).with_timezone("UTC")),
        Arc::new(Int32Array::from(helpful)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}
