//! Node and Cluster process handling, with a shell script standing in for `conclave`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use conclave_testkit::{wait_until, Cluster, ClusterOptions, Error, Node, NodeSpec};

const DEADLINE: Duration = Duration::from_secs(10);

/// Prints its arguments, then idles until SIGTERM, on which it exits with status 3.
/// The trap comes first, so once the first line is logged SIGTERM is handled.
const FAKE_NODE: &str = r#"#!/bin/sh
trap 'echo "fake node got SIGTERM"; exit 3' TERM
echo "fake node args: $*"
echo "fake node says hello on stderr" >&2
while :; do sleep 0.02; done
"#;

/// Ignores SIGTERM: only SIGKILL stops it.
const STUBBORN_NODE: &str = r#"#!/bin/sh
trap '' TERM
echo "stubborn node up"
while :; do sleep 0.02; done
"#;

fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn spec(dir: &Path) -> NodeSpec {
    NodeSpec {
        name: "n1".into(),
        client_url: "http://127.0.0.1:1".into(),
        peer_listen_addr: "127.0.0.11:2".parse().unwrap(),
        advertise_peer_url: "http://127.0.0.1:3".into(),
        data_dir: dir.join("n1"),
        log_path: dir.join("logs/n1.log"),
        extra_args: vec!["--snapshot-count".into(), "7".into()],
    }
}

fn alive(pid: u32) -> bool {
    // Signal 0 checks existence; a reaped child's pid no longer exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the parenthesised command name.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

async fn wait_for_log(node: &Node, needle: &str, times: usize) {
    let what = format!("{} to log {needle:?} {times} time(s)", node.name());
    wait_until(&what, DEADLINE, || async {
        (node.log_tail(1000).matches(needle).count() >= times).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_tail(50)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_logs_to_an_appended_file_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::new(script(dir.path(), "fake", FAKE_NODE), spec(dir.path()));
    assert!(!node.is_running() && node.pid().is_none());

    node.start().unwrap();
    assert!(node.is_running());
    assert!(matches!(node.start(), Err(Error::AlreadyRunning { .. })));
    wait_for_log(&node, "fake node args: --name n1 --data-dir", 1).await;
    let log = node.log_tail(10);
    assert!(log.contains("--listen-peer-urls http://127.0.0.11:2"), "{log}");
    assert!(
        log.contains("--initial-advertise-peer-urls http://127.0.0.1:3 --snapshot-count 7"),
        "{log}"
    );
    assert!(log.contains("hello on stderr"), "{log}");

    let status = node.terminate().unwrap();
    assert_eq!(status.code(), Some(3));
    assert!(!node.is_running());
    assert_eq!(node.last_exit_status().and_then(|s| s.code()), Some(3));
    assert!(node.log_tail(5).contains("fake node got SIGTERM"));
    assert!(matches!(node.terminate(), Err(Error::NotRunning { .. })));

    node.start().unwrap();
    wait_for_log(&node, "fake node args", 2).await;
    node.kill().unwrap();
    assert!(!node.is_running());
    assert_eq!(
        node.last_exit_status().and_then(|s| s.signal()),
        Some(libc::SIGKILL)
    );
    node.kill().unwrap(); // killing a dead node is a no-op
    let log = fs::read_to_string(dir.path().join("logs/n1.log")).unwrap();
    assert_eq!(log.matches("--- testkit: start #").count(), 2, "{log}");
    assert!(node.log_tail(1).contains("killed n1"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_stops_the_process_and_resume_continues_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::new(script(dir.path(), "fake", FAKE_NODE), spec(dir.path()));
    node.start().unwrap();
    wait_for_log(&node, "fake node args", 1).await;
    let pid = node.pid().unwrap();
    node.pause().unwrap();
    assert!(node.is_paused() && node.is_running());
    wait_until("the node to be stopped", DEADLINE, || async {
        (process_state(pid) == Some('T')).then_some(())
    })
    .await
    .unwrap();
    node.resume().unwrap();
    assert!(!node.is_paused());
    wait_until("the node to run again", DEADLINE, || async {
        process_state(pid).filter(|state| *state != 'T')
    })
    .await
    .unwrap();
    // A paused node still terminates gracefully.
    node.pause().unwrap();
    let status = node.terminate().unwrap();
    assert_eq!(status.code(), Some(3), "{status:?}\n{}", node.log_tail(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn terminate_kills_a_node_that_ignores_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::new(script(dir.path(), "stubborn", STUBBORN_NODE), spec(dir.path()));
    node.start().unwrap();
    wait_for_log(&node, "stubborn node up", 1).await;
    let pid = node.pid().unwrap();
    let error = node.terminate_within(Duration::from_millis(300)).unwrap_err();
    assert!(matches!(error, Error::ShutdownTimeout { .. }), "{error}");
    assert!(error.to_string().contains("stubborn node up"), "{error}");
    assert!(!node.is_running() && !alive(pid));
}

#[test]
fn dropping_a_node_kills_its_process() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::new(script(dir.path(), "fake", FAKE_NODE), spec(dir.path()));
    node.start().unwrap();
    let pid = node.pid().unwrap();
    assert!(alive(pid));
    drop(node);
    assert!(!alive(pid), "pid {pid} survived its handle");
}

#[test]
fn a_missing_binary_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::new(dir.path().join("no-such-conclave"), spec(dir.path()));
    let error = node.start().unwrap_err().to_string();
    assert!(
        error.contains("starting n1 from") && error.contains("no-such-conclave"),
        "{error}"
    );
}

/// The flag value following `flag` in a fake node's logged command line.
fn flag(log: &str, flag: &str) -> String {
    let line = log
        .lines()
        .rev()
        .find(|l| l.starts_with("fake node args:"))
        .unwrap();
    let mut words = line.split_whitespace();
    words
        .find(|w| *w == flag)
        .unwrap_or_else(|| panic!("{flag} missing in {line}"));
    words.next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_wires_names_ports_proxy_and_membership() {
    let scripts = tempfile::tempdir().unwrap();
    let bin = script(scripts.path(), "fake", FAKE_NODE);
    let options = ClusterOptions {
        snapshot_count: Some(100),
        heartbeat_ms: Some(50),
        election_timeout_ms: Some(500),
        extra_args: vec!["--flag-for-all".into(), "yes".into()],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(&bin, options).unwrap();
    let dir = cluster.dir().to_path_buf();
    assert_eq!(cluster.size(), 3);
    for node in cluster.nodes() {
        wait_for_log(&node, "fake node args", 1).await;
    }

    let proxy_urls: Vec<String> = (1..=3)
        .map(|i| format!("http://{}", cluster.proxy().listen_addr(i).unwrap()))
        .collect();
    let expected_initial = format!("n1={},n2={},n3={}", proxy_urls[0], proxy_urls[1], proxy_urls[2]);
    let endpoints = cluster.client_endpoints();
    for i in 1..=3 {
        let node = cluster.node(i);
        let log = node.log_tail(20);
        assert_eq!(flag(&log, "--name"), format!("n{i}"));
        assert_eq!(flag(&log, "--listen-client-urls"), endpoints[i - 1]);
        assert_eq!(flag(&log, "--advertise-client-urls"), endpoints[i - 1]);
        assert!(flag(&log, "--listen-peer-urls").starts_with(&format!("http://127.0.0.{}:", 10 + i)));
        assert_eq!(flag(&log, "--initial-advertise-peer-urls"), proxy_urls[i - 1]);
        assert_eq!(flag(&log, "--initial-cluster"), expected_initial);
        assert_eq!(flag(&log, "--initial-cluster-state"), "new");
        assert_eq!(flag(&log, "--initial-cluster-token"), cluster.token());
        assert_eq!(
            flag(&log, "--data-dir"),
            dir.join(format!("n{i}")).display().to_string()
        );
        assert_eq!(flag(&log, "--snapshot-count"), "100");
        assert_eq!(flag(&log, "--heartbeat-interval"), "50");
        assert_eq!(flag(&log, "--election-timeout"), "500");
        assert_eq!(flag(&log, "--flag-for-all"), "yes");
    }

    cluster.kill(2).unwrap();
    assert!(!cluster.node(2).is_running());
    assert_eq!(
        cluster.running_client_endpoints(),
        vec![endpoints[0].clone(), endpoints[2].clone()]
    );
    cluster.restart(2).unwrap();
    wait_for_log(&cluster.node(2), "fake node args", 2).await;
    assert_eq!(cluster.terminate(3).unwrap().code(), Some(3));
    assert!(matches!(
        cluster.kill(9),
        Err(Error::NoSuchNode { index: 9, count: 3 })
    ));

    let joined = cluster.add_node_joining(&[]).unwrap();
    assert_eq!(joined, 4);
    let n4 = cluster.node(4);
    wait_for_log(&n4, "fake node args", 1).await;
    let log = n4.log_tail(20);
    assert_eq!(flag(&log, "--join"), format!("{},{}", endpoints[0], endpoints[1]));
    assert!(!log.contains("--initial-cluster "), "{log}");
    assert_eq!(flag(&log, "--snapshot-count"), "100");
    assert!(flag(&log, "--listen-peer-urls").starts_with("http://127.0.0.14:"));
    assert!(cluster.proxy().listen_addr(4).is_some());

    let dump = cluster.log_dump();
    for needle in [
        "===== n1 (running",
        "===== n3 (not running",
        "===== n4 (running",
        "fake node args",
    ] {
        assert!(dump.contains(needle), "{needle:?} missing in:\n{dump}");
    }

    let pids: Vec<u32> = cluster.nodes().iter().filter_map(|n| n.pid()).collect();
    assert_eq!(pids.len(), 3);
    let kept = std::env::var_os("CONCLAVE_KEEP_TEST_DIRS").is_some();
    drop(cluster);
    for pid in pids {
        assert!(!alive(pid), "pid {pid} survived the cluster");
    }
    if !kept {
        assert!(!dir.exists(), "{} not removed", dir.display());
    }
}

#[test]
fn a_cluster_needs_a_runtime_for_its_proxy() {
    let error = Cluster::start(Path::new("/bin/true"), ClusterOptions::default()).unwrap_err();
    assert!(matches!(error, Error::NoRuntime), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_index_times_out_showing_what_each_node_answered() {
    let scripts = tempfile::tempdir().unwrap();
    let bin = script(scripts.path(), "fake", FAKE_NODE);
    let cluster = Cluster::start(&bin, ClusterOptions::with_size(2)).unwrap();
    // The fake nodes serve no gRPC, so no leader can ever be found.
    let error = conclave_testkit::leader_index(&cluster, Duration::from_millis(2500))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("agree on a leader") && error.contains("2.5s"),
        "{error}"
    );
    assert!(error.contains("n1: ") && error.contains("n2: "), "{error}");
}

/// Set in the child run of `nodes_die_with_an_aborted_test_binary`.
const ABORT_CHILD_ENV: &str = "CONCLAVE_TESTKIT_ABORT_CHILD_DIR";

#[test]
fn nodes_die_with_an_aborted_test_binary() {
    if let Some(dir) = std::env::var_os(ABORT_CHILD_ENV) {
        // Child role: start a node, then die without unwinding, so no Drop runs.
        let dir = PathBuf::from(dir);
        let node = Node::new(script(&dir, "fake", FAKE_NODE), spec(&dir));
        node.start().unwrap();
        println!("NODE PID {}", node.pid().unwrap());
        std::process::abort();
    }

    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "nodes_die_with_an_aborted_test_binary", "--nocapture"])
        .env(ABORT_CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pid: u32 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("NODE PID "))
        .unwrap_or_else(|| panic!("child printed no pid: {stdout}"))
        .trim()
        .parse()
        .unwrap();
    let deadline = std::time::Instant::now() + DEADLINE;
    // Gone, or a zombie waiting for a (possibly absent) init to reap it: either way dead.
    while !matches!(process_state(pid), None | Some('Z')) {
        assert!(
            std::time::Instant::now() < deadline,
            "node pid {pid} outlived its aborted test binary"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
