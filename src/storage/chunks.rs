//! One ordered stream of rows written by several writers at once.
//!
//! A write whose rows come as one stream (COPY FROM, Flight SQL ingest) would have one Lance
//! writer, which encodes on about one core. [`split`] cuts the stream into consecutive chunks of
//! `chunk_rows` rows (the rows of one data file, so the chunks are the fragments one writer would
//! have made) and starts a writer for each chunk as its first rows arrive, at most `writers` at
//! once. The writers are handed over in chunk order, so the write's transaction can list their
//! fragments in the stream's order.
//!
//! A task of its own reads the stream ahead of the writers within one memory budget shared by
//! all chunks: while one writer encodes its chunk, the next chunks are read and handed to other
//! writers for as long as the budget holds their rows. Rows wider than the budget allows a
//! chunk of (384-float vectors) still go through, chunk after chunk, with less overlap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::RecordBatch;
use datafusion::common::runtime::SpawnedTask;
use datafusion::error::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::write_ahead::Budget;

/// The bytes of input rows one writer of a split stream may have waiting: enough for a chunk of
/// narrow rows (a million rows of a few numbers and short strings) while the next is read.
pub const AHEAD_BYTES_PER_WRITER: usize = 96 << 20;

/// The most bytes of input rows a split stream keeps waiting, however many writers it has.
const MOST_AHEAD_BYTES: usize = 1 << 30;

/// The writers of a split stream and the task that reads it.
pub struct Split<W> {
    /// The writers, in chunk order, as they start.
    pub writers: mpsc::UnboundedReceiver<W>,
    /// Reads the stream and starts the writers; fails only by panicking.
    pub reader: SpawnedTask<()>,
}

/// Splits `data` into chunks of `chunk_rows` rows (the last may be shorter; an empty stream is
/// one empty chunk) and calls `start` with each chunk's rows and a writer slot, which the writer
/// holds until it is done: at most `writers` chunks are written at once. An error of `data` ends
/// the current chunk's rows with it, and nothing more is read. No chunk starts once `stop` is
/// set (a writer failed), and reading ends when no one waits for the writers any more.
pub fn split<W: Send + 'static>(
    data: SendableRecordBatchStream,
    chunk_rows: usize,
    writers: usize,
    stop: Arc<AtomicBool>,
    start: impl Fn(SendableRecordBatchStream, OwnedSemaphorePermit) -> W + Send + 'static,
) -> Split<W> {
    let chunk_rows = chunk_rows.max(1);
    let writers = writers.max(1);
    let budget = Budget::new((AHEAD_BYTES_PER_WRITER * writers).min(MOST_AHEAD_BYTES));
    let slots = Arc::new(Semaphore::new(writers));
    let (started, writers_started) = mpsc::unbounded_channel();
    let reader = SpawnedTask::spawn(async move {
        let schema = data.schema();
        let mut data = data;
        // A batch read but not yet sent: the rest of one that crossed a chunk's end.
        let mut pending: Option<Result<RecordBatch>> = None;
        let mut first = true;
        loop {
            // A chunk starts when it has something to carry; the first always does, so that an
            // empty stream still writes (and creates) an empty table.
            if !first && pending.is_none() {
                match data.next().await {
                    Some(item) => pending = Some(item),
                    None => return,
                }
            }
            first = false;
            if stop.load(Ordering::Relaxed) {
                return;
            }
            // The semaphore is never closed.
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let (sender, receiver) = mpsc::unbounded_channel();
            if started
                .send(start(chunk_stream(schema.clone(), receiver), slot))
                .is_err()
            {
                return;
            }
            let mut rows = 0;
            while rows < chunk_rows {
                let item = match pending.take() {
                    Some(item) => item,
                    None => match data.next().await {
                        Some(item) => item,
                        None => return,
                    },
                };
                let batch = match item {
                    Ok(batch) => batch,
                    Err(error) => {
                        // The chunk's writer fails with it; nothing more is read.
                        let _ = sender.send((Err(error), None));
                        return;
                    }
                };
                let room = chunk_rows - rows;
                let batch = if batch.num_rows() > room {
                    pending = Some(Ok(batch.slice(room, batch.num_rows() - room)));
                    batch.slice(0, room)
                } else {
                    batch
                };
                rows += batch.num_rows();
                let permit = budget.reserve(&batch).await;
                if sender.send((Ok(batch), Some(permit))).is_err() {
                    // The writer is gone: the write failed.
                    return;
                }
            }
        }
    });
    Split {
        writers: writers_started,
        reader,
    }
}

/// The rows sent to `receiver`, each batch's reservation returned as the writer takes it.
fn chunk_stream(
    schema: arrow::datatypes::SchemaRef,
    receiver: mpsc::UnboundedReceiver<(Result<RecordBatch>, Option<OwnedSemaphorePermit>)>,
) -> SendableRecordBatchStream {
    let batches = futures::stream::unfold(receiver, |mut receiver| async move {
        let (item, _reservation) = receiver.recv().await?;
        Some((item, receiver))
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, batches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::test_rows::{numbers, stream_of};
    use arrow::array::Int64Array;
    use datafusion::error::DataFusionError;
    use futures::TryStreamExt;
    use std::sync::atomic::AtomicUsize;

    /// Each chunk collected by a task of its own (a stand-in writer), with the writers running
    /// at the same time counted.
    async fn collect_chunks(
        data: SendableRecordBatchStream,
        chunk_rows: usize,
        writers: usize,
    ) -> (Vec<Result<Vec<i64>>>, usize) {
        let running_in = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let most_in = most.clone();
        let split = split(
            data,
            chunk_rows,
            writers,
            Arc::new(AtomicBool::new(false)),
            move |chunk, slot| {
                let now = running_in.fetch_add(1, Ordering::SeqCst) + 1;
                most_in.fetch_max(now, Ordering::SeqCst);
                let running = running_in.clone();
                SpawnedTask::spawn(async move {
                    // Slow writers, so that the next chunks start while they run.
                    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                    let read: Result<Vec<RecordBatch>> = chunk.try_collect().await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    drop(slot);
                    read.map(|batches| {
                        batches
                            .iter()
                            .flat_map(|batch| {
                                let column = batch.column(0).as_any().downcast_ref::<Int64Array>();
                                column.map(|c| c.values().to_vec()).unwrap_or_default()
                            })
                            .collect()
                    })
                })
            },
        );
        let mut writers_started = split.writers;
        let mut chunks = Vec::new();
        while let Some(writer) = writers_started.recv().await {
            chunks.push(writer.join().await.expect("the writer ran"));
        }
        split.reader.join().await.expect("the reader ran");
        (chunks, most.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn chunks_are_consecutive_rows_written_several_at_once() {
        let input = (0..10).map(|batch| Ok(numbers(batch * 70, 70))).collect();
        let (chunks, most_at_once) = collect_chunks(stream_of(input), 250, 2).await;
        let chunks: Vec<Vec<i64>> = chunks.into_iter().map(|c| c.expect("rows")).collect();
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![250, 250, 200]);
        assert_eq!(chunks.concat(), (0..700).collect::<Vec<_>>());
        assert_eq!(most_at_once, 2, "two writers at once, never more");
    }

    #[tokio::test]
    async fn an_empty_stream_is_one_empty_chunk_and_an_exact_end_adds_none() {
        let (chunks, _) = collect_chunks(stream_of(vec![]), 100, 2).await;
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].as_ref().expect("rows").is_empty());
        let exact = vec![Ok(numbers(0, 100)), Ok(numbers(100, 100))];
        let (chunks, _) = collect_chunks(stream_of(exact), 100, 2).await;
        assert_eq!(chunks.len(), 2);
    }

    #[tokio::test]
    async fn an_error_fails_the_chunk_it_falls_in_and_ends_the_split() {
        let input = vec![
            Ok(numbers(0, 150)),
            Err(DataFusionError::Execution("bad row 150".into())),
            Ok(numbers(150, 100)),
        ];
        let (chunks, _) = collect_chunks(stream_of(input), 100, 2).await;
        assert_eq!(
            chunks.len(),
            2,
            "the chunk of rows 0-99, then the failing one"
        );
        assert_eq!(chunks[0].as_ref().expect("rows").len(), 100);
        let error = chunks[1].as_ref().expect_err("the input's error");
        assert!(error.to_string().contains("bad row 150"), "{error}");
    }

    #[tokio::test]
    async fn no_chunk_starts_once_a_writer_failed() {
        let stop = Arc::new(AtomicBool::new(true));
        let input = (0..5).map(|batch| Ok(numbers(batch * 100, 100))).collect();
        let split = split(stream_of(input), 100, 2, stop, |_chunk, _slot| ());
        let mut writers = split.writers;
        assert!(writers.recv().await.is_none());
        split.reader.join().await.expect("the reader ran");
    }
}
