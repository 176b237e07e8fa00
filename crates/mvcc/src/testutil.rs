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

/// Opens a sled database at `path`, retrying while a just-dropped handle to it still
/// holds the file lock (sled 0.34's flusher thread releases it shortly after the drop).
pub(crate) fn open_db_retrying(path: &std::path::Path) -> sled::Db {
    let mut attempts = 0;
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(_) if attempts < 100 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopening {path:?}: {e}"),
        }
    }
}
