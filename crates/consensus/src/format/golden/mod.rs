//! Golden files of every kind this crate stores or sends: `tests/golden/v1/<kind>/<case>`.
//! The files were written by the build before this module (postcard of the in-memory
//! types), so passing here means layout 1 is that build's format.
//!
//! Each case is a sample value; its file must decode to the sample and the sample must
//! encode to the file. The samples are walked by exhaustive matches (no `_` arm), so a new
//! variant of any encoded enum does not compile until it has an arm here, and the run
//! fails until some sample holds it (and then until its golden file is committed).

mod coverage;
mod samples;

use conclave_testkit::golden::Coverage;
use conclave_testkit::GoldenSet;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderError,
    TransferLeaderRequest, VoteRequest, VoteResponse,
};
use openraft::EntryPayload;

use crate::format::{self, kind, Kind, RemoteFatal};
use crate::identity::Identity;
use crate::log_store::WalRecord;
use crate::peer::{MembershipChange, MembershipRefusal, PeerReply, PeerRequest};
use crate::types::{Alarm, AlarmKind, CommandResult, TypeConfig};
use coverage::*;
use samples::*;

type C = TypeConfig;
type VoteResult = Result<VoteResponse<C>, RemoteFatal>;
type AppendResult = Result<AppendEntriesResponse<C>, RemoteFatal>;
type SnapshotResult = Result<SnapshotResponse<C>, RemoteFatal>;

fn golden() -> GoldenSet {
    GoldenSet::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/v1"))
}

/// Checks kind `K`'s case `case` (its directory is the kind's name).
fn check<K: Kind>(set: &mut GoldenSet, case: &str, sample: &K::Value)
where
    K::Value: std::fmt::Debug + PartialEq,
{
    set.check(
        K::NAME,
        &bin(case),
        sample,
        format::encode::<K>,
        format::decode::<K>,
    );
}

/// [`check`] for values without `PartialEq` (openraft's `AppendEntriesRequest`), compared
/// by their full `Debug` text.
fn check_debug<K: Kind>(set: &mut GoldenSet, case: &str, sample: &K::Value)
where
    K::Value: std::fmt::Debug,
{
    set.check_by(
        K::NAME,
        &bin(case),
        sample,
        format::encode::<K>,
        format::decode::<K>,
        |a, b| format!("{a:?}") == format!("{b:?}"),
    );
}

/// The previous build sent a storage error in full (`err_storage`): it reads as an opaque
/// [`RemoteFatal::StorageError`], which this build sends as `Fatal::Stopped`, the bytes of
/// `err_stopped`, so the previous build reads it too.
fn check_storage_error<K, T>(set: &mut GoldenSet, cov: &mut Coverage)
where
    K: Kind<Value = Result<T, RemoteFatal>>,
    T: std::fmt::Debug + PartialEq,
{
    let error = Err(RemoteFatal::StorageError);
    if let Err(fatal) = &error {
        walk_remote_fatal(cov, fatal);
    }
    set.check_decode_only(K::NAME, "err_storage.bin", &error, format::decode::<K>);
    let sent = format::encode::<K>(&error).expect("encode a storage error");
    set.check_bytes(K::NAME, "err_stopped.bin", "sending a storage error", &sent);
}

fn bin(case: &str) -> String {
    format!("{case}.bin")
}

fn wal_records() -> Vec<(String, WalRecord)> {
    let mut out: Vec<(String, WalRecord)> = entries()
        .into_iter()
        .map(|(name, entry)| (format!("entry_{name}"), WalRecord::Entries(vec![entry])))
        .collect();
    out.extend([
        (
            "entries_three".to_string(),
            WalRecord::Entries(vec![
                entry(20, EntryPayload::Blank),
                entry(21, EntryPayload::Normal(commands()[0].1.clone())),
                entry(22, EntryPayload::Membership(single_membership())),
            ]),
        ),
        ("entries_none".to_string(), WalRecord::Entries(Vec::new())),
        ("vote".to_string(), WalRecord::Vote(vote(4, 0xa1, false))),
        ("vote_committed".to_string(), WalRecord::Vote(vote(5, 2, true))),
        ("committed".to_string(), WalRecord::Committed(Some(lid(5, 2, 77)))),
        ("committed_none".to_string(), WalRecord::Committed(None)),
        ("purged".to_string(), WalRecord::Purged(lid(5, 2, 50))),
        (
            "truncated_after".to_string(),
            WalRecord::TruncatedAfter(Some(lid(5, 2, 60))),
        ),
        (
            "truncated_after_none".to_string(),
            WalRecord::TruncatedAfter(None),
        ),
        (
            "checkpoint".to_string(),
            WalRecord::Checkpoint {
                vote: Some(vote(5, 2, true)),
                committed: Some(lid(5, 2, 77)),
                purged: Some(lid(5, 2, 50)),
            },
        ),
        (
            "checkpoint_empty".to_string(),
            WalRecord::Checkpoint {
                vote: None,
                committed: None,
                purged: None,
            },
        ),
    ]);
    out
}

fn check_wal_records(set: &mut GoldenSet, cov: &mut Coverage) {
    for (case, record) in wal_records() {
        walk_wal_record(cov, &record);
        check_debug::<kind::WalRecord>(set, &case, &record);
        // The writer puts each entry in a record of its own through the borrowed form:
        // it must write the same bytes.
        if let WalRecord::Entries(entries) = &record {
            if let [entry] = entries.as_slice() {
                let borrowed = format::encode_wal_entry(entry).expect("encode");
                set.check_bytes(kind::WalRecord::NAME, &bin(&case), "encode_wal_entry", &borrowed);
            }
        }
    }
}

fn check_state_machine_meta(set: &mut GoldenSet) {
    check::<kind::LastApplied>(set, "log_id", &lid(9, 0xa1, 123_456));
    check::<kind::LastApplied>(set, "log_id_zero", &lid(0, 0, 0));
    for (case, membership) in stored_memberships() {
        check::<kind::StoredMembership>(set, case, &membership);
    }
    let alarms: Vec<Vec<Alarm>> = vec![
        Vec::new(),
        vec![
            Alarm {
                member_id: 1,
                kind: AlarmKind::NoSpace,
            },
            Alarm {
                member_id: 0xffff_0000,
                kind: AlarmKind::Corrupt,
            },
        ],
    ];
    for (case, alarms) in ["none", "two"].into_iter().zip(alarms) {
        check::<kind::Alarms>(set, case, &alarms);
    }
}

fn check_snapshots(set: &mut GoldenSet) {
    for (case, meta) in snapshot_metas() {
        check::<kind::SnapshotMeta>(set, case, &meta);
    }
    let batches: Vec<Vec<(Vec<u8>, Vec<u8>)>> = vec![
        Vec::new(),
        vec![
            (b"mcurrent_revision".to_vec(), vec![1, 2, 3]),
            (b"kkey".to_vec(), Vec::new()),
            (vec![b'h', 0, 0xff], vec![9; 40]),
        ],
    ];
    for (case, batch) in ["empty", "three"].into_iter().zip(batches) {
        check::<kind::SnapshotRecords>(set, case, &batch);
    }
    for (case, meta) in snapshot_metas() {
        let offer = (vote(7, 2, true), meta);
        check::<kind::SnapshotOffer>(set, case, &offer);
    }
}

fn check_raft_rpcs(set: &mut GoldenSet, cov: &mut Coverage) {
    let vote_requests = [
        (
            "transfer",
            VoteRequest::<C> {
                vote: vote(6, 3, false),
                last_log_id: Some(lid(5, 2, 80)),
                leadership_transfer: true,
            },
        ),
        (
            "empty_log",
            VoteRequest::<C> {
                vote: vote(1, 1, false),
                last_log_id: None,
                leadership_transfer: false,
            },
        ),
    ];
    for (case, request) in vote_requests {
        check::<kind::VoteRequest>(set, case, &request);
    }

    let vote_results: Vec<(&str, VoteResult)> = vec![
        (
            "granted",
            Ok(VoteResponse {
                vote: vote(6, 3, false),
                vote_granted: true,
                last_log_id: Some(lid(5, 2, 80)),
            }),
        ),
        (
            "refused",
            Ok(VoteResponse {
                vote: vote(7, 1, true),
                vote_granted: false,
                last_log_id: None,
            }),
        ),
        ("err_stopped", Err(RemoteFatal::Stopped)),
        ("err_panicked", Err(RemoteFatal::Panicked)),
    ];
    for (case, result) in vote_results {
        if let Err(e) = &result {
            walk_remote_fatal(cov, e);
        }
        check::<kind::VoteResult>(set, case, &result);
    }

    let append_requests = [
        (
            "entries",
            AppendEntriesRequest::<C> {
                vote: vote(3, 0xa1, true),
                prev_log_id: Some(lid(3, 0xa1, 9)),
                entries: entries().into_iter().map(|(_, e)| e).collect(),
                leader_commit: Some(lid(3, 0xa1, 8)),
            },
        ),
        (
            "heartbeat",
            AppendEntriesRequest::<C> {
                vote: vote(1, 1, true),
                prev_log_id: None,
                entries: Vec::new(),
                leader_commit: None,
            },
        ),
    ];
    for (case, request) in append_requests {
        request.entries.iter().for_each(|e| walk_entry(cov, e));
        check_debug::<kind::AppendEntriesRequest>(set, case, &request);
    }

    let append_results: Vec<(&str, AppendResult)> = vec![
        ("success", Ok(AppendEntriesResponse::Success)),
        (
            "partial_success",
            Ok(AppendEntriesResponse::PartialSuccess(Some(lid(3, 1, 4)))),
        ),
        (
            "partial_success_none",
            Ok(AppendEntriesResponse::PartialSuccess(None)),
        ),
        ("conflict", Ok(AppendEntriesResponse::Conflict)),
        (
            "higher_vote",
            Ok(AppendEntriesResponse::HigherVote(vote(9, 2, true))),
        ),
        ("err_stopped", Err(RemoteFatal::Stopped)),
        ("err_panicked", Err(RemoteFatal::Panicked)),
    ];
    for (case, result) in append_results {
        match &result {
            Ok(response) => walk_append_response(cov, response),
            Err(e) => walk_remote_fatal(cov, e),
        }
        check::<kind::AppendEntriesResult>(set, case, &result);
    }

    let transfer_requests = [
        (
            "with_log",
            TransferLeaderRequest::<C>::new(vote(4, 1, true), 3, Some(lid(4, 1, 100))),
        ),
        (
            "empty_log",
            TransferLeaderRequest::<C>::new(vote(4, 1, true), 2, None),
        ),
    ];
    for (case, request) in transfer_requests {
        check::<kind::TransferLeaderRequest>(set, case, &request);
    }

    type TransferResult = Result<Result<(), TransferLeaderError<C>>, RemoteFatal>;
    let transfer_results: Vec<(&str, TransferResult)> = vec![
        ("done", Ok(Ok(()))),
        (
            "vote_changed",
            Ok(Err(TransferLeaderError::VoteChanged {
                expected: vote(4, 1, true),
                actual: vote(5, 2, false),
            })),
        ),
        (
            "log_not_flushed",
            Ok(Err(TransferLeaderError::LogNotFlushed {
                expected: Some(lid(4, 1, 100)),
                actual: None,
            })),
        ),
        ("err_stopped", Err(RemoteFatal::Stopped)),
        ("err_panicked", Err(RemoteFatal::Panicked)),
    ];
    for (case, result) in transfer_results {
        match &result {
            Ok(Err(e)) => walk_transfer_error(cov, e),
            Ok(Ok(())) => {}
            Err(fatal) => walk_remote_fatal(cov, fatal),
        }
        check::<kind::TransferLeaderResult>(set, case, &result);
    }

    let snapshot_results: Vec<(&str, SnapshotResult)> = vec![
        ("installed", Ok(SnapshotResponse::new(vote(7, 2, true)))),
        ("err_stopped", Err(RemoteFatal::Stopped)),
        ("err_panicked", Err(RemoteFatal::Panicked)),
    ];
    for (case, result) in snapshot_results {
        check::<kind::SnapshotResult>(set, case, &result);
    }

    check_storage_error::<kind::VoteResult, _>(set, cov);
    check_storage_error::<kind::AppendEntriesResult, _>(set, cov);
    check_storage_error::<kind::TransferLeaderResult, _>(set, cov);
    check_storage_error::<kind::SnapshotResult, _>(set, cov);
}

fn peer_requests() -> Vec<(String, PeerRequest)> {
    let mut out: Vec<(String, PeerRequest)> = commands()
        .into_iter()
        .map(|(name, command)| (format!("write_{name}"), PeerRequest::Write(command)))
        .collect();
    out.extend([
        ("read_index".to_string(), PeerRequest::ReadIndex),
        ("join".to_string(), PeerRequest::Join(node("new", 9, true))),
        ("promote".to_string(), PeerRequest::Promote(0x55)),
        (
            "identify".to_string(),
            PeerRequest::Identify(node("added", 8, true)),
        ),
        (
            "publish".to_string(),
            PeerRequest::Publish(0xa1, node("a", 1, true)),
        ),
        (
            "membership_add".to_string(),
            PeerRequest::Membership(MembershipChange::Add {
                peer_urls: vec!["http://10.0.0.5:2380".into()],
                is_learner: true,
            }),
        ),
        (
            "membership_remove".to_string(),
            PeerRequest::Membership(MembershipChange::Remove(0x33)),
        ),
        (
            "membership_update".to_string(),
            PeerRequest::Membership(MembershipChange::Update {
                id: 0x34,
                peer_urls: vec!["http://10.0.0.6:2380".into(), "http://h6:2380".into()],
            }),
        ),
        (
            "membership_promote".to_string(),
            PeerRequest::Membership(MembershipChange::Promote(0x35)),
        ),
        ("lease_renew".to_string(), PeerRequest::LeaseRenew(i64::MAX)),
        ("lease_time_to_live".to_string(), PeerRequest::LeaseTimeToLive(1)),
    ]);
    out
}

fn peer_replies() -> Vec<(String, PeerReply)> {
    let mut out: Vec<(String, PeerReply)> = Vec::new();
    for (name, response) in write_responses() {
        out.push((
            format!("written_{name}"),
            PeerReply::Written(
                CommandResult {
                    revision: 1000,
                    outcome: Ok(response),
                },
                4321,
            ),
        ));
    }
    for (name, error) in mvcc_errors() {
        out.push((
            format!("written_err_{name}"),
            PeerReply::Written(
                CommandResult {
                    revision: 1000,
                    outcome: Err(error),
                },
                4322,
            ),
        ));
    }
    let refusals = [
        ("member_not_found", MembershipRefusal::MemberNotFound),
        ("peer_urls_exist", MembershipRefusal::PeerUrlsExist),
        ("not_learner", MembershipRefusal::NotLearner),
        ("learner_not_ready", MembershipRefusal::LearnerNotReady),
        ("not_enough_started", MembershipRefusal::NotEnoughStarted),
        (
            "failed",
            MembershipRefusal::Failed("membership change in progress".into()),
        ),
    ];
    for (name, refusal) in refusals {
        out.push((
            format!("membership_err_{name}"),
            PeerReply::Membership(Err(refusal)),
        ));
    }
    out.extend([
        ("read_index".to_string(), PeerReply::ReadIndex(777)),
        (
            "joined".to_string(),
            PeerReply::Joined {
                member_id: 0xabc,
                cluster_id: 0xdef,
                cluster_token: "etcd-cluster".into(),
            },
        ),
        ("promoted".to_string(), PeerReply::Promoted(true)),
        ("promoted_not_yet".to_string(), PeerReply::Promoted(false)),
        (
            "not_leader".to_string(),
            PeerReply::NotLeader(Some((2, node("n2", 2, true)))),
        ),
        ("not_leader_unknown".to_string(), PeerReply::NotLeader(None)),
        ("failed".to_string(), PeerReply::Failed("no leader".into())),
        ("membership_ok".to_string(), PeerReply::Membership(Ok(0x77))),
        (
            "lease_ttl".to_string(),
            PeerReply::LeaseTtl {
                remaining: -1,
                granted: 0,
            },
        ),
    ]);
    out
}

fn check_peer(set: &mut GoldenSet, cov: &mut Coverage) {
    for (case, request) in peer_requests() {
        walk_peer_request(cov, &request);
        check::<kind::PeerRequest>(set, &case, &request);
    }
    for (case, reply) in peer_replies() {
        walk_peer_reply(cov, &reply);
        check::<kind::PeerReply>(set, &case, &reply);
    }
}

fn check_identity(set: &mut GoldenSet) {
    let identity = Identity {
        name: "node1".into(),
        member_id: 0xfedc_ba98_7654_3210,
        cluster_id: 0x0123_4567_89ab_cdef,
        cluster_token: "etcd-cluster".into(),
    };
    set.check(
        "member_identity",
        "member.json",
        &identity,
        format::identity::to_json,
        format::identity::from_json,
    );
}

#[test]
fn every_kind_matches_its_golden_files() {
    let mut set = golden();
    let mut cov = Coverage::default();
    check_wal_records(&mut set, &mut cov);
    check_state_machine_meta(&mut set);
    check_snapshots(&mut set);
    check_raft_rpcs(&mut set, &mut cov);
    check_peer(&mut set, &mut cov);
    check_identity(&mut set);
    let checked = set.finish();
    cov.check(&[
        "Command",
        "AlarmChange",
        "AlarmKind",
        "WriteRequest",
        "CompareResult",
        "CompareTarget",
        "RequestOp",
        "SortOrder",
        "SortTarget",
        "CommandResult.outcome",
        "WriteResponse",
        "ResponseOp",
        "MvccError",
        "EntryPayload",
        "WalRecord",
        "PeerRequest",
        "MembershipChange",
        "PeerReply",
        "PeerReply::Membership",
        "MembershipRefusal",
        "RemoteFatal",
        "AppendEntriesResponse",
        "TransferLeaderError",
    ]);
    eprintln!("{checked} golden cases checked");
}
