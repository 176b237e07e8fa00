//! Unit tests of leases: grant/revoke/checkpoint, key attachment, and persistence.

use crate::encoding::{
    attach_key, attach_range, check_record, decode_attach_key, decode_lease_key, lease_key, seal,
};
use crate::testutil::*;
use crate::*;

fn grant(s: &Store, id: i64, ttl: i64) -> Result<WriteResponse> {
    exec(s, WriteRequest::LeaseGrant { id, ttl })
}

fn revoke(s: &Store, id: i64) -> Result<WriteResponse> {
    exec(s, WriteRequest::LeaseRevoke { id })
}

fn put_lease(s: &Store, k: &str, lease: i64) -> Result<WriteResponse> {
    exec(
        s,
        WriteRequest::Put(PutRequest {
            key: k.into(),
            value: b"v".to_vec(),
            lease,
            ..Default::default()
        }),
    )
}

fn keys_of(s: &Store, id: i64) -> Vec<Vec<u8>> {
    s.lease(id).unwrap().map(|l| l.keys).unwrap_or_default()
}

fn lease_of(s: &Store, k: &str) -> Option<i64> {
    s.range(&rr(k, "")).unwrap().kvs.first().map(|kv| kv.lease)
}

fn bytes(keys: &[&str]) -> Vec<Vec<u8>> {
    keys.iter().map(|k| k.as_bytes().to_vec()).collect()
}

fn export(s: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    s.export_to(|k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn lease_keys_sort_by_id_and_round_trip() {
    let ids = [i64::MIN, -5, -1, 1, 2, 255, 256, i64::MAX];
    let keys: Vec<_> = ids.iter().map(|&id| lease_key(id)).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(sorted, keys);
    for &id in &ids {
        assert_eq!(decode_lease_key(&lease_key(id)).unwrap(), id);
        let r = attach_range(id);
        let inside = attach_key(id, b"\xff\xff");
        assert!(inside >= r.lo && inside < *r.hi.as_ref().unwrap());
        assert_eq!(decode_attach_key(&inside).unwrap(), (id, b"\xff\xff".to_vec()));
        for other in [id.wrapping_add(1), id.wrapping_sub(1)] {
            let k = attach_key(other, b"a");
            assert!(!(k >= r.lo && k < *r.hi.as_ref().unwrap()));
        }
    }
    assert!(decode_lease_key(b"l1234567").is_err());
    assert!(decode_attach_key(&attach_key(1, b"")).is_err());
    assert!(check_record(&lease_key(1), &seal(&[])).is_err());
    assert!(check_record(&attach_key(1, b"k"), &seal(&[])).is_ok());
}

#[test]
fn grant_duplicate_and_too_large() {
    let (_db, s) = new_store();
    assert_eq!(grant(&s, 7, 10), Ok(WriteResponse::LeaseGrant { id: 7, ttl: 10 }));
    assert_eq!(s.current_revision(), 1, "a grant does not bump the revision");
    assert_eq!(grant(&s, 7, 20), Err(MvccError::LeaseExists));
    assert_eq!(grant(&s, 8, MAX_LEASE_TTL + 1), Err(MvccError::LeaseTtlTooLarge));
    assert_eq!(grant(&s, 0, 10), Err(MvccError::LeaseNotFound));
    // The store keeps what it is given (the server applies the minimum TTL).
    assert_eq!(grant(&s, -3, 1), Ok(WriteResponse::LeaseGrant { id: -3, ttl: 1 }));
    assert_eq!(grant(&s, 2, MAX_LEASE_TTL).map(drop), Ok(()));
    assert_eq!(
        s.lease(7).unwrap(),
        Some(LeaseInfo {
            id: 7,
            ttl: 10,
            remaining_ttl: 0,
            keys: vec![]
        })
    );
    assert_eq!(s.lease(8).unwrap(), None);
    let listed: Vec<_> = s.leases().unwrap().iter().map(|l| (l.id, l.ttl)).collect();
    assert_eq!(listed, vec![(-3, 1), (2, MAX_LEASE_TTL), (7, 10)]);
    assert_eq!(s.current_revision(), 1);
    assert_eq!(
        MvccError::LeaseExists.to_string(),
        "etcdserver: lease already exists"
    );
    assert_eq!(
        MvccError::LeaseTtlTooLarge.to_string(),
        "etcdserver: too large lease TTL"
    );
}

#[test]
fn put_attaches_moves_keeps_and_detaches() {
    let (_db, s) = new_store();
    grant(&s, 1, 60).unwrap();
    grant(&s, 2, 60).unwrap();
    assert_eq!(put_lease(&s, "a", 3), Err(MvccError::LeaseNotFound));
    assert_eq!(s.current_revision(), 1);
    put_lease(&s, "b", 1).unwrap();
    put_lease(&s, "a", 1).unwrap();
    assert_eq!(lease_of(&s, "a"), Some(1));
    assert_eq!(keys_of(&s, 1), bytes(&["a", "b"]));
    // Another lease moves the attachment.
    put_lease(&s, "a", 2).unwrap();
    assert_eq!((keys_of(&s, 1), keys_of(&s, 2)), (bytes(&["b"]), bytes(&["a"])));
    // ignore_lease keeps it.
    let keep = PutRequest {
        key: b"a".to_vec(),
        value: b"new".to_vec(),
        ignore_lease: true,
        ..Default::default()
    };
    exec(&s, WriteRequest::Put(keep)).unwrap();
    assert_eq!(lease_of(&s, "a"), Some(2));
    assert_eq!(keys_of(&s, 2), bytes(&["a"]));
    // The same lease again changes nothing about attachments.
    put_lease(&s, "a", 2).unwrap();
    assert_eq!(keys_of(&s, 2), bytes(&["a"]));
    // Lease 0 detaches.
    put_lease(&s, "a", 0).unwrap();
    assert_eq!(lease_of(&s, "a"), Some(0));
    assert!(keys_of(&s, 2).is_empty());
    // etcd's standalone put checks the lease before the key.
    let unknown_missing = PutRequest {
        key: b"zz".to_vec(),
        ignore_value: true,
        lease: 9,
        ..Default::default()
    };
    assert_eq!(
        exec(&s, WriteRequest::Put(unknown_missing)),
        Err(MvccError::LeaseNotFound)
    );
}

#[test]
fn deletes_detach() {
    let (_db, s) = new_store();
    grant(&s, 1, 60).unwrap();
    for k in ["a", "b", "c", "d"] {
        put_lease(&s, k, 1).unwrap();
    }
    assert_eq!(delete(&s, "a", "c"), 2);
    assert_eq!(keys_of(&s, 1), bytes(&["c", "d"]));
    let txn = TxnRequest {
        compare: vec![Compare {
            key: b"c".to_vec(),
            range_end: vec![],
            result: CompareResult::Equal,
            target: CompareTarget::Lease(1),
        }],
        success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
            key: b"c".to_vec(),
            ..Default::default()
        })],
        failure: vec![],
    };
    let WriteResponse::Txn(t) = exec(&s, WriteRequest::Txn(txn)).unwrap() else {
        panic!("not a txn response")
    };
    assert!(t.succeeded, "compare on the LEASE target sees the attachment");
    assert_eq!(keys_of(&s, 1), bytes(&["d"]));
    // A re-created key starts without a lease.
    put(&s, "a", "x");
    assert_eq!(keys_of(&s, 1), bytes(&["d"]));
}

#[test]
fn revoke_deletes_attached_keys_in_one_revision() {
    let (_db, s) = new_store();
    grant(&s, 1, 60).unwrap();
    grant(&s, 2, 60).unwrap();
    put_lease(&s, "c", 1).unwrap(); // 2
    put_lease(&s, "a", 1).unwrap(); // 3
    put_lease(&s, "b", 2).unwrap(); // 4
    put(&s, "free", "x"); // 5
    put_lease(&s, "a\0", 1).unwrap(); // 6
    let mut w = s.write_txn();
    assert_eq!(
        w.execute(&WriteRequest::LeaseRevoke { id: 1 }),
        Ok(WriteResponse::LeaseRevoke)
    );
    let out = w.commit().unwrap();
    assert_eq!(out.revision, 7);
    let shape: Vec<_> = out
        .events
        .iter()
        .map(|e| (e.kind, e.kv.key.clone(), e.kv.mod_revision))
        .collect();
    assert_eq!(
        shape,
        vec![
            (EventKind::Delete, b"a".to_vec(), 7),
            (EventKind::Delete, b"a\0".to_vec(), 7),
            (EventKind::Delete, b"c".to_vec(), 7),
        ]
    );
    assert_eq!(out.events[0].prev_kv.as_ref().map(|kv| kv.lease), Some(1));
    assert_eq!(s.events(7, 7, true).unwrap(), out.events);
    assert_eq!(s.lease(1).unwrap(), None);
    let left: Vec<_> = s
        .range(&rr("\0", "\0"))
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| kv.key)
        .collect();
    assert_eq!(left, bytes(&["b", "free"]));
    assert_eq!(keys_of(&s, 2), bytes(&["b"]));
    assert_eq!(revoke(&s, 1), Err(MvccError::LeaseNotFound));
    assert_eq!(revoke(&s, 0), Err(MvccError::LeaseNotFound));
    // A lease without keys goes without a revision.
    grant(&s, 3, 5).unwrap();
    assert_eq!(revoke(&s, 3), Ok(WriteResponse::LeaseRevoke));
    assert_eq!(s.current_revision(), 7);
    assert_eq!(s.lease(3).unwrap(), None);
    // A revoked id can be granted again, without keys.
    grant(&s, 1, 9).unwrap();
    assert!(keys_of(&s, 1).is_empty());
    let ids: Vec<_> = s.leases().unwrap().iter().map(|l| l.id).collect();
    assert_eq!(ids, vec![1, 2]);
}

#[test]
fn checkpoints_are_stored_and_unknown_ids_ignored() {
    let (_db, s) = new_store();
    grant(&s, 1, 60).unwrap();
    grant(&s, 2, 30).unwrap();
    let cps = |list: &[(i64, i64)]| WriteRequest::LeaseCheckpoint {
        checkpoints: list
            .iter()
            .map(|&(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
            .collect(),
    };
    let hash = s.hash().unwrap();
    assert_eq!(
        exec(&s, cps(&[(1, 42), (99, 5), (2, 7), (2, 8)])),
        Ok(WriteResponse::LeaseCheckpoint)
    );
    assert_ne!(s.hash().unwrap(), hash);
    assert_eq!(s.current_revision(), 1);
    let rem: Vec<_> = s
        .leases()
        .unwrap()
        .iter()
        .map(|l| (l.id, l.ttl, l.remaining_ttl))
        .collect();
    assert_eq!(rem, vec![(1, 60, 42), (2, 30, 8)]);
    assert_eq!(s.lease(99).unwrap(), None);
    // 0 = back to the full TTL (after a keep-alive).
    exec(&s, cps(&[(1, 0)])).unwrap();
    assert_eq!(s.lease(1).unwrap().map(|l| l.remaining_ttl), Some(0));
    exec(&s, cps(&[])).unwrap();
}

#[test]
fn txn_put_with_unknown_lease_fails_the_whole_txn() {
    let (_db, s) = new_store();
    grant(&s, 1, 60).unwrap();
    let put_op = |k: &str, lease: i64| {
        RequestOp::Put(PutRequest {
            key: k.into(),
            value: b"v".to_vec(),
            lease,
            ..Default::default()
        })
    };
    let bad = TxnRequest {
        compare: vec![],
        success: vec![put_op("a", 1), put_op("b", 5)],
        failure: vec![],
    };
    let hash = s.hash().unwrap();
    assert_eq!(exec(&s, WriteRequest::Txn(bad)), Err(MvccError::LeaseNotFound));
    assert_eq!((s.current_revision(), s.hash().unwrap()), (1, hash));
    assert!(keys_of(&s, 1).is_empty());
    let good = TxnRequest {
        compare: vec![],
        success: vec![put_op("a", 1), put_op("b", 1)],
        failure: vec![],
    };
    exec(&s, WriteRequest::Txn(good)).unwrap();
    assert_eq!(keys_of(&s, 1), bytes(&["a", "b"]));
    assert_eq!(s.current_revision(), 2);
}

#[test]
fn one_write_txn_sees_its_own_lease_changes_and_failures_roll_back() {
    let (_db, s) = new_store();
    let mut w = s.write_txn();
    w.execute(&WriteRequest::LeaseGrant { id: 5, ttl: 10 }).unwrap();
    let put5 = |k: &str| {
        WriteRequest::Put(PutRequest {
            key: k.into(),
            lease: 5,
            ..Default::default()
        })
    };
    w.execute(&put5("k")).unwrap();
    assert_eq!(
        w.execute(&WriteRequest::LeaseGrant { id: 5, ttl: 1 }),
        Err(MvccError::LeaseExists)
    );
    w.execute(&WriteRequest::LeaseRevoke { id: 5 }).unwrap();
    assert_eq!(w.execute(&put5("j")), Err(MvccError::LeaseNotFound));
    assert_eq!(w.current_revision(), 3);
    assert_eq!(s.lease(5).unwrap(), None, "nothing visible before commit");
    let out = w.commit().unwrap();
    let kinds: Vec<_> = out.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::Put, EventKind::Delete]);
    assert_eq!(s.lease(5).unwrap(), None);
    assert_eq!(s.key_count().unwrap(), 0);
}

#[test]
fn export_import_and_reopen_keep_leases_and_attachments() {
    let dir = tempfile::tempdir().unwrap();
    let (records, hash) = {
        let db = open_db_retrying(dir.path());
        let s = Store::open(&db, GroupId(4)).unwrap();
        grant(&s, 1, 60).unwrap();
        grant(&s, -2, 30).unwrap();
        put_lease(&s, "a", 1).unwrap();
        put_lease(&s, "b", -2).unwrap();
        exec(
            &s,
            WriteRequest::LeaseCheckpoint {
                checkpoints: vec![LeaseCheckpoint {
                    id: 1,
                    remaining_ttl: 17,
                }],
            },
        )
        .unwrap();
        s.flush().unwrap();
        (export(&s), s.hash().unwrap())
    };
    let check = |s: &Store| {
        assert_eq!(s.hash().unwrap(), hash);
        assert_eq!(
            s.lease(1).unwrap(),
            Some(LeaseInfo {
                id: 1,
                ttl: 60,
                remaining_ttl: 17,
                keys: bytes(&["a"])
            })
        );
        assert_eq!(keys_of(s, -2), bytes(&["b"]));
        let ids: Vec<_> = s.leases().unwrap().iter().map(|l| l.id).collect();
        assert_eq!(ids, vec![-2, 1]);
        // Revocation keeps working on the restored state.
        revoke(s, 1).unwrap();
        assert_eq!(s.range(&rr("a", "")).unwrap().count, 0);
        assert_eq!(s.range(&rr("b", "")).unwrap().count, 1);
    };
    let (_db2, imported) = new_store();
    grant(&imported, 1, 1).unwrap();
    put_lease(&imported, "junk", 1).unwrap();
    imported.import_from(records.clone().into_iter().map(Ok)).unwrap();
    check(&imported);
    let db = open_db_retrying(dir.path());
    let reopened = Store::open(&db, GroupId(4)).unwrap();
    check(&reopened);
    // A corrupted lease record is refused by an import.
    let mut bad = records;
    let at = bad.iter().position(|(k, _)| k.first() == Some(&b'l')).unwrap();
    bad[at].1[5] ^= 0x40;
    let (_db3, target) = new_store();
    let err = target.import_from(bad.into_iter().map(Ok)).unwrap_err();
    assert!(
        matches!(&err, MvccError::Corrupt(m) if m.contains("lease 1") || m.contains("lease -2")),
        "{err}"
    );
}

#[test]
fn hash_follows_lease_state() {
    let (_db, s) = new_store();
    put(&s, "a", "1");
    let h0 = s.hash().unwrap();
    grant(&s, 1, 60).unwrap();
    let h1 = s.hash().unwrap();
    assert_ne!(h0, h1);
    let (_db2, other) = new_store();
    put(&other, "a", "1");
    grant(&other, 1, 61).unwrap();
    assert_ne!(other.hash().unwrap(), h1, "the TTL is part of the hash");
    revoke(&s, 1).unwrap();
    assert_eq!(
        s.hash().unwrap(),
        h0,
        "revoking a lease without keys restores the hash"
    );
}
