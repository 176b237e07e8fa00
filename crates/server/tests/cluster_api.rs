//! etcd's Cluster API: member list, add (then start the member with
//! `--initial-cluster-state existing`), promote, update, remove, and their errors.

mod common;

use std::time::Duration;

use common::*;
use conclave_testkit::{leader_index, unique_port, wait_until, wait_until_ok, Node, NodeSpec};
use etcd_client::MemberAddOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn member_add_start_promote_update_and_remove_work_as_in_etcd() {
    let cluster = start_cluster(3);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let mut client = client_of(&cluster, 2).await;

    // Every member publishes its name and client URL.
    let listed = wait_until(
        "members to publish their names and client URLs",
        Duration::from_secs(20),
        || {
            let mut c = client.clone();
            async move {
                let members = c.member_list().await.ok()?.members().to_vec();
                members
                    .iter()
                    .all(|m| !m.name().is_empty() && !m.client_urls().is_empty())
                    .then_some(members)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    let mut names: Vec<&str> = listed.iter().map(|m| m.name()).collect();
    names.sort_unstable();
    assert_eq!(names, vec!["n1", "n2", "n3"]);
    assert!(listed.iter().all(|m| !m.is_learner()));
    let n1 = listed.iter().find(|m| m.name() == "n1").expect("n1");
    assert_eq!(n1.client_urls(), &[cluster.node(1).client_url().to_string()]);

    // Errors.
    assert_grpc_error(
        client.member_remove(0x4242).await,
        tonic::Code::NotFound,
        "etcdserver: member not found",
    );
    assert_grpc_error(
        client.member_add([n1.peer_urls()[0].clone()], None).await,
        tonic::Code::FailedPrecondition,
        "etcdserver: Peer URLs already exists",
    );
    assert_grpc_error(
        client.member_promote(n1.id()).await,
        tonic::Code::FailedPrecondition,
        "etcdserver: can only promote a learner member",
    );
    assert_grpc_error(
        client.member_add(["http://:1"], None).await,
        tonic::Code::InvalidArgument,
        "etcdserver: given member URLs are invalid",
    );

    // Add a learner, then start it as an existing member.
    let ip = "127.0.0.1".parse().expect("ip");
    let (client_port, peer_port) = (unique_port(ip).expect("port"), unique_port(ip).expect("port"));
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let added = client
        .member_add(
            [peer_url.clone()],
            Some(MemberAddOptions::new().with_is_learner()),
        )
        .await
        .expect("add");
    let new_id = added.member().expect("member").id();
    assert!(added.member().expect("member").is_learner());
    assert_eq!(added.member_list().len(), 4);
    let unstarted = client.member_list().await.expect("list");
    assert!(
        unstarted
            .members()
            .iter()
            .any(|m| m.id() == new_id && m.name().is_empty()),
        "unstarted member has no name yet"
    );

    let mut initial_cluster: Vec<String> = listed
        .iter()
        .map(|m| format!("{}={}", m.name(), m.peer_urls()[0]))
        .collect();
    initial_cluster.push(format!("n4={peer_url}"));
    let dir = cluster.dir().to_path_buf();
    let spec = NodeSpec {
        name: "n4".into(),
        client_url: format!("http://127.0.0.1:{client_port}"),
        peer_listen_addr: format!("127.0.0.1:{peer_port}").parse().expect("addr"),
        advertise_peer_url: peer_url.clone(),
        data_dir: dir.join("n4-existing"),
        log_path: dir.join("n4-existing.log"),
        extra_args: vec![
            "--initial-cluster".into(),
            initial_cluster.join(","),
            "--initial-cluster-state".into(),
            "existing".into(),
            "--initial-cluster-token".into(),
            cluster.token().to_string(),
            "--heartbeat-interval".into(),
            "50".into(),
            "--election-timeout".into(),
            "400".into(),
        ],
    };
    let n4 = Node::new(bin(), spec);
    n4.start().expect("start n4");

    // It identifies itself, publishes its name, catches up, and can be promoted.
    wait_until("n4 to publish its name", Duration::from_secs(30), || {
        let mut c = client.clone();
        async move {
            let list = c.member_list().await.ok()?;
            list.members()
                .iter()
                .any(|m| m.id() == new_id && m.name() == "n4")
                .then_some(())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", cluster.log_dump(), n4.log_tail(40)));
    wait_until_ok("n4 to be promoted", Duration::from_secs(30), || {
        let mut c = client.clone();
        async move { c.member_promote(new_id).await.map_err(|e| e.to_string()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", n4.log_tail(40)));
    let list = client.member_list().await.expect("list");
    assert!(list.members().iter().any(|m| m.id() == new_id && !m.is_learner()));
    let mut n4_client = conclave_testkit::client(n4.client_url())
        .await
        .expect("connect n4");
    client.put("via-cluster", "1", None).await.expect("put");
    assert_eq!(
        get_value(&mut n4_client, "via-cluster").await.expect("get on n4"),
        Some(b"1".to_vec())
    );

    // Update its peer URLs (same address, other spelling), then remove it.
    let localhost = format!("http://localhost:{peer_port}");
    client
        .member_update(new_id, vec![localhost.clone()])
        .await
        .expect("update");
    let list = client.member_list().await.expect("list");
    let member = list.members().iter().find(|m| m.id() == new_id).expect("n4");
    assert_eq!(member.peer_urls(), &[localhost]);
    let removed = client.member_remove(new_id).await.expect("remove");
    assert_eq!(removed.members().len(), 3);
    n4.kill().expect("kill n4");
    client
        .put("after-remove", "1", None)
        .await
        .expect("put after remove");

    // With a member down, adding a voter would leave no reachable quorum: refused, as etcd.
    let down = (1..=3).find(|i| *i != 2).expect("another member");
    cluster.kill(down).expect("kill");
    wait_until(
        "the leader to notice the member is down",
        Duration::from_secs(20),
        || {
            let mut c = client.clone();
            async move {
                match c.member_add(["http://127.0.0.1:7"], None).await {
                    Err(e)
                        if e.to_string()
                            .contains("re-configuration failed due to not enough started members") =>
                    {
                        Some(())
                    }
                    Ok(added) => panic!(
                        "a voter was added with a member down: {:?}",
                        added.member().map(|m| m.id())
                    ),
                    Err(_) => None,
                }
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    client
        .put("still-writable", "1", None)
        .await
        .expect("the cluster still takes writes");
}
