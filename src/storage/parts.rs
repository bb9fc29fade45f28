//! A write's rows as parts, written at once and committed as one.
//!
//! Lance's writer encodes on the task that feeds it (FSST, dictionaries, run lengths): about one
//! core per stream of rows. A write whose rows come as several streams (the partitions of a
//! DataFusion plan: a scan split by fragments, a Parquet file split by row groups) gets a writer
//! per stream, each on a task of its own writing fragments of its own. All their fragments go
//! into one transaction, part 0's first, so the write is still one commit and each part's rows
//! keep their order in the table. A write of one long stream (COPY FROM, Flight SQL ingest) is
//! split into consecutive chunks of a data file's rows, a writer each, several at once
//! ([`super::chunks`]); its fragments go into the transaction in the stream's order.
//!
//! When a part fails, the others are stopped, the data files of the parts that finished are
//! removed (Lance removes a failed writer's own files), and the first failure is returned: the
//! input's own error when it was the input that failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::datatypes::SchemaRef;
use datafusion::common::runtime::SpawnedTask;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, execute_stream_partitioned};
use futures::StreamExt;
use lance::Dataset;
use lance::dataset::transaction::{Operation, Transaction};
use lance::dataset::{InsertBuilder, WriteParams};
use tokio::sync::OwnedSemaphorePermit;

use super::chunks::split;
use super::write_ahead::{WRITE_AHEAD_BYTES, write_ahead};
use super::{DataRoot, FirstError, remember_first_error, task_failure_message};
use crate::config::LanceOptions;
use crate::error::Error;

/// The rows of a write: one or more streams of one schema, in order.
pub struct WriteInput {
    rows: Rows,
    /// Rows per data file (Lance's `max_rows_per_file`); `None`: Lance's default.
    max_rows_per_file: Option<usize>,
}

enum Rows {
    /// Streams written at once, a writer each, in order. Never empty.
    Parts(Vec<SendableRecordBatchStream>),
    /// One stream written as consecutive chunks of `max_rows_per_file` rows, a writer each, up
    /// to `writers` at once.
    Chunked {
        stream: SendableRecordBatchStream,
        writers: usize,
    },
}

impl WriteInput {
    /// Every output partition of `plan`, in order, as a part; or, when the plan is expected to
    /// give fewer rows than `lance.parallel_write_min_rows`, one part reading the partitions one
    /// after another (a small write stays one fragment).
    pub fn partitions(plan: Arc<dyn ExecutionPlan>, context: Arc<TaskContext>) -> DFResult<Self> {
        let options = LanceOptions::of(context.session_config().options());
        let expected_rows = plan.partition_statistics(None)?.num_rows;
        let small = matches!(expected_rows.get_value(), Some(rows) if *rows < options.parallel_write_min_rows);
        let schema = plan.schema();
        let parts = execute_stream_partitioned(plan.clone(), context.clone())?;
        let parts = if parts.is_empty() {
            // A plan of no partitions has no rows; one empty part still creates a table.
            vec![datafusion::physical_plan::execute_stream(plan, context)?]
        } else if small && parts.len() > 1 {
            let in_order = futures::stream::iter(parts).flatten();
            vec![Box::pin(RecordBatchStreamAdapter::new(schema, in_order))
                as SendableRecordBatchStream]
        } else {
            parts
        };
        Ok(WriteInput {
            rows: Rows::Parts(parts),
            max_rows_per_file: Some(options.max_rows_per_file),
        })
    }

    /// One ordered stream (COPY FROM, Flight SQL ingest), in data files of
    /// `lance.max_rows_per_file` rows; a stream longer than one is written by up to `writers`
    /// writers at once, a chunk of one data file each.
    pub fn stream(
        stream: SendableRecordBatchStream,
        writers: usize,
        options: &LanceOptions,
    ) -> Self {
        let rows = if writers > 1 {
            Rows::Chunked { stream, writers }
        } else {
            Rows::Parts(vec![stream])
        };
        WriteInput {
            rows,
            max_rows_per_file: Some(options.max_rows_per_file),
        }
    }

    /// The schema of the rows.
    pub fn schema(&self) -> SchemaRef {
        match &self.rows {
            Rows::Parts(parts) => parts[0].schema(),
            Rows::Chunked { stream, .. } => stream.schema(),
        }
    }

    /// Each stream of rows passed through `change` (a chunked stream before it is split).
    pub fn map_parts(
        self,
        mut change: impl FnMut(SendableRecordBatchStream) -> SendableRecordBatchStream,
    ) -> Self {
        let rows = match self.rows {
            Rows::Parts(parts) => Rows::Parts(parts.into_iter().map(change).collect()),
            Rows::Chunked { stream, writers } => Rows::Chunked {
                stream: change(stream),
                writers,
            },
        };
        WriteInput {
            rows,
            max_rows_per_file: self.max_rows_per_file,
        }
    }
}

/// One stream, one writer, Lance's default data file size (small writes of the engine's own).
impl From<SendableRecordBatchStream> for WriteInput {
    fn from(stream: SendableRecordBatchStream) -> Self {
        WriteInput {
            rows: Rows::Parts(vec![stream]),
            max_rows_per_file: None,
        }
    }
}

/// Where a write's fragments go.
#[derive(Clone)]
pub(super) enum Destination {
    /// A table that does not exist yet, by its write URI.
    New(String),
    /// An existing table, at the version the write is based on.
    Existing(Arc<Dataset>),
}

/// Why [`DataRoot::write_parts`] wrote nothing.
pub(super) enum PartsFailure {
    /// The rows to write failed (a bad value, a failing expression): their error.
    Input(DataFusionError),
    /// Lance refused or failed the write.
    Lance(lance::Error),
    /// A writer panicked (Lance asserts on some inputs).
    Panicked(String),
}

impl PartsFailure {
    /// The error a user sees: the input's own, else what failed while `doing` (`writing table
    /// 'x'`).
    pub(super) fn into_error(self, doing: String, uri: &str) -> Error {
        match self {
            PartsFailure::Input(cause) => Error::from(cause),
            PartsFailure::Lance(source) => Error::lance(doing, uri, source),
            PartsFailure::Panicked(message) => Error::Internal {
                message: format!("{doing} failed inside Lance: {message}"),
            },
        }
    }
}

impl DataRoot {
    /// Writes every part of `input` to `destination` with `params`, at once; returns one
    /// uncommitted transaction carrying all their fragments, part 0's first. On failure no
    /// data file of this write is left behind (see the module's documentation).
    pub(super) async fn write_parts(
        &self,
        uri: &str,
        destination: Destination,
        mut params: WriteParams,
        input: WriteInput,
    ) -> Result<Transaction, PartsFailure> {
        if let Some(rows) = input.max_rows_per_file {
            params.max_rows_per_file = rows;
        }
        let input_error = FirstError::default();
        let stop = Arc::new(AtomicBool::new(false));
        let start = StartWriter {
            destination,
            params: params.clone(),
            stop: stop.clone(),
        };
        // The writers in order, and for a split stream the task reading it.
        let (mut writers, reader) = match input.rows {
            Rows::Parts(parts) => {
                let ahead = (WRITE_AHEAD_BYTES / parts.len()).max(1);
                let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
                for part in parts {
                    let part = remember_first_error(write_ahead(part, ahead), &input_error);
                    // The receiver is right here: sending cannot fail.
                    let _ = sender.send(start.spawn(part, None));
                }
                (receiver, None)
            }
            Rows::Chunked { stream, writers } => {
                let split = split(
                    remember_first_error(stream, &input_error),
                    params.max_rows_per_file,
                    writers,
                    stop.clone(),
                    move |chunk, slot| start.spawn(chunk, Some(slot)),
                );
                (split.writers, Some(split.reader))
            }
        };
        let mut written = Vec::new();
        let mut failure = None;
        let mut stopped = None;
        while let Some(writer) = writers.recv().await {
            match writer.join().await {
                Ok((Ok(transaction), _)) => written.push(transaction),
                Ok((Err(source), true)) => failure = Some(PartsFailure::Lance(source)),
                Ok((Err(source), false)) => {
                    stopped.get_or_insert(PartsFailure::Lance(source));
                }
                Err(join) => {
                    stop.store(true, Ordering::Relaxed);
                    failure.get_or_insert(PartsFailure::Panicked(task_failure_message(join)));
                }
            }
        }
        // A split stream's reader panicking ends a chunk early: those rows must not commit.
        if let Some(reader) = reader
            && let Err(join) = reader.join().await
        {
            stop.store(true, Ordering::Relaxed);
            failure.get_or_insert(PartsFailure::Panicked(format!(
                "reading the rows to write: {}",
                task_failure_message(join)
            )));
        }
        let failure = match failure.or(stopped) {
            None => return merge(written).map_err(PartsFailure::Lance),
            Some(failure) => failure,
        };
        for transaction in &written {
            if let Err(cleanup) = self.remove_written_files(uri, transaction).await {
                tracing::warn!(%uri, error = %cleanup, "could not remove the data files of a failed write");
            }
        }
        Err(match input_error.take() {
            Some(cause) => PartsFailure::Input(cause),
            None => failure,
        })
    }
}

/// Starts the writer of one part (or chunk) of a write.
struct StartWriter {
    destination: Destination,
    params: WriteParams,
    /// Set by the first writer to fail; the others stop.
    stop: Arc<AtomicBool>,
}

/// A writer's result, and whether it was the first of its write to fail.
type Writer = SpawnedTask<(Result<Transaction, lance::Error>, bool)>;

impl StartWriter {
    /// A task writing `part`'s rows as fragments of an uncommitted transaction, holding `slot`
    /// (a split stream's limit on writers at once) until it is done.
    fn spawn(&self, part: SendableRecordBatchStream, slot: Option<OwnedSemaphorePermit>) -> Writer {
        let part = until_stopped(part, self.stop.clone());
        let destination = self.destination.clone();
        let params = self.params.clone();
        let stop = self.stop.clone();
        SpawnedTask::spawn(async move {
            let builder = match &destination {
                Destination::New(uri) => InsertBuilder::new(uri.as_str()),
                Destination::Existing(dataset) => InsertBuilder::new(dataset.clone()),
            };
            let written = builder
                .with_params(&params)
                .execute_uncommitted_stream(part)
                .await;
            drop(slot);
            // Only the first failure counts: the parts failing after it were stopped by it.
            let failed_first = written.is_err() && !stop.swap(true, Ordering::Relaxed);
            (written, failed_first)
        })
    }
}

/// `part`, ending in an error as soon as `stop` is set (another part of the write failed), so
/// its writer gives up and removes its files instead of finishing a write that is thrown away.
fn until_stopped(
    part: SendableRecordBatchStream,
    stop: Arc<AtomicBool>,
) -> SendableRecordBatchStream {
    let schema = part.schema();
    let mut stopped = false;
    let guarded = part.map(move |item| {
        if !stopped && stop.load(Ordering::Relaxed) {
            stopped = true;
            return Err(DataFusionError::Execution(
                "another part of this write failed".to_string(),
            ));
        }
        item
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, guarded))
}

/// One transaction of the parts' transactions: the first, with every part's new fragments in
/// order. Parts of one write all append or all overwrite.
fn merge(transactions: Vec<Transaction>) -> Result<Transaction, lance::Error> {
    let mut parts = transactions.into_iter();
    let mut merged = parts
        .next()
        .ok_or_else(|| lance::Error::internal("a write of no parts"))?;
    for part in parts {
        let more = match part.operation {
            Operation::Append { fragments } | Operation::Overwrite { fragments, .. } => fragments,
            other => {
                return Err(lance::Error::internal(format!(
                    "a part of a write planned {}",
                    other.name()
                )));
            }
        };
        match &mut merged.operation {
            Operation::Append { fragments } | Operation::Overwrite { fragments, .. } => {
                fragments.extend(more)
            }
            other => {
                return Err(lance::Error::internal(format!(
                    "a write planned {}",
                    other.name()
                )));
            }
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;
    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use futures::TryStreamExt;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]))
    }

    /// A part of `batches` batches of 100 numbers from `from` on, then, if given, `failure` a
    /// moment later (when the other parts have finished).
    fn part(from: i64, batches: i64, failure: Option<&str>) -> SendableRecordBatchStream {
        let items: Vec<DFResult<RecordBatch>> = (0..batches)
            .map(|batch| {
                let start = from + batch * 100;
                let values = Int64Array::from_iter_values(start..start + 100);
                Ok(RecordBatch::try_new(schema(), vec![Arc::new(values)])?)
            })
            .collect();
        let failure = failure.map(|message| DataFusionError::Execution(message.to_string()));
        let late_failure = futures::stream::iter(failure).then(|error| async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            Err(error)
        });
        let items = futures::stream::iter(items).chain(late_failure);
        Box::pin(RecordBatchStreamAdapter::new(schema(), items))
    }

    fn never_compact() -> crate::storage::AutoCompact {
        crate::storage::AutoCompact {
            fragments: 0,
            rows_per_fragment: 1 << 20,
        }
    }

    fn input(parts: Vec<SendableRecordBatchStream>) -> WriteInput {
        WriteInput {
            rows: Rows::Parts(parts),
            max_rows_per_file: None,
        }
    }

    async fn numbers(dataset: &Dataset) -> Vec<i64> {
        let batches: Vec<RecordBatch> = dataset
            .scan()
            .try_into_stream()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        batches
            .iter()
            .flat_map(|batch| {
                let column = batch.column(0).as_any().downcast_ref::<Int64Array>();
                column.unwrap().values().to_vec()
            })
            .collect()
    }

    fn data_files(dir: &std::path::Path, table: &str) -> usize {
        std::fs::read_dir(dir.join(format!("{table}.lance/data")))
            .map(|entries| entries.count())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn parts_are_one_commit_with_their_rows_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::new(&StoreConfig::local(dir.path().to_str().unwrap()), 8).unwrap();
        let parts = vec![part(0, 3, None), part(300, 2, None), part(500, 5, None)];
        let created = root.create_table("t", input(parts)).await.unwrap();
        assert_eq!(created.version_id(), 1);
        assert_eq!(created.get_fragments().len(), 3);
        assert_eq!(numbers(&created).await, (0..1000).collect::<Vec<_>>());

        let appended = root
            .append_table(
                "t",
                input(vec![part(1000, 1, None), part(1100, 4, None)]),
                never_compact(),
            )
            .await
            .unwrap();
        assert_eq!(appended, 500);
        let latest = root.open_latest("t").await.unwrap().unwrap();
        assert_eq!(latest.version_id(), 2);
        assert_eq!(numbers(&latest).await, (0..1500).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_failing_part_leaves_no_files_and_reports_the_input_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::new(&StoreConfig::local(dir.path().to_str().unwrap()), 8).unwrap();
        let parts = vec![
            part(0, 50, None),
            part(5000, 2, Some("bad value in part 1")),
        ];
        let error = root.create_table("t", input(parts)).await.unwrap_err();
        assert!(error.to_string().contains("bad value in part 1"), "{error}");
        assert!(root.open_latest("t").await.unwrap().is_none());
        assert_eq!(data_files(dir.path(), "t"), 0);

        root.create_table("t", input(vec![part(0, 2, None)]))
            .await
            .unwrap();
        let files_before = data_files(dir.path(), "t");
        let parts = vec![
            part(200, 30, None),
            part(9000, 1, Some("bad value on append")),
        ];
        let error = root
            .append_table("t", input(parts), never_compact())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("bad value on append"), "{error}");
        let latest = root.open_latest("t").await.unwrap().unwrap();
        assert_eq!(latest.version_id(), 1);
        assert_eq!(numbers(&latest).await, (0..200).collect::<Vec<_>>());
        assert_eq!(data_files(dir.path(), "t"), files_before);
    }

    /// One stream of `batches` batches of 100 numbers from 0, split in data files of 250 rows.
    fn one_stream(batches: i64, failure: Option<&str>) -> WriteInput {
        let options = LanceOptions {
            max_rows_per_file: 250,
            ..LanceOptions::default()
        };
        WriteInput::stream(part(0, batches, failure), 2, &options)
    }

    #[tokio::test]
    async fn a_long_stream_is_written_in_chunks_as_one_commit_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::new(&StoreConfig::local(dir.path().to_str().unwrap()), 8).unwrap();
        let created = root.create_table("t", one_stream(10, None)).await.unwrap();
        assert_eq!(created.version_id(), 1);
        let rows: Vec<usize> = created
            .get_fragments()
            .iter()
            .map(|fragment| fragment.metadata().physical_rows.unwrap_or(0))
            .collect();
        assert_eq!(rows, vec![250, 250, 250, 250]);
        assert_eq!(numbers(&created).await, (0..1000).collect::<Vec<_>>());

        let error = root
            .append_table(
                "t",
                one_stream(10, Some("bad value in row 1000")),
                never_compact(),
            )
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("bad value in row 1000"),
            "{error}"
        );
        let latest = root.open_latest("t").await.unwrap().unwrap();
        assert_eq!(latest.version_id(), 1);
        assert_eq!(data_files(dir.path(), "t"), 4);
    }

    #[tokio::test]
    async fn a_stream_panicking_midway_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::new(&StoreConfig::local(dir.path().to_str().unwrap()), 8).unwrap();
        let panicking = futures::stream::iter(0..5).map(|batch: i64| {
            assert!(batch < 4, "the input's own bug");
            let values = Int64Array::from_iter_values(batch * 100..(batch + 1) * 100);
            Ok(RecordBatch::try_new(schema(), vec![Arc::new(values)])?)
        });
        let stream = Box::pin(RecordBatchStreamAdapter::new(schema(), panicking));
        let options = LanceOptions {
            max_rows_per_file: 250,
            ..LanceOptions::default()
        };
        let input = WriteInput::stream(stream, 2, &options);
        let error = root.create_table("t", input).await.unwrap_err();
        assert!(error.to_string().contains("the input's own bug"), "{error}");
        assert!(root.open_latest("t").await.unwrap().is_none());
        assert_eq!(data_files(dir.path(), "t"), 0);
    }

    /// A part of slow batches of numbers, still being written when a faster part fails.
    fn slow_part(batches: i64) -> SendableRecordBatchStream {
        let items = futures::stream::iter(0..batches).then(|batch| async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let values = Int64Array::from_iter_values(batch * 100..(batch + 1) * 100);
            Ok(RecordBatch::try_new(schema(), vec![Arc::new(values)])?)
        });
        Box::pin(RecordBatchStreamAdapter::new(schema(), items))
    }

    #[tokio::test]
    async fn the_failure_reported_is_the_first_not_a_stopped_part() {
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::new(&StoreConfig::local(dir.path().to_str().unwrap()), 8).unwrap();
        let dataset = root
            .create_table("t", input(vec![part(0, 1, None)]))
            .await
            .unwrap();
        // Lance refuses part 1 at once (its column is text where the table has numbers) while
        // part 0 is still writing: part 0 is stopped, and the failure is Lance's about part 1.
        let text = Arc::new(Schema::new(vec![Field::new("n", DataType::Utf8, false)]));
        let batch = RecordBatch::try_new(
            text.clone(),
            vec![Arc::new(arrow::array::StringArray::from(vec!["x"]))],
        )
        .unwrap();
        let wrong = RecordBatchStreamAdapter::new(text, futures::stream::iter(vec![Ok(batch)]));
        let parts = vec![slow_part(50), Box::pin(wrong) as SendableRecordBatchStream];
        let params = WriteParams {
            mode: lance::dataset::WriteMode::Append,
            ..Default::default()
        };
        let uri = root.write_uri("t").unwrap();
        let destination = Destination::Existing(dataset);
        let failure = root
            .write_parts(&uri, destination, params, input(parts))
            .await
            .err()
            .unwrap();
        match failure {
            PartsFailure::Lance(source) => {
                let message = source.to_string();
                assert!(!message.contains("another part"), "{message}");
            }
            PartsFailure::Input(cause) => panic!("an input failure: {cause}"),
            PartsFailure::Panicked(message) => panic!("a panic: {message}"),
        }
        let latest = root.open_latest("t").await.unwrap().unwrap();
        assert_eq!(latest.version_id(), 1);
        assert_eq!(data_files(dir.path(), "t"), 1);
    }
}
