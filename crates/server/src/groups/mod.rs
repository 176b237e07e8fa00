//! Partition groups on the storage nodes: the runtime of the pure controller
//! (`conclave_controller`) and the `conclave.partition.v1.Groups` service
//! (docs/partitions.md).
//!
//! - `conclave_contract::groups`: where a group lives in the keyspace (the reserved prefix
//!   `/_conclave/`); [`guard`] keeps clients' KV writes out of it;
//! - [`records`]: the stored, versioned JSON forms of its records;
//! - [`state`]: a group read in one snapshot, and the store requests it is written with;
//! - [`controller`]: the active controller on the Raft leader — decide, then write each
//!   map as one txn guarded by the generation and the controller's epoch;
//! - [`members`]: join, leave, drain, report;
//! - [`watch`]: the map's changes after a generation, without gap or duplicate;
//! - [`service`]: the gRPC service; [`convert`]: its messages.

pub mod controller;
pub mod convert;
pub mod error;
pub mod guard;
pub mod members;
pub mod records;
#[cfg(test)]
mod records_golden;
pub mod service;
pub mod state;
pub mod watch;

pub use error::GroupError;
pub use service::GroupsApi;
pub use state::GroupView;
