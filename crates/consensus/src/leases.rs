//! The lease API of a member: grant, revoke, keep alive, time to live. Grants and
//! revocations are Raft writes; keep-alives and TTL queries go to the leader, which keeps
//! the countdowns (see [`crate::lessor`]).

use std::sync::atomic::{AtomicU64, Ordering};

use conclave_mvcc::{MvccError, WriteRequest, WriteResponse};

use crate::error::{ConsensusError, Result};
use crate::identity::stable_id;
use crate::lessor::LeaseTtl;
use crate::node::Node;
use crate::peer::{PeerReply, PeerRequest};
use crate::types::Command;

static GRANT_SEQ: AtomicU64 = AtomicU64::new(0);

impl Node {
    /// The smallest TTL a lease gets (etcd: 1.5 election timeouts, rounded up to a second).
    pub fn min_lease_ttl(&self) -> i64 {
        let millis = self.election_timeout().as_millis() as i64 * 3 / 2;
        ((millis + 999) / 1000).max(1)
    }

    /// A fresh positive lease id: member id, time and a counter, hashed.
    fn pick_lease_id(&self) -> i64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seq = GRANT_SEQ.fetch_add(1, Ordering::Relaxed);
        let id = stable_id(&[
            &self.member_id().to_le_bytes(),
            &nanos.to_le_bytes(),
            &seq.to_le_bytes(),
        ]);
        ((id >> 1) as i64).max(1)
    }

    /// Grants a lease (`id` 0: the server picks one) with at least [`Node::min_lease_ttl`];
    /// returns its id and TTL.
    pub async fn lease_grant(&self, id: i64, ttl: i64) -> Result<(i64, i64)> {
        let ttl = ttl.max(self.min_lease_ttl());
        let mut attempts = 0;
        loop {
            let chosen = if id == 0 { self.pick_lease_id() } else { id };
            conclave_mvcc::validate_lease_grant(chosen, ttl)?;
            let result = self
                .write(Command::Write(WriteRequest::LeaseGrant { id: chosen, ttl }))
                .await?;
            match result.outcome {
                Ok(WriteResponse::LeaseGrant { id, ttl }) => return Ok((id, ttl)),
                Err(MvccError::LeaseExists) if id == 0 && attempts < 3 => attempts += 1,
                Err(e) => return Err(e.into()),
                Ok(other) => return Err(ConsensusError::Storage(format!("lease grant answered {other:?}"))),
            }
        }
    }

    /// Revokes a lease, deleting its keys in one revision; returns that revision.
    pub async fn lease_revoke(&self, id: i64) -> Result<i64> {
        let result = self
            .write(Command::Write(WriteRequest::LeaseRevoke { id }))
            .await?;
        result.outcome?;
        Ok(result.revision)
    }

    /// Keeps a lease alive; returns its TTL, or 0 if it does not exist.
    pub async fn lease_keep_alive(&self, id: i64) -> Result<i64> {
        self.ask_leader_for_lease(PeerRequest::LeaseRenew(id))
            .await
            .map(|ttl| ttl.remaining)
    }

    /// A lease's remaining and granted TTL as the leader sees it (remaining -1: no such
    /// lease).
    pub async fn lease_time_to_live(&self, id: i64) -> Result<LeaseTtl> {
        self.ask_leader_for_lease(PeerRequest::LeaseTimeToLive(id)).await
    }

    /// Sends a lease request to the leader, following leader changes until the request
    /// timeout: both requests are idempotent, so retrying them is safe.
    async fn ask_leader_for_lease(&self, request: PeerRequest) -> Result<LeaseTtl> {
        let deadline = tokio::time::Instant::now() + self.request_timeout();
        loop {
            let reply = if self.raft().is_leader() {
                Ok(self.handle_lease_request(request.clone()).await)
            } else {
                // (A follower that believes it leads answers NotLeader after failing to
                // confirm it; the loop then asks whoever leads now.)
                self.ask_leader(request.clone()).await
            };
            let error = match reply {
                Ok(PeerReply::LeaseTtl { remaining, granted }) => return Ok(LeaseTtl { remaining, granted }),
                Ok(PeerReply::Failed(why)) => ConsensusError::Unreachable(why),
                Ok(PeerReply::NotLeader(_)) => ConsensusError::NoLeader,
                Ok(other) => return Err(ConsensusError::Unreachable(format!("unexpected reply {other:?}"))),
                Err(
                    e @ (ConsensusError::NoLeader | ConsensusError::Unreachable(_) | ConsensusError::Timeout),
                ) => e,
                Err(e) => return Err(e),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(error);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Serves a lease request forwarded by another member.
    pub(crate) async fn handle_lease_request(&self, request: PeerRequest) -> PeerReply {
        if !self.raft().is_leader() {
            return self.not_leader();
        }
        let result = match request {
            PeerRequest::LeaseRenew(id) => self.renew_lease_here(id).await.map(|ttl| (ttl, ttl)),
            PeerRequest::LeaseTimeToLive(id) => self.lease_ttl_here(id).await,
            other => return PeerReply::Failed(format!("not a lease request: {other:?}")),
        };
        match result {
            Ok((remaining, granted)) => PeerReply::LeaseTtl { remaining, granted },
            Err(ConsensusError::NotLeader) => self.not_leader(),
            Err(e) => PeerReply::Failed(e.to_string()),
        }
    }
}
