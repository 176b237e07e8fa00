//! Txn execution: compares, the branch path, and ops in order (etcd's `applyTxn`).

use crate::encoding::UserEnd;
use crate::error::{MvccError, Result};
use crate::types::{
    Compare, CompareResult, CompareTarget, KeyValue, RequestOp, ResponseOp, TxnRequest, TxnResponse,
};
use crate::view::View;
use crate::write::Exec;
use std::cmp::Ordering;

/// Runs a txn inside `exec` (all its writes share `exec`'s revision).
///
/// As etcd (server/etcdserver/apply.go): the compares of the txn and of every nested txn
/// on the chosen path are evaluated first, against the state before the txn; then every
/// put on the path is checked (`KeyNotFound` for ignore_value/ignore_lease on a missing
/// key, `LeaseNotFound`), then every range (`FutureRevision`/`Compacted` against the
/// pre-txn revisions); only then do the ops run, in order, each seeing the earlier writes.
pub(crate) fn execute_txn(exec: &mut Exec<'_>, req: &TxnRequest) -> Result<TxnResponse> {
    let mut path = Vec::new();
    {
        let view = exec.view();
        compare_path(&view, req, &mut path)?;
        let mut cursor = 0;
        for_each_op_on_path(req, &path, &mut cursor, &mut |op| match op {
            RequestOp::Put(p) => {
                if (p.ignore_value || p.ignore_lease) && view.latest(&p.key)?.is_none() {
                    return Err(MvccError::KeyNotFound);
                }
                if p.lease != 0 && !exec.lease_exists(p.lease)? {
                    return Err(MvccError::LeaseNotFound);
                }
                Ok(())
            }
            _ => Ok(()),
        })?;
        let mut cursor = 0;
        for_each_op_on_path(req, &path, &mut cursor, &mut |op| match op {
            RequestOp::Range(r) if r.revision > 0 => {
                if r.revision > view.current_revision {
                    return Err(MvccError::FutureRevision);
                }
                if r.revision < view.compact_revision {
                    return Err(MvccError::Compacted);
                }
                Ok(())
            }
            _ => Ok(()),
        })?;
    }
    let mut cursor = 0;
    apply_txn(exec, req, &path, &mut cursor)
}

/// etcd's `compareToPath`: the outcome of this txn's compares, then (depth first, in op
/// order) those of the nested txns in the branch that will run.
fn compare_path(view: &View<'_>, req: &TxnRequest, path: &mut Vec<bool>) -> Result<()> {
    let mut ok = true;
    for c in &req.compare {
        if !compare_holds(view, c)? {
            ok = false;
            break;
        }
    }
    path.push(ok);
    let ops = if ok { &req.success } else { &req.failure };
    for op in ops {
        if let RequestOp::Txn(t) = op {
            compare_path(view, t, path)?;
        }
    }
    Ok(())
}

fn branch_taken(path: &[bool], cursor: &mut usize) -> Result<bool> {
    let taken = path
        .get(*cursor)
        .copied()
        .ok_or_else(|| MvccError::Storage("txn compare path shorter than the txn".to_string()))?;
    *cursor += 1;
    Ok(taken)
}

/// Calls `f` for every non-txn op that will run, in execution order.
fn for_each_op_on_path(
    req: &TxnRequest,
    path: &[bool],
    cursor: &mut usize,
    f: &mut dyn FnMut(&RequestOp) -> Result<()>,
) -> Result<()> {
    let ops = if branch_taken(path, cursor)? {
        &req.success
    } else {
        &req.failure
    };
    for op in ops {
        match op {
            RequestOp::Txn(t) => for_each_op_on_path(t, path, cursor, f)?,
            other => f(other)?,
        }
    }
    Ok(())
}

fn apply_txn(
    exec: &mut Exec<'_>,
    req: &TxnRequest,
    path: &[bool],
    cursor: &mut usize,
) -> Result<TxnResponse> {
    let succeeded = branch_taken(path, cursor)?;
    let ops = if succeeded { &req.success } else { &req.failure };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        responses.push(match op {
            RequestOp::Range(r) => ResponseOp::Range(exec.range(r)?),
            RequestOp::Put(p) => ResponseOp::Put(exec.put(p)?),
            RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(exec.delete_range(d)?),
            RequestOp::Txn(t) => ResponseOp::Txn(apply_txn(exec, t, path, cursor)?),
        });
    }
    Ok(TxnResponse { succeeded, responses })
}

/// etcd's `applyCompare`: every key in the range must satisfy the compare; an empty range
/// compares as `KeyValue::default()`, except that a value compare on it is false.
pub(crate) fn compare_holds(view: &View<'_>, c: &Compare) -> Result<bool> {
    let end = UserEnd::parse(&c.range_end);
    let mut kvs = Vec::new();
    view.visit_at(&c.key, &end, view.current_revision, usize::MAX, |kv| {
        kvs.extend(kv)
    })?;
    if kvs.is_empty() {
        if matches!(c.target, CompareTarget::Value(_)) {
            return Ok(false);
        }
        return Ok(compare_kv(c, &KeyValue::default()));
    }
    Ok(kvs.iter().all(|kv| compare_kv(c, kv)))
}

fn compare_kv(c: &Compare, kv: &KeyValue) -> bool {
    let ord = match &c.target {
        CompareTarget::Version(v) => kv.version.cmp(v),
        CompareTarget::Create(v) => kv.create_revision.cmp(v),
        CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
        CompareTarget::Value(v) => kv.value.as_slice().cmp(v.as_slice()),
        CompareTarget::Lease(v) => kv.lease.cmp(v),
    };
    match c.result {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::*;

    fn cmp(k: &str, end: &str, result: CompareResult, target: CompareTarget) -> Compare {
        Compare {
            key: k.into(),
            range_end: end.into(),
            result,
            target,
        }
    }
    fn put_op(k: &str, v: &str) -> RequestOp {
        RequestOp::Put(PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        })
    }
    fn txn(
        s: &Store,
        compare: Vec<Compare>,
        success: Vec<RequestOp>,
        failure: Vec<RequestOp>,
    ) -> TxnResponse {
        match exec(
            s,
            WriteRequest::Txn(TxnRequest {
                compare,
                success,
                failure,
            }),
        )
        .unwrap()
        {
            WriteResponse::Txn(t) => t,
            other => panic!("{other:?}"),
        }
    }
    fn holds(s: &Store, c: Compare) -> bool {
        txn(s, vec![c], vec![], vec![]).succeeded
    }

    #[test]
    fn compares_on_missing_key() {
        let (_db, s) = new_store();
        use CompareResult::*;
        assert!(holds(&s, cmp("a", "", Equal, CompareTarget::Create(0))));
        assert!(holds(&s, cmp("a", "", Equal, CompareTarget::Version(0))));
        assert!(holds(&s, cmp("a", "", Equal, CompareTarget::Mod(0))));
        assert!(holds(&s, cmp("a", "", Equal, CompareTarget::Lease(0))));
        assert!(!holds(&s, cmp("a", "", Equal, CompareTarget::Value(vec![]))));
        assert!(!holds(
            &s,
            cmp("a", "", NotEqual, CompareTarget::Value(b"x".to_vec()))
        ));
        assert!(holds(&s, cmp("a", "", Less, CompareTarget::Version(1))));
        assert_eq!(s.current_revision(), 1, "read-only txns don't bump the revision");
    }

    #[test]
    fn compares_on_existing_keys_and_ranges() {
        let (_db, s) = new_store();
        use CompareResult::*;
        put(&s, "a1", "x"); // 2
        put(&s, "a2", "y"); // 3
        put(&s, "a2", "y"); // 4
        assert!(holds(
            &s,
            cmp("a1", "", Equal, CompareTarget::Value(b"x".to_vec()))
        ));
        assert!(holds(
            &s,
            cmp("a1", "", Less, CompareTarget::Value(b"y".to_vec()))
        ));
        assert!(holds(&s, cmp("a2", "", Greater, CompareTarget::Version(1))));
        assert!(holds(&s, cmp("a2", "", Equal, CompareTarget::Create(3))));
        assert!(holds(&s, cmp("a2", "", Equal, CompareTarget::Mod(4))));
        assert!(holds(&s, cmp("a2", "", NotEqual, CompareTarget::Mod(3))));
        // Every key of the range must satisfy it.
        assert!(holds(&s, cmp("a", "b", Greater, CompareTarget::Create(1))));
        assert!(!holds(&s, cmp("a", "b", Greater, CompareTarget::Create(2))));
        assert!(holds(&s, cmp("a", "\0", Less, CompareTarget::Mod(5))));
        // An empty range behaves like a missing key.
        assert!(holds(&s, cmp("b", "c", Equal, CompareTarget::Version(0))));
        assert!(!holds(&s, cmp("b", "c", Equal, CompareTarget::Value(vec![]))));
        // All compares must hold.
        let both = vec![
            cmp("a1", "", Equal, CompareTarget::Version(1)),
            cmp("a2", "", Equal, CompareTarget::Version(1)),
        ];
        assert!(!txn(&s, both, vec![], vec![]).succeeded);
    }

    #[test]
    fn branches_share_one_revision_and_see_earlier_writes() {
        let (_db, s) = new_store();
        put(&s, "c", "old"); // 2
        let get_all = RequestOp::Range(rr("\0", "\0"));
        let r = txn(
            &s,
            vec![cmp("a", "", CompareResult::Equal, CompareTarget::Create(0))],
            vec![
                put_op("a", "1"),
                get_all.clone(),
                RequestOp::DeleteRange(DeleteRangeRequest {
                    key: b"c".to_vec(),
                    range_end: vec![],
                    prev_kv: true,
                }),
                put_op("b", "2"),
                get_all,
            ],
            vec![put_op("never", "x")],
        );
        assert!(r.succeeded);
        assert_eq!(s.current_revision(), 3);
        let ResponseOp::Range(mid) = &r.responses[1] else {
            panic!()
        };
        let mid_keys: Vec<_> = mid.kvs.iter().map(|kv| kv.key.clone()).collect();
        assert_eq!(mid_keys, vec![b"a".to_vec(), b"c".to_vec()]);
        let ResponseOp::Range(last) = &r.responses[4] else {
            panic!()
        };
        assert_eq!(last.count, 2);
        assert!(last.kvs.iter().all(|kv| kv.mod_revision == 3));
        let ev = s.events(3, 3, false).unwrap();
        let kinds: Vec<_> = ev.iter().map(|e| (e.kind, e.kv.key.clone())).collect();
        assert_eq!(
            kinds,
            vec![
                (EventKind::Put, b"a".to_vec()),
                (EventKind::Delete, b"c".to_vec()),
                (EventKind::Put, b"b".to_vec())
            ]
        );
        // Failure branch runs when the compare fails.
        let r = txn(
            &s,
            vec![cmp("a", "", CompareResult::Equal, CompareTarget::Create(0))],
            vec![put_op("never", "x")],
            vec![put_op("f", "1")],
        );
        assert!(!r.succeeded);
        assert_eq!(r.responses.len(), 1);
        assert_eq!(s.range(&rr("never", "")).unwrap().count, 0);
        assert_eq!(s.current_revision(), 4);
    }

    #[test]
    fn nested_txns_compare_against_pre_txn_state() {
        let (_db, s) = new_store();
        // The nested compare sees the state before the outer put (etcd's compareToPath).
        let nested = TxnRequest {
            compare: vec![cmp("a", "", CompareResult::Equal, CompareTarget::Version(0))],
            success: vec![put_op("nested_saw_missing", "1")],
            failure: vec![put_op("nested_saw_put", "1")],
        };
        let r = txn(&s, vec![], vec![put_op("a", "1"), RequestOp::Txn(nested)], vec![]);
        let ResponseOp::Txn(inner) = &r.responses[1] else {
            panic!()
        };
        assert!(inner.succeeded);
        assert_eq!(s.range(&rr("nested_saw_missing", "")).unwrap().count, 1);
        assert_eq!(
            s.range(&rr("nested_saw_missing", "")).unwrap().kvs[0].mod_revision,
            2
        );
    }

    #[test]
    fn txn_errors_fail_the_whole_request() {
        let (_db, s) = new_store();
        put(&s, "a", "1");
        let bad_range = RequestOp::Range(RangeRequest {
            revision: 3,
            ..rr("a", "")
        });
        let req = TxnRequest {
            compare: vec![],
            success: vec![put_op("b", "1"), bad_range],
            failure: vec![],
        };
        assert_eq!(exec(&s, WriteRequest::Txn(req)), Err(MvccError::FutureRevision));
        let lease = RequestOp::Put(PutRequest {
            key: b"b".to_vec(),
            lease: 1,
            ..Default::default()
        });
        let req = TxnRequest {
            compare: vec![],
            success: vec![],
            failure: vec![lease],
        };
        // The failure branch runs (no compares => success), so the lease put is not checked.
        assert!(exec(&s, WriteRequest::Txn(req.clone())).is_ok());
        let req = TxnRequest {
            success: req.failure,
            failure: vec![],
            ..req
        };
        assert_eq!(exec(&s, WriteRequest::Txn(req)), Err(MvccError::LeaseNotFound));
        let dup = TxnRequest {
            compare: vec![],
            success: vec![put_op("x", "1"), put_op("x", "2")],
            failure: vec![],
        };
        assert_eq!(exec(&s, WriteRequest::Txn(dup)), Err(MvccError::DuplicateKey));
        assert_eq!(s.current_revision(), 2);
        assert_eq!(s.range(&rr("b", "")).unwrap().count, 0);
        // Reading at the pre-txn revision inside the txn is fine and ignores the txn's writes.
        let old = RequestOp::Range(RangeRequest {
            revision: 2,
            ..rr("\0", "\0")
        });
        let r = txn(&s, vec![], vec![put_op("z", "1"), old], vec![]);
        let ResponseOp::Range(rr2) = &r.responses[1] else {
            panic!()
        };
        assert_eq!(rr2.count, 1);
    }
}
