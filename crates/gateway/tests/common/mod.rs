//! Test support: real gateway processes in front of real clusters, an HTTP client and a
//! Server-Sent Events reader.

#![allow(dead_code)]

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use conclave_testkit::{leader_index, unique_port, wait_until, Cluster, ClusterOptions};
use futures::StreamExt;

pub const GATEWAY: &str = env!("CARGO_BIN_EXE_conclave-gateway");

/// Starts a cluster of `size` nodes and waits for a leader.
pub async fn cluster(size: usize) -> Cluster {
    let bin = conclave_testkit::node_binary()
        .expect("the conclave binary (cargo build --release -p conclave-server)");
    let cluster = Cluster::start(&bin, ClusterOptions::with_size(size)).expect("cluster starts");
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("no leader: {e}\n{}", cluster.log_dump()));
    cluster
}

pub fn free_port() -> u16 {
    unique_port(IpAddr::V4(Ipv4Addr::LOCALHOST)).expect("a free port")
}

/// A gateway process.
pub struct Gateway {
    pub port: u16,
    pub log: PathBuf,
    child: Mutex<Option<Child>>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts a gateway in front of `endpoints` with extra flags, and waits for `/livez`.
    pub async fn start(endpoints: &[String], extra: &[&str]) -> Gateway {
        let gateway = Gateway::spawn(endpoints, extra);
        let http = http();
        let url = gateway.url("/livez");
        wait_until("the gateway answers /livez", Duration::from_secs(10), || async {
            http.get(&url)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", gateway.log_text()));
        gateway
    }

    /// Starts a gateway in front of `endpoints` with extra flags, without waiting for it
    /// (an HTTPS gateway is waited for by the caller, which has the CA).
    pub fn spawn(endpoints: &[String], extra: &[&str]) -> Gateway {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("gateway.log");
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut command = Command::new(GATEWAY);
        command
            .current_dir(dir.path())
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--endpoints")
            .arg(endpoints.join(","))
            .args(extra)
            .env("RUST_LOG", "info,conclave_client=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        // SAFETY: only async-signal-safe prctl between fork and exec: the gateway dies
        // with the test binary.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().expect("the gateway starts");
        Gateway {
            port,
            log,
            child: Mutex::new(Some(child)),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().as_ref().expect("running").id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.pid();
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut child = self.child.lock().unwrap();
                if let Some(c) = child.as_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        return Some(status);
                    }
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An HTTP client without connection reuse surprises (plain HTTP/1.1).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sse {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl Sse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or(serde_json::Value::Null)
    }
}

/// Reads events off an SSE response.
pub struct SseReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> SseReader {
        assert_eq!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream"),
            "not an SSE response"
        );
        SseReader {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` when the stream ends.
    pub async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Sse::default();
                let mut any = false;
                for line in block.lines() {
                    if line.starts_with(':') || line.is_empty() {
                        continue;
                    }
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    any = true;
                    match field {
                        "event" => event.event = value.to_string(),
                        "id" => event.id = Some(value.to_string()),
                        "data" => {
                            if !event.data.is_empty() {
                                event.data.push('\n');
                            }
                            event.data.push_str(value);
                        }
                        _ => {}
                    }
                }
                if any {
                    return Some(event);
                }
                continue;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// The next event within `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Sse> {
        tokio::time::timeout(timeout, self.next()).await.ok().flatten()
    }
}

/// Where the test's log files are, for messages.
pub fn describe(path: &Path) -> String {
    format!("{}", path.display())
}
