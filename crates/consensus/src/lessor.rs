//! Lease expiry, kept by the leader.
//!
//! Leases themselves (id, TTL, attached keys, last checkpoint) are replicated state in the
//! MVCC store. Only their countdown is not: the leader keeps a deadline per lease,
//! extends it on keep-alive, and proposes `LeaseRevoke` when it passes. A new leader
//! starts every countdown from the lease's last checkpointed remaining TTL, or from its
//! full TTL if it has none, so a leader change never shortens a lease:
//! - the leader checkpoints remaining TTLs through Raft every `checkpoint_interval`;
//! - a keep-alive of a lease that has a checkpoint first replicates "full TTL again"
//!   (checkpoint 0) before it is acknowledged, so no checkpoint is older than the last
//!   acknowledged keep-alive.
//!
//! (etcd, without checkpoints, restarts every lease at its full TTL on a new leader.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use conclave_mvcc::{LeaseCheckpoint, LeaseInfo, WriteRequest};
use tokio::time::Instant;

use crate::error::{ConsensusError, Result};
use crate::node::Node;
use crate::types::Command;

/// How often the leader looks for expired leases and new grants.
const TICK: Duration = Duration::from_millis(100);

/// The leader's deadlines. Pure bookkeeping: the caller passes the time.
#[derive(Debug, Default)]
pub struct ExpiryTable {
    deadlines: HashMap<i64, Instant>,
}

fn secs(ttl: i64) -> Duration {
    Duration::from_secs(u64::try_from(ttl.max(0)).unwrap_or(0))
}

impl ExpiryTable {
    /// Starts tracking `lease` (if not yet tracked): its countdown starts at its last
    /// checkpoint, or at its full TTL.
    pub fn track(&mut self, lease: &LeaseInfo, now: Instant) {
        let remaining = if lease.remaining_ttl > 0 {
            lease.remaining_ttl
        } else {
            lease.ttl
        };
        self.deadlines.entry(lease.id).or_insert(now + secs(remaining));
    }

    /// Restarts `id`'s countdown at `ttl` seconds.
    pub fn renew(&mut self, id: i64, ttl: i64, now: Instant) {
        self.deadlines.insert(id, now + secs(ttl));
    }

    /// Stops tracking `id`.
    pub fn forget(&mut self, id: i64) {
        self.deadlines.remove(&id);
    }

    /// Keeps only the given ids.
    pub fn retain(&mut self, live: &std::collections::HashSet<i64>) {
        self.deadlines.retain(|id, _| live.contains(id));
    }

    /// Leases whose deadline has passed.
    pub fn expired(&self, now: Instant) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .deadlines
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Remaining whole seconds of `id` (rounded up), if tracked.
    pub fn remaining(&self, id: i64, now: Instant) -> Option<i64> {
        self.deadlines.get(&id).map(|d| {
            let left = d.saturating_duration_since(now);
            i64::try_from(left.as_millis().div_ceil(1000)).unwrap_or(i64::MAX)
        })
    }

    /// Checkpoints for every tracked lease: its remaining whole seconds.
    pub fn checkpoints(&self, now: Instant) -> Vec<LeaseCheckpoint> {
        let mut out: Vec<LeaseCheckpoint> = self
            .deadlines
            .keys()
            .filter_map(|id| {
                self.remaining(*id, now).map(|remaining_ttl| LeaseCheckpoint {
                    id: *id,
                    remaining_ttl: remaining_ttl.max(1),
                })
            })
            .collect();
        out.sort_by_key(|c| c.id);
        out
    }
}

/// The leader-side lease countdown of one member (idle while it is not the leader).
#[derive(Default)]
pub struct Lessor {
    table: Mutex<ExpiryTable>,
    /// Serialises everything that proposes lease state or answers a keep-alive
    /// (revocations, checkpoints, renewals), so a checkpoint computed before a keep-alive
    /// can never commit after the keep-alive was acknowledged, and a keep-alive never
    /// extends a lease whose revocation is in flight.
    ops: tokio::sync::Mutex<()>,
    /// The term this member led when it loaded the table, if it is leading.
    loaded_term: Mutex<Option<u64>>,
}

impl Lessor {
    fn table(&self) -> std::sync::MutexGuard<'_, ExpiryTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Node {
    /// Runs the lease countdown until the node shuts down.
    pub(crate) async fn run_lessor(&self, checkpoint_interval: Duration) {
        let mut last_checkpoint = Instant::now();
        let mut ticker = tokio::time::interval(TICK);
        loop {
            ticker.tick().await;
            if self.is_stopping() {
                return;
            }
            let status = self.status();
            if !status.is_leader {
                *self
                    .lessor()
                    .loaded_term
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
                continue;
            }
            let loaded = *self
                .lessor()
                .loaded_term
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if loaded != Some(status.term) {
                // New leadership: apply everything committed before trusting the store.
                if self.linearizable_barrier().await.is_err() {
                    continue;
                }
                *self.lessor().table() = ExpiryTable::default();
                *self
                    .lessor()
                    .loaded_term
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(status.term);
                last_checkpoint = Instant::now();
                tracing::info!(
                    term = status.term,
                    "leader: lease countdowns resumed from checkpoints"
                );
            }
            let Ok(leases) = self.store().leases() else {
                continue;
            };
            let now = Instant::now();
            let expired = {
                let mut table = self.lessor().table();
                let live: std::collections::HashSet<i64> = leases.iter().map(|l| l.id).collect();
                table.retain(&live);
                for lease in &leases {
                    table.track(lease, now);
                }
                table.expired(now)
            };
            let _ops = self.lessor().ops.lock().await;
            // Proposals are made only while still leading in the term the table was loaded
            // in, and never forwarded: a deposed leader's stale decisions must not reach the
            // new leader (etcd #15247).
            let still_leading = || {
                let now = self.status();
                now.is_leader && now.term == status.term
            };
            for id in expired {
                if !still_leading() {
                    break;
                }
                tracing::info!(lease = format!("{id:016x}"), "lease expired; revoking");
                match self
                    .propose_as_leader(Command::Write(WriteRequest::LeaseRevoke { id }))
                    .await
                {
                    Ok(_) => self.lessor().table().forget(id),
                    Err(e) => {
                        tracing::warn!(lease = format!("{id:016x}"), error = %e, "revoking an expired lease failed")
                    }
                }
            }
            if now.duration_since(last_checkpoint) >= checkpoint_interval {
                last_checkpoint = now;
                let checkpoints = self.lessor().table().checkpoints(Instant::now());
                if !checkpoints.is_empty() && still_leading() {
                    if let Err(e) = self
                        .propose_as_leader(Command::Write(WriteRequest::LeaseCheckpoint { checkpoints }))
                        .await
                    {
                        tracing::debug!(error = %e, "lease checkpoint failed");
                    }
                }
            }
        }
    }

    /// On the leader: confirms leadership with a quorum (a partitioned ex-leader must not
    /// answer keep-alives) and returns lease `id` as of every write acknowledged so far.
    async fn applied_lease(&self, id: i64) -> Result<Option<LeaseInfo>> {
        self.confirm_leadership().await?;
        self.store().lease(id).map_err(ConsensusError::Rejected)
    }

    /// On the leader: extends lease `id` by its TTL and returns the TTL, or 0 if there is
    /// no such lease (what etcd's keep-alive answers).
    pub(crate) async fn renew_lease_here(&self, id: i64) -> Result<i64> {
        let _ops = self.lessor().ops.lock().await;
        let Some(lease) = self.applied_lease(id).await? else {
            return Ok(0);
        };
        if lease.remaining_ttl > 0 {
            // Replicate "full TTL again" before acknowledging, so a new leader never starts
            // this lease from an older, shorter checkpoint.
            let reset = vec![LeaseCheckpoint { id, remaining_ttl: 0 }];
            self.propose_as_leader(Command::Write(WriteRequest::LeaseCheckpoint {
                checkpoints: reset,
            }))
            .await?;
        }
        self.lessor().table().renew(id, lease.ttl, Instant::now());
        Ok(lease.ttl)
    }

    /// On the leader: `(remaining, granted)` TTL of lease `id`, remaining -1 if none.
    pub(crate) async fn lease_ttl_here(&self, id: i64) -> Result<(i64, i64)> {
        let Some(lease) = self.applied_lease(id).await? else {
            return Ok((-1, 0));
        };
        let now = Instant::now();
        let mut table = self.lessor().table();
        table.track(&lease, now);
        Ok((table.remaining(id, now).unwrap_or(lease.ttl), lease.ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(id: i64, ttl: i64, remaining_ttl: i64) -> LeaseInfo {
        LeaseInfo {
            id,
            ttl,
            remaining_ttl,
            keys: Vec::new(),
        }
    }

    #[test]
    fn countdowns_start_from_checkpoints_and_renew_to_full_ttl() {
        let now = Instant::now();
        let mut table = ExpiryTable::default();
        table.track(&lease(1, 10, 0), now);
        table.track(&lease(2, 10, 3), now);
        assert_eq!(table.remaining(1, now), Some(10));
        assert_eq!(table.remaining(2, now), Some(3));
        // Tracking again does not reset a running countdown.
        table.track(&lease(2, 10, 0), now + Duration::from_secs(1));
        assert_eq!(table.remaining(2, now + Duration::from_secs(1)), Some(2));
        assert_eq!(table.expired(now + Duration::from_secs(3)), vec![2]);
        table.renew(2, 10, now + Duration::from_secs(3));
        assert_eq!(table.expired(now + Duration::from_secs(10)), vec![1]);
        assert_eq!(table.remaining(2, now + Duration::from_millis(3500)), Some(10));
    }

    #[test]
    fn checkpoints_report_remaining_seconds_and_never_zero() {
        let now = Instant::now();
        let mut table = ExpiryTable::default();
        table.track(&lease(5, 10, 0), now);
        table.track(&lease(4, 2, 0), now);
        let later = now + Duration::from_millis(2500);
        let checkpoints = table.checkpoints(later);
        assert_eq!(
            checkpoints,
            vec![
                LeaseCheckpoint {
                    id: 4,
                    remaining_ttl: 1
                },
                LeaseCheckpoint {
                    id: 5,
                    remaining_ttl: 8
                }
            ]
        );
        table.forget(5);
        assert_eq!(table.remaining(5, later), None);
    }
}

/// A lease's countdown as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTtl {
    /// Remaining whole seconds; -1 when the lease does not exist.
    pub remaining: i64,
    /// The TTL it was granted with.
    pub granted: i64,
}
