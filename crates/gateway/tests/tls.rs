//! The gateway with TLS on both sides: towards a 3-member cluster with mutual TLS
//! (--cacert/--cert/--key) and on its own listener (--tls-cert/--tls-key, reloaded on
//! change), driven with `curl`; and real HAProxy and NGINX running the checked-in
//! deploy/ TLS configurations: HTTPS terminated at the balancer and re-encrypted to the
//! gateway, and TLS passed through to the members for `etcdctl`.
//!
//! Needs `curl`, `etcdctl`, `haproxy` and `nginx` with its stream module (make deps).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{free_port, Gateway};
use conclave_testkit::{wait_until_ok, CertFiles, TlsCluster, TlsClusterOptions};

/// Both tests run a 3-member cluster, gateways and balancers: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(30);

/// What one `curl` run said: the HTTP status (0 when there was none), body, stderr.
#[derive(Debug)]
struct Curl {
    status: u16,
    body: String,
    stderr: String,
}

fn curl(ca: &Path, args: &[&str]) -> Curl {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl (apt-get install curl)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    Curl {
        status: status.trim().parse().unwrap_or(0),
        body: body.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn ready(ca: &Path, base: &str, what: &str) {
    let url = format!("{base}/readyz");
    wait_until_ok(what, WAIT, || {
        let answer = curl(ca, &[url.as_str()]);
        async move {
            match answer.status {
                200 => Ok(()),
                _ => Err(format!("{answer:?}")),
            }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// A put and a get of `key` through `base` (an https:// URL).
fn put_and_get(ca: &Path, base: &str, key: &str) {
    let url = format!("{base}/v1/kv/{key}");
    let put = curl(ca, &["-X", "PUT", &url, "-d", r#"{"value": "over-tls"}"#]);
    assert_eq!(put.status, 200, "{put:?}");
    let get = curl(ca, &[url.as_str()]);
    assert_eq!(get.status, 200, "{get:?}");
    assert!(get.body.contains("over-tls"), "{get:?}");
}

async fn cluster() -> TlsCluster {
    let bin = conclave_testkit::node_binary().expect("node binary");
    TlsCluster::start_healthy(&bin, TlsClusterOptions::default(), WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn s(path: &Path) -> String {
    path.display().to_string()
}

/// A gateway with TLS towards the members (presenting `identity` when given) and an
/// HTTPS listener with `listener`.
fn tls_gateway(cluster: &TlsCluster, identity: Option<&CertFiles>, listener: &CertFiles) -> Gateway {
    let mut args = vec![
        "--cacert".to_string(),
        s(cluster.ca().ca_file()),
        "--tls-cert".into(),
        s(&listener.cert),
        "--tls-key".into(),
        s(&listener.key),
        "--drain-delay".into(),
        "0".into(),
    ];
    if let Some(identity) = identity {
        args.extend([
            "--cert".into(),
            s(&identity.cert),
            "--key".into(),
            s(&identity.key),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Gateway::spawn(&cluster.client_urls(), &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_speaks_tls_to_the_members_and_serves_https_with_reloaded_certificates() {
    let _serial = SERIAL.lock().await;
    let cluster = cluster().await;
    let ca = cluster.ca().ca_file();
    let listener = cluster
        .ca()
        .issue("gateway", "gateway")
        .expect("gateway certificate");
    let gateway = tls_gateway(&cluster, Some(cluster.client_identity()), &listener);
    let base = format!("https://127.0.0.1:{}", gateway.port);
    ready(ca, &base, "the HTTPS gateway ready").await;
    put_and_get(ca, &base, "gw-tls");

    // Plain HTTP to the HTTPS listener is not served.
    let plain = curl(ca, &[&format!("http://127.0.0.1:{}/readyz", gateway.port)]);
    assert_ne!(plain.status, 200, "{plain:?}");

    // A rotated listener certificate is presented on new connections, no restart.
    let pid = gateway.pid();
    cluster
        .ca()
        .reissue(&listener, "gateway-rotated")
        .expect("rotate");
    let url = format!("{base}/livez");
    wait_until_ok("the rotated gateway certificate", Duration::from_secs(10), || {
        let answer = curl(ca, &["-v", url.as_str()]);
        async move {
            if answer.stderr.contains("CN=gateway-rotated") {
                Ok(())
            } else {
                Err(answer.stderr)
            }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", gateway.log_text()));
    assert_eq!(gateway.pid(), pid);

    // Without a client certificate, the members (--client-cert-auth) refuse the gateway:
    // it is live but never ready.
    let anonymous = tls_gateway(&cluster, None, &listener);
    let anonymous_base = format!("https://127.0.0.1:{}", anonymous.port);
    let live = format!("{anonymous_base}/livez");
    wait_until_ok("the second gateway live", WAIT, || {
        let answer = curl(ca, &[live.as_str()]);
        async move {
            if answer.status == 200 {
                Ok(())
            } else {
                Err(format!("{answer:?}"))
            }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", anonymous.log_text()));
    let readyz = curl(ca, &[&format!("{anonymous_base}/readyz")]);
    assert_eq!(readyz.status, 503, "{readyz:?}");

    // A missing listener certificate stops the gateway at start, naming flag and file.
    let missing = cluster.dir().join("certs/absent.pem");
    let broken = Gateway::spawn(
        &cluster.client_urls(),
        &["--tls-cert", &s(&missing), "--tls-key", &s(&listener.key)],
    );
    let status = broken
        .wait_exit(Duration::from_secs(10))
        .expect("the gateway exits");
    assert!(!status.success());
    let log = broken.log_text();
    assert!(log.contains("--tls-cert") && log.contains(&s(&missing)), "{log}");
}

/// A balancer process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Lb {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Lb {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

/// Starts HAProxy or NGINX on the checked-in TLS configuration, with `replacements`
/// (each must occur in it).
fn start_lb(haproxy: bool, replacements: &[(String, String)]) -> Lb {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = if haproxy {
        "deploy/haproxy/haproxy-tls.cfg"
    } else {
        "deploy/nginx/nginx-tls.conf"
    };
    let mut config = std::fs::read_to_string(repo_file(file)).expect("config");
    for (from, to) in replacements {
        assert!(config.contains(from.as_str()), "{file} names {from}");
        config = config.replace(from.as_str(), to);
    }
    let path = dir.path().join("lb.conf");
    std::fs::write(&path, config).expect("write config");
    let log = dir.path().join("lb.log");
    let out = std::fs::File::create(&log).expect("log");
    let err = out.try_clone().expect("log");
    let mut command = if haproxy {
        let mut command = Command::new("haproxy");
        command.arg("-f").arg(&path).arg("-db");
        command
    } else {
        std::fs::create_dir_all(dir.path().join("temp")).expect("temp dir");
        let mut command = Command::new("nginx");
        command
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(dir.path())
            .args(["-g", "daemon off;"]);
        command
    };
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {file}'s balancer (make deps): {e}"));
    Lb {
        child,
        log,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn haproxy_and_nginx_terminate_and_re_encrypt_https_and_pass_tls_through_to_the_members() {
    let _serial = SERIAL.lock().await;
    let cluster = cluster().await;
    let ca = cluster.ca().ca_file();
    let listener = cluster
        .ca()
        .issue("gateway", "gateway")
        .expect("gateway certificate");
    let gateway = tls_gateway(&cluster, Some(cluster.client_identity()), &listener);
    ready(
        ca,
        &format!("https://127.0.0.1:{}", gateway.port),
        "the HTTPS gateway ready",
    )
    .await;
    let lb = cluster
        .ca()
        .issue("lb", "balancer")
        .expect("balancer certificate");
    // HAProxy takes the chain and the key in one file.
    let combined = cluster.dir().join("certs/lb-combined.pem");
    let mut pem = std::fs::read(&lb.cert).expect("cert");
    pem.extend(std::fs::read(&lb.key).expect("key"));
    std::fs::write(&combined, pem).expect("combined");
    let members: Vec<String> = cluster
        .members()
        .iter()
        .map(|m| m.client_url.trim_start_matches("https://").to_string())
        .collect();

    for haproxy in [true, false] {
        let (https, passthrough) = (free_port(), free_port());
        let mut replacements = vec![
            ("/etc/conclave/ca.pem".to_string(), s(ca)),
            ("127.0.0.1:2379".into(), format!("127.0.0.1:{passthrough}")),
            ("127.0.0.1:8080".into(), format!("127.0.0.1:{}", gateway.port)),
            ("127.0.0.1:8081".into(), format!("127.0.0.1:{}", gateway.port)),
            ("127.0.0.1:12379".into(), members[0].clone()),
            ("127.0.0.1:22379".into(), members[1].clone()),
            ("127.0.0.1:32379".into(), members[2].clone()),
        ];
        if haproxy {
            replacements.push(("127.0.0.1:8443".into(), format!("127.0.0.1:{https}")));
            replacements.push(("/etc/conclave/lb.pem".into(), s(&combined)));
        } else {
            replacements.push(("127.0.0.1:8444".into(), format!("127.0.0.1:{https}")));
            replacements.push(("/etc/conclave/lb.crt".into(), s(&lb.cert)));
            replacements.push(("/etc/conclave/lb.key".into(), s(&lb.key)));
        }
        let balancer = start_lb(haproxy, &replacements);
        let name = if haproxy { "HAProxy" } else { "NGINX" };
        let base = format!("https://127.0.0.1:{https}");
        let log = || std::fs::read_to_string(&balancer.log).unwrap_or_default();
        wait_until_ok(&format!("{name} terminating HTTPS"), WAIT, || {
            let answer = curl(ca, &[&format!("{base}/readyz")]);
            async move {
                if answer.status == 200 {
                    Ok(())
                } else {
                    Err(format!("{answer:?}"))
                }
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", log()));
        put_and_get(ca, &base, &format!("through-{name}"));

        // Passthrough: etcdctl's mutual TLS session ends at a member.
        let me = cluster.client_identity();
        let etcdctl = |args: &[&str]| {
            Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints=https://127.0.0.1:{passthrough}"))
                .args(["--dial-timeout=2s", "--command-timeout=5s"])
                .arg(format!("--cacert={}", s(ca)))
                .arg(format!("--cert={}", s(&me.cert)))
                .arg(format!("--key={}", s(&me.key)))
                .args(args)
                .stdin(Stdio::null())
                .output()
                .expect("etcdctl")
        };
        let key = format!("/passthrough/{name}");
        wait_until_ok(&format!("etcdctl through {name}'s passthrough"), WAIT, || {
            let out = etcdctl(&["put", &key, "tls"]);
            async move {
                if out.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).into_owned())
                }
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", log()));
        let out = etcdctl(&["get", &key, "--print-value-only"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "tls\n", "{}", log());
    }
}
