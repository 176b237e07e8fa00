//! Sample values: every variant of every encoded enum, in some sample.

use std::collections::{BTreeMap, BTreeSet};

use conclave_mvcc::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, KeyValue,
    LeaseCheckpoint, MvccError, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseOp,
    SortOrder, SortTarget, TxnRequest, TxnResponse, WriteRequest, WriteResponse,
};
use openraft::impls::leader_id_adv::LeaderId;
use openraft::{EntryPayload, Membership};

use crate::types::{
    Alarm, AlarmChange, AlarmKind, Command, Entry, LogId, MemberNode, SnapshotMeta, StoredMembership, Vote,
};

pub(super) fn lid(term: u64, node_id: u64, index: u64) -> LogId {
    openraft::LogId::new(LeaderId { term, node_id }, index)
}

pub(super) fn vote(term: u64, node_id: u64, committed: bool) -> Vote {
    Vote {
        leader_id: LeaderId { term, node_id },
        committed,
    }
}

pub(super) fn node(name: &str, port: u16, client: bool) -> MemberNode {
    MemberNode {
        name: name.into(),
        peer_urls: vec![format!("http://10.0.0.{port}:2380")],
        client_urls: if client {
            vec![
                format!("http://10.0.0.{port}:2379"),
                format!("http://node-{name}:2379"),
            ]
        } else {
            Vec::new()
        },
    }
}

pub(super) fn single_membership() -> Membership<u64, MemberNode> {
    Membership::new(
        vec![BTreeSet::from([0xa1])],
        BTreeMap::from([(0xa1, node("a", 1, true))]),
    )
    .expect("valid membership")
}

/// Joint config of {1,2} and {2,3} plus learner 4.
pub(super) fn joint_membership() -> Membership<u64, MemberNode> {
    Membership::new(
        vec![BTreeSet::from([1, 2]), BTreeSet::from([2, 3])],
        BTreeMap::from([
            (1, node("n1", 1, true)),
            (2, node("n2", 2, true)),
            (3, node("n3", 3, false)),
            (4, node("learner", 4, false)),
        ]),
    )
    .expect("valid membership")
}

pub(super) fn kv(key: &[u8], value: &[u8], lease: i64) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        create_revision: 3,
        mod_revision: 9,
        version: 4,
        value: value.to_vec(),
        lease,
    }
}

pub(super) fn range_request(sort_order: SortOrder, sort_target: SortTarget) -> RangeRequest {
    RangeRequest {
        key: b"range/a".to_vec(),
        range_end: b"range/z".to_vec(),
        limit: 10,
        revision: 42,
        sort_order,
        sort_target,
        keys_only: true,
        count_only: false,
        min_mod_revision: 1,
        max_mod_revision: 2,
        min_create_revision: 3,
        max_create_revision: 4,
    }
}

pub(super) fn put_request() -> PutRequest {
    PutRequest {
        key: b"key\x00\xff".to_vec(),
        value: b"value".to_vec(),
        lease: 0x7fff_0000_0000_0001,
        prev_kv: true,
        ignore_value: false,
        ignore_lease: true,
    }
}

pub(super) fn delete_range_request() -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: b"del/a".to_vec(),
        range_end: vec![0],
        prev_kv: true,
    }
}

/// A txn holding every compare relation and target, every op kind (a nested txn too) and
/// every sort order and target.
pub(super) fn txn_request() -> TxnRequest {
    let compare = |result, target| Compare {
        key: b"cmp".to_vec(),
        range_end: Vec::new(),
        result,
        target,
    };
    TxnRequest {
        compare: vec![
            compare(CompareResult::Equal, CompareTarget::Version(1)),
            compare(CompareResult::Greater, CompareTarget::Create(-2)),
            compare(CompareResult::Less, CompareTarget::Mod(300)),
            compare(CompareResult::NotEqual, CompareTarget::Value(b"v\x00".to_vec())),
            compare(CompareResult::Equal, CompareTarget::Lease(i64::MIN)),
        ],
        success: vec![
            RequestOp::Range(range_request(SortOrder::None, SortTarget::Key)),
            RequestOp::Range(range_request(SortOrder::Ascend, SortTarget::Version)),
            RequestOp::Range(range_request(SortOrder::Descend, SortTarget::Create)),
            RequestOp::Range(range_request(SortOrder::Ascend, SortTarget::Mod)),
            RequestOp::Range(range_request(SortOrder::Descend, SortTarget::Value)),
            RequestOp::Put(put_request()),
            RequestOp::DeleteRange(delete_range_request()),
            RequestOp::Txn(TxnRequest {
                compare: Vec::new(),
                success: vec![RequestOp::Put(PutRequest::default())],
                failure: Vec::new(),
            }),
        ],
        failure: vec![RequestOp::DeleteRange(DeleteRangeRequest::default())],
    }
}

/// One command per kind of write and alarm change.
pub(super) fn commands() -> Vec<(&'static str, Command)> {
    vec![
        ("put", Command::Write(WriteRequest::Put(put_request()))),
        (
            "delete_range",
            Command::Write(WriteRequest::DeleteRange(delete_range_request())),
        ),
        ("txn", Command::Write(WriteRequest::Txn(txn_request()))),
        (
            "compact",
            Command::Write(WriteRequest::Compact { revision: 1234 }),
        ),
        (
            "lease_grant",
            Command::Write(WriteRequest::LeaseGrant {
                id: 0x1234_5678_9abc,
                ttl: 9_000_000_000,
            }),
        ),
        (
            "lease_revoke",
            Command::Write(WriteRequest::LeaseRevoke { id: -5 }),
        ),
        (
            "lease_checkpoint",
            Command::Write(WriteRequest::LeaseCheckpoint {
                checkpoints: vec![
                    LeaseCheckpoint {
                        id: 7,
                        remaining_ttl: 30,
                    },
                    LeaseCheckpoint {
                        id: 8,
                        remaining_ttl: 0,
                    },
                ],
            }),
        ),
        (
            "alarm_activate",
            Command::Alarm(AlarmChange::Activate(Alarm {
                member_id: 0xdead_beef,
                kind: AlarmKind::NoSpace,
            })),
        ),
        (
            "alarm_deactivate",
            Command::Alarm(AlarmChange::Deactivate(Alarm {
                member_id: u64::MAX,
                kind: AlarmKind::Corrupt,
            })),
        ),
    ]
}

pub(super) fn entry(index: u64, payload: EntryPayload<Command, u64, MemberNode>) -> Entry {
    Entry {
        log_id: lid(3, 0xa1, index),
        payload,
    }
}

/// One entry per payload kind (every command, blank, two memberships).
pub(super) fn entries() -> Vec<(String, Entry)> {
    let mut out = vec![
        ("blank".to_string(), entry(1, EntryPayload::Blank)),
        (
            "membership".to_string(),
            entry(2, EntryPayload::Membership(single_membership())),
        ),
        (
            "membership_joint".to_string(),
            entry(3, EntryPayload::Membership(joint_membership())),
        ),
    ];
    for (i, (name, command)) in commands().into_iter().enumerate() {
        out.push((
            name.to_string(),
            entry(10 + i as u64, EntryPayload::Normal(command)),
        ));
    }
    out
}

pub(super) fn write_responses() -> Vec<(&'static str, WriteResponse)> {
    vec![
        (
            "put",
            WriteResponse::Put(PutResponse {
                prev_kv: Some(kv(b"k", b"old", 5)),
            }),
        ),
        ("put_no_prev", WriteResponse::Put(PutResponse { prev_kv: None })),
        (
            "delete_range",
            WriteResponse::DeleteRange(DeleteRangeResponse {
                deleted: 2,
                prev_kvs: vec![kv(b"a", b"1", 0), kv(b"b", b"", 0)],
            }),
        ),
        (
            "txn",
            WriteResponse::Txn(TxnResponse {
                succeeded: true,
                responses: vec![
                    ResponseOp::Range(RangeResponse {
                        kvs: vec![kv(b"r", b"x", 0)],
                        more: true,
                        count: 7,
                    }),
                    ResponseOp::Put(PutResponse { prev_kv: None }),
                    ResponseOp::DeleteRange(DeleteRangeResponse {
                        deleted: 0,
                        prev_kvs: Vec::new(),
                    }),
                    ResponseOp::Txn(TxnResponse {
                        succeeded: false,
                        responses: Vec::new(),
                    }),
                ],
            }),
        ),
        ("compact", WriteResponse::Compact),
        ("lease_grant", WriteResponse::LeaseGrant { id: 99, ttl: 60 }),
        ("lease_revoke", WriteResponse::LeaseRevoke),
        ("lease_checkpoint", WriteResponse::LeaseCheckpoint),
    ]
}

pub(super) fn mvcc_errors() -> Vec<(&'static str, MvccError)> {
    vec![
        ("key_not_provided", MvccError::KeyNotProvided),
        ("compacted", MvccError::Compacted),
        ("future_revision", MvccError::FutureRevision),
        ("key_not_found", MvccError::KeyNotFound),
        ("value_provided", MvccError::ValueProvided),
        ("lease_provided", MvccError::LeaseProvided),
        ("lease_not_found", MvccError::LeaseNotFound),
        ("too_many_ops", MvccError::TooManyOps),
        ("duplicate_key", MvccError::DuplicateKey),
        ("storage", MvccError::Storage("sled: disk full".into())),
        ("corrupt", MvccError::Corrupt("history of key \"a\"".into())),
        ("lease_exists", MvccError::LeaseExists),
        ("lease_ttl_too_large", MvccError::LeaseTtlTooLarge),
    ]
}

pub(super) fn stored_memberships() -> Vec<(&'static str, StoredMembership)> {
    vec![
        ("default", StoredMembership::default()),
        (
            "single",
            StoredMembership::new(Some(lid(1, 0xa1, 1)), single_membership()),
        ),
        (
            "joint",
            StoredMembership::new(Some(lid(7, 2, 300)), joint_membership()),
        ),
    ]
}

pub(super) fn snapshot_metas() -> Vec<(&'static str, SnapshotMeta)> {
    vec![
        ("empty", SnapshotMeta::default()),
        (
            "at_index",
            SnapshotMeta {
                last_log_id: Some(lid(7, 2, 5000)),
                last_membership: StoredMembership::new(Some(lid(7, 2, 300)), joint_membership()),
            },
        ),
    ]
}
