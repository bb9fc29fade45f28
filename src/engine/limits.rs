//! Per-statement limits: memory (`--query-memory-limit`) and time (`statement_timeout`, and a
//! front end's cancel requests).
//!
//! All queries of the process draw from one shared pool (`--memory-limit`). Each execution gets
//! a [`QueryMemoryPool`] in front of it that admits at most the per-query limit, so one huge
//! query fails with SQLSTATE 53200 while the others keep their share. Everything else of the
//! runtime (spill folder, caches, object stores) is the shared one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::execution::runtime_env::RuntimeEnv;

/// `shared` with one query's memory capped at `limit` bytes.
pub(crate) fn query_runtime(shared: &Arc<RuntimeEnv>, limit: usize) -> Arc<RuntimeEnv> {
    Arc::new(RuntimeEnv {
        memory_pool: Arc::new(QueryMemoryPool {
            shared: shared.memory_pool.clone(),
            limit,
            reserved: AtomicUsize::new(0),
        }),
        ..shared.as_ref().clone()
    })
}

/// One query's view of the shared pool: reservations go to the shared pool, and fail once the
/// query as a whole would hold more than `limit`.
#[derive(Debug)]
struct QueryMemoryPool {
    shared: Arc<dyn MemoryPool>,
    limit: usize,
    reserved: AtomicUsize,
}

impl std::fmt::Display for QueryMemoryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "query memory ({} byte limit) in {}",
            self.limit, self.shared
        )
    }
}

impl MemoryPool for QueryMemoryPool {
    fn name(&self) -> &str {
        "query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.shared.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.shared.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        // Infallible growth (already-used memory being accounted) is never refused.
        self.shared.grow(reservation, additional);
        self.reserved.fetch_add(additional, Ordering::Relaxed);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.shared.shrink(reservation, shrink);
        self.reserved.fetch_sub(shrink, Ordering::Relaxed);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let admitted =
            self.reserved
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |reserved| {
                    reserved
                        .checked_add(additional)
                        .filter(|total| *total <= self.limit)
                });
        if admitted.is_err() {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{} needed {additional} more bytes, but the query already holds {} of its {} \
                 byte limit (--query-memory-limit)",
                reservation.consumer().name(),
                self.reserved.load(Ordering::Relaxed),
                self.limit
            )));
        }
        if let Err(error) = self.shared.try_grow(reservation, additional) {
            self.reserved.fetch_sub(additional, Ordering::Relaxed);
            return Err(error);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.reserved.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

/// `stream`, ending with the error `stopped` makes as soon as `stop` resolves (a deadline, a
/// cancel request); the rest of the query is dropped, which stops its work.
pub fn stream_until(
    stream: SendableRecordBatchStream,
    stop: impl Future<Output = ()> + Send + 'static,
    stopped: impl FnOnce() -> crate::error::Error + Send + 'static,
) -> SendableRecordBatchStream {
    type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;
    let schema = stream.schema();
    let state: Option<(SendableRecordBatchStream, Stop, _)> =
        Some((stream, Box::pin(stop) as Stop, stopped));
    let batches = futures::stream::unfold(state, |state| async move {
        let (mut stream, mut stop, stopped) = state?;
        tokio::select! {
            biased;
            () = &mut stop => Some((Err(DataFusionError::from(stopped())), None)),
            next = stream.next() => next.map(|item| (item, Some((stream, stop, stopped)))),
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, batches))
}
