//! Postgres cancel requests: a client opens a second connection and names the first by the
//! process id and secret key it was given at startup; the statement running there stops with
//! 57014 and the connection stays open.
//!
//! Each connection owns a [`CancelSignal`]; statements watch it while they plan and while their
//! rows stream, so a cancel reaches a query whichever phase it is in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use datafusion::execution::SendableRecordBatchStream;
use datafusion_postgres::pgwire::api::cancel::CancelHandler;
use datafusion_postgres::pgwire::messages::cancel::CancelRequest;
use datafusion_postgres::pgwire::messages::startup::SecretKey;
use tokio::sync::watch;

use crate::engine::stream_until;
use crate::error::Error;

/// The process id and secret key a connection was given, as one key.
pub type ConnectionKey = (i32, Vec<u8>);

/// The key of a connection.
pub fn connection_key(pid: i32, secret: &SecretKey) -> ConnectionKey {
    let bytes = match secret {
        SecretKey::I32(value) => value.to_be_bytes().to_vec(),
        SecretKey::Bytes(bytes) => bytes.to_vec(),
    };
    (pid, bytes)
}

/// One connection's cancel signal: every cancel request bumps it.
#[derive(Debug)]
pub struct CancelSignal {
    requests: watch::Sender<u64>,
}

impl CancelSignal {
    pub fn new() -> Self {
        CancelSignal {
            requests: watch::Sender::new(0),
        }
    }

    /// A watch for the statement starting now: only later cancel requests stop it.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.requests.subscribe()
    }

    fn cancel(&self) {
        self.requests
            .send_modify(|count| *count = count.wrapping_add(1));
    }
}

/// The running connections of one server, by key.
#[derive(Debug, Default)]
pub struct Connections {
    signals: Mutex<HashMap<ConnectionKey, Arc<CancelSignal>>>,
}

impl Connections {
    fn signals(&self) -> MutexGuard<'_, HashMap<ConnectionKey, Arc<CancelSignal>>> {
        // Whole entries only: a poisoned map is still consistent.
        self.signals
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn register(&self, key: ConnectionKey, signal: Arc<CancelSignal>) {
        self.signals().insert(key, signal);
    }

    pub fn unregister(&self, key: &ConnectionKey) {
        self.signals().remove(key);
    }
}

/// Answers cancel requests for the connections of one server.
pub struct Canceller {
    pub connections: Arc<Connections>,
}

#[async_trait]
impl CancelHandler for Canceller {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let key = connection_key(request.pid, &request.secret_key);
        let signal = self.connections.signals().get(&key).cloned();
        match signal {
            Some(signal) => signal.cancel(),
            // Postgres ignores requests naming no connection, so that they reveal nothing.
            None => tracing::debug!(pid = request.pid, "cancel request for no known connection"),
        }
    }
}

/// Runs `work` until it finishes or a cancel request arrives (then [`Error::Cancelled`]).
pub async fn until_cancelled<T>(
    work: impl Future<Output = Result<T, Error>>,
    mut cancel: watch::Receiver<u64>,
) -> Result<T, Error> {
    tokio::select! {
        biased;
        _ = cancel.changed() => Err(Error::Cancelled),
        done = work => done,
    }
}

/// `stream`, ending with [`Error::Cancelled`] as soon as a cancel request arrives.
pub fn cancellable(
    stream: SendableRecordBatchStream,
    mut cancel: watch::Receiver<u64>,
) -> SendableRecordBatchStream {
    let requested = async move {
        if cancel.changed().await.is_err() {
            // The connection is gone, and with it anyone who could cancel.
            std::future::pending::<()>().await;
        }
    };
    stream_until(stream, requested, || Error::Cancelled)
}
