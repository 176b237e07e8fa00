//! The Conclave Rust SDK.
//!
//! A [`Client`] talks to a Conclave cluster (or any etcd v3 server) over gRPC and hides
//! failover: it spreads over the endpoints it is given, retries reads and other
//! idempotent calls on another member with backoff, and never re-sends a write that may
//! have applied — such a write fails with [`Error::OutcomeUnknown`].
//!
//! What it offers, by module:
//! - [`kv`]: get / put / delete with builders, and [`txn`]: `when(..).then(..).otherwise(..)`;
//! - [`watch`]: a [`WatchStream`] that resumes after a disconnect or leader change from the
//!   last revision it delivered, with no gap and no duplicate;
//! - [`lease`]: a [`Lease`] kept alive in the background, whose [`Lease::lost`] fires as
//!   soon as the lease can no longer be assumed alive by a *local* monotonic deadline;
//! - [`election`] and [`lock`]: leadership and locks carrying a fencing [`Epoch`], whose
//!   [`Leadership::guard`] / [`LockGuard::guard`] make a txn apply only while the holder
//!   still holds, so a deposed holder's writes are rejected by the store itself; both
//!   stand on [`queue`], the contender queue in etcd's key layout;
//! - [`group`]: partition groups — join with hooks delivered in order, route keys with a
//!   documented hash, fence a partition leader's writes by its epoch;
//! - [`cluster`]: members, status, health, snapshots, compaction, defragmentation, alarms.
//!
//! ```no_run
//! # async fn demo() -> conclave_client::Result<()> {
//! use conclave_client::{Client, Compare, Op};
//!
//! let client = Client::connect(["127.0.0.1:2379", "127.0.0.1:22379"]).await?;
//! client.put("/config/mode", "blue").await?;
//! let kv = client.get("/config/mode").await?.expect("just written");
//! let swapped = client
//!     .txn()
//!     .when([Compare::mod_revision("/config/mode").eq(kv.mod_revision)])
//!     .then([Op::put("/config/mode", "green")])
//!     .await?;
//! assert!(swapped.succeeded);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

pub mod auth;
pub mod cluster;
pub mod config;
pub mod election;
mod error;
pub mod group;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod queue;
mod session;
pub mod tls;
mod transport;
pub mod txn;
pub mod watch;

pub use cluster::{EndpointHealth, EndpointStatus, Member, MemberId};
/// etcd's error texts, as [`Error::Server`] carries them ("etcdserver: user name not
/// found", ...), for matching a refusal without spelling its text again.
pub use conclave_contract::errors;
pub use election::{
    Candidate, CandidateChange, CandidateChanges, CandidateEntry, CandidateHandle, CandidateSettings,
    CandidateState, Election, ElectionHooks, Epoch, LeaderInfo, Leadership, StatusReport, SteppedDown,
};
pub use error::{Error, Result};
pub use kv::{DeleteResponse, KeyValue, PutResponse, RangeResponse, SortOrder, SortTarget};
pub use lease::{Lease, LeaseId};
pub use lock::LockGuard;
pub use queue::{Queue, Ticket};
pub use tls::{Tls, TlsSettings};
pub use txn::{Compare, Op, OpResponse, Txn, TxnResponse};
pub use watch::{Event, EventKind, WatchStream};

pub use session::Credentials;
use transport::Pool;
pub use transport::{Channel, Connectivity, Idempotency, MAX_RESPONSE_BYTES};

/// How the client connects, retries and keeps leases. Every field has a default that
/// suits a cluster on a LAN; tests shorten them.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// How long to wait for a TCP connection to a member. Default 2 s.
    pub connect_timeout: Duration,
    /// How long one attempt of a unary call may take before it counts as failed.
    /// Default 5 s.
    pub request_timeout: Duration,
    /// The total time spent retrying an idempotent call on other members before giving
    /// up with [`Error::Unavailable`]. Default 15 s.
    pub retry_budget: Duration,
    /// The first retry delay; doubles per attempt up to [`Self::backoff_max`]. Default 50 ms.
    pub backoff_base: Duration,
    /// The largest retry delay. Default 1 s.
    pub backoff_max: Duration,
    /// HTTP/2 ping interval on every connection, to notice a member that stopped
    /// answering. Default 2 s.
    pub keep_alive_interval: Duration,
    /// How long a ping may go unanswered before the connection is dropped. Default 2 s.
    pub keep_alive_timeout: Duration,
    /// How long before the lease's TTL (counted from the send time of the last
    /// successful keep-alive) [`Lease::lost`] fires. Capped at half the TTL. Default 1 s.
    pub lease_safety_margin: Duration,
    /// The TTL of the session lease that [`Client::lock`] and [`Candidate`] create when no
    /// lease is given. Default 10 s.
    pub session_ttl: Duration,
    /// The user the client logs in as (etcd's `Authenticate`) on first use; its token is
    /// sent on every call and renewed when the cluster refuses it. `None` (the default)
    /// sends no token, for clusters with auth disabled. Set with
    /// [`ClientOptions::credentials`].
    pub credentials: Option<Credentials>,
    /// TLS towards the members (see [`tls`]); set with [`ClientOptions::tls`]. Default
    /// `None`: scheme-less endpoints are plaintext, `https://` ones use the system CAs.
    pub tls: Option<Tls>,
}

impl ClientOptions {
    /// Logs in as `user` with `password`: the client authenticates on first use, sends
    /// the token on every request (unary and streaming), and logs in again when the
    /// cluster refuses the token (expired, or dropped after a password change).
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::new(user, password));
        self
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            retry_budget: Duration::from_secs(15),
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            keep_alive_interval: Duration::from_secs(2),
            keep_alive_timeout: Duration::from_secs(2),
            lease_safety_margin: Duration::from_secs(1),
            session_ttl: Duration::from_secs(10),
            credentials: None,
            tls: None,
        }
    }
}

/// A handle to a cluster. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Client {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.pool.urls())
            .finish()
    }
}

impl Client {
    /// Connects to the cluster at `endpoints` (`host:port`, `http://host:port` or
    /// `https://host:port`) with
    /// default options. Connections are made lazily; this fails only on malformed
    /// endpoints. Use [`Client::status`] to check that the cluster answers.
    pub async fn connect<I, S>(endpoints: I) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Client::connect_with(endpoints, ClientOptions::default()).await
    }

    /// Connects with the given options. With [`ClientOptions::credentials`], logs in
    /// first (etcd's `Authenticate`, as etcd's clients do when they are created), so a
    /// wrong user or password fails here with [`Error::AuthenticationFailed`]; if no
    /// member answers, the login is left to the first call, so a client can still be
    /// created while the cluster is down.
    pub async fn connect_with<I, S>(endpoints: I, options: ClientOptions) -> Result<Client>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let endpoints: Vec<String> = endpoints.into_iter().map(|e| e.as_ref().to_string()).collect();
        let client = Client {
            pool: Arc::new(Pool::new(&endpoints, options)?),
        };
        match client.pool.ensure_login().await {
            Ok(()) => {}
            Err(error @ (Error::Unavailable { .. } | Error::OutcomeUnknown { .. } | Error::Timeout(_))) => {
                tracing::debug!(%error, "no member answered the login; logging in on first use");
            }
            Err(error) => return Err(error),
        }
        Ok(client)
    }

    /// The endpoint URLs this client was given.
    pub fn endpoints(&self) -> Vec<String> {
        self.pool.urls()
    }

    /// Follows whether the client reaches the cluster: [`Connectivity::Disconnected`]
    /// once every endpoint failed within a few seconds, [`Connectivity::Connected`] when
    /// one answers again. Only traffic moves it (a lease keep-alive is enough).
    pub fn connectivity(&self) -> tokio::sync::watch::Receiver<Connectivity> {
        self.pool.connectivity()
    }

    /// The options this client was built with.
    pub fn options(&self) -> &ClientOptions {
        self.pool.options()
    }

    /// Sends a raw etcd v3 gRPC call (for callers that need the wire messages, such as
    /// the HTTP gateway) under the SDK's failover rule: `call` gets a channel to a member
    /// and may be invoked again on another member — always for
    /// [`Idempotency::Idempotent`], and for [`Idempotency::NonIdempotent`] only when the
    /// request certainly did not apply (otherwise [`Error::OutcomeUnknown`]).
    pub async fn raw_call<T, F, Fut>(&self, idempotency: Idempotency, call: F) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, tonic::Status>>,
    {
        self.pool.call(idempotency, call).await
    }

    /// A channel to the currently preferred member, for raw streaming calls (the caller
    /// handles reconnects).
    pub fn raw_channel(&self) -> Channel {
        self.pool.current().1
    }

    /// A client over the same connections that sends `token` (one obtained from
    /// `Authenticate`, e.g. by [`auth::Auth::authenticate`]) instead of this client's own
    /// credentials, and never logs in itself: a refused token fails with
    /// [`Error::InvalidToken`]. For a front end that acts on behalf of callers with their
    /// own rights, such as the HTTP gateway. Cheap: it shares this client's channels.
    pub fn with_token(&self, token: &str) -> Result<Client> {
        Ok(Client {
            pool: Arc::new(self.pool.with_token(token)?),
        })
    }

    /// Logs in now with the configured credentials (otherwise the client does on first
    /// use), to find out early whether they are accepted: fails with
    /// [`Error::AuthenticationFailed`] for a wrong user or password. Does nothing
    /// without credentials, or when the cluster has auth disabled.
    pub async fn authenticate(&self) -> Result<()> {
        self.pool.ensure_login().await
    }

    /// The user and role administration calls, and auth enable/disable/status.
    pub fn auth(&self) -> auth::Auth {
        auth::Auth::new(self.clone())
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }
}
