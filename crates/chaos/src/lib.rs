//! Fault injection for Conclave: a cluster of real `conclave` processes (3 or 5 members)
//! under a seeded schedule of kills, leader kills, pauses, isolations and splits, while
//! client workers record every operation. Afterwards: a linearizability check of the
//! history (per-key registers with read, write and compare-and-swap; failed writes count as
//! "may or may not have happened"), final reads after healing (no acknowledged write lost),
//! and a watch opened at the start that must see every revision exactly once, in order.
//!
//! `make chaos` runs the long schedules (`conclave-chaos`); the normal test run includes a
//! short seeded one (`tests/short.rs`).

pub mod nemesis;
pub mod rng;
pub mod verdict;
pub mod watch_check;
pub mod workload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conclave_testkit::{leader_index, Cluster, ClusterOptions};
use tokio::time::Instant;

use nemesis::Injection;
use rng::Rng;
use workload::{OpKind, OpOutcome, Recorded, Recorder};

/// One schedule to run.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The `conclave` binary.
    pub bin: PathBuf,
    /// Members (3 or 5).
    pub size: usize,
    /// Seed of the fault schedule and the workload.
    pub seed: u64,
    /// How long faults are injected.
    pub duration: Duration,
    /// Concurrent client workers.
    pub clients: usize,
    /// Keys the workload uses.
    pub keys: usize,
}

/// What a schedule showed.
#[derive(Debug)]
pub struct Outcome {
    /// The schedule.
    pub schedule: Schedule,
    /// Faults injected, in order.
    pub injections: Vec<Injection>,
    /// Every operation, final reads included.
    pub ops: Vec<Recorded>,
    /// For each fault that removed the leader: time until the next acknowledged write.
    pub failovers: Vec<Duration>,
    /// The watch check: events seen, or the problem found.
    pub watch: Result<usize, String>,
    /// The linearizability verdict.
    pub verdict: verdict::Verdict,
}

/// Errors that stop a schedule before it can be judged.
#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    /// The cluster could not be started or never recovered.
    #[error("cluster: {0}")]
    Cluster(String),
}

/// Runs one schedule and judges it.
pub async fn run(schedule: Schedule) -> Result<Outcome, ChaosError> {
    let options = ClusterOptions {
        size: schedule.size,
        heartbeat_ms: Some(50),
        election_timeout_ms: Some(500),
        extra_args: vec!["--request-timeout".into(), "2000".into()],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(&schedule.bin, options).map_err(|e| ChaosError::Cluster(e.to_string()))?;
    leader_index(&cluster, Duration::from_secs(30))
        .await
        .map_err(|e| ChaosError::Cluster(e.to_string()))?;
    let endpoints = cluster.client_endpoints();
    let mut rng = Rng::new(schedule.seed);
    let recorder = Recorder::new();
    let stop = Arc::new(AtomicBool::new(false));

    // The watcher starts at the current revision, before any workload write.
    let start_revision = {
        let mut client = conclave_testkit::client(&endpoints[0])
            .await
            .map_err(|e| ChaosError::Cluster(e.to_string()))?;
        let response = client
            .get("chaos/", None)
            .await
            .map_err(|e| ChaosError::Cluster(e.to_string()))?;
        response.header().map_or(1, |h| h.revision()) + 1
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let watch_stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch_check::follow(
        endpoints.clone(),
        "chaos/".into(),
        start_revision,
        rng.fork(),
        seen.clone(),
        watch_stop.clone(),
    ));
    let mut workers = Vec::new();
    for id in 0..schedule.clients {
        workers.push(tokio::spawn(workload::run_worker(
            id,
            endpoints.clone(),
            schedule.keys,
            rng.fork(),
            recorder.clone(),
            stop.clone(),
        )));
    }

    // Faults, one at a time: quiet period, inject, hold, heal.
    let mut injections = Vec::new();
    let end = Instant::now() + schedule.duration;
    while Instant::now() < end {
        tokio::time::sleep(rng.millis(500, 1500)).await;
        let fault = nemesis::pick(&mut rng, schedule.size);
        let injection = nemesis::inject(&cluster, fault).await;
        tracing::info!(?injection, "fault injected");
        tokio::time::sleep(rng.millis(1000, 3000)).await;
        nemesis::heal(&cluster, &injection);
        injections.push(injection);
    }
    cluster.heal();
    for i in 1..=schedule.size {
        let node = cluster.node(i);
        if node.is_paused() {
            let _ = cluster.resume(i);
        }
        if !node.is_running() {
            let _ = cluster.restart(i);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        let _ = worker.await;
    }
    leader_index(&cluster, Duration::from_secs(30))
        .await
        .map_err(|e| ChaosError::Cluster(format!("no leader after healing: {e}\n{}", cluster.log_dump())))?;

    // Final linearizable reads of every key, after everything healed.
    final_reads(&cluster, &recorder, schedule.keys).await?;
    let ops = recorder.snapshot();
    let acknowledged: Vec<i64> = ops
        .iter()
        .filter_map(|op| match op.outcome {
            OpOutcome::Written(revision) | OpOutcome::Cas(true, revision) => Some(revision),
            _ => None,
        })
        .collect();
    let last_acknowledged = acknowledged.iter().copied().max().unwrap_or(0);
    // Give the watcher until it has caught up with the last acknowledged revision.
    let caught_up = Instant::now() + Duration::from_secs(20);
    while Instant::now() < caught_up {
        let latest = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last()
            .map_or(0, |s: &watch_check::Seen| s.0);
        if latest >= last_acknowledged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch_stop.store(true, Ordering::Relaxed);
    let _ = watcher.await;
    let mut acknowledged_sorted = acknowledged.clone();
    acknowledged_sorted.sort_unstable();
    let watch = watch_check::verify(
        &seen.lock().unwrap_or_else(|p| p.into_inner()),
        &acknowledged_sorted,
    );

    let failovers = failover_times(&recorder, &injections, &ops);
    let verdict = verdict::judge(&ops);
    Ok(Outcome {
        schedule,
        injections,
        ops,
        failovers,
        watch,
        verdict,
    })
}

async fn final_reads(cluster: &Cluster, recorder: &Recorder, keys: usize) -> Result<(), ChaosError> {
    let endpoints = cluster.client_endpoints();
    for k in 0..keys {
        let key = format!("chaos/{k}");
        let mut done = false;
        for attempt in 0..30 {
            let endpoint = &endpoints[attempt % endpoints.len()];
            let Ok(mut client) = conclave_testkit::client(endpoint).await else {
                continue;
            };
            let invoked = recorder.now();
            if let Ok(Ok(response)) =
                tokio::time::timeout(Duration::from_secs(3), client.get(key.as_str(), None)).await
            {
                let value = response
                    .kvs()
                    .first()
                    .map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
                let completed = recorder.now();
                recorder.push(Recorded {
                    client: usize::MAX,
                    key: key.clone(),
                    kind: OpKind::Read,
                    invoked,
                    completed,
                    outcome: OpOutcome::Read(value),
                });
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !done {
            return Err(ChaosError::Cluster(format!(
                "final read of {key} never succeeded\n{}",
                cluster.log_dump()
            )));
        }
    }
    Ok(())
}

/// For each fault that removed the leader, the time from the fault to the completion of
/// the first acknowledged write invoked after it.
fn failover_times(recorder: &Recorder, injections: &[Injection], ops: &[Recorded]) -> Vec<Duration> {
    injections
        .iter()
        .filter(|i| i.hit_leader)
        .filter_map(|injection| {
            let at = recorder.at(injection.at);
            ops.iter()
                .filter(|op| op.invoked >= at)
                .filter(|op| matches!(op.outcome, OpOutcome::Written(_) | OpOutcome::Cas(true, _)))
                .map(|op| op.completed - at)
                .min()
                .map(Duration::from_nanos)
        })
        .collect()
}

/// A human-readable summary of an outcome, as `make chaos` prints it.
pub fn summary(outcome: &Outcome) -> String {
    let count = |f: &dyn Fn(&OpOutcome) -> bool| outcome.ops.iter().filter(|op| f(&op.outcome)).count();
    let ok = count(&|o| matches!(o, OpOutcome::Read(_) | OpOutcome::Written(_) | OpOutcome::Cas(..)));
    let failed = count(&|o| matches!(o, OpOutcome::Failed));
    let unknown = count(&|o| matches!(o, OpOutcome::Unknown));
    let mut failovers: Vec<u128> = outcome.failovers.iter().map(|d| d.as_millis()).collect();
    failovers.sort_unstable();
    format!(
        "schedule seed={} members={} duration={:?} clients={}: faults {:?}\n  ops attempted {} ok {} failed {} unknown {}; keys checked {}; verdict: {}\n  faults aimed at the leader → next acknowledged write (ms): {:?}\n  watch: {}",
        outcome.schedule.seed,
        outcome.schedule.size,
        outcome.schedule.duration,
        outcome.schedule.clients,
        outcome.injections.iter().map(|i| i.fault).collect::<Vec<_>>(),
        outcome.ops.len(),
        ok,
        failed,
        unknown,
        outcome.schedule.keys,
        outcome.verdict,
        failovers,
        match &outcome.watch {
            Ok(n) => format!("{n} events, every revision once and in order, every acknowledged write seen"),
            Err(problem) => format!("FAILED: {problem}"),
        }
    )
}
