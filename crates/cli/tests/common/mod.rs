//! What the CLI's integration tests share: running `conclavectl` as a separate process
//! against given endpoints, and judging it by its output and exit code.
#![allow(dead_code)]

use std::process::{Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// The CLI binary Cargo built for these tests.
pub const CTL: &str = env!("CARGO_BIN_EXE_conclavectl");
/// A generous bound for one CLI run against a healthy cluster.
pub const RUN: Duration = Duration::from_secs(20);
/// A generous bound for a condition to hold.
pub const WAIT: Duration = Duration::from_secs(20);

/// A CLI command with `--endpoints`; CONCLAVE_ENDPOINTS from the caller's shell is removed
/// so that it cannot change what is tested.
pub fn ctl(endpoints: &str, args: &[&str]) -> Command {
    let mut command = Command::new(CTL);
    command
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .env_remove("CONCLAVE_ENDPOINTS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs the CLI to completion, feeding `stdin`.
pub async fn run_with(mut command: Command, stdin: Option<&[u8]>) -> Output {
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().expect("start conclavectl");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).await.expect("write stdin");
        drop(pipe);
    }
    tokio::time::timeout(RUN, child.wait_with_output())
        .await
        .expect("conclavectl did not finish in time")
        .expect("wait for conclavectl")
}

/// Bytes as text, for assertions and messages.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `conclavectl` against one set of endpoints.
pub struct Ctl {
    /// Every member's client URL, comma-separated.
    pub endpoints: String,
}

impl Ctl {
    /// Runs `conclavectl args`.
    pub async fn run(&self, args: &[&str]) -> Output {
        run_with(ctl(&self.endpoints, args), None).await
    }

    /// Runs it and returns standard output, asserting success.
    pub async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "conclavectl {args:?} failed ({}): {}",
            output.status,
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    /// Runs it with `stdin` and returns standard output, asserting success.
    pub async fn ok_with_stdin(&self, args: &[&str], stdin: &str) -> String {
        let output = run_with(ctl(&self.endpoints, args), Some(stdin.as_bytes())).await;
        assert!(
            output.status.success(),
            "conclavectl {args:?} failed ({}): {}",
            output.status,
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    /// Runs it and parses standard output as one JSON value.
    pub async fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args).await;
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("conclavectl {args:?}: {e}: {out}"))
    }

    /// Runs it, asserting that it fails with exit code `code`; returns standard error.
    pub async fn fails(&self, args: &[&str], code: i32) -> String {
        let output = self.run(args).await;
        assert_eq!(
            output.status.code(),
            Some(code),
            "conclavectl {args:?}: stdout {:?}, stderr {:?}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stderr)
    }

    /// Starts a long-running `conclavectl args` (watch, elect, lock) with its standard
    /// output as lines.
    pub fn spawn(&self, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
        let mut child = ctl(&self.endpoints, args).spawn().expect("start conclavectl");
        let stdout = child.stdout.take().expect("stdout");
        (child, BufReader::new(stdout).lines())
    }
}

/// Reads `n` lines, failing if they do not all come within [`WAIT`].
pub async fn read_lines(lines: &mut Lines<BufReader<ChildStdout>>, n: usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(WAIT, lines.next_line()).await {
            Ok(Ok(Some(line))) => got.push(line),
            Ok(Ok(None)) => panic!("output ended after {got:?}, expected {n} lines"),
            Ok(Err(e)) => panic!("reading output: {e}"),
            Err(_) => panic!("only {got:?} within {WAIT:?}, expected {n} lines"),
        }
    }
    got
}

/// Sends `signal` (e.g. "INT") to a child, as a terminal's Ctrl-C or a service manager would.
pub async fn signal(child: &Child, signal: &str) {
    let pid = child.id().expect("child still running");
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .await
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Waits for a child to exit and returns its exit code (None if a signal ended it).
pub async fn exit_code(child: &mut Child) -> Option<i32> {
    tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the process did not exit in time")
        .expect("wait")
        .code()
}

/// Waits for a child to exit and returns whether it succeeded.
pub async fn exits_cleanly(child: &mut Child) -> bool {
    exit_code(child).await == Some(0)
}
