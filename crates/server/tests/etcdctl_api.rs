//! Debian's etcdctl 3.4 (package `etcd-client`) against a 3-member Conclave cluster,
//! command by command, beyond the KV basics of `etcdctl.rs`: watch, lease, member,
//! endpoint, snapshot, defrag, alarm, elect, lock, move-leader, check perf.
//! `make test` and `.ci/run` install etcdctl; this test fails (never skips) without it.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::etcdctl::Running;
use common::*;
use conclave_testkit::{leader_index, Cluster};

fn endpoints(cluster: &Cluster) -> String {
    common::etcdctl::endpoints(cluster).join(",")
}

fn etcdctl(cluster: &Cluster, args: &[&str]) -> (bool, String) {
    etcdctl_at(&endpoints(cluster), args)
}

fn etcdctl_at(endpoints: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg("--command-timeout=15s")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("etcdctl not found: install Debian's etcd-client package (make test does)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ok(cluster: &Cluster, args: &[&str]) -> String {
    let (success, text) = etcdctl(cluster, args);
    assert!(success, "etcdctl {args:?} failed:\n{text}");
    text
}

fn lease_id(granted: &str) -> String {
    // "lease 694d7c8c6f8a4a07 granted with TTL(60s)"
    granted.split_whitespace().nth(1).expect("lease id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcdctl_watch_lease_member_endpoint_snapshot_alarm_elect_lock_and_move_leader() {
    let cluster = start_cluster(3);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let eps = common::etcdctl::endpoints(&cluster);
    let line_wait = Duration::from_secs(15);

    // watch, incl. --prefix, --prev-kv and --rev (history).
    ok(&cluster, &["put", "/w/a", "1"]);
    let rev_json = ok(&cluster, &["get", "/w/a", "-w", "json"]);
    let rev: i64 = rev_json
        .split("\"revision\":")
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|r| r.parse().ok())
        .expect("revision");
    let watch = Running::start(
        &eps,
        &[],
        &["watch", "/w/", "--prefix", "--prev-kv", &format!("--rev={rev}")],
    );
    assert_eq!(watch.lines(2, line_wait), vec!["PUT", "/w/a"]);
    assert_eq!(watch.lines(1, line_wait), vec!["1"]);
    ok(&cluster, &["put", "/w/a", "2"]);
    assert_eq!(watch.lines(5, line_wait), vec!["PUT", "/w/a", "1", "/w/a", "2"]);
    ok(&cluster, &["del", "/w/a"]);
    assert_eq!(watch.lines(3, line_wait)[0], "DELETE");
    drop(watch);

    // lease grant / keep-alive --once / timetolive --keys / list / revoke.
    let granted = ok(&cluster, &["lease", "grant", "60"]);
    assert!(granted.contains("granted with TTL(60s)"), "{granted}");
    let id = lease_id(&granted);
    ok(&cluster, &["put", "/leased", "v", &format!("--lease={id}")]);
    let kept = ok(&cluster, &["lease", "keep-alive", "--once", &id]);
    assert!(
        kept.contains(&format!("lease {id} keepalived with TTL(60)")),
        "{kept}"
    );
    let ttl = ok(&cluster, &["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.contains("granted with TTL(60s)") && ttl.contains("attached keys([/leased])"),
        "{ttl}"
    );
    let list = ok(&cluster, &["lease", "list"]);
    assert!(list.contains("found 1 leases") && list.contains(&id), "{list}");
    let revoked = ok(&cluster, &["lease", "revoke", &id]);
    assert!(revoked.contains(&format!("lease {id} revoked")), "{revoked}");
    assert_eq!(ok(&cluster, &["get", "/leased"]), "");
    let gone = ok(&cluster, &["lease", "timetolive", &id]);
    assert!(gone.contains("already expired"), "{gone}");

    // member list / add (learner) / promote (refused: not in sync) / remove.
    let members = ok(&cluster, &["member", "list"]);
    assert_eq!(members.lines().count(), 3, "{members}");
    assert!(
        members
            .lines()
            .all(|l| l.contains(", started, n") && l.ends_with(", false")),
        "{members}"
    );
    let added = ok(
        &cluster,
        &[
            "member",
            "add",
            "n9",
            "--peer-urls=http://127.0.0.1:9",
            "--learner",
        ],
    );
    assert!(
        added.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{added}"
    );
    let new_id = added.split_whitespace().nth(1).expect("member id").to_string();
    let members = ok(&cluster, &["member", "list"]);
    assert!(
        members.contains(&format!("{new_id}, unstarted")) && members.contains("http://127.0.0.1:9, , true"),
        "{members}"
    );
    let (promoted, text) = etcdctl(&cluster, &["member", "promote", &new_id]);
    assert!(
        !promoted && text.contains("can only promote a learner member which is in sync with leader"),
        "{text}"
    );
    let removed = ok(&cluster, &["member", "remove", &new_id]);
    assert!(removed.contains(&format!("Member {new_id} removed")), "{removed}");

    // endpoint health / status (table).
    let health = ok(&cluster, &["endpoint", "health"]);
    assert_eq!(
        health
            .matches("is healthy: successfully committed proposal")
            .count(),
        3,
        "{health}"
    );
    let table = ok(&cluster, &["endpoint", "status", "-w", "table"]);
    assert_eq!(table.matches(" true ").count(), 1, "exactly one leader:\n{table}");

    // snapshot save, defrag, alarm list / disarm, compaction.
    let path = cluster.dir().join("etcdctl.snapshot");
    // One endpoint, as etcdctl requires for snapshots.
    let (saved, text) = etcdctl_at(
        cluster.node(1).client_url().trim_start_matches("http://"),
        &["snapshot", "save", path.to_str().expect("path")],
    );
    assert!(saved && text.contains("Snapshot saved at"), "{text}");
    assert_eq!(std::fs::metadata(&path).expect("saved file").len() % 512, 32);
    let defrag = ok(&cluster, &["defrag"]);
    assert_eq!(
        defrag.matches("Finished defragmenting etcd member").count(),
        3,
        "{defrag}"
    );
    assert_eq!(ok(&cluster, &["alarm", "list"]), "");
    ok(&cluster, &["alarm", "disarm"]);

    // elect: a campaigner holds leadership; observe (-l) prints it; a second waits.
    let leader = Running::start(&eps, &[], &["elect", "e1", "first"]);
    let lines = leader.lines(2, line_wait);
    assert!(lines[0].starts_with("e1/") && lines[1] == "first", "{lines:?}");
    let observer = Running::start(&eps, &[], &["elect", "-l", "e1"]);
    let seen = observer.lines(2, line_wait);
    assert_eq!(seen[1], "first", "{seen:?}");
    let second = Running::start(&eps, &[], &["elect", "e1", "second"]);
    assert!(
        second.silent_for(Duration::from_secs(2)),
        "a second campaigner became leader while the first held it"
    );
    leader.interrupt();
    let lines = second.lines(2, line_wait);
    assert_eq!(lines[1], "second");
    drop(second);
    drop(observer);

    // lock: mutual exclusion between two etcdctl processes.
    let holder = Running::start(&eps, &[], &["lock", "l1"]);
    assert!(holder.lines(1, line_wait)[0].starts_with("l1/"));
    let waiter = Running::start(&eps, &[], &["lock", "l1"]);
    assert!(
        waiter.silent_for(Duration::from_secs(2)),
        "two processes held the lock at once"
    );
    holder.interrupt();
    assert!(waiter.lines(1, line_wait)[0].starts_with("l1/"));
    drop(waiter);

    // move-leader to another member.
    let status = ok(&cluster, &["endpoint", "status", "-w", "json"]);
    let statuses: serde_json::Value = serde_json::from_str(&status).expect("json");
    let statuses = statuses.as_array().expect("array");
    let follower = statuses
        .iter()
        .find(|s| s["Status"]["header"]["member_id"] != s["Status"]["leader"])
        .expect("a follower");
    let target = format!(
        "{:x}",
        follower["Status"]["header"]["member_id"].as_u64().expect("id")
    );
    let moved = ok(&cluster, &["move-leader", &target]);
    assert!(moved.contains(&format!("to {target}")), "{moved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcdctl_check_perf_small_load_passes() {
    let cluster = start_cluster(3);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let report = ok(&cluster, &["check", "perf", "--load=s"]);
    let verdicts: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL"))
        .collect();
    eprintln!("check perf --load=s: {}", verdicts.join("; "));
    assert!(report.contains("PASS: Throughput"), "{report}");
    assert!(!report.contains("FAIL"), "{report}");
}
