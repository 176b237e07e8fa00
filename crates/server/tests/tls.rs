//! A TLS node against real clients: Debian's `etcdctl` 3.4 with --cacert/--cert/--key,
//! mutual TLS refusing clients without a CA-signed certificate at the handshake,
//! certificates rotated on disk without a restart, --auto-tls, and start errors that
//! name the file and the flag.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::tls::{etcdctl, etcdctl_tls, presented_common_name};
use common::*;
use conclave_testkit::{
    unique_port, wait_until, wait_until_ok, Process, TestCa, TlsCluster, TlsClusterOptions,
};

const HEALTHY: Duration = Duration::from_secs(30);

fn loopback_port() -> u16 {
    unique_port(IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("port")
}

fn single(extra: &[String]) -> TlsCluster {
    let mut options = TlsClusterOptions {
        size: 1,
        ..TlsClusterOptions::default()
    };
    options.extra_args.extend(extra.iter().cloned());
    TlsCluster::start(bin(), options).expect("start a TLS node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_with_cacert_cert_and_key_reads_and_writes_over_mutual_tls() {
    let metrics_port = loopback_port();
    let node = single(&[
        "--listen-metrics-urls".into(),
        format!("http://127.0.0.1:{metrics_port}"),
    ]);
    node.wait_healthy(1, HEALTHY)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", node.log_dump()));
    let endpoints = node.client_urls();
    let tls = etcdctl_tls(node.ca().ca_file(), Some(node.client_identity()));

    let put = etcdctl(&endpoints, &tls, &["put", "/tls/a", "1"]);
    assert!(put.success, "{put:?}");
    assert_eq!(put.stdout, "OK\n");
    let get = etcdctl(&endpoints, &tls, &["get", "/tls/a"]);
    assert_eq!(get.stdout, "/tls/a\n1\n", "{get:?}");
    let status = etcdctl(&endpoints, &tls, &["endpoint", "status", "-w", "json"]);
    assert!(
        status.success && status.stdout.contains(&endpoints[0]),
        "{status:?}"
    );
    // Scheme-less endpoints use TLS too once TLS flags are given (etcdctl's rule).
    let bare: Vec<String> = endpoints
        .iter()
        .map(|e| e.trim_start_matches("https://").to_string())
        .collect();
    let get = etcdctl(&bare, &tls, &["get", "/tls/a", "--print-value-only"]);
    assert_eq!(get.stdout, "1\n", "{get:?}");

    // The metrics listener stays plain HTTP, as etcd's --listen-metrics-urls.
    let (code, body) = scrape::http_get(&format!("127.0.0.1:{metrics_port}"), "/metrics")
        .await
        .expect("plain /metrics next to a TLS client port");
    assert_eq!(code, 200);
    assert!(body.contains("etcd_server_has_leader"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_a_certificate_from_the_trusted_ca_is_refused_at_the_handshake() {
    let node = single(&[]);
    node.wait_healthy(1, HEALTHY)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", node.log_dump()));
    let endpoints = node.client_urls();
    let ca = node.ca().ca_file();

    let anonymous = etcdctl(&endpoints, &etcdctl_tls(ca, None), &["get", "/x"]);
    assert!(
        !anonymous.success,
        "a client without a certificate was served: {anonymous:?}"
    );
    let foreign = node
        .foreign_ca()
        .issue("foreign-client", "root")
        .expect("foreign cert");
    let impostor = etcdctl(&endpoints, &etcdctl_tls(ca, Some(&foreign)), &["get", "/x"]);
    assert!(
        !impostor.success,
        "a client with another CA's certificate was served: {impostor:?}"
    );
    let plain: Vec<String> = endpoints
        .iter()
        .map(|e| e.replace("https://", "http://"))
        .collect();
    let cleartext = etcdctl(&plain, &["--insecure-transport=true".into()], &["get", "/x"]);
    assert!(!cleartext.success, "a plaintext client was served: {cleartext:?}");

    // The refusals happened at the handshake, each logged with its reason.
    let member = node.member(1).expect("n1");
    wait_until("both refusals in the node's log", Duration::from_secs(10), || {
        let log = member.process.log_tail(200);
        async move {
            (log.contains("rejected TLS connection")
                && log.contains("peer sent no certificates")
                && log.contains("UnknownIssuer"))
            .then_some(())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_dump()));
    let served = etcdctl(
        &endpoints,
        &etcdctl_tls(ca, Some(node.client_identity())),
        &["get", "/x"],
    );
    assert!(served.success, "{served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificate_files_are_presented_on_new_handshakes_without_a_restart() {
    let node = single(&[]);
    node.wait_healthy(1, HEALTHY)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", node.log_dump()));
    let member = node.member(1).expect("n1");
    let pid = member.process.pid();
    let (ca, me) = (node.ca().ca_file(), node.client_identity());
    assert_eq!(
        presented_common_name(&member.client_url, ca, me).await,
        Ok("n1".to_string())
    );

    node.ca()
        .reissue(&member.client_files, "n1-rotated")
        .expect("write the new certificate and key");
    wait_until_ok(
        "the rotated certificate on a new handshake",
        Duration::from_secs(10),
        || {
            let url = member.client_url.clone();
            async move {
                match presented_common_name(&url, ca, me).await? {
                    cn if cn == "n1-rotated" => Ok(()),
                    cn => Err(format!("still presents {cn}")),
                }
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_dump()));
    assert_eq!(member.process.pid(), pid, "the node was not restarted");
    let put = etcdctl(
        &node.client_urls(),
        &etcdctl_tls(ca, Some(me)),
        &["put", "/after", "rotation"],
    );
    assert!(put.success, "{put:?}");

    // A half-written rotation (a certificate whose key is not there yet) keeps the
    // previous pair in use instead of breaking new handshakes.
    let (cert, _key) = node.ca().leaf_pem("n1-half").expect("leaf");
    std::fs::write(&member.client_files.cert, cert).expect("write the certificate alone");
    assert_eq!(
        presented_common_name(&member.client_url, ca, me).await,
        Ok("n1-rotated".to_string())
    );
    assert!(
        member.process.log_tail(50).contains("cannot be used (yet)"),
        "{}",
        node.log_dump()
    );
}

/// Runs the node with `args` until it exits (it must, within 20 s): exit success and
/// stderr.
async fn start_and_exit(args: &[String]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("node.log");
    let mut all = vec![
        "--data-dir".to_string(),
        dir.path().join("data").display().to_string(),
    ];
    all.extend(args.iter().cloned());
    let process = Process::new("n1", bin(), all, &log);
    process.start().expect("start");
    let exited = wait_until("the node to exit", Duration::from_secs(20), || {
        let running = process.is_running();
        async move { (!running).then_some(()) }
    })
    .await;
    // The whole log: the error comes before a backtrace (testkit sets RUST_BACKTRACE).
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(exited.is_ok(), "the node did not refuse to start:\n{output}");
    let success = process.last_exit_status().is_some_and(|s| s.success());
    (success, output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_errors_name_the_file_and_the_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new(dir.path(), "main").expect("CA");
    let server = ca.issue("server", "n1").expect("server");
    let other = ca.issue("other", "n1").expect("other");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a PEM file\n").expect("write");
    let path = |p: &std::path::Path| p.display().to_string();
    let client = |cert: String, key: String| {
        vec![
            "--listen-client-urls".to_string(),
            format!("https://127.0.0.1:{}", loopback_port()),
            "--listen-peer-urls".into(),
            format!("http://127.0.0.1:{}", loopback_port()),
            "--cert-file".into(),
            cert,
            "--key-file".into(),
            key,
        ]
    };
    let missing = dir.path().join("missing.pem");
    let cases: Vec<(Vec<String>, Vec<String>)> = vec![
        (
            client(path(&missing), path(&server.key)),
            vec!["--cert-file".into(), path(&missing), "cannot read".into()],
        ),
        (
            client(path(&server.cert), path(&other.key)),
            vec![
                "--key-file".into(),
                path(&other.key),
                "does not match".into(),
                "--cert-file".into(),
                path(&server.cert),
            ],
        ),
        (
            client(path(&server.cert), path(&garbage)),
            vec!["--key-file".into(), path(&garbage), "no PEM private key".into()],
        ),
        (
            client(path(&garbage), path(&server.key)),
            vec!["--cert-file".into(), path(&garbage), "no PEM certificate".into()],
        ),
        (
            vec![
                "--listen-peer-urls".into(),
                format!("https://127.0.0.1:{}", loopback_port()),
                "--listen-client-urls".into(),
                format!("http://127.0.0.1:{}", loopback_port()),
                "--peer-cert-file".into(),
                path(&server.cert),
                "--peer-key-file".into(),
                path(&server.key),
                "--peer-trusted-ca-file".into(),
                path(&missing),
            ],
            vec!["--peer-trusted-ca-file".into(), path(&missing)],
        ),
        (
            vec![
                "--listen-client-urls".into(),
                format!("https://127.0.0.1:{}", loopback_port()),
                "--listen-peer-urls".into(),
                format!("http://127.0.0.1:{}", loopback_port()),
            ],
            vec![
                "--listen-client-urls".into(),
                "--cert-file".into(),
                "--auto-tls".into(),
            ],
        ),
    ];
    // Unreadable (not only missing): file permissions do not stop root, so this case runs
    // only where they apply.
    let locked = dir.path().join("locked-key.pem");
    std::fs::copy(&server.key, &locked).expect("copy");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    }
    let unreadable = std::fs::read(&locked).is_err().then(|| {
        (
            client(path(&server.cert), path(&locked)),
            vec!["--key-file".to_string(), path(&locked), "cannot read".into()],
        )
    });
    for (args, expected) in cases.into_iter().chain(unreadable) {
        let (success, output) = start_and_exit(&args).await;
        assert!(!success, "started with {args:?}");
        for text in &expected {
            assert!(
                output.contains(text.as_str()),
                "{text:?} missing for {args:?}:\n{output}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_tls_serves_a_self_signed_certificate_to_clients_that_skip_verification() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("https://127.0.0.1:{}", loopback_port());
    let args = vec![
        "--data-dir".to_string(),
        dir.path().join("data").display().to_string(),
        "--listen-client-urls".into(),
        url.clone(),
        "--advertise-client-urls".into(),
        url.clone(),
        "--listen-peer-urls".into(),
        format!("http://127.0.0.1:{}", loopback_port()),
        "--auto-tls".into(),
    ];
    let process = Process::new("n1", bin(), args, dir.path().join("node.log"));
    process.start().expect("start");
    let endpoints = vec![url];
    // etcdctl 3.4 sets up TLS without a CA only with --insecure-transport=false.
    let skip = vec![
        "--insecure-transport=false".to_string(),
        "--insecure-skip-tls-verify".to_string(),
    ];
    wait_until_ok("an answer over --auto-tls", HEALTHY, || {
        let run = etcdctl(&endpoints, &skip, &["put", "/auto", "tls"]);
        async move {
            if run.success {
                Ok(())
            } else {
                Err(run.stderr)
            }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", process.log_tail(40)));
    let generated = dir.path().join("data/fixtures/client/cert.pem");
    assert!(generated.exists(), "self-signed certificate kept in the data dir");
    // A client that verifies refuses the self-signed certificate.
    let ca = TestCa::new(dir.path(), "unrelated").expect("CA");
    let verified = etcdctl(&endpoints, &etcdctl_tls(ca.ca_file(), None), &["get", "/auto"]);
    assert!(!verified.success, "{verified:?}");
}
