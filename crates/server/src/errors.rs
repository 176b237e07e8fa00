//! The one place where Conclave errors become gRPC statuses, with the codes and exact
//! messages etcd clients match on (Go clientv3 maps errors back by message text).

use conclave_consensus::{ConsensusError, MembershipRefusal};
use conclave_mvcc::MvccError;
use tonic::{Code, Status};

/// etcd's message for a request over `--max-request-bytes`.
pub const REQUEST_TOO_LARGE: &str = "etcdserver: request is too large";

/// etcd's `v3election` error when an election has no leader (`concurrency.ErrElectionNoLeader`).
pub const ELECTION_NO_LEADER: &str = "election: no leader";
/// etcd's `v3election` error for a leader key that no longer leads (`ErrElectionNotLeader`).
pub const ELECTION_NOT_LEADER: &str = "election: not leader";
/// etcd's `v3election` error for a Proclaim/Resign without a leader key (`ErrMissingLeaderKey`).
pub const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";
/// etcd 3.5's `v3lock` error when the lock's lease died while waiting (`ErrSessionExpired`).
pub const MUTEX_SESSION_EXPIRED: &str = "mutex: session is expired";
/// Conclave's Campaign error when the campaign's lease died while waiting (etcd keeps
/// waiting there; Conclave fails as its Lock does).
pub const ELECTION_SESSION_EXPIRED: &str = "election: session is expired";

/// The gRPC status of an election or lock recipe error. etcd returns these as plain Go
/// errors, which gRPC sends as `Unknown` with the error text; clients match on the text.
pub fn recipe_status(message: &str) -> Status {
    Status::unknown(message)
}

/// The gRPC status for an MVCC error.
pub fn mvcc_status(e: &MvccError) -> Status {
    let code = match e {
        MvccError::KeyNotProvided
        | MvccError::KeyNotFound
        | MvccError::ValueProvided
        | MvccError::LeaseProvided
        | MvccError::TooManyOps
        | MvccError::DuplicateKey => Code::InvalidArgument,
        MvccError::Compacted | MvccError::FutureRevision | MvccError::LeaseTtlTooLarge => Code::OutOfRange,
        MvccError::LeaseExists => Code::FailedPrecondition,
        MvccError::LeaseNotFound => Code::NotFound,
        MvccError::Corrupt(_) => return Status::data_loss("etcdserver: corrupt cluster"),
        MvccError::Storage(_) => Code::Internal,
    };
    Status::new(code, e.to_string())
}

/// The gRPC status for a consensus error. Leader loss and timeouts are `Unavailable`, as
/// in etcd, so clients retry reads on another member but never blindly re-send a write.
pub fn consensus_status(e: &ConsensusError) -> Status {
    match e {
        ConsensusError::Rejected(m) => mvcc_status(m),
        ConsensusError::Membership(refusal) => {
            let code = match refusal {
                MembershipRefusal::MemberNotFound => Code::NotFound,
                MembershipRefusal::PeerUrlsExist
                | MembershipRefusal::NotLearner
                | MembershipRefusal::LearnerNotReady
                | MembershipRefusal::NotEnoughStarted => Code::FailedPrecondition,
                MembershipRefusal::Failed(_) => Code::Unknown,
            };
            Status::new(code, refusal.to_string())
        }
        ConsensusError::NoLeader => Status::unavailable("etcdserver: no leader"),
        ConsensusError::OutcomeUnknown(why) => {
            tracing::debug!(reason = %why, "write outcome unknown");
            Status::unavailable("etcdserver: request timed out, possibly due to previous leader failure")
        }
        ConsensusError::Timeout => Status::unavailable("etcdserver: request timed out"),
        ConsensusError::Unreachable(_) => {
            Status::unavailable("etcdserver: request timed out, possibly due to connection lost")
        }
        ConsensusError::Fatal(_) => Status::unavailable("etcdserver: server stopped"),
        ConsensusError::NotLeader | ConsensusError::BadTransferee => {
            Status::failed_precondition(e.to_string())
        }
        ConsensusError::Config(m) | ConsensusError::Storage(m) => Status::internal(m.clone()),
    }
}
