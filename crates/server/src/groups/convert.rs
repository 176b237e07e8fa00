//! Groups API messages ⇄ the stored records and the controller's types.

use std::collections::BTreeMap;

use conclave_controller::{Partition, PartitionId, ReplicaState, Settings, MAX_PARTITIONS, MAX_REPLICAS};
use conclave_proto::partitionpb as pb;

use super::error::GroupError;
use super::records::{
    GroupConfig, MemberRecord, StoredMemberState, DEFAULT_SESSION_TTL_SECONDS, DEFAULT_ZONE_LABEL,
};
use super::state::{GroupView, MemberEntry};

/// Default partition count of a new group.
pub const DEFAULT_PARTITIONS: u32 = 16;
/// Default replica factor of a new group.
pub const DEFAULT_REPLICAS: u32 = 3;
/// Longest session TTL, seconds (etcd's lease maximum is far above; a day is plenty).
pub const MAX_SESSION_TTL_SECONDS: u64 = 86_400;

/// The settings of a new group: `requested` over the defaults, checked.
pub fn new_config(requested: Option<&pb::GroupSettings>) -> Result<GroupConfig, GroupError> {
    let defaults = GroupConfig::from_settings(
        &Settings::new(DEFAULT_PARTITIONS, DEFAULT_REPLICAS),
        DEFAULT_SESSION_TTL_SECONDS,
        DEFAULT_ZONE_LABEL,
    );
    merge(defaults, requested)
}

/// `current` with the fields `requested` sets, checked.
pub fn merge(
    mut config: GroupConfig,
    requested: Option<&pb::GroupSettings>,
) -> Result<GroupConfig, GroupError> {
    if let Some(r) = requested {
        if let Some(p) = r.partitions {
            config.partitions = p;
        }
        if let Some(n) = r.replicas {
            config.replicas = n;
        }
        if let Some(eps) = r.epsilon {
            if !eps.is_finite() || !(0.0..=10.0).contains(&eps) {
                return Err(GroupError::Invalid(format!(
                    "epsilon must be between 0 and 10, not {eps}"
                )));
            }
            config.epsilon_permille = (eps * 1000.0).round() as u32;
        }
        if let Some(ms) = r.rebalance_delay_ms {
            config.rebalance_delay_ms = ms;
        }
        if let Some(ttl) = r.session_ttl_seconds {
            config.session_ttl_seconds = ttl;
        }
        if let Some(ms) = r.handoff_timeout_ms {
            config.handoff_timeout_ms = ms;
        }
        if let Some(n) = r.max_moves_per_member {
            config.max_moves_per_member = n;
        }
        if let Some(n) = r.max_moves_per_group {
            config.max_moves_per_group = n;
        }
        if let Some(label) = &r.zone_label {
            config.zone_label = label.clone();
        }
    }
    config
        .settings()
        .validate()
        .map_err(|e| GroupError::Invalid(e.0))?;
    if config.session_ttl_seconds == 0 || config.session_ttl_seconds > MAX_SESSION_TTL_SECONDS {
        return Err(GroupError::Invalid(format!(
            "session_ttl_seconds must be between 1 and {MAX_SESSION_TTL_SECONDS}, not {}",
            config.session_ttl_seconds
        )));
    }
    if config.zone_label.is_empty() || config.zone_label.len() > 128 {
        return Err(GroupError::Invalid("zone_label must be 1 to 128 bytes".into()));
    }
    debug_assert!(config.partitions <= MAX_PARTITIONS && config.replicas <= MAX_REPLICAS);
    Ok(config)
}

/// Every setting of `config`.
pub fn settings_to_pb(config: &GroupConfig) -> pb::GroupSettings {
    pb::GroupSettings {
        partitions: Some(config.partitions),
        replicas: Some(config.replicas),
        epsilon: Some(f64::from(config.epsilon_permille) / 1000.0),
        rebalance_delay_ms: Some(config.rebalance_delay_ms),
        session_ttl_seconds: Some(config.session_ttl_seconds),
        handoff_timeout_ms: Some(config.handoff_timeout_ms),
        max_moves_per_member: Some(config.max_moves_per_member),
        max_moves_per_group: Some(config.max_moves_per_group),
        zone_label: Some(config.zone_label.clone()),
    }
}

/// A group's description.
pub fn group_to_pb(name: &str, config: &GroupConfig, create_revision: i64) -> pb::Group {
    pb::Group {
        name: name.to_string(),
        settings: Some(settings_to_pb(config)),
        create_revision,
    }
}

/// The stored stage of a wire member state.
pub fn member_state_from_pb(state: pb::MemberState) -> StoredMemberState {
    match state {
        pb::MemberState::Active => StoredMemberState::Active,
        pb::MemberState::Draining => StoredMemberState::Draining,
        pb::MemberState::Leaving => StoredMemberState::Leaving,
    }
}

/// A member's registration.
pub fn member_to_pb(member: &MemberEntry) -> pb::Member {
    let record: &MemberRecord = &member.record;
    let state = match record.state {
        StoredMemberState::Active => pb::MemberState::Active,
        StoredMemberState::Draining => pb::MemberState::Draining,
        StoredMemberState::Leaving => pb::MemberState::Leaving,
    };
    pb::Member {
        id: member.id.0.clone(),
        labels: record.labels.clone().into_iter().collect(),
        weight: record.weight,
        state: state as i32,
        advertise_address: record.advertise_address.clone(),
        http_endpoint: record.http_endpoint.clone(),
        grpc_endpoint: record.grpc_endpoint.clone(),
        metadata: record.metadata.clone().into_iter().collect(),
        lease: member.lease,
        create_revision: member.create_revision,
    }
}

/// A partition's state.
pub fn partition_to_pb(id: PartitionId, partition: &Partition) -> pb::Partition {
    pb::Partition {
        id: id.0,
        replicas: partition
            .replicas
            .iter()
            .map(|r| {
                let (state, replaces) = match &r.state {
                    ReplicaState::Ready => (pb::ReplicaState::Ready, String::new()),
                    ReplicaState::Releasing => (pb::ReplicaState::Releasing, String::new()),
                    ReplicaState::Syncing { replaces, .. } => (
                        pb::ReplicaState::Syncing,
                        replaces.as_ref().map(|m| m.0.clone()).unwrap_or_default(),
                    ),
                };
                pb::Replica {
                    member: r.member.0.clone(),
                    state: state as i32,
                    replaces,
                }
            })
            .collect(),
        leader: partition.leader.as_ref().map(|m| m.0.clone()).unwrap_or_default(),
        epoch: partition.epoch.0,
    }
}

/// The whole map of a group as read.
pub fn map_to_pb(view: &GroupView) -> pb::PartitionMap {
    pb::PartitionMap {
        group: view.name.clone(),
        generation: view.generation.0,
        partitions: view.config.partitions,
        partition: view
            .partitions
            .iter()
            .enumerate()
            .map(|(index, entry)| partition_to_pb(PartitionId(index as u32), &entry.partition))
            .collect(),
        members: view.members.iter().map(member_to_pb).collect(),
    }
}

/// A map of labels from the wire, checked for size.
pub fn labels(
    what: &str,
    map: &std::collections::HashMap<String, String>,
) -> Result<BTreeMap<String, String>, GroupError> {
    const MAX_ENTRIES: usize = 64;
    const MAX_BYTES: usize = 4096;
    if map.len() > MAX_ENTRIES {
        return Err(GroupError::Invalid(format!(
            "at most {MAX_ENTRIES} {what} entries, not {}",
            map.len()
        )));
    }
    for (key, value) in map {
        if key.is_empty() || key.len() + value.len() > MAX_BYTES {
            return Err(GroupError::Invalid(format!(
                "{what} entry {key:?} must have a non-empty key and at most {MAX_BYTES} bytes"
            )));
        }
    }
    Ok(map.clone().into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_settings_take_defaults_and_bad_ones_are_refused() {
        let config = new_config(None).unwrap();
        assert_eq!(
            (config.partitions, config.replicas, config.epsilon_permille),
            (16, 3, 250)
        );
        assert_eq!(config.session_ttl_seconds, 10);
        let bad = |s: pb::GroupSettings| new_config(Some(&s)).unwrap_err().to_string();
        assert!(bad(pb::GroupSettings {
            partitions: Some(0),
            ..Default::default()
        })
        .contains("partitions must be between 1 and 4096"));
        assert!(bad(pb::GroupSettings {
            replicas: Some(8),
            ..Default::default()
        })
        .contains("replicas"));
        assert!(bad(pb::GroupSettings {
            epsilon: Some(f64::NAN),
            ..Default::default()
        })
        .contains("epsilon"));
        assert!(bad(pb::GroupSettings {
            session_ttl_seconds: Some(0),
            ..Default::default()
        })
        .contains("session_ttl"));
        let merged = merge(
            config,
            Some(&pb::GroupSettings {
                epsilon: Some(0.1),
                ..Default::default()
            }),
        )
        .unwrap();
        assert_eq!(merged.epsilon_permille, 100);
        assert_eq!(merged.partitions, 16);
    }
}
