//! Test support for Conclave: starts real `conclave` node processes on loopback,
//! kills, pauses, restarts and partitions them, and waits on conditions with deadlines.
//!
//! The pieces, by topic:
//! - [`ports`]: free loopback ports, never handed out twice within one test binary.
//! - [`process`]: one child process ([`Process`]): a node, or an application process a
//!   test drives; its log file and signals.
//! - [`node`]: one node process ([`Node`]): its command line over a [`Process`].
//! - [`cluster`]: a cluster of nodes in a temporary directory ([`Cluster`]).
//! - [`proxy`]: the peer proxy that makes network partitions possible ([`PeerProxy`]).
//! - [`wait`]: polling a condition until a deadline ([`wait_until`]).
//! - [`etcd`]: etcd v3 client helpers ([`client`], [`leader_index`]).
//! - [`binary`]: finding the node binary from other crates' tests ([`node_binary`]).
//! - [`golden`]: golden files of stored and wire formats ([`GoldenSet`]).
//! - [`certs`]: a test CA and the certificates it issues, as PEM files ([`TestCa`]).
//! - [`tls`]: a cluster speaking TLS on client and peer ports ([`TlsCluster`]).
//!
//! Everything that owns a process kills it when dropped, also when a test panics; and
//! child processes are asked by the kernel to die with the test binary (Linux
//! `PR_SET_PDEATHSIG`), so a test run leaves no orphan nodes behind.
//!
//! A test in `crates/server/tests` (where Cargo provides `CARGO_BIN_EXE_conclave`):
//!
//! ```no_run
//! use std::time::Duration;
//! use conclave_testkit::{client, leader_index, wait_until, Cluster, ClusterOptions};
//!
//! # async fn leader_isolation(bin: &std::path::Path) -> Result<(), conclave_testkit::Error> {
//! // In a test: let bin = std::path::Path::new(env!("CARGO_BIN_EXE_conclave"));
//! let cluster = Cluster::start(bin, ClusterOptions::default())?;
//! let old = leader_index(&cluster, Duration::from_secs(10)).await?;
//! cluster.isolate(old);
//! let new = wait_until("a new leader", Duration::from_secs(10), || async {
//!     leader_index(&cluster, Duration::from_secs(1)).await.ok().filter(|&i| i != old)
//! })
//! .await?;
//! let _kv = client(cluster.node(new).client_url()).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod binary;
pub mod certs;
pub mod client_proxy;
pub mod cluster;
pub mod error;
pub mod etcd;
pub mod golden;
pub mod node;
pub mod ports;
pub mod process;
pub mod proxy;
mod spawn;
pub mod tls;
pub mod wait;

pub use binary::node_binary;
pub use certs::{CertFiles, TestCa};
pub use client_proxy::ClientProxy;
pub use cluster::{Cluster, ClusterOptions};
pub use error::{Error, Result};
pub use etcd::{client, leader_index};
pub use golden::{Coverage, GoldenSet};
pub use node::{Node, NodeSpec};
pub use ports::{free_port, unique_port};
pub use process::Process;
pub use proxy::{node_of_source, peer_ip, PeerProxy};
pub use tls::{TlsCluster, TlsClusterOptions, TlsMember};
pub use wait::{wait_until, wait_until_ok, WaitError};
