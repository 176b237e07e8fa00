//! Request validation, pure functions: the checks etcd's gRPC layer runs before a
//! request is proposed (`checkRangeRequest`, `checkPutRequest`, `checkDeleteRequest`,
//! `checkTxnRequest`, `checkIntervals` in etcd's v3rpc/key.go), plus the stateless
//! checks of etcd's `lessor.Grant`.
//!
//! [`crate::WriteTxn::execute`] runs the same checks again (without the op limit), so an
//! invalid command that reaches the state machine fails identically on every member.

use crate::encoding::UserEnd;
use crate::error::{MvccError, Result};
use crate::types::{DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest};
use std::collections::HashSet;

/// Accepts a range unless its key is empty (`KeyNotProvided`, as etcd: even with a
/// `range_end`; "all keys" is spelled key `"\0"`, range_end `"\0"`).
pub fn validate_range(req: &RangeRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(MvccError::KeyNotProvided);
    }
    Ok(())
}

/// Accepts a put unless: its key is empty (`KeyNotProvided`), it sets `ignore_value`
/// with a value (`ValueProvided`), or `ignore_lease` with a lease (`LeaseProvided`).
pub fn validate_put(req: &PutRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(MvccError::KeyNotProvided);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(MvccError::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(MvccError::LeaseProvided);
    }
    Ok(())
}

/// Accepts a delete unless its key is empty (`KeyNotProvided`).
pub fn validate_delete_range(req: &DeleteRangeRequest) -> Result<()> {
    if req.key.is_empty() {
        return Err(MvccError::KeyNotProvided);
    }
    Ok(())
}

/// etcd's maximum lease TTL in seconds (`lease.MaxLeaseTTL`).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Accepts a lease grant unless its id is 0 (`LeaseNotFound`, as etcd's `lessor.Grant`
/// answers for the reserved "no lease" id; the server replaces a client's 0 by a chosen
/// id before proposing) or its TTL exceeds [`MAX_LEASE_TTL`] (`LeaseTtlTooLarge`).
///
/// Negative ids are accepted, as etcd accepts them (neither its gRPC layer nor its
/// lessor checks the sign; only server-chosen ids are guaranteed positive). Whether the
/// id is already granted is decided when the grant is applied (`LeaseExists`).
pub fn validate_lease_grant(id: i64, ttl: i64) -> Result<()> {
    if id == 0 {
        return Err(MvccError::LeaseNotFound);
    }
    if ttl > MAX_LEASE_TTL {
        return Err(MvccError::LeaseTtlTooLarge);
    }
    Ok(())
}

/// Accepts a txn unless: `max(compares, success ops, failure ops)` exceeds `max_ops`
/// (nested txns are checked against what the enclosing level leaves, as etcd does)
/// (`TooManyOps`); any compare or op has an empty key (`KeyNotProvided`) or is an invalid
/// put; or a branch writes a key twice (`DuplicateKey`): two puts of one key, or a put of a
/// key that a delete of the same branch covers, nested txns included (their success and
/// failure branches are each checked against the enclosing branch; a key put in both
/// branches of one nested txn is fine since only one runs).
pub fn validate_txn(req: &TxnRequest, max_ops: usize) -> Result<()> {
    check_txn(req, max_ops)?;
    // Checked after the op counts so a huge request cannot make this quadratic walk slow.
    check_intervals(&req.success)?;
    check_intervals(&req.failure)?;
    Ok(())
}

fn check_txn(req: &TxnRequest, max_ops: usize) -> Result<()> {
    let opc = req.compare.len().max(req.success.len()).max(req.failure.len());
    if opc > max_ops {
        return Err(MvccError::TooManyOps);
    }
    if req.compare.iter().any(|c| c.key.is_empty()) {
        return Err(MvccError::KeyNotProvided);
    }
    for op in req.success.iter().chain(&req.failure) {
        check_op(op, max_ops - opc)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_ops: usize) -> Result<()> {
    match op {
        RequestOp::Range(r) => validate_range(r),
        RequestOp::Put(p) => validate_put(p),
        RequestOp::DeleteRange(d) => validate_delete_range(d),
        RequestOp::Txn(t) => check_txn(t, max_ops),
    }
}

/// A range deleted by a branch.
struct Deleted {
    start: Vec<u8>,
    end: UserEnd,
}

fn covered(dels: &[Deleted], key: &[u8]) -> bool {
    dels.iter().any(|d| d.end.contains(&d.start, key))
}

/// etcd's `checkIntervals`: returns the keys put and the ranges deleted by `ops`
/// (including nested txns), or `DuplicateKey`.
fn check_intervals(ops: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<Deleted>)> {
    // This level's deletes first: nested puts are checked against them.
    let mut dels: Vec<Deleted> = ops
        .iter()
        .filter_map(|op| match op {
            RequestOp::DeleteRange(d) => Some(Deleted {
                start: d.key.clone(),
                end: UserEnd::parse(&d.range_end),
            }),
            _ => None,
        })
        .collect();

    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in ops {
        let RequestOp::Txn(t) = op else { continue };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || covered(&dels, k) {
                return Err(MvccError::DuplicateKey);
            }
        }
        for k in &puts_else {
            // A key put by both branches of the same nested txn is fine: only one runs.
            if (puts.contains(k) && !puts_then.contains(k)) || covered(&dels, k) {
                return Err(MvccError::DuplicateKey);
            }
        }
        puts.extend(puts_then);
        puts.extend(puts_else);
        dels.extend(dels_then);
        dels.extend(dels_else);
    }

    for op in ops {
        let RequestOp::Put(p) = op else { continue };
        if puts.contains(&p.key) || covered(&dels, &p.key) {
            return Err(MvccError::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Compare, CompareResult, CompareTarget};

    fn put(k: &str) -> RequestOp {
        RequestOp::Put(PutRequest {
            key: k.into(),
            value: b"v".to_vec(),
            ..Default::default()
        })
    }
    fn del(k: &str, end: &str) -> RequestOp {
        RequestOp::DeleteRange(DeleteRangeRequest {
            key: k.into(),
            range_end: end.into(),
            prev_kv: false,
        })
    }
    fn get(k: &str) -> RequestOp {
        RequestOp::Range(RangeRequest {
            key: k.into(),
            ..Default::default()
        })
    }
    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }
    fn cmp(k: &str) -> Compare {
        Compare {
            key: k.into(),
            range_end: vec![],
            result: CompareResult::Equal,
            target: CompareTarget::Version(0),
        }
    }

    #[test]
    fn put_validation() {
        let ok = PutRequest {
            key: b"k".to_vec(),
            ..Default::default()
        };
        assert_eq!(validate_put(&ok), Ok(()));
        assert_eq!(
            validate_put(&PutRequest::default()),
            Err(MvccError::KeyNotProvided)
        );
        let iv = PutRequest {
            ignore_value: true,
            value: b"x".to_vec(),
            ..ok.clone()
        };
        assert_eq!(validate_put(&iv), Err(MvccError::ValueProvided));
        let il = PutRequest {
            ignore_lease: true,
            lease: 5,
            ..ok.clone()
        };
        assert_eq!(validate_put(&il), Err(MvccError::LeaseProvided));
        let both_ok = PutRequest {
            ignore_lease: true,
            ignore_value: true,
            ..ok
        };
        assert_eq!(validate_put(&both_ok), Ok(()));
    }

    #[test]
    fn lease_grant_validation() {
        assert_eq!(validate_lease_grant(1, 5), Ok(()));
        assert_eq!(validate_lease_grant(-7, 5), Ok(()), "etcd accepts negative ids");
        assert_eq!(validate_lease_grant(i64::MAX, MAX_LEASE_TTL), Ok(()));
        assert_eq!(
            validate_lease_grant(1, -3),
            Ok(()),
            "the server raises small TTLs"
        );
        assert_eq!(validate_lease_grant(0, 5), Err(MvccError::LeaseNotFound));
        assert_eq!(
            validate_lease_grant(1, MAX_LEASE_TTL + 1),
            Err(MvccError::LeaseTtlTooLarge)
        );
    }

    #[test]
    fn range_and_delete_need_a_key() {
        let r = RangeRequest {
            range_end: b"\0".to_vec(),
            ..Default::default()
        };
        assert_eq!(validate_range(&r), Err(MvccError::KeyNotProvided));
        assert_eq!(
            validate_range(&RangeRequest {
                key: b"\0".to_vec(),
                ..r
            }),
            Ok(())
        );
        assert_eq!(
            validate_delete_range(&DeleteRangeRequest::default()),
            Err(MvccError::KeyNotProvided)
        );
    }

    #[test]
    fn too_many_ops_at_129() {
        let ops: Vec<RequestOp> = (0..128).map(|i| put(&format!("k{i}"))).collect();
        assert_eq!(validate_txn(&txn(ops.clone(), vec![]), 128), Ok(()));
        let mut more = ops;
        more.push(put("k128"));
        assert_eq!(
            validate_txn(&txn(more.clone(), vec![]), 128),
            Err(MvccError::TooManyOps)
        );
        assert_eq!(validate_txn(&txn(vec![], more), 128), Err(MvccError::TooManyOps));
        let cmps = TxnRequest {
            compare: (0..129).map(|_| cmp("a")).collect(),
            ..txn(vec![], vec![])
        };
        assert_eq!(validate_txn(&cmps, 128), Err(MvccError::TooManyOps));
    }

    #[test]
    fn nested_txns_count_against_the_remainder() {
        // Outer uses 2 of 4, so a nested txn may use 2 but not 3.
        let inner_ok = txn(vec![put("x"), put("y")], vec![]);
        let outer = txn(vec![RequestOp::Txn(inner_ok), put("z")], vec![]);
        assert_eq!(validate_txn(&outer, 4), Ok(()));
        let inner_big = txn(vec![put("x"), put("y"), put("w")], vec![]);
        let outer = txn(vec![RequestOp::Txn(inner_big), put("z")], vec![]);
        assert_eq!(validate_txn(&outer, 4), Err(MvccError::TooManyOps));
    }

    #[test]
    fn empty_keys_anywhere() {
        let t = TxnRequest {
            compare: vec![cmp("")],
            ..txn(vec![], vec![])
        };
        assert_eq!(validate_txn(&t, 128), Err(MvccError::KeyNotProvided));
        assert_eq!(
            validate_txn(&txn(vec![get("")], vec![]), 128),
            Err(MvccError::KeyNotProvided)
        );
        let nested = txn(vec![], vec![RequestOp::Txn(txn(vec![del("", "")], vec![]))]);
        assert_eq!(validate_txn(&nested, 128), Err(MvccError::KeyNotProvided));
    }

    #[test]
    fn duplicate_keys() {
        let dup = |ops: Vec<RequestOp>| validate_txn(&txn(ops, vec![]), 128);
        assert_eq!(dup(vec![put("a"), put("a")]), Err(MvccError::DuplicateKey));
        assert_eq!(dup(vec![put("a"), put("b")]), Ok(()));
        assert_eq!(dup(vec![del("a", "c"), put("b")]), Err(MvccError::DuplicateKey));
        assert_eq!(dup(vec![put("b"), del("a", "c")]), Err(MvccError::DuplicateKey));
        assert_eq!(dup(vec![del("a", "c"), put("c")]), Ok(()));
        assert_eq!(dup(vec![del("a", ""), put("a")]), Err(MvccError::DuplicateKey));
        assert_eq!(
            dup(vec![del("a", "\0"), put("zzz")]),
            Err(MvccError::DuplicateKey)
        );
        assert_eq!(dup(vec![del("a", "c"), del("b", "d")]), Ok(()));
        // Reads of a written key are fine.
        assert_eq!(dup(vec![put("a"), get("a")]), Ok(()));
        // Nested: a put in a nested branch against an outer put or delete.
        let nested_put = RequestOp::Txn(txn(vec![put("a")], vec![]));
        assert_eq!(
            dup(vec![put("a"), nested_put.clone()]),
            Err(MvccError::DuplicateKey)
        );
        assert_eq!(
            dup(vec![del("a", "b"), nested_put.clone()]),
            Err(MvccError::DuplicateKey)
        );
        let nested_del = RequestOp::Txn(txn(vec![], vec![del("a", "")]));
        assert_eq!(dup(vec![nested_del, put("a")]), Err(MvccError::DuplicateKey));
        // The same key in both branches of one nested txn is fine...
        let both = RequestOp::Txn(txn(vec![put("a")], vec![put("a")]));
        assert_eq!(dup(vec![both.clone()]), Ok(()));
        // ...but not next to an outer put of it.
        assert_eq!(dup(vec![both, put("a")]), Err(MvccError::DuplicateKey));
        // Success and failure branches of the top level are independent.
        assert_eq!(validate_txn(&txn(vec![put("a")], vec![put("a")]), 128), Ok(()));
    }
}
