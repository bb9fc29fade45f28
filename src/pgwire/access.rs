//! Who may connect, and how: authentication, TLS and the connection limit of `lancesql serve`.
//!
//! Contract: [`Access::new`] checks the whole configuration before the server binds, so a
//! misconfiguration refuses to start (never a silent fall-back to plaintext or to no password):
//! - `password` authentication is SCRAM-SHA-256 against users from a file (`name:password`
//!   lines, readable by its owner only) and/or one user from the environment; it needs at least
//!   one user;
//! - `trust` accepts any user without a password, and only on a loopback listen address unless
//!   trusting the network is forced;
//! - TLS needs a readable certificate chain and key; `--pg-require-tls` needs TLS and refuses
//!   plaintext logins (28000).
//!
//! A wrong password and an unknown user fail alike (28P01), so logins reveal no user names.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::auth::sasl::scram::{
    ScramAuth, gen_salted_password, random_nonce,
};
use datafusion_postgres::pgwire::api::auth::{AuthSource, LoginInfo, Password};
use datafusion_postgres::pgwire::error::PgWireResult;
use datafusion_postgres::pgwire::tokio::TlsAcceptor;
use datafusion_postgres::pgwire::tokio::tokio_rustls::rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// SCRAM's iteration count (Postgres' default).
const SCRAM_ITERATIONS: usize = 4096;

/// How clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMethod {
    /// SCRAM-SHA-256 passwords.
    Password,
    /// Anyone may connect as anyone: for a machine's own users only.
    Trust,
}

/// The Postgres front end's access settings (`lancesql serve --pg-*`).
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `host:port` to listen on; port 0 picks a free one.
    pub listen: String,
    pub auth: AuthMethod,
    /// A file of `name:password` lines.
    pub users_file: Option<PathBuf>,
    /// One more user, given with its password (from the environment).
    pub user: Option<(String, String)>,
    /// Trust connections on a non-loopback address too.
    pub trust_network: bool,
    /// PEM certificate chain and private key; both or neither.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Refuse logins that did not negotiate TLS.
    pub require_tls: bool,
    /// Connections served at once; the next one is refused with 53300.
    pub max_connections: usize,
}

/// Checked access rules, shared by every connection.
pub struct Access {
    pub method: AuthMethod,
    users: Arc<Users>,
    pub tls: Option<TlsAcceptor>,
    /// The certificate chain (PEM), for SCRAM channel binding over TLS.
    certificate_pem: Option<Vec<u8>>,
    pub require_tls: bool,
    pub max_connections: usize,
}

impl Access {
    /// Checks `config` for the listen address `listen`; any problem refuses to start.
    pub fn new(config: &PgConfig, listen: SocketAddr) -> Result<Self> {
        if config.max_connections == 0 {
            return Err(Error::invalid("--pg-max-connections must be at least 1"));
        }
        let users = Users::load(config)?;
        match config.auth {
            AuthMethod::Password if users.is_empty() => {
                return Err(Error::invalid(
                    "password authentication needs users: give --pg-users-file, or \
                     LANCESQL_PG_USER and LANCESQL_PG_PASSWORD (or choose --pg-auth trust for a \
                     loopback-only server)",
                ));
            }
            AuthMethod::Trust if !listen.ip().is_loopback() && !config.trust_network => {
                return Err(Error::invalid(format!(
                    "--pg-auth trust lets anyone who reaches {listen} in without a password; it \
                     is allowed on loopback addresses only, unless --pg-trust-network is given"
                )));
            }
            _ => {}
        }
        let (tls, certificate_pem) = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                let (acceptor, pem) = tls_acceptor(cert, key)?;
                (Some(acceptor), Some(pem))
            }
            (None, None) => (None, None),
            _ => {
                return Err(Error::invalid(
                    "TLS needs both --pg-tls-cert and --pg-tls-key",
                ));
            }
        };
        if config.require_tls && tls.is_none() {
            return Err(Error::invalid(
                "--pg-require-tls needs --pg-tls-cert and --pg-tls-key",
            ));
        }
        Ok(Access {
            method: config.auth,
            users: Arc::new(users),
            tls,
            certificate_pem,
            require_tls: config.require_tls,
            max_connections: config.max_connections,
        })
    }

    /// SCRAM for one connection (it keeps per-connection state), with channel binding when
    /// the server speaks TLS.
    pub fn scram(&self) -> Result<ScramAuth> {
        let mut scram = ScramAuth::new(self.users.clone());
        scram.set_iterations(SCRAM_ITERATIONS);
        if let Some(pem) = &self.certificate_pem {
            scram
                .configure_certificate(pem)
                .map_err(|error| Error::invalid(format!("TLS certificate: {error}")))?;
        }
        Ok(scram)
    }
}

/// Users and their salted passwords (computed once, at start): the logins of both servers
/// (SCRAM here, basic credentials at the Flight SQL handshake).
#[derive(Debug, Default)]
pub struct Users {
    salted: HashMap<String, Password>,
}

impl Users {
    /// The users `config` names (its file and its one user from the environment).
    pub fn load(config: &PgConfig) -> Result<Self> {
        let mut users = Users::default();
        if let Some(path) = &config.users_file {
            let text = read_private_file(path)?;
            for (number, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let Some((name, password)) = line.split_once(':') else {
                    return Err(Error::invalid(format!(
                        "{}: line {} is not 'name:password'",
                        path.display(),
                        number + 1
                    )));
                };
                users.add(name.trim(), password)?;
            }
        }
        if let Some((name, password)) = &config.user {
            users.add(name, password)?;
        }
        Ok(users)
    }

    fn add(&mut self, name: &str, password: &str) -> Result<()> {
        if name.is_empty() || password.is_empty() {
            return Err(Error::invalid("a user needs a non-empty name and password"));
        }
        let salt = random_nonce().into_bytes();
        let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
        self.salted
            .insert(name.to_string(), Password::new(Some(salt), salted));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.salted.is_empty()
    }

    /// Whether `password` is `name`'s (an unknown user costs the same work as a wrong password).
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let unknown = Password::new(Some(random_nonce().into_bytes()), Vec::new());
        let known = self.salted.get(name);
        let stored = known.unwrap_or(&unknown);
        let salt = stored.salt().unwrap_or_default();
        let given = gen_salted_password(password, salt, SCRAM_ITERATIONS);
        let stored = stored.password();
        // Compared in time independent of where the first difference is.
        let same = given.len() == stored.len()
            && given
                .iter()
                .zip(stored)
                .fold(0u8, |difference, (a, b)| difference | (a ^ b))
                == 0;
        known.is_some() && same
    }
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let known = login.user().and_then(|user| self.salted.get(user));
        Ok(match known {
            Some(password) => password.clone(),
            // An unknown user gets a password nobody knows, so it fails like a wrong one.
            None => Password::new(
                Some(random_nonce().into_bytes()),
                random_nonce().into_bytes(),
            ),
        })
    }
}

/// A file holding secrets, refused when other users could read it (as ssh and Postgres do).
fn read_private_file(path: &Path) -> Result<String> {
    let file_error = |source| Error::File {
        path: path.display().to_string(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(file_error)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(Error::invalid(format!(
                "{} holds passwords but others may read it (mode {:o}): chmod 600 it",
                path.display(),
                mode & 0o777
            )));
        }
    }
    std::fs::read_to_string(path).map_err(file_error)
}

/// A TLS acceptor for the certificate chain and key, and the chain's PEM text.
fn tls_acceptor(cert: &Path, key: &Path) -> Result<(TlsAcceptor, Vec<u8>)> {
    let pem = std::fs::read(cert).map_err(|source| Error::File {
        path: cert.display().to_string(),
        source,
    })?;
    let bad = |path: &Path, what: String| Error::invalid(format!("{}: {what}", path.display()));
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|error| bad(cert, format!("not a PEM certificate chain ({error})")))?;
    if chain.is_empty() {
        return Err(bad(cert, "holds no certificate".to_string()));
    }
    let key_pem = read_private_file(key)?;
    let private_key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|error| bad(key, format!("not a PEM private key ({error})")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::invalid(format!("TLS: {error}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|error| bad(key, format!("does not fit the certificate ({error})")))?;
    // Clients that open TLS directly (Postgres 17's sslnegotiation=direct) ask for this.
    server.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(server)), pem))
}
