//! etcd's Lease service: grant, attach, time-to-live, keep-alive, revoke, expiry, and
//! leases that survive a leader change without expiring early.

mod common;

use std::time::{Duration, Instant};

use common::*;
use conclave_testkit::{leader_index, wait_until, Cluster, ClusterOptions};
use etcd_client::{
    Client, EventType, GetOptions, LeaseGrantOptions, LeaseTimeToLiveOptions, PutOptions, WatchOptions,
};

async fn exists(client: &mut Client, key: &str) -> bool {
    get_value(client, key).await.expect("get").is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grant_attach_time_to_live_keep_alive_revoke_and_expiry_work_as_in_etcd() {
    let cluster = start_cluster(3);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    // A follower-or-leader alike.
    let mut client = client_of(&cluster, 2).await;

    let granted = client.lease_grant(30, None).await.expect("grant");
    assert!(granted.id() > 0);
    assert_eq!(granted.ttl(), 30);
    let chosen = client
        .lease_grant(30, Some(LeaseGrantOptions::new().with_id(0x1234)))
        .await
        .expect("grant id");
    assert_eq!(chosen.id(), 0x1234);
    assert_grpc_error(
        client
            .lease_grant(30, Some(LeaseGrantOptions::new().with_id(0x1234)))
            .await,
        tonic::Code::FailedPrecondition,
        "etcdserver: lease already exists",
    );

    client
        .put("l/a", "1", Some(PutOptions::new().with_lease(granted.id())))
        .await
        .expect("put a");
    client
        .put("l/b", "2", Some(PutOptions::new().with_lease(granted.id())))
        .await
        .expect("put b");
    client
        .put("l/c", "3", Some(PutOptions::new().with_lease(chosen.id())))
        .await
        .expect("put c");
    let kv = client.get("l/a", None).await.expect("get");
    assert_eq!(kv.kvs()[0].lease(), granted.id());

    let ttl = client
        .lease_time_to_live(granted.id(), Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("ttl");
    assert_eq!(ttl.granted_ttl(), 30);
    assert!(ttl.ttl() > 25 && ttl.ttl() <= 30, "{}", ttl.ttl());
    assert_eq!(ttl.keys(), &[b"l/a".to_vec(), b"l/b".to_vec()]);
    let unknown = client
        .lease_time_to_live(0x9999, None)
        .await
        .expect("ttl of unknown");
    assert_eq!(unknown.ttl(), -1);

    let mut ids: Vec<i64> = client
        .leases()
        .await
        .expect("leases")
        .leases()
        .iter()
        .map(|l| l.id())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![granted.id(), chosen.id()];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    // Revoke deletes every attached key in one revision.
    let mut watcher = client
        .watch("l/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    assert!(watcher
        .message()
        .await
        .expect("created")
        .expect("created")
        .created());
    client.lease_revoke(granted.id()).await.expect("revoke");
    let response = watcher.message().await.expect("events").expect("events");
    let events = response.events();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.event_type() == EventType::Delete));
    assert_eq!(
        events[0].kv().expect("kv").mod_revision(),
        events[1].kv().expect("kv").mod_revision()
    );
    assert!(!exists(&mut client, "l/a").await && !exists(&mut client, "l/b").await);
    assert!(exists(&mut client, "l/c").await);
    assert_grpc_error(
        client.lease_revoke(granted.id()).await,
        tonic::Code::NotFound,
        "etcdserver: requested lease not found",
    );

    // Keep-alive: an unknown lease answers TTL 0 (etcd-client turns that into an error);
    // a kept-alive lease outlives its TTL.
    let unknown = client
        .lease_keep_alive(0x7777)
        .await
        .map(|_| ())
        .expect_err("unknown lease");
    assert!(unknown.to_string().contains("lease not found"), "{unknown}");

    let short = client.lease_grant(2, None).await.expect("grant short");
    client
        .put("l/kept", "k", Some(PutOptions::new().with_lease(short.id())))
        .await
        .expect("put");
    let (mut keeper, mut acks) = client
        .lease_keep_alive(short.id())
        .await
        .expect("keep-alive stream");
    let kept_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < kept_until {
        keeper.keep_alive().await.expect("send");
        assert_eq!(acks.message().await.expect("ack").expect("ack").ttl(), 2);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(exists(&mut client, "l/kept").await, "a kept-alive lease expired");

    // Without keep-alives it expires and its key is deleted.
    drop(keeper);
    let start = Instant::now();
    wait_until("the lease to expire", Duration::from_secs(15), || {
        let mut c = client.clone();
        async move { (!exists(&mut c, "l/kept").await).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    eprintln!(
        "lease expiry: key deleted {} ms after keep-alives stopped (TTL 2 s; the last one was at most 0.5 s earlier)",
        start.elapsed().as_millis()
    );
    let count = client
        .get("l/", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .expect("count");
    assert_eq!(count.count(), 1, "only l/c is left");

    // Putting with a lease that does not exist.
    assert_grpc_error(
        client
            .put("l/x", "x", Some(PutOptions::new().with_lease(short.id())))
            .await,
        tonic::Code::NotFound,
        "etcdserver: requested lease not found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_survive_a_leader_kill_without_expiring_early() {
    let options = ClusterOptions {
        extra_args: vec![
            "--request-timeout".into(),
            "3000".into(),
            "--lease-checkpoint-interval".into(),
            "300".into(),
        ],
        ..fast_options(3)
    };
    let cluster = Cluster::start(bin(), options).expect("cluster");
    let leader = leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let survivor = (1..=3).find(|i| *i != leader).expect("survivor");
    let mut client = client_of(&cluster, survivor).await;

    // One lease kept alive through the failover, one left to run out.
    let kept = client.lease_grant(4, None).await.expect("grant");
    let idle = client.lease_grant(8, None).await.expect("grant");
    let idle_granted = Instant::now();
    client
        .put("kept", "1", Some(PutOptions::new().with_lease(kept.id())))
        .await
        .expect("put");
    client
        .put("idle", "1", Some(PutOptions::new().with_lease(idle.id())))
        .await
        .expect("put");
    // Let a checkpoint record the idle lease's countdown, then kill the leader.
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.kill(leader).expect("kill leader");

    let (mut keeper, mut acks) = client
        .lease_keep_alive(kept.id())
        .await
        .expect("keep-alive stream");
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        // Keep-alives may fail while a new leader is elected; they are retried.
        if keeper.keep_alive().await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(4), acks.message()).await;
        }
        assert!(
            exists(&mut client, "kept").await,
            "a kept-alive lease expired across the failover"
        );
        // The idle lease must not expire before its TTL has run since it was granted.
        if idle_granted.elapsed() < Duration::from_millis(7500) {
            assert!(
                exists(&mut client, "idle").await,
                "the idle lease expired early after the failover"
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // And it does expire: a checkpointed countdown continues instead of restarting.
    wait_until("the idle lease to expire", Duration::from_secs(20), || {
        let mut c = client.clone();
        async move { (!exists(&mut c, "idle").await).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    eprintln!(
        "lease failover: idle 8 s lease expired {} ms after its grant (leader killed at 2 s)",
        idle_granted.elapsed().as_millis()
    );
}
