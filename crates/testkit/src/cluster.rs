//! A cluster of real `conclave` processes on loopback, with a peer proxy between them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tempfile::TempDir;

use crate::error::{Error, Result};
use crate::node::{Node, NodeSpec};
use crate::ports::unique_port;
use crate::proxy::{peer_ip, PeerProxy, MAX_NODE_INDEX};

/// Environment variable: when set (to anything but empty or `0`), cluster directories
/// are kept on disk after the test and their path is printed.
pub const KEEP_DIRS_ENV: &str = "CONCLAVE_KEEP_TEST_DIRS";
/// How many log lines of each node [`Cluster::log_dump`] shows.
const DUMP_LINES: usize = 60;

/// How to start a [`Cluster`]. Timing options left `None` use the node's defaults.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Number of initial members, named `n1..=n{size}`. Default 3.
    pub size: usize,
    /// `--snapshot-count`: applied entries between snapshots.
    pub snapshot_count: Option<u64>,
    /// `--heartbeat-interval` in milliseconds.
    pub heartbeat_ms: Option<u64>,
    /// `--election-timeout` in milliseconds.
    pub election_timeout_ms: Option<u64>,
    /// Further arguments given to every node, initial or joining, after all others.
    pub extra_args: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            size: 3,
            snapshot_count: None,
            heartbeat_ms: None,
            election_timeout_ms: None,
            extra_args: Vec::new(),
        }
    }
}

impl ClusterOptions {
    /// The options with `size` members and node defaults for everything else.
    pub fn with_size(size: usize) -> Self {
        ClusterOptions {
            size,
            ..ClusterOptions::default()
        }
    }

    /// Timing and extra arguments shared by every node of the cluster.
    fn common_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let flags = [
            ("--snapshot-count", self.snapshot_count),
            ("--heartbeat-interval", self.heartbeat_ms),
            ("--election-timeout", self.election_timeout_ms),
        ];
        for (flag, value) in flags {
            if let Some(value) = value {
                args.push(flag.to_owned());
                args.push(value.to_string());
            }
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// A running cluster: node processes, their peer proxy and a temporary directory with
/// every node's data dir and log. Nodes are indexed from 1 (`n1` is index 1).
///
/// Dropping the cluster kills every node (SIGKILL) and then removes the directory,
/// unless [`KEEP_DIRS_ENV`] is set. All methods take `&self`, so a cluster can be
/// shared between tasks with an `Arc`. Must be created inside a tokio runtime (the
/// proxy runs on it); a multi-thread runtime is expected.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    options: ClusterOptions,
    token: String,
    dir: PathBuf,
    nodes: RwLock<Vec<Arc<Node>>>,
    proxy: PeerProxy,
    // Dropped last: nodes must be dead before their data dirs go.
    _temp_dir: Option<TempDir>,
}

impl Cluster {
    /// Starts `options.size` nodes of `bin` as a new cluster and returns without
    /// waiting for them to elect a leader (see [`crate::leader_index`]).
    ///
    /// Node `i` is `n{i}`: client URL `http://127.0.0.1:{port}`, real peer listener on
    /// `127.0.0.{10+i}:{port}`, advertised peer URL `http://127.0.0.1:{proxy port}`.
    pub fn start(bin: &Path, options: ClusterOptions) -> Result<Cluster> {
        if options.size == 0 || options.size > MAX_NODE_INDEX {
            return Err(Error::InvalidOptions(format!(
                "size must be between 1 and {MAX_NODE_INDEX}, got {}",
                options.size
            )));
        }
        let proxy = PeerProxy::new()?;
        let temp_dir = tempfile::Builder::new()
            .prefix("conclave-test-")
            .tempdir()
            .map_err(|e| Error::io("creating the cluster's temporary directory", e))?;
        let (dir, temp_dir) = if keep_dirs() {
            let dir = temp_dir.keep();
            eprintln!("conclave-testkit: keeping cluster directory {}", dir.display());
            (dir, None)
        } else {
            (temp_dir.path().to_path_buf(), Some(temp_dir))
        };
        tracing::info!(dir = %dir.display(), size = options.size, "testkit: starting cluster");

        static CLUSTERS: AtomicU64 = AtomicU64::new(0);
        let token = format!(
            "conclave-test-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        );
        let cluster = Cluster {
            bin: bin.to_path_buf(),
            options,
            token,
            dir,
            nodes: RwLock::new(Vec::new()),
            proxy,
            _temp_dir: temp_dir,
        };

        let mut specs = Vec::new();
        for index in 1..=cluster.options.size {
            specs.push(cluster.new_spec(index)?);
        }
        let initial_cluster: Vec<String> = specs
            .iter()
            .map(|spec| format!("{}={}", spec.name, spec.advertise_peer_url))
            .collect();
        let initial_cluster = initial_cluster.join(",");
        let common = cluster.options.common_args();
        for mut spec in specs {
            let mut args = vec![
                "--initial-cluster".to_owned(),
                initial_cluster.clone(),
                "--initial-cluster-state".to_owned(),
                "new".to_owned(),
                "--initial-cluster-token".to_owned(),
                cluster.token.clone(),
            ];
            args.extend(common.iter().cloned());
            spec.extra_args = args;
            let node = Arc::new(Node::new(&cluster.bin, spec));
            // Registered before starting, so a failed start is still cleaned up by Drop.
            cluster.write_nodes().push(Arc::clone(&node));
            node.start()?;
        }
        Ok(cluster)
    }

    /// Starts one more node, `n{k}` with the next free index `k`, that joins the running
    /// cluster with `--join` through `join_via` (client URLs; if empty, those of every
    /// running, unpaused node). It gets its own proxy route and the cluster's timing and
    /// extra options. Returns `k`.
    pub fn add_node_joining(&self, join_via: &[String]) -> Result<usize> {
        let join_via = if join_via.is_empty() {
            self.running_client_endpoints()
        } else {
            join_via.to_vec()
        };
        // Held throughout, so two concurrent joins cannot pick the same index.
        let mut nodes = self.write_nodes();
        let index = nodes.len() + 1;
        if index > MAX_NODE_INDEX {
            return Err(Error::InvalidOptions(format!(
                "a cluster holds at most {MAX_NODE_INDEX} nodes"
            )));
        }
        let mut spec = self.new_spec(index)?;
        let mut args = vec!["--join".to_owned(), join_via.join(",")];
        args.extend(self.options.common_args());
        spec.extra_args = args;
        let node = Arc::new(Node::new(&self.bin, spec));
        nodes.push(Arc::clone(&node));
        drop(nodes);
        node.start()?;
        Ok(index)
    }

    /// Node `index` (1-based).
    ///
    /// # Panics
    /// If there is no such node; use [`Cluster::try_node`] to get an error instead.
    pub fn node(&self, index: usize) -> Arc<Node> {
        match self.try_node(index) {
            Ok(node) => node,
            Err(e) => panic!("{e}"),
        }
    }

    /// Node `index` (1-based), or [`Error::NoSuchNode`].
    pub fn try_node(&self, index: usize) -> Result<Arc<Node>> {
        let nodes = self.read_nodes();
        index
            .checked_sub(1)
            .and_then(|i| nodes.get(i))
            .cloned()
            .ok_or(Error::NoSuchNode {
                index,
                count: nodes.len(),
            })
    }

    /// Every node, in index order (element 0 is `n1`), running or not.
    pub fn nodes(&self) -> Vec<Arc<Node>> {
        self.read_nodes().clone()
    }

    /// How many nodes the cluster has (initial and joined), running or not.
    pub fn size(&self) -> usize {
        self.read_nodes().len()
    }

    /// Client URLs of every node, in index order, running or not.
    pub fn client_endpoints(&self) -> Vec<String> {
        self.read_nodes()
            .iter()
            .map(|n| n.client_url().to_owned())
            .collect()
    }

    /// Client URLs of the nodes that are running and not paused.
    pub fn running_client_endpoints(&self) -> Vec<String> {
        self.read_nodes()
            .iter()
            .filter(|n| n.is_running() && !n.is_paused())
            .map(|n| n.client_url().to_owned())
            .collect()
    }

    /// An etcd client connected to node `index` only; see [`crate::client`].
    pub async fn client(&self, index: usize) -> Result<etcd_client::Client> {
        let node = self.try_node(index)?;
        crate::etcd::client(node.client_url()).await
    }

    /// Kills node `index` with SIGKILL (a crash) and reaps it.
    pub fn kill(&self, index: usize) -> Result<()> {
        self.try_node(index)?.kill()
    }

    /// Starts node `index` again with the same flags and data dir; it must not be running.
    pub fn restart(&self, index: usize) -> Result<()> {
        self.try_node(index)?.start()
    }

    /// Starts stopped node `index` from `bin` instead of the binary it ran (one step of a
    /// rolling upgrade or downgrade), with the same flags and data dir; its later restarts
    /// use `bin` too. Handles to the node taken before refer to the stopped process.
    pub fn restart_with_binary(&self, index: usize, bin: &Path) -> Result<()> {
        let node = {
            let mut nodes = self.write_nodes();
            let count = nodes.len();
            let slot = index
                .checked_sub(1)
                .and_then(|i| nodes.get_mut(i))
                .ok_or(Error::NoSuchNode { index, count })?;
            if let Some(pid) = slot.pid() {
                return Err(Error::AlreadyRunning {
                    name: slot.name().to_owned(),
                    pid,
                });
            }
            let node = Arc::new(Node::new(bin, slot.spec().clone()));
            *slot = Arc::clone(&node);
            node
        };
        node.start()
    }

    /// Stops node `index` gracefully with SIGTERM and returns its exit status; see
    /// [`Node::terminate`].
    pub fn terminate(&self, index: usize) -> Result<ExitStatus> {
        self.try_node(index)?.terminate()
    }

    /// Freezes node `index` with SIGSTOP; see [`Node::pause`].
    pub fn pause(&self, index: usize) -> Result<()> {
        self.try_node(index)?.pause()
    }

    /// Continues node `index` after [`Cluster::pause`].
    pub fn resume(&self, index: usize) -> Result<()> {
        self.try_node(index)?.resume()
    }

    /// The peer proxy, for partitions.
    pub fn proxy(&self) -> &PeerProxy {
        &self.proxy
    }

    /// Cuts node `index` off from all other nodes; see [`PeerProxy::isolate`].
    pub fn isolate(&self, index: usize) {
        self.proxy.isolate(index);
    }

    /// Cuts the link between nodes `a` and `b`; see [`PeerProxy::block`].
    pub fn block(&self, a: usize, b: usize) {
        self.proxy.block(a, b);
    }

    /// Stops the connections node `from` opens to node `to`; see
    /// [`PeerProxy::block_direction`].
    pub fn block_direction(&self, from: usize, to: usize) {
        self.proxy.block_direction(from, to);
    }

    /// Removes every partition; see [`PeerProxy::heal`].
    pub fn heal(&self) {
        self.proxy.heal();
    }

    /// The end of every node's log with its state, for assertion messages.
    pub fn log_dump(&self) -> String {
        let mut dump = format!("cluster directory: {}\n", self.dir.display());
        for node in self.nodes() {
            let state = match node.pid() {
                Some(pid) if node.is_paused() => format!("paused, pid {pid}"),
                Some(pid) => format!("running, pid {pid}"),
                None => match node.last_exit_status() {
                    Some(status) => format!("not running, {status}"),
                    None => "not running".to_owned(),
                },
            };
            dump.push_str(&format!(
                "===== {} ({state}; {}; last {DUMP_LINES} lines of {}) =====\n{}\n",
                node.name(),
                node.client_url(),
                node.log_path().display(),
                node.log_tail(DUMP_LINES)
            ));
        }
        dump
    }

    /// The directory holding every node's data dir (`n{i}/`) and log (`n{i}.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster's `--initial-cluster-token`, unique per cluster.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Chooses ports and a proxy route for node `index`; `extra_args` is left empty.
    fn new_spec(&self, index: usize) -> Result<NodeSpec> {
        let name = format!("n{index}");
        let ip = peer_ip(index);
        let peer_port =
            unique_port(ip).map_err(|e| Error::io(format!("choosing a peer port for {name} on {ip}"), e))?;
        let peer_listen_addr = SocketAddr::new(ip, peer_port);
        let proxy_addr = self.proxy.add_route(index, peer_listen_addr)?;
        let client_port = unique_port(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .map_err(|e| Error::io(format!("choosing a client port for {name}"), e))?;
        Ok(NodeSpec {
            client_url: format!("http://127.0.0.1:{client_port}"),
            peer_listen_addr,
            advertise_peer_url: format!("http://{proxy_addr}"),
            data_dir: self.dir.join(&name),
            log_path: self.dir.join(format!("{name}.log")),
            extra_args: Vec::new(),
            name,
        })
    }

    fn read_nodes(&self) -> RwLockReadGuard<'_, Vec<Arc<Node>>> {
        // The vector is only ever pushed to, so it is consistent even after a panic.
        self.nodes.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_nodes(&self) -> RwLockWriteGuard<'_, Vec<Arc<Node>>> {
        self.nodes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Kill explicitly: a test may still hold an Arc<Node>, but the directory is about to go.
        for node in self.read_nodes().iter() {
            if let Err(e) = node.kill() {
                tracing::warn!("testkit: {e}");
            }
        }
        if self._temp_dir.is_none() {
            eprintln!("conclave-testkit: kept cluster directory {}", self.dir.display());
        }
    }
}

fn keep_dirs() -> bool {
    std::env::var_os(KEEP_DIRS_ENV).is_some_and(|value| !value.is_empty() && value != "0")
}
