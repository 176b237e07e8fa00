//! Elections and locks for HTTP clients: the SDK's contender queue
//! ([`conclave_client::Queue`], etcd's key layout, shared with the server and the SDK's
//! own elections and locks) under a deadline and a cancellation.
//!
//! The gateway keeps no session: an HTTP client grants a lease, keeps it alive with
//! `POST /v1/leases/{id}/keepalive`, and names it when it campaigns or locks. A
//! contender owns the key `<name>/<lease id in hex>` attached to that lease; the
//! contender whose key has the lowest create revision leads (holds the lock), and that
//! create revision is its fencing **epoch** — strictly higher for every later holder.
//!
//! A wait is bounded by the caller's timeout. When it ends without the turn (timeout,
//! error, the gateway draining) the contender is withdrawn from the queue, as etcd's
//! Campaign withdraws on cancel, so no abandoned key blocks those behind it.

use std::time::Duration;

use conclave_client::{Client, Error, LeaseId, Queue, Ticket};
use tokio::time::Instant;

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

/// Joins `name`'s queue with `lease` and `value` and waits for the turn until `deadline`
/// or `cancel` resolves; withdraws when it ends without the turn. Run it in its own task
/// (as [`crate::v1::election`] does) so that the withdrawal also happens when the
/// caller's future is dropped.
pub async fn acquire(
    client: &Client,
    name: &str,
    lease: i64,
    value: &[u8],
    deadline: Instant,
    cancel: impl std::future::Future<Output = ()>,
) -> Result<Ticket, WaitError> {
    let queue = client.queue(name);
    let lease = LeaseId(lease);
    let timeout = deadline.saturating_duration_since(Instant::now());
    let ticket = match tokio::time::timeout_at(deadline, queue.join(lease, value)).await {
        Ok(Ok(ticket)) => ticket,
        // Even a failed join may have applied (an idempotent retry that ran out of
        // budget): withdraw whatever this lease has queued.
        Ok(Err(error)) => {
            return Err(stranded_or(
                &queue,
                lease,
                queue.withdraw(lease).await,
                error.into(),
            ))
        }
        Err(_) => {
            let withdrawn = queue.withdraw(lease).await;
            return Err(stranded_or(&queue, lease, withdrawn, WaitError::Timeout(timeout)));
        }
    };
    let outcome = tokio::select! {
        // A cancelled waiter must not be left leading without knowing it.
        biased;
        () = cancel => Err(WaitError::Cancelled),
        waited = tokio::time::timeout_at(deadline, queue.wait_first(&ticket)) => match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Error::LeadershipLost { key, .. })) => Err(WaitError::KeyLost(key)),
            Ok(Err(error)) => Err(error.into()),
            Err(_) => Err(WaitError::Timeout(timeout)),
        },
    };
    match outcome {
        Ok(()) => Ok(ticket),
        Err(error) => match queue.release(&ticket).await {
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
fn stranded_or(queue: &Queue, lease: LeaseId, withdrawn: Result<(), Error>, error: WaitError) -> WaitError {
    match withdrawn {
        Ok(()) => error,
        Err(failed) => WaitError::Stranded {
            key: queue.key_of(lease),
            reason: failed.to_string(),
        },
    }
}

/// Deletes `key` of `name`'s queue if its create revision is still `epoch` (resign,
/// unlock). Returns whether it was deleted.
pub async fn release(client: &Client, name: &str, key: &str, epoch: i64) -> Result<bool, Error> {
    client
        .queue(name)
        .release(&Ticket {
            key: key.to_string(),
            create_revision: epoch,
        })
        .await
}
