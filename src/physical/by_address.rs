//! Rows of one pinned dataset read by row address: each fragment's rows by its own Lance
//! fragment reader, concurrently, then put into the order asked for with one copy of each value.
//!
//! Lance's own take of addresses in several fragments concatenates the fragments' rows and,
//! when they were not asked for in address order, reorders them: two copies of every value.
//! Taking each fragment's rows on their own and interleaving them straight into the order asked
//! for copies each value once, and not at all when one fragment's rows are asked for in address
//! order. For large binary columns (images, audio) those copies are most of a take's CPU. Lance's
//! projection step, a small DataFusion plan of its own, runs only where it does more than pass
//! stored columns through.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch, RecordBatchOptions};
use arrow::error::ArrowError;
use datafusion::logical_expr::Expr;
use futures::{StreamExt, TryStreamExt};
use lance::Dataset;
use lance::dataset::fragment::{FileFragment, FragReadConfig};
use lance_core::datatypes::Schema;
use lance_datafusion::projection::ProjectionPlan;

/// A row of a list of batches: (batch, row within it).
pub type RowPosition = (usize, usize);

/// The rows at `addresses` (sorted, distinct) as Lance stores them: the physical columns of
/// `plan` (with `_rowid` and `_rowaddr` where it asks for them), one batch per fragment in
/// address order, before [`projected`]. A fragment's batch leaves out its rows deleted in the
/// pinned version, so it may hold fewer rows than were asked of it.
pub async fn take_per_fragment(
    dataset: &Dataset,
    plan: &ProjectionPlan,
    addresses: &[u64],
) -> lance::Result<Vec<RecordBatch>> {
    let physical = &plan.physical_projection;
    let schema = Arc::new(physical.to_bare_schema());
    let read = FragReadConfig::default()
        .with_row_id(physical.with_row_id)
        .with_row_address(physical.with_row_addr)
        .with_row_created_at_version(physical.with_row_created_at_version)
        .with_row_last_updated_at_version(physical.with_row_last_updated_at_version);
    let parallelism = dataset.object_store(None).await?.io_parallelism();
    // A row address is the fragment id in the high 32 bits and the row offset in the low.
    let runs = addresses
        .chunk_by(|left, right| left >> 32 == right >> 32)
        .map(|run| {
            let fragment_id = run[0] >> 32;
            let fragment = dataset.get_fragment(fragment_id as usize).ok_or_else(|| {
                lance::Error::invalid_input(format!(
                    "row address {} is in fragment {fragment_id}, which the table does not have",
                    run[0]
                ))
            })?;
            let offsets: Vec<u32> = run.iter().map(|address| *address as u32).collect();
            Ok((fragment, offsets, schema.clone(), read.clone()))
        })
        .collect::<lance::Result<Vec<_>>>()?;
    futures::stream::iter(runs)
        .map(|(fragment, offsets, schema, read)| fragment_rows(fragment, offsets, schema, read))
        .buffered(parallelism)
        .try_collect()
        .await
}

/// The rows at `offsets` (sorted, distinct) of one fragment.
async fn fragment_rows(
    fragment: FileFragment,
    offsets: Vec<u32>,
    schema: Arc<Schema>,
    read: FragReadConfig,
) -> lance::Result<RecordBatch> {
    let reader = fragment.open(&schema, read).await?;
    match (offsets.first(), offsets.last()) {
        (Some(first), Some(last)) if (last - first) as usize + 1 == offsets.len() => {
            reader
                .read_range_as_batch(*first as usize..*last as usize + 1)
                .await
        }
        _ => reader.take_as_batch(&offsets, None).await,
    }
}

/// `batch`, rows read by [`take_per_fragment`], as `plan` asks for them: its output columns,
/// Lance's JSON columns as Arrow JSON text.
pub async fn projected(plan: &ProjectionPlan, batch: RecordBatch) -> lance::Result<RecordBatch> {
    let batch = match stored_output_columns(plan, &batch) {
        Some(columns) => batch.project(&columns)?,
        // Lance evaluates the projection as a DataFusion plan of its own.
        None => plan.project_batch(batch).await?,
    };
    Ok(lance_arrow::json::convert_lance_json_to_arrow(&batch)?)
}

/// Where `plan`'s output columns are in `batch`, when each is a stored column passed through
/// under its own name (nothing to evaluate, no row offset to compute).
fn stored_output_columns(plan: &ProjectionPlan, batch: &RecordBatch) -> Option<Vec<usize>> {
    if plan.must_add_row_offset {
        return None;
    }
    plan.requested_output_expr
        .iter()
        .map(|output| match &output.expr {
            Expr::Column(column) if column.relation.is_none() && column.name == output.name => {
                batch.schema_ref().index_of(&output.name).ok()
            }
            _ => None,
        })
        .collect()
}

/// The rows of `batches` (all of one schema) in `order`, repeats allowed, each value copied
/// once; a single batch asked for whole and in its own order is returned as it is. `None` when
/// no row is asked for (the caller knows the schema such an empty result has).
pub fn interleaved(
    batches: &[RecordBatch],
    order: &[RowPosition],
) -> Result<Option<RecordBatch>, ArrowError> {
    let Some(first) = batches.first().filter(|_| !order.is_empty()) else {
        return Ok(None);
    };
    if let [batch] = batches
        && batch.num_rows() == order.len()
        && order
            .iter()
            .enumerate()
            .all(|(index, (_, row))| *row == index)
    {
        return Ok(Some(batch.clone()));
    }
    let schema = first.schema();
    let columns = (0..schema.fields().len())
        .map(|column| {
            let arrays: Vec<&dyn Array> = batches
                .iter()
                .map(|batch| batch.column(column).as_ref())
                .collect();
            arrow::compute::interleave(&arrays, order)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(order.len()));
    RecordBatch::try_new_with_options(schema, columns, &options).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    use arrow::array::{Int64Array, LargeBinaryArray};
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

    fn batch(schema: &SchemaRef, ids: &[i64]) -> RecordBatch {
        let payloads: Vec<Vec<u8>> = ids.iter().map(|id| vec![*id as u8; 3]).collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(LargeBinaryArray::from_iter_values(payloads)),
            ],
        )
        .expect("a test batch")
    }

    fn ids(batch: &RecordBatch) -> Vec<i64> {
        batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int64 ids")
            .values()
            .to_vec()
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("payload", DataType::LargeBinary, false),
        ]))
    }

    #[test]
    fn rows_of_several_batches_come_in_the_order_asked_with_repeats() {
        let schema = schema();
        let batches = [batch(&schema, &[1, 2]), batch(&schema, &[7, 8, 9])];
        let rows = interleaved(&batches, &[(1, 2), (0, 0), (1, 2), (0, 1)])
            .expect("interleaved")
            .expect("rows");
        assert_eq!(ids(&rows), vec![9, 1, 9, 2]);
        let payloads = rows
            .column(1)
            .as_any()
            .downcast_ref::<LargeBinaryArray>()
            .expect("payloads");
        assert_eq!(payloads.value(2), [9u8; 3]);
    }

    #[test]
    fn one_batch_asked_in_its_order_is_not_copied() {
        let schema = schema();
        let batches = [batch(&schema, &[4, 5])];
        let rows = interleaved(&batches, &[(0, 0), (0, 1)])
            .expect("interleaved")
            .expect("rows");
        assert_eq!(
            rows.column(1).to_data().buffers()[1].as_ptr(),
            batches[0].column(1).to_data().buffers()[1].as_ptr()
        );
    }

    #[test]
    fn nothing_asked_gives_no_batch() {
        let schema = schema();
        let batches = [batch(&schema, &[4, 5])];
        assert!(interleaved(&batches, &[]).expect("interleaved").is_none());
        assert!(interleaved(&[], &[]).expect("interleaved").is_none());
    }
}
