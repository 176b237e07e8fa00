//! The shared runner: `--clients` concurrent workers, each with one request in flight, run
//! until `--total` operations are claimed or `--duration` has passed, optionally paced to a
//! total `--rate`. Each worker records into its own [`Recorder`]; they are merged at the end.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::time::MissedTickBehavior;

use crate::stats::{OpError, Recorder};

/// One client's loop body: performs a single operation and names its outcome
/// (the label its latency is recorded under).
pub trait Worker: Send + 'static {
    /// Performs one operation.
    fn op(&mut self) -> impl Future<Output = Result<&'static str, OpError>> + Send;
}

/// When a run stops.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// After this many operations (successful or not) in total.
    Total(u64),
    /// After this long.
    Duration(Duration),
}

/// How a run is driven.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec {
    pub limit: Limit,
    /// Total operations per second over all workers; `None` for as fast as possible.
    pub rate: Option<f64>,
}

/// Runs every worker concurrently until the limit; returns the merged recording and the
/// wall-clock time of the measured phase.
pub async fn run<W: Worker>(workers: Vec<W>, spec: RunSpec) -> Result<(Recorder, Duration)> {
    let n = workers.len().max(1);
    let claimed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = match spec.limit {
        Limit::Duration(d) => Some(start + d),
        Limit::Total(_) => None,
    };
    let total = match spec.limit {
        Limit::Total(t) => Some(t),
        Limit::Duration(_) => None,
    };
    let mut tasks = Vec::with_capacity(n);
    for (i, mut worker) in workers.into_iter().enumerate() {
        let claimed = claimed.clone();
        // Each worker gets rate/n ops per second, staggered so they do not fire together.
        let pacer = spec.rate.filter(|r| *r > 0.0).map(|rate| {
            let period = Duration::from_secs_f64(n as f64 / rate);
            let first = tokio::time::Instant::now() + period.mul_f64(i as f64 / n as f64);
            let mut iv = tokio::time::interval_at(first, period);
            iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
            iv
        });
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            let mut pacer = pacer;
            loop {
                if let Some(total) = total {
                    if claimed.fetch_add(1, Ordering::Relaxed) >= total {
                        break;
                    }
                }
                if let Some(p) = pacer.as_mut() {
                    p.tick().await;
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let t0 = Instant::now();
                match worker.op().await {
                    Ok(label) => rec.ok(label, t0.elapsed()),
                    Err(e) => rec.error(&e),
                }
            }
            rec
        }));
    }
    let mut merged = Recorder::default();
    for t in tasks {
        let rec = t.await.context("a benchmark worker panicked")?;
        merged.merge(&rec);
    }
    Ok((merged, start.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting(u64);
    impl Worker for Counting {
        async fn op(&mut self) -> Result<&'static str, OpError> {
            self.0 += 1;
            if self.0.is_multiple_of(10) {
                Err(OpError::Other("Tenth"))
            } else {
                Ok("op")
            }
        }
    }

    #[tokio::test]
    async fn total_limit_is_exact_across_workers() {
        let workers = (0..4).map(|_| Counting(0)).collect();
        let spec = RunSpec {
            limit: Limit::Total(1000),
            rate: None,
        };
        let (rec, _) = run(workers, spec).await.unwrap();
        assert_eq!(rec.ok_count() + rec.error_count(), 1000);
    }

    #[tokio::test]
    async fn rate_paces_the_run() {
        let workers = (0..2).map(|_| Counting(0)).collect();
        let spec = RunSpec {
            limit: Limit::Duration(Duration::from_millis(500)),
            rate: Some(100.0),
        };
        let (rec, _) = run(workers, spec).await.unwrap();
        let n = rec.ok_count() + rec.error_count();
        assert!((40..=60).contains(&n), "{n}");
    }
}
