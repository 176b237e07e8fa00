//! One `conclave` node process: its command line, its log file and the signals a test
//! sends it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use crate::error::Result;
use crate::process::Process;
pub use crate::process::DEFAULT_SHUTDOWN_TIMEOUT;

/// Everything needed to start one node; the same spec is used for every restart.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Member name, `--name` (e.g. `n1`).
    pub name: String,
    /// Client URL, used for both `--listen-client-urls` and `--advertise-client-urls`.
    pub client_url: String,
    /// Address of the real peer listener, `--listen-peer-urls http://{addr}`; its IP is
    /// also the source IP of the node's outgoing peer connections.
    pub peer_listen_addr: SocketAddr,
    /// Peer URL other members use, `--initial-advertise-peer-urls` (the peer proxy's URL
    /// in a [`crate::Cluster`]).
    pub advertise_peer_url: String,
    /// `--data-dir`; the node creates it if missing.
    pub data_dir: PathBuf,
    /// File that receives the process's stdout and stderr, appended across restarts.
    pub log_path: PathBuf,
    /// Further arguments, appended after the ones above (cluster membership, timings).
    pub extra_args: Vec<String>,
}

impl NodeSpec {
    /// The node's full argument list (without the program name).
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--name".to_owned(),
            self.name.clone(),
            "--data-dir".to_owned(),
            self.data_dir.display().to_string(),
            "--listen-client-urls".to_owned(),
            self.client_url.clone(),
            "--advertise-client-urls".to_owned(),
            self.client_url.clone(),
            "--listen-peer-urls".to_owned(),
            format!("http://{}", self.peer_listen_addr),
            "--initial-advertise-peer-urls".to_owned(),
            self.advertise_peer_url.clone(),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// A handle on one node process. Its process is killed (SIGKILL) and reaped when the
/// handle is dropped, so a failing test leaves no node behind.
#[derive(Debug)]
pub struct Node {
    spec: NodeSpec,
    process: Process,
}

impl Node {
    /// A handle for a node run from `bin` with `spec`; nothing is started yet.
    pub fn new(bin: impl Into<PathBuf>, spec: NodeSpec) -> Node {
        let process = Process::new(spec.name.clone(), bin, spec.args(), spec.log_path.clone());
        Node { spec, process }
    }

    /// The spec the node is started with.
    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// The member name (`--name`).
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The client URL, for etcd clients.
    pub fn client_url(&self) -> &str {
        &self.spec.client_url
    }

    /// The file that holds the node's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.spec.log_path
    }

    /// Starts the process ([`Process::start`]).
    pub fn start(&self) -> Result<()> {
        self.process.start()
    }

    /// Kills the process with SIGKILL (a crash: nothing is flushed) and reaps it.
    pub fn kill(&self) -> Result<()> {
        self.process.kill()
    }

    /// SIGTERM, and waits for the exit ([`Process::terminate`]).
    pub fn terminate(&self) -> Result<ExitStatus> {
        self.process.terminate()
    }

    /// SIGTERM, and waits up to `timeout` ([`Process::terminate_within`]).
    pub fn terminate_within(&self, timeout: Duration) -> Result<ExitStatus> {
        self.process.terminate_within(timeout)
    }

    /// SIGSTOP ([`Process::pause`]).
    pub fn pause(&self) -> Result<()> {
        self.process.pause()
    }

    /// SIGCONT ([`Process::resume`]).
    pub fn resume(&self) -> Result<()> {
        self.process.resume()
    }

    /// Whether the process is alive (a paused process is alive).
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }

    /// Whether the process is alive and paused.
    pub fn is_paused(&self) -> bool {
        self.process.is_paused()
    }

    /// The process id while the process is alive.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// How the last process of this node ended.
    pub fn last_exit_status(&self) -> Option<ExitStatus> {
        self.process.last_exit_status()
    }

    /// The last `n_lines` lines of the node's log.
    pub fn log_tail(&self, n_lines: usize) -> String {
        self.process.log_tail(n_lines)
    }
}
