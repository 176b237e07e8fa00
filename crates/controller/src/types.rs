//! The controller's vocabulary: members, a group's settings, and the partition map.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A member of a group, as the application names it (`cache-7`, a pod name, ...).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(pub String);

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for MemberId {
    fn from(id: &str) -> Self {
        MemberId(id.to_string())
    }
}

/// A partition of a group: `0..partitions`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionId(pub u32);

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A partition's fencing epoch: the store revision of the write that made its current
/// leader, so it only grows. 0 while the partition has never had a leader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub i64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The number of a partition map: +1 for every map the controller writes, never skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub u64);

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A point on the controller's monotonic clock, in milliseconds. The runtime passes it in;
/// the core never reads a clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub u64);

impl Millis {
    /// This instant plus `d`.
    pub fn after(self, d: Duration) -> Millis {
        Millis(
            self.0
                .saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    /// How long from `earlier` to this instant (zero if `earlier` is later).
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// What a member is willing to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// Takes replicas and leaderships.
    Active,
    /// Stays registered, but everything it holds is moved away and nothing new is placed
    /// on it.
    Draining,
    /// Leaving the group: like draining, then it deregisters.
    Leaving,
}

/// A live member: registered and its session (lease) alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its id.
    pub id: MemberId,
    /// Relative capacity: a member of weight 2 holds about twice what one of weight 1
    /// does. 0 holds nothing.
    pub weight: u32,
    /// The value of the group's zone label on this member, if it has one.
    pub zone: Option<String>,
    /// Active, draining or leaving.
    pub state: MemberState,
}

impl Member {
    /// An active member of weight 1 without a zone.
    pub fn new(id: impl Into<String>) -> Member {
        Member {
            id: MemberId(id.into()),
            weight: 1,
            zone: None,
            state: MemberState::Active,
        }
    }

    /// This member in `zone`.
    pub fn in_zone(mut self, zone: impl Into<String>) -> Member {
        self.zone = Some(zone.into());
        self
    }

    /// This member with `weight`.
    pub fn weighted(mut self, weight: u32) -> Member {
        self.weight = weight;
        self
    }

    /// Whether new replicas and leaderships may be placed on it.
    pub fn is_eligible(&self) -> bool {
        self.state == MemberState::Active && self.weight > 0
    }
}

/// Largest partition count a group may have.
pub const MAX_PARTITIONS: u32 = 4096;
/// Largest replica factor a group may have.
pub const MAX_REPLICAS: u32 = 7;

/// A group's settings. Every field has a default (see [`Settings::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Partition count P (1..=[`MAX_PARTITIONS`]). Fixed for the group's life: the routing
    /// hash depends on it.
    pub partitions: u32,
    /// Replica factor R (1..=[`MAX_REPLICAS`]): replicas per partition, one of them the
    /// leader.
    pub replicas: u32,
    /// Load slack ε in thousandths (default 250 = 0.25): no member holds more than
    /// ceil(P·R·w/W·(1+ε)) replicas (P·R/N·(1+ε) for equal weights).
    pub epsilon_permille: u32,
    /// How long the member set must stay unchanged before replicas are moved or
    /// re-created (default 5 s), so a flapping member causes no churn. Electing a leader
    /// for a partition that lost its own, placing partitions that have no replica at all,
    /// and moving away from draining or leaving members are not delayed.
    pub rebalance_delay: Duration,
    /// How long a hand-over step may wait for the member's acknowledgement (ready,
    /// released) before it is abandoned (default 30 s).
    pub handoff_timeout: Duration,
    /// Most hand-overs in flight involving one member, as source or target (default 4).
    pub max_moves_per_member: u32,
    /// Most hand-overs in flight in the group (default 64).
    pub max_moves_per_group: u32,
}

impl Settings {
    /// P partitions with R replicas, every other setting at its default.
    pub fn new(partitions: u32, replicas: u32) -> Settings {
        Settings {
            partitions,
            replicas,
            epsilon_permille: 250,
            rebalance_delay: Duration::from_secs(5),
            handoff_timeout: Duration::from_secs(30),
            max_moves_per_member: 4,
            max_moves_per_group: 64,
        }
    }

    /// Checks the ranges; the message says what to change.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(SettingsError(format!(
                "partitions must be between 1 and {MAX_PARTITIONS}, not {}",
                self.partitions
            )));
        }
        if self.replicas == 0 || self.replicas > MAX_REPLICAS {
            return Err(SettingsError(format!(
                "replicas must be between 1 and {MAX_REPLICAS}, not {}",
                self.replicas
            )));
        }
        if self.epsilon_permille > 10_000 {
            return Err(SettingsError(format!(
                "epsilon must be between 0 and 10, not {}",
                f64::from(self.epsilon_permille) / 1000.0
            )));
        }
        if self.max_moves_per_member == 0 || self.max_moves_per_group == 0 {
            return Err(SettingsError("move limits must be at least 1".into()));
        }
        if self.handoff_timeout.is_zero() {
            return Err(SettingsError("handoff_timeout must be positive".into()));
        }
        Ok(())
    }
}

/// Settings out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

/// The stage of one replica.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReplicaState {
    /// Added, not yet reported ready. `replaces`: the replica it will take over from once
    /// ready (a move), if any. `since_epoch`: the partition's epoch when it was added — a
    /// leadership change before it is ready abandons it.
    Syncing {
        /// The replica this one replaces.
        replaces: Option<MemberId>,
        /// The partition's epoch when this replica was added.
        since_epoch: Epoch,
    },
    /// Holds the partition and may lead it.
    Ready,
    /// Told to let go; removed once it reports released (or after the timeout).
    Releasing,
}

/// One replica of a partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Replica {
    /// The member holding it.
    pub member: MemberId,
    /// Its stage.
    pub state: ReplicaState,
}

impl Replica {
    /// A ready replica on `member`.
    pub fn ready(member: impl Into<String>) -> Replica {
        Replica {
            member: MemberId(member.into()),
            state: ReplicaState::Ready,
        }
    }

    /// Whether it holds the partition and may lead.
    pub fn is_ready(&self) -> bool {
        self.state == ReplicaState::Ready
    }
}

/// One partition's place in the map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Partition {
    /// Its replicas, in the order they were added.
    pub replicas: Vec<Replica>,
    /// The leader: always one of the ready replicas; `None` when none is ready.
    pub leader: Option<MemberId>,
    /// The fencing epoch of the current leadership (the revision that made it; kept
    /// after the leader is gone, until the next one is elected).
    pub epoch: Epoch,
}

impl Partition {
    /// The replica on `member`, if any.
    pub fn replica(&self, member: &MemberId) -> Option<&Replica> {
        self.replicas.iter().find(|r| &r.member == member)
    }

    /// The ready replicas' members.
    pub fn ready_members(&self) -> impl Iterator<Item = &MemberId> {
        self.replicas.iter().filter(|r| r.is_ready()).map(|r| &r.member)
    }

    /// Whether a hand-over step is in flight (a syncing or releasing replica).
    pub fn in_flight(&self) -> bool {
        self.replicas.iter().any(|r| !r.is_ready())
    }
}

/// A group's partition map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Map {
    /// Its generation.
    pub generation: Generation,
    /// One entry per partition, indexed by [`PartitionId`].
    pub partitions: Vec<Partition>,
}

impl Map {
    /// The map of a group with `partitions` partitions and nothing placed yet.
    pub fn empty(partitions: u32) -> Map {
        Map {
            generation: Generation(0),
            partitions: vec![Partition::default(); partitions as usize],
        }
    }

    /// Replicas per member (every stage counted).
    pub fn load(&self) -> BTreeMap<MemberId, u32> {
        let mut load = BTreeMap::new();
        for partition in &self.partitions {
            for replica in &partition.replicas {
                *load.entry(replica.member.clone()).or_insert(0) += 1;
            }
        }
        load
    }

    /// Leaderships per member.
    pub fn leaderships(&self) -> BTreeMap<MemberId, u32> {
        let mut led = BTreeMap::new();
        for leader in self.partitions.iter().filter_map(|p| p.leader.as_ref()) {
            *led.entry(leader.clone()).or_insert(0) += 1;
        }
        led
    }
}

/// What a member reports about a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckKind {
    /// It holds the partition now (its `on_assigned` hook finished): it may lead.
    Ready,
    /// It let go of the partition (its `on_unassigned` hook finished).
    Released,
}

/// A member's report about a partition, at the epoch it saw.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ack {
    /// The partition.
    pub partition: PartitionId,
    /// Who reports.
    pub member: MemberId,
    /// What.
    pub kind: AckKind,
    /// The partition's epoch as the member saw it.
    pub epoch: Epoch,
}
