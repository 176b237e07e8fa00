//! etcd's Maintenance API: Status, HashKV, MoveLeader, Snapshot, Alarm with the backend
//! quota, Defragment; and the gRPC health service.

mod common;

use std::time::Duration;

use common::*;
use conclave_testkit::{leader_index, wait_until, Cluster, ClusterOptions};
use etcd_client::{AlarmAction, AlarmOptions, AlarmType, GetOptions};
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_hash_move_leader_snapshot_and_health_work_as_in_etcd() {
    let cluster = start_cluster(3);
    let leader = leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let follower = (1..=3).find(|i| *i != leader).expect("follower");
    let mut clients = Vec::new();
    for i in 1..=3 {
        clients.push(client_of(&cluster, i).await);
    }
    for i in 0..200 {
        clients[0]
            .put(format!("m/{i:03}"), vec![b'v'; 200], None)
            .await
            .expect("put");
    }

    // Status on every member names the same leader; HashKV agrees once all have applied.
    let mut hashes = Vec::new();
    let mut leaders = Vec::new();
    for client in clients.iter_mut() {
        client
            .get("m/000", None)
            .await
            .expect("linearizable read: applied everything");
        let status = client.status().await.expect("status");
        assert_eq!(status.version(), "3.5.0");
        assert!(!status.is_learner());
        assert!(status.db_size() > 0);
        leaders.push(status.leader());
        let hash = client.hash_kv(0).await.expect("hash kv");
        hashes.push((hash.hash(), hash.header().expect("header").revision()));
    }
    assert!(leaders.iter().all(|l| *l == leaders[0] && *l != 0));
    assert!(
        hashes.iter().all(|h| *h == hashes[0]),
        "members disagree on the data: {hashes:?}"
    );

    // MoveLeader: refused on a follower and for a bad target; works on the leader.
    let target_id = {
        let status = clients[follower - 1].status().await.expect("status");
        status.header().expect("header").member_id()
    };
    assert_grpc_error(
        clients[follower - 1].move_leader(target_id).await,
        tonic::Code::FailedPrecondition,
        "etcdserver: not leader",
    );
    assert_grpc_error(
        clients[leader - 1].move_leader(0x5151).await,
        tonic::Code::FailedPrecondition,
        "etcdserver: bad leader transferee",
    );
    clients[leader - 1]
        .move_leader(target_id)
        .await
        .expect("move leader");
    assert_eq!(
        leader_index(&cluster, Duration::from_secs(10))
            .await
            .expect("leader"),
        follower
    );

    // Snapshot: etcd's framing (payload padded to 512 bytes, then its SHA-256), and the
    // payload is a Conclave snapshot holding the data.
    let mut stream = clients[2].snapshot().await.expect("snapshot");
    let mut bytes = Vec::new();
    while let Some(piece) = stream.message().await.expect("snapshot piece") {
        bytes.extend_from_slice(piece.blob());
    }
    assert_eq!(bytes.len() % 512, 32, "etcdctl's check: size % 512 == 32");
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    assert_eq!(Sha256::digest(body).as_slice(), digest);
    let path = cluster.dir().join("saved.snapshot");
    std::fs::write(&path, body).expect("write snapshot");
    let (meta, records) = conclave_consensus::snapshot::verify(&path).expect("a valid Conclave snapshot");
    assert!(meta.last_log_id.is_some());
    assert!(records >= 200, "{records} records");
    eprintln!("snapshot: {} bytes streamed, {records} records", bytes.len());

    clients[0].defragment().await.expect("defragment");

    // gRPC health: serving with a leader; not serving when cut off from the others.
    let channel = tonic::transport::Endpoint::from_shared(cluster.node(1).client_url().to_string())
        .expect("endpoint")
        .connect_lazy();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let check = || tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    };
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    wait_until("member 1 to report SERVING", Duration::from_secs(10), || {
        let mut h = health.clone();
        async move { (h.check(check()).await.ok()?.into_inner().status == serving).then_some(()) }
    })
    .await
    .expect("serving");
    cluster.isolate(1);
    wait_until(
        "an isolated member to report NOT_SERVING",
        Duration::from_secs(20),
        || {
            let mut h = health.clone();
            async move { (h.check(check()).await.ok()?.into_inner().status != serving).then_some(()) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    cluster.heal();
    wait_until(
        "member 1 to report SERVING again",
        Duration::from_secs(20),
        || {
            let mut h = health.clone();
            async move { (h.check(check()).await.ok()?.into_inner().status == serving).then_some(()) }
        },
    )
    .await
    .expect("serving again");
    let _ = &mut health;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_quota_raises_nospace_which_refuses_writes_until_space_is_freed_and_disarmed() {
    let mut options = fast_options(3);
    options
        .extra_args
        .extend(["--quota-backend-bytes".to_string(), "300000".to_string()]);
    let cluster = Cluster::start(bin(), ClusterOptions { ..options }).expect("cluster");
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let mut client = client_of(&cluster, 1).await;
    for i in 0..40 {
        client
            .put(format!("q/{i:02}"), vec![b'x'; 10_000], None)
            .await
            .expect("put");
    }
    wait_until("NOSPACE to be raised", Duration::from_secs(30), || {
        let mut c = client.clone();
        async move {
            let response = c.alarm(AlarmAction::Get, AlarmType::None, None).await.ok()?;
            let alarms = response.alarms().to_vec();
            alarms
                .iter()
                .any(|a| a.alarm() == AlarmType::Nospace)
                .then_some(alarms)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));

    // Writes that add data are refused on every member; reads and deletes still work.
    for i in 1..=3 {
        let mut c = client_of(&cluster, i).await;
        assert_grpc_error(
            c.put("q/more", "x", None).await,
            tonic::Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded",
        );
        assert_grpc_error(
            c.lease_grant(10, None).await,
            tonic::Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded",
        );
    }
    assert_eq!(
        client
            .get("q/", Some(GetOptions::new().with_prefix().with_count_only()))
            .await
            .expect("count")
            .count(),
        40
    );
    let deleted = client
        .delete("q/", Some(etcd_client::DeleteOptions::new().with_prefix()))
        .await
        .expect("delete");
    let revision = deleted.header().expect("header").revision();
    client.compact(revision, None).await.expect("compact");
    client.defragment().await.expect("defrag");

    // Every member measures its freed space (Status reports it as dbSizeInUse).
    for i in 1..=3 {
        let c = client_of(&cluster, i).await;
        wait_until(
            "the space in use to drop below the quota",
            Duration::from_secs(30),
            || {
                let mut c = c.clone();
                async move { (c.status().await.ok()?.raft_used_db_size() < 300_000).then_some(()) }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    }
    // Disarm as etcdctl does (GET, then DEACTIVATE each); writes work again.
    let alarms = client
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .expect("alarms")
        .alarms()
        .to_vec();
    assert!(!alarms.is_empty());
    for alarm in alarms {
        let mut options = AlarmOptions::new();
        options.with_member(alarm.member_id());
        client
            .alarm(AlarmAction::Deactivate, alarm.alarm(), Some(options))
            .await
            .expect("disarm");
    }
    let response = client
        .alarm(AlarmAction::Get, AlarmType::None, None)
        .await
        .expect("alarms");
    assert!(
        response.alarms().is_empty(),
        "{} alarms left",
        response.alarms().len()
    );
    client.put("q/after", "ok", None).await.expect("put after disarm");
    let status = client.status().await.expect("status");
    assert!(status.errors().is_empty(), "{:?}", status.errors());
}
