//! The one place where Conclave errors become gRPC statuses, with the codes and exact
//! messages etcd clients match on (Go clientv3 maps errors back by message text).

use conclave_consensus::{ConsensusError, MembershipRefusal};
use conclave_mvcc::MvccError;
use tonic::{Code, Status};

/// etcd's message for a request over `--max-request-bytes`.
pub const REQUEST_TOO_LARGE: &str = "etcdserver: request is too large";

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
                | MembershipRefusal::LearnerNotReady => Code::FailedPrecondition,
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
        ConsensusError::Config(m) | ConsensusError::Storage(m) => Status::internal(m.clone()),
    }
}
