//! A group's map as a client holds it: built from a snapshot, advanced by the
//! `WatchMap` events in generation order (a gap is refused, never papered over), and the
//! per-partition difference between two maps as one member sees it — the hooks it must
//! run, in order.

use std::collections::BTreeMap;
use std::sync::Arc;

use conclave_controller::{partition_for, MemberId, PartitionId};
use conclave_proto::partitionpb as pb;

use crate::election::Epoch;

/// A member's stage in a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// Takes partitions.
    Active,
    /// Gives everything away, stays registered.
    Draining,
    /// Gives everything away, then deregisters.
    Leaving,
}

/// A registered member as the map shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// Its id.
    pub id: MemberId,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its weight.
    pub weight: u32,
    /// Its stage.
    pub state: MemberState,
    /// Where it said it can be reached.
    pub advertise_address: String,
    /// Its HTTP endpoint.
    pub http_endpoint: String,
    /// Its gRPC endpoint.
    pub grpc_endpoint: String,
    /// What else it published.
    pub metadata: BTreeMap<String, String>,
    /// Its session lease.
    pub lease: i64,
    /// The revision its registration was created at.
    pub create_revision: i64,
}

impl From<pb::Member> for MemberInfo {
    fn from(m: pb::Member) -> Self {
        let state = match pb::MemberState::try_from(m.state) {
            Ok(pb::MemberState::Draining) => MemberState::Draining,
            Ok(pb::MemberState::Leaving) => MemberState::Leaving,
            _ => MemberState::Active,
        };
        MemberInfo {
            id: MemberId(m.id),
            labels: m.labels.into_iter().collect(),
            weight: m.weight,
            state,
            advertise_address: m.advertise_address,
            http_endpoint: m.http_endpoint,
            grpc_endpoint: m.grpc_endpoint,
            metadata: m.metadata.into_iter().collect(),
            lease: m.lease,
            create_revision: m.create_revision,
        }
    }
}

/// A replica's stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaStage {
    /// Holds the partition; may lead.
    Ready,
    /// Added, not ready yet; takes over from `replaces` once ready.
    Syncing {
        /// The replica it replaces.
        replaces: Option<MemberId>,
    },
    /// Letting go.
    Releasing,
}

/// One replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaInfo {
    /// Its member.
    pub member: MemberId,
    /// Its stage.
    pub stage: ReplicaStage,
}

/// One partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Its id.
    pub id: PartitionId,
    /// Its replicas.
    pub replicas: Vec<ReplicaInfo>,
    /// Its leader, if it has one.
    pub leader: Option<MemberId>,
    /// The fencing epoch of its leadership.
    pub epoch: Epoch,
}

impl PartitionInfo {
    /// The stage of `member`'s replica, if it has one.
    pub fn stage_of(&self, member: &MemberId) -> Option<&ReplicaStage> {
        self.replicas
            .iter()
            .find(|r| &r.member == member)
            .map(|r| &r.stage)
    }

    /// The members holding a replica (any stage).
    pub fn members(&self) -> impl Iterator<Item = &MemberId> {
        self.replicas.iter().map(|r| &r.member)
    }
}

impl From<pb::Partition> for PartitionInfo {
    fn from(p: pb::Partition) -> Self {
        PartitionInfo {
            id: PartitionId(p.id),
            replicas: p
                .replicas
                .into_iter()
                .map(|r| {
                    let stage = match pb::ReplicaState::try_from(r.state) {
                        Ok(pb::ReplicaState::Syncing) => ReplicaStage::Syncing {
                            replaces: (!r.replaces.is_empty()).then_some(MemberId(r.replaces)),
                        },
                        Ok(pb::ReplicaState::Releasing) => ReplicaStage::Releasing,
                        _ => ReplicaStage::Ready,
                    };
                    ReplicaInfo {
                        member: MemberId(r.member),
                        stage,
                    }
                })
                .collect(),
            leader: (!p.leader.is_empty()).then_some(MemberId(p.leader)),
            epoch: Epoch(p.epoch),
        }
    }
}

/// A group's map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMap {
    /// The group.
    pub group: String,
    /// The map's generation.
    pub generation: u64,
    /// The store revision it reflects.
    pub revision: i64,
    /// Every partition, by id.
    pub partitions: Vec<PartitionInfo>,
    /// The registered members.
    pub members: BTreeMap<MemberId, MemberInfo>,
}

/// A map event that does not follow the map (a generation skipped or repeated).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("map of {group:?} is at generation {have}, the event is generation {got}")]
pub struct Gap {
    /// The group.
    pub group: String,
    /// The map's generation.
    pub have: u64,
    /// The event's.
    pub got: u64,
}

impl GroupMap {
    /// The map of a snapshot.
    pub fn from_snapshot(map: pb::PartitionMap, revision: i64) -> GroupMap {
        GroupMap {
            group: map.group,
            generation: map.generation,
            revision,
            partitions: map.partition.into_iter().map(PartitionInfo::from).collect(),
            members: map
                .members
                .into_iter()
                .map(|m| (MemberId(m.id.clone()), MemberInfo::from(m)))
                .collect(),
        }
    }

    /// The partition owning `key` (the documented routing hash).
    pub fn partition_for(&self, key: &[u8]) -> PartitionId {
        partition_for(key, self.partitions.len() as u32)
    }

    /// Partition `id`.
    pub fn partition(&self, id: PartitionId) -> Option<&PartitionInfo> {
        self.partitions.get(id.0 as usize)
    }

    /// The leader of `id` and its registration (endpoints), if any.
    pub fn leader(&self, id: PartitionId) -> Option<&MemberInfo> {
        self.partition(id)?
            .leader
            .as_ref()
            .and_then(|m| self.members.get(m))
    }

    /// The members holding a replica of `id` (any stage).
    pub fn replicas(&self, id: PartitionId) -> Vec<MemberId> {
        self.partition(id)
            .map(|p| p.members().cloned().collect())
            .unwrap_or_default()
    }

    /// Applies one event. A generation must be exactly the next one; membership changes
    /// apply at any point.
    pub fn apply(&mut self, event: pb::map_event::Event, revision: i64) -> Result<(), Gap> {
        match event {
            pb::map_event::Event::Snapshot(map) => *self = GroupMap::from_snapshot(map, revision),
            pb::map_event::Event::Change(change) => {
                if change.generation != self.generation + 1 {
                    return Err(Gap {
                        group: self.group.clone(),
                        have: self.generation,
                        got: change.generation,
                    });
                }
                for partition in change.partitions {
                    let info = PartitionInfo::from(partition);
                    if let Some(slot) = self.partitions.get_mut(info.id.0 as usize) {
                        *slot = info;
                    }
                }
                self.generation = change.generation;
            }
            pb::map_event::Event::Members(change) => {
                for member in change.updated {
                    self.members
                        .insert(MemberId(member.id.clone()), MemberInfo::from(member));
                }
                for gone in change.left {
                    self.members.remove(&MemberId(gone));
                }
            }
            pb::map_event::Event::Deleted(_) => {}
        }
        self.revision = self.revision.max(revision);
        Ok(())
    }
}

/// A shared, immutable view of a map.
pub type MapView = Arc<GroupMap>;

/// A member's role in a partition it was just assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// It replaces the partition's leader, or the partition has none: it will lead once
    /// ready (confirmed by `on_leader_elected`).
    Leader,
    /// It joins the partition's replicas.
    Follower,
}

/// One hook to run, in order, for one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hook {
    /// The member was given the partition (as a syncing replica, or found holding it).
    Assigned {
        /// The partition.
        partition: PartitionId,
        /// Its expected role.
        role: Role,
        /// Who held it before (the replica it replaces, or the leader), to copy from.
        previous_owner: Option<MemberId>,
        /// Whether the member must report it ready after the hook.
        report_ready: bool,
    },
    /// The member no longer holds the partition (or is letting go).
    Unassigned {
        /// The partition.
        partition: PartitionId,
        /// Who has it now (its leader, or the replica that replaced this one).
        new_owner: Option<MemberId>,
        /// Whether the member must report it released after the hook.
        report_released: bool,
    },
    /// The member leads the partition at `epoch`.
    LeaderElected {
        /// The partition.
        partition: PartitionId,
        /// The epoch.
        epoch: Epoch,
    },
    /// The member no longer leads the partition.
    LeaderLost {
        /// The partition.
        partition: PartitionId,
    },
    /// Another member became a replica of a partition this member holds.
    ReplicaAdded {
        /// The partition.
        partition: PartitionId,
        /// The member.
        member: MemberId,
    },
    /// Another member stopped being a replica of a partition this member holds.
    ReplicaRemoved {
        /// The partition.
        partition: PartitionId,
        /// The member.
        member: MemberId,
    },
}

/// The hooks `me` runs going from `old` to `new` for one partition, in order: losses
/// (leadership first, then the partition), then gains (the partition first, then
/// leadership), then other members' replicas. Never a leadership without the partition,
/// never two elections without a loss between.
pub fn transitions(me: &MemberId, old: Option<&PartitionInfo>, new: &PartitionInfo) -> Vec<Hook> {
    let id = new.id;
    let mut hooks = Vec::new();
    let old_stage = old.and_then(|p| p.stage_of(me));
    let new_stage = new.stage_of(me);
    let led = old.filter(|p| p.leader.as_ref() == Some(me)).map(|p| p.epoch);
    let leads = (new.leader.as_ref() == Some(me)).then_some(new.epoch);

    // Losses.
    if led.is_some() && led != leads {
        hooks.push(Hook::LeaderLost { partition: id });
    }
    let releasing_now = matches!(new_stage, Some(ReplicaStage::Releasing));
    let was_releasing = matches!(old_stage, Some(ReplicaStage::Releasing));
    let holds_now = new_stage.is_some() && !releasing_now;
    if old_stage.is_some() && !was_releasing && !holds_now {
        let new_owner = new
            .leader
            .clone()
            .filter(|l| l != me)
            .or_else(|| new.members().find(|m| *m != me).cloned());
        hooks.push(Hook::Unassigned {
            partition: id,
            new_owner,
            report_released: releasing_now,
        });
    }

    // Gains.
    if old_stage.is_none() || was_releasing {
        if let Some(stage) = new_stage.filter(|s| !matches!(s, ReplicaStage::Releasing)) {
            let (previous_owner, report_ready) = match stage {
                ReplicaStage::Syncing { replaces } => (replaces.clone().or_else(|| new.leader.clone()), true),
                _ => (new.leader.clone().filter(|l| l != me), false),
            };
            let role = match (stage, &new.leader) {
                (_, None) => Role::Leader,
                (ReplicaStage::Syncing { replaces: Some(r) }, Some(l)) if r == l => Role::Leader,
                (_, Some(l)) if l == me => Role::Leader,
                _ => Role::Follower,
            };
            hooks.push(Hook::Assigned {
                partition: id,
                role,
                previous_owner,
                report_ready,
            });
        }
    }
    if let Some(epoch) = leads {
        if led != Some(epoch) && holds_now {
            hooks.push(Hook::LeaderElected { partition: id, epoch });
        }
    }

    // Other members' replicas, while this member holds the partition.
    if holds_now {
        let before: Vec<&MemberId> = old
            .map(|p| p.members().filter(|m| *m != me).collect())
            .unwrap_or_default();
        let after: Vec<&MemberId> = new.members().filter(|m| *m != me).collect();
        for member in after.iter().filter(|m| !before.contains(m)) {
            hooks.push(Hook::ReplicaAdded {
                partition: id,
                member: (*member).clone(),
            });
        }
        for member in before.iter().filter(|m| !after.contains(m)) {
            hooks.push(Hook::ReplicaRemoved {
                partition: id,
                member: (*member).clone(),
            });
        }
    }
    hooks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> MemberId {
        MemberId::from("me")
    }

    fn partition(replicas: &[(&str, ReplicaStage)], leader: Option<&str>, epoch: i64) -> PartitionInfo {
        PartitionInfo {
            id: PartitionId(3),
            replicas: replicas
                .iter()
                .map(|(m, s)| ReplicaInfo {
                    member: MemberId::from(*m),
                    stage: s.clone(),
                })
                .collect(),
            leader: leader.map(MemberId::from),
            epoch: Epoch(epoch),
        }
    }

    #[test]
    fn a_move_in_runs_assigned_then_elected_and_a_move_out_lost_then_unassigned() {
        let syncing = ReplicaStage::Syncing {
            replaces: Some(MemberId::from("old")),
        };
        let before = partition(&[("old", ReplicaStage::Ready)], Some("old"), 5);
        let adding = partition(&[("old", ReplicaStage::Ready), ("me", syncing)], Some("old"), 5);
        assert_eq!(
            transitions(&me(), Some(&before), &adding),
            vec![Hook::Assigned {
                partition: PartitionId(3),
                role: Role::Leader,
                previous_owner: Some(MemberId::from("old")),
                report_ready: true
            }]
        );
        let moved = partition(
            &[("old", ReplicaStage::Releasing), ("me", ReplicaStage::Ready)],
            Some("me"),
            9,
        );
        assert_eq!(
            transitions(&me(), Some(&adding), &moved),
            vec![Hook::LeaderElected {
                partition: PartitionId(3),
                epoch: Epoch(9)
            }]
        );
        // The other side: "old" loses leadership, then lets go.
        let old = MemberId::from("old");
        assert_eq!(
            transitions(&old, Some(&adding), &moved),
            vec![
                Hook::LeaderLost {
                    partition: PartitionId(3)
                },
                Hook::Unassigned {
                    partition: PartitionId(3),
                    new_owner: Some(MemberId::from("me")),
                    report_released: true
                }
            ]
        );
        let removed = partition(&[("me", ReplicaStage::Ready)], Some("me"), 9);
        assert!(
            transitions(&old, Some(&moved), &removed).is_empty(),
            "already unassigned"
        );
        assert_eq!(
            transitions(&me(), Some(&moved), &removed),
            vec![Hook::ReplicaRemoved {
                partition: PartitionId(3),
                member: MemberId::from("old")
            }]
        );
    }

    #[test]
    fn a_new_epoch_for_the_same_leader_is_a_loss_then_an_election() {
        let a = partition(&[("me", ReplicaStage::Ready)], Some("me"), 4);
        let b = partition(&[("me", ReplicaStage::Ready)], Some("me"), 8);
        assert_eq!(
            transitions(&me(), Some(&a), &b),
            vec![
                Hook::LeaderLost {
                    partition: PartitionId(3)
                },
                Hook::LeaderElected {
                    partition: PartitionId(3),
                    epoch: Epoch(8)
                }
            ]
        );
    }

    #[test]
    fn an_abandoned_sync_is_unassigned_without_a_release_report() {
        let syncing = partition(
            &[
                ("a", ReplicaStage::Ready),
                ("me", ReplicaStage::Syncing { replaces: None }),
            ],
            Some("a"),
            4,
        );
        let abandoned = partition(&[("a", ReplicaStage::Ready)], Some("a"), 4);
        assert_eq!(
            transitions(&me(), Some(&syncing), &abandoned),
            vec![Hook::Unassigned {
                partition: PartitionId(3),
                new_owner: Some(MemberId::from("a")),
                report_released: false
            }]
        );
    }

    #[test]
    fn generations_apply_only_in_order() {
        let mut map = GroupMap {
            group: "g".into(),
            generation: 4,
            revision: 10,
            partitions: vec![PartitionInfo::default()],
            members: BTreeMap::new(),
        };
        let change = |generation| {
            pb::map_event::Event::Change(pb::MapChange {
                generation,
                partitions: vec![pb::Partition {
                    id: 0,
                    leader: "x".into(),
                    epoch: 11,
                    ..Default::default()
                }],
            })
        };
        assert!(
            map.apply(change(6), 12).is_err(),
            "a skipped generation is refused"
        );
        assert!(map.apply(change(4), 12).is_err(), "a repeated one too");
        map.apply(change(5), 12).unwrap();
        assert_eq!(map.generation, 5);
        assert_eq!(map.partitions[0].leader, Some(MemberId::from("x")));
    }
}
