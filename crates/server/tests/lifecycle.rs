//! Starting, stopping and restarting members: defaults, configuration layering, data-dir
//! ownership, graceful SIGTERM with leadership handover.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use conclave_testkit::{client, leader_index, unique_port, wait_until, wait_until_ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_on_the_leader_hands_leadership_over_and_exits_cleanly() {
    let cluster = start_cluster(3);
    let leader = leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let mut survivor = client_of(&cluster, (1..=3).find(|i| *i != leader).expect("other")).await;
    survivor.put("before", "1", None).await.expect("put");

    let started = Instant::now();
    let status = cluster.terminate(leader).expect("terminate");
    assert!(
        status.success(),
        "SIGTERM exit status {status:?}\n{}",
        cluster.log_dump()
    );
    let log = cluster.node(leader).log_tail(200);
    assert!(log.contains("handing leadership over"), "{log}");

    let new_leader = wait_until("a new leader after SIGTERM", Duration::from_secs(10), || async {
        leader_index(&cluster, Duration::from_secs(1))
            .await
            .ok()
            .filter(|i| *i != leader)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    survivor
        .put("after", "2", None)
        .await
        .expect("put after handover");
    eprintln!(
        "sigterm: leader n{leader} handed over to n{new_leader}; writable again {} ms after SIGTERM",
        started.elapsed().as_millis()
    );

    // Restarted from its data dir, it rejoins with everything.
    cluster.restart(leader).expect("restart");
    let mut back = client_of(&cluster, leader).await;
    wait_until("the restarted member to serve", Duration::from_secs(20), || {
        let mut c = back.clone();
        async move { (get_value(&mut c, "after").await.ok()? == Some(b"2".to_vec())).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    assert_eq!(
        get_value(&mut back, "before").await.expect("get"),
        Some(b"1".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_data_dir_of_another_member_or_cluster_is_refused_with_advice() {
    let cluster = start_cluster(3);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    cluster.kill(1).expect("kill");
    let data_dir = cluster.node(1).spec().data_dir.clone();
    let port = |_| unique_port("127.0.0.1".parse().expect("ip")).expect("port");
    let run = |args: &[&str]| {
        let out = Command::new(bin())
            .args(["--data-dir", data_dir.to_str().expect("utf8")])
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{}", port(0))])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{}", port(1))])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run conclave");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stderr) = run(&[
        "--name",
        "intruder",
        "--initial-cluster",
        "intruder=http://127.0.0.1:1",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("belongs to member n1, not intruder") && stderr.contains("--name n1"),
        "{stderr}"
    );
    let (ok, stderr) = run(&["--name", "n1", "--initial-cluster-token", "another-cluster"]);
    assert!(!ok);
    assert!(
        stderr.contains("belongs to cluster") && stderr.contains("--initial-cluster-token"),
        "{stderr}"
    );
    // Nothing was damaged: the member restarts normally.
    cluster.restart(1).expect("restart");
    let mut c = client_of(&cluster, 1).await;
    wait_until_ok("n1 to serve again", Duration::from_secs(20), || {
        let mut c = c.clone();
        async move { c.put("x", "y", None).await }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    assert_eq!(get_value(&mut c, "x").await.expect("get"), Some(b"y".to_vec()));
}

/// Runs `conclave` in `cwd` with `args` and `env`, until a put through `client_port` works.
async fn run_single(
    cwd: &std::path::Path,
    args: &[String],
    env: &[(&str, &str)],
    client_port: u16,
) -> std::process::Child {
    let mut child = Command::new(bin())
        .current_dir(cwd)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn conclave");
    let url = format!("http://127.0.0.1:{client_port}");
    let result = wait_until_ok(
        "a single-member cluster to take a write",
        Duration::from_secs(20),
        || {
            let url = url.clone();
            async move {
                let mut c = client(&url).await.map_err(|e| e.to_string())?;
                c.put("k", "v", None).await.map_err(|e| e.to_string())
            }
        },
    )
    .await;
    if let Err(e) = result {
        let _ = child.kill();
        panic!("{e}");
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_cluster_flags_a_node_is_a_single_member_cluster_with_data_in_dot_data() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let ip = "127.0.0.1".parse().expect("ip");
    let (client_port, peer_port) = (unique_port(ip).expect("port"), unique_port(ip).expect("port"));
    // Only the ports are given (2379/2380 may be taken on a developer machine).
    let args = vec![
        "--listen-client-urls".to_string(),
        format!("http://127.0.0.1:{client_port}"),
        "--listen-peer-urls".to_string(),
        format!("http://127.0.0.1:{peer_port}"),
    ];
    let mut child = run_single(cwd.path(), &args, &[], client_port).await;
    let _ = child.kill();
    let _ = child.wait();
    let identity = std::fs::read_to_string(cwd.path().join("data/member.json")).expect("./data/member.json");
    assert!(identity.contains("\"name\": \"default\""), "{identity}");
    assert!(cwd.path().join("data/raft/g1").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn configuration_layers_file_then_etcd_env_then_conclave_env_then_flags() {
    let cwd = tempfile::tempdir().expect("tempdir");
    let ip = "127.0.0.1".parse().expect("ip");
    let (client_port, peer_port) = (unique_port(ip).expect("port"), unique_port(ip).expect("port"));
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    std::fs::write(
        cwd.path().join("conclave.toml"),
        format!("name = \"from-file\"\ndata_dir = \"file-dir\"\nlisten_client_urls = \"{client_url}\"\nsnapshot_count = 7\n"),
    )
    .expect("write conclave.toml");
    // The file sets name, data dir and client URL; ETCD_* overrides the name and sets the
    // peer URL and token; CONCLAVE_* overrides the token; the flag overrides the data dir.
    let env = [
        ("ETCD_NAME", "from-etcd-env"),
        ("ETCD_LISTEN_PEER_URLS", peer_url.as_str()),
        ("ETCD_INITIAL_CLUSTER_TOKEN", "etcd-token"),
        ("CONCLAVE_INITIAL_CLUSTER_TOKEN", "conclave-token"),
    ];
    let args = vec!["--data-dir".to_string(), "flag-dir".to_string()];
    let mut child = run_single(cwd.path(), &args, &env, client_port).await;
    let _ = child.kill();
    let _ = child.wait();
    let identity =
        std::fs::read_to_string(cwd.path().join("flag-dir/member.json")).expect("flag-dir/member.json");
    assert!(identity.contains("\"name\": \"from-etcd-env\""), "{identity}");
    assert!(
        identity.contains("\"cluster_token\": \"conclave-token\""),
        "{identity}"
    );
    assert!(!cwd.path().join("file-dir").exists());
}
