//! Binding and serving: `FlightServer::bind` checks the configuration, binds the listener and
//! reports the address before anything is served; `serve` runs until shutdown, then lets calls
//! in flight finish.
//!
//! A misconfiguration refuses to start: TLS files that do not read, only one of certificate and
//! key, logins required with no users, or anonymous access on a non-loopback address without
//! saying so.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::backend::SessionSource;
use crate::error::{Error, Result};
use crate::metadata;
use crate::service::FlightSqlEngine;
use crate::sessions::{Login, Sessions};

/// Largest message a client may send (an ingest batch, bound parameters).
const MAX_REQUEST_MESSAGE: usize = 256 * 1024 * 1024;

/// The Flight SQL front end's settings.
#[derive(Debug, Clone)]
pub struct FlightConfig {
    /// `host:port` to listen on; port 0 picks a free one.
    pub listen: String,
    pub login: Login,
    /// Allow anonymous access on a non-loopback address.
    pub anonymous_network: bool,
    /// PEM certificate chain and private key; both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// A session unused this long is forgotten.
    pub session_idle_timeout: Duration,
    /// What GetSqlInfo reports as the server's name and version.
    pub server_name: String,
    pub server_version: String,
}

/// A bound Flight SQL listener, ready to serve.
/// HTTP/2 flow-control window per stream (the connection's is twice this).
const TRANSFER_WINDOW_BYTES: u32 = 16 * 1024 * 1024;
/// Largest HTTP/2 frame a client may send (fewer frames and reads per batch than 16 KiB).
const MAX_FRAME_BYTES: u32 = 1024 * 1024;

pub struct FlightServer<S: SessionSource> {
    listener: TcpListener,
    /// The transport, with TLS configured (and so checked) at bind time.
    transport: Server,
    tls: bool,
    service: Arc<FlightSqlEngine<S>>,
}

impl<S: SessionSource> FlightServer<S> {
    /// Checks `config` and binds its listen address.
    pub async fn bind(source: S, config: &FlightConfig) -> Result<Self> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                refuse_readable_by_others(key)?;
                let read = |path: &PathBuf, what: &str| {
                    std::fs::read(path).map_err(|error| {
                        Error::Startup(format!(
                            "cannot read the Flight SQL TLS {what} {}: {error}",
                            path.display()
                        ))
                    })
                };
                let identity = Identity::from_pem(read(cert, "certificate")?, read(key, "key")?);
                Some(ServerTlsConfig::new().identity(identity))
            }
            (None, None) => None,
            _ => {
                return Err(Error::Startup(
                    "Flight SQL TLS needs both a certificate and a key".into(),
                ));
            }
        };
        let listener = TcpListener::bind(&config.listen).await.map_err(|error| {
            Error::Startup(format!(
                "cannot listen for Flight SQL on {}: {error}",
                config.listen
            ))
        })?;
        let bound = local_addr(&listener)?;
        match config.login {
            Login::Password if !source.has_users() => {
                return Err(Error::Startup(
                    "Flight SQL password logins need at least one user".into(),
                ));
            }
            Login::Anonymous if !bound.ip().is_loopback() && !config.anonymous_network => {
                return Err(Error::Startup(format!(
                    "anonymous Flight SQL access is for loopback addresses only (listening on {bound}); allow it on the network explicitly"
                )));
            }
            _ => {}
        }
        // Bulk transfers in both directions: HTTP/2's 1 MiB default windows make a client
        // uploading multi-megabyte batches wait for a window update several times per batch.
        let mut transport = Server::builder()
            .initial_stream_window_size(TRANSFER_WINDOW_BYTES)
            .initial_connection_window_size(2 * TRANSFER_WINDOW_BYTES)
            .max_frame_size(MAX_FRAME_BYTES);
        let tls_enabled = tls.is_some();
        if let Some(tls) = tls {
            // Other crates in the process may enable a second rustls provider, and then rustls
            // cannot pick one itself. An error only means one is installed already.
            let _ = rustls::crypto::ring::default_provider().install_default();
            transport = transport.tls_config(tls).map_err(|error| {
                Error::Startup(format!(
                    "Flight SQL TLS: the certificate and key do not make a TLS identity: {error}"
                ))
            })?;
        }
        let sessions = Sessions::new(Arc::new(source), config.login, config.session_idle_timeout);
        let sql_info = metadata::sql_info(&config.server_name, &config.server_version);
        Ok(FlightServer {
            listener,
            transport,
            tls: tls_enabled,
            service: Arc::new(FlightSqlEngine::new(sessions, sql_info)),
        })
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        local_addr(&self.listener)
    }

    /// Whether clients must use TLS.
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// The service, to observe it in tests.
    pub fn service(&self) -> Arc<FlightSqlEngine<S>> {
        self.service.clone()
    }

    /// Serves until `shutdown` resolves, then waits for calls in flight.
    pub async fn serve(mut self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let service = FlightServiceServer::from_arc(self.service)
            .max_decoding_message_size(MAX_REQUEST_MESSAGE)
            .max_encoding_message_size(usize::MAX);
        // Small replies (a prepared statement's handle, one FlightInfo) must leave at once: with
        // Nagle's algorithm on, each of a query's several calls waited for the client's delayed
        // ACK, about 40 ms, so a one-row query took 90 ms.
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true));
        self.transport
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|error| Error::Startup(format!("the Flight SQL server stopped: {error}")))
    }
}

/// A private key others may read is refused, as ssh and Postgres do.
fn refuse_readable_by_others(key: &PathBuf) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key)
            .map_err(|error| {
                Error::Startup(format!(
                    "cannot read the Flight SQL TLS key {}: {error}",
                    key.display()
                ))
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::Startup(format!(
                "{} is a private key but others may read it (mode {:o}): chmod 600 it",
                key.display(),
                mode & 0o777
            )));
        }
    }
    Ok(())
}

fn local_addr(listener: &TcpListener) -> Result<SocketAddr> {
    listener
        .local_addr()
        .map_err(|error| Error::Startup(format!("no Flight SQL listen address: {error}")))
}
