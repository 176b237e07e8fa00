//! Why a group operation failed. `crate::errors::group_status` turns these into gRPC
//! statuses (the one place), with codes a client can act on.

use conclave_consensus::ConsensusError;
use conclave_mvcc::MvccError;

use super::records::RecordError;

/// A group operation's failure.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// No such group (NotFound).
    #[error("group {0:?} not found")]
    NoGroup(String),
    /// The name is taken (AlreadyExists).
    #[error("group {0:?} already exists")]
    GroupExists(String),
    /// The member is not registered (NotFound).
    #[error(
        "member {member:?} is not registered in group {group:?} (it never joined, or its session ended)"
    )]
    NoMember {
        /// The group.
        group: String,
        /// The member.
        member: String,
    },
    /// Another live session holds the member id (AlreadyExists).
    #[error("member {member:?} of group {group:?} is registered under another live session (lease {lease:x}): leave with that session first, or wait for it to end")]
    MemberTaken {
        /// The group.
        group: String,
        /// The member.
        member: String,
        /// The session that holds it.
        lease: i64,
    },
    /// The lease does not exist (NotFound).
    #[error("lease {0:x} not found (it expired or was revoked): grant a new session lease and join again")]
    NoLease(i64),
    /// Malformed input (InvalidArgument); says what to change.
    #[error("{0}")]
    Invalid(String),
    /// The request does not fit the group's state (FailedPrecondition); says why.
    #[error("{0}")]
    Precondition(String),
    /// The request cannot be served yet but will be shortly, unchanged (Aborted); says why.
    #[error("{0}")]
    Busy(String),
    /// An ack at an epoch that is no longer the partition's (FailedPrecondition, with the
    /// current epoch in the trailer `conclave-epoch`).
    #[error("stale epoch: partition {partition} of group {group:?} is at epoch {current}, not {given}")]
    StaleEpoch {
        /// The group.
        group: String,
        /// The partition.
        partition: u32,
        /// Its epoch now.
        current: i64,
        /// The epoch the request named.
        given: i64,
    },
    /// A watch from a generation no longer in the history (OutOfRange).
    #[error("generation {given} of group {group:?} is older than the kept history (oldest kept: {oldest}): read the map again")]
    GenerationGone {
        /// The group.
        group: String,
        /// The generation asked for.
        given: u64,
        /// The oldest generation kept.
        oldest: u64,
    },
    /// A watch from a generation the map has not reached (OutOfRange).
    #[error("generation {given} of group {group:?} is ahead of the map (now at {current})")]
    FutureGeneration {
        /// The group.
        group: String,
        /// The generation asked for.
        given: u64,
        /// The map's generation.
        current: u64,
    },
    /// The operation did not finish in time (DeadlineExceeded).
    #[error("{0}")]
    Timeout(String),
    /// A stored record could not be read (DataLoss).
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The store refused (etcd's error).
    #[error(transparent)]
    Store(#[from] MvccError),
    /// Consensus failed (no leader, outcome unknown, ...).
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
    /// A bug or an impossible answer (Internal).
    #[error("{0}")]
    Internal(String),
}
