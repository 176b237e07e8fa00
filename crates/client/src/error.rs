//! The SDK's one error type, with variants a caller can act on.

use std::time::Duration;

use conclave_contract::errors;
use tonic::Code;

/// A `Result` whose error is the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a call failed. Variants say what the caller can do next: retry ([`Error::Unavailable`]),
/// check whether a write applied ([`Error::OutcomeUnknown`]), re-read from a later revision
/// ([`Error::Compacted`]), or stop acting as a leader or lock holder ([`Error::LeaseLost`],
/// [`Error::LeadershipLost`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No endpoints were given, or one could not be parsed.
    #[error(
        "invalid endpoint {endpoint:?}: {reason} (use host:port, http://host:port or https://host:port)"
    )]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },

    /// No member could serve the request within the retry budget. Only requests that are
    /// safe to repeat end here (reads, and writes whose repetition has no further effect,
    /// or that certainly never reached a member), so retrying later is safe — though an
    /// idempotent write may have applied on an earlier attempt.
    #[error("cluster unavailable: {message} (tried {attempts} time(s); check that the members are running and have a leader)")]
    Unavailable {
        /// The last error seen.
        message: String,
        /// How many attempts were made.
        attempts: u32,
    },

    /// A write was sent but its outcome is unknown: the connection broke or the request
    /// timed out after the member may have proposed it. The write may or may not have
    /// applied; read the key (or use a guarded txn) before retrying.
    #[error("outcome unknown: {message} (the write may have applied; read before retrying)")]
    OutcomeUnknown {
        /// What happened.
        message: String,
    },

    /// The revision asked for has been compacted away. A watch that fails with this
    /// must be restarted from a fresh read.
    #[error("required revision has been compacted (compact revision {compact_revision:?})")]
    Compacted {
        /// The compaction revision, when the server reported it (watch cancellations do).
        compact_revision: Option<i64>,
    },

    /// The revision asked for is newer than the store's.
    #[error("required revision is a future revision")]
    FutureRevision,

    /// The lease does not exist (it expired or was revoked).
    #[error("lease not found (it expired or was revoked)")]
    LeaseNotFound,

    /// The lease can no longer be assumed alive: no keep-alive succeeded within its TTL
    /// minus the safety margin, or the server reported it gone. Anything held under it
    /// (leadership, a lock) must be treated as lost.
    #[error("lease {lease:x} lost: {reason}")]
    LeaseLost {
        /// The lease ID.
        lease: i64,
        /// Why it is considered lost.
        reason: String,
    },

    /// The leadership or lock is no longer held: its key was deleted or replaced, or its
    /// lease was lost.
    #[error("no longer the holder of {key}: {reason}")]
    LeadershipLost {
        /// The leader or lock key.
        key: String,
        /// Why.
        reason: String,
    },

    /// `try_lock` found the lock held by another owner.
    #[error("lock {name} is held by another owner")]
    Locked {
        /// The lock name.
        name: String,
    },

    /// This member does not lead the partition (at the epoch asked for): another member
    /// does (`hint`, its id — find its endpoints with the group's router), or nobody does
    /// right now. Route the request to the leader.
    #[error("not the leader of partition {partition} of group {group:?}{}", match hint {
        Some(leader) => format!(" (the leader is {leader})"),
        None => " (it has no leader right now)".to_string(),
    })]
    NotLeader {
        /// The group.
        group: String,
        /// The partition.
        partition: u32,
        /// The current leader's member id, if there is one.
        hint: Option<String>,
    },

    /// The partition's leadership moved on to a newer epoch: state read or decided under
    /// the old one must not be acted on; re-read under `current`.
    #[error("stale epoch for partition {partition} of group {group:?}: it is at epoch {current}")]
    StaleEpoch {
        /// The group.
        group: String,
        /// The partition.
        partition: u32,
        /// Its epoch now.
        current: i64,
    },

    /// The request was refused because it is malformed (empty key, too large, too many
    /// operations, ...). Retrying it unchanged will fail again.
    #[error("invalid request: {0}")]
    InvalidArgument(String),

    /// A member refused the request for another reason; the gRPC code and etcd's
    /// message are kept as sent.
    #[error("server error ({code:?}): {message}")]
    Server {
        /// The gRPC status code.
        code: Code,
        /// The server's message (etcd's text where etcd has one).
        message: String,
    },

    /// The user name or password was refused by `Authenticate` (etcd's "authentication
    /// failed, invalid user ID or password"). Fix the credentials; retrying cannot help.
    #[error("authentication failed: invalid user name or password")]
    AuthenticationFailed,

    /// The cluster refused the token sent (etcd's "invalid auth token": unknown, expired,
    /// or dropped after a password change; or "revision of auth store is old"). A client
    /// with credentials logs in again and re-sends the call once before reporting this;
    /// a client built with [`crate::Client::with_token`] reports it at once.
    #[error("invalid auth token: {message} (log in again)")]
    InvalidToken {
        /// The server's message.
        message: String,
    },

    /// Auth is enabled and the request carried no token (etcd's "user name is empty"):
    /// give the client credentials ([`crate::ClientOptions::credentials`]).
    #[error("authentication required: the cluster has auth enabled and no user was given")]
    AuthRequired,

    /// The user is authenticated but its roles do not allow this request (etcd's
    /// "permission denied"). Grant the user a role with the permission it needs.
    #[error("permission denied: the user's roles do not allow this request")]
    PermissionDenied,

    /// Too many failed logins for this user or from this address (Conclave's
    /// "too many failed authentication attempts, retry later"): wait a few seconds, and
    /// check the password before retrying.
    #[error("authentication rate limited: too many failed attempts, retry in a few seconds")]
    AuthRateLimited,

    /// A configuration file or environment setting is unusable (see [`crate::config`]).
    #[error("client configuration: {message}")]
    Config {
        /// What is wrong, naming the setting.
        message: String,
    },

    /// The client lost every endpoint (each failed within the last few seconds and none
    /// has answered since); passed to [`crate::ElectionHooks::on_disconnect`].
    #[error("disconnected from the cluster: {reason}")]
    Disconnected {
        /// The last failure seen.
        reason: String,
    },

    /// No candidate with this id is registered in the election (it never started, or
    /// its registry lease expired).
    #[error("no candidate {id:?} is registered in election {election:?}")]
    UnknownCandidate {
        /// The election.
        election: String,
        /// The candidate id asked for.
        id: String,
    },

    /// The election has no leader right now (nobody campaigns, or a new leader is still
    /// being elected).
    #[error("election {election:?} has no leader")]
    NoLeader {
        /// The election.
        election: String,
    },

    /// A candidate did not answer a control request (ping, status, step-down) within
    /// the timeout: it is paused, cut off from the cluster, or gone.
    #[error("candidate {id:?} did not answer within {after:?} (paused, cut off from the cluster, or gone)")]
    NoAnswer {
        /// The candidate id.
        id: String,
        /// How long the request waited.
        after: Duration,
    },

    /// A candidate answered a control request with a refusal (asked to step down while
    /// not leading, an unknown request, ...).
    #[error("candidate {id:?} refused: {reason}")]
    Refused {
        /// The candidate id.
        id: String,
        /// Its reason.
        reason: String,
    },

    /// The call did not finish within its deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),

    /// Writing a snapshot to the caller's writer failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),

    /// The TLS settings cannot be used: a file is missing or unreadable, a key does not
    /// match its certificate (the message names the file and the setting).
    #[error(transparent)]
    Tls(#[from] conclave_tls::TlsError),
}

impl Error {
    /// Maps a gRPC status that is final (not retried) to a typed error, by etcd's codes
    /// and messages.
    pub(crate) fn from_status(status: &tonic::Status) -> Error {
        let message = status.message();
        match (status.code(), message) {
            (Code::OutOfRange, errors::COMPACTED) => Error::Compacted {
                compact_revision: None,
            },
            (Code::OutOfRange, errors::FUTURE_REVISION) => Error::FutureRevision,
            (Code::NotFound, errors::LEASE_NOT_FOUND) => Error::LeaseNotFound,
            (Code::InvalidArgument, errors::AUTH_FAILED) => Error::AuthenticationFailed,
            (Code::Unauthenticated, _) | (Code::InvalidArgument, errors::AUTH_OLD_REVISION) => {
                Error::InvalidToken {
                    message: message.to_string(),
                }
            }
            (Code::InvalidArgument, errors::USER_EMPTY) => Error::AuthRequired,
            (Code::PermissionDenied, _) => Error::PermissionDenied,
            (Code::ResourceExhausted, errors::AUTH_RATE_LIMITED) => Error::AuthRateLimited,
            (Code::InvalidArgument, _) => Error::InvalidArgument(message.to_string()),
            (code, _) => Error::Server {
                code,
                message: message.to_string(),
            },
        }
    }

    /// The text an etcd server sends for this error ("etcdserver: permission denied",
    /// "etcdserver: requested lease not found", ...), for front ends that repeat etcd's
    /// wording (etcdctl-style command lines, etcd's JSON gateway paths); `None` for
    /// errors the SDK itself decided (unavailable, outcome unknown, lease lost, ...).
    pub fn etcd_text(&self) -> Option<String> {
        let text = match self {
            Error::Compacted { .. } => errors::COMPACTED,
            Error::FutureRevision => errors::FUTURE_REVISION,
            Error::LeaseNotFound => errors::LEASE_NOT_FOUND,
            Error::AuthenticationFailed => errors::AUTH_FAILED,
            Error::AuthRequired => errors::USER_EMPTY,
            Error::PermissionDenied => errors::PERMISSION_DENIED,
            Error::AuthRateLimited => errors::AUTH_RATE_LIMITED,
            Error::InvalidToken { message }
            | Error::InvalidArgument(message)
            | Error::Server { message, .. } => return Some(message.clone()),
            _ => return None,
        };
        Some(text.to_string())
    }

    /// Whether retrying the same request later may succeed without any other change.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. } | Error::Timeout(_) | Error::AuthRateLimited
        )
    }
}

#[cfg(test)]
mod tests {
    use tonic::Status;

    use super::*;

    #[test]
    fn auth_refusals_map_to_their_own_variants() {
        let map = |status: Status| Error::from_status(&status);
        assert!(matches!(
            map(Status::invalid_argument(errors::AUTH_FAILED)),
            Error::AuthenticationFailed
        ));
        assert!(matches!(
            map(Status::unauthenticated(errors::INVALID_AUTH_TOKEN)),
            Error::InvalidToken { message } if message == errors::INVALID_AUTH_TOKEN
        ));
        assert!(matches!(
            map(Status::invalid_argument(errors::AUTH_OLD_REVISION)),
            Error::InvalidToken { .. }
        ));
        assert!(matches!(
            map(Status::invalid_argument(errors::USER_EMPTY)),
            Error::AuthRequired
        ));
        assert!(matches!(
            map(Status::permission_denied(errors::PERMISSION_DENIED)),
            Error::PermissionDenied
        ));
        let limited = map(Status::resource_exhausted(errors::AUTH_RATE_LIMITED));
        assert!(matches!(limited, Error::AuthRateLimited));
        assert!(limited.is_retryable());
        assert_eq!(
            Error::PermissionDenied.etcd_text().as_deref(),
            Some(errors::PERMISSION_DENIED)
        );
        assert_eq!(
            Error::AuthenticationFailed.etcd_text().as_deref(),
            Some(errors::AUTH_FAILED)
        );
        // Admin refusals keep etcd's code and text.
        assert!(matches!(
            map(Status::failed_precondition(errors::USER_ALREADY_EXIST)),
            Error::Server { code: Code::FailedPrecondition, message } if message == errors::USER_ALREADY_EXIST
        ));
    }
}
