//! The SDK's KV and txn calls against a real 3-member cluster, and its failover rule:
//! reads move to another member, a write that may have applied is reported as
//! "outcome unknown" instead of being sent twice.

mod common;

use std::time::{Duration, Instant};

use common::{client_of, client_of_all, leader, median, start_cluster};
use conclave_client::kv::{Delete, Get, Put};
use conclave_client::{Compare, Error, Op, OpResponse, SortOrder, SortTarget};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kv_builders_and_txn_branches_work_end_to_end() {
    let cluster = start_cluster(3);
    leader(&cluster).await;
    let client = client_of_all(&cluster).await;

    let first = client.put("/app/a", "1").await.expect("put");
    client.put("/app/b", "2").await.expect("put");
    client.put("/app/c", "3").await.expect("put");
    client.put("/other", "x").await.expect("put");

    let a = client.get("/app/a").await.expect("get").expect("present");
    assert_eq!(a.value_str(), Some("1"));
    assert_eq!(a.mod_revision, first.revision);
    assert_eq!(client.get("/missing").await.expect("get"), None);

    let page = client
        .range(
            Get::prefix("/app/")
                .limit(2)
                .sort(SortTarget::Key, SortOrder::Descend),
        )
        .await
        .expect("range");
    assert_eq!(page.count, 3);
    assert!(page.more);
    let keys: Vec<_> = page
        .kvs
        .iter()
        .map(|kv| kv.key_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(keys, ["/app/c", "/app/b"]);

    let old = client
        .range(Get::key("/app/a").revision(first.revision).serializable())
        .await
        .expect("old revision");
    assert_eq!(old.kvs.len(), 1);

    let replaced = client
        .put_with(Put::new("/app/a", "1b").prev_kv())
        .await
        .expect("put prev");
    assert_eq!(replaced.prev_kv.map(|kv| kv.value), Some(b"1".to_vec()));

    // Compare-and-swap: the first succeeds, the second (stale revision) takes the else branch.
    let current = client.get("/app/a").await.expect("get").expect("present");
    let swap = client
        .txn()
        .when([Compare::mod_revision("/app/a").eq(current.mod_revision)])
        .then([Op::put("/app/a", "swapped")])
        .otherwise([Op::get("/app/a")])
        .await
        .expect("txn");
    assert!(swap.succeeded);
    let stale = client
        .txn()
        .when([Compare::mod_revision("/app/a").eq(current.mod_revision)])
        .then([Op::put("/app/a", "lost")])
        .otherwise([Op::get("/app/a")])
        .await
        .expect("txn");
    assert!(!stale.succeeded);
    match stale.responses.as_slice() {
        [OpResponse::Get(r)] => assert_eq!(r.kvs[0].value, b"swapped".to_vec()),
        other => panic!("unexpected responses {other:?}"),
    }

    let deleted = client
        .delete_with(Delete::prefix("/app/").prev_kv())
        .await
        .expect("delete");
    assert_eq!(deleted.deleted, 3);
    assert_eq!(deleted.prev_kvs.len(), 3);

    // Bad input comes back typed, with etcd's message.
    match client.put("", "v").await {
        Err(Error::InvalidArgument(message)) => assert!(message.contains("key is not provided"), "{message}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    match client.range(Get::key("/other").revision(1_000_000)).await {
        Err(Error::FutureRevision) => {}
        other => panic!("expected FutureRevision, got {other:?}"),
    }
    let now = client.put("/other", "y").await.expect("put").revision;
    client.compact(now, true).await.expect("compact");
    match client.range(Get::key("/other").revision(first.revision)).await {
        Err(Error::Compacted { .. }) => {}
        other => panic!("expected Compacted, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_fail_over_and_a_write_that_may_have_applied_is_not_resent() {
    let cluster = start_cluster(3);
    leader(&cluster).await;
    // The client prefers n1, which is then paused: it accepts connections but never answers.
    let client = client_of(&cluster, &[1, 2, 3]).await;
    client.put("/k", "before").await.expect("put");
    cluster.pause(1).expect("pause n1");

    // A read is retried on n2 after n1's timeout.
    let read = client.get("/k").await.expect("read fails over");
    assert_eq!(read.map(|kv| kv.value), Some(b"before".to_vec()));

    // Point a write-only client at the paused member: the request is sent and never
    // answered, so the SDK must not re-send it elsewhere.
    let stuck = client_of(&cluster, &[1, 2]).await;
    match stuck.put("/k", "maybe").await {
        Err(Error::OutcomeUnknown { .. }) => {}
        other => panic!("expected OutcomeUnknown, got {other:?}"),
    }
    cluster.resume(1).expect("resume n1");

    // A member that is down (connection refused) is skipped for writes too: the write
    // certainly never left the client.
    cluster.kill(1).expect("kill n1");
    let refused = client_of(&cluster, &[1, 2, 3]).await;
    refused
        .put("/k", "after")
        .await
        .expect("write skips the dead member");
    assert_eq!(
        refused.get("/k").await.expect("get").map(|kv| kv.value),
        Some(b"after".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_resume_quickly_after_the_leader_node_is_killed() {
    let cluster = start_cluster(3);
    let client = client_of_all(&cluster).await;
    let mut gaps = Vec::new();
    for round in 0..3 {
        let old = leader(&cluster).await;
        client
            .put(format!("/round/{round}/before"), "x")
            .await
            .expect("put");
        let killed_at = Instant::now();
        cluster.kill(old).expect("kill leader");
        // The first write acknowledged after the kill: retry "outcome unknown" ones under
        // fresh keys, as an application would after reading.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match client.put(format!("/round/{round}/after/{attempt}"), "x").await {
                Ok(_) => break,
                Err(Error::OutcomeUnknown { .. }) | Err(Error::Unavailable { .. }) => continue,
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
        gaps.push(killed_at.elapsed());
        cluster.restart(old).expect("restart");
        conclave_testkit::wait_until("the restarted member to serve", Duration::from_secs(20), || {
            let c = client.clone();
            let url = cluster.node(old).client_url().to_string();
            async move { c.endpoint_health(&url).await.healthy.then_some(()) }
        })
        .await
        .expect("restarted member healthy");
    }
    eprintln!(
        "failover after leader kill (kill -> next acknowledged SDK write): median {:?}, all {:?}",
        median(gaps.clone()),
        gaps
    );
    for round in 0..3 {
        assert!(client
            .get(format!("/round/{round}/before"))
            .await
            .expect("get")
            .is_some());
    }
}

/// The number of Range calls a node has handled, from its Prometheus `/metrics`.
async fn ranges_served(url: &str) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host_port = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host_port).await.expect("connect");
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .expect("scrape in time")
        .expect("read");
    String::from_utf8_lossy(&raw)
        .lines()
        .filter(|l| l.starts_with("grpc_server_handled_total{") && l.contains("grpc_method=\"Range\""))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.trim().parse::<f64>().ok()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_are_spread_over_every_endpoint() {
    let cluster = start_cluster(3);
    leader(&cluster).await;
    let client = client_of_all(&cluster).await;
    client.put("/spread", "x").await.expect("put");
    let mut before = Vec::new();
    for i in 1..=3 {
        before.push(ranges_served(cluster.node(i).client_url()).await);
    }
    for _ in 0..30 {
        client.get("/spread").await.expect("get");
    }
    for i in 1..=3 {
        let served = ranges_served(cluster.node(i).client_url()).await - before[i - 1];
        assert!(served >= 5.0, "n{i} served {served} of 30 reads: not balanced");
    }
}
