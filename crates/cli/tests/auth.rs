//! `user`, `role`, `auth` and `--user` against real members: the same steps run with
//! Debian's etcdctl 3.4 on one cluster and with conclavectl on another must print the
//! same lines, fail with the same errors and exit with the same codes.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{ctl, run_with, text, Ctl, CTL, RUN, WAIT};
use conclave_testkit::{leader_index, node_binary, Cluster, ClusterOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

fn start() -> Cluster {
    let bin = node_binary().expect("the conclave binary (cargo build --release -p conclave-server)");
    let options = ClusterOptions {
        size: 1,
        heartbeat_ms: Some(50),
        election_timeout_ms: Some(400),
        extra_args: ["--request-timeout", "3000", "--bcrypt-cost", "4"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..ClusterOptions::default()
    };
    Cluster::start(&bin, options).expect("start cluster")
}

/// One step: the arguments after `--endpoints`, and standard input.
type Step = (&'static [&'static str], Option<&'static str>);

/// An etcdctl 3.4 session over every user, role and auth command, with the refusals a
/// user meets (existing names, what was not granted, denied reads, wrong passwords).
const STEPS: &[Step] = &[
    (&["user", "add", "root:rootpw"], None),
    (&["user", "add", "root:x"], None),
    (&["user", "add", "alice", "--new-user-password=alicepw"], None),
    (&["user", "add", "nopw", "--no-password"], None),
    (&["user", "add", "bob", "--interactive=false"], Some("bobpw\n")),
    (&["role", "add", "app"], None),
    (&["role", "add", "app"], None),
    (
        &[
            "role",
            "grant-permission",
            "app",
            "--prefix=true",
            "readwrite",
            "/app/",
        ],
        None,
    ),
    (&["role", "grant-permission", "app", "read", "/k1"], None),
    (&["role", "grant-permission", "app", "write", "/a", "/b"], None),
    (
        &["role", "grant-permission", "app", "--from-key", "readwrite", "/z"],
        None,
    ),
    (&["role", "get", "app"], None),
    (&["role", "list"], None),
    (&["user", "grant-role", "alice", "app"], None),
    (&["user", "get", "alice"], None),
    (&["user", "get", "alice", "--detail"], None),
    (&["user", "list"], None),
    (&["get", "/x"], None),
    (&["auth", "enable"], None),
    (&["get", "/x"], None),
    (&["--user", "root:rootpw", "user", "get", "root"], None),
    (&["--user", "alice:alicepw", "put", "/app/k", "v"], None),
    (&["--user", "alice:alicepw", "get", "/app/k"], None),
    (&["--user", "alice:alicepw", "get", "/x"], None),
    (&["--user", "alice", "--password=alicepw", "put", "/x", "1"], None),
    (&["--user", "alice:wrong", "get", "/app/k"], None),
    (&["--user", "bob:bobpw", "user", "get", "bob"], None),
    (&["--user", "alice:alicepw", "user", "list"], None),
    (
        &["--user", "root:rootpw", "role", "revoke-permission", "app", "/k1"],
        None,
    ),
    (
        &["--user", "root:rootpw", "role", "revoke-permission", "app", "/k1"],
        None,
    ),
    (
        &[
            "--user",
            "root:rootpw",
            "role",
            "revoke-permission",
            "app",
            "--prefix=true",
            "/app/",
        ],
        None,
    ),
    (
        &[
            "--user",
            "root:rootpw",
            "role",
            "revoke-permission",
            "app",
            "/a",
            "/b",
        ],
        None,
    ),
    (
        &[
            "--user",
            "root:rootpw",
            "role",
            "revoke-permission",
            "app",
            "--from-key",
            "/z",
        ],
        None,
    ),
    (&["--user", "root:rootpw", "role", "get", "app"], None),
    (
        &["--user", "root:rootpw", "user", "revoke-role", "alice", "app"],
        None,
    ),
    (
        &["--user", "root:rootpw", "user", "revoke-role", "alice", "app"],
        None,
    ),
    (&["--user", "root:rootpw", "user", "get", "nobody"], None),
    (
        &[
            "--user",
            "root:rootpw",
            "user",
            "passwd",
            "alice",
            "--interactive=false",
        ],
        Some("newpw\n"),
    ),
    (&["--user", "alice:alicepw", "get", "/app/k"], None),
    (&["--user", "alice:newpw", "user", "get", "alice"], None),
    (&["--user", "root:rootpw", "user", "delete", "nopw"], None),
    (&["--user", "root:rootpw", "role", "delete", "app"], None),
    (&["--user", "root:rootpw", "role", "get", "app"], None),
    (&["--user", "root:rootpw", "role", "get", "root"], None),
    (&["--user", "root:rootpw", "user", "list"], None),
    (&["--user", "root:rootpw", "auth", "disable"], None),
    (&["auth", "disable"], None),
    (&["get", "/app/k", "--print-value-only"], None),
];

/// What a step showed: its command, standard output, the `Error:` lines of standard
/// error (etcdctl also logs its retries there, in JSON), and whether it succeeded.
fn transcript_line(args: &[&str], output: &std::process::Output) -> String {
    let errors: Vec<String> = text(&output.stderr)
        .lines()
        .filter(|line| line.starts_with("Error:"))
        .map(str::to_string)
        .collect();
    format!(
        "$ {}\n{}{}[exit {:?}]\n",
        args.join(" "),
        text(&output.stdout),
        errors.iter().map(|e| format!("{e}\n")).collect::<String>(),
        output.status.code()
    )
}

async fn etcdctl_transcript(endpoint: &str) -> String {
    let mut transcript = String::new();
    for (args, stdin) in STEPS {
        let mut command = Command::new("etcdctl");
        command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(*args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = run_with(command, stdin.map(str::as_bytes)).await;
        transcript.push_str(&transcript_line(args, &output));
    }
    transcript
}

async fn conclavectl_transcript(endpoint: &str) -> String {
    let mut transcript = String::new();
    for (args, stdin) in STEPS {
        let output = run_with(ctl(endpoint, args), stdin.map(str::as_bytes)).await;
        transcript.push_str(&transcript_line(args, &output));
    }
    transcript
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_role_and_auth_commands_print_what_etcdctl_prints() {
    let for_etcdctl = start();
    let for_conclavectl = start();
    for cluster in [&for_etcdctl, &for_conclavectl] {
        leader_index(cluster, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    }
    let expected = etcdctl_transcript(&for_etcdctl.client_endpoints()[0]).await;
    let got = conclavectl_transcript(&for_conclavectl.client_endpoints()[0]).await;
    // The session did what it says (so an etcdctl that fails everything cannot pass).
    for line in [
        "User root created",
        "Error: etcdserver: user name already exists",
        "Authentication Enabled",
        "Role app\nKV Read:\n\t[/app/, /app0) (prefix /app/)\n\t/k1\n\t[/z, <open ended>\nKV Write:\n\t[/a, /b) (prefix /a)\n\t[/app/, /app0) (prefix /app/)\n\t[/z, <open ended>\n",
        "Role app is granted to user alice",
        "Error: etcdserver: permission denied",
        "Error: etcdserver: authentication failed, invalid user ID or password",
        "Permission of range [/z, <open ended> is revoked from role app",
        "Password updated",
        "Authentication Disabled",
    ] {
        assert!(expected.contains(line), "etcdctl's session lacks {line:?}:\n{expected}");
    }
    if got != expected {
        let first = got
            .lines()
            .zip(expected.lines())
            .position(|(g, e)| g != e)
            .unwrap_or(0);
        panic!(
            "conclavectl differs from etcdctl from line {first}\n--- etcdctl\n{expected}\n--- conclavectl\n{got}"
        );
    }
}

/// Runs `conclavectl args` on a pseudo-terminal (util-linux `script`), answering each
/// prompt once it shows; returns whether it succeeded and everything the terminal showed.
async fn on_terminal(endpoint: &str, args: &[&str], answers: &[(&str, &str)]) -> (bool, String) {
    let command_line = std::iter::once(CTL.to_string())
        .chain(["--endpoints".to_string(), endpoint.to_string()])
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qefc", &command_line, "/dev/null"])
        .env_remove("CONCLAVE_ENDPOINTS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("util-linux script");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut shown = String::new();
    let mut buf = [0u8; 512];
    for (prompt, answer) in answers {
        // Answer only once the prompt is on screen: echo is off by then.
        let deadline = tokio::time::Instant::now() + RUN;
        while !shown.contains(prompt) {
            let n = tokio::time::timeout_at(deadline, stdout.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no prompt {prompt:?} within {RUN:?}; terminal showed {shown:?}"))
                .expect("read the terminal");
            assert!(n > 0, "the terminal closed before {prompt:?}: {shown:?}");
            shown.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        shown = shown.replacen(prompt, &format!("<{prompt}>"), 1);
        stdin
            .write_all(format!("{answer}\n").as_bytes())
            .await
            .expect("type the answer");
    }
    let mut rest = Vec::new();
    tokio::time::timeout(RUN, stdout.read_to_end(&mut rest))
        .await
        .expect("conclavectl finished")
        .expect("read the terminal");
    shown.push_str(&String::from_utf8_lossy(&rest));
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("script exits")
        .expect("script");
    (status.success(), shown)
}

/// [`on_terminal`] for a command that must succeed.
async fn ok_on_terminal(endpoint: &str, args: &[&str], answers: &[(&str, &str)]) -> String {
    let (success, shown) = on_terminal(endpoint, args, answers).await;
    assert!(success, "{args:?} on a terminal failed: {shown}");
    shown
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_asked_for_on_the_terminal_without_echo() {
    let cluster = start();
    leader_index(&cluster, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    let endpoint = cluster.client_endpoints()[0].clone();
    let admin = Ctl {
        endpoints: endpoint.clone(),
    };

    let shown = ok_on_terminal(
        &endpoint,
        &["user", "add", "root"],
        &[
            ("Password of root: ", "s3cret-root"),
            ("Type password of root again for confirmation: ", "s3cret-root"),
        ],
    )
    .await;
    assert!(shown.contains("User root created"), "{shown}");
    assert!(!shown.contains("s3cret-root"), "the password was echoed: {shown}");
    assert_eq!(admin.ok(&["auth", "enable"]).await, "Authentication Enabled\n");

    // --user without a password asks for it.
    let shown = ok_on_terminal(
        &endpoint,
        &["--user", "root", "user", "list"],
        &[("Password: ", "s3cret-root")],
    )
    .await;
    assert!(shown.contains("root\r\n"), "{shown}");
    assert!(!shown.contains("s3cret-root"), "the password was echoed: {shown}");

    // Two different answers are refused, as etcdctl refuses them.
    let (success, mismatch) = on_terminal(
        &endpoint,
        &["--user", "root:s3cret-root", "user", "add", "carol"],
        &[
            ("Password of carol: ", "one"),
            ("Type password of carol again for confirmation: ", "two"),
        ],
    )
    .await;
    assert!(!success, "{mismatch}");
    assert!(
        mismatch.contains("Error: given passwords are different"),
        "{mismatch}"
    );

    // Without a terminal, conclavectl says how to give the password instead.
    let output = run_with(ctl(&endpoint, &["--user", "root", "user", "list"]), None).await;
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("give it as --user NAME:PASSWORD or with --password"),
        "{}",
        text(&output.stderr)
    );
}
