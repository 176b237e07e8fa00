//! Unit tests of the writer path.

use crate::testutil::*;
use crate::*;

fn put_req(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    }
}

fn get(s: &Store, k: &str) -> Option<KeyValue> {
    s.range(&rr(k, "")).unwrap().kvs.into_iter().next()
}

#[test]
fn empty_store_is_at_revision_one() {
    let (_db, s) = new_store();
    assert_eq!(s.current_revision(), 1);
    assert_eq!(s.compact_revision(), 0);
    assert_eq!(s.range(&rr("\0", "\0")).unwrap(), RangeResponse::default());
    assert_eq!(s.key_count().unwrap(), 0);
}

#[test]
fn put_versions_and_revisions() {
    let (_db, s) = new_store();
    put(&s, "a", "1");
    put(&s, "a", "1"); // same value still bumps
    let kv = get(&s, "a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
    assert_eq!(delete(&s, "a", ""), 1);
    assert_eq!(s.current_revision(), 4);
    put(&s, "a", "2");
    let kv = get(&s, "a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
    let resp = exec(
        &s,
        WriteRequest::Put(PutRequest {
            prev_kv: true,
            ..put_req("a", "3")
        }),
    );
    match resp.unwrap() {
        WriteResponse::Put(p) => assert_eq!(p.prev_kv.unwrap().value, b"2"),
        other => panic!("{other:?}"),
    }
    let resp = exec(&s, WriteRequest::Put(put_req("a", "4"))).unwrap();
    assert_eq!(resp, WriteResponse::Put(PutResponse { prev_kv: None }));
}

#[test]
fn delete_nothing_does_not_bump() {
    let (_db, s) = new_store();
    put(&s, "a", "1");
    assert_eq!(delete(&s, "b", "z"), 0);
    assert_eq!(delete(&s, "zz", ""), 0);
    assert_eq!(s.current_revision(), 2);
    let resp = exec(
        &s,
        WriteRequest::DeleteRange(DeleteRangeRequest {
            key: b"\0".to_vec(),
            range_end: b"\0".to_vec(),
            prev_kv: true,
        }),
    )
    .unwrap();
    match resp {
        WriteResponse::DeleteRange(d) => {
            assert_eq!(d.deleted, 1);
            assert_eq!(d.prev_kvs[0].key, b"a");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.current_revision(), 3);
}

#[test]
fn ignore_value_and_lease() {
    let (_db, s) = new_store();
    let iv = PutRequest {
        ignore_value: true,
        ..put_req("a", "")
    };
    assert_eq!(
        exec(&s, WriteRequest::Put(iv.clone())),
        Err(MvccError::KeyNotFound)
    );
    let il = PutRequest {
        ignore_lease: true,
        ..put_req("a", "new")
    };
    assert_eq!(
        exec(&s, WriteRequest::Put(il.clone())),
        Err(MvccError::KeyNotFound)
    );
    assert_eq!(s.current_revision(), 1);
    put(&s, "a", "orig");
    exec(&s, WriteRequest::Put(iv)).unwrap();
    let kv = get(&s, "a").unwrap();
    assert_eq!((kv.value.as_slice(), kv.version), (&b"orig"[..], 2));
    exec(&s, WriteRequest::Put(il)).unwrap();
    let kv = get(&s, "a").unwrap();
    assert_eq!((kv.value.as_slice(), kv.lease), (&b"new"[..], 0));
    let bad = PutRequest {
        ignore_value: true,
        ..put_req("a", "x")
    };
    assert_eq!(exec(&s, WriteRequest::Put(bad)), Err(MvccError::ValueProvided));
    let bad = PutRequest {
        ignore_lease: true,
        lease: 9,
        ..put_req("a", "x")
    };
    assert_eq!(exec(&s, WriteRequest::Put(bad)), Err(MvccError::LeaseProvided));
}

#[test]
fn put_with_an_ungranted_lease_fails() {
    let (_db, s) = new_store();
    let req = PutRequest {
        lease: 77,
        ..put_req("a", "1")
    };
    assert_eq!(exec(&s, WriteRequest::Put(req)), Err(MvccError::LeaseNotFound));
    assert_eq!(
        exec(&s, WriteRequest::Put(put_req("", "1"))),
        Err(MvccError::KeyNotProvided)
    );
    assert_eq!(s.current_revision(), 1);
}

#[test]
fn failed_execute_leaves_txn_unchanged_and_several_executes_get_own_revisions() {
    let (_db, s) = new_store();
    let mut w = s.write_txn();
    w.execute(&WriteRequest::Put(put_req("a", "1"))).unwrap();
    assert_eq!(w.current_revision(), 2);
    let failing = TxnRequest {
        compare: vec![],
        success: vec![
            RequestOp::Put(put_req("b", "1")),
            RequestOp::Put(PutRequest {
                ignore_value: true,
                ..put_req("zz", "")
            }),
        ],
        failure: vec![],
    };
    assert_eq!(
        w.execute(&WriteRequest::Txn(failing)),
        Err(MvccError::KeyNotFound)
    );
    assert_eq!(w.current_revision(), 2);
    w.execute(&WriteRequest::Put(put_req("a", "2"))).unwrap();
    w.set_app_meta("applied", b"3".to_vec());
    assert_eq!(get(&s, "a"), None, "nothing visible before commit");
    let out = w.commit().unwrap();
    assert_eq!(out.revision, 3);
    let revs: Vec<_> = out.events.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revs, vec![2, 3]);
    assert_eq!(get(&s, "b"), None);
    assert_eq!(get(&s, "a").unwrap().version, 2);
    assert_eq!(s.app_meta("applied").unwrap(), Some(b"3".to_vec()));
    assert_eq!(s.app_meta("other").unwrap(), None);
}

#[test]
fn meta_only_and_empty_commits() {
    let (_db, s) = new_store();
    let out = s.write_txn().commit().unwrap();
    assert_eq!(
        out,
        CommitOutcome {
            revision: 1,
            events: vec![]
        }
    );
    let mut w = s.write_txn();
    w.set_app_meta("membership", vec![1, 2, 3]);
    let out = w.commit().unwrap();
    assert_eq!(out.revision, 1);
    assert!(out.events.is_empty());
    assert_eq!(s.app_meta("membership").unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(s.current_revision(), 1);
}

#[test]
fn stale_write_txn_is_refused() {
    let (_db, s) = new_store();
    let mut first = s.write_txn();
    first.execute(&WriteRequest::Put(put_req("a", "1"))).unwrap();
    put(&s, "b", "1");
    assert!(matches!(first.commit(), Err(MvccError::Storage(_))));
    assert_eq!(get(&s, "a"), None);
}

#[test]
fn corrupted_value_is_reported() {
    let (db, s) = new_store();
    put(&s, "a", "1");
    put(&s, "a", "2");
    let tree = db.open_tree("g1/kv.0").unwrap();
    let (k, v) = tree
        .get(b"ka")
        .unwrap()
        .map(|v| (b"ka".to_vec(), v.to_vec()))
        .unwrap();
    let mut bad = v.clone();
    let n = bad.len();
    bad[n - 1] ^= 1;
    tree.insert(&k, bad).unwrap();
    let err = s.range(&rr("a", "")).unwrap_err();
    assert!(
        matches!(&err, MvccError::Corrupt(m) if m.contains("\"a\"")),
        "{err}"
    );
    // Historic reads go through the history records, which are intact.
    let mut req = rr("a", "");
    req.revision = 2;
    assert_eq!(s.range(&req).unwrap().kvs[0].value, b"1");
    // A write needing the corrupted record fails without staging anything.
    let mut w = s.write_txn();
    assert!(matches!(
        w.execute(&WriteRequest::Put(put_req("a", "3"))),
        Err(MvccError::Corrupt(_))
    ));
    tree.insert(&k, v).unwrap();
    assert_eq!(get(&s, "a").unwrap().value, b"2");
}

#[test]
fn groups_are_isolated_and_reopen_restores_state() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open_db_retrying(dir.path());
        let g1 = Store::open(&db, GroupId(1)).unwrap();
        let g2 = Store::open(&db, GroupId(2)).unwrap();
        put(&g1, "a", "1");
        put(&g1, "a", "2");
        put(&g2, "a", "other");
        compact(&g1, 2).unwrap();
        let mut w = g1.write_txn();
        w.set_app_meta("x", b"y".to_vec());
        w.commit().unwrap();
        g1.flush().unwrap();
        assert!(g1.size_on_disk().unwrap() > 0);
    }
    let db = open_db_retrying(dir.path());
    let g1 = Store::open(&db, GroupId(1)).unwrap();
    let g2 = Store::open(&db, GroupId(2)).unwrap();
    assert_eq!((g1.current_revision(), g1.compact_revision()), (3, 2));
    assert_eq!(get(&g1, "a").unwrap().value, b"2");
    assert_eq!(get(&g2, "a").unwrap().value, b"other");
    assert_eq!(g2.current_revision(), 2);
    assert_eq!(g1.app_meta("x").unwrap(), Some(b"y".to_vec()));
    assert_eq!(g2.app_meta("x").unwrap(), None);
    assert_eq!(g1.group(), GroupId(1));
    assert_eq!(GroupId(7).to_string(), "7");
}

#[test]
fn readers_never_see_half_commits() {
    let (_db, s) = new_store();
    let s = std::sync::Arc::new(s);
    let reader = {
        let s = s.clone();
        std::thread::spawn(move || {
            for _ in 0..300 {
                let r = s.range(&rr("\0", "\0")).unwrap();
                // Every txn writes both keys with the same value.
                if r.count > 0 {
                    assert_eq!(r.count, 2);
                    assert_eq!(r.kvs[0].value, r.kvs[1].value);
                    assert_eq!(r.kvs[0].mod_revision, r.kvs[1].mod_revision);
                }
            }
        })
    };
    for i in 0..100 {
        let v = i.to_string();
        let t = TxnRequest {
            compare: vec![],
            success: vec![RequestOp::Put(put_req("x", &v)), RequestOp::Put(put_req("y", &v))],
            failure: vec![],
        };
        exec(&s, WriteRequest::Txn(t)).unwrap();
    }
    reader.join().unwrap();
}
