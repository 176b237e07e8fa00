//! The testkit's error type.

use std::io;
use std::time::Duration;

use crate::wait::WaitError;

/// Result alias for the testkit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while starting, stopping or observing test nodes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed; `context` says which one and on what.
    #[error("{context}: {source}")]
    Io {
        /// What the testkit was doing, e.g. "starting n1 from target/release/conclave".
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A node index outside `1..=count` was used.
    #[error("no node n{index} in this cluster: it has {count} nodes, numbered from 1")]
    NoSuchNode {
        /// The index asked for.
        index: usize,
        /// How many nodes the cluster has.
        count: usize,
    },

    /// `start` was called on a node whose process is still running.
    #[error("node {name} is already running as pid {pid}: kill or terminate it before starting it again")]
    AlreadyRunning {
        /// The node's name.
        name: String,
        /// The running process.
        pid: u32,
    },

    /// A signal-based operation (terminate, pause, resume) was asked of a node that is not running.
    #[error("node {name} is not running: start or restart it first")]
    NotRunning {
        /// The node's name.
        name: String,
    },

    /// A node did not exit within the deadline after SIGTERM; it has been killed with SIGKILL.
    #[error("node {name} did not exit within {timeout:?} after SIGTERM, so it was killed with SIGKILL; last log lines:\n{log_tail}")]
    ShutdownTimeout {
        /// The node's name.
        name: String,
        /// How long the testkit waited.
        timeout: Duration,
        /// The end of the node's log, to see where shutdown hung.
        log_tail: String,
    },

    /// The peer proxy needs a tokio runtime and none is current.
    #[error("no tokio runtime is running: the peer proxy needs one; call this from inside #[tokio::test(flavor = \"multi_thread\")]")]
    NoRuntime,

    /// The cluster options cannot describe a cluster.
    #[error("invalid cluster options: {0}")]
    InvalidOptions(String),

    /// The etcd client failed to connect or a request failed.
    #[error("etcd client for {endpoint}: {source}")]
    Etcd {
        /// The client URL that was used.
        endpoint: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },

    /// The test environment is not set up (e.g. the node binary was not built).
    #[error("test setup: {0}")]
    Setup(String),

    /// A condition did not hold before its deadline.
    #[error(transparent)]
    Wait(#[from] WaitError),
}

impl Error {
    /// Wraps an I/O error with what the testkit was doing.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
