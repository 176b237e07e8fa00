//! One controller step: everything observed goes in (live members, the stored map, the
//! members' acks, the time), the next map comes out, with what changed and when to look
//! again. The runtime writes the result as one store transaction guarded by the map's
//! generation and the controller's epoch; a partition whose leadership changed gets the
//! revision of that write as its new epoch.
//!
//! Order within a step: hand-overs advance (deaths, acks, timeouts — [`crate::handoff`]),
//! partitions without a leader elect one among their ready replicas
//! ([`crate::leader::choose`]), then new steps start ([`crate::plan`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::handoff::{self, Facts, Outcome};
use crate::leader;
use crate::placement::Target;
use crate::plan::{self, PlanInput, Step};
use crate::types::{
    Ack, Generation, Map, Member, MemberId, Millis, PartitionId, Replica, ReplicaState, Settings,
};

/// Everything a step decides from.
pub struct Input<'a> {
    /// The group's settings.
    pub settings: &'a Settings,
    /// The live members (registered, session alive).
    pub members: &'a [Member],
    /// The stored map.
    pub map: &'a Map,
    /// The target replica sets for `members` ([`crate::placement::place`]).
    pub target: &'a Target,
    /// The acks the members wrote since the last step.
    pub acks: &'a [Ack],
    /// Now.
    pub now: Millis,
    /// When the member set (or a member's weight or state) last changed.
    pub membership_changed_at: Millis,
    /// When a member's replica of a partition entered its current syncing or releasing
    /// stage, if known (unknown counts from now).
    pub since: &'a dyn Fn(PartitionId, &MemberId) -> Option<Millis>,
}

/// Something worth a log line or a metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A hand-over step finished or was given up.
    Handoff(PartitionId, Outcome),
    /// A step started.
    Started(Step),
    /// A partition got a leader.
    LeaderElected(PartitionId, MemberId),
    /// A partition's leader is gone and no ready replica is left to lead.
    Leaderless(PartitionId),
}

/// The outcome of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The next map: the stored one with this step's changes; its generation is one more
    /// than the stored one's when anything changed.
    pub map: Map,
    /// The partitions whose state changed.
    pub changed: BTreeSet<PartitionId>,
    /// The partitions whose leadership changed (to another member or to none): each gets
    /// the revision of the write as its new epoch.
    pub new_leaders: BTreeSet<PartitionId>,
    /// Every ack given, applied or not: the runtime deletes them with the write.
    pub spent_acks: Vec<Ack>,
    /// What happened.
    pub events: Vec<Event>,
    /// When to run again even if nothing is observed: the earliest hand-over timeout or
    /// the end of the rebalance delay.
    pub wake_at: Option<Millis>,
}

impl Decision {
    /// Whether there is anything to write.
    pub fn is_change(&self) -> bool {
        !self.changed.is_empty()
    }
}

/// Runs one controller step.
pub fn decide(input: &Input<'_>) -> Decision {
    let settings = input.settings;
    let mut map = input.map.clone();
    // A map of another size (the settings were read before the map): resize, keeping
    // what exists; partitions beyond the count are dropped.
    map.partitions
        .resize(settings.partitions as usize, Default::default());
    let live: BTreeSet<MemberId> = input.members.iter().map(|m| m.id.clone()).collect();
    let mut acks_by_partition: BTreeMap<PartitionId, Vec<&Ack>> = BTreeMap::new();
    for ack in input.acks {
        acks_by_partition.entry(ack.partition).or_default().push(ack);
    }
    let mut changed = BTreeSet::new();
    let mut new_leaders = BTreeSet::new();
    let mut events = Vec::new();

    // 1. Hand-overs.
    for (index, partition) in map.partitions.iter_mut().enumerate() {
        let id = PartitionId(index as u32);
        let since = |member: &MemberId| (input.since)(id, member);
        let facts = Facts {
            live: &live,
            now: input.now,
            timeout: settings.handoff_timeout,
            since: &since,
        };
        let acks = acks_by_partition.get(&id).map_or(&[][..], |a| a.as_slice());
        let before = partition.clone();
        let advanced = handoff::advance(partition, acks, &facts);
        if *partition != before {
            changed.insert(id);
        }
        if advanced.leader_changed {
            new_leaders.insert(id);
        }
        events.extend(advanced.outcomes.into_iter().map(|o| Event::Handoff(id, o)));
    }

    // 2. Leaders for partitions that have none.
    let mut led = map.leaderships();
    for (index, partition) in map.partitions.iter_mut().enumerate() {
        let id = PartitionId(index as u32);
        if partition.leader.is_some() {
            continue;
        }
        match leader::choose(partition, input.target.of(id), &led, input.members) {
            Some(member) => {
                *led.entry(member.clone()).or_insert(0) += 1;
                partition.leader = Some(member.clone());
                changed.insert(id);
                new_leaders.insert(id);
                events.push(Event::LeaderElected(id, member));
            }
            None => {
                if new_leaders.contains(&id) {
                    events.push(Event::Leaderless(id));
                }
            }
        }
    }

    // 3. New steps. A partition changed by this step's hand-overs or elections starts no
    // new one now: one step at a time, each judged on a stored map (and a replica added
    // now would sync under an epoch not known until the write).
    let frozen = changed.clone();
    let steps = plan::plan(&PlanInput {
        map: &map,
        target: input.target,
        members: input.members,
        settings,
        now: input.now,
        membership_changed_at: input.membership_changed_at,
        frozen: &frozen,
    });
    for step in steps {
        let id = match &step {
            Step::Add { partition, .. }
            | Step::Release { partition, .. }
            | Step::TransferLeader { partition, .. } => *partition,
        };
        let Some(partition) = map.partitions.get_mut(id.0 as usize) else {
            continue;
        };
        match &step {
            Step::Add { to, replaces, .. } => {
                let since_epoch = handoff::sync_epoch(partition);
                partition.replicas.push(Replica {
                    member: to.clone(),
                    state: ReplicaState::Syncing {
                        replaces: replaces.clone(),
                        since_epoch,
                    },
                });
            }
            Step::Release {
                member, new_leader, ..
            } => {
                if let Some(next) = new_leader {
                    partition.leader = Some(next.clone());
                    new_leaders.insert(id);
                }
                if let Some(replica) = partition.replicas.iter_mut().find(|r| &r.member == member) {
                    replica.state = ReplicaState::Releasing;
                }
            }
            Step::TransferLeader { to, .. } => {
                partition.leader = Some(to.clone());
                new_leaders.insert(id);
            }
        }
        changed.insert(id);
        events.push(Event::Started(step));
    }

    // When to look again.
    let mut wake_at: Option<Millis> = None;
    let mut wake = |at: Millis| wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
    for (index, partition) in map.partitions.iter().enumerate() {
        for replica in partition.replicas.iter().filter(|r| !r.is_ready()) {
            let started = (input.since)(PartitionId(index as u32), &replica.member).unwrap_or(input.now);
            wake(started.after(settings.handoff_timeout));
        }
    }
    if input.now.since(input.membership_changed_at) < settings.rebalance_delay {
        wake(input.membership_changed_at.after(settings.rebalance_delay));
    }

    if !changed.is_empty() {
        map.generation = Generation(input.map.generation.0 + 1);
    }
    Decision {
        map,
        changed,
        new_leaders,
        spent_acks: input.acks.to_vec(),
        events,
        wake_at,
    }
}
