//! This member's Prometheus metrics, served as text at `GET /metrics` (on the client URLs
//! and on any `--listen-metrics-urls`). Every metric is registered here; docs/metrics.md
//! lists them.
//!
//! Names are etcd's where the meaning is the same, so etcd dashboards and alerts work
//! unchanged; ours start with `conclave_`. Three kinds of source:
//! - observed as they happen in the consensus core ([`ConsensusMetrics`]: fsync and commit
//!   latencies, pending and failed proposals, leader changes);
//! - observed as they happen in the server (watch streams and watchers, and gRPC calls
//!   through [`grpc::GrpcMetricsLayer`]);
//! - read at scrape time from the Raft state and the store (leadership, term, indexes,
//!   database size, revisions, leases), so nothing has to be instrumented for them.

pub mod controller;
pub mod grpc;
mod process;

use std::sync::Arc;

use conclave_consensus::{ConsensusMetrics, Node};
use http::header::CONTENT_TYPE;
use http::StatusCode;
use prometheus::core::Collector;
use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::grpc::ETCD_COMPAT_VERSION;
use crate::quota::UsageGauge;
pub use controller::ControllerMetrics;

/// The path metrics are served at (etcd's).
pub const METRICS_PATH: &str = "/metrics";

/// Every metric of one member, registered in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    consensus: ConsensusMetrics,
    scraped: ScrapedGauges,
    watch: WatchGauges,
    grpc: grpc::GrpcCounters,
    process: process::ProcessMetrics,
    controller: ControllerMetrics,
    auth: crate::auth::AuthMetrics,
}

/// Gauges set from the member's state when it is scraped.
#[derive(Debug, Clone)]
struct ScrapedGauges {
    has_leader: IntGauge,
    is_leader: IntGauge,
    is_learner: IntGauge,
    server_id: IntGaugeVec,
    server_version: IntGaugeVec,
    proposals_committed: IntGauge,
    proposals_applied: IntGauge,
    raft_term: IntGauge,
    raft_commit_index: IntGauge,
    raft_applied_index: IntGauge,
    raft_last_log_index: IntGauge,
    db_total_size: IntGauge,
    db_size_in_use: IntGauge,
    current_revision: IntGauge,
    compact_revision: IntGauge,
    leases: IntGauge,
    quota_backend_bytes: IntGauge,
}

/// The watch gauges, kept up to date by the watch sessions.
#[derive(Debug, Clone)]
pub struct WatchGauges {
    streams: IntGauge,
    watchers: IntGauge,
}

fn gauge(name: &str, help: &str) -> prometheus::Result<IntGauge> {
    IntGauge::with_opts(Opts::new(name, help))
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> prometheus::Result<Metrics> {
        let scraped = ScrapedGauges {
            has_leader: gauge(
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            )?,
            is_leader: gauge(
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            )?,
            is_learner: gauge(
                "etcd_server_is_learner",
                "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            )?,
            server_id: IntGaugeVec::new(
                Opts::new(
                    "etcd_server_id",
                    "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
                ),
                &["server_id"],
            )?,
            server_version: IntGaugeVec::new(
                Opts::new(
                    "etcd_server_version",
                    "Which version is running. 1 for 'server_version' label with current version.",
                ),
                &["server_version"],
            )?,
            proposals_committed: gauge(
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed (the Raft commit index).",
            )?,
            proposals_applied: gauge(
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied (the Raft applied index).",
            )?,
            raft_term: gauge("conclave_raft_term", "The current Raft term of this member.")?,
            raft_commit_index: gauge(
                "conclave_raft_commit_index",
                "Index of the last Raft log entry this member knows to be committed.",
            )?,
            raft_applied_index: gauge(
                "conclave_raft_applied_index",
                "Index of the last Raft log entry applied to this member's state machine.",
            )?,
            raft_last_log_index: gauge(
                "conclave_raft_last_log_index",
                "Index of the last entry in this member's Raft log (committed or not).",
            )?,
            db_total_size: gauge(
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            )?,
            db_size_in_use: gauge(
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
            )?,
            current_revision: gauge(
                "etcd_debugging_mvcc_current_revision",
                "The current revision of store.",
            )?,
            compact_revision: gauge(
                "etcd_debugging_mvcc_compact_revision",
                "The revision of the last compaction in store.",
            )?,
            leases: gauge("conclave_leases", "The number of leases currently granted.")?,
            quota_backend_bytes: gauge(
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes.",
            )?,
        };
        let watch = WatchGauges {
            streams: gauge(
                "etcd_debugging_mvcc_watch_stream_total",
                "Total number of watch streams.",
            )?,
            watchers: gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers.")?,
        };
        let metrics = Metrics {
            registry: Registry::new(),
            consensus: ConsensusMetrics::new()?,
            scraped,
            watch,
            grpc: grpc::GrpcCounters::new()?,
            process: process::ProcessMetrics::new()?,
            controller: ControllerMetrics::new()?,
            auth: crate::auth::AuthMetrics::new()?,
        };
        let s = &metrics.scraped;
        let mut collectors: Vec<Box<dyn Collector>> = vec![
            Box::new(s.has_leader.clone()),
            Box::new(s.is_leader.clone()),
            Box::new(s.is_learner.clone()),
            Box::new(s.server_id.clone()),
            Box::new(s.server_version.clone()),
            Box::new(s.proposals_committed.clone()),
            Box::new(s.proposals_applied.clone()),
            Box::new(s.raft_term.clone()),
            Box::new(s.raft_commit_index.clone()),
            Box::new(s.raft_applied_index.clone()),
            Box::new(s.raft_last_log_index.clone()),
            Box::new(s.db_total_size.clone()),
            Box::new(s.db_size_in_use.clone()),
            Box::new(s.current_revision.clone()),
            Box::new(s.compact_revision.clone()),
            Box::new(s.leases.clone()),
            Box::new(s.quota_backend_bytes.clone()),
            Box::new(metrics.watch.streams.clone()),
            Box::new(metrics.watch.watchers.clone()),
        ];
        collectors.extend(metrics.consensus.collectors());
        collectors.extend(metrics.grpc.collectors());
        collectors.extend(metrics.process.collectors());
        collectors.extend(metrics.controller.collectors());
        collectors.extend(metrics.auth.collectors());
        for collector in collectors {
            metrics.registry.register(collector)?;
        }
        metrics
            .scraped
            .server_version
            .with_label_values(&[ETCD_COMPAT_VERSION])
            .set(1);
        Ok(metrics)
    }

    /// The handles the consensus core reports to (give them to `NodeConfig::metrics`).
    pub fn consensus(&self) -> ConsensusMetrics {
        self.consensus.clone()
    }

    /// The gauges watch sessions keep up to date.
    pub fn watch(&self) -> WatchGauges {
        self.watch.clone()
    }

    /// The partition controller's metrics.
    pub fn controller(&self) -> ControllerMetrics {
        self.controller.clone()
    }

    /// The authentication counters.
    pub fn auth(&self) -> crate::auth::AuthMetrics {
        self.auth.clone()
    }

    /// The tower layer that counts gRPC calls on the client port.
    pub fn grpc_layer(&self) -> grpc::GrpcMetricsLayer {
        grpc::GrpcMetricsLayer::new(self.grpc.clone())
    }
}

/// What `/metrics` serves: the registry, refreshed from the member's state on each scrape.
#[derive(Clone)]
pub struct Exporter {
    metrics: Arc<Metrics>,
    node: Node,
    usage: Arc<UsageGauge>,
    quota_backend_bytes: u64,
}

/// Store figures read off the async runtime (each scans little or nothing, but sled calls
/// and /proc reads may block on I/O).
struct StoreFigures {
    size_on_disk: Option<u64>,
    current_revision: i64,
    compact_revision: i64,
    leases: Option<usize>,
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Exporter {
    /// The exporter of `node`'s metrics; `usage` is the quota task's last measurement of
    /// the bytes in use.
    pub fn new(
        metrics: Arc<Metrics>,
        node: Node,
        usage: Arc<UsageGauge>,
        quota_backend_bytes: u64,
    ) -> Exporter {
        metrics
            .scraped
            .server_id
            .with_label_values(&[format!("{:x}", node.member_id()).as_str()])
            .set(1);
        Exporter {
            metrics,
            node,
            usage,
            quota_backend_bytes,
        }
    }

    /// Refreshes the scrape-time gauges and renders every metric in the Prometheus text
    /// format.
    pub async fn scrape(&self) -> Result<String, prometheus::Error> {
        self.refresh().await;
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.metrics.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }

    async fn refresh(&self) {
        let g = &self.metrics.scraped;
        let status = self.node.status();
        g.has_leader.set(i64::from(status.leader.is_some()));
        g.is_leader.set(i64::from(status.is_leader));
        g.is_learner.set(i64::from(status.is_learner));
        g.proposals_committed.set(clamp(status.committed_index));
        g.proposals_applied.set(clamp(status.applied_index));
        g.raft_term.set(clamp(status.term));
        g.raft_commit_index.set(clamp(status.committed_index));
        g.raft_applied_index.set(clamp(status.applied_index));
        g.raft_last_log_index.set(clamp(status.last_log_index));
        g.quota_backend_bytes.set(clamp(self.quota_backend_bytes));

        let store = self.node.store().clone();
        let process = self.metrics.process.clone();
        let figures = tokio::task::spawn_blocking(move || {
            process.refresh();
            StoreFigures {
                size_on_disk: store.size_on_disk().ok(),
                current_revision: store.current_revision(),
                compact_revision: store.compact_revision(),
                leases: store.leases().ok().map(|leases| leases.len()),
            }
        })
        .await;
        let Ok(figures) = figures else {
            tracing::debug!("reading store figures for /metrics failed; serving the previous ones");
            return;
        };
        g.current_revision.set(figures.current_revision);
        g.compact_revision.set(figures.compact_revision);
        if let Some(leases) = figures.leases {
            g.leases.set(i64::try_from(leases).unwrap_or(i64::MAX));
        }
        if let Some(size) = figures.size_on_disk {
            g.db_total_size.set(clamp(size));
            // Until the quota task has measured once, report the file size, as
            // Maintenance.Status does.
            let in_use = match self.usage.get() {
                0 => size,
                in_use => in_use,
            };
            g.db_size_in_use.set(clamp(in_use));
        }
    }
}

/// The HTTP routes serving `exporter` (`GET /metrics`), to merge into a server's router.
pub fn routes(exporter: Exporter) -> axum::Router {
    axum::Router::new().route(
        METRICS_PATH,
        axum::routing::get(move || {
            let exporter = exporter.clone();
            async move {
                match exporter.scrape().await {
                    Ok(text) => (StatusCode::OK, [(CONTENT_TYPE, prometheus::TEXT_FORMAT)], text),
                    Err(e) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                        format!("encoding metrics failed: {e}\n"),
                    ),
                }
            }
        }),
    )
}

/// Keeps one watch stream and its watchers counted for as long as it lives.
#[derive(Debug)]
pub struct WatchStreamCount {
    gauges: WatchGauges,
    watchers: i64,
}

impl WatchGauges {
    /// Counts a new watch stream (and, through [`WatchStreamCount::set_watchers`], its
    /// watchers) until the returned value is dropped.
    pub fn open_stream(&self) -> WatchStreamCount {
        self.streams.inc();
        WatchStreamCount {
            gauges: self.clone(),
            watchers: 0,
        }
    }
}

impl WatchStreamCount {
    /// The stream now has `watchers` watchers.
    pub fn set_watchers(&mut self, watchers: usize) {
        let watchers = i64::try_from(watchers).unwrap_or(i64::MAX);
        if watchers != self.watchers {
            self.gauges.watchers.add(watchers - self.watchers);
            self.watchers = watchers;
        }
    }
}

impl Drop for WatchStreamCount {
    fn drop(&mut self) {
        self.gauges.streams.dec();
        self.gauges.watchers.sub(self.watchers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_once_under_its_name() {
        let metrics = Metrics::new().unwrap();
        let names: Vec<String> = metrics
            .registry
            .gather()
            .iter()
            .map(|family| family.name().to_string())
            .collect();
        for name in [
            "etcd_server_has_leader",
            "etcd_server_is_leader",
            "etcd_disk_wal_fsync_duration_seconds",
            "etcd_server_leader_changes_seen_total",
            "etcd_server_version",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
        }
    }

    #[test]
    fn watch_streams_and_watchers_are_counted_while_open() {
        let metrics = Metrics::new().unwrap();
        let gauges = metrics.watch();
        let mut first = gauges.open_stream();
        let mut second = gauges.open_stream();
        first.set_watchers(3);
        second.set_watchers(2);
        first.set_watchers(1);
        assert_eq!(gauges.streams.get(), 2);
        assert_eq!(gauges.watchers.get(), 3);
        drop(first);
        assert_eq!(gauges.streams.get(), 1);
        assert_eq!(gauges.watchers.get(), 2);
        drop(second);
        assert_eq!((gauges.streams.get(), gauges.watchers.get()), (0, 0));
    }
}
