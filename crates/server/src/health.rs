//! The standard `grpc.health.v1.Health` service: SERVING only while this member knows a
//! leader and a linearizable read succeeds (what etcd's health check means) and its own
//! name and client URLs are in the membership (etcd serves clients only after publishing
//! itself, so `etcdctl --cluster` finds every healthy member), NOT_SERVING otherwise.
//! Probed once a second.

use std::time::Duration;

use conclave_consensus::Node;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

/// Overall health is reported for the empty service name, as gRPC health checkers expect.
const OVERALL: &str = "";

/// Keeps `reporter` up to date until `stopped` fires.
pub async fn run(node: Node, reporter: HealthReporter, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut last = None;
    loop {
        let stop = tokio::select! {
            _ = ticker.tick() => false,
            changed = stopped.changed() => changed.is_err() || *stopped.borrow(),
        };
        if stop {
            reporter
                .set_service_status(OVERALL, ServingStatus::NotServing)
                .await;
            return;
        }
        let healthy = node.status().leader.is_some()
            && node.published()
            && tokio::time::timeout(Duration::from_secs(1), node.linearizable_barrier())
                .await
                .is_ok_and(|r| r.is_ok());
        let status = if healthy {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(healthy) {
            tracing::info!(healthy, "health status changed");
            last = Some(healthy);
        }
        reporter.set_service_status(OVERALL, status).await;
    }
}
