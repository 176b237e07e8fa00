//! etcd's concurrency recipes, run inside the server as etcd's `v3lock` and `v3election`
//! services run Go `clientv3/concurrency` against their own KV (etcd 3.5).
//!
//! The queue itself — key layout, joining, who is ahead, leaving — is
//! `conclave_contract::queue`, shared with the SDK and the gateway; this module sends its
//! requests through Raft and waits on this member's state machine. Waiting for one's turn
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
use conclave_contract::queue;
use conclave_mvcc::{
    self as mvcc, CommitOutcome, DeleteRangeRequest, Event, EventKind, KeyValue, RangeRequest, RangeResponse,
    TxnResponse, WriteRequest, WriteResponse,
};
use conclave_proto::etcdserverpb as pb;
use tokio::sync::broadcast::{self, error::RecvError};
use tonic::Status;

use crate::convert::{kv_to_pb, range_from_pb, txn_from_pb, txn_to_pb};
use crate::errors::{consensus_status, mvcc_status};

/// TTL of the lease granted for a Lock or Campaign that names no lease (etcd's
/// `concurrency.NewSession` default, which etcd's services use for lease 0).
pub const DEFAULT_SESSION_TTL: i64 = 60;

/// Safety net: a waiter re-reads the store this often even without a matching commit
/// (a member that installs a snapshot changes its store without publishing commits).
const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The commit stream the waits are driven by.
pub type Commits = broadcast::Receiver<Arc<CommitOutcome>>;

/// Replicates a txn and returns its response and revision.
pub async fn txn(node: &Node, txn: pb::TxnRequest) -> Result<(TxnResponse, i64), Status> {
    let txn = txn_from_pb(txn)?;
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

/// Puts `value` (with `lease`) on `key` if and only if its create revision is still
/// `create_revision` (etcd's Proclaim). Returns whether it did, and the revision.
pub async fn put_if_created_at(
    node: &Node,
    key: &[u8],
    create_revision: i64,
    value: Vec<u8>,
    lease: i64,
) -> Result<(bool, i64), Status> {
    let (response, revision) = txn(node, queue::set_value(key, create_revision, &value, lease)).await?;
    Ok((response.succeeded, revision))
}

/// Deletes `key` if and only if its create revision is still `create_revision` (etcd's
/// Resign). Returns whether it did, and the revision.
pub async fn delete_if_created_at(
    node: &Node,
    key: &[u8],
    create_revision: i64,
) -> Result<(bool, i64), Status> {
    let (response, revision) = txn(node, queue::release(key, create_revision)).await?;
    Ok((response.succeeded, revision))
}

/// Joins the queue (`conclave_contract::queue::join`, as etcd's Mutex.Lock and
/// Election.Campaign) and returns this lease's place in it. The put fails with etcd's
/// "requested lease not found" if the lease does not exist.
pub async fn enqueue(node: &Node, key: &[u8], value: Vec<u8>, lease: i64) -> Result<queue::Place, Status> {
    let (response, revision) = txn(node, queue::join(key, &value, lease)).await?;
    let response = txn_to_pb(response, Some(header_at(revision)), revision);
    queue::place(key, &value, &response).map_err(|e| Status::internal(e.to_string()))
}

fn header_at(revision: i64) -> pb::ResponseHeader {
    pb::ResponseHeader {
        revision,
        ..Default::default()
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
    let (response, revision) = read(node, range_from_pb(queue::holder(prefix))?).await?;
    Ok((response.kvs.into_iter().next(), revision))
}

/// The newest key under `prefix` created before `create_revision` (the one to wait for,
/// etcd's `waitDeletes` query), with the revision read at.
async fn newest_before(
    node: &Node,
    prefix: &[u8],
    create_revision: i64,
) -> Result<(Option<KeyValue>, i64), Status> {
    let Some(ahead) = queue::ahead(prefix, create_revision) else {
        return Ok((None, node.store().current_revision()));
    };
    let (response, revision) = read(node, range_from_pb(ahead)?).await?;
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
                Err(RecvError::Closed) => return Err(Status::unavailable(conclave_contract::errors::STOPPED)),
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

/// Whether `kv` (the key as read now) is still the incarnation created at `create_revision`.
fn still_mine(kv: Option<&KeyValue>, create_revision: i64) -> bool {
    queue::holds(kv.cloned().map(kv_to_pb).as_ref(), create_revision)
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
    queued: &queue::Place,
    expired: &str,
) -> Result<i64, Status> {
    let mut withdraw = Withdraw::new(node.clone(), key.to_vec(), queued.create_revision, queued.created);
    match wait_for_turn(node, &queue::prefix(name), key, queued.create_revision).await {
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
