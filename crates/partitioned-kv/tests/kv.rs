//! The example service under churn: writers keep writing while instances join, leave
//! gracefully and crash. At the end every acknowledged write is readable from its
//! partition's leader, and no two instances ever accepted writes for one partition at
//! one epoch.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{accepted, acceptors, client, start_cluster, wait_settled, Kv, GROUP, SESSION_TTL_SECS};
use conclave_testkit::wait_until;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_joins_leaves_and_crashes_with_one_acceptor_per_epoch() {
    let cluster = start_cluster();
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().to_path_buf();
    let sdk = client(&cluster).await;
    let mut members = vec![
        Kv::start(&cluster, &dir, "kv-1").await,
        Kv::start(&cluster, &dir, "kv-2").await,
        Kv::start(&cluster, &dir, "kv-3").await,
    ];
    let mut router = sdk.group(GROUP).router().await.expect("router");
    wait_settled(&mut router, &["kv-1", "kv-2", "kv-3"], Duration::from_secs(30)).await;

    // Writers: unique keys through any live instance; a write counts once answered 200.
    let endpoints = Arc::new(Mutex::new(
        members.iter().map(|m| m.http.clone()).collect::<Vec<_>>(),
    ));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let attempted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (endpoints, acked, attempted, stop) =
            (endpoints.clone(), acked.clone(), attempted.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("http");
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{w}-{i:06}");
                i += 1;
                let targets = endpoints.lock().unwrap().clone();
                let target = &targets[(i as usize + w as usize) % targets.len()];
                attempted.fetch_add(1, Ordering::Relaxed);
                let sent = http
                    .put(format!("{target}/kv/{key}"))
                    .body(key.clone())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => acked.lock().unwrap().push(key),
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }
    let acked_count = |n: usize| {
        let acked = acked.clone();
        move || {
            let acked = acked.clone();
            async move { (acked.lock().unwrap().len() >= n).then_some(()) }
        }
    };
    wait_until("writes to flow", Duration::from_secs(20), acked_count(50))
        .await
        .expect("writes");

    // A fourth instance joins and takes partitions over.
    members.push(Kv::start(&cluster, &dir, "kv-4").await);
    endpoints.lock().unwrap().push(members[3].http.clone());
    wait_settled(
        &mut router,
        &["kv-1", "kv-2", "kv-3", "kv-4"],
        Duration::from_secs(60),
    )
    .await;

    // kv-2 leaves gracefully (SIGTERM: it hands everything over, then exits).
    endpoints.lock().unwrap().retain(|e| *e != members[1].http);
    let left = members[1]
        .process
        .terminate_within(Duration::from_secs(60))
        .expect("kv-2 leaves");
    assert!(
        left.success(),
        "kv-2 exited with {left}\n{}",
        members[1].process.log_tail(30)
    );
    wait_settled(&mut router, &["kv-1", "kv-3", "kv-4"], Duration::from_secs(60)).await;

    // kv-3 crashes; a fifth instance joins.
    endpoints.lock().unwrap().retain(|e| *e != members[2].http);
    members[2].process.kill().expect("kill kv-3");
    members.push(Kv::start(&cluster, &dir, "kv-5").await);
    endpoints.lock().unwrap().push(members[4].http.clone());
    let before = acked.lock().unwrap().len();
    wait_settled(
        &mut router,
        &["kv-1", "kv-4", "kv-5"],
        Duration::from_secs(SESSION_TTL_SECS + 60),
    )
    .await;
    wait_until(
        "writes after the churn",
        Duration::from_secs(20),
        acked_count(before + 50),
    )
    .await
    .expect("writes");
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }

    // Every acknowledged write, from its partition's leader.
    let map = wait_settled(&mut router, &["kv-1", "kv-4", "kv-5"], Duration::from_secs(30)).await;
    let keys = acked.lock().unwrap().clone();
    let http = reqwest::Client::new();
    for key in &keys {
        let p = map.partition_for(key.as_bytes());
        let leader = map.leader(p).expect("a leader").http_endpoint.clone();
        let read = http.get(format!("{leader}/kv/{key}")).send().await.expect("read");
        assert!(
            read.status().is_success(),
            "acknowledged {key} not on the leader of partition {}",
            p.0
        );
        assert_eq!(read.text().await.expect("body"), *key);
    }

    // One acceptor per (partition, epoch), and every acknowledged write in a log.
    let all = accepted(&dir);
    for ((partition, epoch), who) in acceptors(&all) {
        assert_eq!(
            who.len(),
            1,
            "partition {partition} epoch {epoch} accepted by {who:?}"
        );
    }
    let logged: BTreeSet<&str> = all.iter().map(|a| a.key.as_str()).collect();
    assert!(keys.iter().all(|k| logged.contains(k.as_str())));
    let epochs: BTreeSet<(u32, i64)> = all.iter().map(|a| (a.partition, a.epoch)).collect();
    println!(
        "partitioned-kv churn: {} writes attempted, {} acknowledged and read back from their leaders; {} accepted-write records over {} (partition, epoch) pairs, each with one acceptor",
        attempted.load(Ordering::Relaxed),
        keys.len(),
        all.len(),
        epochs.len()
    );
}
