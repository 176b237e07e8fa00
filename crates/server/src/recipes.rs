//! etcd's concurrency recipes, run inside the server as etcd's `v3lock` and `v3election`
//! services run Go `clientv3/concurrency` against their own KV (etcd 3.5).
//!
//! A participant of lock or election `<name>` owns the key `<name>/<lease id in hex>`,
//! attached to its lease. Participants queue in creation order: the one whose key has the
//! lowest create revision holds the lock (leads the election). Waiting for one's turn
//! means waiting, one after another, for the deletion of each key created before one's
//! own ([`wait_for_turn`], etcd's `waitDeletes`), driven by the state machine's commit
//! stream instead of a watch.
//!
//! Unlike etcd 3.5's Campaign, a wait ends with [`WaitError::Expired`] as soon as the
//! waiter's own key disappears (its lease expired or was revoked, or someone deleted
//! it), so no waiter outlives its lease.

use std::sync::Arc;
use std::time::Duration;

use conclave_consensus::{Command, CommandResult, Node};
use conclave_mvcc::{
    self as mvcc, CommitOutcome, Compare, CompareResult, CompareTarget, DeleteRangeRequest, Event, EventKind,
    KeyValue, PutRequest, RangeRequest, RangeResponse, RequestOp, ResponseOp, SortOrder, SortTarget,
    TxnRequest, TxnResponse, WriteRequest, WriteResponse,
};
use tokio::sync::broadcast::{self, error::RecvError};
use tonic::Status;

use crate::errors::{consensus_status, mvcc_status};

/// TTL of the lease granted for a Lock or Campaign that names no lease (etcd's
/// `concurrency.NewSession` default, which etcd's services use for lease 0).
pub const DEFAULT_SESSION_TTL: i64 = 60;

/// Safety net: a waiter re-reads the store this often even without a matching commit
/// (a member that installs a snapshot changes its store without publishing commits).
const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The commit stream the waits are driven by.
pub type Commits = broadcast::Receiver<Arc<CommitOutcome>>;

/// `<name>/`: the prefix under which the participants of `name` keep their keys.
pub fn prefix(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// `<name>/<lease>`, the lease formatted as Go's `%x` formats an `int64` (lowercase hex,
/// a leading `-` for negative ids), exactly as etcd names lock and election keys.
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

/// The end of the range holding every key that starts with `prefix` (clientv3's
/// `GetPrefixRangeEnd`): the prefix with its last byte below 0xff incremented, or `"\0"`
/// (every key from `prefix` on) if there is none.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Replicates a txn and returns its response and revision.
pub async fn txn(node: &Node, txn: TxnRequest) -> Result<(TxnResponse, i64), Status> {
    mvcc::validate_txn(&txn, mvcc::DEFAULT_MAX_TXN_OPS).map_err(|e| mvcc_status(&e))?;
    let CommandResult { revision, outcome } = node
        .write(Command::Write(WriteRequest::Txn(txn)))
        .await
        .map_err(|e| consensus_status(&e))?;
    match outcome.map_err(|e| mvcc_status(&e))? {
        WriteResponse::Txn(response) => Ok((response, revision)),
        other => Err(Status::internal(format!(
            "state machine answered a txn with {other:?}"
        ))),
    }
}

/// Replicates a delete of one key (etcd's Unlock) and returns the revision.
pub async fn delete(node: &Node, key: Vec<u8>) -> Result<i64, Status> {
    let delete = DeleteRangeRequest {
        key,
        ..Default::default()
    };
    mvcc::validate_delete_range(&delete).map_err(|e| mvcc_status(&e))?;
    let CommandResult { revision, outcome } = node
        .write(Command::Write(WriteRequest::DeleteRange(delete)))
        .await
        .map_err(|e| consensus_status(&e))?;
    outcome.map_err(|e| mvcc_status(&e))?;
    Ok(revision)
}

fn create_revision_is(key: &[u8], revision: i64) -> Compare {
    Compare {
        key: key.to_vec(),
        range_end: Vec::new(),
        result: CompareResult::Equal,
        target: CompareTarget::Create(revision),
    }
}

/// Puts `value` (with `lease`) on `key` if and only if its create revision is still
/// `create_revision` (etcd's Proclaim). Returns whether it did, and the revision.
pub async fn put_if_created_at(
    node: &Node,
    key: &[u8],
    create_revision: i64,
    value: Vec<u8>,
    lease: i64,
) -> Result<(bool, i64), Status> {
    let request = TxnRequest {
        compare: vec![create_revision_is(key, create_revision)],
        success: vec![RequestOp::Put(PutRequest {
            key: key.to_vec(),
            value,
            lease,
            ..Default::default()
        })],
        failure: Vec::new(),
    };
    let (response, revision) = txn(node, request).await?;
    Ok((response.succeeded, revision))
}

/// Deletes `key` if and only if its create revision is still `create_revision` (etcd's
/// Resign). Returns whether it did, and the revision.
pub async fn delete_if_created_at(
    node: &Node,
    key: &[u8],
    create_revision: i64,
) -> Result<(bool, i64), Status> {
    let request = TxnRequest {
        compare: vec![create_revision_is(key, create_revision)],
        success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
            key: key.to_vec(),
            ..Default::default()
        })],
        failure: Vec::new(),
    };
    let (response, revision) = txn(node, request).await?;
    Ok((response.succeeded, revision))
}

/// A participant's key after [`enqueue`].
#[derive(Debug, Clone)]
pub struct Queued {
    /// The key's create revision: its place in the queue (and the fencing token).
    pub create_revision: i64,
    /// The key's value as stored (the new value if this call created the key).
    pub value: Vec<u8>,
    /// Whether this call created the key (false: the same lease already had it).
    pub created: bool,
}

/// Joins the queue: Txn If(create_revision(key) == 0) Then(Put(key, value, lease))
/// Else(Get(key)), as etcd's Mutex.Lock and Election.Campaign. The put fails with etcd's
/// "requested lease not found" if the lease does not exist.
pub async fn enqueue(node: &Node, key: &[u8], value: Vec<u8>, lease: i64) -> Result<Queued, Status> {
    let request = TxnRequest {
        compare: vec![create_revision_is(key, 0)],
        success: vec![RequestOp::Put(PutRequest {
            key: key.to_vec(),
            value: value.clone(),
            lease,
            ..Default::default()
        })],
        failure: vec![RequestOp::Range(RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        })],
    };
    let (response, revision) = txn(node, request).await?;
    if response.succeeded {
        return Ok(Queued {
            create_revision: revision,
            value,
            created: true,
        });
    }
    match response.responses.into_iter().next() {
        Some(ResponseOp::Range(RangeResponse { kvs, .. })) => match kvs.into_iter().next() {
            Some(kv) => Ok(Queued {
                create_revision: kv.create_revision,
                value: kv.value,
                created: false,
            }),
            None => Err(Status::internal(
                "the key compared as existing but was not found in the same txn",
            )),
        },
        _ => Err(Status::internal(
            "state machine answered a txn get with another response",
        )),
    }
}

/// A range on this member's store (no read barrier); returns the response and the
/// revision it was read at.
pub async fn read(node: &Node, range: RangeRequest) -> Result<(RangeResponse, i64), Status> {
    let store = node.store().clone();
    tokio::task::spawn_blocking(move || store.range_at_revision(&range))
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| mvcc_status(&e))
}

/// The version of one key on this member's store, with the revision read at.
async fn read_key(node: &Node, key: &[u8]) -> Result<(Option<KeyValue>, i64), Status> {
    let (response, revision) = read(
        node,
        RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        },
    )
    .await?;
    Ok((response.kvs.into_iter().next(), revision))
}

/// The key under `prefix` with the lowest create revision (the lock holder, the election
/// leader) on this member's store, with the revision read at.
pub async fn oldest(node: &Node, prefix: &[u8]) -> Result<(Option<KeyValue>, i64), Status> {
    let (response, revision) = read(
        node,
        RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            limit: 1,
            sort_order: SortOrder::Ascend,
            sort_target: SortTarget::Create,
            ..Default::default()
        },
    )
    .await?;
    Ok((response.kvs.into_iter().next(), revision))
}

/// The newest key under `prefix` created before `create_revision` (the one to wait for,
/// etcd's `waitDeletes` query), with the revision read at.
async fn newest_before(
    node: &Node,
    prefix: &[u8],
    create_revision: i64,
) -> Result<(Option<KeyValue>, i64), Status> {
    if create_revision <= 1 {
        // Revision 1 is the empty store: nothing was created before it (and 0 would mean
        // "no filter").
        return Ok((None, node.store().current_revision()));
    }
    let (response, revision) = read(
        node,
        RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            limit: 1,
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Create,
            max_create_revision: create_revision - 1,
            ..Default::default()
        },
    )
    .await?;
    Ok((response.kvs.into_iter().next(), revision))
}

/// Waits until a commit after revision `seen` carries an event `matches` accepts. Also
/// returns when the stream lagged or after [`RECHECK_INTERVAL`]: the caller re-reads the
/// store either way, so an early return costs a read, never a missed change.
pub async fn next_change(
    commits: &mut Commits,
    seen: i64,
    matches: impl Fn(&Event) -> bool,
) -> Result<(), Status> {
    let recheck = tokio::time::sleep(RECHECK_INTERVAL);
    tokio::pin!(recheck);
    loop {
        tokio::select! {
            commit = commits.recv() => match commit {
                Ok(commit) => {
                    if commit.revision > seen && commit.events.iter().any(&matches) {
                        return Ok(());
                    }
                }
                Err(RecvError::Lagged(_)) => return Ok(()),
                Err(RecvError::Closed) => return Err(Status::unavailable("etcdserver: server stopped")),
            },
            () = &mut recheck => return Ok(()),
        }
    }
}

/// Why [`wait_for_turn`] gave up.
#[derive(Debug)]
pub enum WaitError {
    /// The waiter's own key is gone: its lease expired or was revoked (or the key was
    /// deleted), so it can never get its turn.
    Expired,
    /// The cluster could not answer (no leader, timeout, storage).
    Failed(Status),
}

impl From<Status> for WaitError {
    fn from(status: Status) -> WaitError {
        WaitError::Failed(status)
    }
}

/// Whether `key` exists with create revision `create_revision` in `kv`.
fn still_mine(kv: Option<&KeyValue>, create_revision: i64) -> bool {
    kv.is_some_and(|kv| kv.create_revision == create_revision)
}

/// Waits until `key` (created at `create_revision`) is the oldest key under `prefix`:
/// etcd's `waitDeletes` (wait for the deletion of the newest older key, repeat), plus a
/// watch on the waiter's own key so that losing it ends the wait. Finally confirms, after
/// a linearizable barrier, that the key still exists (etcd 3.5's session check). Returns
/// the revision of that confirmation.
pub async fn wait_for_turn(
    node: &Node,
    prefix: &[u8],
    key: &[u8],
    create_revision: i64,
) -> Result<i64, WaitError> {
    // Subscribe before reading: every change after the reads below is seen.
    let mut commits = node.subscribe_commits();
    // This member's store must include the enqueue (a follower applies it after the
    // leader answered).
    node.linearizable_barrier()
        .await
        .map_err(|e| consensus_status(&e))?;
    loop {
        let (mine, mine_seen) = read_key(node, key).await?;
        if !still_mine(mine.as_ref(), create_revision) {
            return Err(WaitError::Expired);
        }
        let (older, older_seen) = newest_before(node, prefix, create_revision).await?;
        let Some(older) = older else {
            break;
        };
        let seen = mine_seen.min(older_seen);
        next_change(&mut commits, seen, |event| {
            event.kind == EventKind::Delete && (event.kv.key == older.key || event.kv.key == key)
        })
        .await?;
    }
    node.linearizable_barrier()
        .await
        .map_err(|e| consensus_status(&e))?;
    let (mine, revision) = read_key(node, key).await?;
    if still_mine(mine.as_ref(), create_revision) {
        Ok(revision)
    } else {
        Err(WaitError::Expired)
    }
}

/// Takes a participant out of the queue when its request ends without a result (the
/// client went away, or the wait failed), as etcd's services do: while armed, dropping it
/// deletes the key in the background if its create revision is unchanged.
pub struct Withdraw {
    node: Node,
    key: Vec<u8>,
    create_revision: i64,
    armed: bool,
}

impl Withdraw {
    /// A guard for `key` created at `create_revision`; inert unless `armed`.
    pub fn new(node: Node, key: Vec<u8>, create_revision: i64, armed: bool) -> Withdraw {
        Withdraw {
            node,
            key,
            create_revision,
            armed,
        }
    }

    /// Keeps the key when the guard is dropped.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no runtime to withdraw an abandoned lock/election key; its lease will remove it");
            return;
        };
        let node = self.node.clone();
        let key = std::mem::take(&mut self.key);
        let create_revision = self.create_revision;
        runtime.spawn(async move {
            match delete_if_created_at(&node, &key, create_revision).await {
                Ok((deleted, _)) => tracing::debug!(
                    key = %String::from_utf8_lossy(&key),
                    deleted,
                    "withdrew an abandoned lock/election key"
                ),
                Err(status) => tracing::warn!(
                    key = %String::from_utf8_lossy(&key),
                    error = %status.message(),
                    "could not withdraw an abandoned lock/election key; its lease will remove it"
                ),
            }
        });
    }
}

/// The lease a Lock or Campaign runs under: the requested one, or for lease 0 a fresh
/// lease of [`DEFAULT_SESSION_TTL`] seconds that nobody keeps alive (what etcd's services
/// do: they open a `concurrency.Session`, which grants one, and orphan it).
pub async fn session_lease(node: &Node, requested: i64) -> Result<i64, Status> {
    if requested != 0 {
        return Ok(requested);
    }
    let (id, _) = node
        .lease_grant(0, DEFAULT_SESSION_TTL)
        .await
        .map_err(|e| consensus_status(&e))?;
    Ok(id)
}

/// Waits until `key` (queued under `name` as `queued`) is the oldest key of the queue, and
/// returns the revision at which the caller holds the turn. If the call ends early (an
/// error, or the caller going away), a key this call created is withdrawn, as etcd
/// unlocks/resigns when waiting fails; an existing key belongs to an earlier call with
/// the same lease and stays. `expired` is the error message for a lease that died while
/// waiting.
pub async fn hold_turn(
    node: &Node,
    name: &[u8],
    key: &[u8],
    queued: &Queued,
    expired: &str,
) -> Result<i64, Status> {
    let mut withdraw = Withdraw::new(node.clone(), key.to_vec(), queued.create_revision, queued.created);
    match wait_for_turn(node, &prefix(name), key, queued.create_revision).await {
        Ok(revision) => {
            withdraw.disarm();
            Ok(revision)
        }
        Err(WaitError::Expired) => {
            withdraw.disarm();
            Err(crate::errors::recipe_status(expired))
        }
        Err(WaitError::Failed(status)) => Err(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_named_as_etcd_names_them() {
        assert_eq!(
            owner_key(b"rslock", 0x2040a20857cf2e61),
            b"rslock/2040a20857cf2e61".to_vec()
        );
        assert_eq!(owner_key(b"e", 255), b"e/ff".to_vec());
        assert_eq!(owner_key(b"e", -255), b"e/-ff".to_vec());
        assert_eq!(owner_key(b"e", i64::MIN), b"e/-8000000000000000".to_vec());
        assert_eq!(prefix(b"n"), b"n/".to_vec());
    }

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"n/"), b"n0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
