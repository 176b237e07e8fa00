//! A fourth member joins a running cluster with `--join`, catches up through a snapshot,
//! is promoted to voter and serves reads.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use conclave_testkit::{leader_index, wait_until, wait_until_ok, Cluster, ClusterOptions};
use etcd_client::GetOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fourth_member_joins_catches_up_through_a_snapshot_and_is_promoted() {
    let options = ClusterOptions {
        snapshot_count: Some(200),
        ..fast_options(3)
    };
    let mut extra = options.extra_args.clone();
    extra.extend(["--snapshot-catchup-entries".to_string(), "50".to_string()]);
    let cluster = Cluster::start(
        bin(),
        ClusterOptions {
            extra_args: extra,
            ..options
        },
    )
    .expect("cluster");
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");

    let mut client = client_of(&cluster, 1).await;
    for i in 0..1000 {
        client
            .put(format!("pre/{i:05}"), vec![b'p'; 512], None)
            .await
            .expect("put");
    }

    // Keep writing while the new member joins.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        let mut client = client_of(&cluster, 2).await;
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if client.put(format!("during/{i:05}"), "d", None).await.is_ok() {
                    written.store(i + 1, Ordering::Relaxed);
                    i += 1;
                }
            }
        })
    };

    let joined = cluster
        .add_node_joining(&[cluster.node(1).client_url().to_string()])
        .expect("join");
    let newcomer_url = cluster.node(joined).client_url().to_string();
    let mut newcomer = wait_until_ok(
        "the new member to accept connections",
        Duration::from_secs(30),
        || conclave_testkit::client(&newcomer_url),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));

    // Promoted: its own status says it is no longer a learner.
    wait_until(
        "the new member to be promoted to voter",
        Duration::from_secs(60),
        || {
            let mut newcomer = newcomer.clone();
            async move {
                let status = newcomer.status().await.ok()?;
                (!status.is_learner() && status.leader() != 0).then_some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));

    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
    let during = written.load(Ordering::Relaxed);
    assert!(during > 0, "no writes succeeded while the member joined");

    // It serves linearizable reads with everything written before and during the join.
    let pre = newcomer
        .get("pre/", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .expect("count");
    assert_eq!(pre.count(), 1000);
    let dur = newcomer
        .get("during/", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .expect("count");
    assert!(dur.count() as u64 >= during, "{} < {during}", dur.count());

    // It caught up through a snapshot, not by replaying the whole log.
    let log = std::fs::read_to_string(cluster.node(joined).log_path()).expect("log");
    let received = log
        .lines()
        .find(|l| l.contains("snapshot received"))
        .unwrap_or_else(|| {
            panic!(
                "the new member did not receive a snapshot:\n{}",
                cluster.log_dump()
            )
        });
    assert!(log.contains("snapshot installed"), "{}", cluster.log_dump());
    eprintln!("join: {received}; {during} writes during the join; member count 4");

    // The cluster now counts it as a voter: a majority of 4 is 3, so killing one old
    // member still leaves a working cluster that includes the newcomer.
    cluster.kill(1).expect("kill");
    let leader = leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader with newcomer");
    assert_ne!(leader, 1);
    newcomer
        .put("after-join", "ok", None)
        .await
        .expect("put via newcomer");
    assert_eq!(
        get_value(&mut newcomer, "after-join").await.expect("get"),
        Some(b"ok".to_vec())
    );
}
