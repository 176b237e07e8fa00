//! Keeps clients' KV writes out of the reserved prefix `/_conclave/`, where the partition
//! controller keeps groups: only the Groups API and the controller write there, so a map
//! is never changed behind the controller's back. Reads (and watches) are allowed.
//!
//! A put, a delete, or a range starting inside the prefix is refused. A range that only
//! covers the prefix from outside (`etcdctl del --from-key ""`, `del --prefix /`) is
//! refused only while groups or auth records (users, roles: `crate::auth::records`)
//! exist, so wiping a cluster without them works as on etcd. That refusal depends on
//! state, so it is only given after a linearizable barrier ([`check_fresh`]): a member
//! that has not yet applied an acknowledged `DeleteGroup` does not refuse the wipe.

use conclave_consensus::Node;
use conclave_mvcc::{RangeRequest, RequestOp, Store, TxnRequest};
use tonic::Status;

use crate::errors::consensus_status;

use conclave_contract::groups::{touches_reserved, GROUPS, RESERVED};

fn refused(what: &str) -> Status {
    Status::permission_denied(format!(
        "{what} keys under {} reserved for Conclave's partition groups and auth records: change groups with the Groups API (conclave.partition.v1.Groups, conclavectl group ...) and users and roles with the Auth API (etcdctl user/role ...), or delete the range below and above the prefix separately",
        String::from_utf8_lossy(RESERVED)
    ))
}

/// Whether any key under `prefix` exists.
fn any_under(store: &Store, prefix: &[u8]) -> bool {
    store
        .range(&RangeRequest {
            key: prefix.to_vec(),
            range_end: conclave_contract::keys::prefix_end(prefix),
            count_only: true,
            ..Default::default()
        })
        .map_or(true, |r| r.count > 0)
}

/// Whether a group or an auth record exists (a controller's claim alone does not count: a
/// wipe that takes it makes the controller claim office again).
fn records_exist(store: &Store) -> bool {
    any_under(store, GROUPS) || any_under(store, crate::auth::records::AUTH)
}

/// Runs `check` against this member's store and, if it refuses, again after a
/// linearizable barrier, so a refusal never rests on state older than the request.
pub async fn check_fresh(node: &Node, check: impl Fn(&Store) -> Result<(), Status>) -> Result<(), Status> {
    if check(node.store()).is_ok() {
        return Ok(());
    }
    node.linearizable_barrier()
        .await
        .map_err(|e| consensus_status(&e))?;
    check(node.store())
}

/// Checks a client put of `key`.
pub fn check_put(key: &[u8]) -> Result<(), Status> {
    if key.starts_with(RESERVED) {
        return Err(refused("the put writes"));
    }
    Ok(())
}

/// Checks a client delete of `[key, range_end)`.
pub fn check_delete(store: &Store, key: &[u8], range_end: &[u8]) -> Result<(), Status> {
    if key.starts_with(RESERVED) {
        return Err(refused("the delete removes"));
    }
    if touches_reserved(key, range_end) && records_exist(store) {
        return Err(refused("the delete range covers"));
    }
    Ok(())
}

/// Checks every write of a client txn (both branches, nested txns included).
pub fn check_txn(store: &Store, txn: &TxnRequest) -> Result<(), Status> {
    for op in txn.success.iter().chain(&txn.failure) {
        match op {
            RequestOp::Put(put) => check_put(&put.key)?,
            RequestOp::DeleteRange(delete) => check_delete(store, &delete.key, &delete.range_end)?,
            RequestOp::Txn(nested) => check_txn(store, nested)?,
            RequestOp::Range(_) => {}
        }
    }
    Ok(())
}
