//! Debian's `etcdctl` 3.4 (package `etcd-client`, installed by `make test` and `.ci/run`)
//! run against a cluster: the tests fail, never skip, without it.

use std::io::Write;
use std::process::{Command, Stdio};

use conclave_testkit::Cluster;

/// Every member's client endpoint as etcdctl is given it: host:port, not
/// http://host:port, because for `endpoint status` etcdctl 3.4 puts the endpoint string
/// verbatim into HTTP/2's :authority, which Rust's HTTP/2 stack rejects as malformed
/// (docs/compatibility.md).
pub fn endpoints(cluster: &Cluster) -> Vec<String> {
    cluster
        .client_endpoints()
        .iter()
        .map(|e| e.trim_start_matches("http://").to_string())
        .collect()
}

/// Runs `etcdctl args` against every member (only the first for `snapshot`, which etcdctl
/// asks of one member), feeding `stdin`: (success, stdout, stderr).
pub fn etcdctl(cluster: &Cluster, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut endpoints = endpoints(cluster);
    if args.contains(&"snapshot") {
        endpoints.truncate(1);
    }
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl not found: install Debian's etcd-client package (make test does)");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("etcdctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `etcdctl args`, which must succeed: its stdout.
pub fn ok(cluster: &Cluster, args: &[&str]) -> String {
    let (success, stdout, stderr) = etcdctl(cluster, args, None);
    assert!(success, "etcdctl {args:?} failed: {stderr}\n{stdout}");
    stdout
}
