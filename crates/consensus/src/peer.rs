//! Cluster-internal requests between Conclave members, carried by `RaftService.Forward`:
//! writes forwarded to the leader, read-index requests for linearizable follower reads,
//! joining and promotion.

use std::time::Duration;

use crate::network::PeerChannels;
use crate::node::DEFAULT_GROUP;
use crate::types::{Command, CommandResult, MemberNode};

/// A request one member sends another.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// A member starting with `--initial-cluster-state existing` asks which member it is
    /// (the one with its peer URLs) and records its name and client URLs.
    Identify(MemberNode),
    /// Record this member's current name and URLs in the membership.
    Publish(u64, MemberNode),
    /// A change requested through etcd's Cluster API.
    Membership(MembershipChange),
    /// Keep lease `id` alive (the leader keeps lease countdowns).
    LeaseRenew(i64),
    /// The remaining TTL of lease `id`.
    LeaseTimeToLive(i64),
}

/// A membership change requested through etcd's Cluster API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// MemberAdd: a new member with these peer URLs, voter or learner.
    Add {
        /// The new member's peer URLs.
        peer_urls: Vec<String>,
        /// Whether it joins as a learner.
        is_learner: bool,
    },
    /// MemberRemove.
    Remove(u64),
    /// MemberUpdate: new peer URLs for a member.
    Update {
        /// The member.
        id: u64,
        /// Its new peer URLs.
        peer_urls: Vec<String>,
    },
    /// MemberPromote: learner to voter.
    Promote(u64),
}

/// Why the leader refused a membership change, with etcd's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipRefusal {
    /// No member has this id.
    #[error("{}", conclave_contract::errors::MEMBER_NOT_FOUND)]
    MemberNotFound,
    /// Another member already uses these peer URLs.
    #[error("{}", conclave_contract::errors::PEER_URL_EXISTS)]
    PeerUrlsExist,
    /// Only learners can be promoted.
    #[error("{}", conclave_contract::errors::MEMBER_NOT_LEARNER)]
    NotLearner,
    /// The learner is too far behind the leader to be promoted.
    #[error("{}", conclave_contract::errors::LEARNER_NOT_READY)]
    LearnerNotReady,
    /// The change would leave fewer reachable voters than a quorum.
    #[error("{}", conclave_contract::errors::UNHEALTHY)]
    NotEnoughStarted,
    /// The change failed for another reason.
    #[error("etcdserver: {0}")]
    Failed(String),
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerReply {
    /// The forwarded command was applied on the leader, at this log index.
    Written(CommandResult, u64),
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
    /// A membership change was made (the member id it concerns) or refused.
    Membership(Result<u64, MembershipRefusal>),
    /// A lease's TTL: `remaining` (renewed TTL, or -1/0 when the lease does not exist) and
    /// the TTL it was granted with.
    LeaseTtl {
        /// Remaining or renewed TTL, seconds.
        remaining: i64,
        /// Granted TTL, seconds.
        granted: i64,
    },
}

/// Sends `request` to `node` over the peer transport.
pub(crate) async fn call_peer(
    channels: &PeerChannels,
    node: &MemberNode,
    request: PeerRequest,
    timeout: Duration,
) -> std::result::Result<PeerReply, tonic::Status> {
    let mut client = channels
        .client(node)
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let payload = crate::format::encode::<crate::format::kind::PeerRequest>(&request)
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    let mut req = tonic::Request::new(conclave_proto::raftpb::RaftRequest {
        group_id: DEFAULT_GROUP.0,
        payload,
        cluster_id: channels.cluster_id(),
    });
    req.set_timeout(timeout);
    let reply = client.forward(req).await?;
    crate::format::decode::<crate::format::kind::PeerReply>(&reply.into_inner().payload)
        .map_err(|e| tonic::Status::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_contract::retry::never_sent;

    #[tokio::test]
    async fn a_refused_connection_counts_as_never_sent() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Nothing listens on `port` any more.
        let node = MemberNode {
            name: "gone".into(),
            peer_urls: vec![format!("http://127.0.0.1:{port}")],
            client_urls: Vec::new(),
        };
        let channels = PeerChannels::new(None, None);
        let status = call_peer(&channels, &node, PeerRequest::ReadIndex, Duration::from_secs(2))
            .await
            .expect_err("nobody listens");
        assert!(never_sent(&status), "{status:?}");
    }
}
