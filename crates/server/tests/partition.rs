//! A member cut off from the others (peer traffic dropped by the test's proxy) refuses
//! linearizable reads, and catches up once reconnected.

mod common;

use std::time::Duration;

use common::*;
use conclave_testkit::{leader_index, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isolated_member_refuses_linearizable_reads_and_catches_up_after_heal() {
    let cluster = start_cluster(3);
    let leader = leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let follower = (1..=3).find(|i| *i != leader).expect("follower");
    let mut leader_client = client_of(&cluster, leader).await;
    let mut follower_client = client_of(&cluster, follower).await;
    leader_client.put("p", "before", None).await.expect("put");
    wait_until(
        "the follower to see the first write",
        Duration::from_secs(10),
        || {
            let mut c = follower_client.clone();
            async move { (get_local(&mut c, "p").await.ok()? == Some(b"before".to_vec())).then_some(()) }
        },
    )
    .await
    .expect("replicated");

    cluster.isolate(follower);
    // The majority keeps working.
    leader_client
        .put("p", "during", None)
        .await
        .expect("put during partition");
    // The isolated member cannot confirm a read index: its linearizable read fails...
    let err = get_value(&mut follower_client, "p")
        .await
        .expect_err("linearizable read on an isolated member");
    assert!(
        err.contains("Unavailable") || err.contains("timed out") || err.contains("no leader"),
        "{err}"
    );
    // ...while a serializable read answers from its (stale) local state.
    assert_eq!(
        get_local(&mut follower_client, "p").await.expect("serializable"),
        Some(b"before".to_vec())
    );

    cluster.heal();
    wait_until("the healed member to catch up", Duration::from_secs(20), || {
        let mut c = follower_client.clone();
        async move { (get_value(&mut c, "p").await.ok()? == Some(b"during".to_vec())).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn isolated_leader_is_replaced_and_stops_serving_linearizable_reads() {
    let cluster = start_cluster(3);
    let old = leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let mut old_client = client_of(&cluster, old).await;
    old_client.put("q", "1", None).await.expect("put");

    cluster.isolate(old);
    let other = (1..=3).find(|i| *i != old).expect("other");
    let mut other_client = client_of(&cluster, other).await;
    // The majority elects a new leader and takes writes.
    wait_until("the majority to accept a write", Duration::from_secs(20), || {
        let mut c = other_client.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(3), c.put("q", "2", None))
                .await
                .ok()?
                .ok()
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    // The deposed leader must not serve the stale value as linearizable.
    let answer = get_value(&mut old_client, "q").await;
    assert!(
        answer.is_err(),
        "an isolated ex-leader answered a linearizable read: {answer:?}"
    );
    cluster.heal();
    wait_until("the old leader to catch up", Duration::from_secs(20), || {
        let mut c = old_client.clone();
        async move { (get_value(&mut c, "q").await.ok()? == Some(b"2".to_vec())).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    assert_eq!(
        get_value(&mut other_client, "q").await.expect("get"),
        Some(b"2".to_vec())
    );
}
