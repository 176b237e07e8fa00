//! Elections and locks for HTTP clients, over the SDK's KV calls, in etcd's key layout.
//!
//! The gateway keeps no session: an HTTP client grants a lease, keeps it alive with
//! `POST /v1/leases/{id}/keepalive`, and names it when it campaigns or locks. A
//! contender owns the key `<name>/<lease id in hex>` attached to that lease (the layout
//! etcd's Election and Lock services, `etcdctl` and the SDK use, so all interoperate);
//! the contender whose key has the lowest create revision leads (holds the lock), and
//! that create revision is its fencing **epoch** — strictly higher for every later holder.
//!
//! A wait is bounded by the caller's timeout. When it ends without the turn (timeout,
//! error, the gateway draining) the contender is withdrawn from the queue, as etcd's
//! Campaign withdraws on cancel, so no abandoned key blocks those behind it.

use std::time::Duration;

use conclave_client::kv::{prefix_end, Delete, Get};
use conclave_client::watch::Watch;
use conclave_client::{Client, Compare, Error, EventKind, LeaseId, Op, SortOrder, SortTarget};
use conclave_proto::etcdserverpb::kv_client::KvClient;
use conclave_proto::etcdserverpb::{compare, request_op, Compare as PbCompare, RequestOp, TxnRequest};
use futures::StreamExt;
use tokio::time::Instant;

/// A contender's place: its key and create revision (the epoch once it leads).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// `<name>/<lease hex>`.
    pub key: String,
    /// The key's create revision.
    pub epoch: i64,
}

/// Why a wait for the turn ended without it.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The timeout passed first (the contender was withdrawn).
    #[error("not first in the queue within {0:?}")]
    Timeout(Duration),
    /// The contender's key vanished (its lease expired or was revoked).
    #[error("the key {0} was deleted while waiting (lease expired or revoked?)")]
    KeyLost(String),
    /// The wait was cancelled — the gateway is draining, or the HTTP client went away
    /// (the contender was withdrawn).
    #[error("cancelled")]
    Cancelled,
    /// The cluster failed.
    #[error(transparent)]
    Client(#[from] Error),
    /// The wait ended without the turn, and leaving the queue failed too: the key may
    /// still be queued under the caller's lease (and could later lead unnoticed).
    #[error("gave up waiting, but could not leave the queue ({reason}): {key} may still be queued under your lease")]
    Stranded {
        /// The contender's key.
        key: String,
        /// Why leaving failed.
        reason: String,
    },
}

/// The key of `lease` in `name`'s queue, as etcd formats it (Go's `%x` of an int64).
pub fn owner_key(name: &str, lease: i64) -> String {
    if lease < 0 {
        format!("{name}/-{:x}", lease.unsigned_abs())
    } else {
        format!("{name}/{lease:x}")
    }
}

fn put_op(key: &str, value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(
            conclave_proto::etcdserverpb::PutRequest {
                key: key.as_bytes().to_vec(),
                value: value.to_vec(),
                lease,
                ..Default::default()
            },
        )),
    }
}

fn create_revision_is(key: &str, revision: i64) -> PbCompare {
    PbCompare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.as_bytes().to_vec(),
        range_end: Vec::new(),
        target_union: Some(compare::TargetUnion::CreateRevision(revision)),
    }
}

/// Sends a txn whose repetition is harmless (it is guarded by the key's create
/// revision), so the SDK may retry it on another member like a read.
async fn guarded_txn(
    client: &Client,
    request: TxnRequest,
) -> Result<conclave_proto::etcdserverpb::TxnResponse, Error> {
    client
        .raw_call(conclave_client::Idempotency::Idempotent, |channel| {
            let request = request.clone();
            async move {
                KvClient::new(channel)
                    .max_decoding_message_size(conclave_client::MAX_RESPONSE_BYTES)
                    .txn(request)
                    .await
                    .map(|r| r.into_inner())
            }
        })
        .await
}

/// Joins `name`'s queue with `lease` and `value`, or finds this lease's place in it.
pub async fn enqueue(client: &Client, name: &str, lease: i64, value: &[u8]) -> Result<Ticket, Error> {
    let key = owner_key(name, lease);
    let response = guarded_txn(
        client,
        TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![put_op(&key, value, lease)],
            failure: vec![RequestOp {
                request: Some(request_op::Request::RequestRange(
                    conclave_proto::etcdserverpb::RangeRequest {
                        key: key.as_bytes().to_vec(),
                        ..Default::default()
                    },
                )),
            }],
        },
    )
    .await?;
    if response.succeeded {
        return Ok(Ticket {
            key,
            epoch: response.header.map_or(0, |h| h.revision),
        });
    }
    let existing = response
        .responses
        .into_iter()
        .find_map(|r| match r.response {
            Some(conclave_proto::etcdserverpb::response_op::Response::ResponseRange(range)) => {
                range.kvs.into_iter().next()
            }
            _ => None,
        })
        .ok_or_else(|| Error::LeadershipLost {
            key: key.clone(),
            reason: "the key vanished while joining the queue".into(),
        })?;
    let ticket = Ticket {
        key: key.clone(),
        epoch: existing.create_revision,
    };
    if existing.value != value {
        // Re-joining with another value: update our own incarnation only.
        guarded_txn(
            client,
            TxnRequest {
                compare: vec![create_revision_is(&key, ticket.epoch)],
                success: vec![put_op(&key, value, lease)],
                failure: Vec::new(),
            },
        )
        .await?;
    }
    Ok(ticket)
}

/// Waits until `ticket` is first in `name`'s queue (every earlier key deleted).
async fn wait_turn(client: &Client, name: &str, ticket: &Ticket) -> Result<(), WaitError> {
    let prefix = format!("{name}/");
    loop {
        let ahead = client
            .range(
                Get::range(prefix.clone(), prefix_end(prefix.as_bytes()))
                    .max_create_revision(ticket.epoch - 1)
                    .sort(SortTarget::Create, SortOrder::Descend)
                    .limit(1),
            )
            .await?;
        let Some(kv) = ahead.kvs.first() else { break };
        // Wait for the deletion of the contender just ahead, from just after the read.
        let mut events = client
            .watch(
                Watch::key(kv.key.clone())
                    .start_revision(ahead.revision + 1)
                    .no_put(),
            )
            .await?;
        loop {
            match events.next().await {
                Some(Ok(event)) if event.kind == EventKind::Delete => break,
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error.into()),
                None => {
                    return Err(WaitError::Client(Error::Unavailable {
                        message: "the watch ended".into(),
                        attempts: 0,
                    }))
                }
            }
        }
    }
    // Our own key must still be ours (its lease may have ended while we waited).
    match client.get(ticket.key.clone()).await? {
        Some(kv) if kv.create_revision == ticket.epoch => Ok(()),
        _ => Err(WaitError::KeyLost(ticket.key.clone())),
    }
}

/// Joins the queue and waits for the turn until `deadline` or `cancel` resolves;
/// withdraws when it ends without the turn. Run it in its own task (as
/// [`crate::v1::election`] does) so that the withdrawal also happens when the caller's
/// future is dropped.
pub async fn acquire(
    client: &Client,
    name: &str,
    lease: i64,
    value: &[u8],
    deadline: Instant,
    cancel: impl std::future::Future<Output = ()>,
) -> Result<Ticket, WaitError> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    let ticket = match tokio::time::timeout_at(deadline, enqueue(client, name, lease, value)).await {
        Ok(Ok(ticket)) => ticket,
        Ok(Err(error)) => {
            // Even a failed create may have applied (an idempotent retry that ran out of
            // budget): withdraw whatever this lease has queued.
            return Err(stranded_or(
                withdraw_lease(client, name, lease).await,
                name,
                lease,
                error.into(),
            ));
        }
        Err(_) => {
            let withdrawn = withdraw_lease(client, name, lease).await;
            return Err(stranded_or(withdrawn, name, lease, WaitError::Timeout(timeout)));
        }
    };
    let outcome = tokio::select! {
        // A cancelled waiter must not be left leading without knowing it.
        biased;
        () = cancel => Err(WaitError::Cancelled),
        waited = tokio::time::timeout_at(deadline, wait_turn(client, name, &ticket)) => match waited {
            Ok(result) => result,
            Err(_) => Err(WaitError::Timeout(timeout)),
        },
    };
    match outcome {
        Ok(()) => Ok(ticket),
        Err(error) => match release(client, &ticket.key, ticket.epoch).await {
            Ok(_) => Err(error),
            Err(failed) => Err(WaitError::Stranded {
                key: ticket.key.clone(),
                reason: failed.to_string(),
            }),
        },
    }
}

/// `error`, unless leaving the queue failed: then the caller must hear that its key may
/// still be queued.
fn stranded_or(withdrawn: Result<(), Error>, name: &str, lease: i64, error: WaitError) -> WaitError {
    match withdrawn {
        Ok(()) => error,
        Err(failed) => WaitError::Stranded {
            key: owner_key(name, lease),
            reason: failed.to_string(),
        },
    }
}

/// Deletes `key` if its create revision is still `epoch` (resign, unlock, withdraw).
/// Returns whether it was deleted.
pub async fn release(client: &Client, key: &str, epoch: i64) -> Result<bool, Error> {
    let response = guarded_txn(
        client,
        TxnRequest {
            compare: vec![create_revision_is(key, epoch)],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestDeleteRange(
                    conclave_proto::etcdserverpb::DeleteRangeRequest {
                        key: key.as_bytes().to_vec(),
                        ..Default::default()
                    },
                )),
            }],
            failure: Vec::new(),
        },
    )
    .await?;
    Ok(response.succeeded)
}

/// Removes `lease`'s key from `name`'s queue whatever its revision.
async fn withdraw_lease(client: &Client, name: &str, lease: i64) -> Result<(), Error> {
    client
        .txn()
        .when([Compare::lease(owner_key(name, lease)).eq(LeaseId(lease))])
        .then([Op::Delete(Delete::key(owner_key(name, lease)))])
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_etcds_layout() {
        assert_eq!(owner_key("/e", 0x694d), "/e/694d");
        assert_eq!(owner_key("e", -1), "e/-1");
    }
}
