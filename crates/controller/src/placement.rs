//! Placement: the target replica set of every partition, from the members and the
//! group's settings alone (not from the current map, so the target does not depend on
//! history, and the same input always gives the same target).
//!
//! Consistent hashing with bounded load: every eligible member owns points on a hash
//! ring in proportion to its weight; a partition's replicas are the first distinct
//! members found walking the ring clockwise from the partition's own point, skipping a
//! member that already holds its cap — ceil(P·R·w/W·(1+ε)) replicas — or whose zone the
//! partition already uses. Replica slots are filled slot by slot (every partition's
//! first replica, then every partition's second, ...), so the partitions placed last are
//! not the only ones to meet full members.
//!
//! Properties (checked by the property tests in `tests/placement.rs`):
//! - every partition gets min(R, eligible members) distinct members;
//! - no member exceeds its cap (the cap is never relaxed while any member has room);
//! - no two replicas of a partition share a zone when the zones allow it (at least R
//!   zones with room); members without a zone label constrain nothing;
//! - a member joining, leaving or changing weight moves little more than the replicas it
//!   gains or loses (about P·R/N).

use std::collections::BTreeMap;

use crate::hash::placement_hash;
use crate::types::{Member, MemberId, PartitionId, Settings};

/// Ring points per member of average weight.
const POINTS_PER_MEMBER: u64 = 160;
/// How far past a partition's own replicas a member counts as "near" it (for raising
/// members below their floor).
const NEAR_MISSES: usize = 6;
/// Members are raised to their floor only when their fair share is at least this many
/// replicas: below it the hash's unevenness is a replica or two, and correcting it would
/// move more than it balances.
const MIN_SHARE_TO_FILL: u128 = 8;

/// The target replica sets: for every partition, its members in placement order (the
/// first is the partition's preferred leader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Indexed by partition.
    pub replicas: Vec<Vec<MemberId>>,
}

impl Target {
    /// The target members of `partition`.
    pub fn of(&self, partition: PartitionId) -> &[MemberId] {
        self.replicas
            .get(partition.0 as usize)
            .map_or(&[], |r| r.as_slice())
    }

    /// Replicas per member.
    pub fn load(&self) -> BTreeMap<MemberId, u32> {
        let mut load = BTreeMap::new();
        for member in self.replicas.iter().flatten() {
            *load.entry(member.clone()).or_insert(0) += 1;
        }
        load
    }
}

/// The members placement may use, in a canonical order (by id), so the result does not
/// depend on the order the caller lists them in.
pub fn eligible(members: &[Member]) -> Vec<&Member> {
    let mut eligible: Vec<&Member> = members.iter().filter(|m| m.is_eligible()).collect();
    eligible.sort_by(|a, b| a.id.cmp(&b.id));
    eligible.dedup_by(|a, b| a.id == b.id);
    eligible
}

/// ceil(total · weight · (1000 + ε‰) / (sum of weights · 1000)), computed exactly.
fn bounded_share(total: u64, weight: u32, weights: u64, epsilon_permille: u32) -> u64 {
    let numerator = u128::from(total) * u128::from(weight) * (1000 + u128::from(epsilon_permille));
    let denominator = u128::from(weights.max(1)) * 1000;
    u64::try_from(numerator.div_ceil(denominator)).unwrap_or(u64::MAX)
}

/// The replica cap of each eligible member: ceil(P·R'·w/W·(1+ε)) with R' = min(R, N),
/// and never more than P (a member holds a partition at most once).
pub fn replica_caps(members: &[Member], settings: &Settings) -> BTreeMap<MemberId, u32> {
    let eligible = eligible(members);
    let replicas = settings.replicas.min(eligible.len() as u32);
    let weights: u64 = eligible.iter().map(|m| u64::from(m.weight)).sum();
    let total = u64::from(settings.partitions) * u64::from(replicas);
    eligible
        .iter()
        .map(|m| {
            let cap = bounded_share(total, m.weight, weights, settings.epsilon_permille)
                .min(u64::from(settings.partitions));
            (m.id.clone(), cap as u32)
        })
        .collect()
}

/// The replica floor of each eligible member: floor(P·R'·w/W·(1−ε)) — placement fills a
/// member up to it by taking replicas from members above their own floor — or 0 when
/// the member's fair share is below 8 replicas.
pub fn replica_floors(members: &[Member], settings: &Settings) -> BTreeMap<MemberId, u32> {
    let eligible = eligible(members);
    let replicas = settings.replicas.min(eligible.len() as u32);
    let weights: u64 = eligible.iter().map(|m| u64::from(m.weight)).sum();
    let total = u128::from(settings.partitions) * u128::from(replicas);
    let slack = 1000u128.saturating_sub(u128::from(settings.epsilon_permille));
    eligible
        .iter()
        .map(|m| {
            let share = total * u128::from(m.weight) / u128::from(weights.max(1));
            let floor = if share >= MIN_SHARE_TO_FILL {
                total * u128::from(m.weight) * slack / (u128::from(weights.max(1)) * 1000)
            } else {
                0
            };
            (m.id.clone(), floor.min(u128::from(settings.partitions)) as u32)
        })
        .collect()
}

/// The leadership cap of each eligible member: ceil(P·w/W·(1+ε)).
pub fn leader_caps(members: &[Member], settings: &Settings) -> BTreeMap<MemberId, u32> {
    let eligible = eligible(members);
    let weights: u64 = eligible.iter().map(|m| u64::from(m.weight)).sum();
    eligible
        .iter()
        .map(|m| {
            let cap = bounded_share(
                u64::from(settings.partitions),
                m.weight,
                weights,
                settings.epsilon_permille,
            );
            (m.id.clone(), cap.min(u64::from(settings.partitions)) as u32)
        })
        .collect()
}

/// What a candidate must satisfy during one walk of the ring.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Strictness {
    /// Below its cap, and its zone not yet used up by the partition.
    Full,
    /// Below its cap (the zones could not be honoured).
    IgnoreZones,
    /// Anything not yet chosen (only when every member is at its cap).
    IgnoreCaps,
}

/// Computes the target replica sets of the group `group` (its name seeds the hashes, so
/// two groups with the same members are placed independently).
pub fn place(group: &str, members: &[Member], settings: &Settings) -> Target {
    let partitions = settings.partitions as usize;
    let eligible = eligible(members);
    if eligible.is_empty() {
        return Target {
            replicas: vec![Vec::new(); partitions],
        };
    }
    let n = eligible.len();
    let replicas = (settings.replicas as usize).min(n);
    let caps_by_id = replica_caps(members, settings);
    let caps: Vec<u32> = eligible.iter().map(|m| caps_by_id[&m.id]).collect();

    // Zones: a member without a zone label is a zone of its own.
    let mut zone_ids: BTreeMap<&str, usize> = BTreeMap::new();
    let mut zone_of = Vec::with_capacity(n);
    let mut anonymous = 0usize;
    for member in &eligible {
        match member.zone.as_deref() {
            Some(zone) => {
                let next = zone_ids.len();
                zone_of.push(*zone_ids.entry(zone).or_insert(next));
            }
            None => {
                zone_of.push(usize::MAX - anonymous);
                anonymous += 1;
            }
        }
    }
    let zone_count = zone_ids.len() + anonymous;
    // At most this many replicas of one partition per zone: 1 when there are enough zones.
    let zone_limit = replicas.div_ceil(zone_count.max(1));

    // The ring: points proportional to weight.
    let weights: u64 = eligible.iter().map(|m| u64::from(m.weight)).sum();
    let mut ring: Vec<(u64, u32)> = Vec::new();
    for (index, member) in eligible.iter().enumerate() {
        let share = u128::from(POINTS_PER_MEMBER) * n as u128 * u128::from(member.weight);
        let points = (share / u128::from(weights.max(1))).max(1) as u64;
        for point in 0..points {
            let hash = placement_hash(&[group.as_bytes(), member.id.0.as_bytes(), &point.to_le_bytes()]);
            ring.push((hash, index as u32));
        }
    }
    ring.sort_unstable();

    let mut load = vec![0u32; n];
    let mut chosen: Vec<Vec<u32>> = vec![Vec::with_capacity(replicas); partitions];
    let starts: Vec<usize> = (0..partitions)
        .map(|p| {
            let hash = placement_hash(&[group.as_bytes(), b"partition", &(p as u64).to_le_bytes()]);
            ring.partition_point(|(point, _)| *point < hash)
        })
        .collect();
    let layout = Layout {
        ring: &ring,
        caps: &caps,
        zone_of: &zone_of,
        zone_limit,
    };
    for _slot in 0..replicas {
        for p in 0..partitions {
            let pick = layout
                .walk(starts[p], &chosen[p], &load, Strictness::Full)
                .or_else(|| layout.walk(starts[p], &chosen[p], &load, Strictness::IgnoreZones))
                .or_else(|| swap_in(p, &mut chosen, &mut load, &caps))
                .or_else(|| layout.walk(starts[p], &chosen[p], &load, Strictness::IgnoreCaps));
            if let Some(member) = pick {
                load[member] += 1;
                chosen[p].push(member as u32);
            }
        }
    }
    let floors_by_id = replica_floors(members, settings);
    let floors: Vec<u32> = eligible.iter().map(|m| floors_by_id[&m.id]).collect();
    layout.fill_up(&starts, &mut chosen, &mut load, &floors);
    Target {
        replicas: chosen
            .into_iter()
            .map(|members| {
                members
                    .into_iter()
                    .map(|i| eligible[i as usize].id.clone())
                    .collect()
            })
            .collect(),
    }
}

/// The fixed facts of one placement run.
struct Layout<'a> {
    ring: &'a [(u64, u32)],
    caps: &'a [u32],
    zone_of: &'a [usize],
    zone_limit: usize,
}

impl Layout<'_> {
    /// The first member on the ring from `start` that `taken` (a partition's members so
    /// far) may add under `strictness`.
    fn walk(&self, start: usize, taken: &[u32], load: &[u32], strictness: Strictness) -> Option<usize> {
        let zone_used = |candidate: usize| {
            taken
                .iter()
                .filter(|c| self.zone_of[**c as usize] == self.zone_of[candidate])
                .count()
        };
        let acceptable = |candidate: usize| {
            if taken.contains(&(candidate as u32)) {
                return false;
            }
            match strictness {
                Strictness::IgnoreCaps => true,
                Strictness::IgnoreZones => load[candidate] < self.caps[candidate],
                Strictness::Full => {
                    load[candidate] < self.caps[candidate] && zone_used(candidate) < self.zone_limit
                }
            }
        };
        (0..self.ring.len())
            .map(|step| self.ring[(start + step) % self.ring.len()].1 as usize)
            .find(|candidate| acceptable(*candidate))
    }
}

impl Layout<'_> {
    /// The first `count` distinct members on the ring from `start`, in walk order.
    fn nearest(&self, start: usize, count: usize) -> Vec<u32> {
        let mut found: Vec<u32> = Vec::with_capacity(count);
        for step in 0..self.ring.len() {
            let member = self.ring[(start + step) % self.ring.len()].1;
            if !found.contains(&member) {
                found.push(member);
                if found.len() == count {
                    break;
                }
            }
        }
        found
    }

    /// Raises every member below its floor by taking replicas from members above theirs,
    /// in the partitions where it is nearest on the ring (its "near misses"), so that the
    /// hash's natural unevenness does not leave a member nearly empty.
    fn fill_up(&self, starts: &[usize], chosen: &mut [Vec<u32>], load: &mut [u32], floors: &[u32]) {
        let n = load.len();
        let width = chosen.first().map_or(0, Vec::len);
        let look = (width + NEAR_MISSES).min(n);
        // For every member, the partitions it is near, nearest first.
        let mut near: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
        for (p, start) in starts.iter().enumerate() {
            for (rank, member) in self.nearest(*start, look).into_iter().enumerate() {
                near[member as usize].push((rank, p));
            }
        }
        for list in &mut near {
            list.sort_unstable();
        }
        for u in 0..n {
            let mut next = 0;
            while load[u] < floors[u] && next < near[u].len() {
                let (_, p) = near[u][next];
                next += 1;
                if chosen[p].contains(&(u as u32)) {
                    continue;
                }
                // Give up the most loaded member above its floor whose zone u may take.
                let zone_count = |members: &[u32], zone: usize| {
                    members
                        .iter()
                        .filter(|m| self.zone_of[**m as usize] == zone)
                        .count()
                };
                let victim = chosen[p]
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| load[**x as usize] > floors[**x as usize])
                    .filter(|(_, x)| {
                        let others: Vec<u32> = chosen[p].iter().copied().filter(|m| m != *x).collect();
                        zone_count(&others, self.zone_of[u]) < self.zone_limit
                    })
                    .max_by_key(|(slot, x)| (load[**x as usize], *slot))
                    .map(|(slot, x)| (slot, *x));
                if let Some((slot, x)) = victim {
                    chosen[p][slot] = u as u32;
                    load[x as usize] -= 1;
                    load[u] += 1;
                }
            }
        }
    }
}

/// Every member below its cap already holds `p`: make room with one swap. A member `u`
/// below its cap takes the place of some member `x` in another partition `q` (which `u`
/// does not hold yet and `p` does not hold), so `x` — its load unchanged — can go to `p`.
/// Returns `x` with its load already lowered by one (the caller adds it back), or `None`
/// if no such swap exists.
fn swap_in(p: usize, chosen: &mut [Vec<u32>], load: &mut [u32], caps: &[u32]) -> Option<usize> {
    let below: Vec<u32> = (0..load.len() as u32)
        .filter(|u| load[*u as usize] < caps[*u as usize])
        .collect();
    for u in below {
        for q in 0..chosen.len() {
            if q == p || chosen[q].contains(&u) {
                continue;
            }
            let Some(slot) = chosen[q].iter().position(|x| !chosen[p].contains(x)) else {
                continue;
            };
            let x = chosen[q][slot];
            chosen[q][slot] = u;
            load[u as usize] += 1;
            load[x as usize] -= 1;
            return Some(x as usize);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<Member> {
        (0..n).map(|i| Member::new(format!("m{i}"))).collect()
    }

    #[test]
    fn every_partition_gets_r_distinct_members_within_the_cap() {
        let settings = Settings::new(64, 3);
        let members = members(5);
        let target = place("g", &members, &settings);
        let caps = replica_caps(&members, &settings);
        assert_eq!(caps[&MemberId::from("m0")], 48, "ceil(64·3/5·1.25)");
        for replicas in &target.replicas {
            assert_eq!(replicas.len(), 3);
            let mut distinct = replicas.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), 3);
        }
        for (member, load) in target.load() {
            assert!(load <= caps[&member], "{member} holds {load}");
        }
    }

    #[test]
    fn fewer_members_than_replicas_gives_each_partition_every_member() {
        let target = place("g", &members(2), &Settings::new(8, 3));
        assert!(target.replicas.iter().all(|r| r.len() == 2));
        let nobody = place("g", &[], &Settings::new(8, 3));
        assert!(nobody.replicas.iter().all(Vec::is_empty));
    }

    #[test]
    fn draining_and_zero_weight_members_get_nothing() {
        let mut members = members(4);
        members[0].state = crate::types::MemberState::Draining;
        members[1].weight = 0;
        let target = place("g", &members, &Settings::new(32, 2));
        let load = target.load();
        assert!(!load.contains_key(&MemberId::from("m0")));
        assert!(!load.contains_key(&MemberId::from("m1")));
        assert_eq!(load.values().sum::<u32>(), 64);
    }

    #[test]
    fn replicas_of_a_partition_use_distinct_zones() {
        let members: Vec<Member> = (0..6)
            .map(|i| Member::new(format!("m{i}")).in_zone(format!("z{}", i % 3)))
            .collect();
        let target = place("g", &members, &Settings::new(64, 3));
        for replicas in &target.replicas {
            let mut zones: Vec<_> = replicas
                .iter()
                .map(|id| members.iter().find(|m| &m.id == id).and_then(|m| m.zone.clone()))
                .collect();
            zones.sort();
            zones.dedup();
            assert_eq!(zones.len(), 3, "{replicas:?}");
        }
    }

    #[test]
    fn the_order_members_are_given_in_does_not_matter() {
        let settings = Settings::new(128, 3);
        let mut members = members(7);
        let a = place("g", &members, &settings);
        members.reverse();
        assert_eq!(a, place("g", &members, &settings));
        assert_ne!(a, place("other group", &members, &settings));
    }
}
