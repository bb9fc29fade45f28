//! What `EXPLAIN ANALYZE` reports for our nodes: per partition, rows produced, fragments read,
//! bytes and I/O operations, index lookups and time.
//!
//! Scans fill these from Lance's own execution summary (reported when a scan finishes). Takes
//! count rows and fragments themselves; Lance does not report a take's bytes, so takes show
//! none rather than a guess. Searches (and the `take`/`sample` functions) report DataFusion's
//! baseline: rows produced and the time spent producing them ([`measured`]).

use std::time::Instant;

use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, Time,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use lance_datafusion::exec::ExecutionSummaryCounts;

/// The metrics of one scan partition.
#[derive(Debug, Clone)]
pub struct ScanMetrics {
    output_rows: Count,
    fragments: Count,
    bytes_read: Count,
    iops: Count,
    indices_loaded: Count,
    index_comparisons: Count,
    scan_time: Time,
}

impl ScanMetrics {
    pub fn new(metrics: &ExecutionPlanMetricsSet, partition: usize) -> Self {
        let counter = |name: &'static str| MetricBuilder::new(metrics).counter(name, partition);
        ScanMetrics {
            output_rows: MetricBuilder::new(metrics).output_rows(partition),
            fragments: counter("fragments"),
            bytes_read: counter("bytes_read"),
            iops: counter("iops"),
            indices_loaded: counter("indices_loaded"),
            index_comparisons: counter("index_comparisons"),
            scan_time: MetricBuilder::new(metrics).subset_time("scan_time", partition),
        }
    }

    /// A partition started reading `fragments` fragments.
    pub fn started(&self, fragments: usize) -> Instant {
        self.fragments.add(fragments);
        Instant::now()
    }

    /// A batch of `rows` rows left the node.
    pub fn produced(&self, rows: usize) {
        self.output_rows.add(rows);
    }

    /// Lance's summary of a finished scan that started at `started`.
    pub fn finished(&self, started: Instant, summary: &ExecutionSummaryCounts) {
        self.bytes_read.add(summary.bytes_read);
        self.iops.add(summary.iops);
        self.indices_loaded.add(summary.indices_loaded);
        self.index_comparisons.add(summary.index_comparisons);
        self.scan_time.add_elapsed(started);
    }
}

/// The metrics of one take partition.
#[derive(Debug, Clone)]
pub struct TakeMetrics {
    output_rows: Count,
    fragments: Count,
    take_time: Time,
}

impl TakeMetrics {
    pub fn new(metrics: &ExecutionPlanMetricsSet, partition: usize) -> Self {
        TakeMetrics {
            output_rows: MetricBuilder::new(metrics).output_rows(partition),
            fragments: MetricBuilder::new(metrics).counter("fragments", partition),
            take_time: MetricBuilder::new(metrics).subset_time("take_time", partition),
        }
    }

    /// One take of `rows` rows from `fragments` fragments that started at `started` finished.
    pub fn took(&self, started: Instant, rows: usize, fragments: usize) {
        self.output_rows.add(rows);
        self.fragments.add(fragments);
        self.take_time.add_elapsed(started);
    }
}

/// `stream` with the rows it yields and the time spent in producing each batch (not the time
/// waiting for I/O) recorded in `metrics`, as DataFusion's own operators report them.
pub fn measured(
    mut stream: SendableRecordBatchStream,
    metrics: BaselineMetrics,
) -> SendableRecordBatchStream {
    let schema = stream.schema();
    let batches = futures::stream::poll_fn(move |context| {
        let timer = metrics.elapsed_compute().timer();
        let poll = stream.poll_next_unpin(context);
        timer.done();
        metrics.record_poll(poll)
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, batches))
}
