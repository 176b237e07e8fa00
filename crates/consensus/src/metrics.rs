//! What the consensus core measures while it works: Prometheus handles under etcd's metric
//! names, so etcd dashboards read them unchanged.
//!
//! Only values that must be observed *as they happen* live here (fsync and batch-commit
//! latencies, in-flight and failed proposals, leader changes). Values that are a function
//! of the current Raft state (term, indexes, leadership) are read by the exporter at scrape
//! time from [`crate::Node::status`]. This crate creates the handles and observes them; the
//! exporter (the server) registers them with its registry and serves them.

use prometheus::core::Collector;
use prometheus::{exponential_buckets, Histogram, HistogramOpts, IntCounter, IntGauge, Opts};

/// Handles the consensus core reports to. Cheap to clone (each handle is shared).
#[derive(Clone, Debug)]
pub struct ConsensusMetrics {
    /// `etcd_disk_wal_fsync_duration_seconds`: latency of each `fdatasync` of the Raft log.
    pub wal_fsync_seconds: Histogram,
    /// `etcd_disk_backend_commit_duration_seconds`: latency of committing one apply batch
    /// to the state machine (one atomic sled batch).
    pub backend_commit_seconds: Histogram,
    /// `etcd_server_proposals_pending`: writes proposed through this member and not yet
    /// answered.
    pub proposals_pending: IntGauge,
    /// `etcd_server_proposals_failed_total`: writes proposed through this member that failed
    /// (timed out, no leader, outcome unknown), as opposed to etcd's deterministic
    /// rejections, which are answers.
    pub proposals_failed: IntCounter,
    /// `etcd_server_leader_changes_seen_total`: times this member saw a new leader.
    pub leader_changes: IntCounter,
}

/// etcd's buckets for disk latencies: 1 ms doubling to about 8 s.
fn disk_buckets() -> prometheus::Result<Vec<f64>> {
    exponential_buckets(0.001, 2.0, 14)
}

impl ConsensusMetrics {
    /// Fresh, unregistered handles.
    pub fn new() -> prometheus::Result<ConsensusMetrics> {
        Ok(ConsensusMetrics {
            wal_fsync_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "etcd_disk_wal_fsync_duration_seconds",
                    "The latency distributions of fsync called by WAL.",
                )
                .buckets(disk_buckets()?),
            )?,
            backend_commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "etcd_disk_backend_commit_duration_seconds",
                    "The latency distributions of commit called by backend.",
                )
                .buckets(disk_buckets()?),
            )?,
            proposals_pending: IntGauge::with_opts(Opts::new(
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            ))?,
            proposals_failed: IntCounter::with_opts(Opts::new(
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            ))?,
            leader_changes: IntCounter::with_opts(Opts::new(
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            ))?,
        })
    }

    /// Every handle, for registering with a registry.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.wal_fsync_seconds.clone()),
            Box::new(self.backend_commit_seconds.clone()),
            Box::new(self.proposals_pending.clone()),
            Box::new(self.proposals_failed.clone()),
            Box::new(self.leader_changes.clone()),
        ]
    }
}

/// Counts a proposal as pending for as long as it lives.
pub(crate) struct PendingProposal(Option<IntGauge>);

impl PendingProposal {
    pub(crate) fn start(metrics: Option<&ConsensusMetrics>) -> PendingProposal {
        let gauge = metrics.map(|m| m.proposals_pending.clone());
        if let Some(gauge) = &gauge {
            gauge.inc();
        }
        PendingProposal(gauge)
    }
}

impl Drop for PendingProposal {
    fn drop(&mut self) {
        if let Some(gauge) = &self.0 {
            gauge.dec();
        }
    }
}

/// Follows leadership as etcd does: a change counts when a leader is known and it is not
/// the one seen last (so losing and regaining the same leader counts again).
#[derive(Debug, Default)]
pub(crate) struct LeaderTracker {
    last: Option<u64>,
}

impl LeaderTracker {
    /// Records the current leader; true if this is a leader change.
    pub(crate) fn observe(&mut self, leader: Option<u64>) -> bool {
        let changed = leader.is_some() && leader != self.last;
        self.last = leader;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_etcds() {
        let buckets = disk_buckets().unwrap();
        assert_eq!(buckets.len(), 14);
        assert_eq!(buckets[0], 0.001);
        assert_eq!(buckets[13], 8.192);
    }

    #[test]
    fn leader_changes_count_new_known_leaders_only() {
        let mut tracker = LeaderTracker::default();
        assert!(!tracker.observe(None));
        assert!(tracker.observe(Some(1)));
        assert!(!tracker.observe(Some(1)));
        assert!(!tracker.observe(None));
        assert!(tracker.observe(Some(1)), "leader lost and regained counts again");
        assert!(tracker.observe(Some(2)));
    }

    #[test]
    fn a_pending_proposal_counts_until_dropped() {
        let metrics = ConsensusMetrics::new().unwrap();
        let pending = PendingProposal::start(Some(&metrics));
        assert_eq!(metrics.proposals_pending.get(), 1);
        drop(pending);
        assert_eq!(metrics.proposals_pending.get(), 0);
        drop(PendingProposal::start(None));
    }
}
