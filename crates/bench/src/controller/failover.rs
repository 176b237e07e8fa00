//! Crash-to-new-leader and graceful hand-over on a real cluster, with real
//! `partitioned-kv` instances as the group's members.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use conclave_client::group::{GroupMap, GroupSettings, MapEvent, PartitionId, ReplicaStage, Router};
use conclave_client::Client;
use futures::StreamExt;
use serde::Serialize;

use super::{median, ms};

/// What the failover run measured.
#[derive(Debug, Serialize)]
pub struct FailoverReport {
    /// The members' session TTL, seconds.
    pub session_ttl_seconds: u64,
    /// Per kill: ms from SIGKILL until every partition the member led has another leader.
    pub crash_to_new_leaders_ms: Vec<f64>,
    /// Their median.
    pub crash_median_ms: f64,
    /// ms from SIGTERM until the leaving member holds nothing.
    pub leave_total_ms: f64,
    /// Per partition the leaver held: ms from its replacement appearing (syncing) until
    /// the leaver's replica is gone.
    pub handover_median_ms: f64,
    /// The slowest of those.
    pub handover_max_ms: f64,
    /// How many hand-overs.
    pub handovers: usize,
}

struct Instance {
    id: String,
    child: Child,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(kv: &Path, endpoints: &str, group: &str, id: &str, dir: &Path) -> Result<Instance> {
    let log = std::fs::File::create(dir.join(format!("{id}.log")))?;
    let child = Command::new(kv)
        .args([
            "--endpoints",
            endpoints,
            "--group",
            group,
            "--id",
            id,
            "--listen",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", kv.display()))?;
    Ok(Instance { id: id.into(), child })
}

fn settled(map: &GroupMap, replicas: usize, ids: &[String]) -> bool {
    map.members.len() == ids.len()
        && ids.iter().all(|id| map.members.keys().any(|m| &m.0 == id))
        && map.partitions.iter().all(|p| {
            p.leader.is_some()
                && p.replicas.len() == replicas
                && p.replicas.iter().all(|r| r.stage == ReplicaStage::Ready)
        })
}

async fn wait_settled(router: &mut Router, replicas: usize, ids: &[String]) -> Result<GroupMap> {
    Ok((*router
        .wait_for(Duration::from_secs(120), |m| settled(m, replicas, ids))
        .await
        .context("waiting for the map to settle")?)
    .clone())
}

fn led_by(map: &GroupMap, id: &str) -> Vec<(PartitionId, i64)> {
    map.partitions
        .iter()
        .filter(|p| p.leader.as_ref().is_some_and(|l| l.0 == id))
        .map(|p| (p.id, p.epoch.0))
        .collect()
}

/// The knobs of a run.
pub struct FailoverSpec {
    /// Cluster endpoints.
    pub endpoints: Vec<String>,
    /// The `partitioned-kv` binary.
    pub kv_bin: PathBuf,
    /// Instances running at any time.
    pub instances: usize,
    /// Crashes measured.
    pub kills: usize,
    /// Members' session TTL.
    pub session_ttl: Duration,
    /// Where the instances' logs go.
    pub dir: PathBuf,
}

/// Runs the measurement.
pub async fn run(spec: &FailoverSpec) -> Result<FailoverReport> {
    let client = Client::connect(&spec.endpoints).await?;
    let name = "bench-failover";
    let group = client.group(name);
    let _ = group.delete().await;
    let (partitions, replicas) = (64, 2);
    group
        .create(GroupSettings {
            session_ttl: Some(spec.session_ttl),
            rebalance_delay: Some(Duration::from_millis(500)),
            ..GroupSettings::new(partitions, replicas)
        })
        .await
        .context("creating the group")?;
    let endpoints = spec.endpoints.join(",");
    let mut next = 0;
    let mut fresh = |running: &mut Vec<Instance>| -> Result<()> {
        next += 1;
        running.push(spawn(
            &spec.kv_bin,
            &endpoints,
            name,
            &format!("kv-{next}"),
            &spec.dir,
        )?);
        Ok(())
    };
    let mut running: Vec<Instance> = Vec::new();
    for _ in 0..spec.instances {
        fresh(&mut running)?;
    }
    let ids = |running: &[Instance]| running.iter().map(|i| i.id.clone()).collect::<Vec<_>>();
    let mut router = group.router().await?;
    let mut map = wait_settled(&mut router, replicas as usize, &ids(&running)).await?;

    let mut crashes = Vec::new();
    for _ in 0..spec.kills {
        let victim = running
            .iter()
            .enumerate()
            .max_by_key(|(_, i)| led_by(&map, &i.id).len())
            .map(|(index, _)| index)
            .context("no instance")?;
        let led = led_by(&map, &running[victim].id);
        if led.is_empty() {
            bail!("{} leads nothing", running[victim].id);
        }
        let mut dead = running.remove(victim);
        let killed = Instant::now();
        dead.child.kill()?;
        let victim_id = dead.id.clone();
        router
            .wait_for(spec.session_ttl * 3 + Duration::from_secs(30), |m| {
                led.iter().all(|(p, epoch)| {
                    m.partition(*p).is_some_and(|now| {
                        now.leader.as_ref().is_some_and(|l| l.0 != victim_id) && now.epoch.0 > *epoch
                    })
                })
            })
            .await
            .context("waiting for new leaders")?;
        crashes.push(killed.elapsed());
        drop(dead);
        fresh(&mut running)?;
        map = wait_settled(&mut router, replicas as usize, &ids(&running)).await?;
    }

    // A graceful leave, followed generation by generation.
    let leaver = running
        .iter()
        .max_by_key(|i| led_by(&map, &i.id).len())
        .map(|i| i.id.clone())
        .context("no instance")?;
    let mut events = group.watch(map.generation);
    let pid = running
        .iter()
        .find(|i| i.id == leaver)
        .map(|i| i.child.id())
        .context("leaver")?;
    let started = Instant::now();
    // SAFETY: kill(2) has no memory-safety preconditions; the child is alive and unreaped.
    if unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) } != 0 {
        bail!("SIGTERM failed: {}", std::io::Error::last_os_error());
    }
    let mut began: std::collections::BTreeMap<PartitionId, Instant> = Default::default();
    let mut handovers = Vec::new();
    let mut holding: std::collections::BTreeSet<PartitionId> = map
        .partitions
        .iter()
        .filter(|p| p.replicas.iter().any(|r| r.member.0 == leaver))
        .map(|p| p.id)
        .collect();
    while !holding.is_empty() {
        let event = tokio::time::timeout(Duration::from_secs(120), events.next())
            .await
            .context("the leave stalled")?
            .context("the watch ended")??;
        if let MapEvent::Change { partitions, .. } = event {
            for p in partitions {
                if p.replicas
                    .iter()
                    .any(|r| matches!(&r.stage, ReplicaStage::Syncing { replaces: Some(m) } if m.0 == leaver))
                {
                    began.entry(p.id).or_insert_with(Instant::now);
                }
                if p.replicas.iter().all(|r| r.member.0 != leaver) && holding.remove(&p.id) {
                    if let Some(at) = began.remove(&p.id) {
                        handovers.push(at.elapsed());
                    }
                }
            }
        }
    }
    let leave_total = started.elapsed();
    handovers.sort();
    let report = FailoverReport {
        session_ttl_seconds: spec.session_ttl.as_secs(),
        crash_median_ms: ms(median(crashes.clone())),
        crash_to_new_leaders_ms: crashes.into_iter().map(ms).collect(),
        leave_total_ms: ms(leave_total),
        handover_median_ms: ms(median(handovers.clone())),
        handover_max_ms: handovers.last().copied().map_or(0.0, ms),
        handovers: handovers.len(),
    };
    drop(running);
    let _ = group.delete().await;
    Ok(report)
}

/// Prints the report as Markdown.
pub fn print(report: &FailoverReport) {
    println!(
        "kill -9 of the member leading the most partitions → new leaders for all of them (session TTL {} s): median {:.0} ms over {} kills ({:?} ms)\n",
        report.session_ttl_seconds,
        report.crash_median_ms,
        report.crash_to_new_leaders_ms.len(),
        report.crash_to_new_leaders_ms
    );
    println!(
        "graceful leave (SIGTERM) of the member leading the most partitions → it holds nothing: {:.0} ms; per-partition hand-over median {:.1} ms, max {:.1} ms over {} partitions",
        report.leave_total_ms, report.handover_median_ms, report.handover_max_ms, report.handovers
    );
}
