//! The one place where Conclave errors become gRPC statuses, with the codes and exact
//! messages etcd clients match on (Go clientv3 maps errors back by message text). The
//! texts themselves live in `conclave_contract::errors`, which the SDK matches on too.

use conclave_consensus::{ConsensusError, MembershipRefusal};

use crate::groups::GroupError;
use conclave_contract::errors;
use conclave_mvcc::MvccError;
use tonic::{Code, Status};

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
        MvccError::Corrupt(_) => return Status::data_loss(errors::CORRUPT),
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
        ConsensusError::NoLeader => Status::unavailable(errors::NO_LEADER),
        ConsensusError::OutcomeUnknown(why) => {
            tracing::debug!(reason = %why, "write outcome unknown");
            Status::unavailable(errors::TIMEOUT_DUE_TO_LEADER_FAIL)
        }
        ConsensusError::Timeout => Status::unavailable(errors::TIMEOUT),
        ConsensusError::Unreachable(_) => Status::unavailable(errors::TIMEOUT_DUE_TO_CONNECTION_LOST),
        ConsensusError::Fatal(_) => Status::unavailable(errors::STOPPED),
        ConsensusError::NotLeader | ConsensusError::BadTransferee => {
            Status::failed_precondition(e.to_string())
        }
        ConsensusError::Config(m) | ConsensusError::Storage(m) => Status::internal(m.clone()),
    }
}

/// The gRPC status for a partition-group error.
pub fn group_status(e: &GroupError) -> Status {
    let code = match e {
        GroupError::NoGroup(_) | GroupError::NoMember { .. } | GroupError::NoLease(_) => Code::NotFound,
        GroupError::GroupExists(_) | GroupError::MemberTaken { .. } => Code::AlreadyExists,
        GroupError::Invalid(_) => Code::InvalidArgument,
        GroupError::Precondition(_) => Code::FailedPrecondition,
        GroupError::Busy(_) => Code::Aborted,
        GroupError::StaleEpoch { current, .. } => {
            let mut status = Status::failed_precondition(e.to_string());
            if let Ok(value) = current.to_string().parse() {
                status
                    .metadata_mut()
                    .insert(conclave_contract::groups::EPOCH_TRAILER, value);
            }
            return status;
        }
        GroupError::GenerationGone { .. } | GroupError::FutureGeneration { .. } => Code::OutOfRange,
        GroupError::Timeout(_) => Code::DeadlineExceeded,
        GroupError::Record(_) => Code::DataLoss,
        GroupError::Store(MvccError::LeaseNotFound) => return Status::not_found(e.to_string()),
        GroupError::Store(m) => return mvcc_status(m),
        GroupError::Consensus(c) => return consensus_status(c),
        GroupError::Internal(_) => Code::Internal,
    };
    Status::new(code, e.to_string())
}
