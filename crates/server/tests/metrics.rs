//! Every member serves Prometheus metrics at `GET /metrics` over plain HTTP/1.1 on its
//! client port (and on `--listen-metrics-urls`), with etcd's names and values that follow
//! leadership, commits and the disk.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::scrape::*;
use common::*;
use conclave_testkit::{leader_index, unique_port, wait_until, wait_until_ok, Cluster};

/// How long a condition of a healthy cluster may take to hold.
const SETTLE: Duration = Duration::from_secs(20);

async fn put_many(cluster: &Cluster, via: usize, prefix: &str, count: usize) {
    let mut client = client_of(cluster, via).await;
    for n in 0..count {
        tokio::time::timeout(REQUEST, client.put(format!("{prefix}/{n}"), "value", None))
            .await
            .expect("put timed out")
            .expect("put");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_follow_leadership_commits_and_disk_on_every_member() {
    let cluster = start_cluster(3);
    let leader = leader_index(&cluster, SETTLE).await.expect("leader");
    put_many(&cluster, leader, "first", 10).await;

    // Every member knows the leader; exactly one says it is the leader.
    let scrapes = wait_until_ok(
        "every member to report one and the same leader",
        SETTLE,
        || async {
            let mut scrapes = Vec::new();
            for i in 1..=3 {
                scrapes.push(scrape_node(&cluster, i).await?);
            }
            let with_leader = scrapes
                .iter()
                .filter(|s| s.value("etcd_server_has_leader") == Some(1.0))
                .count();
            let leaders: Vec<usize> = (1..=3)
                .filter(|i| scrapes[i - 1].value("etcd_server_is_leader") == Some(1.0))
                .collect();
            if with_leader == 3 && leaders.len() == 1 {
                Ok((leaders[0], scrapes))
            } else {
                Err(format!(
                    "{with_leader} members know a leader, members {leaders:?} say they lead"
                ))
            }
        },
    )
    .await
    .expect("leadership metrics");
    let (leader, scrapes) = scrapes;

    for (i, s) in scrapes.iter().enumerate() {
        assert!(
            s.get("etcd_mvcc_db_total_size_in_bytes") > 0.0,
            "member {}",
            i + 1
        );
        assert!(
            s.get("etcd_mvcc_db_total_size_in_use_in_bytes") > 0.0,
            "member {}",
            i + 1
        );
        assert!(
            s.get("etcd_server_leader_changes_seen_total") >= 1.0,
            "member {}",
            i + 1
        );
        assert!(s.get("conclave_raft_term") >= 1.0, "member {}", i + 1);
        assert_eq!(s.sum("etcd_server_id", &[]), 1.0, "member {}", i + 1);
        assert_eq!(
            s.get("etcd_server_proposals_failed_total"),
            0.0,
            "member {}",
            i + 1
        );
    }
    let on_leader = &scrapes[leader - 1];
    assert!(
        on_leader.get("etcd_disk_wal_fsync_duration_seconds_count") > 0.0,
        "the leader has fsynced its log"
    );
    assert!(on_leader.get("etcd_disk_backend_commit_duration_seconds_count") > 0.0);
    assert!(on_leader.get("etcd_debugging_mvcc_current_revision") >= 11.0);
    assert!(
        on_leader.sum("etcd_disk_wal_fsync_duration_seconds_bucket", &[("le", "+Inf")])
            == on_leader.get("etcd_disk_wal_fsync_duration_seconds_count")
    );

    // More writes move the commit index forward on every member (followers learn it
    // with the next heartbeat, so wait for it).
    let before: Vec<f64> = scrapes
        .iter()
        .map(|s| s.get("etcd_server_proposals_committed_total"))
        .collect();
    put_many(&cluster, leader, "second", 10).await;
    wait_until_ok("every member's committed proposals to grow", SETTLE, || async {
        for i in 1..=3 {
            let now = scrape_node(&cluster, i).await?;
            let committed = now.get("etcd_server_proposals_committed_total");
            if committed < before[i - 1] + 10.0 {
                return Err(format!("member {i}: {committed}, was {}", before[i - 1]));
            }
            if now.get("etcd_server_proposals_applied_total") > committed {
                return Err(format!("member {i} applied more than it committed"));
            }
        }
        Ok(())
    })
    .await
    .expect("commits counted");

    // The gRPC calls were counted, by method and code.
    let on_leader = scrape_node(&cluster, leader).await.expect("scrape");
    let put_labels = [
        ("grpc_service", "etcdserverpb.KV"),
        ("grpc_method", "Put"),
        ("grpc_type", "unary"),
    ];
    assert!(on_leader.sum("grpc_server_started_total", &put_labels) >= 20.0);
    let mut handled_ok = put_labels.to_vec();
    handled_ok.push(("grpc_code", "OK"));
    assert!(on_leader.sum("grpc_server_handled_total", &handled_ok) >= 20.0);
    assert!(on_leader.get("etcd_network_client_grpc_received_bytes_total") > 0.0);
    assert!(on_leader.get("etcd_network_client_grpc_sent_bytes_total") > 0.0);
    assert!(on_leader.get("process_resident_memory_bytes") > 0.0);

    // Kill the leader: a survivor sees a new one.
    let survivors: Vec<usize> = (1..=3).filter(|i| *i != leader).collect();
    let mut changes_before = BTreeMap::new();
    for i in &survivors {
        let s = scrape_node(&cluster, *i).await.expect("scrape");
        changes_before.insert(*i, s.get("etcd_server_leader_changes_seen_total"));
    }
    cluster.kill(leader).expect("kill leader");
    wait_until("a survivor to count a new leader", SETTLE, || async {
        for i in &survivors {
            let Ok(now) = scrape_node(&cluster, *i).await else {
                continue;
            };
            if now.value("etcd_server_leader_changes_seen_total") > changes_before.get(i).copied()
                && now.value("etcd_server_has_leader") == Some(1.0)
            {
                return Some(());
            }
        }
        None
    })
    .await
    .expect("leader change counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_are_served_on_listen_metrics_urls_and_count_watchers() {
    let metrics_port = unique_port(IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("free port");
    let metrics_url = format!("http://127.0.0.1:{metrics_port}");
    let mut options = fast_options(1);
    options
        .extra_args
        .extend(["--listen-metrics-urls".to_string(), metrics_url.clone()]);
    let cluster = Cluster::start(bin(), options).expect("start cluster");
    leader_index(&cluster, SETTLE).await.expect("leader");

    // The extra listener serves the same metrics, and nothing else.
    let on_metrics_port = wait_until_ok("the metrics listener to report a leader", SETTLE, || async {
        let s = scrape(&metrics_url).await?;
        match s.value("etcd_server_is_leader") {
            Some(1.0) => Ok(s),
            other => Err(format!("etcd_server_is_leader is {other:?}")),
        }
    })
    .await
    .expect("metrics listener");
    assert_eq!(on_metrics_port.get("etcd_server_has_leader"), 1.0);
    let (status, _) = http_get(host_port(&metrics_url), "/v3/kv/range")
        .await
        .expect("GET");
    assert_eq!(status, 404);

    // Watch streams and watchers are counted while open, on the member serving them.
    let mut client = client_of(&cluster, 1).await;
    let mut stream = client.watch("w", None).await.expect("watch");
    stream.watch("x", None).await.expect("second watcher");
    let mut ids = Vec::new();
    while ids.len() < 2 {
        let response = tokio::time::timeout(REQUEST, stream.message())
            .await
            .expect("watch response timed out")
            .expect("watch response")
            .expect("stream open");
        assert!(response.created(), "{response:?}");
        ids.push(response.watch_id());
    }
    let client_url = cluster.node(1).client_url().to_string();
    let watch_gauges = |streams: f64, watchers: f64| {
        let url = client_url.clone();
        async move {
            let s = scrape(&url).await?;
            let seen = (
                s.get("etcd_debugging_mvcc_watch_stream_total"),
                s.get("etcd_debugging_mvcc_watcher_total"),
            );
            if seen == (streams, watchers) {
                Ok(())
            } else {
                Err(format!(
                    "(streams, watchers) = {seen:?}, want ({streams}, {watchers})"
                ))
            }
        }
    };
    wait_until_ok("one stream with two watchers", SETTLE, || watch_gauges(1.0, 2.0))
        .await
        .expect("watch gauges");
    stream.cancel(ids[0]).await.expect("cancel");
    wait_until_ok("the canceled watcher to be uncounted", SETTLE, || {
        watch_gauges(1.0, 1.0)
    })
    .await
    .expect("watch gauges after cancel");
    drop(stream);
    wait_until_ok("the closed stream to be uncounted", SETTLE, || {
        watch_gauges(0.0, 0.0)
    })
    .await
    .expect("watch gauges after close");
}
