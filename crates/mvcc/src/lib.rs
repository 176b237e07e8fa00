//! etcd's multi-version key-value data model on sled: revisions, ranges, txns,
//! compaction and the event history watchers replay.
//!
//! Pure logic over a storage handle: no networking, no Raft, no async. The consensus
//! layer applies each committed Raft entry through one [`WriteTxn`] (together with its
//! own metadata, atomically) and serves reads with [`Store::range`]; the server validates
//! requests with the `validate_*` functions before proposing them.
//!
//! Leases are replicated store state too: granted, revoked (deleting their keys) and
//! checkpointed through [`WriteRequest`]s, read with [`Store::lease`]/[`Store::leases`],
//! and carried by hash, snapshots and reopen like every other record. Expiry timing is
//! the caller's: the leader proposes a revoke when a lease runs out.
//!
//! Module map: `types` (public data model), `error`, `encoding` (record key layout and
//! value envelope), `backend` (the sled seam), `view` (reads over committed + staged
//! records), `store` (open, meta, hash), `range`, `write` (put/delete and the writer),
//! `txn`, `compaction`, `history` (events), `lease` (grant/revoke/checkpoint and lease
//! reads), `snapshot` (export/import), `validate`.

#![warn(missing_docs)]

mod backend;
mod compaction;
mod encoding;
mod error;
mod history;
mod lease;
mod range;
mod snapshot;
mod store;
mod txn;
mod types;
mod validate;
mod view;
mod write;

#[cfg(test)]
mod testutil;

pub use error::{MvccError, Result};
pub use store::Store;
pub use types::{
    CommitOutcome, Compare, CompareResult, CompareTarget, DeleteRangeRequest, DeleteRangeResponse, Event,
    EventKind, GroupId, KeyValue, LeaseCheckpoint, LeaseInfo, PutRequest, PutResponse, RangeRequest,
    RangeResponse, RequestOp, ResponseOp, SortOrder, SortTarget, TxnRequest, TxnResponse, WriteRequest,
    WriteResponse,
};
pub use validate::{
    validate_delete_range, validate_lease_grant, validate_put, validate_range, validate_txn, MAX_LEASE_TTL,
};
pub use write::WriteTxn;

/// etcd's default `--max-txn-ops`: the op limit the server passes to [`validate_txn`].
pub const DEFAULT_MAX_TXN_OPS: usize = 128;

#[cfg(test)]
mod send_sync {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn store_is_send_and_sync_and_write_txn_is_send() {
        assert_send_sync::<crate::Store>();
        // The consensus layer may hold a WriteTxn across an await point.
        assert_send::<crate::WriteTxn<'static>>();
    }
}
