//! Member-level operations behind etcd's Maintenance API: leadership transfer and
//! on-demand snapshots.

use std::fs::File;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;

use crate::error::{ConsensusError, Result};
use crate::node::Node;
use crate::types::SnapshotMeta;

impl Node {
    /// Hands leadership to voter `target` (etcd's MoveLeader): only the leader can, and
    /// only to another voter. Returns once `target` leads.
    pub async fn move_leader(&self, target: u64) -> Result<()> {
        if !self.raft().is_leader() {
            return Err(ConsensusError::NotLeader);
        }
        if target == self.member_id() {
            return Ok(());
        }
        if !self.raft().voter_ids().any(|v| v == target) {
            return Err(ConsensusError::BadTransferee);
        }
        self.raft()
            .trigger()
            .transfer_leader(target)
            .await
            .map_err(|e| ConsensusError::Fatal(e.to_string()))?;
        self.raft()
            .wait(Some(self.election_timeout() * 4))
            .metrics(|m| m.current_leader == Some(target), "leadership moved")
            .await
            .map(|_| ())
            .map_err(|_| ConsensusError::Timeout)
    }

    /// A snapshot of this member's state machine at least as new as everything applied
    /// when called, opened for reading (the open file stays readable even if a newer
    /// snapshot replaces it).
    pub async fn fresh_snapshot(&self) -> Result<(SnapshotMeta, File, u64)> {
        let applied = self.status().applied_index;
        let fresh = |m: &openraft::RaftMetrics<crate::types::TypeConfig>| {
            m.snapshot.as_ref().is_some_and(|s| s.index >= applied)
        };
        if !fresh(&self.raft().metrics().borrow_watched()) {
            self.raft()
                .trigger()
                .snapshot()
                .await
                .map_err(|e| ConsensusError::Fatal(e.to_string()))?;
            self.raft()
                .wait(Some(Duration::from_secs(60)))
                .metrics(|m| fresh(m), "snapshot built")
                .await
                .map_err(|_| ConsensusError::Timeout)?;
        }
        for _ in 0..3 {
            let snapshot = self
                .raft()
                .get_snapshot()
                .await
                .map_err(|e| ConsensusError::Fatal(e.to_string()))?
                .ok_or_else(|| ConsensusError::Storage("no snapshot after building one".into()))?;
            match File::open(&snapshot.snapshot.path) {
                Ok(file) => {
                    let len = file.metadata()?.len();
                    return Ok((snapshot.meta, file, len));
                }
                // Replaced by a newer one meanwhile: take that.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ConsensusError::Storage(
            "snapshots kept being replaced while opening one".into(),
        ))
    }
}
