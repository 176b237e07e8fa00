//! Distributed locks with a fencing epoch, in etcd's key layout (interoperable with
//! `etcdctl lock` and the Lock service).
//!
//! ```no_run
//! # async fn demo(client: conclave_client::Client) -> conclave_client::Result<()> {
//! use conclave_client::Op;
//! let lock = client.lock("/locks/reindex").await?;
//! // Writes guarded by the lock are refused by the store once the lock is lost.
//! client.txn().when([lock.guard()]).then([Op::put("/index/state", "rebuilding")]).await?;
//! lock.unlock().await?;
//! # Ok(()) }
//! ```

use crate::election::Epoch;
use crate::error::{Error, Result};
use crate::lease::Lease;
use crate::queue::Ticket;
use crate::txn::Compare;
use crate::Client;

/// A held lock. Unlock it with [`LockGuard::unlock`]; dropping it releases the lock in
/// the background (best effort — the lease's expiry releases it otherwise).
#[derive(Debug)]
pub struct LockGuard {
    client: Client,
    name: String,
    ticket: Ticket,
    lease: Lease,
    /// Whether the lease was created for this lock (and is revoked with it).
    owns_lease: bool,
    released: bool,
}

impl Client {
    /// Acquires the lock `name`, waiting for earlier holders, under a new session lease
    /// (TTL [`ClientOptions::session_ttl`](crate::ClientOptions::session_ttl)) that is
    /// revoked on unlock.
    pub async fn lock(&self, name: &str) -> Result<LockGuard> {
        let lease = self.grant_lease(self.options().session_ttl).await?;
        let acquired = self.acquire(name, &lease, true, true).await;
        if acquired.is_err() {
            let _ = lease.revoke().await;
        }
        acquired
    }

    /// Acquires the lock `name` under `lease`, waiting for earlier holders. Fails with
    /// [`Error::LeaseLost`] if the lease is lost while waiting.
    pub async fn lock_with_lease(&self, name: &str, lease: &Lease) -> Result<LockGuard> {
        self.acquire(name, lease, false, true).await
    }

    /// Acquires the lock `name` only if nobody holds or waits for it; otherwise fails
    /// with [`Error::Locked`] without waiting.
    pub async fn try_lock(&self, name: &str) -> Result<LockGuard> {
        let lease = self.grant_lease(self.options().session_ttl).await?;
        let acquired = self.acquire(name, &lease, true, false).await;
        if acquired.is_err() {
            let _ = lease.revoke().await;
        }
        acquired
    }

    async fn acquire(&self, name: &str, lease: &Lease, owns_lease: bool, wait: bool) -> Result<LockGuard> {
        let ticket = self
            .queue(name)
            .take_turn(lease, b"", wait)
            .await?
            .ok_or_else(|| Error::Locked {
                name: name.to_string(),
            })?;
        Ok(LockGuard {
            client: self.clone(),
            name: name.to_string(),
            ticket,
            lease: lease.clone(),
            owns_lease,
            released: false,
        })
    }
}

impl LockGuard {
    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The lock key (etcd's `name/<lease hex>`).
    pub fn key(&self) -> &str {
        &self.ticket.key
    }

    /// The fencing epoch: higher for every later holder of this lock.
    pub fn epoch(&self) -> Epoch {
        Epoch(self.ticket.create_revision)
    }

    /// The lease the lock is held under.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// The compare that holds only while this lock is held; put it in a txn's `when`.
    pub fn guard(&self) -> Compare {
        Compare::fencing(&self.ticket)
    }

    /// Resolves when the lock is lost (its lease lost, or its key deleted).
    pub async fn lost(&self) -> Error {
        let queue = self.client.queue(self.name.clone());
        tokio::select! {
            lost = self.lease.lost() => lost,
            lost = queue.lost(&self.ticket) => lost,
        }
    }

    /// Releases the lock (and revokes its session lease, if it created one).
    pub async fn unlock(mut self) -> Result<()> {
        self.released = true;
        let left = self.client.queue(self.name.clone()).release(&self.ticket).await;
        if self.owns_lease {
            let _ = self.lease.revoke().await;
        }
        left.map(|_| ())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let client = self.client.clone();
        let ticket = self.ticket.clone();
        let queue = client.queue(self.name.clone());
        let lease = self.owns_lease.then(|| self.lease.clone());
        runtime.spawn(async move {
            let _ = queue.release(&ticket).await;
            if let Some(lease) = lease {
                let _ = lease.revoke().await;
            }
        });
    }
}
