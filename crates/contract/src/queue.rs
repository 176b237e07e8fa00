//! The contender queue that elections and locks share, in etcd's key layout, so that
//! Conclave's Election and Lock services, etcd's, `etcdctl elect`/`lock`, Go's
//! `clientv3/concurrency`, the SDK and the HTTP gateway all interoperate.
//!
//! - A contender of election or lock `name` owns the key `name/<lease>` ([`owner_key`]),
//!   the lease formatted as Go's `%x` formats an `int64`, attached to that lease: one
//!   place per lease (a second campaign or lock with the same lease finds its place).
//! - Contenders queue by create revision. The one whose key has the lowest create
//!   revision holds the lock or leads the election ([`holder`]); that create revision is
//!   its **fencing epoch**: a later holder's key is created later, so epochs only grow.
//! - A contender waits for its turn by waiting, one after the other, for the deletion of
//!   the newest key created before its own ([`ahead`], etcd's `waitDeletes`).
//! - Leaving (resign, unlock, withdrawing an abandoned campaign) deletes the key only if
//!   it is still the same incarnation ([`release`]); [`guard`] is the compare that holds
//!   only while it is.
//!
//! This module is pure: it builds etcd v3 requests and reads their answers. The server
//! sends them through Raft, the SDK over gRPC.

use conclave_proto::etcdserverpb::{
    compare, range_request, request_op, response_op, Compare, DeleteRangeRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest, TxnResponse,
};
use conclave_proto::mvccpb::KeyValue;

use crate::keys::prefix_end;

/// `name/`: the prefix under which the contenders of `name` keep their keys (etcd adds
/// the `/`).
pub fn prefix(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// `name/<lease>`, the lease formatted as Go's `%x` formats an `int64`: lowercase hex, a
/// leading `-` for a negative id — exactly the keys etcd's recipes create.
pub fn owner_key(name: &[u8], lease: i64) -> Vec<u8> {
    let mut key = prefix(name);
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    key.extend_from_slice(hex.as_bytes());
    key
}

/// Whether `key` is a contender key of the queue `name` (directly under `name/`).
pub fn belongs_to(name: &[u8], key: &[u8]) -> bool {
    key.strip_prefix(name)
        .is_some_and(|rest| rest.first() == Some(&b'/') && rest.len() > 1)
}

fn create_revision_is(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(compare::TargetUnion::CreateRevision(revision)),
    }
}

fn put_op(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        })),
    }
}

fn delete_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
            key: key.to_vec(),
            ..Default::default()
        })),
    }
}

/// The compare that holds only while the contender key `key` is the incarnation created
/// at `create_revision` — put it in a txn's compares so the txn applies only while its
/// holder still holds (a deposed holder's writes are refused by the store).
pub fn guard(key: &[u8], create_revision: i64) -> Compare {
    create_revision_is(key, create_revision)
}

/// Joins the queue: `If(create_revision(key) == 0) Then(Put(key, value, lease))
/// Else(Get(key))`, as etcd's `Mutex.Lock` and `Election.Campaign`. Safe to repeat: the
/// key is unique to the lease and only created if absent. Read the answer with [`place`].
pub fn join(key: &[u8], value: &[u8], lease: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![create_revision_is(key, 0)],
        success: vec![put_op(key, value, lease)],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })),
        }],
    }
}

/// A contender's place in the queue, read from the answer to [`join`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The key's create revision: the position in the queue, and the epoch once first.
    pub create_revision: i64,
    /// The key's value as stored (the given value if this join created the key).
    pub value: Vec<u8>,
    /// Whether this join created the key (false: the lease already had a place).
    pub created: bool,
}

/// An answer to a queue request that does not have the shape the request implies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// The join's compare failed, yet the same txn found no key.
    #[error("the key {0} compared as existing but was not found in the same txn")]
    Vanished(String),
    /// The answer has no header revision.
    #[error("the answer to joining the queue carries no revision")]
    NoRevision,
}

/// Reads the answer to [`join`] for `key` with `value`.
pub fn place(key: &[u8], value: &[u8], response: &TxnResponse) -> Result<Place, QueueError> {
    if response.succeeded {
        let revision = response
            .header
            .as_ref()
            .map(|h| h.revision)
            .filter(|r| *r > 0)
            .ok_or(QueueError::NoRevision)?;
        return Ok(Place {
            create_revision: revision,
            value: value.to_vec(),
            created: true,
        });
    }
    let existing = response
        .responses
        .iter()
        .find_map(|r| match &r.response {
            Some(response_op::Response::ResponseRange(range)) => range.kvs.first(),
            _ => None,
        })
        .ok_or_else(|| QueueError::Vanished(String::from_utf8_lossy(key).into_owned()))?;
    Ok(Place {
        create_revision: existing.create_revision,
        value: existing.value.clone(),
        created: false,
    })
}

/// Sets the value of `key` (with `lease`), only while it is the incarnation created at
/// `create_revision` (etcd's Proclaim; also a re-join with a new value). Applied iff the
/// answer's `succeeded`.
pub fn set_value(key: &[u8], create_revision: i64, value: &[u8], lease: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![create_revision_is(key, create_revision)],
        success: vec![put_op(key, value, lease)],
        failure: Vec::new(),
    }
}

/// Leaves the queue: deletes `key` only while it is the incarnation created at
/// `create_revision` (resign, unlock, withdrawing an abandoned contender). Deleted iff the
/// answer's `succeeded`.
pub fn release(key: &[u8], create_revision: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![create_revision_is(key, create_revision)],
        success: vec![delete_op(key)],
        failure: Vec::new(),
    }
}

/// Leaves the queue when the place's create revision is not known (a join whose answer
/// was lost): deletes `key` only while it is attached to `lease`.
pub fn withdraw_lease(key: &[u8], lease: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Lease as i32,
            key: key.to_vec(),
            range_end: Vec::new(),
            target_union: Some(compare::TargetUnion::Lease(lease)),
        }],
        success: vec![delete_op(key)],
        failure: Vec::new(),
    }
}

fn by_create_revision(prefix: &[u8], order: range_request::SortOrder) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: range_request::SortTarget::Create as i32,
        ..Default::default()
    }
}

/// The read that finds the holder (leader) of the queue under `prefix`: its oldest key.
pub fn holder(prefix: &[u8]) -> RangeRequest {
    by_create_revision(prefix, range_request::SortOrder::Ascend)
}

/// The read that finds the contender just ahead of a place created at `create_revision`:
/// the newest key under `prefix` created before it. `None` when nothing can be ahead
/// (revision 1 is the empty store, and a `max_create_revision` of 0 would mean "no
/// filter").
pub fn ahead(prefix: &[u8], create_revision: i64) -> Option<RangeRequest> {
    (create_revision > 1).then(|| RangeRequest {
        max_create_revision: create_revision - 1,
        ..by_create_revision(prefix, range_request::SortOrder::Descend)
    })
}

/// Whether `current` (the key as read now) is still the incarnation created at
/// `create_revision`.
pub fn holds(current: Option<&KeyValue>, create_revision: i64) -> bool {
    current.is_some_and(|kv| kv.create_revision == create_revision)
}

#[cfg(test)]
mod tests {
    use conclave_proto::etcdserverpb::{RangeResponse, ResponseHeader, ResponseOp};

    use super::*;

    #[test]
    fn keys_are_named_as_etcd_names_them() {
        // The key `etcdctl lock rslock` created for lease 0x2040a20857cf2e61 on etcd 3.4.
        assert_eq!(
            owner_key(b"rslock", 0x2040a20857cf2e61),
            b"rslock/2040a20857cf2e61".to_vec()
        );
        assert_eq!(owner_key(b"/e", 0x694d), b"/e/694d".to_vec());
        assert_eq!(owner_key(b"e", 255), b"e/ff".to_vec());
        // Go's %x of a negative int64 is a minus sign and the magnitude.
        assert_eq!(owner_key(b"e", -255), b"e/-ff".to_vec());
        assert_eq!(owner_key(b"e", -1), b"e/-1".to_vec());
        assert_eq!(owner_key(b"e", i64::MIN), b"e/-8000000000000000".to_vec());
        assert_eq!(prefix(b"n"), b"n/".to_vec());
        assert!(belongs_to(b"n", b"n/1f"));
        assert!(!belongs_to(b"n", b"n/"));
        assert!(!belongs_to(b"n", b"nx/1f"));
        assert!(!belongs_to(b"n", b"other/1f"));
    }

    #[test]
    fn join_creates_only_if_absent_and_reads_otherwise() {
        let request = join(b"e/1", b"v", 1);
        assert_eq!(request.compare, vec![guard(b"e/1", 0)]);
        assert_eq!(request.compare[0].target, compare::CompareTarget::Create as i32);
        match &request.success[0].request {
            Some(request_op::Request::RequestPut(put)) => {
                assert_eq!(
                    (put.key.as_slice(), put.value.as_slice(), put.lease),
                    (&b"e/1"[..], &b"v"[..], 1)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &request.failure[0].request,
            Some(request_op::Request::RequestRange(range)) if range.key == b"e/1" && range.range_end.is_empty()
        ));
    }

    fn answered(succeeded: bool, revision: i64, found: Option<KeyValue>) -> TxnResponse {
        TxnResponse {
            header: Some(ResponseHeader {
                revision,
                ..Default::default()
            }),
            succeeded,
            responses: found
                .map(|kv| ResponseOp {
                    response: Some(response_op::Response::ResponseRange(RangeResponse {
                        kvs: vec![kv],
                        count: 1,
                        ..Default::default()
                    })),
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn place_is_the_txn_revision_when_created_and_the_key_otherwise() {
        let created = place(b"e/1", b"v", &answered(true, 12, None)).unwrap();
        assert_eq!(
            created,
            Place {
                create_revision: 12,
                value: b"v".to_vec(),
                created: true
            }
        );
        let existing = KeyValue {
            key: b"e/1".to_vec(),
            create_revision: 7,
            value: b"old".to_vec(),
            ..Default::default()
        };
        let found = place(b"e/1", b"v", &answered(false, 12, Some(existing))).unwrap();
        assert_eq!(
            (found.create_revision, found.value.as_slice(), found.created),
            (7, &b"old"[..], false)
        );
        assert_eq!(
            place(b"e/1", b"v", &answered(false, 12, None)),
            Err(QueueError::Vanished("e/1".into()))
        );
        assert_eq!(
            place(b"e/1", b"v", &answered(true, 0, None)),
            Err(QueueError::NoRevision)
        );
    }

    #[test]
    fn ahead_is_the_newest_older_key_and_nothing_precedes_revision_one() {
        let read = ahead(b"e/", 10).unwrap();
        assert_eq!(read.range_end, b"e0".to_vec());
        assert_eq!(read.max_create_revision, 9);
        assert_eq!(read.limit, 1);
        assert_eq!(read.sort_order, range_request::SortOrder::Descend as i32);
        assert_eq!(read.sort_target, range_request::SortTarget::Create as i32);
        assert!(ahead(b"e/", 1).is_none());
        let first = holder(b"e/");
        assert_eq!(first.sort_order, range_request::SortOrder::Ascend as i32);
        assert_eq!(first.max_create_revision, 0);
    }

    #[test]
    fn leaving_and_guarding_check_the_incarnation() {
        let leave = release(b"e/1", 7);
        assert_eq!(leave.compare, vec![guard(b"e/1", 7)]);
        assert!(
            matches!(&leave.success[0].request, Some(request_op::Request::RequestDeleteRange(d)) if d.key == b"e/1")
        );
        let by_lease = withdraw_lease(b"e/1", 5);
        assert_eq!(
            by_lease.compare[0].target_union,
            Some(compare::TargetUnion::Lease(5))
        );
        let mine = KeyValue {
            create_revision: 7,
            ..Default::default()
        };
        assert!(holds(Some(&mine), 7));
        assert!(!holds(Some(&mine), 8));
        assert!(!holds(None, 7));
        let proclaim = set_value(b"e/1", 7, b"new", 5);
        assert_eq!(proclaim.compare, vec![guard(b"e/1", 7)]);
    }
}
