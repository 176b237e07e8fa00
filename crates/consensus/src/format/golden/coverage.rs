//! Walks over the samples: exhaustive matches recording which variants they hold.

use conclave_mvcc::{
    CompareResult, CompareTarget, MvccError, RangeRequest, RequestOp, ResponseOp, SortOrder, SortTarget,
    TxnRequest, TxnResponse, WriteRequest, WriteResponse,
};
use conclave_testkit::golden::Coverage;
use conclave_testkit::golden_variant as variant;
use openraft::raft::{AppendEntriesResponse, TransferLeaderError};
use openraft::EntryPayload;

use crate::format::RemoteFatal;
use crate::log_store::WalRecord;
use crate::peer::{MembershipChange, MembershipRefusal, PeerReply, PeerRequest};
use crate::types::{Alarm, AlarmChange, AlarmKind, Command, CommandResult, Entry, TypeConfig};

type C = TypeConfig;

pub(super) fn walk_command(cov: &mut Coverage, command: &Command) {
    variant!(&mut *cov, "Command", command, {
        Command::Write(request) => "Write"; walk_write_request(cov, request),
        Command::Alarm(change) => "Alarm"; walk_alarm_change(cov, change),
    });
}

pub(super) fn walk_alarm_change(cov: &mut Coverage, change: &AlarmChange) {
    variant!(&mut *cov, "AlarmChange", change, {
        AlarmChange::Activate(alarm) => "Activate"; walk_alarm(cov, alarm),
        AlarmChange::Deactivate(alarm) => "Deactivate"; walk_alarm(cov, alarm),
    });
}

pub(super) fn walk_alarm(cov: &mut Coverage, alarm: &Alarm) {
    variant!(&mut *cov, "AlarmKind", alarm.kind, {
        AlarmKind::NoSpace => "NoSpace",
        AlarmKind::Corrupt => "Corrupt",
    });
}

pub(super) fn walk_write_request(cov: &mut Coverage, request: &WriteRequest) {
    variant!(&mut *cov, "WriteRequest", request, {
        WriteRequest::Put(_) => "Put",
        WriteRequest::DeleteRange(_) => "DeleteRange",
        WriteRequest::Txn(txn) => "Txn"; walk_txn_request(cov, txn),
        WriteRequest::Compact { .. } => "Compact",
        WriteRequest::LeaseGrant { .. } => "LeaseGrant",
        WriteRequest::LeaseRevoke { .. } => "LeaseRevoke",
        WriteRequest::LeaseCheckpoint { .. } => "LeaseCheckpoint",
    });
}

pub(super) fn walk_txn_request(cov: &mut Coverage, txn: &TxnRequest) {
    for compare in &txn.compare {
        variant!(&mut *cov, "CompareResult", compare.result, {
            CompareResult::Equal => "Equal",
            CompareResult::Greater => "Greater",
            CompareResult::Less => "Less",
            CompareResult::NotEqual => "NotEqual",
        });
        variant!(&mut *cov, "CompareTarget", &compare.target, {
            CompareTarget::Version(_) => "Version",
            CompareTarget::Create(_) => "Create",
            CompareTarget::Mod(_) => "Mod",
            CompareTarget::Value(_) => "Value",
            CompareTarget::Lease(_) => "Lease",
        });
    }
    for op in txn.success.iter().chain(&txn.failure) {
        variant!(&mut *cov, "RequestOp", op, {
            RequestOp::Range(range) => "Range"; walk_range_request(cov, range),
            RequestOp::Put(_) => "Put",
            RequestOp::DeleteRange(_) => "DeleteRange",
            RequestOp::Txn(nested) => "Txn"; walk_txn_request(cov, nested),
        });
    }
}

pub(super) fn walk_range_request(cov: &mut Coverage, range: &RangeRequest) {
    variant!(&mut *cov, "SortOrder", range.sort_order, {
        SortOrder::None => "None",
        SortOrder::Ascend => "Ascend",
        SortOrder::Descend => "Descend",
    });
    variant!(&mut *cov, "SortTarget", range.sort_target, {
        SortTarget::Key => "Key",
        SortTarget::Version => "Version",
        SortTarget::Create => "Create",
        SortTarget::Mod => "Mod",
        SortTarget::Value => "Value",
    });
}

pub(super) fn walk_command_result(cov: &mut Coverage, result: &CommandResult) {
    variant!(&mut *cov, "CommandResult.outcome", &result.outcome, {
        Ok(response) => "Ok"; walk_write_response(cov, response),
        Err(error) => "Err"; walk_mvcc_error(cov, error),
    });
}

pub(super) fn walk_write_response(cov: &mut Coverage, response: &WriteResponse) {
    variant!(&mut *cov, "WriteResponse", response, {
        WriteResponse::Put(_) => "Put",
        WriteResponse::DeleteRange(_) => "DeleteRange",
        WriteResponse::Txn(txn) => "Txn"; walk_txn_response(cov, txn),
        WriteResponse::Compact => "Compact",
        WriteResponse::LeaseGrant { .. } => "LeaseGrant",
        WriteResponse::LeaseRevoke => "LeaseRevoke",
        WriteResponse::LeaseCheckpoint => "LeaseCheckpoint",
    });
}

pub(super) fn walk_txn_response(cov: &mut Coverage, txn: &TxnResponse) {
    for op in &txn.responses {
        variant!(&mut *cov, "ResponseOp", op, {
            ResponseOp::Range(_) => "Range",
            ResponseOp::Put(_) => "Put",
            ResponseOp::DeleteRange(_) => "DeleteRange",
            ResponseOp::Txn(nested) => "Txn"; walk_txn_response(cov, nested),
        });
    }
}

pub(super) fn walk_mvcc_error(cov: &mut Coverage, error: &MvccError) {
    variant!(&mut *cov, "MvccError", error, {
        MvccError::KeyNotProvided => "KeyNotProvided",
        MvccError::Compacted => "Compacted",
        MvccError::FutureRevision => "FutureRevision",
        MvccError::KeyNotFound => "KeyNotFound",
        MvccError::ValueProvided => "ValueProvided",
        MvccError::LeaseProvided => "LeaseProvided",
        MvccError::LeaseNotFound => "LeaseNotFound",
        MvccError::TooManyOps => "TooManyOps",
        MvccError::DuplicateKey => "DuplicateKey",
        MvccError::Storage(_) => "Storage",
        MvccError::Corrupt(_) => "Corrupt",
        MvccError::LeaseExists => "LeaseExists",
        MvccError::LeaseTtlTooLarge => "LeaseTtlTooLarge",
    });
}

pub(super) fn walk_entry(cov: &mut Coverage, entry: &Entry) {
    variant!(&mut *cov, "EntryPayload", &entry.payload, {
        EntryPayload::Blank => "Blank",
        EntryPayload::Normal(command) => "Normal"; walk_command(cov, command),
        EntryPayload::Membership(_) => "Membership",
    });
}

pub(super) fn walk_wal_record(cov: &mut Coverage, record: &WalRecord) {
    variant!(&mut *cov, "WalRecord", record, {
        WalRecord::Entries(entries) => "Entries"; entries.iter().for_each(|e| walk_entry(cov, e)),
        WalRecord::Vote(_) => "Vote",
        WalRecord::Committed(_) => "Committed",
        WalRecord::Purged(_) => "Purged",
        WalRecord::TruncatedAfter(_) => "TruncatedAfter",
        WalRecord::Checkpoint { .. } => "Checkpoint",
    });
}

pub(super) fn walk_peer_request(cov: &mut Coverage, request: &PeerRequest) {
    variant!(&mut *cov, "PeerRequest", request, {
        PeerRequest::Write(command) => "Write"; walk_command(cov, command),
        PeerRequest::ReadIndex => "ReadIndex",
        PeerRequest::Join(_) => "Join",
        PeerRequest::Promote(_) => "Promote",
        PeerRequest::Identify(_) => "Identify",
        PeerRequest::Publish(..) => "Publish",
        PeerRequest::Membership(change) => "Membership"; variant!(&mut *cov, "MembershipChange", change, {
            MembershipChange::Add { .. } => "Add",
            MembershipChange::Remove(_) => "Remove",
            MembershipChange::Update { .. } => "Update",
            MembershipChange::Promote(_) => "Promote",
        }),
        PeerRequest::LeaseRenew(_) => "LeaseRenew",
        PeerRequest::LeaseTimeToLive(_) => "LeaseTimeToLive",
    });
}

pub(super) fn walk_peer_reply(cov: &mut Coverage, reply: &PeerReply) {
    variant!(&mut *cov, "PeerReply", reply, {
        PeerReply::Written(result, _) => "Written"; walk_command_result(cov, result),
        PeerReply::ReadIndex(_) => "ReadIndex",
        PeerReply::Joined { .. } => "Joined",
        PeerReply::Promoted(_) => "Promoted",
        PeerReply::NotLeader(_) => "NotLeader",
        PeerReply::Failed(_) => "Failed",
        PeerReply::Membership(result) => "Membership"; variant!(&mut *cov, "PeerReply::Membership", result, {
            Ok(_) => "Ok",
            Err(refusal) => "Err"; walk_refusal(cov, refusal),
        }),
        PeerReply::LeaseTtl { .. } => "LeaseTtl",
    });
}

pub(super) fn walk_refusal(cov: &mut Coverage, refusal: &MembershipRefusal) {
    variant!(&mut *cov, "MembershipRefusal", refusal, {
        MembershipRefusal::MemberNotFound => "MemberNotFound",
        MembershipRefusal::PeerUrlsExist => "PeerUrlsExist",
        MembershipRefusal::NotLearner => "NotLearner",
        MembershipRefusal::LearnerNotReady => "LearnerNotReady",
        MembershipRefusal::NotEnoughStarted => "NotEnoughStarted",
        MembershipRefusal::Failed(_) => "Failed",
    });
}

pub(super) fn walk_remote_fatal(cov: &mut Coverage, fatal: &RemoteFatal) {
    variant!(&mut *cov, "RemoteFatal", fatal, {
        RemoteFatal::Panicked => "Panicked",
        RemoteFatal::Stopped => "Stopped",
        RemoteFatal::StorageError => "StorageError",
    });
}

pub(super) fn walk_append_response(cov: &mut Coverage, response: &AppendEntriesResponse<C>) {
    variant!(&mut *cov, "AppendEntriesResponse", response, {
        AppendEntriesResponse::Success => "Success",
        AppendEntriesResponse::PartialSuccess(_) => "PartialSuccess",
        AppendEntriesResponse::Conflict => "Conflict",
        AppendEntriesResponse::HigherVote(_) => "HigherVote",
    });
}

pub(super) fn walk_transfer_error(cov: &mut Coverage, error: &TransferLeaderError<C>) {
    variant!(&mut *cov, "TransferLeaderError", error, {
        TransferLeaderError::VoteChanged { .. } => "VoteChanged",
        TransferLeaderError::LogNotFlushed { .. } => "LogNotFlushed",
    });
}
