//! Helpers shared by the unit tests.

use crate::*;

/// A store in a temporary sled database (keep the Db alive alongside).
pub(crate) fn new_store() -> (sled::Db, Store) {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let s = Store::open(&db, GroupId(1)).unwrap();
    (db, s)
}

/// Executes one request in its own write txn and commits it.
pub(crate) fn exec(s: &Store, req: WriteRequest) -> Result<WriteResponse> {
    let mut w = s.write_txn();
    let resp = w.execute(&req)?;
    w.commit()?;
    Ok(resp)
}

pub(crate) fn put(s: &Store, k: &str, v: &str) {
    exec(
        s,
        WriteRequest::Put(PutRequest {
            key: k.into(),
            value: v.into(),
            ..Default::default()
        }),
    )
    .unwrap();
}

pub(crate) fn delete(s: &Store, k: &str, end: &str) -> i64 {
    match exec(
        s,
        WriteRequest::DeleteRange(DeleteRangeRequest {
            key: k.into(),
            range_end: end.into(),
            prev_kv: false,
        }),
    )
    .unwrap()
    {
        WriteResponse::DeleteRange(d) => d.deleted,
        other => panic!("unexpected {other:?}"),
    }
}

pub(crate) fn compact(s: &Store, revision: i64) -> Result<()> {
    exec(s, WriteRequest::Compact { revision }).map(drop)
}

pub(crate) fn rr(k: &str, end: &str) -> RangeRequest {
    RangeRequest {
        key: k.into(),
        range_end: end.into(),
        ..Default::default()
    }
}
