//! The stored forms of a group's records: JSON (readable with `etcdctl get`, by any
//! language), each with an explicit version field `"v"`, separate from the controller's
//! in-memory types. Version 1 is the only one; a change adds version 2 beside it with a
//! conversion, and golden files (`crates/server/tests/golden/groups/`) keep every version
//! decodable.

use std::collections::BTreeMap;
use std::time::Duration;

use conclave_controller::{Epoch, Member, MemberId, MemberState, Partition, Replica, ReplicaState, Settings};
use serde::{Deserialize, Serialize};

/// The only record version this build writes.
pub const VERSION: u32 = 1;

/// A record that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {why}")]
pub struct RecordError {
    /// Which record.
    pub what: String,
    /// Why.
    pub why: String,
}

fn decode<T: serde::de::DeserializeOwned + Versioned>(what: &str, bytes: &[u8]) -> Result<T, RecordError> {
    let record: T = serde_json::from_slice(bytes).map_err(|e| RecordError {
        what: what.to_string(),
        why: e.to_string(),
    })?;
    if record.version() != VERSION {
        return Err(RecordError {
            what: what.to_string(),
            why: format!(
                "written as version {} by a newer build; this build reads version {VERSION}",
                record.version()
            ),
        });
    }
    Ok(record)
}

fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail (no maps with non-string keys, no
    // floats that are not finite: epsilon is an integer here).
    serde_json::to_vec(record).unwrap_or_default()
}

trait Versioned {
    fn version(&self) -> u32;
}

macro_rules! versioned {
    ($($t:ty),*) => {$(
        impl Versioned for $t {
            fn version(&self) -> u32 {
                self.v
            }
        }
        impl $t {
            /// Decodes a stored record; `what` names it in errors.
            pub fn decode(what: &str, bytes: &[u8]) -> Result<$t, RecordError> {
                decode(what, bytes)
            }

            /// The stored bytes.
            pub fn encode(&self) -> Vec<u8> {
                encode(self)
            }
        }
    )*};
}

versioned!(
    GroupConfig,
    MapHeader,
    MemberRecord,
    PartitionRecord,
    HistoryRecord,
    ControllerClaim
);

/// `…/config`: a group's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupConfig {
    /// Record version.
    pub v: u32,
    /// P.
    pub partitions: u32,
    /// R.
    pub replicas: u32,
    /// ε in thousandths.
    pub epsilon_permille: u32,
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
    /// The label anti-affinity uses.
    pub zone_label: String,
}

/// Default members' session TTL.
pub const DEFAULT_SESSION_TTL_SECONDS: u64 = 10;
/// Default zone label.
pub const DEFAULT_ZONE_LABEL: &str = "zone";

impl GroupConfig {
    /// The controller's settings.
    pub fn settings(&self) -> Settings {
        Settings {
            partitions: self.partitions,
            replicas: self.replicas,
            epsilon_permille: self.epsilon_permille,
            rebalance_delay: Duration::from_millis(self.rebalance_delay_ms),
            handoff_timeout: Duration::from_millis(self.handoff_timeout_ms),
            max_moves_per_member: self.max_moves_per_member,
            max_moves_per_group: self.max_moves_per_group,
        }
    }

    /// A record of `settings` (and the group-level fields).
    pub fn from_settings(settings: &Settings, session_ttl_seconds: u64, zone_label: &str) -> GroupConfig {
        GroupConfig {
            v: VERSION,
            partitions: settings.partitions,
            replicas: settings.replicas,
            epsilon_permille: settings.epsilon_permille,
            rebalance_delay_ms: u64::try_from(settings.rebalance_delay.as_millis()).unwrap_or(u64::MAX),
            session_ttl_seconds,
            handoff_timeout_ms: u64::try_from(settings.handoff_timeout.as_millis()).unwrap_or(u64::MAX),
            max_moves_per_member: settings.max_moves_per_member,
            max_moves_per_group: settings.max_moves_per_group,
            zone_label: zone_label.to_string(),
        }
    }
}

/// `…/map`: the generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapHeader {
    /// Record version.
    pub v: u32,
    /// The map's generation.
    pub generation: u64,
}

/// A member's stage in the stored form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredMemberState {
    /// Takes partitions.
    Active,
    /// Gives everything away, stays registered.
    Draining,
    /// Gives everything away, then deregisters.
    Leaving,
}

impl From<StoredMemberState> for MemberState {
    fn from(s: StoredMemberState) -> Self {
        match s {
            StoredMemberState::Active => MemberState::Active,
            StoredMemberState::Draining => MemberState::Draining,
            StoredMemberState::Leaving => MemberState::Leaving,
        }
    }
}

/// `…/members/{m}`: a member's registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Record version.
    pub v: u32,
    /// Labels (the zone label among them).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Relative capacity.
    pub weight: u32,
    /// Its stage.
    pub state: StoredMemberState,
    /// Where it can be reached, as it said.
    #[serde(default)]
    pub advertise_address: String,
    /// Its HTTP endpoint.
    #[serde(default)]
    pub http_endpoint: String,
    /// Its gRPC endpoint.
    #[serde(default)]
    pub grpc_endpoint: String,
    /// Anything else it wants others to see.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl MemberRecord {
    /// The controller's view of the member `id`, placed by the group's zone label.
    pub fn member(&self, id: &str, zone_label: &str) -> Member {
        Member {
            id: MemberId(id.to_string()),
            weight: self.weight,
            zone: self.labels.get(zone_label).cloned(),
            state: self.state.into(),
        }
    }
}

/// A replica's stage in the stored form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredReplica {
    /// The member.
    pub member: String,
    /// `ready`, `syncing` or `releasing`.
    pub state: StoredReplicaState,
    /// Syncing: the replica it replaces once ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
    /// Syncing: the epoch it syncs under (0: added while leaderless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_epoch: Option<i64>,
}

/// The stage names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredReplicaState {
    /// Holds the partition.
    Ready,
    /// Added, not yet ready.
    Syncing,
    /// Told to let go.
    Releasing,
}

/// `…/partitions/{p}`: a partition's replicas (its leader is the leader key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Record version.
    pub v: u32,
    /// The replicas in the order they were added.
    pub replicas: Vec<StoredReplica>,
    /// The epoch of the last leadership while there is no leader key (0 otherwise).
    #[serde(default)]
    pub last_epoch: i64,
}

impl PartitionRecord {
    /// The stored form of `partition`'s replicas.
    pub fn of(partition: &Partition) -> PartitionRecord {
        PartitionRecord {
            v: VERSION,
            replicas: partition
                .replicas
                .iter()
                .map(|r| {
                    let (state, replaces, since_epoch) = match &r.state {
                        ReplicaState::Ready => (StoredReplicaState::Ready, None, None),
                        ReplicaState::Releasing => (StoredReplicaState::Releasing, None, None),
                        ReplicaState::Syncing {
                            replaces,
                            since_epoch,
                        } => (
                            StoredReplicaState::Syncing,
                            replaces.as_ref().map(|m| m.0.clone()),
                            Some(since_epoch.0),
                        ),
                    };
                    StoredReplica {
                        member: r.member.0.clone(),
                        state,
                        replaces,
                        since_epoch,
                    }
                })
                .collect(),
            last_epoch: if partition.leader.is_some() {
                0
            } else {
                partition.epoch.0
            },
        }
    }

    /// The controller's partition, with the leader and epoch read from the leader key
    /// (`None`: no leader key).
    pub fn partition(&self, leader: Option<(MemberId, Epoch)>) -> Partition {
        let replicas = self
            .replicas
            .iter()
            .map(|r| Replica {
                member: MemberId(r.member.clone()),
                state: match r.state {
                    StoredReplicaState::Ready => ReplicaState::Ready,
                    StoredReplicaState::Releasing => ReplicaState::Releasing,
                    StoredReplicaState::Syncing => ReplicaState::Syncing {
                        replaces: r.replaces.clone().map(MemberId),
                        since_epoch: Epoch(r.since_epoch.unwrap_or(0)),
                    },
                },
            })
            .collect();
        match leader {
            Some((member, epoch)) => Partition {
                replicas,
                leader: Some(member),
                epoch,
            },
            None => Partition {
                replicas,
                leader: None,
                epoch: Epoch(self.last_epoch),
            },
        }
    }
}

/// `…/history/{generation}`: what a generation changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// Record version.
    pub v: u32,
    /// The generation.
    pub generation: u64,
    /// Partitions whose state changed.
    pub changed: Vec<u32>,
    /// Partitions whose leader changed.
    pub new_leaders: Vec<u32>,
    /// The writing controller's wall clock, Unix ms.
    pub written_unix_ms: u64,
}

/// `/_conclave/controller`: who controls the groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerClaim {
    /// Record version.
    pub v: u32,
    /// The storage member running the controller (hex id).
    pub member: String,
    /// Its Raft term when it took over.
    pub term: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_round_trip_through_their_record() {
        let partition = Partition {
            replicas: vec![
                Replica::ready("a"),
                Replica {
                    member: MemberId::from("b"),
                    state: ReplicaState::Syncing {
                        replaces: Some(MemberId::from("a")),
                        since_epoch: Epoch(9),
                    },
                },
                Replica {
                    member: MemberId::from("c"),
                    state: ReplicaState::Releasing,
                },
            ],
            leader: Some(MemberId::from("a")),
            epoch: Epoch(9),
        };
        let record = PartitionRecord::decode("p", &PartitionRecord::of(&partition).encode()).unwrap();
        assert_eq!(record.partition(Some((MemberId::from("a"), Epoch(9)))), partition);
        let leaderless = Partition {
            leader: None,
            ..partition
        };
        assert_eq!(PartitionRecord::of(&leaderless).partition(None), leaderless);
    }

    #[test]
    fn a_newer_version_is_refused_with_a_clear_error() {
        let err = MapHeader::decode("map", br#"{"v":2,"generation":1}"#).unwrap_err();
        assert!(err.to_string().contains("version 2"), "{err}");
        assert!(MapHeader::decode("map", b"not json").is_err());
    }
}
