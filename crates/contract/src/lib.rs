//! The wire contract between Conclave's members and its clients (the SDK, the gateway,
//! the CLI), written once so that the two sides cannot drift apart:
//!
//! - [`errors`]: etcd's error texts, which etcd clients (Go `clientv3`'s `rpctypes`, this
//!   SDK) match exactly; the server sends them and the SDK recognises them from here;
//! - [`keys`]: etcd's key-range conventions (`prefix_end`);
//! - [`groups`]: where partition groups live in the keyspace (the reserved prefix), which
//!   the nodes write and the SDK's fencing compares name;
//! - [`queue`]: the contender queue elections and locks share, in etcd's key layout
//!   (`<name>/<lease id as Go's %x>`): the requests that join, inspect and leave it and
//!   the rule that decides who is first. Pure: it builds etcd v3 messages and reads their
//!   answers; the callers send them (the server through Raft, the SDK over gRPC);
//! - [`lease_id`]: lease ids chosen by a client, so a retried grant is recognised;
//! - [`retry`]: whether a failed gRPC call certainly never reached its target (the only
//!   case in which a write may be sent again), and how to describe a failure.

#![warn(missing_docs)]

pub mod errors;
pub mod groups;
pub mod keys;
pub mod lease_id;
pub mod queue;
pub mod retry;
