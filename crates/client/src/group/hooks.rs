//! What a member is told about its partitions.

use std::future::Future;

use conclave_controller::{MemberId, PartitionId};

pub use super::map::Role;
use crate::election::Epoch;

/// Callbacks of a [`super::Membership`], delivered one at a time from one task, in map
/// order, each awaited before the next — and before the controller is told: a partition
/// is reported ready only after `on_assigned` returns, released only after
/// `on_unassigned` returns, so the controller's hand-over waits for the application.
///
/// Per partition the order is: `on_assigned` before `on_leader_elected`; `on_leader_lost`
/// before `on_unassigned`; never two `on_leader_elected` without an `on_leader_lost`
/// between. `on_leader_lost` also fires, for every partition led, as soon as the
/// member's session lease can no longer be assumed alive (its local deadline, as
/// [`crate::Lease::lost`]) — before the cluster can let anyone else lead it; a hook
/// running at that moment is cancelled (its future dropped).
///
/// Every method has an empty default; implement the ones you need.
pub trait GroupHooks: Send + Sync + 'static {
    /// This member was given `partition` (`role` says whether it is expected to lead).
    /// `previous_owner` held it before — the replica it replaces, or the leader — to
    /// copy the data from.
    fn on_assigned(
        &self,
        _partition: PartitionId,
        _role: Role,
        _previous_owner: Option<MemberId>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// This member no longer holds `partition` (it is being moved to `new_owner`, or its
    /// move here was given up).
    fn on_unassigned(
        &self,
        _partition: PartitionId,
        _new_owner: Option<MemberId>,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// This member leads `partition` at `epoch`: fence writes with
    /// [`super::PartitionLeadership::guard`].
    fn on_leader_elected(&self, _partition: PartitionId, _epoch: Epoch) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// This member no longer leads `partition`: stop accepting writes for it now.
    fn on_leader_lost(&self, _partition: PartitionId) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// `member` became a replica of `partition`, which this member holds.
    fn on_replica_added(
        &self,
        _partition: PartitionId,
        _member: MemberId,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// `member` is no longer a replica of `partition`, which this member holds.
    fn on_replica_removed(
        &self,
        _partition: PartitionId,
        _member: MemberId,
    ) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// No hooks: a member that only wants to be counted and routed to.
impl GroupHooks for () {}
