//! A 3-member cluster formed from `--initial-cluster` serves the etcd KV API from every
//! member, with etcd's semantics and errors.

mod common;

use std::time::Duration;

use common::*;
use conclave_testkit::leader_index;
use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_any_member_are_read_back_linearizably_from_every_member() {
    let cluster = start_cluster(3);
    let leader = leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let mut clients = Vec::new();
    for i in 1..=3 {
        clients.push(client_of(&cluster, i).await);
    }

    // Each member takes writes (followers forward to the leader) and each write is
    // immediately visible to a linearizable read on every member.
    let mut revisions = Vec::new();
    for round in 0..10 {
        for (writer, client) in clients.iter_mut().enumerate() {
            let key = format!("k/{round}/{writer}");
            let response = client
                .put(key.as_str(), format!("v{round}-{writer}"), None)
                .await
                .expect("put");
            revisions.push(response.header().expect("header").revision());
        }
        for (writer, _) in clients.clone().iter().enumerate() {
            let key = format!("k/{round}/{writer}");
            for reader in clients.iter_mut() {
                let value = get_value(reader, &key).await.expect("get");
                assert_eq!(value, Some(format!("v{round}-{writer}").into_bytes()), "{key}");
            }
        }
    }
    // Every write got its own revision, strictly increasing, starting after the empty store's 1.
    assert_eq!(revisions.len(), 30);
    assert!(revisions.windows(2).all(|w| w[1] == w[0] + 1), "{revisions:?}");
    assert_eq!(revisions[0], 2);

    // Headers identify the cluster and the answering member; members agree on the cluster.
    let mut cluster_ids = Vec::new();
    let mut member_ids = Vec::new();
    for client in clients.iter_mut() {
        let response = client.get("k/0/0", None).await.expect("get");
        let header = response.header().expect("header");
        assert_eq!(header.revision(), 31);
        assert!(header.raft_term() >= 1);
        cluster_ids.push(header.cluster_id());
        member_ids.push(header.member_id());
    }
    assert!(cluster_ids.iter().all(|id| *id == cluster_ids[0] && *id != 0));
    member_ids.sort_unstable();
    member_ids.dedup();
    assert_eq!(member_ids.len(), 3);

    // Prefix, from-key, limit, historical reads, count.
    let client = &mut clients[leader - 1];
    let prefix = client
        .get("k/1/", Some(GetOptions::new().with_prefix()))
        .await
        .expect("prefix");
    assert_eq!(prefix.count(), 3);
    let keys: Vec<&[u8]> = prefix.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(
        keys,
        vec![b"k/1/0".as_ref(), b"k/1/1".as_ref(), b"k/1/2".as_ref()]
    );
    let limited = client
        .get("k/", Some(GetOptions::new().with_prefix().with_limit(4)))
        .await
        .expect("limit");
    assert_eq!(limited.kvs().len(), 4);
    assert!(limited.more());
    assert_eq!(limited.count(), 30);
    let from_key = client
        .get("k/9/", Some(GetOptions::new().with_from_key()))
        .await
        .expect("from key");
    assert_eq!(from_key.kvs().len(), 3);

    let overwrite = client
        .put("k/0/0", "changed", Some(PutOptions::new().with_prev_key()))
        .await
        .expect("put");
    assert_eq!(overwrite.prev_key().map(|kv| kv.value()), Some(b"v0-0".as_ref()));
    let old = client
        .get("k/0/0", Some(GetOptions::new().with_revision(2)))
        .await
        .expect("historical");
    assert_eq!(old.kvs()[0].value(), b"v0-0");
    let now = client.get("k/0/0", None).await.expect("get");
    assert_eq!(now.kvs()[0].value(), b"changed");
    assert_eq!(now.kvs()[0].version(), 2);
    assert_eq!(now.kvs()[0].create_revision(), 2);

    // Txn: compare-and-swap on mod revision, both branches.
    let mod_rev = now.kvs()[0].mod_revision();
    let txn = Txn::new()
        .when([Compare::mod_revision("k/0/0", CompareOp::Equal, mod_rev)])
        .and_then([
            TxnOp::put("k/0/0", "swapped", None),
            TxnOp::put("k/txn", "yes", None),
        ])
        .or_else([TxnOp::get("k/0/0", None)]);
    let response = client.txn(txn.clone()).await.expect("txn");
    assert!(response.succeeded());
    let again = client.txn(txn).await.expect("txn");
    assert!(!again.succeeded(), "a stale compare must take the failure branch");
    assert_eq!(
        get_value(client, "k/txn").await.expect("get"),
        Some(b"yes".to_vec())
    );

    // Delete with prev_kv, then the key is gone on every member.
    let deleted = client
        .delete(
            "k/1/",
            Some(etcd_client::DeleteOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .expect("delete");
    assert_eq!(deleted.deleted(), 3);
    assert_eq!(deleted.prev_kvs().len(), 3);
    for reader in clients.iter_mut() {
        assert_eq!(get_value(reader, "k/1/0").await.expect("get"), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_or_oversized_requests_get_etcds_errors_and_the_member_keeps_serving() {
    let cluster = start_cluster(3);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    // Talk to a follower-or-leader alike: member 2.
    let mut client = client_of(&cluster, 2).await;
    client.put("alive", "1", None).await.expect("put");

    // Over --max-request-bytes (1.5 MiB) but under the transport limit.
    let big = vec![b'x'; 1_600_000];
    assert_grpc_error(
        client.put("big", big, None).await,
        tonic::Code::InvalidArgument,
        "etcdserver: request is too large",
    );
    // Far over: refused by the transport, still an error and not a crash.
    let huge = vec![b'x'; 3 * 1024 * 1024];
    assert!(client.put("huge", huge, None).await.is_err());

    // Empty key.
    assert_grpc_error(
        client.put("", "v", None).await,
        tonic::Code::InvalidArgument,
        "etcdserver: key is not provided",
    );

    // Txn with 129 operations.
    let ops: Vec<TxnOp> = (0..129).map(|i| TxnOp::put(format!("t{i}"), "v", None)).collect();
    assert_grpc_error(
        client.txn(Txn::new().and_then(ops)).await,
        tonic::Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    );
    // Duplicate key in one branch.
    assert_grpc_error(
        client
            .txn(Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]))
            .await,
        tonic::Code::InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    );

    // A range_end before the key selects nothing (etcd answers an empty range, no error).
    let response = client
        .get("z", Some(GetOptions::new().with_range("a")))
        .await
        .expect("inverted range");
    assert_eq!(response.count(), 0);

    // Future and compacted revisions.
    let current = client
        .get("alive", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision();
    assert_grpc_error(
        client
            .get("alive", Some(GetOptions::new().with_revision(current + 100)))
            .await,
        tonic::Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );
    client.put("alive", "2", None).await.expect("put");
    client.put("alive", "3", None).await.expect("put");
    let latest = client
        .get("alive", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision();
    client.compact(latest - 1, None).await.expect("compact");
    assert_grpc_error(
        client
            .get("alive", Some(GetOptions::new().with_revision(latest - 2)))
            .await,
        tonic::Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    let err = client.compact(latest - 1, None).await.expect_err("compact again");
    assert_eq!(grpc_status(&err).map(|s| s.0), Some(tonic::Code::OutOfRange));
    // The compacted revision itself is still readable.
    let at = client
        .get("alive", Some(GetOptions::new().with_revision(latest - 1)))
        .await
        .expect("at compact rev");
    assert_eq!(at.kvs()[0].value(), b"2");

    // Unknown lease.
    assert_grpc_error(
        client
            .put("leased", "v", Some(PutOptions::new().with_lease(12345)))
            .await,
        tonic::Code::NotFound,
        "etcdserver: requested lease not found",
    );

    // After all of that, every member still serves.
    for i in 1..=3 {
        let mut c = client_of(&cluster, i).await;
        assert_eq!(
            get_value(&mut c, "alive").await.expect("get"),
            Some(b"3".to_vec())
        );
        assert!(cluster.node(i).is_running(), "{}", cluster.log_dump());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_through_a_follower_is_visible_to_a_serializable_read_there_at_once() {
    let cluster = start_cluster(3);
    let lead = leader_index(&cluster, Duration::from_secs(10))
        .await
        .expect("leader");
    let follower = (1..=3).find(|&i| i != lead).expect("a follower");
    let mut client = client_of(&cluster, follower).await;
    // etcd answers a write only after the receiving member applied it; so does a
    // follower that forwarded it to the leader (read-your-writes on that member).
    for i in 0..50 {
        let value = format!("v{i}");
        client.put("/ryw", value.clone(), None).await.expect("put");
        assert_eq!(
            get_local(&mut client, "/ryw").await.expect("serializable get"),
            Some(value.into_bytes()),
            "write {i} not yet applied on the member that acknowledged it"
        );
    }
}
