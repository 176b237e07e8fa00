//! Real HAProxy and real NGINX, running the checked-in `deploy/` configurations, in front
//! of two real gateways and a real three-node cluster. Writers put unique keys through
//! the load balancer while one gateway is drained with SIGTERM and the cluster's leader
//! is killed with SIGKILL. Every acknowledged write must be readable afterwards, and
//! failures are limited to the writes in flight at the kill.
//!
//! Needs `haproxy` and `nginx` on the PATH (CI installs them with apt-get).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{cluster, free_port, http, Gateway, SseReader};
use conclave_testkit::{leader_index, wait_until, wait_until_ok};
use serde_json::json;
use tokio::time::Instant;

/// The two tests run one after the other: each runs 3 nodes, 2 gateways and a load
/// balancer, which is plenty for a 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WRITERS: usize = 4;

#[derive(Clone, Copy, Debug)]
enum Balancer {
    Haproxy,
    Nginx,
}

/// A load balancer process, killed when dropped.
struct Lb {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Lb {
    fn drop(&mut self) {
        // SIGTERM first: NGINX's master then stops its workers, which a SIGKILL of the
        // master would leave behind as orphans still holding the listening port.
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

/// Renders a checked-in configuration with this test's ports.
fn render(template: &str, listen: &str, port: u16, gw1: u16, gw2: u16) -> String {
    let rendered = template
        .replace(&format!("127.0.0.1:{listen}"), &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{gw1}"))
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{gw2}"));
    assert!(
        rendered.contains(&format!("127.0.0.1:{gw2}")),
        "the template names the gateways"
    );
    rendered
}

fn start_lb(kind: Balancer, gw1: u16, gw2: u16) -> Lb {
    let port = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("lb.log");
    let out = std::fs::File::create(&log).expect("log");
    let err = out.try_clone().expect("log");
    let mut command = match kind {
        Balancer::Haproxy => {
            let template =
                std::fs::read_to_string(repo_file("deploy/haproxy/haproxy.cfg")).expect("haproxy.cfg");
            let config = dir.path().join("haproxy.cfg");
            std::fs::write(&config, render(&template, "8000", port, gw1, gw2)).expect("write config");
            let mut command = Command::new("haproxy");
            command.arg("-f").arg(&config).arg("-db");
            command
        }
        Balancer::Nginx => {
            let template = std::fs::read_to_string(repo_file("deploy/nginx/nginx.conf")).expect("nginx.conf");
            let config = dir.path().join("nginx.conf");
            std::fs::write(&config, render(&template, "8001", port, gw1, gw2)).expect("write config");
            std::fs::create_dir_all(dir.path().join("temp")).expect("temp dir");
            let mut command = Command::new("nginx");
            command
                .arg("-c")
                .arg(&config)
                .arg("-p")
                .arg(dir.path())
                .arg("-g")
                .arg("daemon off;");
            command
        }
    };
    command
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {kind:?} (install haproxy and nginx): {e}"));
    Lb {
        child,
        port,
        log,
        _dir: dir,
    }
}

/// One write attempt through the load balancer.
#[derive(Debug, Clone)]
struct Attempt {
    key: String,
    started: Instant,
    status: Option<u16>,
    error: Option<String>,
}

async fn writer(id: usize, base: String, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<Attempt>>>) {
    let http = http();
    let mut seq = 0u32;
    let mut failures = 0u32;
    // Bounded in count as well as time.
    while !stop.load(Ordering::Relaxed) && seq < 5_000 {
        let key = format!("/lb/w{id}/{seq:05}");
        let url = format!("{base}/v1/kv/{}", key.replace('/', "%2F"));
        let started = Instant::now();
        let answer = http.put(&url).json(&json!({ "value": key })).send().await;
        let (status, error) = match answer {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                (Some(status), (status >= 300).then_some(text))
            }
            Err(e) => (None, Some(e.to_string())),
        };
        let failed = error.is_some();
        failures = if failed { failures + 1 } else { 0 };
        log.lock().unwrap().push(Attempt {
            key,
            started,
            status,
            error,
        });
        seq += 1;
        if failed {
            // As a real client would: back off (50 ms doubling to 1 s) after failures.
            let delay = Duration::from_millis(50 * (1u64 << failures.min(5))).min(Duration::from_secs(1));
            tokio::time::sleep(delay).await;
        }
    }
}

/// Follows writer 0's keys over SSE through the load balancer, reconnecting with
/// `Last-Event-ID` whenever the stream ends (a draining gateway sends `shutdown`).
async fn sse_follower(
    base: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<(String, String)>>>,
    connections: Arc<AtomicUsize>,
) {
    let http = http();
    let mut last_id: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut request = http.get(format!("{base}/v1/watch?prefix=/lb/w0/"));
        if let Some(id) = &last_id {
            request = request.header("Last-Event-ID", id.clone());
        }
        let response = match request.send().await {
            Ok(response) if response.status().is_success() => response,
            _ => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        connections.fetch_add(1, Ordering::Relaxed);
        let mut events = SseReader::new(response);
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            // Ended (shutdown, a gateway gone) or quiet for a while: reconnect either
            // way, which only exercises resuming more.
            let Some(event) = events.next_within(Duration::from_secs(1)).await else {
                break;
            };
            match event.event.as_str() {
                "put" => {
                    last_id = event.id.clone();
                    let key = event.json()["key"].as_str().unwrap_or_default().to_string();
                    seen.lock().unwrap().push((event.id.unwrap_or_default(), key));
                }
                "created" => {
                    if last_id.is_none() {
                        last_id = event.id.clone();
                    }
                }
                _ => break,
            }
        }
    }
}

async fn acknowledged_writes_survive(kind: Balancer) {
    let _serial = SERIAL.lock().await;
    let cluster = cluster(3).await;
    let endpoints = cluster.client_endpoints();
    let flags = [
        "--drain-delay",
        "1000",
        "--drain-timeout",
        "8000",
        "--ready-cache",
        "100",
    ];
    let gw1 = Gateway::start(&endpoints, &flags).await;
    let gw2 = Gateway::start(&endpoints, &flags).await;
    let lb = start_lb(kind, gw1.port, gw2.port);
    let base = format!("http://127.0.0.1:{}", lb.port);
    let http = http();
    let dump = |what: &str| {
        format!(
            "{what}\n--- lb ---\n{}\n--- gw1 ---\n{}\n--- gw2 ---\n{}\n{}",
            std::fs::read_to_string(&lb.log).unwrap_or_default(),
            gw1.log_text(),
            gw2.log_text(),
            cluster.log_dump()
        )
    };
    // Both gateways serve through the balancer (HAProxy needs its checks to pass first).
    wait_until_ok("the load balancer serves reads", Duration::from_secs(15), || {
        let http = http.clone();
        let url = format!("{base}/readyz");
        async move {
            let response = http.get(url).send().await.map_err(|e| e.to_string())?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(format!("status {}", response.status()))
            }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{}", dump(&e.to_string())));

    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(Mutex::new(Vec::new()));
    // An SSE watch on writer 0's keys through the balancer, from before the drain.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let stop_follower = Arc::new(AtomicBool::new(false));
    let follower = tokio::spawn(sse_follower(
        base.clone(),
        stop_follower.clone(),
        seen.clone(),
        connections.clone(),
    ));
    wait_until(
        "the SSE follower is connected",
        Duration::from_secs(10),
        || async { (connections.load(Ordering::Relaxed) > 0).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{}", dump(&e.to_string())));
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| tokio::spawn(writer(id, base.clone(), stop.clone(), attempts.clone())))
        .collect();
    let acknowledged = |attempts: &Arc<Mutex<Vec<Attempt>>>| {
        attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.status.is_some_and(|s| (200..300).contains(&s)))
            .count()
    };
    wait_until(
        "writes flow through the balancer",
        Duration::from_secs(10),
        || async { (acknowledged(&attempts) >= 50).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{}", dump(&e.to_string())));

    // Drain one gateway while writes go on.
    let drained_at = Instant::now();
    gw1.terminate();
    let before = acknowledged(&attempts);
    wait_until(
        "writes go on after the drain began",
        Duration::from_secs(10),
        || async { (acknowledged(&attempts) >= before + 50).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{}", dump(&e.to_string())));
    let exit = tokio::task::block_in_place(|| gw1.wait_exit(Duration::from_secs(10)));
    assert_eq!(
        exit.and_then(|s| s.code()),
        Some(0),
        "{}",
        dump("the drained gateway exits 0 within its drain timeout")
    );
    assert!(drained_at.elapsed() < Duration::from_secs(10));

    // Kill the cluster's leader while writes go on; wait for a new one.
    let old = leader_index(&cluster, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{}", dump(&e.to_string())));
    let killed_at = Instant::now();
    cluster.kill(old).expect("kill the leader");
    let new = wait_until("a new leader", Duration::from_secs(20), || async {
        leader_index(&cluster, Duration::from_secs(1))
            .await
            .ok()
            .filter(|&i| i != old)
    })
    .await
    .unwrap_or_else(|e| panic!("{}", dump(&e.to_string())));
    let elected_at = Instant::now();
    let before = acknowledged(&attempts);
    wait_until(
        "writes go on after the election",
        Duration::from_secs(15),
        || async {
            (acknowledged(&attempts) >= before + 50 && elected_at.elapsed() > Duration::from_secs(3))
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{}", dump(&e.to_string())));
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }

    // Every acknowledged write is there, read directly through the SDK.
    let attempts = attempts.lock().unwrap().clone();
    let sdk = conclave_client::Client::connect(cluster.running_client_endpoints())
        .await
        .expect("sdk");
    let prefix = sdk
        .range(conclave_client::kv::Get::prefix("/lb/"))
        .await
        .expect("read back");
    let stored: std::collections::HashMap<Vec<u8>, Vec<u8>> =
        prefix.kvs.into_iter().map(|kv| (kv.key, kv.value)).collect();
    let ok: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.status.is_some_and(|s| (200..300).contains(&s)))
        .collect();
    for attempt in &ok {
        assert_eq!(
            stored.get(attempt.key.as_bytes()).map(Vec::as_slice),
            Some(attempt.key.as_bytes()),
            "acknowledged write {} is missing",
            attempt.key
        );
    }
    let failed: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| !a.status.is_some_and(|s| (200..300).contains(&s)))
        .collect();
    let late: Vec<&&Attempt> = failed
        .iter()
        .filter(|a| a.started > elected_at + Duration::from_secs(2))
        .collect();
    let phase = |a: &Attempt| {
        if a.started < killed_at {
            "before the kill"
        } else if a.started < elected_at {
            "kill..elected"
        } else if a.started < elected_at + Duration::from_secs(2) {
            "elected..+2s"
        } else {
            "after"
        }
    };
    let mut summary: std::collections::BTreeMap<(String, Option<u16>), usize> = Default::default();
    for a in &failed {
        *summary.entry((phase(a).to_string(), a.status)).or_default() += 1;
    }
    eprintln!(
        "{kind:?}: {} writes, {} acknowledged, {} failed {summary:?}; leader n{old} killed, n{new} elected after {:?}; first failures: {:?}",
        attempts.len(),
        ok.len(),
        failed.len(),
        elected_at - killed_at,
        failed.iter().take(3).map(|a| a.error.clone()).collect::<Vec<_>>(),
    );
    // Each writer has at most one write in flight at the kill, and while there is no
    // leader it fails at most once per back-off step (50 ms doubling to 1 s: five steps
    // in the first 1.55 s, then one a second), plus one step of slack.
    let election_secs = (elected_at - killed_at).as_secs() as usize;
    let bound = WRITERS * (1 + 5 + election_secs + 1);
    assert!(
        failed.len() <= bound,
        "{}",
        dump(&format!(
            "{} failed writes, more than {bound}: {summary:?}",
            failed.len()
        ))
    );
    // The only failures are the gateway's own "not applied" (503) and "may have applied"
    // (504) answers: never a load balancer's 502 or a dropped connection.
    assert!(
        failed.iter().all(|a| matches!(a.status, Some(503) | Some(504))),
        "{}",
        dump(&format!("failures other than 503/504: {summary:?}"))
    );
    assert!(
        late.is_empty(),
        "{}",
        dump(&format!(
            "{} writes failed after the election settled: {:?}",
            late.len(),
            late.iter().take(5).collect::<Vec<_>>()
        ))
    );

    // The SSE follower saw every acknowledged write of writer 0, once each, in order,
    // across the drain (a `shutdown` event, then a reconnect through the balancer).
    let last_acknowledged = ok
        .iter()
        .filter(|a| a.key.starts_with("/lb/w0/"))
        .map(|a| a.key.clone())
        .max();
    if let Some(last) = last_acknowledged {
        wait_until("the SSE follower catches up", Duration::from_secs(20), || {
            let seen = seen.clone();
            let last = last.clone();
            async move { seen.lock().unwrap().iter().any(|(_, k)| *k == last).then_some(()) }
        })
        .await
        .unwrap_or_else(|e| panic!("{}", dump(&e.to_string())));
    }
    stop_follower.store(true, Ordering::Relaxed);
    follower.await.expect("follower");
    let seen = seen.lock().unwrap().clone();
    let order = |id: &str| -> (i64, i64) {
        let (r, n) = id.split_once('.').unwrap_or(("0", "0"));
        (r.parse().unwrap_or(0), n.parse().unwrap_or(0))
    };
    for pair in seen.windows(2) {
        assert!(
            order(&pair[0].0) < order(&pair[1].0),
            "SSE events out of order or repeated: {pair:?}"
        );
    }
    let seen_keys: std::collections::HashSet<&str> = seen.iter().map(|(_, k)| k.as_str()).collect();
    for attempt in ok.iter().filter(|a| a.key.starts_with("/lb/w0/")) {
        assert!(
            seen_keys.contains(attempt.key.as_str()),
            "SSE missed {}",
            attempt.key
        );
    }
    eprintln!(
        "{kind:?}: the SSE follower saw {} changes over {} connection(s)",
        seen.len(),
        connections.load(Ordering::Relaxed)
    );
    drop(gw2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_keeps_acknowledged_writes_through_a_drain_and_a_leader_kill() {
    acknowledged_writes_survive(Balancer::Haproxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_keeps_acknowledged_writes_through_a_drain_and_a_leader_kill() {
    acknowledged_writes_survive(Balancer::Nginx).await;
}
