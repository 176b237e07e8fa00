//! Membership: joining (`--join`), identifying a member added with MemberAdd, publishing
//! a member's name and URLs, promotion of caught-up learners, and etcd's Cluster API
//! (add, remove, update, promote). Every change is made by the leader; other members
//! forward the request to it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::ChangeMembers;
use openraft::Instant as _;

use crate::error::{ConsensusError, Result};
use crate::identity::stable_id;
use crate::node::{leader_hint, Member, Node};
use crate::peer::{MembershipChange, MembershipRefusal, PeerReply, PeerRequest};
use crate::types::MemberNode;

/// A learner is promoted once its replicated log is at most this many entries behind.
const PROMOTE_MAX_LAG: u64 = 64;
/// How often a refused-because-busy membership change is retried on the leader.
const BUSY_RETRIES: u32 = 20;

impl Node {
    /// Whether the membership carries this member's own name and client URLs, so
    /// `MemberList` (and `etcdctl --cluster`) can name it. Until then the member reports
    /// itself NOT_SERVING, as etcd serves clients only after publishing itself.
    pub fn published(&self) -> bool {
        let (id, me) = (self.member_id(), self.own_node());
        self.members()
            .iter()
            .any(|m| m.id == id && m.node.name == me.name && m.node.client_urls == me.client_urls)
    }

    /// Keeps this member's entry in the membership true (name, client URLs) and, for a
    /// member that joined as a learner, asks the leader to promote it once caught up.
    /// Runs until both hold; retries with backoff while there is no reachable leader.
    pub(crate) async fn maintain_own_membership(&self, promote: bool) {
        let id = self.member_id();
        let me = self.own_node();
        let mut wait = Duration::from_millis(100);
        loop {
            // Name and client URLs are the member's to publish; peer URLs belong to the
            // membership (MemberUpdate changes them).
            let published = self.published();
            let voter = self.raft().voter_ids().any(|v| v == id);
            if published && (voter || !promote) {
                tracing::info!(voter, "membership entry is up to date");
                return;
            }
            let request = if !published {
                PeerRequest::Publish(id, me.clone())
            } else {
                PeerRequest::Promote(id)
            };
            match self.ask_leader(request).await {
                Ok(PeerReply::Promoted(true)) => tracing::info!("the leader promoted this member to voter"),
                Ok(PeerReply::Membership(Ok(_))) => tracing::info!("published this member's name and URLs"),
                Ok(other) => tracing::debug!(reply = ?other, "membership not updated yet"),
                Err(e) => tracing::debug!(error = %e, "membership request failed"),
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }

    /// Makes an etcd Cluster API change (on the leader, wherever it is) and returns the id
    /// of the member concerned once this member's own view includes the change.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<u64> {
        match self.ask_leader(PeerRequest::Membership(change)).await? {
            PeerReply::Membership(Ok(id)) => {
                self.linearizable_barrier().await?;
                Ok(id)
            }
            PeerReply::Membership(Err(refusal)) => Err(ConsensusError::Membership(refusal)),
            PeerReply::NotLeader(_) => Err(ConsensusError::NoLeader),
            other => Err(ConsensusError::Unreachable(format!("unexpected reply {other:?}"))),
        }
    }

    /// A fresh member id: a hash of the cluster id, `seed` and the leader's last log
    /// index, never one in use (ids are not reused, see docs/ARCHITECTURE.md).
    fn fresh_member_id(&self, seed: &[u8], members: &[Member]) -> u64 {
        let mut salt = self.status().last_log_index;
        loop {
            let id = stable_id(&[&self.cluster_id().to_le_bytes(), seed, &salt.to_le_bytes()]);
            if !members.iter().any(|m| m.id == id) {
                return id;
            }
            salt += 1;
        }
    }

    /// Members that acknowledged a heartbeat sent after this call began (this member
    /// included): an active probe, so a member that died a moment ago does not count.
    async fn reachable_members(&self) -> BTreeSet<u64> {
        let probe = openraft::TokioInstant::now();
        let _ = self.raft().trigger().heartbeat().await;
        let acked_since_probe = |m: &openraft::RaftMetrics<crate::types::TypeConfig>| -> BTreeSet<u64> {
            m.heartbeat
                .iter()
                .flatten()
                .filter(|(_, acked)| acked.as_ref().is_some_and(|at| **at >= probe))
                .map(|(id, _)| *id)
                .collect()
        };
        let everyone: BTreeSet<u64> = self.members().iter().map(|m| m.id).collect();
        let me = self.member_id();
        // Wait for every member to answer, or one election timeout for those that can't.
        let _ = self
            .raft()
            .wait(Some(self.election_timeout()))
            .metrics(
                |m| {
                    let acked = acked_since_probe(m);
                    everyone.iter().all(|id| *id == me || acked.contains(id))
                },
                "members answer a heartbeat",
            )
            .await;
        let mut reachable = acked_since_probe(&self.raft().metrics().borrow_watched());
        reachable.insert(me);
        reachable
    }

    /// etcd's guard: a voter change must leave a quorum of voters that are reachable now,
    /// or the cluster could lock itself up waiting for members that are not there.
    async fn check_quorum_after(&self, voters_after: &BTreeSet<u64>) -> std::result::Result<(), PeerReply> {
        let reachable = self.reachable_members().await;
        let up = voters_after.iter().filter(|v| reachable.contains(v)).count();
        if up < voters_after.len() / 2 + 1 {
            return Err(PeerReply::Membership(Err(MembershipRefusal::NotEnoughStarted)));
        }
        Ok(())
    }

    /// Applies `change` on this (leader) member, retrying while another membership change
    /// is still in progress, for at most the request timeout.
    async fn apply_change(
        &self,
        change: ChangeMembers<u64, MemberNode>,
    ) -> std::result::Result<(), PeerReply> {
        let mut attempt = 0;
        loop {
            let timed = tokio::time::timeout(
                self.request_timeout(),
                self.raft().change_membership(change.clone(), false),
            );
            let Ok(result) = timed.await else {
                return Err(PeerReply::Membership(Err(MembershipRefusal::Failed(
                    "membership change timed out; its outcome is unknown".into(),
                ))));
            };
            match result {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    return Err(PeerReply::NotLeader(leader_hint(&f)))
                }
                Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                    ChangeMembershipError::InProgress(_),
                ))) if attempt < BUSY_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    return Err(PeerReply::Membership(Err(MembershipRefusal::Failed(
                        e.to_string(),
                    ))))
                }
            }
        }
    }

    /// `Join`: adds a new member as a learner and tells it its identity.
    pub(crate) async fn add_joining_member(&self, node: MemberNode) -> PeerReply {
        if !self.raft().is_leader() {
            return self.not_leader();
        }
        let mut members = self.members();
        if let Some(existing) = members.iter().find(|m| m.node.name == node.name) {
            // A join that was interrupted (the joiner never saved its identity) left a
            // learner with the same name and URLs: replace it under a fresh id rather than
            // reuse an id whose log position the leader may already track.
            if !(existing.is_learner && existing.node.peer_urls == node.peer_urls) {
                return PeerReply::Failed(format!(
                    "a member named {} already exists; remove it first or start the new member with another --name",
                    node.name
                ));
            }
            tracing::info!(
                member_id = format!("{:x}", existing.id),
                "replacing the learner of an interrupted join"
            );
            if let Err(reply) = self
                .apply_change(ChangeMembers::RemoveNodes(BTreeSet::from([existing.id])))
                .await
            {
                return reply;
            }
            members = self.members();
        }
        if let Some(refusal) = peer_urls_in_use(&members, &node.peer_urls, None) {
            return PeerReply::Failed(refusal.to_string());
        }
        let id = self.fresh_member_id(node.name.as_bytes(), &members);
        tracing::info!(name = %node.name, member_id = format!("{id:x}"), "adding joining member as learner");
        match self.raft().add_learner(id, node, false).await {
            Ok(_) => self.joined(id),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                PeerReply::NotLeader(leader_hint(&f))
            }
            Err(e) => PeerReply::Failed(e.to_string()),
        }
    }

    fn joined(&self, member_id: u64) -> PeerReply {
        PeerReply::Joined {
            member_id,
            cluster_id: self.cluster_id(),
            cluster_token: self.cluster_token().to_string(),
        }
    }

    /// `Identify`: finds the member added (MemberAdd) with these peer URLs, records its
    /// name and client URLs, and tells it its identity.
    pub(crate) async fn identify_member(&self, node: MemberNode) -> PeerReply {
        if !self.raft().is_leader() {
            return self.not_leader();
        }
        let members = self.members();
        let Some(member) = members
            .iter()
            .find(|m| m.node.peer_urls.iter().any(|u| node.peer_urls.contains(u)))
        else {
            return PeerReply::Failed(format!(
                "no member has peer URLs {}: add it first (etcdctl member add {} --peer-urls={})",
                node.peer_urls.join(","),
                node.name,
                node.peer_urls.join(",")
            ));
        };
        if !member.node.name.is_empty() {
            // It has started before: a fresh data dir must not take over its id (it would
            // vote again in terms it already voted in, with none of its log).
            return PeerReply::Failed(format!(
                "member {} ({:x}) with peer URLs {} has already started; a member that lost its data dir must be \
                 removed (member remove) and added again",
                member.node.name,
                member.id,
                node.peer_urls.join(",")
            ));
        }
        if let Err(reply) = self
            .apply_change(ChangeMembers::SetNodes(BTreeMap::from([(member.id, node)])))
            .await
        {
            return reply;
        }
        self.joined(member.id)
    }

    /// `Publish`: records a member's current name and client URLs.
    pub(crate) async fn publish_member(&self, id: u64, node: MemberNode) -> PeerReply {
        if !self.raft().is_leader() {
            return self.not_leader();
        }
        let Some(current) = self.members().into_iter().find(|m| m.id == id) else {
            return PeerReply::Membership(Err(MembershipRefusal::MemberNotFound));
        };
        // Only name and client URLs: a late publish must not undo a MemberUpdate of the
        // peer URLs.
        let node = MemberNode {
            peer_urls: current.node.peer_urls,
            ..node
        };
        match self
            .apply_change(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])))
            .await
        {
            Ok(()) => PeerReply::Membership(Ok(id)),
            Err(reply) => reply,
        }
    }

    /// Whether learner `id` has replicated close enough to the leader's log.
    fn learner_in_sync(&self, id: u64) -> bool {
        let metrics = self.raft().metrics().borrow_watched().clone();
        let last = metrics.last_log_index.unwrap_or(0);
        // No replication progress yet means nothing is known to have arrived: not in sync.
        let matched = metrics
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned().flatten());
        matched.is_some_and(|m| last.saturating_sub(m.index) <= PROMOTE_MAX_LAG)
    }

    /// `Promote` (from a joined member itself): promotes it if it has caught up.
    pub(crate) async fn promote_if_caught_up(&self, id: u64) -> PeerReply {
        if !self.raft().is_leader() {
            return self.not_leader();
        }
        if self.raft().voter_ids().any(|v| v == id) {
            return PeerReply::Promoted(true);
        }
        if !self.learner_in_sync(id) {
            return PeerReply::Promoted(false);
        }
        tracing::info!(
            member_id = format!("{id:x}"),
            "promoting caught-up learner to voter"
        );
        match self
            .apply_change(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
            .await
        {
            Ok(()) => PeerReply::Promoted(true),
            Err(reply) => reply,
        }
    }

    /// etcd's Cluster API changes, on the leader.
    pub(crate) async fn handle_membership_change(&self, change: MembershipChange) -> PeerReply {
        if !self.raft().is_leader() {
            return self.not_leader();
        }
        let members = self.members();
        let find = |id: u64| members.iter().find(|m| m.id == id);
        let refuse = |r: MembershipRefusal| PeerReply::Membership(Err(r));
        let (id, change) = match change {
            MembershipChange::Add {
                peer_urls,
                is_learner,
            } => {
                if let Some(refusal) = peer_urls_in_use(&members, &peer_urls, None) {
                    return refuse(refusal);
                }
                let id = self.fresh_member_id(peer_urls.join(",").as_bytes(), &members);
                let node = MemberNode {
                    name: String::new(),
                    peer_urls,
                    client_urls: Vec::new(),
                };
                tracing::info!(member_id = format!("{id:x}"), is_learner, "MemberAdd");
                if is_learner {
                    (id, ChangeMembers::AddNodes(BTreeMap::from([(id, node)])))
                } else {
                    let mut voters: BTreeSet<u64> = self.raft().voter_ids().collect();
                    voters.insert(id);
                    if let Err(reply) = self.check_quorum_after(&voters).await {
                        return reply;
                    }
                    // As etcd: a voter that has not started yet counts towards the quorum at once.
                    (id, ChangeMembers::AddVoters(BTreeMap::from([(id, node)])))
                }
            }
            MembershipChange::Remove(id) => match find(id) {
                None => return refuse(MembershipRefusal::MemberNotFound),
                Some(member) if member.is_learner => (id, ChangeMembers::RemoveNodes(BTreeSet::from([id]))),
                Some(_) => {
                    let voters: BTreeSet<u64> = self.raft().voter_ids().filter(|v| *v != id).collect();
                    if let Err(reply) = self.check_quorum_after(&voters).await {
                        return reply;
                    }
                    // Voter: leave the voter set, then drop the node entry.
                    if let Err(reply) = self
                        .apply_change(ChangeMembers::RemoveVoters(BTreeSet::from([id])))
                        .await
                    {
                        return reply;
                    }
                    if self.members().iter().any(|m| m.id == id) {
                        (id, ChangeMembers::RemoveNodes(BTreeSet::from([id])))
                    } else {
                        return PeerReply::Membership(Ok(id));
                    }
                }
            },
            MembershipChange::Update { id, peer_urls } => {
                let Some(member) = find(id) else {
                    return refuse(MembershipRefusal::MemberNotFound);
                };
                if let Some(refusal) = peer_urls_in_use(&members, &peer_urls, Some(id)) {
                    return refuse(refusal);
                }
                let node = MemberNode {
                    peer_urls,
                    ..member.node.clone()
                };
                (id, ChangeMembers::SetNodes(BTreeMap::from([(id, node)])))
            }
            MembershipChange::Promote(id) => match find(id) {
                None => return refuse(MembershipRefusal::MemberNotFound),
                Some(member) if !member.is_learner => return refuse(MembershipRefusal::NotLearner),
                Some(_) if !self.learner_in_sync(id) => return refuse(MembershipRefusal::LearnerNotReady),
                Some(_) => {
                    let mut voters: BTreeSet<u64> = self.raft().voter_ids().collect();
                    voters.insert(id);
                    if let Err(reply) = self.check_quorum_after(&voters).await {
                        return reply;
                    }
                    (id, ChangeMembers::AddVoterIds(BTreeSet::from([id])))
                }
            },
        };
        match self.apply_change(change).await {
            Ok(()) => PeerReply::Membership(Ok(id)),
            Err(reply) => reply,
        }
    }
}

/// etcd's "Peer URLs already exists" check (ignoring member `except`).
fn peer_urls_in_use(
    members: &[Member],
    peer_urls: &[String],
    except: Option<u64>,
) -> Option<MembershipRefusal> {
    members
        .iter()
        .filter(|m| Some(m.id) != except)
        .any(|m| m.node.peer_urls.iter().any(|u| peer_urls.contains(u)))
        .then_some(MembershipRefusal::PeerUrlsExist)
}
