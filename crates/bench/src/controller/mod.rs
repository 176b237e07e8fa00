//! `conclave-bench controller-placement` and `controller-failover`: the partition
//! controller's figures (docs/benchmarks-controller.md, `make bench-controller`).
//!
//! - placement: how long placement and one plan take for P partitions × R replicas over
//!   N simulated members, and how many replicas a join or a leave moves against the
//!   ideal (the pure core, no cluster);
//! - failover: on a real cluster with real `partitioned-kv` instances, the time from a
//!   member's `kill -9` until every partition it led has a new leader, and from a graceful
//!   leave (SIGTERM) until everything it held is handed over.

pub mod failover;
pub mod placement;

use std::time::Duration;

/// The median of `samples` (the upper one of an even count); zero if there are none.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Milliseconds with two decimals, for reports.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}
