//! The hand-over of one partition, step by step (Helix-style: the controller moves on
//! only when the member acknowledges).
//!
//! A move of partition `p` from member A to member B:
//! 1. B is added as a **syncing** replica (`Syncing { replaces: A }`); B's `on_assigned`
//!    hook runs (it may pull the data from A) and B reports **ready** at the partition's
//!    epoch;
//! 2. B becomes **ready**; if A led `p`, leadership moves to B in the same map write (a
//!    new epoch: the revision of that write), and A becomes **releasing**;
//! 3. A's `on_unassigned` hook runs and A reports **released**; A is removed.
//!
//! A syncing replica is abandoned (removed, and A keeps its place and its leadership)
//! when its member dies, when it does not report ready within the hand-over timeout, or
//! when the partition's leadership changes from the leader it was added under (what it
//! synced from is no longer the source). A releasing replica is removed when it reports
//! released, when its member dies, or after the timeout (it no longer leads, and the
//! epoch fences it). A ready replica whose member dies is lost; if it led, the partition
//! has no leader until [`crate::decide`] elects one.
//!
//! [`advance`] applies everything that happened to one partition: deaths, acks, timeouts.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::types::{Ack, AckKind, Epoch, MemberId, Millis, Partition, ReplicaState};

/// Why a syncing replica was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbandonReason {
    /// Its member's session ended.
    MemberGone,
    /// It did not report ready within the hand-over timeout.
    Timeout,
    /// The partition's leadership changed before it was ready.
    LeadershipChanged,
}

/// What happened to one replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A syncing replica reported ready.
    Ready(MemberId),
    /// A releasing replica reported released and was removed.
    Released(MemberId),
    /// A releasing replica was removed without its report (timeout or death).
    ReleaseForced(MemberId),
    /// A syncing replica was removed.
    Abandoned(MemberId, AbandonReason),
    /// A ready replica's member died.
    Lost(MemberId),
}

/// What [`advance`] did to a partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advanced {
    /// Per replica, in the order they happened.
    pub outcomes: Vec<Outcome>,
    /// The acks that took effect (the others were stale or did not apply).
    pub applied: Vec<Ack>,
    /// Whether the leader changed (a new epoch is due when the map is written).
    pub leader_changed: bool,
}

/// The facts [`advance`] needs besides the partition.
pub struct Facts<'a> {
    /// Members whose sessions are alive.
    pub live: &'a BTreeSet<MemberId>,
    /// Now.
    pub now: Millis,
    /// The hand-over timeout.
    pub timeout: Duration,
    /// When a member's replica of this partition entered its current (syncing or
    /// releasing) stage; `None` if not known (then it counts from now).
    pub since: &'a dyn Fn(&MemberId) -> Option<Millis>,
}

/// The epoch a replica added now is syncing under: the current one if the partition
/// has a leader, else 0 (a leaderless partition's first leader does not invalidate it).
pub fn sync_epoch(partition: &Partition) -> Epoch {
    if partition.leader.is_some() {
        partition.epoch
    } else {
        Epoch(0)
    }
}

/// Whether a replica in `state` syncs from a leadership that is over: it was added under
/// a leader (epoch `since_epoch` ≠ 0) and the partition's epoch has moved on since. Such a
/// move is given up; a replica added while the partition had no leader is not affected
/// by its first leader.
pub fn source_changed(partition: &Partition, state: &ReplicaState) -> bool {
    matches!(state, ReplicaState::Syncing { since_epoch, .. } if *since_epoch != Epoch(0) && *since_epoch != partition.epoch)
}

/// Whether `ack` takes effect on `partition` as it is.
///
/// A ready report applies to a syncing replica whose source is still the leadership it
/// was added under, at that leadership's epoch — or, for a replica added while the
/// partition had no leader, at 0 (a report that raced with the first leader's election)
/// or at the epoch of the leader elected since. A released report applies to a releasing
/// replica at the current epoch.
///
/// (Acks are consumed by the step that sees them, applied or not, so an ack never
/// outlives the stage it was written in.)
pub fn ack_applies(partition: &Partition, ack: &Ack) -> bool {
    let Some(replica) = partition.replica(&ack.member) else {
        return false;
    };
    match (&ack.kind, &replica.state) {
        (AckKind::Ready, state @ ReplicaState::Syncing { since_epoch, .. }) => {
            !source_changed(partition, state) && (ack.epoch == partition.epoch || ack.epoch == *since_epoch)
        }
        (AckKind::Released, ReplicaState::Releasing) => ack.epoch == partition.epoch,
        _ => false,
    }
}

/// Applies deaths, syncing replicas whose source changed, `acks` (in order), then
/// timeouts to `partition`. A move whose source changed is given up before any ack is
/// looked at, so a ready report cannot make such a replica ready.
pub fn advance(partition: &mut Partition, acks: &[&Ack], facts: &Facts<'_>) -> Advanced {
    let mut advanced = Advanced::default();

    // Deaths.
    let leader_before = partition.leader.clone();
    partition.replicas.retain(|replica| {
        if facts.live.contains(&replica.member) {
            return true;
        }
        let member = replica.member.clone();
        advanced.outcomes.push(match replica.state {
            ReplicaState::Syncing { .. } => Outcome::Abandoned(member, AbandonReason::MemberGone),
            ReplicaState::Ready => Outcome::Lost(member),
            ReplicaState::Releasing => Outcome::ReleaseForced(member),
        });
        false
    });
    if partition
        .leader
        .as_ref()
        .is_some_and(|leader| partition.replica(leader).is_none_or(|r| !r.is_ready()))
    {
        partition.leader = None;
    }

    // Moves whose source is no longer the leader they were added under.
    let changed: Vec<MemberId> = partition
        .replicas
        .iter()
        .filter(|r| source_changed(partition, &r.state))
        .map(|r| r.member.clone())
        .collect();
    for member in changed {
        partition.replicas.retain(|r| r.member != member);
        advanced
            .outcomes
            .push(Outcome::Abandoned(member, AbandonReason::LeadershipChanged));
    }

    // Acks (the caller hands over this partition's only).
    for ack in acks {
        if ack_applies(partition, ack) {
            apply_ack(partition, ack, &mut advanced);
            advanced.applied.push((*ack).clone());
        }
    }

    // Timeouts.
    let mut removed = Vec::new();
    for replica in &partition.replicas {
        let started = (facts.since)(&replica.member).unwrap_or(facts.now);
        let expired = facts.now.since(started) >= facts.timeout;
        match &replica.state {
            ReplicaState::Syncing { .. } if expired => {
                removed.push((replica.member.clone(), Some(AbandonReason::Timeout)));
            }
            ReplicaState::Releasing if expired => removed.push((replica.member.clone(), None)),
            _ => {}
        }
    }
    for (member, reason) in removed {
        partition.replicas.retain(|r| r.member != member);
        advanced.outcomes.push(match reason {
            Some(reason) => Outcome::Abandoned(member, reason),
            None => Outcome::ReleaseForced(member),
        });
    }

    advanced.leader_changed |= partition.leader != leader_before;
    advanced
}

fn apply_ack(partition: &mut Partition, ack: &Ack, advanced: &mut Advanced) {
    match ack.kind {
        AckKind::Ready => {
            let mut replaces = None;
            if let Some(replica) = partition.replicas.iter_mut().find(|r| r.member == ack.member) {
                if let ReplicaState::Syncing { replaces: old, .. } = &replica.state {
                    replaces = old.clone();
                }
                replica.state = ReplicaState::Ready;
            }
            advanced.outcomes.push(Outcome::Ready(ack.member.clone()));
            if let Some(old) = replaces {
                if partition.leader.as_ref() == Some(&old) {
                    // Leadership moves to the replacement in the same write.
                    partition.leader = Some(ack.member.clone());
                }
                if let Some(replica) = partition.replicas.iter_mut().find(|r| r.member == old) {
                    replica.state = ReplicaState::Releasing;
                }
            }
        }
        AckKind::Released => {
            partition.replicas.retain(|r| r.member != ack.member);
            advanced.outcomes.push(Outcome::Released(ack.member.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{PartitionId, Replica};
    use std::collections::BTreeMap;

    fn ids(names: &[&str]) -> BTreeSet<MemberId> {
        names.iter().map(|n| MemberId::from(*n)).collect()
    }

    fn moving(epoch: i64) -> Partition {
        // A leads and is being replaced by C; B is a plain ready replica.
        Partition {
            replicas: vec![
                Replica::ready("a"),
                Replica::ready("b"),
                Replica {
                    member: MemberId::from("c"),
                    state: ReplicaState::Syncing {
                        replaces: Some(MemberId::from("a")),
                        since_epoch: Epoch(epoch),
                    },
                },
            ],
            leader: Some(MemberId::from("a")),
            epoch: Epoch(epoch),
        }
    }

    fn ack(member: &str, kind: AckKind, epoch: i64) -> Ack {
        Ack {
            partition: PartitionId(0),
            member: MemberId::from(member),
            kind,
            epoch: Epoch(epoch),
        }
    }

    fn facts<'a>(
        live: &'a BTreeSet<MemberId>,
        now: u64,
        since: &'a dyn Fn(&MemberId) -> Option<Millis>,
    ) -> Facts<'a> {
        Facts {
            live,
            now: Millis(now),
            timeout: Duration::from_secs(30),
            since,
        }
    }

    #[test]
    fn ready_moves_leadership_to_the_replacement_and_releases_the_old_leader() {
        let live = ids(&["a", "b", "c"]);
        let never = |_: &MemberId| None;
        let mut p = moving(7);
        let ready = ack("c", AckKind::Ready, 7);
        let done = advance(&mut p, &[&ready], &facts(&live, 0, &never));
        assert!(done.leader_changed);
        assert_eq!(p.leader, Some(MemberId::from("c")));
        assert_eq!(
            p.replica(&MemberId::from("a")).map(|r| r.state.clone()),
            Some(ReplicaState::Releasing)
        );
        assert_eq!(done.applied, vec![ready]);
        // The old leader reports released at the new epoch (the write made it 9).
        p.epoch = Epoch(9);
        let stale = ack("a", AckKind::Released, 7);
        let released = ack("a", AckKind::Released, 9);
        let done = advance(&mut p, &[&stale, &released], &facts(&live, 10, &never));
        assert_eq!(done.applied, vec![released]);
        assert_eq!(p.replicas.len(), 2);
        assert!(!done.leader_changed);
    }

    #[test]
    fn a_stale_or_misdirected_ack_changes_nothing() {
        let live = ids(&["a", "b", "c"]);
        let never = |_: &MemberId| None;
        let mut p = moving(7);
        let before = p.clone();
        let acks = [
            ack("c", AckKind::Ready, 6),    // stale epoch
            ack("b", AckKind::Ready, 7),    // not syncing
            ack("a", AckKind::Released, 7), // not releasing
            ack("z", AckKind::Ready, 7),    // not a replica
        ];
        let refs: Vec<&Ack> = acks.iter().collect();
        let done = advance(&mut p, &refs, &facts(&live, 0, &never));
        assert!(done.applied.is_empty());
        assert_eq!(p, before);
    }

    #[test]
    fn a_move_is_abandoned_when_its_target_dies_times_out_or_its_source_changes() {
        let never = |_: &MemberId| None;
        let mut p = moving(7);
        let done = advance(&mut p, &[], &facts(&ids(&["a", "b"]), 0, &never));
        assert_eq!(
            done.outcomes,
            vec![Outcome::Abandoned(MemberId::from("c"), AbandonReason::MemberGone)]
        );
        assert_eq!(p.leader, Some(MemberId::from("a")), "the old owner keeps leading");

        let started: BTreeMap<MemberId, Millis> = [(MemberId::from("c"), Millis(1_000))].into();
        let since = |m: &MemberId| started.get(m).copied();
        let live = ids(&["a", "b", "c"]);
        let mut p = moving(7);
        assert!(advance(&mut p, &[], &facts(&live, 30_999, &since))
            .outcomes
            .is_empty());
        let done = advance(&mut p, &[], &facts(&live, 31_000, &since));
        assert_eq!(
            done.outcomes,
            vec![Outcome::Abandoned(MemberId::from("c"), AbandonReason::Timeout)]
        );

        let mut p = moving(7);
        p.epoch = Epoch(8); // another leader since C was added
        p.leader = Some(MemberId::from("b"));
        let done = advance(&mut p, &[], &facts(&live, 0, &never));
        assert_eq!(
            done.outcomes,
            vec![Outcome::Abandoned(
                MemberId::from("c"),
                AbandonReason::LeadershipChanged
            )]
        );
    }

    #[test]
    fn a_dead_leader_leaves_the_partition_leaderless() {
        let never = |_: &MemberId| None;
        let mut p = moving(7);
        let done = advance(&mut p, &[], &facts(&ids(&["b", "c"]), 0, &never));
        assert!(done.leader_changed);
        assert_eq!(p.leader, None);
        assert_eq!(p.epoch, Epoch(7), "the epoch stays until the next leader");
        assert_eq!(done.outcomes, vec![Outcome::Lost(MemberId::from("a"))]);
    }

    #[test]
    fn a_ready_report_cannot_save_a_move_whose_source_changed() {
        let never = |_: &MemberId| None;
        let live = ids(&["a", "b", "c"]);
        let mut p = moving(7);
        p.epoch = Epoch(8);
        p.leader = Some(MemberId::from("b"));
        let late = ack("c", AckKind::Ready, 8);
        assert!(!ack_applies(&p, &late), "the report is refused up front");
        let done = advance(&mut p, &[&late], &facts(&live, 0, &never));
        assert!(done.applied.is_empty());
        assert!(p.replica(&MemberId::from("c")).is_none(), "the move is given up");
    }

    #[test]
    fn a_replica_added_to_a_leaderless_partition_survives_its_first_leader() {
        let mut p = Partition::default();
        p.replicas.push(Replica {
            member: MemberId::from("b"),
            state: ReplicaState::Syncing {
                replaces: None,
                since_epoch: sync_epoch(&p),
            },
        });
        p.replicas.push(Replica::ready("a"));
        p.leader = Some(MemberId::from("a"));
        p.epoch = Epoch(12);
        let never = |_: &MemberId| None;
        let done = advance(&mut p, &[], &facts(&ids(&["a", "b"]), 0, &never));
        assert!(done.outcomes.is_empty());
        // It reports ready at the first leader's epoch, or at 0 if its report raced with
        // the election; never at another.
        assert!(ack_applies(&p, &ack("b", AckKind::Ready, 0)));
        assert!(!ack_applies(&p, &ack("b", AckKind::Ready, 11)));
        let ready = ack("b", AckKind::Ready, 12);
        let done = advance(&mut p, &[&ready], &facts(&ids(&["a", "b"]), 0, &never));
        assert_eq!(done.applied, vec![ready]);
        assert!(p.replica(&MemberId::from("b")).is_some_and(|r| r.is_ready()));
    }
}
