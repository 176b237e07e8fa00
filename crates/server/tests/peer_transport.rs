//! The Raft transport accepts only its own cluster's members: no Raft traffic on the
//! client port, and messages stamped with another cluster id are refused.

mod common;

use std::time::Duration;

use common::*;
use conclave_proto::raftpb::raft_service_client::RaftServiceClient;
use conclave_proto::raftpb::RaftRequest;
use conclave_testkit::leader_index;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raft_messages_are_refused_on_the_client_port_and_from_another_cluster() {
    let cluster = start_cluster(3);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let forged = || RaftRequest {
        group_id: 1,
        payload: vec![1, 2, 3],
        cluster_id: 0,
    };

    let mut via_client_port = RaftServiceClient::connect(cluster.node(1).client_url().to_string())
        .await
        .expect("connect client port");
    let status = via_client_port
        .append_entries(forged())
        .await
        .expect_err("raft on the client port");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    let status = via_client_port
        .vote(forged())
        .await
        .expect_err("vote on the client port");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    let peer_url = cluster.node(1).spec().advertise_peer_url.clone();
    let mut via_peer_port = RaftServiceClient::connect(peer_url)
        .await
        .expect("connect peer port");
    let status = via_peer_port
        .append_entries(forged())
        .await
        .expect_err("another cluster's message");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("cluster ID mismatch"), "{status:?}");

    // The cluster is unaffected.
    let mut client = client_of(&cluster, 1).await;
    client.put("still", "fine", None).await.expect("put");
    assert_eq!(
        get_value(&mut client, "still").await.expect("get"),
        Some(b"fine".to_vec())
    );
}
