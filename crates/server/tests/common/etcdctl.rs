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

/// What one `etcdctl` run did.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `etcdctl --endpoints=<endpoints> <flags...> <args...>` (API 3, 10 s command
/// timeout, 2 s dial timeout), feeding `stdin`.
pub fn run(endpoints: &[String], flags: &[String], args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", endpoints.join(",")))
        .arg("--command-timeout=10s")
        .arg("--dial-timeout=2s")
        .args(flags)
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
    Run {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `etcdctl args` against every member (only the first for `snapshot`, which etcdctl
/// asks of one member), feeding `stdin`: (success, stdout, stderr).
pub fn etcdctl(cluster: &Cluster, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut endpoints = endpoints(cluster);
    if args.contains(&"snapshot") {
        endpoints.truncate(1);
    }
    let out = run(&endpoints, &[], args, stdin);
    (out.success, out.stdout, out.stderr)
}

/// `etcdctl args`, which must succeed: its stdout.
pub fn ok(cluster: &Cluster, args: &[&str]) -> String {
    let (success, stdout, stderr) = etcdctl(cluster, args, None);
    assert!(success, "etcdctl {args:?} failed: {stderr}\n{stdout}");
    stdout
}
