//! The openraft type configuration and the commands Conclave replicates.
//!
//! Everything openraft-specific is named here once, so an openraft bump touches this crate
//! only. These are in-memory types: how they are stored and sent is `crate::format`'s.

use std::fmt;

use conclave_mvcc::{MvccError, WriteRequest, WriteResponse};

/// A member's identity and addresses, replicated as part of the Raft membership so that
/// every node knows how to reach every other (peer URLs) and what to tell clients
/// (client URLs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberNode {
    /// The member's `--name`.
    pub name: String,
    /// URLs of the member's Raft transport (`--initial-advertise-peer-urls`).
    pub peer_urls: Vec<String>,
    /// URLs of the member's etcd client API (`--advertise-client-urls`).
    pub client_urls: Vec<String>,
}

impl fmt::Display for MemberNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.peer_urls.join(","))
    }
}

/// A state-machine command: one entry of the replicated log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// An etcd KV or lease mutation (put, delete range, txn, compact, lease changes).
    Write(WriteRequest),
    /// Raise or clear an alarm (etcd's Maintenance.Alarm).
    Alarm(AlarmChange),
}

/// etcd's alarm types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlarmKind {
    /// A member's store exceeded its quota: writes are refused until disarmed.
    NoSpace,
    /// A member found its data corrupt.
    Corrupt,
}

/// One raised alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alarm {
    /// The member the alarm is about.
    pub member_id: u64,
    /// What it is.
    pub kind: AlarmKind,
}

/// A change to the replicated alarm list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmChange {
    /// Raise this alarm.
    Activate(Alarm),
    /// Clear this alarm.
    Deactivate(Alarm),
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Alarm(change) => write!(f, "alarm({change:?})"),
            Command::Write(request) => f.write_str(match request {
                WriteRequest::Put(_) => "put",
                WriteRequest::DeleteRange(_) => "delete_range",
                WriteRequest::Txn(_) => "txn",
                WriteRequest::Compact { .. } => "compact",
                WriteRequest::LeaseGrant { .. } => "lease_grant",
                WriteRequest::LeaseRevoke { .. } => "lease_revoke",
                WriteRequest::LeaseCheckpoint { .. } => "lease_checkpoint",
            }),
        }
    }
}

/// What applying one [`Command`] produced, returned to the client that proposed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    /// The store revision after the command was applied (the response header revision).
    pub revision: i64,
    /// The command's response, or the deterministic error every replica computed for it.
    pub outcome: Result<WriteResponse, MvccError>,
}

openraft::declare_raft_types!(
    /// Conclave's openraft type configuration.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = MemberNode,
);

/// The Raft handle of one group.
pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachine>;
/// A log entry.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// A log id (term, leader, index).
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A persisted vote.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// Membership as stored in the state machine.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A membership: voter configs and every member's node.
pub type Membership = openraft::Membership<u64, MemberNode>;
