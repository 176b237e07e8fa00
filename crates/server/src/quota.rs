//! The backend quota (etcd's `--quota-backend-bytes`): when this member's live data
//! grows past it, a NOSPACE alarm is raised through Raft and every member refuses writes
//! that add data until the alarm is disarmed (etcd's behaviour).
//!
//! "Live data" is the store's size in use (records of keys, values and history), which
//! shrinks after deletes and compaction; sled's file size does not shrink (see
//! docs/compatibility.md, Defragment).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use conclave_consensus::{Alarm, AlarmChange, AlarmKind, Node};
use tonic::Status;

/// How often the size is checked.
const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Last measured bytes in use (shown by Maintenance.Status as dbSizeInUse).
#[derive(Debug, Default)]
pub struct UsageGauge(AtomicU64);

impl UsageGauge {
    /// The last measurement.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Refuses a write that adds data while any NOSPACE alarm is raised.
pub fn check_space(node: &Node) -> Result<(), Status> {
    let alarms = node.alarms().map_err(|e| Status::internal(e.to_string()))?;
    if alarms.iter().any(|a| a.kind == AlarmKind::NoSpace) {
        return Err(Status::resource_exhausted(conclave_contract::errors::NO_SPACE));
    }
    Ok(())
}

/// Measures usage and raises this member's NOSPACE alarm when it passes `quota` bytes.
pub async fn run(node: Node, quota: u64, gauge: Arc<UsageGauge>) {
    let mut ticker = tokio::time::interval(CHECK_INTERVAL);
    loop {
        ticker.tick().await;
        let store = node.store().clone();
        let Ok(Ok(in_use)) = tokio::task::spawn_blocking(move || store.size_in_use()).await else {
            continue;
        };
        gauge.0.store(in_use, Ordering::Relaxed);
        if quota == 0 || in_use <= quota {
            continue;
        }
        let alarm = Alarm {
            member_id: node.member_id(),
            kind: AlarmKind::NoSpace,
        };
        let raised = node
            .alarms()
            .map(|alarms| alarms.contains(&alarm))
            .unwrap_or(true);
        if !raised {
            tracing::warn!(in_use, quota, "backend quota exceeded; raising NOSPACE");
            if let Err(e) = node.change_alarm(AlarmChange::Activate(alarm)).await {
                tracing::warn!(error = %e, "raising NOSPACE failed");
            }
        }
    }
}
