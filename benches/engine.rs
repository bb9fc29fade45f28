//! Engine benchmarks: lancesql against the baselines its speed goals name.
//!
//! - `filtered_scan`: one filtered, projected scan through lancesql SQL and through Lance's own
//!   Rust scanner over the same dataset (goal: lancesql within 1.1x).
//! - `rows_by_id`: 100 random rows by `_rowid IN (...)` and by `take(...)` through lancesql
//!   (written in the SQL text, the same text every iteration, so the session's plan for it is
//!   reused; and bound as a parameter to a statement prepared once), against
//!   Lance's own `take_rows` of the same ids (goal: within 1.1x) and the same rows by
//!   `id IN (...)` through DataFusion over a Parquet copy of the data (goal: at least 100x
//!   slower than lancesql).
//! - `top_k`: `ORDER BY ... LIMIT 10` over a table with a wide embedding column, with and without
//!   late materialization.
//! - `search`: k-nearest (`vector_search`, k = 10, nprobes 20, refine factor 2, the vector bound
//!   to a statement prepared once) and full text (`fts`, two words, 10 best, the text bound)
//!   over `LANCESQL_BENCH_SEARCH_ROWS` rows (default 200,000) of 128-float embeddings around 64
//!   centres and 12-word texts, with IVF_PQ and INVERTED indices built by lancesql's
//!   `CREATE INDEX`, against Lance's own scanner with the same settings on the same dataset
//!   (goal: at least 0.9x its queries per second; `benches/search_throughput.py` measures the
//!   same queries over the front ends against pylance). Each iteration runs the next of 32
//!   queries, the same ones in the same order for both. `*_in_turns` runs both contenders
//!   query by query in turns and prints the ratio of their queries per second, which drifts in
//!   the machine's speed between two criterion runs do not skew.
//! - `blob_loop`: a training loader's loop over `LANCESQL_BENCH_BLOB_ROWS` rows (default 2,000)
//!   of distinct 100 KB payloads: the row ids of one label, shuffled, read back 32 rows at a time,
//!   through lancesql (`take` with the ids bound as a parameter to a statement prepared once)
//!   against the same loop over Lance's scanner and `take_rows` (goal: at least 0.9x its rows per
//!   second).
//!
//! Data is generated at start-up in a temporary folder: `LANCESQL_BENCH_ROWS` rows (default
//! 1,000,000) in fragments of 250,000, with an integer key, a category, a number, a short text
//! and a 64-dimensional float32 embedding. Run with `cargo bench --bench engine`; see
//! `docs/benchmarks.md` for figures and how to read them. `LANCESQL_LOCAL_IO=threads|uring`
//! picks the local reader (default: auto, as in `lancesql`); the Lance baselines use the same.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, AsArray, FixedSizeListArray, Float32Array, Int64Array, LargeBinaryArray, ListArray,
    RecordBatch, RecordBatchIterator, StringArray,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt64Type};
use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::common::ScalarValue;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures::TryStreamExt;
use lance::Dataset;
use lance::dataset::WriteParams;
use lancesql::Outcome;
use lancesql::config::LocalIo;
use lancesql::{Engine, EngineConfig, LanceSession, StoreConfig};
use tokio::runtime::Runtime;

const EMBEDDING_DIM: i32 = 64;
const ROWS_PER_FRAGMENT: usize = 250_000;
const BATCH_ROWS: usize = 50_000;
const FILTER_SQL: &str = "category = 'cat_3' AND value > 500";

fn row_count() -> usize {
    std::env::var("LANCESQL_BENCH_ROWS")
        .ok()
        .and_then(|rows| rows.parse().ok())
        .unwrap_or(1_000_000)
}

fn schema() -> SchemaRef {
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("value", DataType::Int64, false),
        Field::new("text", DataType::Utf8, false),
        Field::new(
            "embedding",
            DataType::FixedSizeList(item, EMBEDDING_DIM),
            false,
        ),
    ]))
}

/// A deterministic pseudo-random sequence (SplitMix64), so every run reads the same data.
fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn batch(start: usize, rows: usize) -> RecordBatch {
    let ids: Vec<i64> = (start..start + rows).map(|i| i as i64).collect();
    let categories: Vec<String> = ids.iter().map(|i| format!("cat_{}", i % 20)).collect();
    let values: Vec<i64> = ids.iter().map(|i| (mix(*i as u64) % 1000) as i64).collect();
    let texts: Vec<String> = ids
        .iter()
        .map(|i| format!("row {i} says {:016x}", mix(!(*i as u64))))
        .collect();
    let floats: Vec<f32> = (0..rows * EMBEDDING_DIM as usize)
        .map(|k| (mix((start * EMBEDDING_DIM as usize + k) as u64) % 10_000) as f32 / 10_000.0)
        .collect();
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let embedding = FixedSizeListArray::try_new(
        item,
        EMBEDDING_DIM,
        Arc::new(Float32Array::from(floats)),
        None,
    )
    .expect("embedding array");
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(StringArray::from(categories)),
        Arc::new(Int64Array::from(values)),
        Arc::new(StringArray::from(texts)),
        Arc::new(embedding),
    ];
    RecordBatch::try_new(schema(), columns).expect("bench batch")
}

fn batches(rows: usize) -> Vec<RecordBatch> {
    (0..rows)
        .step_by(BATCH_ROWS)
        .map(|start| batch(start, BATCH_ROWS.min(rows - start)))
        .collect()
}

/// Writes `bench.lance` under `root` and `bench.parquet` beside it.
async fn write_data(root: &Path, rows: usize) {
    let data = batches(rows);
    let parquet = std::fs::File::create(root.join("bench.parquet")).expect("parquet file");
    let mut writer = ArrowWriter::try_new(parquet, schema(), None).expect("parquet writer");
    for batch in &data {
        writer.write(batch).expect("parquet write");
    }
    writer.close().expect("parquet close");

    let uri = root.join("bench.lance");
    let params = WriteParams {
        max_rows_per_file: ROWS_PER_FRAGMENT,
        ..Default::default()
    };
    let reader = RecordBatchIterator::new(data.into_iter().map(Ok), schema());
    Dataset::write(reader, uri.to_str().expect("utf-8 path"), Some(params))
        .await
        .expect("lance write");
}

/// The rows of `sql`, rendered as text, in the order they came.
async fn pretty_rows(session: &LanceSession, sql: &str) -> String {
    let batches: Vec<RecordBatch> = session
        .sql_stream(sql)
        .await
        .expect("query")
        .try_collect()
        .await
        .expect("rows");
    arrow::util::pretty::pretty_format_batches(&batches)
        .expect("printable rows")
        .to_string()
}

async fn count_rows(session: &LanceSession, sql: &str) -> usize {
    session
        .sql_stream(sql)
        .await
        .expect("lancesql query")
        .try_fold(0, |rows, batch| async move { Ok(rows + batch.num_rows()) })
        .await
        .expect("lancesql stream")
}

async fn lance_scanner_rows(dataset: &Dataset) -> usize {
    let mut scanner = dataset.scan();
    scanner
        .project(&["id", "value", "text"])
        .expect("projection");
    scanner.filter(FILTER_SQL).expect("filter");
    scanner
        .try_into_stream()
        .await
        .expect("lance scan")
        .try_fold(0, |rows, batch| async move { Ok(rows + batch.num_rows()) })
        .await
        .expect("lance stream")
}

async fn parquet_rows(context: &SessionContext, sql: &str) -> usize {
    context
        .sql(sql)
        .await
        .expect("parquet query")
        .execute_stream()
        .await
        .expect("parquet plan")
        .try_fold(0, |rows, batch| async move { Ok(rows + batch.num_rows()) })
        .await
        .expect("parquet stream")
}

const BLOB_BYTES: usize = 100_000;
const BLOB_LABELS: usize = 4;
const LOADER_BATCH: usize = 32;

fn blob_row_count() -> usize {
    std::env::var("LANCESQL_BENCH_BLOB_ROWS")
        .ok()
        .and_then(|rows| rows.parse().ok())
        .unwrap_or(2_000)
}

/// Writes `blobs.lance` under `root`: `(id, label, payload)`, every payload its own 100 KB of
/// pseudo-random bytes (no two alike, as with real images or audio), 500 rows per fragment.
async fn write_blobs(root: &Path, rows: usize) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("payload", DataType::LargeBinary, false),
    ]));
    let batches = (0..rows)
        .step_by(100)
        .map(|start| {
            let end = rows.min(start + 100);
            let payloads: Vec<Vec<u8>> = (start..end)
                .map(|row| {
                    (0..BLOB_BYTES / 8)
                        .flat_map(|word| mix((row * BLOB_BYTES + word) as u64).to_le_bytes())
                        .collect()
                })
                .collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from_iter_values(start as i64..end as i64)),
                Arc::new(StringArray::from_iter_values(
                    (start..end).map(|row| format!("label_{}", row % BLOB_LABELS)),
                )),
                Arc::new(LargeBinaryArray::from_iter_values(payloads)),
            ];
            Ok(RecordBatch::try_new(schema.clone(), columns).expect("blob batch"))
        })
        .collect::<Vec<_>>();
    let params = WriteParams {
        max_rows_per_file: 500,
        ..Default::default()
    };
    let reader = RecordBatchIterator::new(batches, schema);
    let uri = root.join("blobs.lance");
    Dataset::write(reader, uri.to_str().expect("utf-8 path"), Some(params))
        .await
        .expect("lance write of blobs");
}

const SEARCH_DIM: usize = 128;
const SEARCH_CENTRES: u64 = 64;
const SEARCH_WORDS: u64 = 2_000;
const SEARCH_K: usize = 10;
const SEARCH_QUERIES: usize = 32;

fn search_row_count() -> usize {
    std::env::var("LANCESQL_BENCH_SEARCH_ROWS")
        .ok()
        .and_then(|rows| rows.parse().ok())
        .unwrap_or(200_000)
}

/// A number in [0, 1) from `seed`.
fn unit(seed: u64) -> f32 {
    (mix(seed) % 1_000_000) as f32 / 1_000_000.0
}

/// Row `row`'s embedding: its centre (one of 64, each coordinate in [-1, 1)) plus noise in
/// [-0.3, 0.3), so that nearest neighbours cluster as real embeddings do.
fn search_embedding(row: u64) -> impl Iterator<Item = f32> {
    let centre = mix(row ^ 0x5EED) % SEARCH_CENTRES;
    (0..SEARCH_DIM as u64).map(move |d| {
        let at = unit(centre * SEARCH_DIM as u64 + d) * 2.0 - 1.0;
        at + (unit((row << 8) + d + 7) - 0.5) * 0.6
    })
}

/// Word `n` of a vocabulary whose first words are by far the most common (as in text).
fn search_word(n: u64) -> String {
    let skewed = unit(n).powi(3) * SEARCH_WORDS as f32;
    format!("word{}", skewed as u64)
}

/// Writes `items.lance` under `root`: `(id, text of 12 words, embedding 128 x float32)`.
async fn write_search_items(root: &Path, rows: usize) {
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", DataType::Utf8, false),
        Field::new(
            "embedding",
            DataType::FixedSizeList(item.clone(), SEARCH_DIM as i32),
            false,
        ),
    ]));
    let batches = (0..rows)
        .step_by(BATCH_ROWS)
        .map(|start| {
            let end = rows.min(start + BATCH_ROWS);
            let texts = (start..end).map(|row| {
                (0..12)
                    .map(|word| search_word((row * 12 + word) as u64))
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            let floats: Vec<f32> = (start..end)
                .flat_map(|row| search_embedding(row as u64))
                .collect();
            let embedding = FixedSizeListArray::try_new(
                item.clone(),
                SEARCH_DIM as i32,
                Arc::new(Float32Array::from(floats)),
                None,
            )
            .expect("embedding array");
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from_iter_values(start as i64..end as i64)),
                Arc::new(StringArray::from_iter_values(texts)),
                Arc::new(embedding),
            ];
            Ok(RecordBatch::try_new(schema.clone(), columns).expect("search batch"))
        })
        .collect::<Vec<_>>();
    let reader = RecordBatchIterator::new(batches, schema);
    let uri = root.join("items.lance");
    Dataset::write(reader, uri.to_str().expect("utf-8 path"), None)
        .await
        .expect("lance write of the search items");
}

/// The bench's query vectors: stored rows' embeddings, shifted a little.
fn search_vectors(rows: usize) -> Vec<Vec<f32>> {
    (0..SEARCH_QUERIES as u64)
        .map(|query| {
            let row = mix(query ^ 0xFACE) % rows as u64;
            search_embedding(row).map(|x| x + 0.05).collect()
        })
        .collect()
}

/// The bench's text queries: two of the 200 most common words.
fn search_texts() -> Vec<String> {
    (0..SEARCH_QUERIES as u64)
        .map(|query| {
            let word = |salt: u64| format!("word{}", mix(query * 2 + salt) % 200);
            format!("{} {}", word(0), word(1))
        })
        .collect()
}

/// The first column of `batches`, of Arrow type `T`, in order.
fn first_column<T: arrow::datatypes::ArrowPrimitiveType>(
    batches: &[RecordBatch],
) -> Vec<T::Native> {
    batches
        .iter()
        .flat_map(|batch| {
            batch
                .column(0)
                .as_primitive_opt::<T>()
                .expect("a first column of the expected type")
                .values()
                .to_vec()
        })
        .collect()
}

/// Runs `prepared` with `parameter` bound; returns its first column (the ids found).
async fn lancesql_found(
    session: &LanceSession,
    prepared: &lancesql::engine::PreparedStatement,
    parameter: ScalarValue,
) -> Vec<i64> {
    let batches: Vec<RecordBatch> = bound_rows(session, prepared, parameter)
        .await
        .try_collect()
        .await
        .expect("found rows");
    first_column::<Int64Type>(&batches)
}

/// The rows of `prepared`, a query of one parameter, run with `parameter` bound.
async fn bound_rows(
    session: &LanceSession,
    prepared: &lancesql::engine::PreparedStatement,
    parameter: ScalarValue,
) -> datafusion::execution::SendableRecordBatchStream {
    match session.execute(prepared, vec![parameter]).await {
        Ok(Outcome::Rows { stream, .. }) => stream,
        Ok(Outcome::Done(tag)) => panic!("the query returned no rows but {tag:?}"),
        Err(error) => panic!("the query failed: {error}"),
    }
}

fn vector_parameter(vector: &[f32]) -> ScalarValue {
    let list = ListArray::from_iter_primitive::<arrow::datatypes::Float32Type, _, _>([Some(
        vector.iter().map(|x| Some(*x)),
    )]);
    ScalarValue::List(Arc::new(list))
}

/// The same k-nearest search through Lance's scanner; returns the ids found.
async fn lance_nearest(dataset: &Dataset, vector: &[f32]) -> Vec<i64> {
    let query = Float32Array::from(vector.to_vec());
    let mut scanner = dataset.scan();
    scanner.project(&["id", "_distance"]).expect("projection");
    scanner
        .nearest("embedding", &query, SEARCH_K)
        .expect("nearest");
    scanner.nprobes(20);
    scanner.refine(2);
    let batches: Vec<RecordBatch> = scanner
        .try_into_stream()
        .await
        .expect("lance search")
        .try_collect()
        .await
        .expect("lance search rows");
    first_column::<Int64Type>(&batches)
}

/// The same full-text search through Lance's scanner; returns the ids found.
async fn lance_full_text(dataset: &Dataset, text: &str) -> Vec<i64> {
    let mut scanner = dataset.scan();
    scanner.project(&["id", "_score"]).expect("projection");
    scanner
        .full_text_search(
            lance_index::scalar::FullTextSearchQuery::new(text.to_string())
                .limit(Some(SEARCH_K as i64)),
        )
        .expect("full text");
    let batches: Vec<RecordBatch> = scanner
        .try_into_stream()
        .await
        .expect("lance full text")
        .try_collect()
        .await
        .expect("lance full text rows");
    first_column::<Int64Type>(&batches)
}

/// Time two contenders spent answering the same queries in turns.
#[derive(Debug, Default)]
struct Turns {
    lancesql: Duration,
    lance: Duration,
    queries: u64,
}

impl Turns {
    fn report(&self, what: &str) {
        if self.queries == 0 {
            return;
        }
        let per_query = |total: Duration| total.as_secs_f64() * 1e6 / self.queries as f64;
        println!(
            "{what}, in turns over {} queries: lancesql {:.1} µs, Lance {:.1} µs a query; \
             queries per second lancesql / Lance = {:.3}",
            self.queries,
            per_query(self.lancesql),
            per_query(self.lance),
            self.lance.as_secs_f64() / self.lancesql.as_secs_f64()
        );
    }
}

/// Runs `iters` queries through each contender in turns, query by query, the one going first
/// alternating, so drifts in the machine's speed reach both alike (criterion times one
/// contender after the other, and this machine's speed moves by a fifth between them); adds
/// both times to `turns` and returns lancesql's.
async fn in_turns<Ours, OursFuture, Theirs, TheirsFuture>(
    iters: u64,
    turns: &std::cell::RefCell<Turns>,
    mut lancesql: Ours,
    mut lance: Theirs,
) -> Duration
where
    Ours: FnMut(usize) -> OursFuture,
    OursFuture: Future<Output = Vec<i64>>,
    Theirs: FnMut(usize) -> TheirsFuture,
    TheirsFuture: Future<Output = Vec<i64>>,
{
    let mut ours = Duration::ZERO;
    let mut theirs = Duration::ZERO;
    for iteration in 0..iters {
        let query = (iteration % SEARCH_QUERIES as u64) as usize;
        let timed_ours = async {
            let start = Instant::now();
            std::hint::black_box(lancesql(query).await);
            start.elapsed()
        };
        if iteration % 2 == 0 {
            ours += timed_ours.await;
            let start = Instant::now();
            std::hint::black_box(lance(query).await);
            theirs += start.elapsed();
        } else {
            let start = Instant::now();
            std::hint::black_box(lance(query).await);
            theirs += start.elapsed();
            ours += timed_ours.await;
        }
    }
    let mut totals = turns.borrow_mut();
    totals.lancesql += ours;
    totals.lance += theirs;
    totals.queries += iters;
    ours
}

fn sorted(mut ids: Vec<i64>) -> Vec<i64> {
    ids.sort_unstable();
    ids
}

/// `ids` in an order that changes with `round` (Fisher-Yates over [`mix`]).
fn shuffled(mut ids: Vec<u64>, round: u64) -> Vec<u64> {
    for last in (1..ids.len()).rev() {
        let pick = (mix(round * 1_000_003 + last as u64) % (last as u64 + 1)) as usize;
        ids.swap(last, pick);
    }
    ids
}

/// The loader's loop through lancesql: ids by SQL, then `take` of each 32 by the prepared
/// statement with the ids bound. Returns the rows read.
async fn lancesql_loader_rows(
    session: &LanceSession,
    take: &lancesql::engine::PreparedStatement,
    round: u64,
) -> usize {
    let batches: Vec<RecordBatch> = session
        .sql_stream("SELECT _rowid FROM blobs WHERE label = 'label_1'")
        .await
        .expect("blob row ids")
        .try_collect()
        .await
        .expect("blob row id stream");
    let ids = first_column::<UInt64Type>(&batches);
    let mut rows = 0;
    for chunk in shuffled(ids, round).chunks(LOADER_BATCH) {
        rows += bound_take_rows(session, take, chunk).await;
    }
    rows
}

/// Runs `take`, a prepared `take(table, $1)`, with `ids` bound; returns the rows it read.
async fn bound_take_rows(
    session: &LanceSession,
    take: &lancesql::engine::PreparedStatement,
    ids: &[u64],
) -> usize {
    let bound = ListArray::from_iter_primitive::<arrow::datatypes::UInt64Type, _, _>([Some(
        ids.iter().map(|id| Some(*id)),
    )]);
    bound_rows(session, take, ScalarValue::List(Arc::new(bound)))
        .await
        .try_fold(0, |rows, batch| async move { Ok(rows + batch.num_rows()) })
        .await
        .expect("taken rows")
}

/// The same loop over Lance: ids from a filtered scan, then `take_rows` of each 32.
async fn lance_loader_rows(dataset: &Dataset, round: u64) -> usize {
    let mut scanner = dataset.scan();
    scanner.project::<&str>(&[]).expect("no columns");
    scanner.with_row_id();
    scanner.filter("label = 'label_1'").expect("filter");
    let batches: Vec<RecordBatch> = scanner
        .try_into_stream()
        .await
        .expect("lance scan")
        .try_collect()
        .await
        .expect("lance stream");
    let ids = first_column::<UInt64Type>(&batches);
    let mut rows = 0;
    for chunk in shuffled(ids, round).chunks(LOADER_BATCH) {
        rows += dataset
            .take_rows(chunk, dataset.schema().clone())
            .await
            .expect("lance take")
            .num_rows();
    }
    rows
}

fn list(values: impl IntoIterator<Item = String>) -> String {
    values.into_iter().collect::<Vec<_>>().join(", ")
}

fn engine(c: &mut Criterion) {
    let runtime = Runtime::new().expect("tokio runtime");
    let folder = tempfile::tempdir().expect("temporary folder");
    let rows = row_count();
    runtime.block_on(write_data(folder.path(), rows));
    let blob_rows = blob_row_count();
    runtime.block_on(write_blobs(folder.path(), blob_rows));
    let root = folder.path().to_str().expect("utf-8 path");
    let mut store = StoreConfig::local(root);
    if let Ok(reader) = std::env::var("LANCESQL_LOCAL_IO") {
        store.local_io = reader.parse::<LocalIo>().expect("LANCESQL_LOCAL_IO");
    }
    let engine = Engine::new(&store, EngineConfig::default()).expect("engine");
    // The baselines read through the same local reader (io_uring or threads) as lancesql.
    let dataset = runtime.block_on(async {
        Dataset::open(&engine.table_location("bench").expect("a valid table name"))
            .await
            .expect("open the Lance dataset")
    });
    let session = engine.session().expect("session");

    // Filtered scan: both sides must return the same number of rows before either is timed.
    let scan_sql = format!("SELECT id, value, text FROM bench WHERE {FILTER_SQL}");
    let expected = runtime.block_on(lance_scanner_rows(&dataset));
    assert_eq!(runtime.block_on(count_rows(&session, &scan_sql)), expected);
    let mut group = c.benchmark_group("filtered_scan");
    group.sample_size(30);
    group.bench_function("lance_scanner", |b| {
        b.to_async(&runtime).iter(|| lance_scanner_rows(&dataset))
    });
    group.bench_function("lancesql", |b| {
        b.to_async(&runtime)
            .iter(|| count_rows(&session, &scan_sql))
    });
    group.finish();

    // 100 random rows: their row ids come from lancesql, the same ids' rows from Parquet.
    let mut distinct = std::collections::BTreeSet::new();
    let ids: Vec<String> = (0u64..)
        .map(|k| mix(k + 7) % rows as u64)
        .filter(|id| distinct.insert(*id))
        .take(100.min(rows))
        .map(|id| id.to_string())
        .collect();
    let row_ids_sql = format!(
        "SELECT _rowid FROM bench WHERE id IN ({})",
        list(ids.clone())
    );
    let row_id_values: Vec<u64> = runtime.block_on(async {
        let batches: Vec<RecordBatch> = session
            .sql_stream(&row_ids_sql)
            .await
            .expect("row id query")
            .try_collect()
            .await
            .expect("row ids");
        first_column::<UInt64Type>(&batches)
    });
    let take_sql = format!(
        "SELECT * FROM bench WHERE _rowid IN ({})",
        list(row_id_values.iter().map(u64::to_string))
    );
    let take_function_sql = format!(
        "SELECT * FROM take('bench', [{}])",
        list(row_id_values.iter().map(u64::to_string))
    );
    let parquet_sql = format!("SELECT * FROM bench WHERE id IN ({})", list(ids));
    let parquet_path = folder.path().join("bench.parquet");
    let parquet_path = parquet_path.to_str().expect("utf-8 path");
    let parquet_default = SessionContext::new();
    let parquet_pushdown = SessionContext::new_with_config(
        SessionConfig::new().set_bool("datafusion.execution.parquet.pushdown_filters", true),
    );
    runtime.block_on(async {
        for context in [&parquet_default, &parquet_pushdown] {
            context
                .register_parquet("bench", parquet_path, ParquetReadOptions::default())
                .await
                .expect("register parquet");
        }
    });
    let take_bound = runtime.block_on(async {
        session
            .prepare_sql("SELECT * FROM take('bench', $1)")
            .await
            .expect("prepare the take")
    });
    let wanted = runtime.block_on(count_rows(&session, &take_sql));
    assert_eq!(wanted, row_id_values.len());
    assert_eq!(
        runtime.block_on(count_rows(&session, &take_function_sql)),
        wanted
    );
    assert_eq!(
        runtime.block_on(bound_take_rows(&session, &take_bound, &row_id_values)),
        wanted
    );
    assert_eq!(
        runtime.block_on(parquet_rows(&parquet_default, &parquet_sql)),
        wanted
    );
    // Planning alone (parse, resolve, plan) of the same statement.
    let mut group = c.benchmark_group("planning");
    group.sample_size(50);
    group.bench_function("prepare_rowid_in_100", |b| {
        b.to_async(&runtime).iter(|| async {
            session
                .prepare_sql(&take_sql)
                .await
                .expect("prepare")
                .schema()
                .fields()
                .len()
        })
    });
    // Logical and physical planning without execution: EXPLAIN of the same statement.
    let explain_sql = format!("EXPLAIN {take_sql}");
    group.bench_function("explain_rowid_in_100", |b| {
        b.to_async(&runtime)
            .iter(|| count_rows(&session, &explain_sql))
    });
    group.finish();

    let mut group = c.benchmark_group("rows_by_id");
    group.sample_size(20);
    group.bench_function("lancesql_rowid_in", |b| {
        b.to_async(&runtime)
            .iter(|| count_rows(&session, &take_sql))
    });
    group.bench_function("lancesql_take_function", |b| {
        b.to_async(&runtime)
            .iter(|| count_rows(&session, &take_function_sql))
    });
    group.bench_function("lancesql_take_bound", |b| {
        b.to_async(&runtime)
            .iter(|| bound_take_rows(&session, &take_bound, &row_id_values))
    });
    group.bench_function("lance_take_rows", |b| {
        b.to_async(&runtime).iter(|| async {
            dataset
                .take_rows(&row_id_values, dataset.schema().clone())
                .await
                .expect("lance take")
                .num_rows()
        })
    });
    group.bench_function("datafusion_parquet_id_in", |b| {
        b.to_async(&runtime)
            .iter(|| parquet_rows(&parquet_default, &parquet_sql))
    });
    group.bench_function("datafusion_parquet_id_in_pushdown_filters", |b| {
        b.to_async(&runtime)
            .iter(|| parquet_rows(&parquet_pushdown, &parquet_sql))
    });
    group.finish();

    // Top-k over a wide table, with late materialization (default) and without.
    let top_k_sql = "SELECT * FROM bench ORDER BY value DESC, id LIMIT 10";
    let eager = engine.session().expect("session");
    runtime.block_on(async {
        eager
            .sql_stream("SET lance.late_materialization_max_rows = 0")
            .await
            .expect("SET");
    });
    // Both contenders must return the same rows, in the same order, before either is timed.
    let (late, full) = runtime.block_on(async {
        (
            pretty_rows(&session, top_k_sql).await,
            pretty_rows(&eager, top_k_sql).await,
        )
    });
    assert_eq!(late, full, "late materialization changed the top-k result");
    let mut group = c.benchmark_group("top_k");
    group.sample_size(20);
    group.bench_function("late_materialization", |b| {
        b.to_async(&runtime)
            .iter(|| count_rows(&session, top_k_sql))
    });
    group.bench_function("full_columns", |b| {
        b.to_async(&runtime).iter(|| count_rows(&eager, top_k_sql))
    });
    group.finish();

    // Search: both contenders must find the same rows for every query before either is timed.
    let search_rows = search_row_count();
    runtime.block_on(async {
        write_search_items(folder.path(), search_rows).await;
        for index in [
            "CREATE INDEX ON items USING IVF_PQ (embedding) \
             WITH (num_partitions = 128, num_sub_vectors = 16)",
            "CREATE INDEX ON items USING INVERTED (text)",
        ] {
            count_rows(&session, index).await;
        }
    });
    let items = runtime.block_on(async {
        Dataset::open(&engine.table_location("items").expect("a valid table name"))
            .await
            .expect("open the search items")
    });
    let (nearest, full_text) = runtime.block_on(async {
        let nearest = session
            .prepare_sql(&format!(
                "SELECT id, _distance FROM vector_search('items', 'embedding', $1, {SEARCH_K}, \
                 'nprobes', 20, 'refine_factor', 2)"
            ))
            .await
            .expect("prepare the k-nearest search");
        let full_text = session
            .prepare_sql(&format!(
                "SELECT id, _score FROM fts('items', $1, 'limit', {SEARCH_K})"
            ))
            .await
            .expect("prepare the full-text search");
        (nearest, full_text)
    });
    let vectors = search_vectors(search_rows);
    let texts = search_texts();
    runtime.block_on(async {
        for vector in &vectors {
            assert_eq!(
                lancesql_found(&session, &nearest, vector_parameter(vector)).await,
                lance_nearest(&items, vector).await,
                "vector_search found other rows than Lance"
            );
        }
        for text in &texts {
            let ours = lancesql_found(&session, &full_text, ScalarValue::from(text.as_str())).await;
            assert_eq!(ours.len(), SEARCH_K, "fts found too few rows for {text}");
            assert_eq!(
                sorted(ours),
                sorted(lance_full_text(&items, text).await),
                "fts found other rows than Lance for {text}"
            );
        }
    });
    let query = std::sync::atomic::AtomicUsize::new(0);
    let next_query = || query.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SEARCH_QUERIES;
    let mut group = c.benchmark_group("search");
    group.bench_function("lancesql_vector_search_bound", |b| {
        b.to_async(&runtime)
            .iter(|| lancesql_found(&session, &nearest, vector_parameter(&vectors[next_query()])))
    });
    group.bench_function("lance_nearest", |b| {
        b.to_async(&runtime)
            .iter(|| lance_nearest(&items, &vectors[next_query()]))
    });
    group.bench_function("lancesql_fts_bound", |b| {
        b.to_async(&runtime).iter(|| {
            lancesql_found(
                &session,
                &full_text,
                ScalarValue::from(texts[next_query()].as_str()),
            )
        })
    });
    group.bench_function("lance_full_text_search", |b| {
        b.to_async(&runtime)
            .iter(|| lance_full_text(&items, &texts[next_query()]))
    });
    // The same pairs in turns, query by query: their ratio is what the goal compares.
    let nearest_turns = std::cell::RefCell::new(Turns::default());
    group.bench_function("vector_search_in_turns", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(in_turns(
                iters,
                &nearest_turns,
                |query| lancesql_found(&session, &nearest, vector_parameter(&vectors[query])),
                |query| lance_nearest(&items, &vectors[query]),
            ))
        })
    });
    let full_text_turns = std::cell::RefCell::new(Turns::default());
    group.bench_function("fts_in_turns", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(in_turns(
                iters,
                &full_text_turns,
                |query| {
                    lancesql_found(
                        &session,
                        &full_text,
                        ScalarValue::from(texts[query].as_str()),
                    )
                },
                |query| lance_full_text(&items, &texts[query]),
            ))
        })
    });
    group.finish();
    nearest_turns
        .borrow()
        .report("vector_search / Lance nearest");
    full_text_turns
        .borrow()
        .report("fts / Lance full_text_search");

    // The loader's loop: both contenders must read every row of the label before either is timed.
    let blobs = runtime.block_on(async {
        Dataset::open(&engine.table_location("blobs").expect("a valid table name"))
            .await
            .expect("open the blobs")
    });
    let take_blobs = runtime.block_on(async {
        session
            .prepare_sql("SELECT * FROM take('blobs', $1)")
            .await
            .expect("prepare the take")
    });
    let label_rows = blob_rows.div_ceil(BLOB_LABELS);
    let round = std::sync::atomic::AtomicU64::new(0);
    let next_round = || round.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        runtime.block_on(lancesql_loader_rows(&session, &take_blobs, next_round())),
        label_rows
    );
    assert_eq!(
        runtime.block_on(lance_loader_rows(&blobs, next_round())),
        label_rows
    );
    let mut group = c.benchmark_group("blob_loop");
    group.sample_size(20);
    group.throughput(criterion::Throughput::Elements(label_rows as u64));
    group.bench_function("lancesql_take_bound", |b| {
        b.to_async(&runtime)
            .iter(|| lancesql_loader_rows(&session, &take_blobs, next_round()))
    });
    group.bench_function("lance_take_rows", |b| {
        b.to_async(&runtime)
            .iter(|| lance_loader_rows(&blobs, next_round()))
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
