//! Rows for the storage layer's unit tests: batches of consecutive numbers and streams of them.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

/// One non-null int64 column `n` holding `count` numbers from `from` on.
pub fn numbers(from: i64, count: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    let values = Int64Array::from_iter_values(from..from + count);
    RecordBatch::try_new(schema, vec![Arc::new(values)]).expect("one int64 column")
}

/// `items` as a stream of `numbers`' schema.
pub fn stream_of(items: Vec<Result<RecordBatch>>) -> SendableRecordBatchStream {
    Box::pin(RecordBatchStreamAdapter::new(
        numbers(0, 0).schema(),
        futures::stream::iter(items),
    ))
}
