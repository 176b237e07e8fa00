//! `conclavectl` with etcdctl's TLS flags against a 3-member cluster with mutual TLS on
//! the client port and peer TLS, with and without `--user`.

mod common;

use std::time::Duration;

use common::{ctl, run_with, text};
use conclave_testkit::{TlsCluster, TlsClusterOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conclavectl_uses_cacert_cert_and_key_and_names_the_flags_to_check_when_refused() {
    let bin = conclave_testkit::node_binary().expect("node binary");
    let cluster = TlsCluster::start_healthy(&bin, TlsClusterOptions::default(), Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let endpoints = cluster.client_urls().join(",");
    let ca = cluster.ca().ca_file().display().to_string();
    let me = cluster.client_identity();
    let (cert, key) = (me.cert.display().to_string(), me.key.display().to_string());
    let tls = [
        "--cacert",
        ca.as_str(),
        "--cert",
        cert.as_str(),
        "--key",
        key.as_str(),
    ];
    let with = |args: &[&str]| {
        let mut all: Vec<&str> = tls.to_vec();
        all.extend_from_slice(args);
        ctl(&endpoints, &all)
    };

    let put = run_with(with(&["put", "/ctl/tls", "secure"]), None).await;
    assert!(put.status.success(), "{}", text(&put.stderr));
    assert_eq!(text(&put.stdout), "OK\n");
    let get = run_with(with(&["get", "/ctl/tls", "--print-value-only"]), None).await;
    assert_eq!(text(&get.stdout), "secure\n", "{}", text(&get.stderr));
    let status = run_with(with(&["endpoint", "status", "--cluster", "-w", "json"]), None).await;
    assert!(status.status.success(), "{}", text(&status.stderr));
    assert_eq!(
        text(&status.stdout).matches("https://").count(),
        3,
        "{}",
        text(&status.stdout)
    );

    // Scheme-less endpoints use TLS when TLS flags are given.
    let bare = endpoints.replace("https://", "");
    let mut all: Vec<&str> = tls.to_vec();
    all.extend_from_slice(&["get", "/ctl/tls", "--print-value-only"]);
    let get = run_with(ctl(&bare, &all), None).await;
    assert_eq!(text(&get.stdout), "secure\n", "{}", text(&get.stderr));

    // The same flags through etcdctl's environment variables.
    let mut command = ctl(&endpoints, &["get", "/ctl/tls", "--print-value-only"]);
    command
        .env("ETCDCTL_CACERT", &ca)
        .env("ETCDCTL_CERT", &cert)
        .env("ETCDCTL_KEY", &key);
    let get = run_with(command, None).await;
    assert_eq!(text(&get.stdout), "secure\n", "{}", text(&get.stderr));

    // Another CA: exit 3, and the message says what failed and which flags to check.
    let foreign = cluster.foreign_ca().ca_file().display().to_string();
    let refused = run_with(
        ctl(
            &endpoints,
            &[
                "--cacert",
                foreign.as_str(),
                "--cert",
                cert.as_str(),
                "--key",
                key.as_str(),
                "--command-timeout=2s",
                "get",
                "/ctl/tls",
            ],
        ),
        None,
    )
    .await;
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused.stderr));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("UnknownIssuer") && stderr.contains("--cacert"),
        "{stderr}"
    );

    // A missing CA file is named with its flag, before anything is dialled.
    let missing = run_with(
        ctl(&endpoints, &["--cacert", "/nonexistent/ca.pem", "get", "k"]),
        None,
    )
    .await;
    assert_eq!(missing.status.code(), Some(1));
    let stderr = text(&missing.stderr);
    assert!(stderr.contains("--cacert /nonexistent/ca.pem"), "{stderr}");

    // --cert without --key is a usage error.
    let usage = run_with(ctl(&endpoints, &["--cert", cert.as_str(), "get", "k"]), None).await;
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage.stderr));

    // Auth over the same TLS flags: --user names the user, whatever the certificate's
    // Common Name ("root", which names root under --client-cert-auth).
    for step in [
        &["user", "add", "root:rootpw"][..],
        &["role", "add", "root"],
        &["user", "grant-role", "root", "root"],
        &["role", "add", "app"],
        &[
            "role",
            "grant-permission",
            "app",
            "--prefix=true",
            "readwrite",
            "/app/",
        ],
        &["user", "add", "alice:alicepw"],
        &["user", "grant-role", "alice", "app"],
        &["auth", "enable"],
    ] {
        let out = run_with(with(step), None).await;
        assert!(out.status.success(), "{step:?}: {}", text(&out.stderr));
    }
    let put = run_with(with(&["--user", "alice:alicepw", "put", "/app/tls", "1"]), None).await;
    assert!(put.status.success(), "{}", text(&put.stderr));
    let denied = run_with(with(&["--user", "alice:alicepw", "put", "/ctl/tls", "2"]), None).await;
    assert!(!denied.status.success());
    assert!(
        text(&denied.stderr).contains("etcdserver: permission denied"),
        "{}",
        text(&denied.stderr)
    );
    let wrong = run_with(with(&["--user", "alice:nope", "get", "/app/tls"]), None).await;
    assert!(!wrong.status.success());
    assert!(
        text(&wrong.stderr).contains("authentication failed, invalid user ID or password"),
        "{}",
        text(&wrong.stderr)
    );
    // The certificate alone is root: it may read what alice may not write.
    let get = run_with(with(&["get", "/ctl/tls", "--print-value-only"]), None).await;
    assert_eq!(text(&get.stdout), "secure\n", "{}", text(&get.stderr));
}
