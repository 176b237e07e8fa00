//! The controller as a whole, simulated: a group whose members join, drain, leave and
//! crash at random while the members acknowledge hand-overs (or not), with the
//! controller's decisions applied as the store would apply them (each write one revision,
//! new leaders taking it as their epoch). After every step the invariants must hold; when
//! the events stop, the map must converge to the target.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use conclave_controller::placement::{leader_caps, place};
use conclave_controller::{
    decide, Ack, AckKind, Decision, Epoch, Input, Map, Member, MemberId, MemberState, Millis, PartitionId,
    ReplicaState, Settings,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Action {
    Join {
        zone: u8,
        weight: u8,
    },
    Crash(prop::sample::Index),
    Drain(prop::sample::Index),
    Leave(prop::sample::Index),
    /// Members acknowledge what they can; `skip` of them (by index) stay silent this round.
    Acks {
        skip: u8,
    },
    Wait {
        ms: u16,
    },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0u8..3, 1u8..3).prop_map(|(zone, weight)| Action::Join { zone, weight }),
        1 => any::<prop::sample::Index>().prop_map(Action::Crash),
        1 => any::<prop::sample::Index>().prop_map(Action::Drain),
        1 => any::<prop::sample::Index>().prop_map(Action::Leave),
        6 => (0u8..4).prop_map(|skip| Action::Acks { skip }),
        3 => (0u16..8000).prop_map(|ms| Action::Wait { ms }),
    ]
}

struct Sim {
    settings: Settings,
    members: BTreeMap<MemberId, Member>,
    map: Map,
    revision: i64,
    now: Millis,
    changed_at: Millis,
    since: BTreeMap<(PartitionId, MemberId), Millis>,
    acks: Vec<Ack>,
    next_member: u32,
    /// Every epoch each partition was led at, in order.
    epochs: Vec<Vec<Epoch>>,
}

impl Sim {
    fn new(settings: Settings) -> Sim {
        let partitions = settings.partitions;
        Sim {
            map: Map::empty(partitions),
            settings,
            members: BTreeMap::new(),
            revision: 1,
            now: Millis(0),
            changed_at: Millis(0),
            since: BTreeMap::new(),
            acks: Vec::new(),
            next_member: 0,
            epochs: vec![Vec::new(); partitions as usize],
        }
    }

    fn live(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    fn pick(&self, index: &prop::sample::Index) -> Option<MemberId> {
        if self.members.is_empty() {
            return None;
        }
        self.members.keys().nth(index.index(self.members.len())).cloned()
    }

    fn act(&mut self, action: &Action) {
        match action {
            Action::Join { zone, weight } => {
                let id = format!("m{:02}", self.next_member);
                self.next_member += 1;
                let member = Member::new(id.clone())
                    .in_zone(format!("z{zone}"))
                    .weighted(u32::from(*weight));
                self.members.insert(member.id.clone(), member);
                self.changed_at = self.now;
            }
            Action::Crash(index) => {
                if let Some(id) = self.pick(index) {
                    self.members.remove(&id);
                    self.acks.retain(|a| a.member != id);
                    self.changed_at = self.now;
                }
            }
            Action::Drain(index) | Action::Leave(index) => {
                if let Some(id) = self.pick(index) {
                    let state = if matches!(action, Action::Drain(_)) {
                        MemberState::Draining
                    } else {
                        MemberState::Leaving
                    };
                    if let Some(member) = self.members.get_mut(&id) {
                        member.state = state;
                    }
                    self.changed_at = self.now;
                }
            }
            Action::Acks { skip } => self.acknowledge(usize::from(*skip)),
            Action::Wait { ms } => self.now = Millis(self.now.0 + u64::from(*ms)),
        }
        // A leaving member that holds nothing deregisters.
        let load = self.map.load();
        let done: Vec<MemberId> = self
            .members
            .values()
            .filter(|m| m.state == MemberState::Leaving && !load.contains_key(&m.id))
            .map(|m| m.id.clone())
            .collect();
        for id in done {
            self.members.remove(&id);
            self.changed_at = self.now;
        }
    }

    /// Every live member reports ready for its syncing replicas and released for its
    /// releasing ones, at the epoch it sees; the first `skip` members stay silent.
    fn acknowledge(&mut self, skip: usize) {
        let silent: BTreeSet<MemberId> = self.members.keys().take(skip).cloned().collect();
        for (index, partition) in self.map.partitions.iter().enumerate() {
            for replica in &partition.replicas {
                if silent.contains(&replica.member) || !self.members.contains_key(&replica.member) {
                    continue;
                }
                let kind = match replica.state {
                    ReplicaState::Syncing { .. } => AckKind::Ready,
                    ReplicaState::Releasing => AckKind::Released,
                    ReplicaState::Ready => continue,
                };
                self.acks.push(Ack {
                    partition: PartitionId(index as u32),
                    member: replica.member.clone(),
                    kind,
                    epoch: partition.epoch,
                });
            }
        }
    }

    /// One controller step, applied as the store would; returns the decision.
    fn step(&mut self) -> Decision {
        let members = self.live();
        let target = place("sim", &members, &self.settings);
        let since = self.since.clone();
        let lookup = |p: PartitionId, m: &MemberId| since.get(&(p, m.clone())).copied();
        let input = Input {
            settings: &self.settings,
            members: &members,
            map: &self.map,
            target: &target,
            acks: &self.acks,
            now: self.now,
            membership_changed_at: self.changed_at,
            since: &lookup,
        };
        let decision = decide(&input);
        assert_eq!(decision, decide(&input), "decide is deterministic");
        self.check(&decision, &members, &target);

        let before = self.map.clone();
        self.map = decision.map.clone();
        self.acks.clear();
        if decision.is_change() {
            self.revision += 1;
            for id in &decision.new_leaders {
                let partition = &mut self.map.partitions[id.0 as usize];
                if partition.leader.is_some() {
                    partition.epoch = Epoch(self.revision);
                    self.epochs[id.0 as usize].push(partition.epoch);
                }
            }
        } else {
            assert_eq!(self.map, before);
        }
        // The runtime's clock of when each non-ready replica entered its stage.
        let mut since = BTreeMap::new();
        for (index, partition) in self.map.partitions.iter().enumerate() {
            for replica in partition.replicas.iter().filter(|r| !r.is_ready()) {
                let key = (PartitionId(index as u32), replica.member.clone());
                let stage_unchanged = before.partitions[index]
                    .replica(&replica.member)
                    .map(|r| &r.state)
                    == Some(&replica.state);
                let started = self
                    .since
                    .get(&key)
                    .copied()
                    .filter(|_| stage_unchanged)
                    .unwrap_or(self.now);
                since.insert(key, started);
            }
        }
        self.since = since;
        decision
    }

    fn check(&self, decision: &Decision, members: &[Member], target: &conclave_controller::Target) {
        let live: BTreeSet<&MemberId> = members.iter().map(|m| &m.id).collect();
        let next = &decision.map;
        if decision.is_change() {
            assert_eq!(
                next.generation.0,
                self.map.generation.0 + 1,
                "generations are never skipped"
            );
        } else {
            assert_eq!(next.generation, self.map.generation);
        }
        let mut moves = 0;
        for (index, (after, before)) in next.partitions.iter().zip(&self.map.partitions).enumerate() {
            // Nothing stays on a member that is gone.
            assert!(
                after.replicas.iter().all(|r| live.contains(&r.member)),
                "partition {index}: {after:?}"
            );
            // The leader is a ready replica, and a partition with a ready replica leads.
            match &after.leader {
                Some(leader) => assert!(
                    after.replica(leader).is_some_and(|r| r.is_ready()),
                    "partition {index}: {after:?}"
                ),
                None => assert_eq!(
                    after.ready_members().count(),
                    0,
                    "partition {index} has no leader: {after:?}"
                ),
            }
            // One member holds a partition once.
            let distinct: BTreeSet<&MemberId> = after.replicas.iter().map(|r| &r.member).collect();
            assert_eq!(distinct.len(), after.replicas.len());
            // Planned removals keep min(R, live replicas) − 1 ready replicas.
            let live_before = before
                .replicas
                .iter()
                .filter(|r| live.contains(&r.member))
                .count();
            let ready_before = before
                .replicas
                .iter()
                .filter(|r| r.is_ready() && live.contains(&r.member))
                .count();
            let ready_after = after.ready_members().count();
            if ready_after < ready_before {
                let floor = (self.settings.replicas as usize)
                    .min(live_before)
                    .saturating_sub(1);
                assert!(ready_after >= floor, "partition {index}: {before:?} -> {after:?}");
            }
            let moving = after.replicas.iter().any(|r| {
                matches!(
                    r.state,
                    ReplicaState::Syncing {
                        replaces: Some(_),
                        ..
                    } | ReplicaState::Releasing
                )
            });
            moves += usize::from(moving);
            // Every replica the plan added is in the target.
            for replica in &after.replicas {
                if before.replica(&replica.member).is_none() {
                    assert!(target.of(PartitionId(index as u32)).contains(&replica.member));
                }
            }
        }
        assert!(
            moves <= self.settings.max_moves_per_group as usize,
            "{moves} moves in flight"
        );
    }

    fn check_epochs(&self) {
        for (index, epochs) in self.epochs.iter().enumerate() {
            assert!(
                epochs.windows(2).all(|w| w[0] < w[1]),
                "partition {index}: epochs {epochs:?}"
            );
        }
    }
}

fn settings(partitions: u32, replicas: u32) -> Settings {
    let mut settings = Settings::new(partitions, replicas);
    settings.max_moves_per_member = 3;
    settings.max_moves_per_group = 16;
    settings.rebalance_delay = Duration::from_secs(5);
    settings.handoff_timeout = Duration::from_secs(20);
    settings
}

/// Runs until nothing has changed for longer than the rebalance delay, every member
/// acknowledging at once and a second passing per step.
fn converge(sim: &mut Sim) {
    let mut quiet = 0;
    for _ in 0..2000 {
        sim.act(&Action::Acks { skip: 0 });
        let decision = sim.step();
        sim.now = Millis(sim.now.0 + 1000);
        quiet = if decision.is_change() { 0 } else { quiet + 1 };
        if quiet > 2 + sim.settings.rebalance_delay.as_secs() {
            return;
        }
    }
    panic!("no convergence: {:?}", sim.map);
}

fn check_converged(sim: &Sim) {
    let members = sim.live();
    let target = place("sim", &members, &sim.settings);
    let anywhere = members.iter().any(|m| m.is_eligible());
    for (index, partition) in sim.map.partitions.iter().enumerate() {
        if !anywhere {
            // Nowhere to move to: draining members keep what they hold.
            continue;
        }
        let want = target.of(PartitionId(index as u32));
        for member in want {
            assert!(
                partition.replica(member).is_some(),
                "partition {index} lacks {member}: {partition:?}"
            );
        }
        // Beyond the target, only draining members keep replicas, and only while the
        // members that stay could not hold R without them.
        let staying = members.iter().filter(|m| m.state != MemberState::Leaving).count();
        let keep = (sim.settings.replicas as usize).min(staying);
        for replica in &partition.replicas {
            if !want.contains(&replica.member) {
                let draining = members
                    .iter()
                    .any(|m| m.id == replica.member && m.state == MemberState::Draining);
                assert!(
                    draining && partition.replicas.len() <= keep,
                    "partition {index}: {partition:?}, target {want:?}"
                );
            }
        }
        assert!(partition.replicas.iter().all(|r| r.is_ready()));
        assert_eq!(partition.leader.is_some(), !partition.replicas.is_empty());
    }
    let caps = leader_caps(&members, &sim.settings);
    for (member, led) in sim.map.leaderships() {
        if let Some(cap) = caps.get(&member) {
            assert!(led <= *cap, "{member} leads {led} > {cap}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn invariants_hold_at_every_step_and_the_map_converges(
        partitions in 1u32..48,
        replicas in 1u32..4,
        actions in prop::collection::vec(action(), 1..60),
    ) {
        let mut sim = Sim::new(settings(partitions, replicas));
        for action in &actions {
            sim.act(action);
            sim.step();
        }
        converge(&mut sim);
        check_converged(&sim);
        sim.check_epochs();
    }
}

#[test]
fn five_members_in_three_zones_converge_balanced_with_few_moves() {
    let mut sim = Sim::new(settings(64, 3));
    for i in 0..5u8 {
        sim.act(&Action::Join {
            zone: i % 3,
            weight: 1,
        });
        sim.step();
    }
    converge(&mut sim);
    check_converged(&sim);
    // One more member: the replicas that move stay near the fair share P·R/N.
    let before = sim.map.load();
    sim.act(&Action::Join { zone: 0, weight: 1 });
    converge(&mut sim);
    check_converged(&sim);
    let after = sim.map.load();
    let newcomer = after
        .iter()
        .find(|(m, _)| !before.contains_key(*m))
        .map(|(_, n)| *n)
        .unwrap_or(0);
    assert!(
        newcomer as usize >= 64 * 3 / 6 * 3 / 4,
        "the newcomer holds only {newcomer}"
    );
    sim.check_epochs();
}

#[test]
fn a_crashed_leaders_partitions_get_new_leaders_in_the_same_step() {
    let mut sim = Sim::new(settings(16, 3));
    for _ in 0..3 {
        sim.act(&Action::Join { zone: 0, weight: 1 });
    }
    converge(&mut sim);
    let victim = sim.map.partitions[0].leader.clone().expect("led");
    let led: Vec<usize> = (0..16)
        .filter(|p| sim.map.partitions[*p].leader.as_ref() == Some(&victim))
        .collect();
    sim.members.remove(&victim);
    sim.changed_at = sim.now;
    let decision = sim.step();
    for p in led {
        assert!(decision.new_leaders.contains(&PartitionId(p as u32)));
        let leader = sim.map.partitions[p].leader.clone();
        assert!(leader.is_some() && leader != Some(victim.clone()));
    }
    sim.check_epochs();
}

#[test]
fn a_target_that_never_acknowledges_is_abandoned_and_the_old_owner_keeps_leading() {
    let mut sim = Sim::new(settings(8, 1));
    sim.act(&Action::Join { zone: 0, weight: 1 });
    converge(&mut sim);
    let owner = sim.map.partitions[0].leader.clone().expect("led");
    // A second member joins and stays silent: the moves to it time out.
    sim.act(&Action::Join { zone: 1, weight: 1 });
    sim.now = Millis(sim.now.0 + 6000);
    sim.step();
    let moving: Vec<usize> = (0..8).filter(|p| sim.map.partitions[*p].in_flight()).collect();
    assert!(!moving.is_empty(), "a move started");
    sim.now = Millis(sim.now.0 + 21_000);
    let decision = sim.step();
    for p in moving {
        let partition = &sim.map.partitions[p];
        assert!(!partition.in_flight(), "abandoned: {partition:?}");
        assert_eq!(partition.leader.as_ref(), Some(&owner));
    }
    assert!(decision.events.iter().any(|e| matches!(
        e,
        conclave_controller::Event::Handoff(_, conclave_controller::handoff::Outcome::Abandoned(..))
    )));
}
