//! Cluster-internal requests between Conclave members, carried by `RaftService.Forward`:
//! writes forwarded to the leader, read-index requests for linearizable follower reads,
//! joining and promotion.

use serde::{Deserialize, Serialize};

use crate::types::{Command, CommandResult, MemberNode};

/// A request one member sends another.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Propose this command (the receiver must be the leader).
    Write(Command),
    /// Confirm leadership with a quorum and return the log index a linearizable read must
    /// wait for.
    ReadIndex,
    /// Add this new member as a learner; answer with its assigned identity.
    Join(MemberNode),
    /// Promote this learner to voter if it has caught up.
    Promote(u64),
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PeerReply {
    /// The forwarded command was applied.
    Written(CommandResult),
    /// Reads must wait until this log index is applied.
    ReadIndex(u64),
    /// The joining member's identity in the cluster.
    Joined {
        /// Member id assigned to the new member.
        member_id: u64,
        /// The cluster's id.
        cluster_id: u64,
        /// The cluster's token (`--initial-cluster-token`).
        cluster_token: String,
    },
    /// Whether the learner is now a voter (false: not caught up yet, ask again).
    Promoted(bool),
    /// The receiver is not the leader; try this one. The request was not executed.
    NotLeader(Option<(u64, MemberNode)>),
    /// The request failed; the outcome of a write is unknown.
    Failed(String),
}
