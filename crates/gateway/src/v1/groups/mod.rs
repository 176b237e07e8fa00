//! Partition groups over HTTP (`/v1/groups/...`): create and configure groups, register
//! members under leases the HTTP client keeps alive, follow the map (a read, or
//! Server-Sent Events resumable by generation), report hand-over steps, route keys, and
//! a per-partition leader endpoint for load balancers. Everything goes through the SDK's
//! [`conclave_client::group::Group`]; failures are mapped in [`crate::error`] with
//! [`GroupCall`].
//!
//! JSON shapes: revisions, epochs and generations are numbers (as everywhere in `/v1`);
//! lease ids are decimal strings; member ids, labels and endpoints are strings as
//! registered; keys (`route?key=`) are UTF-8 or base64 with `?encoding=base64`.
//!
//! Split by concern: [`settings`] (the group itself), [`members`] (registration, leave,
//! drain, reports), [`routing`] (map, route, leader, history), [`watch`] (the map as
//! Server-Sent Events).

use std::collections::BTreeMap;
use std::time::Duration;

use conclave_client::group::{
    GroupInfo, GroupMap, GroupSettings, MemberInfo, MemberState, PartitionInfo, ReplicaStage,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, GroupCall};

pub mod members;
pub mod routing;
pub mod settings;
pub mod watch;

/// A group's settings in a request; fields left out take the server's defaults
/// (create) or stay as they are (update).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SettingsDto {
    /// P, 1..=4096 (default 16); fixed for the group's life (the routing hash depends on it).
    pub partitions: Option<u32>,
    /// R, 1..=7 (default 3).
    pub replicas: Option<u32>,
    /// Load slack ε, 0..=10 (default 0.25).
    pub epsilon: Option<f64>,
    /// How long the member set must be stable before rebalancing, ms (default 5000).
    pub rebalance_delay_ms: Option<u64>,
    /// Members' session (lease) TTL in seconds, 1..=86400 (default 10): grant member
    /// leases with this TTL.
    pub session_ttl_seconds: Option<u64>,
    /// How long a hand-over step waits for a member's report, ms (default 30000).
    pub handoff_timeout_ms: Option<u64>,
    /// Moves in flight per member (default 4).
    pub max_moves_per_member: Option<u32>,
    /// Moves in flight per group (default 64).
    pub max_moves_per_group: Option<u32>,
    /// The member label anti-affinity uses (default `zone`).
    pub zone_label: Option<String>,
}

impl SettingsDto {
    /// The SDK's settings. A session TTL of 0 is refused here: the SDK counts sessions in
    /// whole seconds of at least one, so it would not reach the server's own check.
    pub fn to_settings(&self) -> Result<GroupSettings, ApiError> {
        if self.session_ttl_seconds == Some(0) {
            return Err(ApiError::invalid(
                "session_ttl_seconds must be between 1 and 86400, not 0",
            ));
        }
        Ok(GroupSettings {
            partitions: self.partitions,
            replicas: self.replicas,
            epsilon: self.epsilon,
            rebalance_delay: self.rebalance_delay_ms.map(Duration::from_millis),
            session_ttl: self.session_ttl_seconds.map(Duration::from_secs),
            handoff_timeout: self.handoff_timeout_ms.map(Duration::from_millis),
            max_moves_per_member: self.max_moves_per_member,
            max_moves_per_group: self.max_moves_per_group,
            zone_label: self.zone_label.clone(),
        })
    }
}

/// A group with every setting.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupDto {
    /// Its name.
    pub name: String,
    /// P.
    pub partitions: u32,
    /// R.
    pub replicas: u32,
    /// ε.
    pub epsilon: f64,
    /// Rebalance delay, ms.
    pub rebalance_delay_ms: u64,
    /// Members' session TTL, seconds.
    pub session_ttl_seconds: u64,
    /// Hand-over timeout, ms.
    pub handoff_timeout_ms: u64,
    /// Moves in flight per member.
    pub max_moves_per_member: u32,
    /// Moves in flight per group.
    pub max_moves_per_group: u32,
    /// The anti-affinity label.
    pub zone_label: String,
    /// The revision it was created at.
    pub create_revision: i64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<GroupInfo> for GroupDto {
    fn from(g: GroupInfo) -> Self {
        GroupDto {
            name: g.name,
            partitions: g.partitions,
            replicas: g.replicas,
            epsilon: g.epsilon,
            rebalance_delay_ms: millis(g.rebalance_delay),
            session_ttl_seconds: g.session_ttl.as_secs(),
            handoff_timeout_ms: millis(g.handoff_timeout),
            max_moves_per_member: g.max_moves_per_member,
            max_moves_per_group: g.max_moves_per_group,
            zone_label: g.zone_label,
            create_revision: g.create_revision,
        }
    }
}

/// A registered member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDto {
    /// Its id.
    pub id: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its relative capacity.
    pub weight: u32,
    /// `active`, `draining` or `leaving`.
    pub state: &'static str,
    /// Where it said it can be reached.
    pub advertise_address: String,
    /// Its HTTP endpoint.
    pub http_endpoint: String,
    /// Its gRPC endpoint.
    pub grpc_endpoint: String,
    /// What else it published.
    pub metadata: BTreeMap<String, String>,
    /// Its session lease (decimal string).
    pub lease: String,
    /// The revision its registration was created at.
    pub create_revision: i64,
}

impl From<&MemberInfo> for MemberDto {
    fn from(m: &MemberInfo) -> Self {
        MemberDto {
            id: m.id.0.clone(),
            labels: m.labels.clone(),
            weight: m.weight,
            state: match m.state {
                MemberState::Active => "active",
                MemberState::Draining => "draining",
                MemberState::Leaving => "leaving",
            },
            advertise_address: m.advertise_address.clone(),
            http_endpoint: m.http_endpoint.clone(),
            grpc_endpoint: m.grpc_endpoint.clone(),
            metadata: m.metadata.clone(),
            lease: m.lease.to_string(),
            create_revision: m.create_revision,
        }
    }
}

/// One replica of a partition.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicaDto {
    /// Its member.
    pub member: String,
    /// `ready` (holds the partition, may lead), `syncing` (added; reports `ready` once its
    /// data is in place) or `releasing` (letting go; reports `released`).
    pub state: &'static str,
    /// For a syncing replica: the member it takes over from once ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// One partition.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartitionDto {
    /// Its id, 0..P.
    pub id: u32,
    /// Its leader's member id, or null.
    pub leader: Option<String>,
    /// The fencing epoch of its leadership (a revision: strictly higher for every later
    /// leader). Reports name it.
    pub epoch: i64,
    /// Its replicas.
    pub replicas: Vec<ReplicaDto>,
}

impl From<&PartitionInfo> for PartitionDto {
    fn from(p: &PartitionInfo) -> Self {
        PartitionDto {
            id: p.id.0,
            leader: p.leader.as_ref().map(|m| m.0.clone()),
            epoch: p.epoch.0,
            replicas: p
                .replicas
                .iter()
                .map(|r| {
                    let (state, replaces) = match &r.stage {
                        ReplicaStage::Ready => ("ready", None),
                        ReplicaStage::Syncing { replaces } => {
                            ("syncing", replaces.as_ref().map(|m| m.0.clone()))
                        }
                        ReplicaStage::Releasing => ("releasing", None),
                    };
                    ReplicaDto {
                        member: r.member.0.clone(),
                        state,
                        replaces,
                    }
                })
                .collect(),
        }
    }
}

/// A group's map: every partition and the registered members.
#[derive(Debug, Serialize, ToSchema)]
pub struct MapDto {
    /// The group.
    pub group: String,
    /// The map's generation (one per change of partitions).
    pub generation: u64,
    /// The store revision it reflects.
    pub revision: i64,
    /// Every partition, by id.
    pub partitions: Vec<PartitionDto>,
    /// The registered members, by id.
    pub members: Vec<MemberDto>,
}

impl From<&GroupMap> for MapDto {
    fn from(map: &GroupMap) -> Self {
        MapDto {
            group: map.group.clone(),
            generation: map.generation,
            revision: map.revision,
            partitions: map.partitions.iter().map(PartitionDto::from).collect(),
            members: map.members.values().map(MemberDto::from).collect(),
        }
    }
}

/// The group `name`'s handle, its name checked first so that a malformed one is 400
/// without a round trip.
pub(crate) fn group_of(
    state: &crate::AppState,
    name: &str,
) -> Result<conclave_client::group::Group, ApiError> {
    conclave_contract::groups::check_group_name(name).map_err(ApiError::invalid)?;
    Ok(state.client.group(name))
}

/// Shorthand for the failures of group-level calls.
pub(crate) fn failed(error: conclave_client::Error) -> ApiError {
    ApiError::group(GroupCall::Group, error)
}
