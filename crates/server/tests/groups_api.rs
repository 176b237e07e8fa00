//! The Groups service as any gRPC client sees it: typed errors for bad input (and nothing
//! in the map changes), a member registered under its lease that reports its partitions
//! ready, routing, the reserved prefix closed to KV writes, and the controller's metrics
//! on the member that runs it.

mod common;

use std::time::Duration;

use common::scrape::scrape_node;
use common::*;
use conclave_proto::partitionpb as pb;
use conclave_proto::partitionpb::groups_client::GroupsClient;
use conclave_testkit::{leader_index, wait_until, wait_until_ok, Cluster};
use tonic::transport::Channel;
use tonic::Code;

async fn groups(url: &str) -> GroupsClient<Channel> {
    GroupsClient::connect(url.to_string()).await.expect("connect")
}

fn refused<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    says: &str,
) -> tonic::Status {
    let status = result.expect_err(says);
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(says),
        "{:?} should say {says:?}",
        status.message()
    );
    status
}

fn settings(partitions: u32, replicas: u32) -> pb::GroupSettings {
    pb::GroupSettings {
        partitions: Some(partitions),
        replicas: Some(replicas),
        rebalance_delay_ms: Some(200),
        ..Default::default()
    }
}

async fn map_of(api: &mut GroupsClient<Channel>, group: &str) -> pb::PartitionMap {
    api.get_map(pb::GetMapRequest {
        group: group.into(),
        serializable: false,
    })
    .await
    .expect("map")
    .into_inner()
    .map
    .expect("map")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_typed_errors_and_changes_nothing() {
    let cluster = start_cluster(3);
    let mut kv = client_of(&cluster, 2).await;
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("a leader");
    let mut api = groups(cluster.node(1).client_url()).await;

    // Settings out of range.
    for (s, says) in [
        (settings(0, 1), "partitions must be between 1 and 4096"),
        (settings(4097, 1), "partitions must be between 1 and 4096"),
        (settings(8, 0), "replicas must be between 1 and 7"),
        (settings(8, 8), "replicas must be between 1 and 7"),
        (
            pb::GroupSettings {
                epsilon: Some(-1.0),
                ..settings(8, 1)
            },
            "epsilon",
        ),
    ] {
        let answer = api
            .create_group(pb::CreateGroupRequest {
                name: "g".into(),
                settings: Some(s),
            })
            .await;
        refused(answer, Code::InvalidArgument, says);
    }
    refused(
        api.create_group(pb::CreateGroupRequest {
            name: "bad/name".into(),
            settings: None,
        })
        .await,
        Code::InvalidArgument,
        "not valid",
    );
    // Unknown group.
    refused(
        api.get_group(pb::GetGroupRequest { name: "nope".into() }).await,
        Code::NotFound,
        "group \"nope\" not found",
    );

    api.create_group(pb::CreateGroupRequest {
        name: "g".into(),
        settings: Some(settings(8, 1)),
    })
    .await
    .expect("create");
    refused(
        api.create_group(pb::CreateGroupRequest {
            name: "g".into(),
            settings: None,
        })
        .await,
        Code::AlreadyExists,
        "already exists",
    );

    // A member under a lease reports its partitions ready (the only member: it leads all).
    let lease = kv.lease_grant(30, None).await.expect("lease").id();
    let join = |member: &str, lease: i64| pb::JoinRequest {
        group: "g".into(),
        member_id: member.into(),
        lease,
        labels: [("zone".to_string(), "z1".to_string())].into(),
        http_endpoint: "http://10.1.1.1:80".into(),
        ..Default::default()
    };
    api.join(join("m1", lease)).await.expect("join");
    let map = wait_until_ok("m1 to lead every partition", Duration::from_secs(30), || {
        let mut api = api.clone();
        async move {
            let map = map_of(&mut api, "g").await;
            for p in &map.partition {
                for r in &p.replicas {
                    if r.member == "m1" && r.state == pb::ReplicaState::Syncing as i32 {
                        let _ = api
                            .report(pb::ReportRequest {
                                group: "g".into(),
                                member_id: "m1".into(),
                                partition: p.id,
                                kind: pb::ReportKind::Ready as i32,
                                epoch: p.epoch,
                            })
                            .await;
                    }
                }
            }
            if map.partition.iter().all(|p| p.leader == "m1") {
                Ok(map)
            } else {
                Err(format!("generation {}", map.generation))
            }
        }
    })
    .await
    .expect("converged");

    // Bad input now: none of it may change the map.
    let other_lease = kv.lease_grant(30, None).await.expect("lease").id();
    refused(
        api.join(join("m1", other_lease)).await,
        Code::AlreadyExists,
        "another live session",
    );
    refused(
        api.join(join("a/b", other_lease)).await,
        Code::InvalidArgument,
        "member id",
    );
    refused(
        api.join(join("m2", 0)).await,
        Code::InvalidArgument,
        "session lease",
    );
    refused(
        api.join(join("m2", 0x7777)).await,
        Code::NotFound,
        "lease 7777 not found",
    );
    refused(
        api.join(pb::JoinRequest {
            group: "nope".into(),
            ..join("m2", other_lease)
        })
        .await,
        Code::NotFound,
        "group \"nope\" not found",
    );
    refused(
        api.update_group(pb::UpdateGroupRequest {
            name: "g".into(),
            settings: Some(pb::GroupSettings {
                replicas: Some(3),
                ..Default::default()
            }),
        })
        .await,
        Code::FailedPrecondition,
        "more than the 1 members",
    );
    refused(
        api.update_group(pb::UpdateGroupRequest {
            name: "g".into(),
            settings: Some(pb::GroupSettings {
                partitions: Some(16),
                ..Default::default()
            }),
        })
        .await,
        Code::FailedPrecondition,
        "for its whole life",
    );
    let p0 = &map.partition[0];
    let stale = refused(
        api.report(pb::ReportRequest {
            group: "g".into(),
            member_id: "m1".into(),
            partition: 0,
            kind: pb::ReportKind::Released as i32,
            epoch: p0.epoch - 1,
        })
        .await,
        Code::FailedPrecondition,
        "stale epoch",
    );
    assert_eq!(
        stale
            .metadata()
            .get("conclave-epoch")
            .and_then(|v| v.to_str().ok()),
        Some(p0.epoch.to_string().as_str()),
        "the current epoch rides in the trailer"
    );
    refused(
        api.report(pb::ReportRequest {
            group: "g".into(),
            member_id: "m1".into(),
            partition: 0,
            kind: pb::ReportKind::Released as i32,
            epoch: p0.epoch,
        })
        .await,
        Code::FailedPrecondition,
        "no releasing replica",
    );
    refused(
        api.report(pb::ReportRequest {
            group: "g".into(),
            member_id: "m1".into(),
            partition: 99,
            kind: pb::ReportKind::Ready as i32,
            epoch: p0.epoch,
        })
        .await,
        Code::InvalidArgument,
        "out of range",
    );
    refused(
        api.report(pb::ReportRequest {
            group: "g".into(),
            member_id: "ghost".into(),
            partition: 0,
            kind: pb::ReportKind::Ready as i32,
            epoch: p0.epoch,
        })
        .await,
        Code::NotFound,
        "not registered",
    );
    let after = map_of(&mut api, "g").await;
    assert_eq!(after.generation, map.generation, "bad input changed the map");
    assert_eq!(after.partition, map.partition);
    assert_eq!(after.members.len(), 1);

    // Routing agrees with the map, from any member.
    let mut other = groups(cluster.node(3).client_url()).await;
    let route = other
        .route(pb::RouteRequest {
            group: "g".into(),
            key: b"user/42".to_vec(),
        })
        .await
        .expect("route")
        .into_inner();
    assert_eq!(
        route.partition,
        13 % 8,
        "the documented hash: user/42 is 13 of 16, {} of 8",
        13 % 8
    );
    assert_eq!(route.leader, "m1");
    assert_eq!(
        route.leader_member.expect("endpoints").http_endpoint,
        "http://10.1.1.1:80"
    );

    // The reserved prefix is closed to KV writes while groups exist.
    let key = "/_conclave/groups/g/leaders/00000";
    assert_eq!(
        grpc_status(&kv.put(key, "me", None).await.expect_err("refused")).map(|(c, _)| c),
        Some(Code::PermissionDenied)
    );
    let wipe = kv
        .delete("", Some(etcd_client::DeleteOptions::new().with_from_key()))
        .await
        .expect_err("refused");
    assert_eq!(grpc_status(&wipe).map(|(c, _)| c), Some(Code::PermissionDenied));
    let read = kv
        .get("/_conclave/", Some(etcd_client::GetOptions::new().with_prefix()))
        .await
        .expect("reads are allowed");
    assert!(read.kvs().iter().any(|kv| kv.key() == key.as_bytes()));

    // The controller's metrics, on the member that runs it.
    let leader = leader_index(&cluster, Duration::from_secs(10))
        .await
        .expect("leader");
    let generation = after.generation as f64;
    let scraped = wait_until_ok("controller metrics", Duration::from_secs(10), || {
        let cluster = &cluster;
        async move {
            let s = scrape_node(cluster, leader).await?;
            let seen = s.sum("conclave_controller_map_generation", &[("group", "g")]);
            (s.get("conclave_controller_active") == 1.0 && seen >= generation)
                .then_some(s)
                .ok_or(format!("generation {seen}"))
        }
    })
    .await
    .expect("scrape");
    assert_eq!(
        scraped.sum(
            "conclave_controller_leaderships",
            &[("group", "g"), ("member", "m1")]
        ),
        8.0
    );
    assert_eq!(
        scraped.sum(
            "conclave_controller_partitions",
            &[("group", "g"), ("member", "m1")]
        ),
        8.0
    );
    let follower = (1..=3).find(|i| *i != leader).expect("a follower");
    let follower_scrape = scrape_node(&cluster, follower).await.expect("scrape");
    assert_eq!(follower_scrape.get("conclave_controller_active"), 0.0);

    // Deleting the group reopens the range.
    let deleted = api
        .delete_group(pb::DeleteGroupRequest { name: "g".into() })
        .await
        .expect("delete");
    assert!(deleted.into_inner().deleted);
    kv.delete("", Some(etcd_client::DeleteOptions::new().with_from_key()))
        .await
        .expect("a wipe without groups works as on etcd");
}

/// A member that has not yet applied an acknowledged `DeleteGroup` must not refuse a wipe
/// for a group that is gone: the refusal rests on state, so it waits for a barrier.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lagging_member_lets_a_wipe_through_once_the_group_is_deleted() {
    let mut options = fast_options(3);
    // Long enough that the lagging member does not campaign while it is cut off.
    options.election_timeout_ms = Some(6000);
    let cluster = Cluster::start(bin(), options).expect("start cluster");
    let leader = leader_index(&cluster, Duration::from_secs(40))
        .await
        .expect("a leader");
    let lagging = if leader == 1 { 2 } else { 1 };
    let mut api = groups(cluster.node(leader).client_url()).await;
    api.create_group(pb::CreateGroupRequest {
        name: "g".into(),
        settings: Some(settings(4, 1)),
    })
    .await
    .expect("create");
    let config = "/_conclave/groups/g/config";
    let mut lagging_kv = client_of(&cluster, lagging).await;
    wait_until("the lagging member to apply the group", REQUEST, || {
        let mut kv = lagging_kv.clone();
        async move { get_local(&mut kv, config).await.ok().flatten() }
    })
    .await
    .expect("applied");

    cluster.block_direction(leader, lagging);
    let deleted = api
        .delete_group(pb::DeleteGroupRequest { name: "g".into() })
        .await
        .expect("delete");
    assert!(deleted.into_inner().deleted);
    assert!(
        get_local(&mut lagging_kv, config)
            .await
            .expect("local read")
            .is_some(),
        "the member cut off from the leader still has the group"
    );
    let mut wipe_kv = lagging_kv.clone();
    let wipe = tokio::spawn(async move {
        wipe_kv
            .delete("", Some(etcd_client::DeleteOptions::new().with_from_key()))
            .await
    });
    // A member judging by its stale store refuses at once; give it the chance to.
    let mut wipe = wipe;
    let early = tokio::time::timeout(Duration::from_millis(500), &mut wipe).await;
    cluster.heal();
    let result = match early {
        Ok(finished) => finished,
        Err(_) => wipe.await,
    }
    .expect("wipe task");
    assert!(result.is_ok(), "{result:?}\n{}", cluster.log_dump());
    assert_eq!(get_value(&mut lagging_kv, config).await.expect("read"), None);
}
