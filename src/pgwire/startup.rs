//! A connection's startup: the connection limit, TLS requirement, authentication, the login's
//! parameters, and registration for cancel requests.
//!
//! Refusals are FATAL errors with the engine's SQLSTATEs (53300 too many connections, 28000 no
//! TLS where required, 28P01 wrong password) and close only that connection. Startup parameters
//! the client sends (`application_name`, `DateStyle`, `TimeZone`, ...) become the session's, and
//! the server reports the session's Postgres parameters back, so `server_version` and friends
//! have one source.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::{
    ServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use datafusion_postgres::pgwire::api::{
    ClientInfo, METADATA_USER, PgWireConnectionState, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::Sink;
use tokio::sync::OwnedSemaphorePermit;

use crate::engine::LanceSession;
use crate::error::Error;
use crate::pgwire::access::{Access, AuthMethod};
use crate::pgwire::cancel::{CancelSignal, ConnectionKey, Connections, connection_key};

/// Startup of one connection.
pub struct Startup {
    session: LanceSession,
    access: Arc<Access>,
    /// This connection's slot under the connection limit (`None`: no slot was free). Held for
    /// as long as the connection lives, and freed when it ends.
    slot: Option<OwnedSemaphorePermit>,
    /// SCRAM state, when passwords are required.
    sasl: Option<SASLAuthStartupHandler<SessionParameters>>,
    pub connections: Arc<Connections>,
    signal: Arc<CancelSignal>,
    pub key: OnceLock<ConnectionKey>,
}

impl Startup {
    pub fn new(
        session: LanceSession,
        access: Arc<Access>,
        slot: Option<OwnedSemaphorePermit>,
        connections: Arc<Connections>,
        signal: Arc<CancelSignal>,
    ) -> Result<Self, Error> {
        let sasl = match access.method {
            AuthMethod::Password => Some(
                SASLAuthStartupHandler::new(Arc::new(SessionParameters {
                    session: session.clone(),
                }))
                .with_scram(access.scram()?),
            ),
            AuthMethod::Trust => None,
        };
        Ok(Startup {
            session,
            access,
            slot,
            sasl,
            connections,
            signal,
            key: OnceLock::new(),
        })
    }

    /// Refusals that come before any password: the connection limit, then TLS.
    fn admit<C: ClientInfo>(&self, client: &C) -> Result<(), Error> {
        if self.slot.is_none() {
            return Err(Error::TooManyConnections {
                limit: self.access.max_connections,
            });
        }
        if self.access.require_tls && !client.is_secure() {
            return Err(Error::ConnectionRejected {
                reason: "this server requires TLS: connect with sslmode=require".into(),
            });
        }
        Ok(())
    }

    /// Once the login is accepted: its parameters become the session's, and cancel requests
    /// can find the connection.
    fn register<C: ClientInfo>(&self, client: &C) {
        let (pid, secret) = client.pid_and_secret_key();
        let key = connection_key(pid, &secret);
        self.connections.register(key.clone(), self.signal.clone());
        // A connection starts up once; a second startup message would be a protocol error.
        let _ = self.key.set(key);
    }

    /// The login's parameters, including `-c name=value` in its `options`, become the
    /// session's defaults.
    fn apply_login<C: ClientInfo>(&self, client: &C) -> Result<(), Error> {
        let metadata = client.metadata();
        let options = metadata
            .get("options")
            .map(|options| command_line_settings(options))
            .unwrap_or_default();
        self.session.apply_startup_parameters(
            metadata.get(METADATA_USER).map(String::as_str),
            metadata
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .chain(options),
        )
    }
}

impl Drop for Startup {
    fn drop(&mut self) {
        if let Some(key) = self.key.get() {
            self.connections.unregister(key);
        }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(startup) = &message {
            self.admit(client).map_err(fatal)?;
            save_startup_parameters_to_metadata(client, startup);
            self.apply_login(client).map_err(fatal)?;
        }
        match &self.sasl {
            None => {
                if let PgWireFrontendMessage::Startup(startup) = &message {
                    protocol_negotiation(client, startup).await?;
                    let (pid, secret) = RandomPidSecretKeyGenerator::default().generate(client);
                    client.set_pid_and_secret_key(pid, secret);
                    self.register(client);
                    finish_authentication(
                        client,
                        &SessionParameters {
                            session: self.session.clone(),
                        },
                    )
                    .await?;
                }
            }
            Some(sasl) => {
                let user = client.metadata().get(METADATA_USER).cloned();
                match sasl.on_startup(client, message).await {
                    Err(PgWireError::InvalidPassword(_)) => {
                        return Err(fatal(Error::AuthenticationFailed {
                            user: user.unwrap_or_default(),
                        }));
                    }
                    outcome => outcome?,
                }
                if matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
                    self.register(client);
                }
            }
        }
        Ok(())
    }
}

/// The Postgres parameters reported at startup: the session's own.
pub struct SessionParameters {
    session: LanceSession,
}

impl ServerParameterProvider for SessionParameters {
    fn server_parameters<C>(&self, _client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        Some(self.session.reported_parameters().into_iter().collect())
    }
}

/// The `name=value` settings of a startup `options` string (`-c DateStyle=ISO --search_path=x`),
/// as libpq's `options` / `PGOPTIONS` pass them.
fn command_line_settings(options: &str) -> Vec<(&str, &str)> {
    let mut settings = Vec::new();
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        let setting = match word {
            "-c" => words.next(),
            other => other
                .strip_prefix("--")
                .or_else(|| other.strip_prefix("-c")),
        };
        if let Some((name, value)) = setting.and_then(|setting| setting.split_once('=')) {
            settings.push((name, value));
        }
    }
    settings
}

/// An error that ends the connection (startup refusals).
fn fatal(error: Error) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_string(),
        error.sqlstate().to_string(),
        error.to_string(),
    )))
}
