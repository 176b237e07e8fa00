//! Leader choice: one leader per partition among its ready replicas, balanced across
//! members.
//!
//! The epoch of a leadership is not chosen here: it is the store revision of the map
//! write that makes the leader (the runtime learns it when the write commits), so every
//! new leadership of a partition has a strictly higher epoch than the last, whoever
//! controls the map — a counter could be reset, a revision cannot.

use std::collections::{BTreeMap, BTreeSet};

use crate::placement::eligible;
use crate::types::{Map, Member, MemberId, Partition, PartitionId, Settings};

/// The replica that should lead `partition` now that it needs a leader: among its ready
/// replicas, an eligible (active) member before a draining or leaving one, then the one
/// leading the fewest partitions (`led`), then the earliest in the target order
/// (`target`), then the smallest id. `None` when no replica is ready.
pub fn choose(
    partition: &Partition,
    target: &[MemberId],
    led: &BTreeMap<MemberId, u32>,
    members: &[Member],
) -> Option<MemberId> {
    partition
        .ready_members()
        .min_by_key(|member| {
            let active = members.iter().any(|m| &m.id == *member && m.is_eligible());
            let position = target.iter().position(|t| t == *member).unwrap_or(usize::MAX);
            (
                !active,
                led.get(*member).copied().unwrap_or(0),
                position,
                (*member).clone(),
            )
        })
        .cloned()
}

/// The balanced number of leaderships of each eligible member: ceil(P·w/W).
pub fn fair_share(members: &[Member], settings: &Settings) -> BTreeMap<MemberId, u32> {
    let eligible = eligible(members);
    let weights: u64 = eligible.iter().map(|m| u64::from(m.weight)).sum();
    eligible
        .iter()
        .map(|m| {
            let share = (u64::from(settings.partitions) * u64::from(m.weight)).div_ceil(weights.max(1));
            (m.id.clone(), share.min(u64::from(settings.partitions)) as u32)
        })
        .collect()
}

/// Leadership transfers that bring every member to at most its fair share, among the
/// partitions in `movable` (at most `limit` transfers):
/// - a partition led by a member that may not lead (draining, leaving, weight 0) moves to
///   its least-leading eligible ready replica — at once, even while `settled` is false;
/// - once `settled`, a member above its fair share hands one leadership down a chain of
///   partitions to a member below its own (an augmenting path: `a` leads `p` where `b` is
///   a ready replica, `b` leads `q` where `c` is, ...), so the excess moves even when no
///   replica of its own partitions has room. Members in the middle keep their count.
///
/// Each transfer strictly lowers the excess above fair shares, so transfers never go
/// back and forth.
pub fn rebalance(
    map: &Map,
    members: &[Member],
    settings: &Settings,
    movable: &BTreeSet<PartitionId>,
    settled: bool,
    limit: usize,
) -> Vec<(PartitionId, MemberId)> {
    let fair = fair_share(members, settings);
    let mut led = map.leaderships();
    let mut leader_of: BTreeMap<PartitionId, MemberId> = map
        .partitions
        .iter()
        .enumerate()
        .filter_map(|(index, p)| p.leader.clone().map(|l| (PartitionId(index as u32), l)))
        .collect();
    let mut moved: BTreeSet<PartitionId> = BTreeSet::new();
    let mut transfers = Vec::new();
    // Who may take each movable partition: its eligible ready replicas other than the leader.
    let heirs = |id: &PartitionId, leader: &MemberId| -> Vec<MemberId> {
        map.partitions[id.0 as usize]
            .ready_members()
            .filter(|m| *m != leader && fair.contains_key(*m))
            .cloned()
            .collect()
    };

    // Leaders that may not lead.
    for id in movable {
        if transfers.len() >= limit {
            return transfers;
        }
        let Some(leader) = leader_of.get(id).cloned() else {
            continue;
        };
        if fair.contains_key(&leader) {
            continue;
        }
        let best = heirs(id, &leader)
            .into_iter()
            .min_by_key(|m| (normalized(&led, &fair, m), m.clone()));
        if let Some(to) = best {
            *led.entry(leader.clone()).or_insert(1) -= 1;
            *led.entry(to.clone()).or_insert(0) += 1;
            leader_of.insert(*id, to.clone());
            moved.insert(*id);
            transfers.push((*id, to));
        }
    }
    if !settled {
        return transfers;
    }

    // Excess above fair shares, along augmenting paths.
    let over: Vec<MemberId> = fair.keys().cloned().collect();
    for source in over {
        while led.get(&source).copied().unwrap_or(0) > fair[&source] && transfers.len() < limit {
            // Breadth-first from `source` over "leads a partition the next one could lead".
            let mut came_from: BTreeMap<MemberId, (MemberId, PartitionId)> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([source.clone()]);
            let mut seen = BTreeSet::from([source.clone()]);
            let mut sink = None;
            while let Some(member) = queue.pop_front() {
                for (id, leader) in &leader_of {
                    if leader != &member || !movable.contains(id) || moved.contains(id) {
                        continue;
                    }
                    for heir in heirs(id, leader) {
                        if seen.insert(heir.clone()) {
                            came_from.insert(heir.clone(), (member.clone(), *id));
                            if led.get(&heir).copied().unwrap_or(0) < fair[&heir] {
                                sink = Some(heir);
                                break;
                            }
                            queue.push_back(heir);
                        }
                    }
                    if sink.is_some() {
                        break;
                    }
                }
                if sink.is_some() {
                    break;
                }
            }
            let Some(sink) = sink else { break };
            let mut path = Vec::new();
            let mut at = sink.clone();
            while let Some((from, id)) = came_from.get(&at).cloned() {
                path.push((id, at.clone()));
                at = from;
            }
            if transfers.len() + path.len() > limit {
                return transfers;
            }
            *led.entry(source.clone()).or_insert(1) -= 1;
            *led.entry(sink).or_insert(0) += 1;
            for (id, to) in path.into_iter().rev() {
                leader_of.insert(id, to.clone());
                moved.insert(id);
                transfers.push((id, to));
            }
        }
    }
    transfers
}

/// Leaderships as a fraction of the fair share (for ordering candidates).
fn normalized(led: &BTreeMap<MemberId, u32>, fair: &BTreeMap<MemberId, u32>, member: &MemberId) -> u64 {
    let leads = u64::from(led.get(member).copied().unwrap_or(0));
    let share = u64::from(fair.get(member).copied().unwrap_or(1)).max(1);
    leads * 1_000_000 / share
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{MemberState, Replica};

    fn led(pairs: &[(&str, u32)]) -> BTreeMap<MemberId, u32> {
        pairs.iter().map(|(m, n)| (MemberId::from(*m), *n)).collect()
    }

    #[test]
    fn the_least_loaded_active_ready_replica_leads() {
        let partition = Partition {
            replicas: vec![Replica::ready("a"), Replica::ready("b"), Replica::ready("c")],
            ..Default::default()
        };
        let mut members = vec![Member::new("a"), Member::new("b"), Member::new("c")];
        let target = [MemberId::from("c"), MemberId::from("b"), MemberId::from("a")];
        assert_eq!(
            choose(
                &partition,
                &target,
                &led(&[("a", 3), ("b", 1), ("c", 1)]),
                &members
            ),
            Some(MemberId::from("c")),
            "equal load: the target order decides"
        );
        members[2].state = MemberState::Draining;
        assert_eq!(
            choose(
                &partition,
                &target,
                &led(&[("a", 3), ("b", 1), ("c", 0)]),
                &members
            ),
            Some(MemberId::from("b")),
            "a draining member leads only if nobody else can"
        );
        let none_ready = Partition::default();
        assert_eq!(choose(&none_ready, &target, &BTreeMap::new(), &members), None);
    }

    #[test]
    fn excess_moves_along_a_chain_to_the_member_with_room() {
        // a leads p0 and p1 (fair share 1 each of 3 partitions... with 3 members: 1 each);
        // p0's other replica is b, who already leads p2 whose other replica is c (none).
        let members = vec![Member::new("a"), Member::new("b"), Member::new("c")];
        let settings = Settings::new(3, 2);
        let p = |replicas: &[&str], leader: &str| Partition {
            replicas: replicas.iter().map(|m| Replica::ready(*m)).collect(),
            leader: Some(MemberId::from(leader)),
            epoch: crate::types::Epoch(1),
        };
        let map = Map {
            generation: crate::types::Generation(1),
            partitions: vec![p(&["a", "b"], "a"), p(&["a", "b"], "a"), p(&["b", "c"], "b")],
        };
        let all: BTreeSet<PartitionId> = (0..3).map(PartitionId).collect();
        let transfers = rebalance(&map, &members, &settings, &all, true, 10);
        // a → b on p0 (or p1), then b → c on p2: everyone leads one.
        assert_eq!(transfers.len(), 2, "{transfers:?}");
        assert_eq!(transfers[1], (PartitionId(2), MemberId::from("c")));
        assert!(
            rebalance(&map, &members, &settings, &all, false, 10).is_empty(),
            "waits to settle"
        );
    }

    #[test]
    fn a_draining_leader_hands_over_at_once() {
        let mut members = vec![Member::new("a"), Member::new("b")];
        members[0].state = MemberState::Draining;
        let map = Map {
            generation: crate::types::Generation(1),
            partitions: vec![Partition {
                replicas: vec![Replica::ready("a"), Replica::ready("b")],
                leader: Some(MemberId::from("a")),
                epoch: crate::types::Epoch(1),
            }],
        };
        let all = BTreeSet::from([PartitionId(0)]);
        let transfers = rebalance(&map, &members, &Settings::new(1, 2), &all, false, 10);
        assert_eq!(transfers, vec![(PartitionId(0), MemberId::from("b"))]);
    }
}
