//! Nothing acknowledged is lost when the leader is killed with SIGKILL during a write
//! load, or when every member is killed and restarted.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use conclave_testkit::{leader_index, wait_until, Cluster};
use etcd_client::GetOptions;

/// One acknowledged write: key, value, revision, and when the request was sent.
#[derive(Debug, Clone)]
struct Ack {
    key: String,
    value: String,
    revision: i64,
    sent: Instant,
}

struct Load {
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<Ack>>>,
    failures: Arc<Mutex<u64>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts `writers` concurrent writers, writer `w` talking only to member `w % size + 1`.
async fn start_load(cluster: &Cluster, writers: usize) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(0u64));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut client = client_of(cluster, w % cluster.size() + 1).await;
        let (stop, acks, failures) = (stop.clone(), acks.clone(), failures.clone());
        tasks.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w/{w:02}/{seq:06}");
                let value = format!("{w}-{seq}");
                let sent = Instant::now();
                match tokio::time::timeout(
                    Duration::from_secs(5),
                    client.put(key.as_str(), value.as_str(), None),
                )
                .await
                {
                    Ok(Ok(response)) => {
                        let revision = response.header().map_or(0, |h| h.revision());
                        acks.lock().unwrap().push(Ack {
                            key,
                            value,
                            revision,
                            sent,
                        });
                    }
                    // Failed or timed out: may or may not have applied; never counted as acked.
                    _ => {
                        *failures.lock().unwrap() += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                seq += 1;
            }
        }));
    }
    Load {
        stop,
        acks,
        failures,
        tasks,
    }
}

impl Load {
    fn acked(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    async fn wait_for_acks(&self, at_least: usize, timeout: Duration, cluster: &Cluster) {
        wait_until("acknowledged writes", timeout, || async {
            (self.acked() >= at_least).then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    }

    async fn finish(self) -> (Vec<Ack>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("writer task");
        }
        let acks = self.acks.lock().unwrap().clone();
        let failures = *self.failures.lock().unwrap();
        (acks, failures)
    }
}

/// Checks through `member` (linearizable) that every acknowledged write is present with
/// its value (each key is written once, so the value cannot have been overwritten).
async fn assert_all_present(cluster: &Cluster, member: usize, acks: &[Ack]) {
    let mut client = client_of(cluster, member).await;
    let response = tokio::time::timeout(REQUEST, client.get("w/", Some(GetOptions::new().with_prefix())))
        .await
        .expect("range timed out")
        .expect("range");
    let stored: BTreeMap<&[u8], &[u8]> = response.kvs().iter().map(|kv| (kv.key(), kv.value())).collect();
    let missing: Vec<&Ack> = acks
        .iter()
        .filter(|a| stored.get(a.key.as_bytes()) != Some(&a.value.as_bytes()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes missing on member {member}, e.g. {:?}",
        missing.len(),
        acks.len(),
        &missing[..missing.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_leader_kill() {
    let cluster = start_cluster(3);
    let leader = leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let load = start_load(&cluster, 12).await;
    load.wait_for_acks(300, Duration::from_secs(60), &cluster).await;

    let killed_at = Instant::now();
    cluster.kill(leader).expect("kill leader");
    let before_kill = load.acked();
    // Writes resume: wait for plenty of acknowledgements of requests sent after the kill.
    wait_until(
        "writes to resume after the leader kill",
        Duration::from_secs(30),
        || async {
            let after = load
                .acks
                .lock()
                .unwrap()
                .iter()
                .filter(|a| a.sent > killed_at)
                .count();
            (after >= 300).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    let new_leader = leader_index(&cluster, Duration::from_secs(10))
        .await
        .expect("new leader");
    assert_ne!(new_leader, leader);
    let (acks, failures) = load.finish().await;

    let first_after = acks
        .iter()
        .filter(|a| a.sent > killed_at)
        .map(|a| a.sent.duration_since(killed_at))
        .min()
        .expect("writes after the kill");
    // Revisions of acknowledged writes are unique: no two acks share a revision.
    let mut revisions: Vec<i64> = acks.iter().map(|a| a.revision).collect();
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(
        revisions.len(),
        acks.len(),
        "two acknowledged puts reported the same revision"
    );

    let survivor = (1..=3).find(|i| *i != leader).expect("survivor");
    assert_all_present(&cluster, survivor, &acks).await;
    // The killed member comes back and catches up with everything.
    cluster.restart(leader).expect("restart");
    let restarted = client_of(&cluster, leader).await;
    let last = acks.iter().max_by_key(|a| a.revision).expect("acks");
    wait_until(
        "the restarted member to catch up",
        Duration::from_secs(30),
        || async {
            (get_value(&mut restarted.clone(), &last.key).await.ok()?
                == Some(last.value.clone().into_bytes()))
            .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    assert_all_present(&cluster, leader, &acks).await;
    eprintln!(
        "leader kill: {} acknowledged writes checked ({before_kill} before the kill), {failures} failed or unknown, \
         first write after the kill acknowledged {} ms after it (request sent after the kill)",
        acks.len(),
        first_after.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_of_every_member_and_revisions_continue() {
    let cluster = start_cluster(3);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let load = start_load(&cluster, 9).await;
    load.wait_for_acks(600, Duration::from_secs(60), &cluster).await;
    // Kill everyone while the load is still running.
    for i in 1..=3 {
        cluster.kill(i).expect("kill");
    }
    let (acks, _) = load.finish().await;
    let max_revision = acks.iter().map(|a| a.revision).max().expect("acks");

    for i in 1..=3 {
        cluster.restart(i).expect("restart");
    }
    leader_index(&cluster, Duration::from_secs(30))
        .await
        .expect("leader after restart");
    for i in 1..=3 {
        assert_all_present(&cluster, i, &acks).await;
    }
    let mut client = client_of(&cluster, 1).await;
    let response = tokio::time::timeout(REQUEST, client.put("after-restart", "v", None))
        .await
        .expect("put timed out")
        .expect("put");
    let revision = response.header().expect("header").revision();
    assert!(
        revision > max_revision,
        "revision went back: {revision} <= {max_revision}"
    );
    eprintln!(
        "kill all: {} acknowledged writes checked on 3 members after restart; revision continued at {revision} (> {max_revision})",
        acks.len()
    );
}
