//! TLS under stress: certificates rotated on every member while writes run (over kept
//! connections and over fresh handshakes) fail no request, and garbage, truncated and
//! stalled handshakes on either port cost only their own connection.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::tls::{etcdctl, etcdctl_tls, presented_common_name};
use common::*;
use conclave_testkit::{wait_until, wait_until_ok, TlsCluster, TlsClusterOptions};
use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEALTHY: Duration = Duration::from_secs(30);

async fn started(size: usize) -> TlsCluster {
    let options = TlsClusterOptions {
        size,
        ..TlsClusterOptions::default()
    };
    TlsCluster::start_healthy(bin(), options, HEALTHY)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Successful and failed writes of one writer.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    last_error: std::sync::Mutex<String>,
}

impl Tally {
    fn record<E: std::fmt::Debug>(&self, result: Result<(), E>) {
        match result {
            Ok(()) => self.ok.fetch_add(1, Ordering::SeqCst),
            Err(e) => {
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = format!("{e:?}");
                self.failed.fetch_add(1, Ordering::SeqCst)
            }
        };
    }
}

/// Waits until both writers made `n` more successful writes than now.
async fn progress(what: &str, tallies: &[&Tally], n: u64) {
    let targets: Vec<u64> = tallies.iter().map(|t| t.ok.load(Ordering::SeqCst) + n).collect();
    wait_until(&format!("writes after {what}"), Duration::from_secs(60), || {
        let done = tallies
            .iter()
            .zip(&targets)
            .all(|(t, target)| t.ok.load(Ordering::SeqCst) >= *target);
        async move { done.then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_every_certificate_under_running_writes_fails_no_request() {
    let cluster = Arc::new(started(3).await);
    let ca = cluster.ca().ca_file().to_path_buf();
    let identity = cluster.client_identity().clone();
    // Members 1 and 2 take the writes; member 3 is restarted on rotated peer
    // certificates in the middle.
    let urls: Vec<String> = cluster.client_urls()[..2].to_vec();
    let stop = Arc::new(AtomicBool::new(false));

    // Writer 1: the etcd-client crate over one kept TLS connection.
    let read = |path: &std::path::Path| std::fs::read(path).expect("read a PEM file");
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read(&ca)))
        .identity(Identity::from_pem(read(&identity.cert), read(&identity.key)));
    let mut client = etcd_client::Client::connect(
        &urls[..1],
        Some(ConnectOptions::new().with_tls(tls).with_timeout(REQUEST)),
    )
    .await
    .expect("connect over TLS");
    let kept = Arc::new(Tally::default());
    let kept_writer = tokio::spawn({
        let (kept, stop) = (kept.clone(), stop.clone());
        async move {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let result = client.put(format!("/rot/kept/{i:06}"), "v", None).await;
                kept.record(result.map(|_| ()));
                i += 1;
            }
        }
    });
    // Writer 2: etcdctl, a fresh process and TLS handshake for every write.
    let fresh = Arc::new(Tally::default());
    let fresh_writer = tokio::task::spawn_blocking({
        let (fresh, stop, urls) = (fresh.clone(), stop.clone(), urls.clone());
        let flags = etcdctl_tls(&ca, Some(&identity));
        move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let run = etcdctl(&urls, &flags, &["put", &format!("/rot/fresh/{i:06}"), "v"]);
                fresh.record(if run.success { Ok(()) } else { Err(run) });
                i += 1;
            }
        }
    });
    let tallies = [&*kept, &*fresh];
    progress("the start", &tallies, 5).await;

    // Every member's client certificate, then every peer certificate, then the client
    // certificates again; each time new handshakes must present the new one.
    for round in ["r1", "r2"] {
        for member in cluster.members() {
            cluster
                .ca()
                .reissue(&member.client_files, &format!("{}-{round}", member.name))
                .expect("rotate a client certificate");
        }
        for member in cluster.members() {
            let want = format!("{}-{round}", member.name);
            wait_until_ok(&format!("{want} presented"), Duration::from_secs(15), || {
                let (url, ca, identity) = (member.client_url.clone(), ca.clone(), identity.clone());
                let want = want.clone();
                async move {
                    match presented_common_name(&url, &ca, &identity).await? {
                        cn if cn == want => Ok(()),
                        cn => Err(format!("still {cn}")),
                    }
                }
            })
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
        }
        progress(&format!("client rotation {round}"), &tallies, 5).await;
        if round == "r1" {
            for member in cluster.members() {
                cluster
                    .ca()
                    .reissue(&member.peer_files, &format!("{}-peer-{round}", member.name))
                    .expect("rotate a peer certificate");
            }
            // New peer handshakes in both directions: n3 restarts and catches up.
            let n3 = cluster.member(3).expect("n3");
            n3.process.kill().expect("kill n3");
            n3.process.start().expect("restart n3");
            cluster
                .wait_healthy(3, HEALTHY)
                .await
                .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
            progress("peer rotation", &tallies, 5).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    kept_writer.await.expect("kept writer");
    fresh_writer.await.expect("fresh writer");

    for (name, tally) in [("kept connection", &kept), ("fresh handshakes", &fresh)] {
        assert_eq!(
            tally.failed.load(Ordering::SeqCst),
            0,
            "{name}: a write failed during rotation: {}\n{}",
            tally.last_error.lock().unwrap_or_else(|p| p.into_inner()),
            cluster.log_dump()
        );
    }
    // Every acknowledged write is there, on the restarted member too.
    let written = kept.ok.load(Ordering::SeqCst) + fresh.ok.load(Ordering::SeqCst);
    let n3_url = cluster.client_urls()[2..].to_vec();
    let count = etcdctl(
        &n3_url,
        &etcdctl_tls(&ca, Some(&identity)),
        &["get", "/rot/", "--prefix", "--keys-only", "-w", "json"],
    );
    assert!(
        count.stdout.contains(&format!("\"count\":{written}")),
        "{written} writes acknowledged: {count:?}"
    );
}

/// Opens a TCP connection to `url`'s port (`https://host:port`).
async fn connect(url: &str) -> TcpStream {
    let addr = url.trim_start_matches("https://");
    TcpStream::connect(addr).await.expect("TCP connect")
}

/// Waits until the server closes `stream` (EOF or reset), within `timeout`.
async fn closed_by_server(stream: &mut TcpStream, timeout: Duration) -> Result<(), String> {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Err(format!("still open after {timeout:?}")),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            // A TLS alert, or an HTTP error page: read on until the close.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_truncated_and_stalled_handshakes_cost_only_their_connection() {
    let cluster = started(1).await;
    let member = cluster.member(1).expect("n1");
    let pid = member.process.pid();
    let flags = etcdctl_tls(cluster.ca().ca_file(), Some(cluster.client_identity()));
    let urls = cluster.client_urls();

    let mut garbage = Vec::new();
    for url in [&member.client_url, &member.peer_url] {
        // Plaintext HTTP/1.1, a cleartext HTTP/2 preface, random bytes.
        for bytes in [
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ] {
            let mut stream = connect(url).await;
            stream.write_all(&bytes).await.expect("send garbage");
            garbage.push(stream);
        }
    }
    // Truncated: a handshake record header announcing 512 bytes, then 4 of them; and
    // connections that never send a byte. Both wait on the handshake deadline.
    let mut stalled = Vec::new();
    for url in [&member.client_url, &member.peer_url] {
        let mut truncated = connect(url).await;
        truncated
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
            .await
            .expect("send a truncated ClientHello");
        stalled.push(truncated);
    }
    for _ in 0..100 {
        stalled.push(connect(&member.client_url).await);
    }

    // While all of that is open, real clients are served at once.
    let put = etcdctl(&urls, &flags, &["put", "/after/garbage", "1"]);
    assert!(put.success, "{put:?}\n{}", cluster.log_dump());
    for stream in &mut garbage {
        closed_by_server(stream, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("garbage handshake: {e}"));
    }
    // Stalled handshakes are dropped at the handshake deadline (10 s).
    for stream in &mut stalled {
        closed_by_server(stream, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("stalled handshake: {e}"));
    }
    assert_eq!(member.process.pid(), pid, "the node restarted");
    assert!(member.process.is_running(), "{}", cluster.log_dump());
    let log = member.process.log_tail(400);
    assert!(log.contains("rejected TLS connection"), "{log}");
    let get = etcdctl(&urls, &flags, &["get", "/after/garbage", "--print-value-only"]);
    assert_eq!(get.stdout, "1\n", "{get:?}");
}
