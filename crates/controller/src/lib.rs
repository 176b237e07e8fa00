//! Conclave's membership and partition controller — the deciding part, pure: no sockets,
//! no clocks, no tasks. Time and observations come in as arguments, decisions come out,
//! so every rule is tested exhaustively and deterministically (see `tests/`). The storage
//! nodes run it (`conclave_server::groups`): one active instance writes each map it
//! decides as one store transaction, guarded by the map's generation and the
//! controller's epoch.
//!
//! Split by step, like openraft's `engine/handler/`:
//! - [`placement`]: the target replica sets — consistent hashing with bounded load,
//!   weights, zone anti-affinity;
//! - [`plan`]: current map vs target → hand-over steps within per-member and per-group
//!   limits, delayed while the member set settles;
//! - [`handoff`]: one partition's acknowledged move (syncing → ready → leadership moves →
//!   releasing → removed), abandoned on death, timeout or a leadership change;
//! - [`leader`]: one leader per partition among its ready replicas, balanced;
//! - [`decide`]: one controller step, combining the above;
//! - [`hash`]: the routing hash clients compute (`partition_for`), with test vectors.

#![warn(missing_docs)]

pub mod decide;
pub mod handoff;
pub mod hash;
pub mod leader;
pub mod placement;
pub mod plan;
pub mod types;

pub use decide::{decide, Decision, Event, Input};
pub use hash::partition_for;
pub use placement::{place, Target};
pub use types::*;
