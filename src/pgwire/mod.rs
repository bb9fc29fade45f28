//! The Postgres wire protocol front end: `lancesql serve`.
//!
//! Contract: one [`LanceSession`](crate::engine::LanceSession) per connection, and every
//! statement, simple or extended, goes through the engine's front door (`prepare`, then
//! `execute` with the bound parameters), so the wire sees exactly the SQL, settings, errors and
//! EXPLAIN the shell sees. This module speaks pgwire and Arrow-to-Postgres encoding
//! (`arrow-pg`) and nothing of Lance: it depends on `engine`, `config` and `error` only.
//!
//! [`PgServer::bind`] checks the access rules ([`access`]), binds the listener (port 0
//! allowed) and reports the address; [`PgServer::serve`] then accepts connections until the
//! shutdown future resolves, stops accepting, and waits for open connections to finish.

pub mod access;
mod cancel;
mod copy;
mod handlers;
mod parameters;
mod startup;
mod tuples;
mod wire_types;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use datafusion_postgres::pgwire::tokio::process_socket;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::engine::Engine;
use crate::error::{Error, Result};
use access::{Access, PgConfig};
use cancel::Connections;
use handlers::ConnectionHandlers;

/// A bound Postgres-wire listener, ready to serve.
pub struct PgServer {
    engine: Engine,
    listener: TcpListener,
    access: Arc<Access>,
    slots: Arc<Semaphore>,
    connections: Arc<Connections>,
}

impl PgServer {
    /// Checks `config` and binds its listen address (`host:port`; port 0 picks a free one).
    /// A misconfiguration (no users for password logins, trust off loopback, unreadable TLS
    /// files) refuses to start.
    pub async fn bind(engine: Engine, config: &PgConfig) -> Result<Self> {
        let address = config.listen.as_str();
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| Error::File {
                path: format!("listen address {address}"),
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| Error::File {
            path: format!("listen address {address}"),
            source,
        })?;
        let access = Access::new(config, bound)?;
        Ok(PgServer {
            engine,
            listener,
            slots: Arc::new(Semaphore::new(access.max_connections)),
            access: Arc::new(access),
            connections: Arc::new(Connections::default()),
        })
    }

    /// Whether clients can (or must) negotiate TLS.
    pub fn tls(&self) -> bool {
        self.access.tls.is_some()
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener.local_addr().map_err(|source| Error::File {
            path: "the listen address".into(),
            source,
        })
    }

    /// Serves connections until `shutdown` resolves, then waits for open connections to end.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut open = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let (socket, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            tracing::warn!(%error, "could not accept a connection");
                            continue;
                        }
                    };
                    let session = match self.engine.session() {
                        Ok(session) => session,
                        Err(error) => {
                            tracing::error!(%error, "could not start a session");
                            continue;
                        }
                    };
                    let slot = self.slots.clone().try_acquire_owned().ok();
                    let handlers = match ConnectionHandlers::new(
                        session,
                        self.access.clone(),
                        slot,
                        self.connections.clone(),
                    ) {
                        Ok(handlers) => Arc::new(handlers),
                        Err(error) => {
                            tracing::error!(%error, "could not start a connection");
                            continue;
                        }
                    };
                    let tls = self.access.tls.clone();
                    open.spawn(async move {
                        tracing::debug!(%peer, "connection opened");
                        if let Err(error) = process_socket(socket, tls, handlers).await {
                            tracing::warn!(%peer, %error, "connection ended with an error");
                        }
                        tracing::debug!(%peer, "connection closed");
                    });
                }
                Some(_) = open.join_next(), if !open.is_empty() => {}
            }
        }
        drop(self.listener);
        if !open.is_empty() {
            tracing::info!(
                connections = open.len(),
                "waiting for open connections to finish"
            );
        }
        while open.join_next().await.is_some() {}
        Ok(())
    }
}
