//! The contender queue that elections and locks share, for callers that manage their
//! leases themselves (the HTTP gateway does; most applications use [`crate::election`]
//! and [`crate::lock`], which are built on it).
//!
//! The layout and rules are `conclave_contract::queue`, the same module the server's
//! Election and Lock services use, so every participant — this SDK, the gateway, the
//! services, `etcdctl elect`/`lock`, Go's `clientv3/concurrency` — sees one queue: each
//! contender owns the key `<name>/<lease id in hex>`, attached to its lease; the contender
//! whose key has the lowest create revision holds; that create revision is its fencing
//! epoch (a later holder's key is created later, so epochs only grow).

use conclave_contract::queue;
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::kv::{Get, KeyValue};
use crate::lease::{Lease, LeaseId};
use crate::transport::Idempotency;
use crate::watch::{EventKind, Watch};
use crate::Client;

/// A contender's place in a queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// The contender's key, `<name>/<lease hex>`.
    pub key: String,
    /// The key's create revision: the position in the queue, and the fencing epoch once
    /// first.
    pub create_revision: i64,
}

impl Ticket {
    /// Whether `current` (the key as read now) is still this place's incarnation.
    pub fn is_current(&self, current: Option<&KeyValue>) -> bool {
        current.is_some_and(|kv| kv.create_revision == self.create_revision)
    }
}

/// The queue of the election or lock `name`; see the module docs.
#[derive(Clone, Debug)]
pub struct Queue {
    client: Client,
    name: String,
    prefix: Vec<u8>,
}

impl Client {
    /// The contender queue of the election or lock called `name` (keys under `name/`).
    pub fn queue(&self, name: impl Into<String>) -> Queue {
        let name = name.into();
        Queue {
            client: self.clone(),
            prefix: queue::prefix(name.as_bytes()),
            name,
        }
    }
}

impl Queue {
    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key `lease` holds its place under.
    pub fn key_of(&self, lease: LeaseId) -> String {
        String::from_utf8_lossy(&queue::owner_key(self.name.as_bytes(), lease.0)).into_owned()
    }

    /// Whether `key` is a contender key of this queue.
    pub fn owns(&self, key: &str) -> bool {
        queue::belongs_to(self.name.as_bytes(), key.as_bytes())
    }

    /// Joins the queue with `value` under `lease`, or finds the place `lease` already
    /// has (then sets its value to `value` if it differs, only on that incarnation). Safe
    /// to retry: the key is unique to the lease and created only if absent. Fails with
    /// [`Error::LeaseNotFound`] if the lease does not exist.
    pub async fn join(&self, lease: LeaseId, value: &[u8]) -> Result<Ticket> {
        let key = queue::owner_key(self.name.as_bytes(), lease.0);
        let response = self
            .client
            .raw_txn(queue::join(&key, value, lease.0), Idempotency::Idempotent)
            .await?;
        let place = queue::place(&key, value, &response).map_err(|e| Error::LeadershipLost {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason: e.to_string(),
        })?;
        if !place.created && place.value != value {
            self.client
                .raw_txn(
                    queue::set_value(&key, place.create_revision, value, lease.0),
                    Idempotency::Idempotent,
                )
                .await?;
        }
        Ok(Ticket {
            key: String::from_utf8_lossy(&key).into_owned(),
            create_revision: place.create_revision,
        })
    }

    /// The contender just ahead of `ticket` (the newest key created before it) and the
    /// revision it was read at, if any.
    async fn ahead(&self, ticket: &Ticket) -> Result<Option<(KeyValue, i64)>> {
        let Some(request) = queue::ahead(&self.prefix, ticket.create_revision) else {
            return Ok(None);
        };
        let response = self.client.range(Get { request }).await?;
        Ok(response.kvs.into_iter().next().map(|kv| (kv, response.revision)))
    }

    /// Whether `ticket` is first in the queue now.
    pub async fn is_first(&self, ticket: &Ticket) -> Result<bool> {
        Ok(self.ahead(ticket).await?.is_none())
    }

    /// Waits until `ticket` is first: until every key created before it is gone. Fails
    /// with [`Error::LeadershipLost`] if its own key is gone by then (its lease ended).
    pub async fn wait_first(&self, ticket: &Ticket) -> Result<()> {
        while let Some((ahead, read_at)) = self.ahead(ticket).await? {
            wait_deleted(&self.client, &ahead.key, read_at + 1).await?;
        }
        let current = self.client.range(Get::key(ticket.key.clone())).await?;
        if ticket.is_current(current.kvs.first()) {
            Ok(())
        } else {
            Err(Error::LeadershipLost {
                key: ticket.key.clone(),
                reason: "the key was deleted while waiting in the queue".into(),
            })
        }
    }

    /// The holder (leader) now: the oldest key of the queue, if any.
    pub async fn holder(&self) -> Result<Option<KeyValue>> {
        let response = self
            .client
            .range(Get {
                request: queue::holder(&self.prefix),
            })
            .await?;
        Ok(response.kvs.into_iter().next())
    }

    /// Leaves the queue: deletes `ticket`'s key if it is still that incarnation (resign,
    /// unlock). Returns whether it was deleted (false: it was already gone or replaced).
    pub async fn release(&self, ticket: &Ticket) -> Result<bool> {
        let response = self
            .client
            .raw_txn(
                queue::release(ticket.key.as_bytes(), ticket.create_revision),
                Idempotency::Idempotent,
            )
            .await?;
        Ok(response.succeeded)
    }

    /// Removes whatever place `lease` has in the queue, whatever its revision (for a
    /// join whose answer was lost).
    pub async fn withdraw(&self, lease: LeaseId) -> Result<()> {
        let key = queue::owner_key(self.name.as_bytes(), lease.0);
        self.client
            .raw_txn(queue::withdraw_lease(&key, lease.0), Idempotency::Idempotent)
            .await
            .map(|_| ())
    }

    /// Resolves when `ticket`'s key is deleted or re-created (its holder lost its place).
    pub async fn lost(&self, ticket: &Ticket) -> Error {
        let lost = |reason: &str| Error::LeadershipLost {
            key: ticket.key.clone(),
            reason: reason.into(),
        };
        let mut failures = 0u32;
        loop {
            // Read the key and watch from just after the read, so no change is missed.
            let (current, revision) = match self.client.range(Get::key(ticket.key.clone())).await {
                Ok(r) => (r.kvs.into_iter().next(), r.revision),
                Err(_) => {
                    failures += 1;
                    tokio::time::sleep(crate::transport::backoff(self.client.options(), failures)).await;
                    continue;
                }
            };
            if !ticket.is_current(current.as_ref()) {
                return lost("the key was deleted");
            }
            match wait_deleted(&self.client, ticket.key.as_bytes(), revision + 1).await {
                Ok(()) => return lost("the key was deleted"),
                Err(e @ Error::Compacted { .. }) | Err(e @ Error::Unavailable { .. }) => {
                    tracing::debug!(error = %e, "re-reading the contender key");
                }
                Err(e) => return e,
            }
        }
    }

    /// Joins the queue under `lease` and waits to be first — or, without `wait`, only
    /// checks whether it is first (`None` if not). Fails as soon as `lease` is lost. A
    /// contender that gives up for any reason — an error, a lost lease, a caller that
    /// dropped the future — leaves the queue, so nobody waits behind an entry no one owns.
    pub(crate) async fn take_turn(&self, lease: &Lease, value: &[u8], wait: bool) -> Result<Option<Ticket>> {
        let mut withdraw = Withdraw {
            queue: self.clone(),
            lease: lease.id(),
            ticket: None,
            armed: true,
        };
        let ticket = tokio::select! {
            ticket = self.join(lease.id(), value) => ticket?,
            lost = lease.lost() => return Err(lost),
        };
        withdraw.ticket = Some(ticket.clone());
        let first = if wait {
            tokio::select! {
                waited = self.wait_first(&ticket) => waited.map(|()| true),
                lost = lease.lost() => Err(lost),
            }
        } else {
            self.is_first(&ticket).await
        };
        if first? {
            withdraw.armed = false;
            Ok(Some(ticket))
        } else {
            Ok(None)
        }
    }
}

/// Removes a queue entry when dropped while armed (in the background: `Drop` cannot wait).
/// Before the entry's create revision is known it matches the entry by its lease.
struct Withdraw {
    queue: Queue,
    lease: LeaseId,
    ticket: Option<Ticket>,
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
        let queue = self.queue.clone();
        let lease = self.lease;
        let ticket = self.ticket.take();
        runtime.spawn(async move {
            let withdrawn = match ticket {
                Some(ticket) => queue.release(&ticket).await.map(drop),
                None => queue.withdraw(lease).await,
            };
            if let Err(error) = withdrawn {
                tracing::debug!(%error, "could not leave the queue; the lease's end will");
            }
        });
    }
}

/// Waits for a delete of `key` at or after `from_revision`.
async fn wait_deleted(client: &Client, key: &[u8], from_revision: i64) -> Result<()> {
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
