//! FROZEN: layout version 1 of the cluster-internal requests carried by
//! `RaftService.Forward` (`peer::PeerRequest`) and their answers (`peer::PeerReply`). Do
//! not add, remove or reorder fields or variants here (postcard encodes their order); a
//! new layout is a `v2` module with an upgrade from these types. Only the conversions at
//! the bottom follow the in-memory types.

use serde::{Deserialize, Serialize};

use super::command::Command;
use super::outcome::CommandResult;
use super::raft::MemberNode;
use crate::peer;

/// `peer::PeerRequest`.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest<'a> {
    /// 0
    Write(Command<'a>),
    /// 1
    ReadIndex,
    /// 2
    Join(MemberNode),
    /// 3
    Promote(u64),
    /// 4
    Identify(MemberNode),
    /// 5
    Publish(u64, MemberNode),
    /// 6
    Membership(MembershipChange),
    /// 7
    LeaseRenew(i64),
    /// 8
    LeaseTimeToLive(i64),
}

/// `peer::MembershipChange`.
#[derive(Debug, Serialize, Deserialize)]
pub enum MembershipChange {
    /// 0
    Add {
        /// Peer URLs.
        peer_urls: Vec<String>,
        /// As a learner.
        is_learner: bool,
    },
    /// 1
    Remove(u64),
    /// 2
    Update {
        /// Member id.
        id: u64,
        /// New peer URLs.
        peer_urls: Vec<String>,
    },
    /// 3
    Promote(u64),
}

/// `peer::MembershipRefusal`.
#[derive(Debug, Serialize, Deserialize)]
pub enum MembershipRefusal {
    /// 0
    MemberNotFound,
    /// 1
    PeerUrlsExist,
    /// 2
    NotLearner,
    /// 3
    LearnerNotReady,
    /// 4
    NotEnoughStarted,
    /// 5
    Failed(String),
}

/// `peer::PeerReply`.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerReply {
    /// 0: the result and the leader's log index of the entry.
    Written(CommandResult, u64),
    /// 1
    ReadIndex(u64),
    /// 2
    Joined {
        /// Assigned member id.
        member_id: u64,
        /// Cluster id.
        cluster_id: u64,
        /// Cluster token.
        cluster_token: String,
    },
    /// 3
    Promoted(bool),
    /// 4
    NotLeader(Option<(u64, MemberNode)>),
    /// 5
    Failed(String),
    /// 6
    Membership(Result<u64, MembershipRefusal>),
    /// 7
    LeaseTtl {
        /// Remaining TTL.
        remaining: i64,
        /// Granted TTL.
        granted: i64,
    },
}

// ---- conversions: these follow the in-memory types -------------------------------------

impl<'a> From<&'a peer::PeerRequest> for PeerRequest<'a> {
    fn from(request: &'a peer::PeerRequest) -> Self {
        match request {
            peer::PeerRequest::Write(command) => PeerRequest::Write(command.into()),
            peer::PeerRequest::ReadIndex => PeerRequest::ReadIndex,
            peer::PeerRequest::Join(node) => PeerRequest::Join(node.into()),
            peer::PeerRequest::Promote(id) => PeerRequest::Promote(*id),
            peer::PeerRequest::Identify(node) => PeerRequest::Identify(node.into()),
            peer::PeerRequest::Publish(id, node) => PeerRequest::Publish(*id, node.into()),
            peer::PeerRequest::Membership(change) => PeerRequest::Membership(change.into()),
            peer::PeerRequest::LeaseRenew(id) => PeerRequest::LeaseRenew(*id),
            peer::PeerRequest::LeaseTimeToLive(id) => PeerRequest::LeaseTimeToLive(*id),
        }
    }
}

impl From<PeerRequest<'_>> for peer::PeerRequest {
    fn from(request: PeerRequest<'_>) -> Self {
        match request {
            PeerRequest::Write(command) => peer::PeerRequest::Write(command.into()),
            PeerRequest::ReadIndex => peer::PeerRequest::ReadIndex,
            PeerRequest::Join(node) => peer::PeerRequest::Join(node.into()),
            PeerRequest::Promote(id) => peer::PeerRequest::Promote(id),
            PeerRequest::Identify(node) => peer::PeerRequest::Identify(node.into()),
            PeerRequest::Publish(id, node) => peer::PeerRequest::Publish(id, node.into()),
            PeerRequest::Membership(change) => peer::PeerRequest::Membership(change.into()),
            PeerRequest::LeaseRenew(id) => peer::PeerRequest::LeaseRenew(id),
            PeerRequest::LeaseTimeToLive(id) => peer::PeerRequest::LeaseTimeToLive(id),
        }
    }
}

impl From<&peer::MembershipChange> for MembershipChange {
    fn from(change: &peer::MembershipChange) -> Self {
        match change {
            peer::MembershipChange::Add {
                peer_urls,
                is_learner,
            } => MembershipChange::Add {
                peer_urls: peer_urls.clone(),
                is_learner: *is_learner,
            },
            peer::MembershipChange::Remove(id) => MembershipChange::Remove(*id),
            peer::MembershipChange::Update { id, peer_urls } => MembershipChange::Update {
                id: *id,
                peer_urls: peer_urls.clone(),
            },
            peer::MembershipChange::Promote(id) => MembershipChange::Promote(*id),
        }
    }
}

impl From<MembershipChange> for peer::MembershipChange {
    fn from(change: MembershipChange) -> Self {
        match change {
            MembershipChange::Add {
                peer_urls,
                is_learner,
            } => peer::MembershipChange::Add {
                peer_urls,
                is_learner,
            },
            MembershipChange::Remove(id) => peer::MembershipChange::Remove(id),
            MembershipChange::Update { id, peer_urls } => peer::MembershipChange::Update { id, peer_urls },
            MembershipChange::Promote(id) => peer::MembershipChange::Promote(id),
        }
    }
}

impl From<&peer::MembershipRefusal> for MembershipRefusal {
    fn from(refusal: &peer::MembershipRefusal) -> Self {
        match refusal {
            peer::MembershipRefusal::MemberNotFound => MembershipRefusal::MemberNotFound,
            peer::MembershipRefusal::PeerUrlsExist => MembershipRefusal::PeerUrlsExist,
            peer::MembershipRefusal::NotLearner => MembershipRefusal::NotLearner,
            peer::MembershipRefusal::LearnerNotReady => MembershipRefusal::LearnerNotReady,
            peer::MembershipRefusal::NotEnoughStarted => MembershipRefusal::NotEnoughStarted,
            peer::MembershipRefusal::Failed(why) => MembershipRefusal::Failed(why.clone()),
        }
    }
}

impl From<MembershipRefusal> for peer::MembershipRefusal {
    fn from(refusal: MembershipRefusal) -> Self {
        match refusal {
            MembershipRefusal::MemberNotFound => peer::MembershipRefusal::MemberNotFound,
            MembershipRefusal::PeerUrlsExist => peer::MembershipRefusal::PeerUrlsExist,
            MembershipRefusal::NotLearner => peer::MembershipRefusal::NotLearner,
            MembershipRefusal::LearnerNotReady => peer::MembershipRefusal::LearnerNotReady,
            MembershipRefusal::NotEnoughStarted => peer::MembershipRefusal::NotEnoughStarted,
            MembershipRefusal::Failed(why) => peer::MembershipRefusal::Failed(why),
        }
    }
}

impl From<&peer::PeerReply> for PeerReply {
    fn from(reply: &peer::PeerReply) -> Self {
        match reply {
            peer::PeerReply::Written(result, index) => PeerReply::Written(result.into(), *index),
            peer::PeerReply::ReadIndex(index) => PeerReply::ReadIndex(*index),
            peer::PeerReply::Joined {
                member_id,
                cluster_id,
                cluster_token,
            } => PeerReply::Joined {
                member_id: *member_id,
                cluster_id: *cluster_id,
                cluster_token: cluster_token.clone(),
            },
            peer::PeerReply::Promoted(done) => PeerReply::Promoted(*done),
            peer::PeerReply::NotLeader(leader) => {
                PeerReply::NotLeader(leader.as_ref().map(|(id, node)| (*id, node.into())))
            }
            peer::PeerReply::Failed(why) => PeerReply::Failed(why.clone()),
            peer::PeerReply::Membership(result) => {
                PeerReply::Membership(result.as_ref().map(|id| *id).map_err(Into::into))
            }
            peer::PeerReply::LeaseTtl { remaining, granted } => PeerReply::LeaseTtl {
                remaining: *remaining,
                granted: *granted,
            },
        }
    }
}

impl From<PeerReply> for peer::PeerReply {
    fn from(reply: PeerReply) -> Self {
        match reply {
            PeerReply::Written(result, index) => peer::PeerReply::Written(result.into(), index),
            PeerReply::ReadIndex(index) => peer::PeerReply::ReadIndex(index),
            PeerReply::Joined {
                member_id,
                cluster_id,
                cluster_token,
            } => peer::PeerReply::Joined {
                member_id,
                cluster_id,
                cluster_token,
            },
            PeerReply::Promoted(done) => peer::PeerReply::Promoted(done),
            PeerReply::NotLeader(leader) => {
                peer::PeerReply::NotLeader(leader.map(|(id, node)| (id, node.into())))
            }
            PeerReply::Failed(why) => peer::PeerReply::Failed(why),
            PeerReply::Membership(result) => peer::PeerReply::Membership(result.map_err(Into::into)),
            PeerReply::LeaseTtl { remaining, granted } => peer::PeerReply::LeaseTtl { remaining, granted },
        }
    }
}
