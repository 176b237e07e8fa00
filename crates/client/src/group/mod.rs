//! Partition groups: membership, placement and epoch-fenced routing for an application's
//! own shards (docs/partitions.md).
//!
//! A group has P partitions, each held by R members, one of them its leader. Members
//! [`Group::join`] under a session lease and are told what they hold through
//! [`GroupHooks`], in order, each hook awaited before the controller moves on; leaders
//! fence their writes with [`PartitionLeadership::guard`], so a deposed leader's writes
//! are refused by the store. Any client routes keys with a [`Router`]
//! ([`Router::partition_for`] is the documented hash every language computes the same).
//!
//! ```no_run
//! # async fn demo(client: conclave_client::Client) -> conclave_client::Result<()> {
//! use conclave_client::group::{GroupSettings, JoinOptions};
//! use conclave_client::Op;
//!
//! let group = client.group("orders");
//! group.create(GroupSettings::new(16, 2)).await.ok(); // exists already: fine
//! let member = group.join(JoinOptions::new("orders-1").zone("eu-1"), ()).await?;
//! let p = member.router().partition_for("order/42");
//! if let Ok(leadership) = member.leadership(p) {
//!     leadership.txn([Op::put("order/42", "paid")]).await?; // NotLeader/StaleEpoch if deposed
//! }
//! member.leave(std::time::Duration::from_secs(60)).await?;
//! # Ok(()) }
//! ```

mod events;
mod feed;
mod hooks;
mod leadership;
mod map;
mod membership;
mod router;

use std::time::Duration;

pub use conclave_controller::{MemberId, PartitionId};
use conclave_proto::partitionpb as pb;
use conclave_proto::partitionpb::groups_client::GroupsClient;
pub use events::{MapEvent, MapEvents};
pub use hooks::{GroupHooks, Role};
pub use leadership::PartitionLeadership;
pub use map::{GroupMap, MapView, MemberInfo, MemberState, PartitionInfo, ReplicaInfo, ReplicaStage};
pub use membership::{JoinOptions, Membership};
pub use router::Router;

use crate::election::Epoch;
use crate::error::Result;
use crate::transport::Idempotency;
use crate::Client;

/// A group's settings for [`Group::create`] and [`Group::update`]; unset fields take the
/// server's defaults (create) or stay as they are (update).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupSettings {
    /// P, 1..=4096 (default 16). Fixed for the group's life.
    pub partitions: Option<u32>,
    /// R, 1..=7 (default 3).
    pub replicas: Option<u32>,
    /// Load slack ε (default 0.25).
    pub epsilon: Option<f64>,
    /// How long the member set must be stable before rebalancing (default 5 s).
    pub rebalance_delay: Option<Duration>,
    /// Members' session TTL (default 10 s): how soon a crashed member leaves.
    pub session_ttl: Option<Duration>,
    /// How long a hand-over step waits for the member's report (default 30 s).
    pub handoff_timeout: Option<Duration>,
    /// Moves in flight per member (default 4).
    pub max_moves_per_member: Option<u32>,
    /// Moves in flight per group (default 64).
    pub max_moves_per_group: Option<u32>,
    /// The label anti-affinity uses (default `zone`).
    pub zone_label: Option<String>,
}

impl GroupSettings {
    /// P partitions, R replicas, defaults otherwise.
    pub fn new(partitions: u32, replicas: u32) -> GroupSettings {
        GroupSettings {
            partitions: Some(partitions),
            replicas: Some(replicas),
            ..Default::default()
        }
    }

    fn to_pb(&self) -> pb::GroupSettings {
        let ms = |d: Option<Duration>| d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        pb::GroupSettings {
            partitions: self.partitions,
            replicas: self.replicas,
            epsilon: self.epsilon,
            rebalance_delay_ms: ms(self.rebalance_delay),
            session_ttl_seconds: self.session_ttl.map(|d| d.as_secs().max(1)),
            handoff_timeout_ms: ms(self.handoff_timeout),
            max_moves_per_member: self.max_moves_per_member,
            max_moves_per_group: self.max_moves_per_group,
            zone_label: self.zone_label.clone(),
        }
    }
}

/// A group as it is.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupInfo {
    /// Its name.
    pub name: String,
    /// P.
    pub partitions: u32,
    /// R.
    pub replicas: u32,
    /// ε.
    pub epsilon: f64,
    /// The rebalance delay.
    pub rebalance_delay: Duration,
    /// Members' session TTL.
    pub session_ttl: Duration,
    /// The hand-over timeout.
    pub handoff_timeout: Duration,
    /// Moves in flight per member.
    pub max_moves_per_member: u32,
    /// Moves in flight per group.
    pub max_moves_per_group: u32,
    /// The anti-affinity label.
    pub zone_label: String,
    /// The revision it was created at.
    pub create_revision: i64,
}

impl From<pb::Group> for GroupInfo {
    fn from(g: pb::Group) -> Self {
        let s = g.settings.unwrap_or_default();
        GroupInfo {
            name: g.name,
            partitions: s.partitions.unwrap_or(0),
            replicas: s.replicas.unwrap_or(0),
            epsilon: s.epsilon.unwrap_or(0.0),
            rebalance_delay: Duration::from_millis(s.rebalance_delay_ms.unwrap_or(0)),
            session_ttl: Duration::from_secs(s.session_ttl_seconds.unwrap_or(10)),
            handoff_timeout: Duration::from_millis(s.handoff_timeout_ms.unwrap_or(0)),
            max_moves_per_member: s.max_moves_per_member.unwrap_or(0),
            max_moves_per_group: s.max_moves_per_group.unwrap_or(0),
            zone_label: s.zone_label.unwrap_or_default(),
            create_revision: g.create_revision,
        }
    }
}

/// Where a key goes: its partition, leader (with endpoints) and replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The partition.
    pub partition: PartitionId,
    /// Its leader, if it has one.
    pub leader: Option<MemberInfo>,
    /// Its epoch.
    pub epoch: Epoch,
    /// Its replicas' members.
    pub replicas: Vec<MemberId>,
    /// The map generation it was read from.
    pub generation: u64,
}

/// One generation of a group's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The generation.
    pub generation: u64,
    /// The revision it was written at.
    pub revision: i64,
    /// Partitions whose replicas changed.
    pub changed: Vec<PartitionId>,
    /// Partitions whose leader changed.
    pub new_leaders: Vec<PartitionId>,
    /// When (the controller's wall clock, Unix ms).
    pub written_unix_ms: u64,
}

/// A partition group, by name. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Group {
    client: Client,
    name: String,
}

impl Client {
    /// The partition group called `name`.
    pub fn group(&self, name: impl Into<String>) -> Group {
        Group {
            client: self.clone(),
            name: name.into(),
        }
    }

    /// Every group.
    pub async fn groups(&self) -> Result<Vec<GroupInfo>> {
        let response = self
            .pool()
            .call(Idempotency::Idempotent, |channel| async move {
                GroupsClient::new(channel)
                    .list_groups(pb::ListGroupsRequest {})
                    .await
            })
            .await?;
        Ok(response
            .into_inner()
            .groups
            .into_iter()
            .map(GroupInfo::from)
            .collect())
    }
}

impl Group {
    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn call<T, F, Fut>(&self, idempotency: Idempotency, call: F) -> Result<T>
    where
        F: Fn(GroupsClient<crate::Channel>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        self.client
            .pool()
            .call(idempotency, |channel| {
                call(GroupsClient::new(channel).max_decoding_message_size(crate::MAX_RESPONSE_BYTES))
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Creates the group. Fails with [`crate::Error::Server`] `AlreadyExists` if it
    /// exists, [`crate::Error::InvalidArgument`] for a setting out of range.
    pub async fn create(&self, settings: GroupSettings) -> Result<GroupInfo> {
        let request = pb::CreateGroupRequest {
            name: self.name.clone(),
            settings: Some(settings.to_pb()),
        };
        let response = self
            .call(Idempotency::NonIdempotent, |mut c| {
                let request = request.clone();
                async move { c.create_group(request).await }
            })
            .await?;
        Ok(response
            .group
            .map(GroupInfo::from)
            .unwrap_or_else(|| self.unknown()))
    }

    fn unknown(&self) -> GroupInfo {
        GroupInfo::from(pb::Group {
            name: self.name.clone(),
            ..Default::default()
        })
    }

    /// Changes the settings that are set (not the partition count).
    pub async fn update(&self, settings: GroupSettings) -> Result<GroupInfo> {
        let request = pb::UpdateGroupRequest {
            name: self.name.clone(),
            settings: Some(settings.to_pb()),
        };
        let response = self
            .call(Idempotency::NonIdempotent, |mut c| {
                let request = request.clone();
                async move { c.update_group(request).await }
            })
            .await?;
        Ok(response
            .group
            .map(GroupInfo::from)
            .unwrap_or_else(|| self.unknown()))
    }

    /// Deletes the group, its members and its map. Returns whether it existed.
    pub async fn delete(&self) -> Result<bool> {
        let request = pb::DeleteGroupRequest {
            name: self.name.clone(),
        };
        let response = self
            .call(Idempotency::NonIdempotent, |mut c| {
                let request = request.clone();
                async move { c.delete_group(request).await }
            })
            .await?;
        Ok(response.deleted)
    }

    /// The group's settings.
    pub async fn get(&self) -> Result<GroupInfo> {
        let request = pb::GetGroupRequest {
            name: self.name.clone(),
        };
        let response = self
            .call(Idempotency::Idempotent, |mut c| {
                let request = request.clone();
                async move { c.get_group(request).await }
            })
            .await?;
        Ok(response
            .group
            .map(GroupInfo::from)
            .unwrap_or_else(|| self.unknown()))
    }

    /// The map now (a linearizable read).
    pub async fn map(&self) -> Result<GroupMap> {
        let request = pb::GetMapRequest {
            group: self.name.clone(),
            serializable: false,
        };
        let response = self
            .call(Idempotency::Idempotent, |mut c| {
                let request = request.clone();
                async move { c.get_map(request).await }
            })
            .await?;
        let revision = response.header.map_or(0, |h| h.revision);
        Ok(GroupMap::from_snapshot(
            response.map.unwrap_or_default(),
            revision,
        ))
    }

    /// Where `key` goes now (asks a member; a [`Router`] answers from its cache).
    pub async fn route(&self, key: impl Into<Vec<u8>>) -> Result<Route> {
        let request = pb::RouteRequest {
            group: self.name.clone(),
            key: key.into(),
        };
        let r = self
            .call(Idempotency::Idempotent, |mut c| {
                let request = request.clone();
                async move { c.route(request).await }
            })
            .await?;
        Ok(Route {
            partition: PartitionId(r.partition),
            leader: r.leader_member.map(MemberInfo::from),
            epoch: Epoch(r.epoch),
            replicas: r.replicas.into_iter().map(MemberId).collect(),
            generation: r.generation,
        })
    }

    /// The latest `limit` generations, newest first.
    pub async fn history(&self, limit: u32) -> Result<Vec<HistoryEntry>> {
        let request = pb::HistoryRequest {
            group: self.name.clone(),
            limit,
        };
        let response = self
            .call(Idempotency::Idempotent, |mut c| {
                let request = request.clone();
                async move { c.history(request).await }
            })
            .await?;
        Ok(response
            .entries
            .into_iter()
            .map(|e| HistoryEntry {
                generation: e.generation,
                revision: e.revision,
                changed: e.changed.into_iter().map(PartitionId).collect(),
                new_leaders: e.new_leaders.into_iter().map(PartitionId).collect(),
                written_unix_ms: e.written_unix_ms,
            })
            .collect())
    }

    /// Drains member `member` (or resumes it); returns the replicas and leaderships it
    /// still holds.
    pub async fn drain(&self, member: &str, resume: bool) -> Result<(u32, u32)> {
        let request = pb::DrainRequest {
            group: self.name.clone(),
            member_id: member.to_string(),
            resume,
        };
        let response = self
            .call(Idempotency::Idempotent, |mut c| {
                let request = request.clone();
                async move { c.drain(request).await }
            })
            .await?;
        Ok((response.replicas, response.leaderships))
    }

    /// Makes member `member` leave gracefully (it must be running, to hand its partitions
    /// over) and waits until it has, at most `timeout`. [`crate::Error::Timeout`] when
    /// the hand-over did not finish within `timeout`: the member stays registered and
    /// leaving (call again to wait more).
    pub async fn leave_member(&self, member: &str, timeout: Duration) -> Result<()> {
        let request = pb::LeaveRequest {
            group: self.name.clone(),
            member_id: member.to_string(),
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        // The server waits up to `timeout`: give each attempt that long and some.
        let attempt = timeout + self.client.options().request_timeout;
        let started = tokio::time::Instant::now();
        let finished = self
            .client
            .pool()
            .call_within(Idempotency::Idempotent, attempt, |channel| {
                let mut call = tonic::Request::new(request.clone());
                call.set_timeout(attempt);
                async move {
                    match GroupsClient::new(channel).leave(call).await {
                        Ok(_) => Ok(true),
                        // The member waited the whole `timeout` and the hand-over is not
                        // done: that is the answer, not a failure to retry (a retry would
                        // wait `timeout` again, past what the caller allowed). An earlier
                        // DEADLINE_EXCEEDED (a state change that kept racing) is retried.
                        Err(status)
                            if status.code() == tonic::Code::DeadlineExceeded
                                && started.elapsed() >= timeout =>
                        {
                            Ok(false)
                        }
                        Err(status) => Err(status),
                    }
                }
            })
            .await?;
        if finished {
            Ok(())
        } else {
            Err(crate::Error::Timeout(timeout))
        }
    }

    /// The map's changes after generation `after` (0: a snapshot first), without gap or
    /// duplicate, resumed across member failures. Ends with an error when the group is
    /// deleted.
    pub fn watch(&self, after: u64) -> MapEvents {
        MapEvents::start(self.client.clone(), self.name.clone(), after)
    }

    /// Registers a member under a lease the caller keeps alive itself (what the HTTP
    /// gateway does for its clients); no hooks run — the caller follows the map and
    /// reports with [`Group::report`]. Joining again with the same lease updates the
    /// registration.
    pub async fn register(&self, options: &JoinOptions, lease: crate::LeaseId) -> Result<MemberInfo> {
        let request = options.request(&self.name, lease.0);
        let response = self
            .call(Idempotency::Idempotent, |mut c| {
                let request = request.clone();
                async move { c.join(request).await }
            })
            .await?;
        response
            .member
            .map(MemberInfo::from)
            .ok_or_else(|| crate::Error::InvalidArgument("the join answer named no member".into()))
    }

    /// Reports, for member `member`, a partition ready (its data is in place) or released
    /// (it let go), at the epoch it saw. [`crate::Error::StaleEpoch`] when the partition's
    /// epoch moved on.
    pub async fn report(
        &self,
        member: &str,
        partition: PartitionId,
        ready: bool,
        epoch: Epoch,
    ) -> Result<()> {
        let kind = if ready {
            pb::ReportKind::Ready
        } else {
            pb::ReportKind::Released
        };
        let request = pb::ReportRequest {
            group: self.name.clone(),
            member_id: member.to_string(),
            partition: partition.0,
            kind: kind as i32,
            epoch: epoch.0,
        };
        let answer = self
            .client
            .pool()
            .call(Idempotency::Idempotent, |channel| {
                let request = request.clone();
                async move {
                    match GroupsClient::new(channel).report(request).await {
                        Ok(_) => Ok(None),
                        Err(status) => match conclave_contract::groups::stale_epoch(&status) {
                            Some(current) => Ok(Some(current)),
                            None => Err(status),
                        },
                    }
                }
            })
            .await?;
        match answer {
            None => Ok(()),
            Some(current) => Err(crate::Error::StaleEpoch {
                group: self.name.clone(),
                partition: partition.0,
                current,
            }),
        }
    }

    /// A routing-only client of the group: follows its map without joining.
    pub async fn router(&self) -> Result<Router> {
        Router::follow(self.client.clone(), self.name.clone()).await
    }
}
