//! Debian's `etcdctl` (3.4, package `etcd-client`) against a 3-member Conclave cluster.
//! `make test` and `.ci/run` install it; this test fails (never skips) without it.

mod common;

use std::time::Duration;

use common::etcdctl::{etcdctl, ok};
use common::*;
use conclave_testkit::leader_index;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcdctl_put_get_del_txn_and_compaction_work_against_a_three_member_cluster() {
    let cluster = start_cluster(3);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");

    assert_eq!(ok(&cluster, &["put", "/app/a", "1"]), "OK\n");
    assert_eq!(ok(&cluster, &["put", "/app/b", "2"]), "OK\n");
    assert_eq!(ok(&cluster, &["put", "/other", "3"]), "OK\n");
    assert_eq!(ok(&cluster, &["get", "/app/a"]), "/app/a\n1\n");
    assert_eq!(
        ok(&cluster, &["get", "/app/", "--prefix"]),
        "/app/a\n1\n/app/b\n2\n"
    );
    assert_eq!(
        ok(&cluster, &["get", "/app/b", "--from-key", "--keys-only"]),
        "/app/b\n\n/other\n\n"
    );
    assert_eq!(ok(&cluster, &["get", "/app/a", "--consistency=s"]), "/app/a\n1\n");
    assert_eq!(
        ok(
            &cluster,
            &["get", "/app/", "--prefix", "--limit=1", "--order=DESCEND"]
        ),
        "/app/b\n2\n"
    );

    // Historical read: /app/a was created at revision 2.
    assert_eq!(ok(&cluster, &["put", "/app/a", "changed"]), "OK\n");
    assert_eq!(ok(&cluster, &["get", "/app/a", "--rev=2"]), "/app/a\n1\n");
    assert_eq!(ok(&cluster, &["get", "/app/a"]), "/app/a\nchanged\n");
    let json = ok(&cluster, &["get", "/app/a", "-w", "json"]);
    assert!(
        json.contains("\"revision\":5") && json.contains("\"version\":2"),
        "{json}"
    );

    // Txn from stdin: compare, success ops, failure ops.
    let txn =
        "value(\"/app/a\") = \"changed\"\n\nput /app/a swapped\nput /app/c new\n\nput /app/a failed\n\n";
    let (success, stdout, stderr) = etcdctl(&cluster, &["txn"], Some(txn));
    assert!(success, "{stderr}");
    assert_eq!(stdout, "SUCCESS\n\nOK\n\nOK\n");
    assert_eq!(ok(&cluster, &["get", "/app/c"]), "/app/c\nnew\n");
    let (success, stdout, stderr) = etcdctl(&cluster, &["txn"], Some(txn));
    assert!(success, "{stderr}");
    assert_eq!(stdout, "FAILURE\n\nOK\n");
    assert_eq!(ok(&cluster, &["get", "/app/a", "--print-value-only"]), "failed\n");

    // Delete: single, prefix with prev-kv.
    assert_eq!(ok(&cluster, &["del", "/other"]), "1\n");
    assert_eq!(ok(&cluster, &["del", "/app/", "--prefix"]), "3\n");
    assert_eq!(ok(&cluster, &["get", "", "--prefix"]), "");

    // Compaction, then reads below it fail with etcd's message.
    assert_eq!(ok(&cluster, &["compaction", "5"]), "compacted revision 5\n");
    let (success, _, stderr) = etcdctl(&cluster, &["get", "/app/a", "--rev=3"], None);
    assert!(!success);
    assert!(
        stderr.contains("required revision has been compacted"),
        "{stderr}"
    );
    let (success, _, stderr) = etcdctl(&cluster, &["compaction", "4"], None);
    assert!(!success);
    assert!(
        stderr.contains("required revision has been compacted"),
        "{stderr}"
    );

    // `endpoint status` finds exactly one member that is the leader (header.member_id == leader).
    let json = ok(&cluster, &["endpoint", "status", "-w", "json"]);
    let statuses: serde_json::Value = serde_json::from_str(&json).expect("status json");
    let statuses = statuses.as_array().expect("one status per endpoint");
    assert_eq!(statuses.len(), 3);
    let leaders = statuses
        .iter()
        .filter(|s| s["Status"]["header"]["member_id"] == s["Status"]["leader"])
        .count();
    assert_eq!(leaders, 1, "{json}");
}
