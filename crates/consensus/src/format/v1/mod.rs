//! FROZEN: layout version 1 of every kind, which is exactly what the builds before the
//! format module wrote (postcard of openraft's and our in-memory types; the golden files
//! in `tests/golden/v1/` were written by such a build). The wire types here mirror those
//! types field for field and variant for variant; they are never edited. A later layout
//! goes into a `v2` module beside this one, and `v1` then converts into `v2` instead of
//! into the in-memory types.
//!
//! By topic: `raft` (log ids, votes, entries, memberships, WAL records), `command` (the
//! replicated commands and mvcc's write requests, alarms), `outcome` (command results,
//! mvcc's responses and errors), `rpc` (openraft's RPCs and their results), `peer`
//! (`RaftService.Forward`), `snapshot` (snapshot meta, record frames, the streamed
//! offer), `identity` (`member.json`).

pub mod command;
pub mod identity;
pub mod outcome;
pub mod peer;
pub mod raft;
pub mod rpc;
pub mod snapshot;

/// A decoded wire value that does not describe a valid in-memory value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);
