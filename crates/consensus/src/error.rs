//! The consensus crate's error type.

use conclave_contract::errors;
use conclave_mvcc::MvccError;

/// Why a consensus operation failed. The server maps these to etcd's gRPC errors in one
/// place.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// No leader is known right now (election in progress or quorum lost).
    #[error("{}", errors::NO_LEADER)]
    NoLeader,
    /// The write was proposed but its outcome is unknown (leader changed or connection
    /// lost after sending). The client must not assume it failed.
    #[error("{}", errors::TIMEOUT_DUE_TO_LEADER_FAIL)]
    OutcomeUnknown(String),
    /// The operation did not finish in time.
    #[error("{}", errors::TIMEOUT)]
    Timeout,
    /// The state machine rejected the request (deterministically, on every member).
    #[error(transparent)]
    Rejected(#[from] MvccError),
    /// The leader refused a membership change.
    #[error(transparent)]
    Membership(#[from] crate::peer::MembershipRefusal),
    /// Only the leader can do this.
    #[error("{}", errors::NOT_LEADER)]
    NotLeader,
    /// Leadership cannot be moved to that member.
    #[error("{}", errors::BAD_LEADER_TRANSFEREE)]
    BadTransferee,
    /// A peer could not be reached.
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// The configuration is not valid; says what to change.
    #[error("{0}")]
    Config(String),
    /// Local storage failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The Raft core stopped; this member must be restarted.
    #[error("raft stopped: {0}")]
    Fatal(String),
}

impl From<crate::format::FormatError> for ConsensusError {
    fn from(e: crate::format::FormatError) -> Self {
        ConsensusError::Storage(e.to_string())
    }
}

impl From<std::io::Error> for ConsensusError {
    fn from(e: std::io::Error) -> Self {
        ConsensusError::Storage(e.to_string())
    }
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, ConsensusError>;
