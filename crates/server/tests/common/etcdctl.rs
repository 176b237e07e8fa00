//! Debian's `etcdctl` 3.4 (package `etcd-client`, installed by `make test` and `.ci/run`)
//! run against a cluster: the tests fail, never skip, without it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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

/// A long-running etcdctl (watch, elect, lock) whose stdout lines arrive on a channel;
/// killed when dropped.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    /// Starts `etcdctl --endpoints=<endpoints> <flags...> <args...>`.
    pub fn start(endpoints: &[String], flags: &[String], args: &[&str]) -> Running {
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", endpoints.join(",")))
            .args(flags)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcdctl");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Running { child, lines }
    }

    /// The next `n` lines, waiting at most `timeout` for each.
    pub fn lines(&self, n: usize, timeout: Duration) -> Vec<String> {
        (0..n)
            .map(|_| {
                self.lines
                    .recv_timeout(timeout)
                    .expect("etcdctl printed nothing in time")
            })
            .collect()
    }

    /// Ctrl-C: etcdctl resigns / unlocks and revokes its session lease, then exits.
    pub fn interrupt(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill -INT");
        assert!(sent.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("etcdctl did not exit after SIGINT");
    }

    /// Whether nothing is printed within `quiet`.
    pub fn silent_for(&self, quiet: Duration) -> bool {
        self.lines.recv_timeout(quiet).is_err()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
