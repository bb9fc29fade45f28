//! Test fixtures, written at run time: Lance datasets of known shapes, and the same rows as
//! in-memory tables (`oracle.public.<name>`) for comparing results against plain DataFusion.
//!
//! Tables sharing the "basic" schema: `t_basic`, `t_empty`, `t_deleted` (every third row
//! deleted), `t_frags` (20 fragments of 10 rows), `t_indexed` (BTREE on `id`, BITMAP on
//! `category`, BTREE on `score`). `t_evolved` gained column `b` after its first fragment was
//! written, so that fragment has no data for it. `t_indexed` also has a ZONEMAP on `day`;
//! `t_labels` has a list column under a LABEL_LIST index. `t_vectors` (256 rows in two
//! fragments) has a 4-dimensional float32 `embedding` and a 2-byte `bits` vector, no index.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, FixedSizeListArray, Float32Array, Float64Array,
    Int64Array, ListBuilder, RecordBatch, RecordBatchIterator, StringArray, StringBuilder,
    TimestampMicrosecondArray, UInt8Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::MemoryCatalogProvider;
use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::MemTable;
use lance::Dataset;
use lance::dataset::{NewColumnTransform, WriteMode, WriteParams};
use lance::index::DatasetIndexExt;
use lance_index::IndexType;
use lance_index::scalar::ScalarIndexParams;
use lancesql::LanceSession;

/// Rows in the basic fixtures (before deletions).
const ROWS: i64 = 200;

/// Names of the fixtures that share the basic schema (oracle queries run over each).
pub const BASIC_TABLES: [&str; 5] = ["t_basic", "t_empty", "t_deleted", "t_frags", "t_indexed"];

fn basic_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("category", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("day", DataType::Date32, true),
    ]))
}

/// 200 rows with NULLs in every nullable column, NaN and ±0 scores, and repeated categories.
fn basic_rows() -> RecordBatch {
    let ids: Vec<i64> = (0..ROWS).collect();
    let names: Vec<Option<String>> = ids
        .iter()
        .map(|i| {
            (i % 11 != 0).then(|| format!("name_{i:03}{}", if i % 4 == 0 { "_x" } else { "" }))
        })
        .collect();
    let categories: Vec<Option<&str>> = ids
        .iter()
        .map(|i| match i % 5 {
            0 => None,
            1 => Some("alpha"),
            2 => Some("beta"),
            3 => Some("gamma"),
            _ => Some("Alpha"),
        })
        .collect();
    let scores: Vec<Option<f64>> = ids
        .iter()
        .map(|i| match i % 17 {
            0 => None,
            1 => Some(f64::NAN),
            2 => Some(-0.0),
            _ => Some((*i as f64) * 1.5 - 100.0),
        })
        .collect();
    let flags: Vec<Option<bool>> = ids
        .iter()
        .map(|i| (i % 7 != 0).then_some(i % 2 == 0))
        .collect();
    let timestamps: Vec<Option<i64>> = ids
        .iter()
        .map(|i| (i % 13 != 0).then_some(1_700_000_000_000_000 + i * 3_600_000_000))
        .collect();
    let days: Vec<Option<i32>> = ids
        .iter()
        .map(|i| (i % 9 != 0).then_some(19_000 + *i as i32))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(StringArray::from(names)),
        Arc::new(StringArray::from(categories)),
        Arc::new(Float64Array::from(scores)),
        Arc::new(BooleanArray::from(flags)),
        Arc::new(TimestampMicrosecondArray::from(timestamps).with_timezone("UTC")),
        Arc::new(Date32Array::from(days)),
    ];
    RecordBatch::try_new(basic_schema(), columns).expect("fixture batch matches its schema")
}

async fn write(
    root: &str,
    name: &str,
    batches: Vec<RecordBatch>,
    schema: SchemaRef,
    params: WriteParams,
) -> Dataset {
    let reader = RecordBatchIterator::new(batches.into_iter().map(Ok), schema);
    Dataset::write(
        reader,
        format!("{root}/{name}.lance").as_str(),
        Some(params),
    )
    .await
    .unwrap_or_else(|error| panic!("writing fixture {name}: {error}"))
}

/// One table's expected rows: name, schema, batches.
pub type Oracle = (String, SchemaRef, Vec<RecordBatch>);

/// Writes every fixture under `root` and returns the oracle rows per table.
pub async fn write_fixtures(root: &str) -> Vec<Oracle> {
    let basic = basic_rows();
    let schema = basic_schema();
    let mut oracle = Vec::new();

    write(
        root,
        "t_basic",
        vec![basic.clone()],
        schema.clone(),
        WriteParams::default(),
    )
    .await;
    oracle.push(("t_basic".to_string(), schema.clone(), vec![basic.clone()]));

    write(
        root,
        "t_empty",
        vec![],
        schema.clone(),
        WriteParams::default(),
    )
    .await;
    oracle.push(("t_empty".to_string(), schema.clone(), vec![]));

    let mut deleted = write(
        root,
        "t_deleted",
        vec![basic.clone()],
        schema.clone(),
        small_files(50),
    )
    .await;
    deleted
        .delete("id % 3 = 0")
        .await
        .expect("deleting fixture rows");
    let keep: BooleanArray = (0..ROWS).map(|i| Some(i % 3 != 0)).collect();
    let remaining =
        arrow::compute::filter_record_batch(&basic, &keep).expect("filtering oracle rows");
    oracle.push(("t_deleted".to_string(), schema.clone(), vec![remaining]));

    write(
        root,
        "t_frags",
        vec![basic.clone()],
        schema.clone(),
        small_files(10),
    )
    .await;
    oracle.push(("t_frags".to_string(), schema.clone(), vec![basic.clone()]));

    let mut indexed = write(
        root,
        "t_indexed",
        vec![basic.clone()],
        schema.clone(),
        small_files(64),
    )
    .await;
    for (column, index_type) in [
        ("id", IndexType::BTree),
        ("category", IndexType::Bitmap),
        ("score", IndexType::BTree),
        ("day", IndexType::ZoneMap),
    ] {
        let params = ScalarIndexParams::new(index_type.to_string().to_lowercase());
        indexed
            .create_index(
                &[column],
                index_type,
                Some(format!("{column}_idx")),
                &params,
                true,
            )
            .await
            .unwrap_or_else(|error| panic!("indexing {column}: {error}"));
    }
    oracle.push(("t_indexed".to_string(), schema.clone(), vec![basic.clone()]));

    oracle.push(write_evolved(root).await);
    oracle.push(write_labels(root).await);
    oracle.push(write_vectors(root).await);
    oracle
}

/// `t_vectors`: `id`, `category` (4 values), `embedding` (float32 × 4, all distances from the
/// test queries distinct) and `bits` (uint8 × 2, for hamming), in two fragments of 128 rows.
async fn write_vectors(root: &str) -> Oracle {
    let rows = 256usize;
    let embedding_item = Arc::new(Field::new("item", DataType::Float32, true));
    let bits_item = Arc::new(Field::new("item", DataType::UInt8, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("category", DataType::Utf8, false),
        Field::new(
            "embedding",
            DataType::FixedSizeList(embedding_item.clone(), 4),
            false,
        ),
        Field::new("bits", DataType::FixedSizeList(bits_item.clone(), 2), false),
    ]));
    let values: Vec<f32> = (0..rows)
        .flat_map(|i| {
            let i = i as f32;
            [
                i * 0.5,
                (i * 0.37).sin() * 10.0,
                (i * 0.11).cos() * 7.0,
                (i % 7.0) * 1.3,
            ]
        })
        .collect();
    let bits: Vec<u8> = (0..rows)
        .flat_map(|i| [(i * 37 % 256) as u8, (i * 11 % 256) as u8])
        .collect();
    let categories = ["a", "b", "c", "d"];
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            Arc::new(StringArray::from_iter_values(
                (0..rows).map(|i| categories[i % 4]),
            )),
            Arc::new(
                FixedSizeListArray::try_new(
                    embedding_item,
                    4,
                    Arc::new(Float32Array::from(values)),
                    None,
                )
                .expect("embedding vectors"),
            ),
            Arc::new(
                FixedSizeListArray::try_new(bits_item, 2, Arc::new(UInt8Array::from(bits)), None)
                    .expect("bit vectors"),
            ),
        ],
    )
    .expect("vectors fixture batch");
    write(
        root,
        "t_vectors",
        vec![batch.clone()],
        schema.clone(),
        small_files(128),
    )
    .await;
    ("t_vectors".to_string(), schema, vec![batch])
}

fn small_files(rows: usize) -> WriteParams {
    WriteParams {
        max_rows_per_file: rows,
        max_rows_per_group: rows,
        ..Default::default()
    }
}

/// `t_labels`: `tags` (list of strings) with NULL lists, empty lists and NULL items, under a
/// LABEL_LIST index.
async fn write_labels(root: &str) -> Oracle {
    let item = Arc::new(Field::new("item", DataType::Utf8, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("tags", DataType::List(item), true),
    ]));
    let names = ["red", "green", "blue"];
    let tags: Vec<Option<Vec<Option<&str>>>> = (0..60usize)
        .map(|i| match i % 6 {
            0 => None,
            1 => Some(vec![]),
            2 => Some(vec![Some(names[i % 3]), None]),
            _ => Some(vec![Some(names[i % 3]), Some(names[(i / 6) % 3])]),
        })
        .collect();
    let mut tag_lists = ListBuilder::new(StringBuilder::new());
    for row in tags {
        if let Some(items) = &row {
            for item in items {
                tag_lists.values().append_option(*item);
            }
        }
        tag_lists.append(row.is_some());
    }
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..60)),
            Arc::new(tag_lists.finish()),
        ],
    )
    .expect("labels fixture batch");
    let mut dataset = write(
        root,
        "t_labels",
        vec![batch.clone()],
        schema.clone(),
        small_files(25),
    )
    .await;
    let params = ScalarIndexParams::new(IndexType::LabelList.to_string().to_lowercase());
    dataset
        .create_index(
            &["tags"],
            IndexType::LabelList,
            Some("tags_idx".into()),
            &params,
            true,
        )
        .await
        .unwrap_or_else(|error| panic!("indexing tags: {error}"));
    ("t_labels".to_string(), schema, vec![batch])
}

/// `t_evolved`: (id, a) written first; column `b` added without rewriting; then rows with `b`.
async fn write_evolved(root: &str) -> Oracle {
    let first_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("a", DataType::Utf8, true),
    ]));
    let first = RecordBatch::try_new(
        first_schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec![Some("x"), None, Some("z")])),
        ],
    )
    .expect("evolved fixture batch");
    let mut dataset = write(
        root,
        "t_evolved",
        vec![first.clone()],
        first_schema,
        WriteParams::default(),
    )
    .await;
    let b_field = Field::new("b", DataType::Float64, true);
    dataset
        .add_columns(
            NewColumnTransform::AllNulls(Arc::new(Schema::new(vec![b_field.clone()]))),
            None,
            None,
        )
        .await
        .expect("adding column b");
    let full_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("a", DataType::Utf8, true),
        b_field,
    ]));
    let second = RecordBatch::try_new(
        full_schema.clone(),
        vec![
            Arc::new(Int64Array::from(vec![4, 5])),
            Arc::new(StringArray::from(vec![Some("w"), Some("v")])),
            Arc::new(Float64Array::from(vec![Some(0.5), None])),
        ],
    )
    .expect("evolved second batch");
    let append = WriteParams {
        mode: WriteMode::Append,
        ..Default::default()
    };
    write(
        root,
        "t_evolved",
        vec![second.clone()],
        full_schema.clone(),
        append,
    )
    .await;
    let first_with_b = RecordBatch::try_new(
        full_schema.clone(),
        vec![
            first.column(0).clone(),
            first.column(1).clone(),
            Arc::new(Float64Array::from(vec![None, None, None])),
        ],
    )
    .expect("oracle for evolved rows");
    (
        "t_evolved".to_string(),
        full_schema,
        vec![first_with_b, second],
    )
}

/// Registers the oracle rows as `oracle.public.<name>` in `session`.
pub fn register_oracle(session: &LanceSession, oracle: &[Oracle]) {
    let schema_provider = Arc::new(MemorySchemaProvider::new());
    for (name, schema, batches) in oracle {
        let table = MemTable::try_new(schema.clone(), vec![batches.clone()]).expect("oracle table");
        schema_provider
            .register_table(name.clone(), Arc::new(table))
            .expect("registering oracle table");
    }
    let catalog = Arc::new(MemoryCatalogProvider::new());
    catalog
        .register_schema("public", schema_provider)
        .expect("registering oracle schema");
    session
        .register_catalog("oracle", catalog)
        .expect("the oracle catalog registers");
}
