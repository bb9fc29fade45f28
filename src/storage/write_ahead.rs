//! A write's input computed ahead of Lance's writer, within a memory budget.
//!
//! Lance's writer pulls its input on the task that encodes: it gathers batches until a column's
//! page is full, then encodes and compresses them (FSST, dictionaries, run lengths) before it
//! asks for the next one. Pulled on that same task, the input (a Lance scan to decode, a Parquet
//! file to parse, a query to compute) waited for every encoding while the other cores sat idle.
//! [`write_ahead`] computes the input on a task of its own and keeps batches ready up to a budget
//! ([`WRITE_AHEAD_BYTES`] for a whole write, shared by its parts), so reading and encoding
//! overlap.
//!
//! The budget is in bytes, not batches: the encoder works in bursts of whole pages, so the input
//! must be able to run several megabytes ahead to keep busy through one, and a count of batches
//! deep enough for narrow rows would hold gigabytes of wide ones (384-float vectors). A batch
//! larger than the whole budget still passes, alone.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::common::runtime::SpawnedTask;
use datafusion::error::DataFusionError;
use datafusion::error::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::task_failure_message;
use crate::error::Error;

/// How many bytes of input batches may wait for the writers of one write (shared by its parts).
pub const WRITE_AHEAD_BYTES: usize = 64 << 20;

/// The budget is counted in units of this many bytes (a semaphore permit each).
const UNIT_BYTES: usize = 64 << 10;

/// Bytes of input batches that may wait for writers, shared by whoever reserves from it.
///
/// A batch holds its reservation (a semaphore permit) until a writer takes it. A batch larger
/// than the whole budget waits until nothing else is reserved, then passes alone.
#[derive(Clone)]
pub struct Budget {
    units: usize,
    semaphore: Arc<Semaphore>,
}

impl Budget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: usize) -> Self {
        let units = (bytes / UNIT_BYTES).max(1);
        Budget {
            units,
            semaphore: Arc::new(Semaphore::new(units)),
        }
    }

    /// Waits until `batch` fits and reserves its bytes.
    pub async fn reserve(&self, batch: &RecordBatch) -> OwnedSemaphorePermit {
        let needed = batch_bytes(batch).div_ceil(UNIT_BYTES).clamp(1, self.units);
        let needed = u32::try_from(needed).unwrap_or(u32::MAX);
        match self.semaphore.clone().acquire_many_owned(needed).await {
            Ok(permit) => permit,
            // The semaphore is private and never closed.
            Err(_) => unreachable!("a write budget is never closed"),
        }
    }
}

/// The bytes `batch`'s rows take. A batch decoded from Arrow IPC (Flight SQL ingest) has every
/// column in one shared buffer, and a slice keeps its parent's buffers: counting each column's
/// whole buffers would count that memory many times over.
fn batch_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|column| {
            column
                .to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| column.get_array_memory_size())
        })
        .sum()
}

/// `data`, computed by a task of its own up to `budget_bytes` ahead of its reader.
/// Errors arrive in order, after the batches before them; a panic while computing the input ends
/// the stream with an error. Dropping the returned stream (the write failed) stops the task.
pub fn write_ahead(
    data: SendableRecordBatchStream,
    budget_bytes: usize,
) -> SendableRecordBatchStream {
    let schema = data.schema();
    let budget = Budget::new(budget_bytes);
    // Unbounded: the budget, not the channel, bounds what waits.
    let (sender, receiver) =
        mpsc::unbounded_channel::<(Result<RecordBatch>, Option<OwnedSemaphorePermit>)>();
    let producer = SpawnedTask::spawn(async move {
        let mut data = data;
        while let Some(item) = data.next().await {
            let batch = match item {
                Ok(batch) => batch,
                Err(error) => {
                    // The writer sees the error after the batches before it; nothing follows.
                    let _ = sender.send((Err(error), None));
                    return;
                }
            };
            let permit = budget.reserve(&batch).await;
            if sender.send((Ok(batch), Some(permit))).is_err() {
                return;
            }
        }
    });
    let batches = futures::stream::unfold(
        (receiver, Some(producer)),
        |(mut receiver, mut producer)| async move {
            // The permit is returned as the writer takes the batch: from then on the writer holds
            // it.
            if let Some((item, _permit)) = receiver.recv().await {
                return Some((item, (receiver, producer)));
            }
            // The channel also closes when the producer panicked: that must fail the write, not
            // end its input early and commit the rows so far.
            let failure = producer.take()?.join().await.err()?;
            let error = Error::Internal {
                message: format!(
                    "computing the rows to write failed: {}",
                    task_failure_message(failure)
                ),
            };
            Some((Err(DataFusionError::from(error)), (receiver, None)))
        },
    );
    Box::pin(RecordBatchStreamAdapter::new(schema, batches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_rows::{numbers, stream_of};
    use arrow::array::Int64Array;
    use futures::TryStreamExt;

    #[test]
    fn a_slice_counts_the_rows_it_holds_not_its_parents_buffers() {
        let whole = numbers(0, 100_000);
        let tenth = whole.slice(0, 10_000);
        assert_eq!(batch_bytes(&whole), 800_000);
        assert_eq!(batch_bytes(&tenth), 80_000);
        assert_eq!(tenth.get_array_memory_size(), whole.get_array_memory_size());
    }

    #[tokio::test]
    async fn batches_arrive_in_order_including_one_larger_than_the_budget() {
        let huge_rows = (WRITE_AHEAD_BYTES / 8 + 1) as i64;
        let input = vec![
            Ok(numbers(0, 10)),
            Ok(numbers(10, huge_rows)),
            Ok(numbers(10 + huge_rows, 5)),
        ];
        let read: Vec<RecordBatch> = write_ahead(stream_of(input), WRITE_AHEAD_BYTES)
            .try_collect()
            .await
            .expect("no errors");
        let counts: Vec<usize> = read.iter().map(RecordBatch::num_rows).collect();
        assert_eq!(counts, vec![10, huge_rows as usize, 5]);
        let last = read[2]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int64");
        assert_eq!(last.value(0), 10 + huge_rows);
    }

    #[tokio::test]
    async fn an_error_arrives_after_the_batches_before_it_and_ends_the_stream() {
        let input = vec![
            Ok(numbers(0, 3)),
            Err(DataFusionError::Execution("the source broke".into())),
            Ok(numbers(3, 3)),
        ];
        let read: Vec<Result<RecordBatch>> = write_ahead(stream_of(input), WRITE_AHEAD_BYTES)
            .collect()
            .await;
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].as_ref().map(RecordBatch::num_rows).ok(), Some(3));
        let error = read[1].as_ref().expect_err("the source's error");
        assert!(error.to_string().contains("the source broke"), "{error}");
    }

    #[tokio::test]
    async fn a_panic_computing_the_input_fails_the_stream_instead_of_ending_it() {
        let panicking = futures::stream::iter(0..2).map(|index: i64| {
            assert!(index == 0, "the input's own bug");
            Ok(numbers(0, 4))
        });
        let schema = numbers(0, 0).schema();
        let ahead = write_ahead(
            Box::pin(RecordBatchStreamAdapter::new(schema, panicking)),
            WRITE_AHEAD_BYTES,
        );
        let read: Vec<Result<RecordBatch>> = ahead.collect().await;
        assert_eq!(read.len(), 2, "the batch before the panic, then an error");
        let error = read[1].as_ref().expect_err("the panic as an error");
        assert!(error.to_string().contains("the input's own bug"), "{error}");
    }

    #[tokio::test]
    async fn the_input_stops_within_the_budget_when_the_writer_does_not_read() {
        let pulled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = pulled.clone();
        let rows_per_batch = (UNIT_BYTES * 16 / 8) as i64;
        let endless = futures::stream::iter(0..).map(move |index: i64| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(numbers(index * rows_per_batch, rows_per_batch))
        });
        let schema = numbers(0, 0).schema();
        let ahead = write_ahead(
            Box::pin(RecordBatchStreamAdapter::new(schema, endless)),
            WRITE_AHEAD_BYTES,
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let batch_bytes = numbers(0, rows_per_batch).get_array_memory_size();
        let most = WRITE_AHEAD_BYTES / batch_bytes + 2;
        let seen = pulled.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            seen <= most,
            "pulled {seen} batches of {batch_bytes} bytes ahead, at most {most} fit"
        );
        assert!(seen >= 2, "pulled only {seen} batches ahead");
        drop(ahead);
    }
}
