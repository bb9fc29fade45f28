//! Running queries by id, so `CancelFlightInfo` can stop them.
//!
//! Contract: a DoGet registers its ticket's query id while its stream lives; cancelling that id
//! ends the stream with `Cancelled` and drops the engine's stream (freeing the query). Cancelling
//! an id before its DoGet starts makes that DoGet fail with `Cancelled`; the ids cancelled that
//! way are remembered up to a bound. Ids are random per ticket, so cancelling needs the ticket.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::Stream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::error::Error;

/// How many ids cancelled before their DoGet started are remembered.
const EARLY_CANCELS_KEPT: usize = 1024;

#[derive(Default)]
struct State {
    running: HashMap<String, CancellationToken>,
    cancelled_early: VecDeque<String>,
}

/// The queries this process is streaming.
#[derive(Default, Clone)]
pub struct RunningQueries {
    state: Arc<Mutex<State>>,
}

/// What cancelling found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The query was running (or had not started) and is now cancelled.
    Cancelled,
    /// No such query runs here.
    NotRunning,
}

impl RunningQueries {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Entries are inserted and removed whole, so a poisoned map is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers `query_id` as running; fails with `Cancelled` if it was cancelled already.
    pub fn start(&self, query_id: &str) -> Result<Registration, Error> {
        let mut state = self.state();
        if let Some(position) = state.cancelled_early.iter().position(|id| id == query_id) {
            state.cancelled_early.remove(position);
            return Err(Error::Cancelled);
        }
        let token = CancellationToken::new();
        state.running.insert(query_id.to_owned(), token.clone());
        Ok(Registration {
            queries: self.clone(),
            query_id: query_id.to_owned(),
            token,
        })
    }

    /// Cancels `query_id` if it runs here; otherwise remembers it, so its DoGet will not run.
    pub fn cancel(&self, query_id: &str) -> CancelOutcome {
        let mut state = self.state();
        if let Some(token) = state.running.remove(query_id) {
            token.cancel();
            return CancelOutcome::Cancelled;
        }
        if state.cancelled_early.len() == EARLY_CANCELS_KEPT {
            state.cancelled_early.pop_front();
        }
        state.cancelled_early.push_back(query_id.to_owned());
        CancelOutcome::NotRunning
    }

    /// How many queries are streaming (for tests and logs).
    pub fn running(&self) -> usize {
        self.state().running.len()
    }
}

/// A query's place in the registry; leaving it (dropping) unregisters the query.
pub struct Registration {
    queries: RunningQueries,
    query_id: String,
    token: CancellationToken,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.queries.state().running.remove(&self.query_id);
    }
}

impl Registration {
    /// `stream`, ended with [`Error::Cancelled`] when the query is cancelled.
    pub fn guard<S, T>(self, stream: S) -> Cancellable<S>
    where
        S: Stream<Item = Result<T, Error>> + Unpin,
    {
        Cancellable {
            cancelled: Box::pin(self.token.clone().cancelled_owned()),
            stream: Some(stream),
            _registration: self,
        }
    }
}

/// A stream that ends with `Cancelled` once its query is cancelled.
pub struct Cancellable<S> {
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Dropped as soon as the query is cancelled, to free what the engine holds.
    stream: Option<S>,
    _registration: Registration,
}

impl<S, T> Stream for Cancellable<S>
where
    S: Stream<Item = Result<T, Error>> + Unpin,
{
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(stream) = self.stream.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(stream).poll_next(cx);
        if let Poll::Ready(None) = polled {
            self.stream = None;
            return polled;
        }
        if self.cancelled.as_mut().poll(cx).is_ready() {
            self.stream = None;
            return Poll::Ready(Some(Err(Error::Cancelled)));
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn cancelling_ends_the_stream_and_unregisters() {
        let queries = RunningQueries::default();
        let registration = queries.start("q1").expect("start");
        let endless = futures::stream::repeat_with(|| Ok::<u32, Error>(1));
        let mut stream = registration.guard(endless);
        assert!(matches!(stream.next().await, Some(Ok(1))));
        assert_eq!(queries.running(), 1);
        assert_eq!(queries.cancel("q1"), CancelOutcome::Cancelled);
        assert!(matches!(stream.next().await, Some(Err(Error::Cancelled))));
        assert!(stream.next().await.is_none());
        drop(stream);
        assert_eq!(queries.running(), 0);
    }

    #[test]
    fn a_query_cancelled_before_it_starts_does_not_run() {
        let queries = RunningQueries::default();
        assert_eq!(queries.cancel("q2"), CancelOutcome::NotRunning);
        assert!(matches!(queries.start("q2"), Err(Error::Cancelled)));
        assert!(queries.start("q2").is_ok());
    }
}
