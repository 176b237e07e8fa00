//! Authentication and access control, as etcd's auth store: users, roles, key-range
//! permissions, `root`, and tokens — with tokens that every member accepts.
//!
//! - [`records`]: the replicated state (keys under `/_conclave/auth/`) and how a change is
//!   written (one txn guarded by the state's mod revision).
//! - [`perms`]: which ranges a user may read or write.
//! - [`token`]: signed tokens (HS256) keyed by the replicated signing key.
//! - [`limiter`]: the rate limit of failed `Authenticate` calls.
//!
//! [`Auth`] ties them to a node: it caches the state per mod revision of the state record,
//! turns a request's credentials into a [`Caller`], and a caller checks requests. A user's
//! write is proposed inside a txn that also compares the state's mod revision with the one
//! its permissions were checked against ([`Caller::guard`]): a write checked on a member
//! that had not yet applied a revocation fails that compare and is checked again, so a
//! revocation acknowledged to its caller takes effect at once on every member.

pub mod limiter;
pub mod perms;
pub mod records;
pub mod token;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use conclave_consensus::Node;
use conclave_contract::errors;
use conclave_mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
    ResponseOp, TxnRequest, WriteRequest, WriteResponse,
};
use tonic::metadata::MetadataMap;
use tonic::Status;

use crate::errors::consensus_status;
pub use perms::{Access, PermissionSet};
pub use records::{AuthState, ROOT};

/// Settings of authentication (etcd's `--auth-token-ttl`, `--bcrypt-cost`).
#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    /// How long a token is valid.
    pub token_ttl: Duration,
    /// bcrypt's cost for new password hashes (4..=31).
    pub bcrypt_cost: u32,
    /// A request without a token is the user named by its verified client certificate's
    /// Common Name (etcd does this under `--client-cert-auth` only, and so do we).
    pub cert_users: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            token_ttl: Duration::from_secs(300),
            bcrypt_cost: bcrypt::DEFAULT_COST,
            cert_users: false,
        }
    }
}

/// What a request says about who sends it, taken before its body is consumed.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The `token` (or `authorization`) metadata.
    pub token: Option<String>,
    /// The Common Name of a verified client certificate (`--client-cert-auth`).
    pub cert_user: Option<String>,
    /// The peer's address.
    pub addr: Option<IpAddr>,
}

impl Credentials {
    /// The credentials of `request`.
    pub fn of<T>(request: &tonic::Request<T>) -> Credentials {
        Credentials {
            token: token_of(request.metadata()),
            cert_user: crate::tls::client_common_name(request),
            addr: request.remote_addr().map(|a| a.ip()),
        }
    }
}

/// etcd clients send `token`; its gRPC gateway sends `authorization` (optionally with a
/// `Bearer ` prefix).
fn token_of(metadata: &MetadataMap) -> Option<String> {
    let raw = metadata
        .get("token")
        .or_else(|| metadata.get("authorization"))?
        .to_str()
        .ok()?
        .trim();
    let token = raw.strip_prefix("Bearer ").unwrap_or(raw).trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Who sends a request, and what it may do.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Auth is off (as of the state whose record has this mod revision, 0 if none was
    /// ever written): every request is allowed.
    Anyone {
        /// Mod revision of the state record the decision was read at.
        state_mod_revision: i64,
    },
    /// An authenticated user.
    User(Arc<User>),
}

/// An authenticated user as of one auth state.
#[derive(Debug)]
pub struct User {
    /// The name.
    pub name: String,
    /// Holds the root role.
    pub root: bool,
    perms: PermissionSet,
    /// Mod revision of the state record its permissions were read at.
    state_mod_revision: i64,
}

fn denied() -> Status {
    Status::permission_denied(errors::PERMISSION_DENIED)
}

impl Caller {
    /// The user's name (`None` when auth is off).
    pub fn name(&self) -> Option<&str> {
        match self {
            Caller::Anyone { .. } => None,
            Caller::User(u) => Some(&u.name),
        }
    }

    /// Whether the caller may do everything (auth off, or a root user).
    pub fn is_admin(&self) -> bool {
        match self {
            Caller::Anyone { .. } => true,
            Caller::User(u) => u.root,
        }
    }

    /// Refuses a caller that is not an admin.
    pub fn check_admin(&self) -> Result<(), Status> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(denied())
        }
    }

    /// Refuses `access` to etcd's range `(key, range_end)` unless permitted.
    pub fn check(&self, access: Access, key: &[u8], range_end: &[u8]) -> Result<(), Status> {
        match self {
            Caller::Anyone { .. } => Ok(()),
            Caller::User(u) if u.root || u.perms.allows(access, key, range_end) => Ok(()),
            Caller::User(_) => Err(denied()),
        }
    }

    /// Checks a range.
    pub fn check_range(&self, range: &RangeRequest) -> Result<(), Status> {
        self.check(Access::Read, &range.key, &range.range_end)
    }

    /// Checks a put (and the read of its previous version when asked for).
    pub fn check_put(&self, put: &PutRequest) -> Result<(), Status> {
        self.check(Access::Write, &put.key, &[])?;
        if put.prev_kv {
            self.check(Access::Read, &put.key, &[])?;
        }
        Ok(())
    }

    /// Checks a delete (and the read of the deleted versions when asked for).
    pub fn check_delete(&self, delete: &DeleteRangeRequest) -> Result<(), Status> {
        self.check(Access::Write, &delete.key, &delete.range_end)?;
        if delete.prev_kv {
            self.check(Access::Read, &delete.key, &delete.range_end)?;
        }
        Ok(())
    }

    /// Checks every compare (a read) and every op of both branches, nested txns included.
    pub fn check_txn(&self, txn: &TxnRequest) -> Result<(), Status> {
        if matches!(self, Caller::Anyone { .. }) {
            return Ok(());
        }
        for compare in &txn.compare {
            self.check(Access::Read, &compare.key, &compare.range_end)?;
        }
        for op in txn.success.iter().chain(&txn.failure) {
            match op {
                RequestOp::Range(range) => self.check_range(range)?,
                RequestOp::Put(put) => self.check_put(put)?,
                RequestOp::DeleteRange(delete) => self.check_delete(delete)?,
                RequestOp::Txn(nested) => self.check_txn(nested)?,
            }
        }
        Ok(())
    }

    /// Checks a write request of the KV API.
    pub fn check_write(&self, write: &WriteRequest) -> Result<(), Status> {
        match write {
            WriteRequest::Put(put) => self.check_put(put),
            WriteRequest::DeleteRange(delete) => self.check_delete(delete),
            WriteRequest::Txn(txn) => self.check_txn(txn),
            _ => self.check_admin(),
        }
    }

    /// `write` as it must be proposed for this caller: a put, delete or txn goes inside a
    /// txn that holds only while the auth state is the one it was checked against. `None`
    /// when it needs no guard: writes that are not KV ops, and an anonymous write on the
    /// leader of a cluster that never had auth records (the leader has applied every
    /// acknowledged change, so no `AuthEnable` it has not seen can precede the write). A
    /// follower's anonymous write is guarded: it may not have applied an `AuthEnable`
    /// already acknowledged to someone else.
    pub fn guard(&self, write: &WriteRequest, on_leader: bool) -> Option<WriteRequest> {
        let state_mod_revision = match self {
            Caller::User(user) => user.state_mod_revision,
            Caller::Anyone { state_mod_revision } => {
                if *state_mod_revision == 0 && on_leader {
                    return None;
                }
                *state_mod_revision
            }
        };
        let op = match write {
            WriteRequest::Put(put) => RequestOp::Put(put.clone()),
            WriteRequest::DeleteRange(delete) => RequestOp::DeleteRange(delete.clone()),
            WriteRequest::Txn(txn) => RequestOp::Txn(txn.clone()),
            _ => return None,
        };
        Some(WriteRequest::Txn(TxnRequest {
            compare: vec![Compare {
                key: records::STATE.to_vec(),
                range_end: Vec::new(),
                result: CompareResult::Equal,
                target: CompareTarget::Mod(state_mod_revision),
            }],
            success: vec![op],
            failure: Vec::new(),
        }))
    }
}

/// The response of the write inside a [`Caller::guard`] txn; `None` when the guard failed
/// (the auth state changed: check again).
pub fn unguard(response: WriteResponse) -> Option<WriteResponse> {
    let WriteResponse::Txn(txn) = response else {
        return None;
    };
    if !txn.succeeded {
        return None;
    }
    match txn.responses.into_iter().next()? {
        ResponseOp::Put(r) => Some(WriteResponse::Put(r)),
        ResponseOp::DeleteRange(r) => Some(WriteResponse::DeleteRange(r)),
        ResponseOp::Txn(r) => Some(WriteResponse::Txn(r)),
        ResponseOp::Range(_) => None,
    }
}

/// Counters of authentication.
#[derive(Debug, Clone)]
pub struct AuthMetrics {
    /// Failed `Authenticate` calls by reason (`password`, `rate_limited`).
    pub failures: prometheus::IntCounterVec,
    /// Successful `Authenticate` calls.
    pub successes: prometheus::IntCounter,
}

impl AuthMetrics {
    /// The counters (register their [`AuthMetrics::collectors`]).
    pub fn new() -> prometheus::Result<AuthMetrics> {
        let failures = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "conclave_auth_failures_total",
                "Failed Authenticate calls by reason: password (unknown user or wrong password) or rate_limited (refused before checking: too many recent failures for the user or from the address).",
            ),
            &["reason"],
        )?;
        let successes = prometheus::IntCounter::new(
            "conclave_auth_successes_total",
            "Successful Authenticate calls (tokens issued).",
        )?;
        Ok(AuthMetrics { failures, successes })
    }

    /// What to register.
    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![Box::new(self.failures.clone()), Box::new(self.successes.clone())]
    }
}

/// A node's authentication: cached state, credentials → callers, tokens.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    node: Node,
    settings: AuthSettings,
    cache: Mutex<Arc<AuthState>>,
    limiter: Mutex<limiter::FailureLimiter>,
    /// bcrypt runs at most this many at once (it is slow on purpose).
    hashing: tokio::sync::Semaphore,
    metrics: AuthMetrics,
}

/// Now, in Unix seconds.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("auth state: {e}"))
}

impl Auth {
    /// The authentication of `node`.
    pub fn new(node: Node, settings: AuthSettings, metrics: AuthMetrics) -> Auth {
        Auth {
            inner: Arc::new(Inner {
                node,
                settings,
                cache: Mutex::new(Arc::new(AuthState::default())),
                limiter: Mutex::new(limiter::FailureLimiter::default()),
                hashing: tokio::sync::Semaphore::new(2),
                metrics,
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> AuthSettings {
        self.inner.settings
    }

    /// The node.
    pub fn node(&self) -> &Node {
        &self.inner.node
    }

    /// The auth state this member has applied (cached until the state record changes).
    pub fn state(&self) -> Result<Arc<AuthState>, Status> {
        let store = self.inner.node.store();
        let current = AuthState::current_mod_revision(store).map_err(internal)?;
        {
            let cached = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cached.mod_revision == current {
                return Ok(cached.clone());
            }
        }
        let loaded = Arc::new(AuthState::load(store).map_err(|e| {
            tracing::error!(error = %e, "cannot read the auth state");
            internal(e)
        })?);
        let mut cached = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.mod_revision >= cached.mod_revision {
            *cached = loaded.clone();
        }
        Ok(loaded)
    }

    /// The auth state after a linearizable barrier: includes every change acknowledged
    /// before this call.
    pub async fn fresh_state(&self) -> Result<Arc<AuthState>, Status> {
        self.inner
            .node
            .linearizable_barrier()
            .await
            .map_err(|e| consensus_status(&e))?;
        self.state()
    }

    /// The caller behind `credentials`, as of this member's applied auth state.
    pub async fn caller(&self, credentials: &Credentials) -> Result<Caller, Status> {
        let state = self.state()?;
        match self.caller_at(&state, credentials) {
            Err(Stale) => {
                // The token was issued by a member that had applied more auth changes.
                let state = self.fresh_state().await?;
                self.caller_at(&state, credentials)
                    .unwrap_or_else(|Stale| Err(Status::unauthenticated(errors::INVALID_AUTH_TOKEN)))
            }
            Ok(caller) => caller,
        }
    }

    /// The caller behind `credentials` if `check` allows it. `check` runs against this
    /// member's applied state and, when it denies, once more after a linearizable barrier:
    /// a permission granted (or a user added) just before the call is never refused
    /// because this member had not applied it yet. (A revocation this member has not
    /// applied is caught by [`Caller::guard`] on writes, and by the barrier of
    /// linearizable reads.)
    pub async fn authorize(
        &self,
        credentials: &Credentials,
        check: impl Fn(&Caller) -> Result<(), Status>,
    ) -> Result<Caller, Status> {
        let caller = self.caller(credentials).await?;
        match check(&caller) {
            Ok(()) => Ok(caller),
            Err(denied) if denied.code() == tonic::Code::PermissionDenied => {
                let caller = self.fresh_caller(credentials).await?;
                check(&caller)?;
                Ok(caller)
            }
            Err(e) => Err(e),
        }
    }

    /// As [`Auth::authorize`], for calls no [`Caller::guard`] can tie to the auth state
    /// (elections, locks, lease revocation, groups, admin calls): once auth records exist,
    /// or on a follower, `check` runs against the state after a linearizable barrier, so a
    /// revocation (or an `AuthEnable`) acknowledged before the call is always seen.
    pub async fn authorize_fresh(
        &self,
        credentials: &Credentials,
        check: impl Fn(&Caller) -> Result<(), Status>,
    ) -> Result<Caller, Status> {
        let local = self.state()?;
        let caller = if local.mod_revision == 0 && self.inner.node.is_leader() {
            self.caller_in(&local, credentials)?
        } else {
            self.fresh_caller(credentials).await?
        };
        check(&caller)?;
        Ok(caller)
    }

    /// The caller behind `credentials` after a linearizable barrier.
    pub async fn fresh_caller(&self, credentials: &Credentials) -> Result<Caller, Status> {
        let state = self.fresh_state().await?;
        self.caller_in(&state, credentials)
    }

    /// The caller behind `credentials` as of `state` (a token newer than `state` is
    /// refused: call after [`Auth::fresh_state`]).
    pub fn caller_in(&self, state: &AuthState, credentials: &Credentials) -> Result<Caller, Status> {
        self.caller_at(state, credentials)
            .unwrap_or_else(|Stale| Err(Status::unauthenticated(errors::INVALID_AUTH_TOKEN)))
    }

    /// The caller for calls that etcd serves without a token too (MemberList, Status,
    /// alarm listing): an anonymous caller counts as [`Caller::Anyone`] there.
    pub async fn caller_or_anonymous(&self, credentials: &Credentials) -> Result<Caller, Status> {
        if credentials.token.is_none() && self.cert_user(credentials).is_none() {
            return Ok(Caller::Anyone {
                state_mod_revision: 0,
            });
        }
        self.caller(credentials).await
    }

    /// The user a verified client certificate names, when certificates name users.
    fn cert_user<'a>(&self, credentials: &'a Credentials) -> Option<&'a String> {
        credentials
            .cert_user
            .as_ref()
            .filter(|_| self.inner.settings.cert_users)
    }

    /// `Err(Stale)` when the token is newer than `state`.
    fn caller_at(
        &self,
        state: &AuthState,
        credentials: &Credentials,
    ) -> Result<Result<Caller, Status>, Stale> {
        if !state.state.enabled {
            return Ok(Ok(Caller::Anyone {
                state_mod_revision: state.mod_revision,
            }));
        }
        let name = match (&credentials.token, self.cert_user(credentials)) {
            (Some(token), _) => {
                let key = records::unhex(&state.state.signing_key).unwrap_or_default();
                let claims = match token::verify(token, &key, unix_now()) {
                    Ok(claims) => claims,
                    Err(e) => {
                        tracing::debug!(error = %e, "token refused");
                        return Ok(Err(Status::unauthenticated(errors::INVALID_AUTH_TOKEN)));
                    }
                };
                if claims.revision > state.state.revision {
                    return Err(Stale);
                }
                match state.users.get(&claims.username) {
                    Some(user) if user.password_revision <= claims.revision => claims.username,
                    _ => return Ok(Err(Status::unauthenticated(errors::INVALID_AUTH_TOKEN))),
                }
            }
            (None, Some(cert_user)) => cert_user.clone(),
            (None, None) => return Ok(Err(Status::invalid_argument(errors::USER_EMPTY))),
        };
        let Some(user) = state.users.get(&name) else {
            return Ok(Err(Status::invalid_argument(errors::USER_NOT_FOUND)));
        };
        let perms = PermissionSet::of(user.roles.iter().filter_map(|r| state.roles.get(r)));
        Ok(Ok(Caller::User(Arc::new(User {
            root: state.is_root(&name),
            name,
            perms,
            state_mod_revision: state.mod_revision,
        }))))
    }

    /// etcd's Authenticate: a token for `name` if `password` is its password. Rate limited
    /// per user and per source address; the password is checked against the state after
    /// a linearizable barrier (a user just created on another member can log in).
    pub async fn authenticate(
        &self,
        name: &str,
        password: &str,
        addr: Option<IpAddr>,
    ) -> Result<String, Status> {
        let keys: Vec<String> = std::iter::once(format!("user:{name}"))
            .chain(addr.map(|a| format!("addr:{a}")))
            .collect();
        let allowed = {
            let limiter = self.inner.limiter.lock().unwrap_or_else(|e| e.into_inner());
            limiter.allows(&keys, Instant::now())
        };
        if !allowed {
            self.inner
                .metrics
                .failures
                .with_label_values(&["rate_limited"])
                .inc();
            return Err(Status::resource_exhausted(errors::AUTH_RATE_LIMITED));
        }
        let state = self.fresh_state().await?;
        if !state.state.enabled {
            return Err(Status::failed_precondition(errors::AUTH_NOT_ENABLED));
        }
        let hash = state.users.get(name).and_then(|u| u.password_hash.clone());
        let matches = match hash {
            Some(hash) => {
                let password = password.to_string();
                self.blocking_bcrypt(move || bcrypt::verify(password, &hash).unwrap_or(false))
                    .await?
            }
            None => false,
        };
        if !matches {
            self.inner.metrics.failures.with_label_values(&["password"]).inc();
            let mut limiter = self.inner.limiter.lock().unwrap_or_else(|e| e.into_inner());
            limiter.failed(&keys, Instant::now());
            return Err(Status::invalid_argument(errors::AUTH_FAILED));
        }
        let key = records::unhex(&state.state.signing_key).unwrap_or_default();
        let claims = token::Claims {
            username: name.to_string(),
            revision: state.state.revision,
            exp: unix_now() + self.inner.settings.token_ttl.as_secs().max(1),
        };
        self.inner.metrics.successes.inc();
        token::sign(&claims, &key).map_err(internal)
    }

    /// The bcrypt hash of `password` at the configured cost, computed off the async
    /// threads (never on the apply path: hashes are what gets proposed).
    pub async fn hash_password(&self, password: &str) -> Result<String, Status> {
        let password = password.to_string();
        let cost = self.inner.settings.bcrypt_cost;
        self.blocking_bcrypt(move || bcrypt::hash(password, cost))
            .await?
            .map_err(|e| Status::invalid_argument(format!("cannot hash the password: {e}")))
    }

    async fn blocking_bcrypt<R: Send + 'static>(
        &self,
        work: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, Status> {
        let _permit = self
            .inner
            .hashing
            .acquire()
            .await
            .map_err(|_| Status::unavailable(errors::STOPPED))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Status::internal(format!("password hashing failed: {e}")))
    }
}

/// The token is newer than the state it was checked against.
struct Stale;

/// A fresh random signing key, hex.
pub fn new_signing_key() -> Result<String, Status> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| Status::internal(format!("no randomness for the signing key: {e}")))?;
    Ok(records::hex(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_from_either_metadata_key() {
        let mut md = MetadataMap::new();
        assert_eq!(token_of(&md), None);
        md.insert("authorization", "Bearer abc".parse().expect("ascii"));
        assert_eq!(token_of(&md).as_deref(), Some("abc"));
        md.insert("token", "xyz".parse().expect("ascii"));
        assert_eq!(token_of(&md).as_deref(), Some("xyz"));
    }

    #[test]
    fn a_guarded_write_unwraps_only_when_the_guard_held() {
        let user = Caller::User(Arc::new(User {
            name: "u".into(),
            root: false,
            perms: PermissionSet::default(),
            state_mod_revision: 42,
        }));
        let put = WriteRequest::Put(PutRequest {
            key: b"k".to_vec(),
            ..Default::default()
        });
        let Some(WriteRequest::Txn(txn)) = user.guard(&put, true) else {
            panic!("a user's put is guarded");
        };
        assert_eq!(txn.compare[0].target, CompareTarget::Mod(42));
        let never_configured = Caller::Anyone {
            state_mod_revision: 0,
        };
        assert!(never_configured.guard(&put, true).is_none());
        let Some(WriteRequest::Txn(txn)) = never_configured.guard(&put, false) else {
            panic!("a follower guards an anonymous put");
        };
        assert_eq!(txn.compare[0].target, CompareTarget::Mod(0));
        let configured = Caller::Anyone {
            state_mod_revision: 7,
        };
        assert!(configured.guard(&put, true).is_some());
        let ok = WriteResponse::Txn(conclave_mvcc::TxnResponse {
            succeeded: true,
            responses: vec![ResponseOp::Put(Default::default())],
        });
        assert!(matches!(unguard(ok), Some(WriteResponse::Put(_))));
        let failed = WriteResponse::Txn(conclave_mvcc::TxnResponse {
            succeeded: false,
            responses: vec![],
        });
        assert!(unguard(failed).is_none());
    }
}
