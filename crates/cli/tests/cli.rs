//! conclavectl against real node processes: one 3-member cluster (fast timings) shared by
//! every scenario, each scenario a named function; plus a restored single member, and
//! the error paths that need no cluster. The CLI is always run as a separate process and
//! judged by its standard output, standard error and exit code.

mod common;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Output, Stdio};
use std::sync::Arc;

use common::{ctl, exits_cleanly, read_lines, run_with, signal, text, Ctl, CTL, WAIT};
use conclave_testkit::{leader_index, node_binary, unique_port, wait_until, Cluster, ClusterOptions};
use serde_json::Value;
use tokio::process::Command;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The cluster and what the scenarios share; runs `conclavectl` against every member
/// (through [`Ctl`]).
struct Env {
    cluster: Cluster,
    ctl: Ctl,
    /// Scratch space for files.
    dir: tempfile::TempDir,
}

impl std::ops::Deref for Env {
    type Target = Ctl;

    fn deref(&self) -> &Ctl {
        &self.ctl
    }
}

impl Env {
    /// The store's current revision.
    async fn revision(&self) -> i64 {
        self.json(&["get", "no-such-key", "-w", "json"]).await["header"]["revision"]
            .as_i64()
            .expect("revision")
    }
}

type Scenario = fn(Arc<Env>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        [$((stringify!($name), (|env| Box::pin($name(env))) as Scenario)),*]
    };
}

/// Every scenario runs against one cluster (starting clusters is what takes time), one
/// after another, each in its own task so that one failing does not hide the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conclavectl_drives_a_real_three_member_cluster() {
    let bin = node_binary().expect("the conclave binary (cargo build --release -p conclave-server)");
    let options = ClusterOptions {
        size: 3,
        heartbeat_ms: Some(50),
        election_timeout_ms: Some(400),
        extra_args: vec!["--request-timeout".into(), "3000".into()],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(&bin, options).expect("start cluster");
    leader_index(&cluster, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    let endpoints = cluster.client_endpoints().join(",");
    let env = Arc::new(Env {
        cluster,
        ctl: Ctl { endpoints },
        dir: tempfile::tempdir().expect("tempdir"),
    });
    // Every member must have published its client URLs for the --cluster commands.
    wait_until("every member to publish its client URLs", WAIT, || {
        let env = env.clone();
        async move {
            let output = env.run(&["member", "list", "-w", "json"]).await;
            let list: Value = serde_json::from_slice(&output.stdout).ok()?;
            let members = list["members"].as_array()?;
            (members.len() == 3
                && members
                    .iter()
                    .all(|m| m["clientURLs"].as_array().is_some_and(|u| !u.is_empty())))
            .then_some(())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", env.cluster.log_dump()));

    let scenarios = scenarios![
        put_get_and_del_print_what_etcdctl_prints,
        txn_runs_the_branch_its_compares_choose,
        watch_prints_every_change_from_a_revision,
        leases_are_granted_inspected_renewed_and_revoked,
        members_are_listed_added_updated_and_removed,
        endpoint_health_and_status_cover_every_member,
        elect_holds_leadership_until_interrupted_and_observers_see_it,
        lock_commands_never_overlap_and_get_growing_epochs,
        a_lost_lock_kills_everything_the_command_started,
        a_saved_snapshot_restores_into_a_new_member_with_the_same_data,
        compaction_defrag_and_alarms,
    ];
    let mut failed = Vec::new();
    for (name, scenario) in scenarios {
        let started = std::time::Instant::now();
        let outcome = tokio::spawn(scenario(env.clone())).await;
        eprintln!("scenario {name}: {:?}", started.elapsed());
        if outcome.is_err() {
            failed.push(name);
        }
    }
    assert!(
        failed.is_empty(),
        "failed scenarios: {failed:?}\n{}",
        env.cluster.log_dump()
    );
}

async fn put_get_and_del_print_what_etcdctl_prints(env: Arc<Env>) {
    assert_eq!(env.ok(&["put", "kv/a", "1"]).await, "OK\n");
    assert_eq!(env.ok(&["put", "kv/b", "2"]).await, "OK\n");
    // The value comes from standard input, as is, when omitted.
    assert_eq!(
        env.ok_with_stdin(&["put", "kv/c"], "three\nlines\nhere").await,
        "OK\n"
    );
    assert_eq!(
        env.ok(&["get", "kv/", "--prefix"]).await,
        "kv/a\n1\nkv/b\n2\nkv/c\nthree\nlines\nhere\n"
    );
    assert_eq!(env.ok(&["get", "kv/a"]).await, "kv/a\n1\n");
    assert_eq!(env.ok(&["get", "kv/a", "kv/c"]).await, "kv/a\n1\nkv/b\n2\n");
    assert_eq!(
        env.ok(&["get", "kv/", "--prefix", "--limit", "2"]).await,
        "kv/a\n1\nkv/b\n2\n"
    );
    assert_eq!(
        env.ok(&["get", "kv/b", "--from-key", "--limit", "1"]).await,
        "kv/b\n2\n"
    );
    assert_eq!(
        env.ok(&["get", "kv/", "--prefix", "--keys-only"]).await,
        "kv/a\n\nkv/b\n\nkv/c\n\n"
    );
    assert_eq!(env.ok(&["get", "kv/", "--prefix", "--count-only"]).await, "3\n");
    assert_eq!(env.ok(&["get", "kv/a", "--print-value-only"]).await, "1\n");
    assert_eq!(
        env.ok(&[
            "get",
            "kv/",
            "--prefix",
            "--keys-only",
            "--sort-by",
            "KEY",
            "--order",
            "DESCEND"
        ])
        .await,
        "kv/c\n\nkv/b\n\nkv/a\n\n"
    );
    // Serializable: this member's local state, which may lag (but never invents data).
    let local = env.ok(&["get", "kv/a", "--consistency", "s"]).await;
    assert!(local.is_empty() || local == "kv/a\n1\n", "{local}");
    assert_eq!(env.ok(&["get", "kv/nothing"]).await, "");

    // JSON parses, with etcdctl's shape: base64 keys and values, the header's revision.
    let json = env.json(&["get", "kv/", "--prefix", "-w", "json"]).await;
    assert_eq!(json["count"], 3);
    assert_eq!(json["kvs"][0]["key"], "a3YvYQ==", "base64 of kv/a");
    assert_eq!(json["kvs"][0]["value"], "MQ==", "base64 of 1");
    assert_eq!(json["kvs"][0]["version"], 1);
    let put = env.json(&["put", "kv/a", "one", "-w", "json"]).await;
    let first_revision = json["kvs"][0]["mod_revision"].as_i64().expect("mod_revision");
    assert!(put["header"]["revision"].as_i64().expect("revision") > first_revision);

    // --rev reads the past; --prev-kv shows what a put replaced.
    assert_eq!(
        env.ok(&["get", "kv/a", "--rev", &first_revision.to_string()])
            .await,
        "kv/a\n1\n"
    );
    assert_eq!(
        env.ok(&["put", "kv/a", "uno", "--prev-kv"]).await,
        "OK\nkv/a\none\n"
    );

    // Tables have a row per key.
    let table = env.ok(&["get", "kv/", "--prefix", "-w", "table"]).await;
    assert!(table.lines().any(|l| l.contains("| kv/b |")), "{table}");

    assert_eq!(env.ok(&["del", "kv/b"]).await, "1\n");
    assert_eq!(env.ok(&["del", "kv/b"]).await, "0\n");
    assert_eq!(
        env.ok(&["del", "kv/", "--prefix", "--prev-kv"]).await,
        "2\nkv/a\nuno\nkv/c\nthree\nlines\nhere\n"
    );
    assert_eq!(env.ok(&["get", "kv/", "--prefix"]).await, "");
}

async fn txn_runs_the_branch_its_compares_choose(env: Arc<Env>) {
    env.ok(&["put", "t/k", "5"]).await;
    let swap = "value(\"t/k\") = \"5\"\nversion(\"t/k\") > \"0\"\n\nput t/k 6\nget t/k\n\nget t/k\n\n";
    assert_eq!(
        env.ok_with_stdin(&["txn"], swap).await,
        "SUCCESS\n\nOK\n\nt/k\n6\n"
    );
    // Same transaction again: the value is 6 now, so the failure branch runs.
    assert_eq!(env.ok_with_stdin(&["txn"], swap).await, "FAILURE\n\nt/k\n6\n");

    // create("k") = "0" is create-if-absent; mod compares revisions.
    let create = "create(\"t/new\") = \"0\"\n\nput t/new \"two words\"\n\ndel t/k\n";
    assert_eq!(env.ok_with_stdin(&["txn"], create).await, "SUCCESS\n\nOK\n");
    assert_eq!(env.ok_with_stdin(&["txn"], create).await, "FAILURE\n\n1\n");
    assert_eq!(
        env.ok(&["get", "t/new", "--print-value-only"]).await,
        "two words\n"
    );
    let json: Value = serde_json::from_str(
        &env.ok_with_stdin(&["txn", "-w", "json"], "mod(\"t/new\") > \"0\"\n\nget t/new\n")
            .await,
    )
    .expect("txn json");
    assert_eq!(json["succeeded"], true);
    assert_eq!(json["responses"][0]["Response"]["ResponseRange"]["count"], 1);

    // A malformed line is refused with its number, before anything is sent.
    let output = run_with(
        ctl(&env.endpoints, &["txn"]),
        Some(b"mod(\"t/new\") > \"0\"\n\nput t/new\n"),
    )
    .await;
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("txn line 3"),
        "{}",
        text(&output.stderr)
    );
}

async fn watch_prints_every_change_from_a_revision(env: Arc<Env>) {
    env.ok(&["put", "w/a", "1"]).await;
    let from = env.revision().await;
    // From a revision, so that what is printed does not depend on when the watch starts.
    let (mut watch, mut lines) =
        env.spawn(&["watch", "w/", "--prefix", "--prev-kv", "--rev", &from.to_string()]);
    assert_eq!(read_lines(&mut lines, 3).await, ["PUT", "w/a", "1"]);
    env.ok(&["put", "w/a", "2"]).await;
    env.ok(&["del", "w/a"]).await;
    env.ok(&["put", "other", "not watched"]).await;
    env.ok(&["put", "w/b", "3"]).await;
    assert_eq!(
        read_lines(&mut lines, 13).await,
        ["PUT", "w/a", "1", "w/a", "2", "DELETE", "w/a", "2", "w/a", "", "PUT", "w/b", "3"]
    );
    // Ctrl-C ends it cleanly.
    signal(&watch, "INT").await;
    assert!(exits_cleanly(&mut watch).await, "watch exits 0 on Ctrl-C");
}

async fn leases_are_granted_inspected_renewed_and_revoked(env: Arc<Env>) {
    let granted = env.ok(&["lease", "grant", "60"]).await;
    // "lease 694d77aa9e38260f granted with TTL(60s)"
    let id = granted.split_whitespace().nth(1).expect("lease id").to_string();
    assert_eq!(granted, format!("lease {id} granted with TTL(60s)\n"));
    env.ok(&["put", "l/k", "v", "--lease", &id]).await;

    let ttl = env.ok(&["lease", "timetolive", &id, "--keys"]).await;
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(60s), remaining(")),
        "{ttl}"
    );
    assert!(ttl.ends_with("s), attached keys([l/k])\n"), "{ttl}");
    let json = env.json(&["lease", "timetolive", &id, "-w", "json"]).await;
    assert_eq!(json["granted-ttl"], 60);

    let list = env.ok(&["lease", "list"]).await;
    assert!(list.starts_with("found "), "{list}");
    assert!(list.lines().any(|l| l == id), "{list}");

    assert_eq!(
        env.ok(&["lease", "keep-alive", &id, "--once"]).await,
        format!("lease {id} keepalived with TTL(60)\n")
    );
    assert_eq!(
        env.ok(&["lease", "revoke", &id]).await,
        format!("lease {id} revoked\n")
    );
    assert_eq!(env.ok(&["get", "l/k"]).await, "", "the lease's key went with it");
    assert_eq!(
        env.ok(&["lease", "timetolive", &id]).await,
        format!("lease {id} already expired\n")
    );
    let again = env.run(&["lease", "revoke", &id]).await;
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("not found"),
        "{}",
        text(&again.stderr)
    );
    let bad = env.run(&["lease", "revoke", "not-hex"]).await;
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("expected hex"),
        "{}",
        text(&bad.stderr)
    );
}

async fn members_are_listed_added_updated_and_removed(env: Arc<Env>) {
    let json = env.json(&["member", "list", "-w", "json"]).await;
    let members = json["members"].as_array().expect("members");
    let mut names: Vec<&str> = members.iter().filter_map(|m| m["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["n1", "n2", "n3"]);
    assert!(json["header"]["cluster_id"].as_u64().is_some_and(|id| id != 0));
    let ids: Vec<String> = members
        .iter()
        .map(|m| format!("{:x}", m["ID"].as_u64().expect("ID")))
        .collect();

    let table = env.ok(&["member", "list", "-w", "table"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 7, "{table}");
    assert!(
        lines[1].contains("PEER ADDRS") && lines[1].contains("IS LEARNER"),
        "{table}"
    );
    for id in &ids {
        // Cells are right-aligned: an ID with fewer hex digits is padded on the left.
        assert!(table.contains(&format!(" {id} | started |")), "{table}");
    }
    let simple = env.ok(&["member", "list"]).await;
    assert_eq!(simple.lines().count(), 3);
    assert!(simple.lines().all(|l| l.ends_with(", false")), "{simple}");

    // A learner that never starts: added, updated, refused promotion, removed.
    let port = unique_port(LOCALHOST).expect("port");
    let peer = format!("http://127.0.0.1:{port}");
    let added = env
        .ok(&["member", "add", "spare", "--peer-urls", &peer, "--learner"])
        .await;
    let first = added.lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with("Member ") && first.contains(" added to cluster "),
        "{added}"
    );
    assert!(
        added.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{added}"
    );
    assert!(added.contains(&format!("spare={peer}")), "{added}");
    let new_id = first.split_whitespace().nth(1).expect("id").to_string();
    let listed = env.ok(&["member", "list"]).await;
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("{new_id}, unstarted, , {peer}")) && l.ends_with("true")),
        "{listed}"
    );
    let moved = format!("http://127.0.0.1:{}", unique_port(LOCALHOST).expect("port"));
    let updated = env
        .ok(&["member", "update", &new_id, "--peer-urls", &moved])
        .await;
    assert!(
        updated.starts_with(&format!("Member {new_id} updated in cluster ")),
        "{updated}"
    );
    let promote = env.run(&["member", "promote", &new_id]).await;
    assert!(
        !promote.status.success(),
        "a learner that never started is not in sync"
    );
    let removed = env.ok(&["member", "remove", &new_id]).await;
    assert!(
        removed.starts_with(&format!("Member {new_id} removed from cluster ")),
        "{removed}"
    );
    assert_eq!(env.ok(&["member", "list"]).await.lines().count(), 3);
}

async fn endpoint_health_and_status_cover_every_member(env: Arc<Env>) {
    let health = env.ok(&["endpoint", "health", "--cluster"]).await;
    assert_eq!(health.lines().count(), 3, "{health}");
    assert!(
        health
            .lines()
            .all(|l| l.contains(" is healthy: successfully committed proposal: took = ")),
        "{health}"
    );
    let json = env.json(&["endpoint", "health", "--cluster", "-w", "json"]).await;
    assert_eq!(json.as_array().map(Vec::len), Some(3));
    assert!(json
        .as_array()
        .is_some_and(|l| l.iter().all(|h| h["health"] == true)));

    let status = env.json(&["endpoint", "status", "--cluster", "-w", "json"]).await;
    let status = status.as_array().expect("array");
    assert_eq!(status.len(), 3);
    let leaders: Vec<u64> = status
        .iter()
        .filter_map(|s| s["Status"]["leader"].as_u64())
        .collect();
    assert_eq!(leaders.len(), 3);
    assert!(
        leaders.iter().all(|l| *l == leaders[0] && *l != 0),
        "one leader: {leaders:?}"
    );
    let is_leader = status
        .iter()
        .filter(|s| s["Status"]["header"]["member_id"] == s["Status"]["leader"])
        .count();
    assert_eq!(is_leader, 1);

    let table = env.ok(&["endpoint", "status", "--cluster", "-w", "table"]).await;
    assert_eq!(table.lines().count(), 7, "{table}");
    assert!(table.contains("RAFT APPLIED INDEX"), "{table}");
    let simple = env.ok(&["endpoint", "status"]).await;
    assert_eq!(
        simple.lines().count(),
        3,
        "--endpoints has every member: {simple}"
    );
    assert_eq!(
        simple
            .lines()
            .filter(|l| l.split(", ").nth(4) == Some("true"))
            .count(),
        1,
        "{simple}"
    );
}

async fn elect_holds_leadership_until_interrupted_and_observers_see_it(env: Arc<Env>) {
    let (mut alpha, mut alpha_out) = env.spawn(&["elect", "e/x", "alpha"]);
    let won = read_lines(&mut alpha_out, 3).await;
    assert!(won[0].starts_with("e/x/"), "{won:?}");
    assert_eq!(won[1], "alpha");
    assert!(won[2].starts_with("epoch "), "{won:?}");
    let alpha_epoch: i64 = won[2]["epoch ".len()..].parse().expect("epoch");

    let (mut observer, mut seen) = env.spawn(&["elect", "-l", "e/x"]);
    assert_eq!(
        read_lines(&mut seen, 3).await,
        won,
        "the observer sees the leader"
    );

    // A second candidate waits; when alpha resigns (Ctrl-C) it takes over.
    let (mut beta, mut beta_out) = env.spawn(&["elect", "e/x", "beta"]);
    signal(&alpha, "INT").await;
    assert!(exits_cleanly(&mut alpha).await, "alpha resigns and exits 0");
    let next = read_lines(&mut beta_out, 3).await;
    assert_eq!(next[1], "beta");
    let beta_epoch: i64 = next[2]["epoch ".len()..].parse().expect("epoch");
    assert!(
        beta_epoch > alpha_epoch,
        "epochs grow: {alpha_epoch} then {beta_epoch}"
    );
    assert_eq!(
        read_lines(&mut seen, 3).await,
        next,
        "the observer sees the change"
    );

    signal(&beta, "TERM").await;
    assert!(exits_cleanly(&mut beta).await);
    signal(&observer, "INT").await;
    assert!(exits_cleanly(&mut observer).await);
    assert_eq!(
        env.ok(&["get", "e/x/", "--prefix"]).await,
        "",
        "resigned leaders leave no key"
    );

    let no_proposal = env.run(&["elect", "e/x"]).await;
    assert!(!no_proposal.status.success());
    assert!(text(&no_proposal.stderr).contains("no proposal"));
}

async fn lock_commands_never_overlap_and_get_growing_epochs(env: Arc<Env>) {
    let log = env.dir.path().join("lock.log");
    let log_arg = log.display().to_string();
    // Each holder writes start and end markers around a pause; overlapping holders would
    // interleave them.
    let script = "echo \"start $CONCLAVE_LOCK_EPOCH\" >> \"$1\"; sleep 0.2; echo \"end $CONCLAVE_LOCK_EPOCH\" >> \"$1\"";
    let mut holders = Vec::new();
    for _ in 0..3 {
        let (child, _) = env.spawn(&["lock", "l/x", "--", "sh", "-c", script, "sh", &log_arg]);
        holders.push(child);
    }
    for child in &mut holders {
        assert!(exits_cleanly(child).await, "every holder gets the lock in turn");
    }
    let written = std::fs::read_to_string(&log).expect("lock log");
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), 6, "{written}");
    let mut last_epoch = 0;
    for pair in lines.chunks(2) {
        let start: i64 = pair[0]
            .strip_prefix("start ")
            .expect(&written)
            .parse()
            .expect("epoch");
        let end: i64 = pair[1]
            .strip_prefix("end ")
            .expect(&written)
            .parse()
            .expect("epoch");
        assert_eq!(start, end, "a holder's start and end are adjacent: {written}");
        assert!(start > last_epoch, "epochs grow: {written}");
        last_epoch = start;
    }

    // The command's exit code is conclavectl's.
    let failed = env.run(&["lock", "l/x", "--", "sh", "-c", "exit 7"]).await;
    assert_eq!(failed.status.code(), Some(7));

    // Without a command the lock is held until interrupted, then released.
    let (mut holder, mut out) = env.spawn(&["lock", "l/y"]);
    let held = read_lines(&mut out, 2).await;
    assert!(
        held[0].starts_with("l/y/") && held[1].starts_with("epoch "),
        "{held:?}"
    );
    assert!(!env.ok(&["get", "l/y/", "--prefix"]).await.is_empty());
    signal(&holder, "TERM").await;
    assert!(exits_cleanly(&mut holder).await);
    assert_eq!(env.ok(&["get", "l/y/", "--prefix"]).await, "", "unlocked on exit");
}

/// Whether a process is still alive (a zombie counts as dead).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
    }
}

async fn a_lost_lock_kills_everything_the_command_started(env: Arc<Env>) {
    // The command leaves a grandchild (a background sleep, which a non-interactive shell
    // shields from SIGINT) and waits for it.
    let pidfile = env.dir.path().join("grandchild.pid");
    let pid_arg = pidfile.display().to_string();
    let (mut holder, _) = env.spawn(&[
        "lock",
        "l/lost",
        "--",
        "sh",
        "-c",
        "sleep 60 & echo $! > \"$1\"; wait",
        "sh",
        &pid_arg,
    ]);
    let grandchild: u32 = wait_until("the command to start its grandchild", WAIT, || {
        let pidfile = pidfile.clone();
        async move { std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok() }
    })
    .await
    .expect("grandchild pid");
    assert!(alive(grandchild));
    // Take the lock away: revoke its lease (the key is `l/lost/<lease hex>`).
    let key = env.ok(&["get", "l/lost/", "--prefix", "--keys-only"]).await;
    let lease = key.trim().rsplit('/').next().expect("lease in key").to_string();
    env.ok(&["lease", "revoke", &lease]).await;
    let status = tokio::time::timeout(WAIT, holder.wait())
        .await
        .expect("conclavectl ends when the lock is lost")
        .expect("wait");
    assert!(!status.success(), "a lost lock is a failure");
    wait_until(
        "the grandchild to be killed with its group",
        WAIT,
        || async move { (!alive(grandchild)).then_some(()) },
    )
    .await
    .expect("no process of the command survives the lost lock");
}

async fn a_saved_snapshot_restores_into_a_new_member_with_the_same_data(env: Arc<Env>) {
    for i in 0..40 {
        env.ok(&["put", &format!("s/{i:02}"), &format!("value {i}")])
            .await;
    }
    let expected = env.ok(&["get", "s/", "--prefix"]).await;
    let dir = env.dir.path();
    let file = dir.join("backup.db");
    let file_arg = file.display().to_string();
    let saved = env.ok(&["snapshot", "save", &file_arg]).await;
    assert!(
        saved.starts_with(&format!("Snapshot saved at {file_arg} (")),
        "{saved}"
    );
    assert!(file.exists());
    assert!(!dir.join("backup.db.part").exists(), "no temporary file is left");

    // A damaged copy is refused before anything is written.
    let mut bytes = std::fs::read(&file).expect("read snapshot");
    bytes[100] ^= 0xff;
    let damaged = dir.join("damaged.db");
    std::fs::write(&damaged, &bytes).expect("write");
    let data_dir = dir.join("restored");
    let refused = restore(&damaged, &data_dir, 0, 0).await;
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("SHA-256"),
        "{}",
        text(&refused.stderr)
    );
    assert!(!data_dir.exists(), "nothing written for a damaged file");

    // Restore offline, then start a fresh member from the data dir alone.
    let client_port = unique_port(LOCALHOST).expect("port");
    let peer_port = unique_port(LOCALHOST).expect("port");
    let restored = restore(&file, &data_dir, client_port, peer_port).await;
    assert!(restored.status.success(), "{}", text(&restored.stderr));
    let config = data_dir.join("conclave.toml");
    assert!(
        text(&restored.stdout).contains(&format!("conclave --config-file {}", config.display())),
        "{}",
        text(&restored.stdout)
    );
    let log = std::fs::File::create(dir.join("restored.log")).expect("log");
    let mut node = Command::new(node_binary().expect("node binary"))
        .arg("--config-file")
        .arg(&config)
        .args(["--heartbeat-interval", "50", "--election-timeout", "400"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start the restored member");
    let endpoint = format!("127.0.0.1:{client_port}");
    let got = wait_until("the restored member to serve the saved keys", WAIT, || {
        let endpoint = endpoint.clone();
        let expected = expected.clone();
        async move {
            let output = run_with(ctl(&endpoint, &["get", "s/", "--prefix"]), None).await;
            let got = text(&output.stdout);
            (output.status.success() && got == expected).then_some(got)
        }
    })
    .await;
    let node_log = std::fs::read_to_string(dir.join("restored.log")).unwrap_or_default();
    let got = got.unwrap_or_else(|e| panic!("{e}\nrestored member's log:\n{node_log}"));
    assert_eq!(got.lines().count(), 80);
    let members = run_with(ctl(&endpoint, &["member", "list"]), None).await;
    assert!(
        text(&members.stdout).contains(", started, m1, "),
        "a new one-member cluster: {}",
        text(&members.stdout)
    );

    // The data dir is now a member's: restoring into it again is refused.
    let again = restore(&file, &data_dir, client_port, peer_port).await;
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("fresh --data-dir"),
        "{}",
        text(&again.stderr)
    );
    node.kill().await.expect("stop the restored member");
}

/// `conclavectl snapshot restore` for a one-member cluster `m1` (needs no cluster).
async fn restore(file: &Path, data_dir: &PathBuf, client_port: u16, peer_port: u16) -> Output {
    let peer = format!("http://127.0.0.1:{peer_port}");
    let mut command = Command::new(CTL);
    command
        .args(["snapshot", "restore"])
        .arg(file)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--name", "m1", "--initial-cluster-token", "restored-by-test"])
        .args(["--initial-cluster", &format!("m1={peer}")])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--listen-client-urls", &format!("http://127.0.0.1:{client_port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_with(command, None).await
}

async fn compaction_defrag_and_alarms(env: Arc<Env>) {
    env.ok(&["put", "c/k", "old"]).await;
    let old = env.revision().await;
    env.ok(&["put", "c/k", "new"]).await;
    let now = env.revision().await;
    assert_eq!(
        env.ok(&["compaction", &now.to_string(), "--physical"]).await,
        format!("compacted revision {now}\n")
    );
    let gone = env.run(&["get", "c/k", "--rev", &old.to_string()]).await;
    assert!(!gone.status.success());
    assert!(text(&gone.stderr).contains("compacted"), "{}", text(&gone.stderr));
    assert_eq!(env.ok(&["get", "c/k", "--print-value-only"]).await, "new\n");

    let defrag = env.ok(&["defrag", "--cluster"]).await;
    assert_eq!(defrag.lines().count(), 3, "{defrag}");
    assert!(
        defrag
            .lines()
            .all(|l| l.starts_with("Finished defragmenting etcd member[")),
        "{defrag}"
    );
    assert_eq!(env.ok(&["alarm", "list"]).await, "", "no alarm raised");
    assert_eq!(
        env.json(&["alarm", "list", "-w", "json"]).await["alarms"],
        Value::Array(vec![])
    );
    assert_eq!(env.ok(&["alarm", "disarm"]).await, "");
}

/// Nothing listens on a fresh port: the error says where it looked and what to set.
#[tokio::test]
async fn an_unreachable_endpoint_says_what_to_do() {
    let port = unique_port(LOCALHOST).expect("port");
    let endpoint = format!("127.0.0.1:{port}");
    let advice =
        format!("cannot reach {endpoint}: is a member running there? set --endpoints or CONCLAVE_ENDPOINTS");
    let output = run_with(ctl(&endpoint, &["get", "k", "--command-timeout", "1s"]), None).await;
    assert_eq!(output.status.code(), Some(3), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains(&advice), "{}", text(&output.stderr));
    assert!(output.stdout.is_empty());

    // The same through the environment variable, for a write.
    let mut command = Command::new(CTL);
    command
        .args(["put", "k", "v", "--command-timeout", "1s"])
        .env("CONCLAVE_ENDPOINTS", &endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = run_with(command, None).await;
    assert_eq!(output.status.code(), Some(3));
    assert!(text(&output.stderr).contains(&advice), "{}", text(&output.stderr));

    let health = run_with(
        ctl(&endpoint, &["endpoint", "health", "--command-timeout", "1s"]),
        None,
    )
    .await;
    assert_eq!(health.status.code(), Some(3), "{}", text(&health.stderr));
    assert!(text(&health.stdout).contains(&format!("{endpoint} is unhealthy")));
}

/// Bad arguments fail before anything is sent, with usage (exit 2) or the reason.
#[tokio::test]
async fn bad_input_is_refused_with_the_reason() {
    let endpoint = "127.0.0.1:9";
    let missing = run_with(ctl(endpoint, &["get"]), None).await;
    assert_eq!(missing.status.code(), Some(2));
    let conflicting = run_with(ctl(endpoint, &["get", "a", "z", "--prefix"]), None).await;
    assert_eq!(conflicting.status.code(), Some(2));
    let bad_lease = run_with(ctl(endpoint, &["put", "k", "v", "--lease", "xyz"]), None).await;
    assert_eq!(bad_lease.status.code(), Some(1));
    assert!(
        text(&bad_lease.stderr).contains("bad lease ID"),
        "{}",
        text(&bad_lease.stderr)
    );
    let txn = run_with(ctl(endpoint, &["txn"]), Some(b"size(\"k\") = \"1\"\n")).await;
    assert_eq!(txn.status.code(), Some(1));
    assert!(
        text(&txn.stderr).contains("txn line 1: unknown comparison target"),
        "{}",
        text(&txn.stderr)
    );
    let not_a_snapshot = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(not_a_snapshot.path(), b"definitely not a snapshot").expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    let restore = run_with(
        ctl(
            endpoint,
            &[
                "snapshot",
                "restore",
                &not_a_snapshot.path().display().to_string(),
                "--data-dir",
                &dir.path().join("d").display().to_string(),
            ],
        ),
        None,
    )
    .await;
    assert_eq!(restore.status.code(), Some(1));
    assert!(
        text(&restore.stderr).contains("not a Conclave snapshot"),
        "{}",
        text(&restore.stderr)
    );
}

#[tokio::test]
async fn completion_scripts_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let output = run_with(ctl("127.0.0.1:9", &["completion", shell]), None).await;
        assert!(output.status.success());
        let script = text(&output.stdout);
        assert!(
            script.contains("conclavectl") && script.contains("snapshot"),
            "{shell}: {script}"
        );
    }
}
