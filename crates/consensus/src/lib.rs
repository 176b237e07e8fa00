//! Conclave's consensus core: openraft (pinned `=0.10.0-alpha.37`, wrapped entirely in this
//! crate), a purpose-built durable Raft log, the sled state machine over `mvcc`, snapshots
//! and the tonic peer transport.
//!
//! The server uses [`Node`]: `write` (any member; followers forward to the leader),
//! `linearizable_barrier` (read index), `status`, `members`, and [`PeerService`] on the
//! peer port.

pub mod alarms;
pub mod bootstrap;
pub mod error;
pub mod format;
pub mod identity;
pub mod leases;
pub mod lessor;
pub mod log_store;
pub mod maintenance;
pub mod membership;
pub mod metrics;
pub mod network;
pub mod node;
pub mod peer;
pub mod restore;
pub mod service;
pub mod snapshot;
pub mod state_machine;
pub mod types;

pub use error::{ConsensusError, Result};
pub use lessor::LeaseTtl;
pub use metrics::ConsensusMetrics;
pub use node::{Bootstrap, Member, Node, NodeConfig, NodeStatus, DEFAULT_GROUP};
pub use peer::{MembershipChange, MembershipRefusal};
pub use service::PeerService;
pub use types::{Alarm, AlarmChange, AlarmKind, Command, CommandResult, MemberNode};
