//! Who is calling: handshake logins, bearer tokens, and one engine session per token.
//!
//! Contract:
//! - A handshake with `authorization: Basic ...` credentials the engine accepts gets a fresh
//!   random bearer token (in the response's `authorization` header and payload) bound to a new
//!   session; wrong credentials and unknown users fail alike (`Unauthenticated`).
//! - Every other call must carry `authorization: Bearer <token>` of a live session; a missing,
//!   unknown or expired token is `Unauthenticated`.
//! - With anonymous access (chosen explicitly), a handshake without credentials also gets a
//!   token and session, and a call without a token (or with one the server does not know)
//!   gets a new session whose token the response carries in its `authorization` header, where
//!   clients such as ADBC pick it up for their next calls.
//! - A session unused for the idle timeout is forgotten (its token stops working); at most
//!   [`MAX_SESSIONS`] live at once, the least recently used making way.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use tonic::metadata::MetadataMap;

use crate::backend::SessionSource;
use crate::error::{Error, Result};

/// The most sessions kept at once.
pub const MAX_SESSIONS: usize = 4096;

/// How clients log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// Basic credentials at the handshake, checked by the engine.
    Password,
    /// No credentials needed.
    Anonymous,
}

struct Live<T> {
    session: Arc<T>,
    last_used: Instant,
}

/// The session a call runs in, and the token of a session made for it (to send back).
pub struct CallSession<T> {
    pub session: Arc<T>,
    pub issued: Option<String>,
}

/// The live sessions, by bearer token.
pub struct Sessions<S: SessionSource> {
    source: Arc<S>,
    login: Login,
    idle_timeout: Duration,
    live: Mutex<HashMap<String, Live<S::Session>>>,
}

impl<S: SessionSource> Sessions<S> {
    pub fn new(source: Arc<S>, login: Login, idle_timeout: Duration) -> Self {
        Sessions {
            source,
            login,
            idle_timeout,
            live: Mutex::new(HashMap::new()),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live<S::Session>>> {
        // Entries are inserted and removed whole, so a poisoned map is still consistent.
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks a handshake's credentials and returns the new session's bearer token.
    pub fn handshake(&self, metadata: &MetadataMap) -> Result<String> {
        match (basic_credentials(metadata)?, self.login) {
            (Some((user, password)), _) => {
                if self.login == Login::Password && !self.source.check_password(&user, &password) {
                    tracing::info!(%user, "Flight SQL login refused");
                    return Err(Error::Unauthenticated("wrong user name or password".into()));
                }
                tracing::debug!(%user, "Flight SQL login");
            }
            (None, Login::Anonymous) => {}
            (None, Login::Password) => {
                return Err(Error::Unauthenticated(
                    "this server needs a user name and password (basic credentials at the handshake)"
                        .into(),
                ));
            }
        }
        self.open().map(|opened| opened.1)
    }

    /// A new session under a new token.
    fn open(&self) -> Result<(Arc<S::Session>, String)> {
        let session = Arc::new(self.source.open_session()?);
        let token = random_id()?;
        let now = Instant::now();
        let mut live = self.live();
        live.retain(|_, entry| now.duration_since(entry.last_used) < self.idle_timeout);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(token, _)| token.clone())
        {
            live.remove(&oldest);
        }
        live.insert(
            token.clone(),
            Live {
                session: session.clone(),
                last_used: now,
            },
        );
        Ok((session, token))
    }

    /// Checks that the call may be made, without opening a session for it: with logins
    /// required, its token must name a live session; with anonymous access anyone may.
    pub fn authorize(&self, metadata: &MetadataMap) -> Result<()> {
        match self.login {
            Login::Anonymous => Ok(()),
            Login::Password => self.session(metadata).map(|_| ()),
        }
    }

    /// The session of the call's bearer token; with anonymous access, a new one when the call
    /// has no token or one the server does not know.
    pub fn session(&self, metadata: &MetadataMap) -> Result<CallSession<S::Session>> {
        let token = bearer_token(metadata)?;
        if let Some(token) = &token {
            let now = Instant::now();
            let mut live = self.live();
            match live.get_mut(token) {
                Some(entry) if now.duration_since(entry.last_used) < self.idle_timeout => {
                    entry.last_used = now;
                    return Ok(CallSession {
                        session: entry.session.clone(),
                        issued: None,
                    });
                }
                Some(_) => {
                    live.remove(token);
                }
                None => {}
            }
        }
        match (self.login, token) {
            (Login::Anonymous, _) => {
                let (session, token) = self.open()?;
                Ok(CallSession {
                    session,
                    issued: Some(token),
                })
            }
            (Login::Password, None) => Err(Error::Unauthenticated(
                "no bearer token: log in with a handshake first".into(),
            )),
            (Login::Password, Some(_)) => Err(Error::Unauthenticated(
                "unknown or expired bearer token: log in again".into(),
            )),
        }
    }
}

fn authorization(metadata: &MetadataMap) -> Result<Option<&str>> {
    metadata
        .get("authorization")
        .map(|value| {
            value
                .to_str()
                .map_err(|_| Error::Unauthenticated("the authorization header is not text".into()))
        })
        .transpose()
}

/// `user:password` from an `authorization: Basic ...` header.
fn basic_credentials(metadata: &MetadataMap) -> Result<Option<(String, String)>> {
    let Some(header) = authorization(metadata)? else {
        return Ok(None);
    };
    let Some(encoded) = strip_scheme(header, "Basic") else {
        return Err(Error::Unauthenticated(
            "the handshake takes basic credentials".into(),
        ));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| Error::Unauthenticated("malformed basic credentials".into()))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| Error::Unauthenticated("malformed basic credentials".into()))?;
    Ok(Some((user.to_owned(), password.to_owned())))
}

fn bearer_token(metadata: &MetadataMap) -> Result<Option<String>> {
    let Some(header) = authorization(metadata)? else {
        return Ok(None);
    };
    strip_scheme(header, "Bearer")
        .map(|token| Some(token.trim().to_owned()))
        .ok_or_else(|| Error::Unauthenticated("calls take a bearer token".into()))
}

fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then_some(rest)
}

/// 256 random bits, URL-safe base64: session tokens and query ids.
pub(crate) fn random_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| Error::Startup(format!("no randomness for a session token: {error}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{BackendResult, SqlSession};

    struct Source;
    struct Nothing;

    #[async_trait::async_trait]
    impl SqlSession for Nothing {
        async fn plan(
            &self,
            _: &str,
            _: Vec<datafusion::scalar::ScalarValue>,
        ) -> BackendResult<crate::backend::Planned> {
            unreachable!("not planned in these tests")
        }
        async fn execute(
            &self,
            _: &str,
            _: Vec<datafusion::scalar::ScalarValue>,
        ) -> BackendResult<crate::backend::Executed> {
            unreachable!("not run in these tests")
        }
        async fn tables(&self) -> BackendResult<Vec<crate::backend::TableEntry>> {
            Ok(Vec::new())
        }
        async fn table_schema(
            &self,
            _: &crate::backend::TableEntry,
        ) -> BackendResult<datafusion::arrow::datatypes::SchemaRef> {
            unreachable!("no tables")
        }
        async fn ingest(
            &self,
            _: &crate::backend::IngestTarget,
            _: datafusion::execution::SendableRecordBatchStream,
        ) -> BackendResult<u64> {
            unreachable!("no ingest")
        }
    }

    impl SessionSource for Source {
        type Session = Nothing;
        fn open_session(&self) -> BackendResult<Nothing> {
            Ok(Nothing)
        }
        fn check_password(&self, user: &str, password: &str) -> bool {
            user == "ann" && password == "secret"
        }
        fn has_users(&self) -> bool {
            true
        }
    }

    fn header(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", value.parse().expect("header"));
        metadata
    }

    fn basic(user: &str, password: &str) -> MetadataMap {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        header(&format!("Basic {encoded}"))
    }

    #[test]
    fn password_logins_get_a_token_that_finds_their_session() {
        let sessions = Sessions::new(Arc::new(Source), Login::Password, Duration::from_secs(60));
        let token = sessions.handshake(&basic("ann", "secret")).expect("login");
        let first = sessions
            .session(&header(&format!("Bearer {token}")))
            .expect("session");
        let second = sessions
            .session(&header(&format!("bearer {token}")))
            .expect("session");
        assert!(Arc::ptr_eq(&first.session, &second.session));
        assert!(first.issued.is_none());
        let other = sessions.handshake(&basic("ann", "secret")).expect("login");
        assert_ne!(token, other);
    }

    #[test]
    fn refusals_are_unauthenticated() {
        let sessions = Sessions::new(Arc::new(Source), Login::Password, Duration::from_secs(60));
        for metadata in [
            basic("ann", "wrong"),
            basic("bob", "secret"),
            MetadataMap::new(),
            header("Basic !!!"),
            header("Bearer x"),
        ] {
            let error = sessions.handshake(&metadata).expect_err("refused");
            assert_eq!(error.code(), tonic::Code::Unauthenticated, "{error}");
        }
        for metadata in [
            MetadataMap::new(),
            header("Bearer unknown"),
            basic("ann", "secret"),
        ] {
            let error = sessions.session(&metadata).err().expect("refused");
            assert_eq!(error.code(), tonic::Code::Unauthenticated, "{error}");
        }
    }

    #[test]
    fn idle_sessions_expire() {
        let sessions = Sessions::new(Arc::new(Source), Login::Password, Duration::ZERO);
        let token = sessions.handshake(&basic("ann", "secret")).expect("login");
        let error = sessions
            .session(&header(&format!("Bearer {token}")))
            .err()
            .expect("expired");
        assert_eq!(error.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn anonymous_calls_get_a_session_and_its_token() {
        let sessions = Sessions::new(Arc::new(Source), Login::Anonymous, Duration::from_secs(60));
        let first = sessions.session(&MetadataMap::new()).expect("anonymous");
        let issued = first.issued.expect("a token for the next calls");
        let again = sessions
            .session(&header(&format!("Bearer {issued}")))
            .expect("session");
        assert!(Arc::ptr_eq(&first.session, &again.session));
        assert!(again.issued.is_none());
        let token = sessions.handshake(&MetadataMap::new()).expect("token");
        sessions
            .session(&header(&format!("Bearer {token}")))
            .expect("session");
        let fresh = sessions.session(&header("Bearer unknown")).expect("fresh");
        assert!(fresh.issued.is_some());
        // Authorizing a call opens no session.
        let live = sessions.live().len();
        sessions.authorize(&MetadataMap::new()).expect("anyone");
        assert_eq!(sessions.live().len(), live);
    }

    #[test]
    fn sessions_are_bounded() {
        let sessions = Sessions::new(Arc::new(Source), Login::Anonymous, Duration::from_secs(60));
        let first = sessions.session(&MetadataMap::new()).expect("first");
        for _ in 0..MAX_SESSIONS {
            sessions.session(&MetadataMap::new()).expect("more");
        }
        assert_eq!(sessions.live().len(), MAX_SESSIONS);
        let first = first.issued.expect("token");
        let again = sessions
            .session(&header(&format!("Bearer {first}")))
            .expect("session");
        assert!(again.issued.is_some(), "the oldest session made way");
    }
}
