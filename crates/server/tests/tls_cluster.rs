//! Three members with peer TLS (--peer-cert-file/--peer-key-file/--peer-trusted-ca-file
//! and --peer-client-cert-auth) and mutual TLS on the client port, against Debian's
//! `etcdctl` 3.4 (put, get, watch, endpoint health and status, member list); members
//! whose peer certificate comes from another CA take no part and cannot join; a rotated
//! peer certificate is presented without a restart.

mod common;

use std::time::Duration;

use common::bin;
use common::etcdctl::Running;
use common::tls::{etcdctl, etcdctl_tls, presented_common_name, Run};
use conclave_testkit::{wait_until, wait_until_ok, TlsCluster, TlsClusterOptions};

const HEALTHY: Duration = Duration::from_secs(30);

fn run(cluster: &TlsCluster, endpoints: &[String], args: &[&str]) -> Run {
    let tls = etcdctl_tls(cluster.ca().ca_file(), Some(cluster.client_identity()));
    etcdctl(endpoints, &tls, args)
}

async fn healthy(cluster: &TlsCluster, members: &[usize]) {
    for &i in members {
        cluster
            .wait_healthy(i, HEALTHY)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    }
}

/// Waits until some member's log shows a refused TLS handshake.
async fn refusal_logged(cluster: &TlsCluster, members: &[usize]) {
    let logs = || {
        members
            .iter()
            .map(|&i| cluster.member(i).expect("member").process.log_tail(400))
            .collect::<Vec<_>>()
    };
    wait_until(
        "a refused peer handshake in the logs",
        Duration::from_secs(20),
        || {
            let logs = logs();
            async move {
                logs.iter()
                    .any(|l| l.contains("rejected TLS connection"))
                    .then_some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcdctl_uses_a_three_member_cluster_with_peer_tls_and_client_certificates() {
    let cluster = TlsCluster::start(bin(), TlsClusterOptions::default()).expect("start");
    healthy(&cluster, &[1, 2, 3]).await;
    let urls = cluster.client_urls();

    let tls = etcdctl_tls(cluster.ca().ca_file(), Some(cluster.client_identity()));
    let watch = Running::start(&urls[1..2], &tls, &["watch", "/peer-tls", "--rev=1"]);
    let health = run(&cluster, &urls, &["endpoint", "health"]);
    assert!(health.success, "{health:?}");
    assert_eq!(
        health.stderr.matches("is healthy").count() + health.stdout.matches("is healthy").count(),
        3,
        "{health:?}"
    );
    let put = run(&cluster, &urls[..1], &["put", "/peer-tls", "replicated"]);
    assert!(put.success, "{put:?}");
    // The watch on n2 (from revision 1, so it cannot miss the put) sees it.
    assert_eq!(
        watch.lines(3, HEALTHY),
        ["PUT", "/peer-tls", "replicated"],
        "{}",
        cluster.log_dump()
    );
    // A linearizable read on another member needs a read index over the peer transport.
    let get = run(&cluster, &urls[2..], &["get", "/peer-tls", "--print-value-only"]);
    assert_eq!(get.stdout, "replicated\n", "{get:?}\n{}", cluster.log_dump());
    let members = run(&cluster, &urls, &["member", "list"]);
    assert!(members.success, "{members:?}");
    for member in cluster.members() {
        assert!(
            members.stdout.contains(&member.peer_url),
            "{}: {members:?}",
            member.peer_url
        );
    }
    assert_eq!(members.stdout.matches("https://").count(), 6, "{members:?}");
    let status = run(&cluster, &urls, &["endpoint", "status", "-w", "table"]);
    assert!(
        status.success && status.stdout.matches("true").count() >= 1,
        "{status:?}"
    );

    // Rotating n2's peer certificate on disk: new peer handshakes present it, with no
    // restart, and the cluster keeps replicating.
    let n2 = cluster.member(2).expect("n2");
    let pid = n2.process.pid();
    let (ca, me) = (cluster.ca().ca_file(), cluster.client_identity());
    cluster
        .ca()
        .reissue(&n2.peer_files, "n2-peer-rotated")
        .expect("rotate");
    wait_until_ok("n2's rotated peer certificate", Duration::from_secs(10), || {
        let url = n2.peer_url.clone();
        async move {
            match presented_common_name(&url, ca, me).await? {
                cn if cn == "n2-peer-rotated" => Ok(()),
                cn => Err(format!("still presents {cn}")),
            }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    assert_eq!(n2.process.pid(), pid);
    let put = run(&cluster, &urls[1..2], &["put", "/after-peer-rotation", "ok"]);
    assert!(put.success, "{put:?}\n{}", cluster.log_dump());
    let get = run(
        &cluster,
        &urls[..1],
        &["get", "/after-peer-rotation", "--print-value-only"],
    );
    assert_eq!(get.stdout, "ok\n", "{get:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_with_a_peer_certificate_from_another_ca_takes_no_part() {
    let options = TlsClusterOptions {
        foreign_peer_members: vec![3],
        ..TlsClusterOptions::default()
    };
    let cluster = TlsCluster::start(bin(), options).expect("start");
    healthy(&cluster, &[1, 2]).await;
    let urls = cluster.client_urls();
    let put = run(&cluster, &urls[..1], &["put", "/quorum", "of-two"]);
    assert!(put.success, "{put:?}");
    refusal_logged(&cluster, &[1, 2, 3]).await;

    // n3 serves clients (its client port uses the main CA) but got nothing over Raft.
    let local = run(&cluster, &urls[2..], &["get", "/quorum", "--consistency=s"]);
    assert!(local.success, "{local:?}\n{}", cluster.log_dump());
    assert_eq!(local.stdout, "", "n3 received data: {local:?}");
    assert!(
        cluster.wait_healthy(3, Duration::from_secs(3)).await.is_err(),
        "n3 has a leader despite its foreign peer certificate\n{}",
        cluster.log_dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_with_a_peer_certificate_from_another_ca_cannot_join() {
    let cluster = TlsCluster::start(bin(), TlsClusterOptions::default()).expect("start");
    healthy(&cluster, &[1, 2, 3]).await;
    let urls = cluster.client_urls();

    let intruder = cluster.add_member_joining(true).expect("start n4");
    refusal_logged(&cluster, &[1, 2, 3, intruder]).await;
    let members = run(&cluster, &urls, &["member", "list"]);
    assert!(members.success, "{members:?}");
    assert_eq!(members.stdout.lines().count(), 3, "n4 was added: {members:?}");

    // The same join with a certificate from the cluster's CA succeeds, over TLS too.
    let newcomer = cluster.add_member_joining(false).expect("start n5");
    cluster
        .wait_healthy(newcomer, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    let members = run(&cluster, &urls, &["member", "list"]);
    assert_eq!(members.stdout.lines().count(), 4, "{members:?}");
    assert!(members.stdout.contains("n5"), "{members:?}");
    assert!(!members.stdout.contains("n4"), "{members:?}");
}
