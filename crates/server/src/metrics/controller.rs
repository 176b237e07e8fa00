//! The partition controller's metrics. Only the member running the controller (the Raft
//! leader) reports them; the others report `conclave_controller_active 0` and nothing
//! per group.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conclave_controller::handoff::Outcome;
use conclave_controller::plan::Step;
use conclave_controller::{Decision, Event, Map, PartitionId};
use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts};
use tokio::time::Instant;

use crate::groups::controller::abandon_label;
use crate::groups::GroupView;

/// Handles of the controller's metrics (cheap to clone).
#[derive(Debug, Clone)]
pub struct ControllerMetrics {
    active: IntGauge,
    generation: IntGaugeVec,
    members: IntGaugeVec,
    replicas: IntGaugeVec,
    leaderships: IntGaugeVec,
    moves_in_flight: IntGaugeVec,
    rebalance_seconds: Histogram,
    handoff_seconds: Histogram,
    abandoned: IntCounterVec,
    /// Per group, the members with per-member series now (to drop the ones that left).
    published: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>,
}

impl ControllerMetrics {
    /// Creates the metrics (registered by [`super::Metrics::new`]).
    pub fn new() -> prometheus::Result<ControllerMetrics> {
        Ok(ControllerMetrics {
            active: IntGauge::new(
                "conclave_controller_active",
                "1 on the member running the partition controller (the Raft leader), 0 elsewhere.",
            )?,
            generation: IntGaugeVec::new(
                Opts::new("conclave_controller_map_generation", "The partition map's generation."),
                &["group"],
            )?,
            members: IntGaugeVec::new(
                Opts::new("conclave_controller_members", "Members registered in the group."),
                &["group"],
            )?,
            replicas: IntGaugeVec::new(
                Opts::new(
                    "conclave_controller_partitions",
                    "Replicas a member holds (any stage), per group and member.",
                ),
                &["group", "member"],
            )?,
            leaderships: IntGaugeVec::new(
                Opts::new(
                    "conclave_controller_leaderships",
                    "Partitions a member leads, per group and member.",
                ),
                &["group", "member"],
            )?,
            moves_in_flight: IntGaugeVec::new(
                Opts::new(
                    "conclave_controller_moves_in_flight",
                    "Partitions with a hand-over step in flight (a syncing or releasing replica).",
                ),
                &["group"],
            )?,
            rebalance_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "conclave_controller_rebalance_duration_seconds",
                    "Time of one controller step that changed a map: read, decide (placement and plan), write.",
                )
                .buckets(prometheus::exponential_buckets(0.0005, 2.0, 16)?),
            )?,
            handoff_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "conclave_controller_handoff_duration_seconds",
                    "Time from the start of a move to the old replica's release.",
                )
                .buckets(prometheus::exponential_buckets(0.001, 2.0, 18)?),
            )?,
            abandoned: IntCounterVec::new(
                Opts::new(
                    "conclave_controller_abandoned_moves_total",
                    "Moves given up, by reason (member_gone, timeout, leadership_changed).",
                ),
                &["group", "reason"],
            )?,
            published: Arc::default(),
        })
    }

    /// Every collector, for registration.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.active.clone()),
            Box::new(self.generation.clone()),
            Box::new(self.members.clone()),
            Box::new(self.replicas.clone()),
            Box::new(self.leaderships.clone()),
            Box::new(self.moves_in_flight.clone()),
            Box::new(self.rebalance_seconds.clone()),
            Box::new(self.handoff_seconds.clone()),
            Box::new(self.abandoned.clone()),
        ]
    }

    /// Records one step that wrote a map: its duration, the moves it started, finished
    /// or gave up (`moves`: when each partition's current move started).
    pub fn observe_step(
        &self,
        group: &str,
        decision: &Decision,
        took: Duration,
        moves: &mut BTreeMap<PartitionId, Instant>,
    ) {
        self.active.set(1);
        self.rebalance_seconds.observe(took.as_secs_f64());
        for event in &decision.events {
            match event {
                Event::Started(Step::Add {
                    partition,
                    replaces: Some(_),
                    ..
                }) => {
                    moves.insert(*partition, Instant::now());
                }
                Event::Handoff(p, Outcome::Released(_) | Outcome::ReleaseForced(_)) => {
                    if let Some(started) = moves.remove(p) {
                        self.handoff_seconds.observe(started.elapsed().as_secs_f64());
                    }
                }
                Event::Handoff(p, Outcome::Abandoned(_, reason)) => {
                    moves.remove(p);
                    self.abandoned
                        .with_label_values(&[group, abandon_label(*reason)])
                        .inc();
                }
                _ => {}
            }
        }
    }

    /// Sets the per-group gauges from the map as decided (or read).
    pub fn observe_map(&self, group: &str, map: &Map, view: &GroupView) {
        self.active.set(1);
        self.generation
            .with_label_values(&[group])
            .set(i64::try_from(map.generation.0).unwrap_or(i64::MAX));
        self.members
            .with_label_values(&[group])
            .set(view.members.len() as i64);
        self.moves_in_flight
            .with_label_values(&[group])
            .set(map.partitions.iter().filter(|p| p.in_flight()).count() as i64);
        let load = map.load();
        let led = map.leaderships();
        let mut now: BTreeSet<String> = view.members.iter().map(|m| m.id.0.clone()).collect();
        now.extend(load.keys().map(|m| m.0.clone()));
        for member in &now {
            let id = conclave_controller::MemberId(member.clone());
            self.replicas
                .with_label_values(&[group, member.as_str()])
                .set(i64::from(load.get(&id).copied().unwrap_or(0)));
            self.leaderships
                .with_label_values(&[group, member.as_str()])
                .set(i64::from(led.get(&id).copied().unwrap_or(0)));
        }
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        let before = published
            .insert(group.to_string(), now.clone())
            .unwrap_or_default();
        for gone in before.difference(&now) {
            let _ = self.replicas.remove_label_values(&[group, gone.as_str()]);
            let _ = self.leaderships.remove_label_values(&[group, gone.as_str()]);
        }
    }

    /// Drops a deleted group's series.
    pub fn forget_group(&self, group: &str) {
        let _ = self.generation.remove_label_values(&[group]);
        let _ = self.members.remove_label_values(&[group]);
        let _ = self.moves_in_flight.remove_label_values(&[group]);
        let members = self
            .published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(group)
            .unwrap_or_default();
        for member in members {
            let _ = self.replicas.remove_label_values(&[group, member.as_str()]);
            let _ = self.leaderships.remove_label_values(&[group, member.as_str()]);
        }
    }

    /// This member no longer runs the controller: no per-group series.
    pub fn clear(&self) {
        self.active.set(0);
        self.generation.reset();
        self.members.reset();
        self.replicas.reset();
        self.leaderships.reset();
        self.moves_in_flight.reset();
        self.published.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
