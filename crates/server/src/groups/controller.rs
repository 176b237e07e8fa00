//! The active controller: the runtime of `conclave_controller`, on the Raft leader.
//!
//! Every member runs this task; only the Raft leader's is active. Taking office — once a
//! group exists, so a cluster without groups never sees a write of its own — it claims
//! `/_conclave/controller` (the claim's revision is its **controller epoch**), then
//! follows the store's commits: whenever a group's members, acks or settings change, or a
//! timer (hand-over timeout, rebalance delay) is due, it reads the group in one snapshot,
//! runs [`conclave_controller::decide`] and writes the resulting map as **one txn** that
//! holds only if the map is still the generation it read and the controller epoch is
//! still its own. So a map is never half-written, no generation is skipped or written
//! twice, and a deposed controller — even one that does not know it yet — cannot win:
//! its compare fails. Partitions whose leadership changed take the txn's revision as
//! their epoch.
//!
//! Time: the controller measures with its own monotonic clock from when it took office;
//! a new controller restarts the hand-over timeouts and the rebalance delay (it cannot
//! know how long the old one had been waiting).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use conclave_consensus::Node;
use conclave_controller::handoff::{AbandonReason, Outcome};
use conclave_controller::placement::{place, Target};
use conclave_controller::{
    decide, Decision, Event, Input, Map, Member, MemberId, Millis, PartitionId, ReplicaState, Settings,
};
use conclave_mvcc::TxnRequest;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;

use super::error::GroupError;
use super::records::{ControllerClaim, HistoryRecord, MapHeader, PartitionRecord, VERSION};
use super::state::{self, created_at, delete, group_names, mod_is, put, GroupView};
use crate::metrics::ControllerMetrics;
use conclave_contract::groups::{group_of, GroupKeys, CONTROLLER, HISTORY};

/// How long to wait before retrying after a failed write or read.
const RETRY: Duration = Duration::from_millis(200);

/// Runs the controller task of `node` until `stopped` fires.
pub async fn run(node: Node, metrics: ControllerMetrics, mut stopped: tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stopped.borrow() {
            return;
        }
        let term = node.term();
        if !node.is_leader() {
            tokio::select! {
                () = node.role_changed(false, term) => continue,
                _ = stopped.changed() => return,
            }
        }
        let outcome = tokio::select! {
            outcome = lead(&node, term, &metrics) => outcome,
            _ = stopped.changed() => return,
        };
        metrics.clear();
        match outcome {
            Ok(()) => tracing::info!(term, "controller stepped down: no longer the Raft leader"),
            Err(error) => {
                tracing::warn!(term, %error, "controller stopped; retrying");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Why the active controller stops.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error("another controller claimed office")]
    Deposed,
    #[error(transparent)]
    Failed(#[from] GroupError),
}

/// One group as the controller follows it.
#[derive(Default)]
struct Tracker {
    /// The member set it saw last (ids, weights, states, zones).
    members: Option<Vec<Member>>,
    /// When that member set was first seen.
    changed_at: Millis,
    /// The target for that member set and settings.
    target: Option<(Vec<Member>, Settings, Target)>,
    /// When each non-ready replica entered its stage (as this controller saw it).
    since: BTreeMap<(PartitionId, MemberId), (ReplicaState, Millis)>,
    /// When moves started, for the hand-over duration.
    moves: BTreeMap<PartitionId, Instant>,
    /// When to look again without news.
    wake_at: Option<Millis>,
    /// Whether something changed since the last look.
    dirty: bool,
}

struct Active<'a> {
    node: &'a Node,
    metrics: &'a ControllerMetrics,
    /// The revision of this controller's claim.
    epoch: i64,
    started: Instant,
    groups: BTreeMap<String, Tracker>,
}

async fn lead(node: &Node, term: u64, metrics: &ControllerMetrics) -> Result<(), Stop> {
    // Everything committed under earlier leaders is applied here before deciding anything.
    node.linearizable_barrier().await.map_err(GroupError::from)?;
    let mut commits = node.subscribe_commits();
    // With no group there is nothing to control: take office (a write, a revision every
    // etcd client would see) only once one exists.
    let mut look = true;
    while !look || group_names(node.store())?.is_empty() {
        look = tokio::select! {
            received = commits.recv() => match received {
                Ok(commit) => commit.events.iter().any(|e| group_of(&e.kv.key).is_some()),
                Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return Ok(()),
            },
            () = node.role_changed(true, term) => return Ok(()),
        };
    }
    let claim = ControllerClaim {
        v: VERSION,
        member: format!("{:x}", node.member_id()),
        term,
    };
    let (_, epoch) = state::write(
        node,
        TxnRequest {
            compare: Vec::new(),
            success: vec![put(CONTROLLER.to_vec(), claim.encode(), 0)],
            failure: Vec::new(),
        },
    )
    .await?;
    tracing::info!(term, epoch, "controller took office");
    let mut active = Active {
        node,
        metrics,
        epoch,
        started: Instant::now(),
        groups: BTreeMap::new(),
    };
    active.refresh_names()?;
    loop {
        active.step_due().await?;
        let wake = active
            .groups
            .values()
            .filter_map(|t| t.wake_at)
            .min()
            .map(|at| active.started + Duration::from_millis(at.0));
        let sleep = async {
            match wake {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = commits.recv() => {
                let mut next = Some(received);
                while let Some(received) = next.take() {
                    match received {
                        Ok(commit) => active.note(&commit.events),
                        Err(RecvError::Lagged(_)) => active.refresh_names()?,
                        Err(RecvError::Closed) => return Ok(()),
                    }
                    // Take whatever else is already there: one look covers a burst.
                    next = match commits.try_recv() {
                        Ok(commit) => Some(Ok(commit)),
                        Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                        Err(TryRecvError::Empty) | Err(TryRecvError::Closed) => None,
                    };
                }
            }
            () = sleep => {}
            () = node.role_changed(true, term) => return Ok(()),
        }
    }
}

impl Active<'_> {
    fn now(&self) -> Millis {
        Millis(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Re-lists every group (at takeover, and when the commit stream lagged).
    fn refresh_names(&mut self) -> Result<(), GroupError> {
        let names: BTreeSet<String> = group_names(self.node.store())?.into_iter().collect();
        self.groups.retain(|name, _| names.contains(name));
        for name in names {
            self.groups.entry(name).or_default().dirty = true;
        }
        Ok(())
    }

    /// Marks the groups the events touched.
    fn note(&mut self, events: &[conclave_mvcc::Event]) {
        for event in events {
            if let Some(name) = group_of(&event.kv.key) {
                self.groups.entry(name.to_string()).or_default().dirty = true;
            }
        }
    }

    async fn step_due(&mut self) -> Result<(), Stop> {
        let now = self.now();
        let due: Vec<String> = self
            .groups
            .iter()
            .filter(|(_, t)| t.dirty || t.wake_at.is_some_and(|at| at <= now))
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            if let Some(tracker) = self.groups.get_mut(&name) {
                tracker.dirty = false;
                tracker.wake_at = None;
            }
            if let Err(stop) = self.step(&name).await {
                match stop {
                    Stop::Deposed => return Err(Stop::Deposed),
                    Stop::Failed(error) => {
                        tracing::warn!(group = %name, %error, "controller step failed; retrying");
                        let retry_at = self.now().after(RETRY);
                        if let Some(tracker) = self.groups.get_mut(&name) {
                            tracker.wake_at = Some(retry_at);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// One step of one group: read, decide, write.
    async fn step(&mut self, name: &str) -> Result<(), Stop> {
        let store = self.node.store().clone();
        let owned = name.to_string();
        let view = tokio::task::spawn_blocking(move || GroupView::read(&store, &owned))
            .await
            .map_err(|e| GroupError::Internal(e.to_string()))??;
        let Some(view) = view else {
            self.groups.remove(name);
            self.metrics.forget_group(name);
            return Ok(());
        };
        let now = self.now();
        let started = Instant::now();
        let Some(tracker) = self.groups.get_mut(name) else {
            return Ok(());
        };
        let members = view.controller_members();
        if tracker.members.as_ref() != Some(&members) {
            tracker.members = Some(members.clone());
            tracker.changed_at = now;
        }
        let settings = view.config.settings();
        let fresh = match &tracker.target {
            Some((m, s, _)) => m != &members || s != &settings,
            None => true,
        };
        if fresh {
            tracker.target = Some((
                members.clone(),
                settings.clone(),
                place(name, &members, &settings),
            ));
        }
        let Some((_, _, target)) = tracker.target.as_ref() else {
            return Ok(());
        };
        let map = view.map();
        refresh_since(&mut tracker.since, &map, now);
        let since_table = tracker.since.clone();
        let since = |p: PartitionId, m: &MemberId| since_table.get(&(p, m.clone())).map(|(_, at)| *at);
        let acks = view.pending_acks();
        let decision = decide(&Input {
            settings: &settings,
            members: &members,
            map: &map,
            target,
            acks: &acks,
            now,
            membership_changed_at: tracker.changed_at,
            since: &since,
        });
        tracker.wake_at = decision.wake_at;

        if decision.is_change() {
            let txn = map_write(&view, &decision, self.epoch);
            let (response, revision) = state::write(self.node, txn).await?;
            if !response.succeeded {
                return self.lost_race(name).await;
            }
            let Some(tracker) = self.groups.get_mut(name) else {
                return Ok(());
            };
            refresh_since(&mut tracker.since, &decision.map, now);
            self.metrics
                .observe_step(name, &decision, started.elapsed(), &mut tracker.moves);
            for event in &decision.events {
                log_event(name, decision.map.generation.0, revision, event);
            }
        } else if !decision.spent_acks.is_empty() {
            // Acks that no longer apply (their replica moved on): clear them.
            let deletes = view
                .acks
                .iter()
                .filter(|a| decision.spent_acks.contains(&a.ack))
                .map(|a| delete(a.key.clone()))
                .collect();
            let txn = TxnRequest {
                compare: vec![mod_is(CONTROLLER.to_vec(), self.epoch)],
                success: deletes,
                failure: Vec::new(),
            };
            let (response, _) = state::write(self.node, txn).await?;
            if !response.succeeded {
                return self.lost_race(name).await;
            }
        }
        self.metrics.observe_map(name, &decision.map, &view);
        Ok(())
    }

    /// A guarded write failed: deposed, or the group changed under us (read again).
    async fn lost_race(&mut self, name: &str) -> Result<(), Stop> {
        let claim = self.node.store().range(&conclave_mvcc::RangeRequest {
            key: CONTROLLER.to_vec(),
            ..Default::default()
        });
        let current = claim
            .map_err(GroupError::from)?
            .kvs
            .first()
            .map_or(0, |kv| kv.mod_revision);
        if current != self.epoch {
            return Err(Stop::Deposed);
        }
        if let Some(tracker) = self.groups.get_mut(name) {
            tracker.dirty = true;
        }
        Ok(())
    }
}

/// Keeps, for every non-ready replica of `map`, when it entered its current stage: the
/// earlier time if the stage is unchanged, else `now`.
fn refresh_since(
    since: &mut BTreeMap<(PartitionId, MemberId), (ReplicaState, Millis)>,
    map: &Map,
    now: Millis,
) {
    let mut next = BTreeMap::new();
    for (index, partition) in map.partitions.iter().enumerate() {
        for replica in partition.replicas.iter().filter(|r| !r.is_ready()) {
            let key = (PartitionId(index as u32), replica.member.clone());
            let at = match since.get(&key) {
                Some((stage, at)) if *stage == replica.state => *at,
                _ => now,
            };
            next.insert(key, (replica.state.clone(), at));
        }
    }
    *since = next;
}

/// The txn that writes `decision` over `view`: it holds only while the map is still the
/// generation read, the group is still the same incarnation, and `epoch` is still the
/// controller's.
fn map_write(view: &GroupView, decision: &Decision, epoch: i64) -> TxnRequest {
    let keys: &GroupKeys = &view.keys;
    let generation = decision.map.generation;
    let mut success = vec![put(
        keys.map(),
        MapHeader {
            v: VERSION,
            generation: generation.0,
        }
        .encode(),
        0,
    )];
    for id in &decision.changed {
        let Some(partition) = decision.map.partitions.get(id.0 as usize) else {
            continue;
        };
        let stored = view.partition(*id).is_some_and(|p| p.record_revision > 0);
        if partition.replicas.is_empty() && partition.leader.is_none() && partition.epoch.0 == 0 {
            if stored {
                success.push(delete(keys.partition(*id)));
            }
        } else {
            success.push(put(
                keys.partition(*id),
                PartitionRecord::of(partition).encode(),
                0,
            ));
        }
    }
    for id in &decision.new_leaders {
        match decision
            .map
            .partitions
            .get(id.0 as usize)
            .and_then(|p| p.leader.as_ref())
        {
            Some(leader) => success.push(put(keys.leader(*id), leader.0.as_bytes().to_vec(), 0)),
            None => success.push(delete(keys.leader(*id))),
        }
    }
    for ack in &view.acks {
        if decision.spent_acks.contains(&ack.ack) {
            success.push(delete(ack.key.clone()));
        }
    }
    let written_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let history = HistoryRecord {
        v: VERSION,
        generation: generation.0,
        changed: decision.changed.iter().map(|p| p.0).collect(),
        new_leaders: decision.new_leaders.iter().map(|p| p.0).collect(),
        written_unix_ms,
    };
    success.push(put(keys.history_entry(generation), history.encode(), 0));
    if generation.0 > HISTORY {
        success.push(delete(
            keys.history_entry(conclave_controller::Generation(generation.0 - HISTORY)),
        ));
    }
    TxnRequest {
        compare: vec![
            mod_is(keys.map(), view.map_revision),
            mod_is(CONTROLLER.to_vec(), epoch),
            created_at(keys.config(), view.config_create_revision),
        ],
        success,
        failure: Vec::new(),
    }
}

fn log_event(group: &str, generation: u64, revision: i64, event: &Event) {
    match event {
        Event::LeaderElected(p, member) => {
            tracing::info!(group, generation, partition = p.0, leader = %member, epoch = revision, "partition leader elected")
        }
        Event::Leaderless(p) => tracing::warn!(
            group,
            generation,
            partition = p.0,
            "partition has no ready replica to lead"
        ),
        Event::Started(step) => tracing::debug!(group, generation, ?step, "hand-over step started"),
        Event::Handoff(p, Outcome::Abandoned(member, reason)) => {
            tracing::info!(group, generation, partition = p.0, %member, ?reason, "move abandoned")
        }
        Event::Handoff(p, Outcome::Lost(member)) => {
            tracing::info!(group, generation, partition = p.0, %member, "replica lost with its member")
        }
        Event::Handoff(p, outcome) => {
            tracing::debug!(group, generation, partition = p.0, ?outcome, "hand-over")
        }
    }
}

/// The reason label of an abandoned move.
pub fn abandon_label(reason: AbandonReason) -> &'static str {
    match reason {
        AbandonReason::MemberGone => "member_gone",
        AbandonReason::Timeout => "timeout",
        AbandonReason::LeadershipChanged => "leadership_changed",
    }
}
