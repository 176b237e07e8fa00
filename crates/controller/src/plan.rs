//! The plan: the difference between the current map and the target, as hand-over steps
//! to start now, within the group's limits.
//!
//! Safety: a replica is only ever removed after its replacement is ready (a move adds
//! first), or when the partition has more replicas than its target; so every partition
//! keeps at least min(R, live replicas) − 1 ready replicas during any plan, and a leader
//! is released only after leadership moved to another ready replica. One step per
//! partition is in flight at a time; at most `max_moves_per_member` involve one member
//! (as source or target) and at most `max_moves_per_group` are in flight in the group.
//!
//! Stability: moves that only improve balance wait until the member set has been
//! unchanged for `rebalance_delay`, so a flapping member causes no churn. Not delayed:
//! placing partitions that have no replica at all, and moving replicas and leaderships
//! away from draining or leaving members.

use std::collections::{BTreeMap, BTreeSet};

use crate::leader;
use crate::placement::Target;
use crate::types::{Map, Member, MemberId, MemberState, Millis, PartitionId, ReplicaState, Settings};

/// Partitions with no replica at all that get their first replicas in one map write, at
/// most (bounds the size of one write; the rest follow in the next).
pub const FIRST_PLACEMENT_BATCH: usize = 512;

/// One step to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Add `to` as a syncing replica of `partition`; once ready it replaces `replaces`.
    Add {
        /// The partition.
        partition: PartitionId,
        /// The new replica's member.
        to: MemberId,
        /// The replica it takes over from, if any.
        replaces: Option<MemberId>,
    },
    /// Release a replica the target no longer has (the partition has more than its
    /// target), moving leadership to `new_leader` first if it leads.
    Release {
        /// The partition.
        partition: PartitionId,
        /// The replica to let go.
        member: MemberId,
        /// Who leads after it, when it leads now.
        new_leader: Option<MemberId>,
    },
    /// Move leadership (both are ready replicas).
    TransferLeader {
        /// The partition.
        partition: PartitionId,
        /// The new leader.
        to: MemberId,
    },
}

/// What the plan is computed from.
pub struct PlanInput<'a> {
    /// The map after this round's acks, deaths and timeouts.
    pub map: &'a Map,
    /// The target replica sets.
    pub target: &'a Target,
    /// The live members.
    pub members: &'a [Member],
    /// The group's settings.
    pub settings: &'a Settings,
    /// Now.
    pub now: Millis,
    /// When the member set (or a member's weight or state) last changed.
    pub membership_changed_at: Millis,
    /// Partitions that start no step now (their leadership changed in this round: a
    /// replica added now would sync under an epoch not known until the map is written).
    pub frozen: &'a BTreeSet<PartitionId>,
}

/// Steps in flight per member, and in the group.
#[derive(Debug, Default)]
struct Budget {
    per_member: BTreeMap<MemberId, u32>,
    group: u32,
}

impl Budget {
    fn of(map: &Map) -> Budget {
        let mut budget = Budget::default();
        for partition in &map.partitions {
            let mut involved = BTreeSet::new();
            for replica in &partition.replicas {
                match &replica.state {
                    ReplicaState::Ready => {}
                    ReplicaState::Releasing => {
                        involved.insert(replica.member.clone());
                    }
                    ReplicaState::Syncing { replaces, .. } => {
                        involved.insert(replica.member.clone());
                        involved.extend(replaces.iter().cloned());
                    }
                }
            }
            if !involved.is_empty() {
                budget.group += 1;
            }
            for member in involved {
                *budget.per_member.entry(member).or_insert(0) += 1;
            }
        }
        budget
    }

    fn allows(&self, members: &[&MemberId], settings: &Settings) -> bool {
        self.group < settings.max_moves_per_group
            && members
                .iter()
                .all(|m| self.per_member.get(*m).copied().unwrap_or(0) < settings.max_moves_per_member)
    }

    fn take(&mut self, members: &[&MemberId]) {
        self.group += 1;
        for member in members {
            *self.per_member.entry((*member).clone()).or_insert(0) += 1;
        }
    }
}

/// The steps to start now, most urgent first: partitions without any replica, then moves
/// away from draining or leaving members, then partitions with fewer ready replicas than
/// their target, then the rest (balance); finally leadership balance.
pub fn plan(input: &PlanInput<'_>) -> Vec<Step> {
    let settings = input.settings;
    let eligible: BTreeSet<&MemberId> = input
        .members
        .iter()
        .filter(|m| m.is_eligible())
        .map(|m| &m.id)
        .collect();
    let departing: BTreeSet<&MemberId> = input
        .members
        .iter()
        .filter(|m| m.state != MemberState::Active || m.weight == 0)
        .map(|m| &m.id)
        .collect();
    if eligible.is_empty() {
        // Nowhere to put anything: keep what the draining members hold.
        return Vec::new();
    }
    let settled = input.now.since(input.membership_changed_at) >= settings.rebalance_delay;
    // Live members that stay in the group (draining ones stay; leaving ones do not).
    let staying = input
        .members
        .iter()
        .filter(|m| m.state != MemberState::Leaving)
        .count();
    let mut budget = Budget::of(input.map);
    let mut steps = Vec::new();

    // First placement: partitions with no replica at all (nothing to move, nothing to
    // lose), not limited per member.
    let mut first = 0usize;
    for (index, partition) in input.map.partitions.iter().enumerate() {
        let id = PartitionId(index as u32);
        if !partition.replicas.is_empty() || first >= FIRST_PLACEMENT_BATCH {
            continue;
        }
        let target = input.target.of(id);
        if target.is_empty() {
            continue;
        }
        first += 1;
        for to in target {
            steps.push(Step::Add {
                partition: id,
                to: to.clone(),
                replaces: None,
            });
        }
    }

    // Replica moves, urgent ones first.
    let mut candidates: Vec<(u8, PartitionId, Step)> = Vec::new();
    for (index, partition) in input.map.partitions.iter().enumerate() {
        let id = PartitionId(index as u32);
        if partition.replicas.is_empty() || partition.in_flight() || input.frozen.contains(&id) {
            continue;
        }
        let target = input.target.of(id);
        let current: Vec<&MemberId> = partition.replicas.iter().map(|r| &r.member).collect();
        let missing: Vec<&MemberId> = target.iter().filter(|t| !current.contains(t)).collect();
        let mut extra: Vec<&MemberId> = current.iter().copied().filter(|c| !target.contains(c)).collect();
        if missing.is_empty() && extra.is_empty() {
            continue;
        }
        // The replica to give up first: one on a departing member, then one that does
        // not lead, then the leader.
        extra.sort_by_key(|m| {
            (
                !departing.contains(m),
                partition.leader.as_ref() == Some(*m),
                (*m).clone(),
            )
        });
        // Moving away from a departing member is not delayed; re-creating a lost replica
        // or improving balance waits for the member set to settle (a member that comes
        // back soon keeps its place), the under-replicated first.
        let departing_extra = extra.iter().any(|m| departing.contains(m));
        let under_replicated = partition.ready_members().count() < target.len();
        if !departing_extra && !settled {
            continue;
        }
        let priority = if departing_extra {
            0
        } else if under_replicated {
            1
        } else {
            2
        };
        let step = if let Some(to) = missing.first() {
            Step::Add {
                partition: id,
                to: (*to).clone(),
                replaces: extra.first().map(|m| (*m).clone()),
            }
        } else {
            // More replicas than the target: release one, if the partition keeps
            // min(R, live replicas) − 1 ready replicas — and a draining member (it stays)
            // keeps its replica while the members that stay could not hold R without it.
            let member = extra[0].clone();
            let ready_after = partition.ready_members().filter(|m| **m != member).count();
            let floor = (settings.replicas as usize)
                .min(partition.replicas.len())
                .saturating_sub(1);
            let draining = input
                .members
                .iter()
                .any(|m| m.id == member && m.state == MemberState::Draining);
            if ready_after < floor || (draining && ready_after < (settings.replicas as usize).min(staying)) {
                continue;
            }
            let new_leader = if partition.leader.as_ref() == Some(&member) {
                let mut rest = partition.clone();
                rest.replicas.retain(|r| r.member != member);
                match leader::choose(&rest, target, &input.map.leaderships(), input.members) {
                    Some(next) => Some(next),
                    None => continue,
                }
            } else {
                None
            };
            Step::Release {
                partition: id,
                member,
                new_leader,
            }
        };
        candidates.push((priority, id, step));
    }
    candidates.sort_by_key(|(priority, id, _)| (*priority, *id));
    for (_, _, step) in candidates {
        let involved: Vec<&MemberId> = match &step {
            Step::Add { to, replaces, .. } => std::iter::once(to).chain(replaces.iter()).collect(),
            Step::Release { member, .. } => vec![member],
            Step::TransferLeader { .. } => Vec::new(),
        };
        if budget.allows(&involved, settings) {
            budget.take(&involved);
            steps.push(step);
        }
    }

    // Leadership balance, among partitions with nothing in flight and no step above.
    let stepped: BTreeSet<PartitionId> = steps
        .iter()
        .map(|s| match s {
            Step::Add { partition, .. }
            | Step::Release { partition, .. }
            | Step::TransferLeader { partition, .. } => *partition,
        })
        .collect();
    let movable: BTreeSet<PartitionId> = input
        .map
        .partitions
        .iter()
        .enumerate()
        .map(|(index, _)| PartitionId(index as u32))
        .filter(|id| {
            let partition = &input.map.partitions[id.0 as usize];
            !partition.in_flight() && !stepped.contains(id) && !input.frozen.contains(id)
        })
        .collect();
    let room = settings.max_moves_per_group.saturating_sub(budget.group) as usize;
    let transfers = leader::rebalance(input.map, input.members, settings, &movable, settled, room);
    steps.extend(
        transfers
            .into_iter()
            .map(|(partition, to)| Step::TransferLeader { partition, to }),
    );
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::place;
    use crate::types::{Epoch, Generation, Partition, Replica};
    use std::time::Duration;

    fn ready_map(partitions: u32, members: &[&str]) -> Map {
        Map {
            generation: Generation(1),
            partitions: (0..partitions)
                .map(|_| Partition {
                    replicas: members.iter().map(|m| Replica::ready(*m)).collect(),
                    leader: Some(MemberId::from(members[0])),
                    epoch: Epoch(2),
                })
                .collect(),
        }
    }

    fn run(map: &Map, members: &[Member], settings: &Settings, now: u64, changed_at: u64) -> Vec<Step> {
        let target = place("g", members, settings);
        plan(&PlanInput {
            map,
            target: &target,
            members,
            settings,
            now: Millis(now),
            membership_changed_at: Millis(changed_at),
            frozen: &BTreeSet::new(),
        })
    }

    fn moves(steps: &[Step]) -> usize {
        steps.iter().filter(|s| matches!(s, Step::Add { .. })).count()
    }

    #[test]
    fn first_placement_is_immediate_and_covers_every_target_replica() {
        let settings = Settings::new(8, 2);
        let members = vec![Member::new("a"), Member::new("b")];
        let steps = run(&Map::empty(8), &members, &settings, 0, 0);
        assert_eq!(moves(&steps), 16, "{steps:?}");
        assert!(steps
            .iter()
            .all(|s| matches!(s, Step::Add { replaces: None, .. })));
    }

    #[test]
    fn a_join_waits_for_the_member_set_to_settle_then_moves_within_the_limits() {
        let mut settings = Settings::new(32, 1);
        settings.max_moves_per_member = 3;
        settings.max_moves_per_group = 10;
        let map = ready_map(32, &["a"]);
        let members = vec![Member::new("a"), Member::new("b")];
        assert!(
            run(&map, &members, &settings, 4_999, 0).is_empty(),
            "within the rebalance delay"
        );
        let steps = run(&map, &members, &settings, 5_000, 0);
        // Every move involves a (source) and b (target): the per-member limit binds.
        assert_eq!(moves(&steps), 3, "{steps:?}");
        assert!(steps.iter().all(
            |s| matches!(s, Step::Add { to, replaces: Some(from), .. } if to.0 == "b" && from.0 == "a")
        ));
    }

    #[test]
    fn moving_away_from_a_draining_member_is_not_delayed() {
        let settings = Settings::new(4, 1);
        let map = ready_map(4, &["a"]);
        let mut members = vec![Member::new("a"), Member::new("b")];
        members[0].state = MemberState::Draining;
        let steps = run(&map, &members, &settings, 10, 10);
        assert_eq!(moves(&steps), 4);
    }

    #[test]
    fn partitions_in_flight_or_frozen_start_nothing() {
        let settings = Settings {
            rebalance_delay: Duration::ZERO,
            ..Settings::new(2, 1)
        };
        let mut map = ready_map(2, &["a"]);
        map.partitions[0].replicas.push(Replica {
            member: MemberId::from("b"),
            state: ReplicaState::Syncing {
                replaces: Some(MemberId::from("a")),
                since_epoch: Epoch(2),
            },
        });
        let members = vec![Member::new("a").weighted(0), Member::new("b")];
        let target = place("g", &members, &settings);
        let frozen = BTreeSet::from([PartitionId(1)]);
        let steps = plan(&PlanInput {
            map: &map,
            target: &target,
            members: &members,
            settings: &settings,
            now: Millis(0),
            membership_changed_at: Millis(0),
            frozen: &frozen,
        });
        assert!(steps.is_empty(), "{steps:?}");
    }

    #[test]
    fn an_extra_replica_is_released_only_above_the_safety_floor() {
        // R went from 3 to 2: one of three ready replicas goes, keeping two.
        let settings = Settings {
            rebalance_delay: Duration::ZERO,
            ..Settings::new(1, 2)
        };
        let map = ready_map(1, &["a", "b", "c"]);
        let members = vec![Member::new("a"), Member::new("b"), Member::new("c")];
        let steps = run(&map, &members, &settings, 0, 0);
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert!(matches!(&steps[0], Step::Release { .. }));
    }
}
