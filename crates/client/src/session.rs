//! Who the client is to the cluster: the credentials it logs in with, the token it holds,
//! and the interceptor that puts that token on every request.
//!
//! etcd's Go client sends the token returned by `Authenticate` in the gRPC metadata key
//! `token` on every call, unary and streaming; so does this SDK. A token refused by the
//! server ("invalid auth token": unknown, expired, or dropped after a password change;
//! "revision of auth store is old") is replaced by logging in again, once per call: both
//! refusals are answered before anything is proposed, so the call can be re-sent whatever
//! its idempotency.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;

use conclave_contract::errors;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Code, Status};

use crate::error::{Error, Result};

/// The gRPC metadata key etcd reads the token from.
pub(crate) const TOKEN_KEY: &str = "token";

/// A user name and password to log in with (etcd's `Authenticate`). The password is never
/// printed: `Debug` shows the user name only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    user: String,
    password: String,
}

impl Credentials {
    /// Credentials for `user` with `password`.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            user: user.into(),
            password: password.into(),
        }
    }

    /// The user name.
    pub fn user(&self) -> &str {
        &self.user
    }

    pub(crate) fn password(&self) -> &str {
        &self.password
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Whether a refusal means the token (or its absence) is the problem, so that logging in
/// again and re-sending may succeed. All three are answered before the request is
/// proposed: "user name is empty" is what etcd answers a request sent without a token
/// while auth is on (e.g. auth was enabled after this client first tried to log in).
pub(crate) fn is_token_refusal(status: &Status) -> bool {
    matches!(
        (status.code(), status.message()),
        (Code::Unauthenticated, errors::INVALID_AUTH_TOKEN)
            | (Code::InvalidArgument, errors::AUTH_OLD_REVISION)
            | (Code::InvalidArgument, errors::USER_EMPTY)
    )
}

/// The token a client sends, and how it gets a new one.
pub(crate) struct Session {
    /// Set for clients that log in themselves; `None` for clients without auth and for
    /// clients carrying somebody else's token (the gateway's per-request clients).
    credentials: Option<Credentials>,
    token: RwLock<Option<AsciiMetadataValue>>,
    /// Whether a login was attempted (a cluster with auth disabled refuses `Authenticate`;
    /// the client then sends no token until a request says one is needed).
    tried: AtomicBool,
    /// Bumped on every login, so concurrent callers refused with the same token log in
    /// once between them.
    generation: AtomicU64,
    login: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.credentials.as_ref().map(Credentials::user))
            .field("has_token", &self.token().is_some())
            .finish()
    }
}

impl Session {
    /// A session that logs in with `credentials` (if any) on first use.
    pub(crate) fn new(credentials: Option<Credentials>) -> Session {
        Session {
            credentials,
            token: RwLock::new(None),
            tried: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            login: tokio::sync::Mutex::new(()),
        }
    }

    /// A session that sends `token` as given and never logs in (a refused token is the
    /// caller's to replace).
    pub(crate) fn with_token(token: &str) -> Result<Session> {
        let value: AsciiMetadataValue = MetadataValue::try_from(token).map_err(|_| Error::InvalidToken {
            message: "the token contains characters not allowed in gRPC metadata".into(),
        })?;
        let session = Session::new(None);
        *session.token.write().unwrap_or_else(|p| p.into_inner()) = Some(value);
        session.tried.store(true, Ordering::Relaxed);
        Ok(session)
    }

    /// The token sent now, if any.
    pub(crate) fn token(&self) -> Option<AsciiMetadataValue> {
        self.token.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether this session can replace a refused token itself.
    pub(crate) fn can_login(&self) -> bool {
        self.credentials.is_some()
    }

    /// The login generation, read before a request so that [`Session::relogin`] knows
    /// which token was refused.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether the first login is still to be made.
    pub(crate) fn needs_first_login(&self) -> bool {
        self.credentials.is_some() && !self.tried.load(Ordering::Acquire)
    }

    /// The interceptor that attaches this session's token.
    pub(crate) fn interceptor(self: &std::sync::Arc<Self>) -> TokenInterceptor {
        TokenInterceptor {
            session: std::sync::Arc::clone(self),
        }
    }

    /// Logs in with `authenticate` unless another caller already did since `seen` (the
    /// generation read before the refused request). `authenticate` gets the credentials
    /// and returns the token.
    pub(crate) async fn relogin<F, Fut>(&self, seen: Option<u64>, authenticate: F) -> Result<()>
    where
        F: FnOnce(Credentials) -> Fut,
        Fut: std::future::Future<Output = Result<Option<String>>>,
    {
        let Some(credentials) = self.credentials.clone() else {
            return Ok(());
        };
        let _guard = self.login.lock().await;
        match seen {
            Some(seen) if self.generation() != seen => return Ok(()),
            None if self.tried.load(Ordering::Acquire) => return Ok(()),
            _ => {}
        }
        let token = authenticate(credentials).await?;
        let value = match token {
            Some(token) => {
                Some(
                    MetadataValue::try_from(token.as_str()).map_err(|_| Error::InvalidToken {
                        message: "the server returned a token not allowed in gRPC metadata".into(),
                    })?,
                )
            }
            None => None,
        };
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = value;
        self.tried.store(true, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

/// Puts the session's token, when it has one, in the `token` metadata of each request.
#[derive(Clone, Debug)]
pub struct TokenInterceptor {
    session: std::sync::Arc<Session>,
}

impl Interceptor for TokenInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> std::result::Result<tonic::Request<()>, Status> {
        if let Some(token) = self.session.token() {
            request.metadata_mut().insert(TOKEN_KEY, token);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn credentials_never_print_the_password() {
        let credentials = Credentials::new("alice", "s3cret");
        let shown = format!("{credentials:?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn only_token_refusals_trigger_a_new_login() {
        assert!(is_token_refusal(&Status::unauthenticated(
            errors::INVALID_AUTH_TOKEN
        )));
        assert!(is_token_refusal(&Status::invalid_argument(
            errors::AUTH_OLD_REVISION
        )));
        assert!(is_token_refusal(&Status::invalid_argument(errors::USER_EMPTY)));
        assert!(!is_token_refusal(&Status::permission_denied(
            errors::PERMISSION_DENIED
        )));
        assert!(!is_token_refusal(&Status::invalid_argument(errors::AUTH_FAILED)));
        assert!(!is_token_refusal(&Status::invalid_argument(
            errors::KEY_NOT_PROVIDED
        )));
    }

    #[tokio::test]
    async fn concurrent_refusals_of_one_token_log_in_once() {
        let session = Arc::new(Session::new(Some(Credentials::new("u", "p"))));
        let logins = Arc::new(AtomicU64::new(0));
        let seen = session.generation();
        for _ in 0..3 {
            let logins = Arc::clone(&logins);
            session
                .relogin(Some(seen), |_| async move {
                    logins.fetch_add(1, Ordering::Relaxed);
                    Ok(Some("t1".to_string()))
                })
                .await
                .unwrap();
        }
        assert_eq!(logins.load(Ordering::Relaxed), 1);
        assert_eq!(session.token().unwrap(), "t1");
        let mut interceptor = session.interceptor();
        let request = interceptor.call(tonic::Request::new(())).unwrap();
        assert_eq!(request.metadata().get(TOKEN_KEY).unwrap(), "t1");
    }

    #[test]
    fn a_session_without_a_token_sends_none() {
        let session = Arc::new(Session::new(None));
        let request = session.interceptor().call(tonic::Request::new(())).unwrap();
        assert!(request.metadata().get(TOKEN_KEY).is_none());
    }
}
