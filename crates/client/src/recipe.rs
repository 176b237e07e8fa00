//! The queue that elections and locks share, in etcd's key layout so that Conclave's
//! and etcd's Election/Lock services, `etcdctl elect`/`lock` and this SDK interoperate:
//! each contender owns the key `<name>/<lease id in hex>`, attached to its lease; the
//! contender whose key has the lowest create revision holds the election or lock, and that
//! create revision is its fencing epoch (it only grows: a later holder's key is created
//! later).

use futures::StreamExt;

use crate::error::{Error, Result};
use crate::kv::{Delete, Get, KeyValue, Put, SortOrder, SortTarget};
use crate::lease::{Lease, LeaseId};
use crate::txn::{Compare, Op, Txn};
use crate::watch::{EventKind, Watch};
use crate::Client;

/// A contender's place in a queue.
#[derive(Clone, Debug)]
pub(crate) struct Ticket {
    /// The contender's key.
    pub key: String,
    /// Its create revision: the position in the queue, and the epoch once first.
    pub revision: i64,
}

/// The queue prefix of `name` (etcd adds a `/`).
pub(crate) fn queue_prefix(name: &str) -> String {
    format!("{name}/")
}

/// The key of `lease`'s place in the queue under `prefix`.
fn key_of(prefix: &str, lease: LeaseId) -> String {
    format!("{prefix}{:x}", lease.0)
}

/// Joins the queue under `prefix` and waits to be first — or, without `wait`, only checks
/// whether it is first (`None` if not). Fails as soon as `lease` is lost. A contender that
/// gives up for any reason — an error, a lost lease, a caller that dropped the future —
/// leaves the queue, so nobody waits behind an entry no one owns.
pub(crate) async fn take_turn(
    client: &Client,
    prefix: &str,
    lease: &Lease,
    value: &[u8],
    wait: bool,
) -> Result<Option<Ticket>> {
    let mut withdraw = Withdraw {
        client: client.clone(),
        key: key_of(prefix, lease.id()),
        lease: lease.id(),
        revision: None,
        armed: true,
    };
    let ticket = tokio::select! {
        ticket = enqueue(client, prefix, lease, value) => ticket?,
        lost = lease.lost() => return Err(lost),
    };
    withdraw.revision = Some(ticket.revision);
    let first = if wait {
        tokio::select! {
            waited = wait_turn(client, prefix, &ticket) => waited.map(|()| true),
            lost = lease.lost() => Err(lost),
        }
    } else {
        ahead_of(client, prefix, &ticket)
            .await
            .map(|ahead| ahead.is_none())
    };
    if first? {
        withdraw.armed = false;
        Ok(Some(ticket))
    } else {
        Ok(None)
    }
}

/// Removes a queue entry when dropped while armed (in the background: `Drop` cannot wait).
/// Before the entry's create revision is known it matches the entry by its lease.
struct Withdraw {
    client: Client,
    key: String,
    lease: LeaseId,
    revision: Option<i64>,
    armed: bool,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let client = self.client.clone();
        let key = self.key.clone();
        let guard = match self.revision {
            Some(revision) => Compare::create_revision(key.clone()).eq(revision),
            None => Compare::lease(key.clone()).eq(self.lease),
        };
        runtime.spawn(async move {
            let withdrawn = client
                .idempotent_txn(Txn::new().when([guard]).then([Op::Delete(Delete::key(key))]))
                .await;
            if let Err(error) = withdrawn {
                tracing::debug!(%error, "could not leave the queue; the lease's end will");
            }
        });
    }
}

/// Joins the queue under `prefix` with `value`, or finds this lease's existing place.
/// Safe to retry: the key is unique to the lease and only created if absent.
async fn enqueue(client: &Client, prefix: &str, lease: &Lease, value: &[u8]) -> Result<Ticket> {
    let key = key_of(prefix, lease.id());
    let response = client
        .idempotent_txn(
            Txn::new()
                .when([Compare::create_revision(key.clone()).eq(0)])
                .then([Op::Put(Put::new(key.clone(), value.to_vec()).lease(lease.id()))])
                .otherwise([Op::get(key.clone())]),
        )
        .await?;
    if response.succeeded {
        return Ok(Ticket {
            key,
            revision: response.revision,
        });
    }
    let existing = response
        .first_get()
        .and_then(|r| r.kvs.first())
        .ok_or_else(|| Error::LeadershipLost {
            key: key.clone(),
            reason: "the key vanished while joining the queue".into(),
        })?;
    let ticket = Ticket {
        key: key.clone(),
        revision: existing.create_revision,
    };
    if existing.value != value {
        // Re-joining with another value: update it, but only our own incarnation.
        client
            .idempotent_txn(
                Txn::new()
                    .when([Compare::create_revision(key.clone()).eq(ticket.revision)])
                    .then([Op::Put(Put::new(key, value.to_vec()).lease(lease.id()))]),
            )
            .await?;
    }
    Ok(ticket)
}

/// The contender just ahead of `ticket` (the newest key created before it), if any.
async fn ahead_of(client: &Client, prefix: &str, ticket: &Ticket) -> Result<Option<(KeyValue, i64)>> {
    let response = client
        .range(
            Get::prefix(prefix)
                .max_create_revision(ticket.revision - 1)
                .sort(SortTarget::Create, SortOrder::Descend)
                .limit(1),
        )
        .await?;
    Ok(response.kvs.into_iter().next().map(|kv| (kv, response.revision)))
}

/// Waits until `ticket` is first in its queue: until every key created before it is gone.
async fn wait_turn(client: &Client, prefix: &str, ticket: &Ticket) -> Result<()> {
    while let Some((ahead, read_at)) = ahead_of(client, prefix, ticket).await? {
        wait_deleted(client, &ahead.key, read_at + 1).await?;
    }
    // Our own key must still exist (its lease may have ended while we waited).
    match client.get(ticket.key.clone()).await? {
        Some(kv) if kv.create_revision == ticket.revision => Ok(()),
        _ => Err(Error::LeadershipLost {
            key: ticket.key.clone(),
            reason: "the key was deleted while waiting in the queue".into(),
        }),
    }
}

/// Waits for a delete of `key` at or after `from_revision`.
pub(crate) async fn wait_deleted(client: &Client, key: &[u8], from_revision: i64) -> Result<()> {
    let mut events = client
        .watch(Watch::key(key.to_vec()).start_revision(from_revision).no_put())
        .await?;
    while let Some(event) = events.next().await {
        if event?.kind == EventKind::Delete {
            return Ok(());
        }
    }
    Err(Error::Unavailable {
        message: "the watch ended".into(),
        attempts: 0,
    })
}

/// Resolves when `ticket`'s key is deleted or re-created (the holder lost its place).
pub(crate) async fn key_lost(client: &Client, ticket: &Ticket) -> Error {
    let lost = |reason: &str| Error::LeadershipLost {
        key: ticket.key.clone(),
        reason: reason.into(),
    };
    let mut failures = 0u32;
    loop {
        // Read the key and watch from just after the read, so no change is missed.
        let read = client.range(Get::key(ticket.key.clone())).await;
        let (current, revision) = match read {
            Ok(r) => (r.kvs.into_iter().next(), r.revision),
            Err(_) => {
                failures += 1;
                tokio::time::sleep(crate::transport::backoff(client.options(), failures)).await;
                continue;
            }
        };
        match current {
            Some(kv) if kv.create_revision == ticket.revision => {}
            _ => return lost("the key was deleted"),
        }
        match wait_deleted(client, ticket.key.as_bytes(), revision + 1).await {
            Ok(()) => return lost("the key was deleted"),
            Err(e @ Error::Compacted { .. }) | Err(e @ Error::Unavailable { .. }) => {
                tracing::debug!(error = %e, "re-reading the leader key");
            }
            Err(e) => return e,
        }
    }
}

/// Leaves the queue: deletes `ticket`'s key if it is still this incarnation.
pub(crate) async fn leave(client: &Client, ticket: &Ticket) -> Result<bool> {
    let response = client
        .idempotent_txn(
            Txn::new()
                .when([Compare::create_revision(ticket.key.clone()).eq(ticket.revision)])
                .then([Op::Delete(Delete::key(ticket.key.clone()))]),
        )
        .await?;
    Ok(response.succeeded)
}
