//! Leadership of a partition, fenced by the store.

use conclave_contract::groups::GroupKeys;
use conclave_controller::{MemberId, PartitionId};

use crate::election::Epoch;
use crate::error::{Error, Result};
use crate::kv::Get;
use crate::txn::{Compare, Op, TxnResponse};
use crate::Client;

/// This member's leadership of one partition at one epoch. Holding it is a belief (a
/// paused process can be deposed without noticing at once); [`PartitionLeadership::guard`]
/// turns it into a check the store makes, so a deposed leader's writes are refused.
#[derive(Clone, Debug)]
pub struct PartitionLeadership {
    pub(crate) client: Client,
    pub(crate) group: String,
    pub(crate) partition: PartitionId,
    pub(crate) epoch: Epoch,
    pub(crate) member: MemberId,
    /// The create revision of this member's registration (its session).
    pub(crate) member_revision: i64,
}

impl PartitionLeadership {
    /// The partition.
    pub fn partition(&self) -> PartitionId {
        self.partition
    }

    /// The epoch: the revision of the map write that made this member the leader —
    /// strictly higher for every later leadership of the partition.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The compares that hold only while this member leads the partition at this epoch
    /// and its session is alive: the partition's leader key was last written at the epoch
    /// (any new leadership rewrites it), and this member's registration is still the one
    /// of its session (it vanishes with the lease). Put them in a txn's `when`.
    pub fn guard(&self) -> [Compare; 2] {
        let keys = GroupKeys::new(&self.group);
        [
            Compare::mod_revision(keys.leader(self.partition)).eq(self.epoch.0),
            Compare::create_revision(keys.member(&self.member)).eq(self.member_revision),
        ]
    }

    /// Runs `ops` in a txn guarded by [`PartitionLeadership::guard`]. When the store
    /// refuses it, says why: [`Error::NotLeader`] (another member leads, with a hint),
    /// [`Error::StaleEpoch`] (this member leads again, at a newer epoch), or
    /// [`Error::LeadershipLost`] (its session ended). Never re-sent once it may have
    /// reached a member.
    pub async fn txn(&self, ops: impl IntoIterator<Item = Op>) -> Result<TxnResponse> {
        let response = self.client.txn().when(self.guard()).then(ops).await?;
        if response.succeeded {
            return Ok(response);
        }
        Err(self.why_refused().await)
    }

    /// Why the guard fails now (or [`Error::LeadershipLost`] if it holds again).
    pub async fn why_refused(&self) -> Error {
        let keys = GroupKeys::new(&self.group);
        let leader = match self.client.range(Get::key(keys.leader(self.partition))).await {
            Ok(read) => read.kvs.into_iter().next(),
            Err(error) => return error,
        };
        let member = match self.client.range(Get::key(keys.member(&self.member))).await {
            Ok(read) => read.kvs.into_iter().next(),
            Err(error) => return error,
        };
        match leader {
            Some(kv) if kv.value != self.member.0.as_bytes() => Error::NotLeader {
                group: self.group.clone(),
                partition: self.partition.0,
                hint: Some(String::from_utf8_lossy(&kv.value).into_owned()),
            },
            None => Error::NotLeader {
                group: self.group.clone(),
                partition: self.partition.0,
                hint: None,
            },
            Some(kv) if kv.mod_revision != self.epoch.0 => Error::StaleEpoch {
                group: self.group.clone(),
                partition: self.partition.0,
                current: kv.mod_revision,
            },
            Some(_) => Error::LeadershipLost {
                key: String::from_utf8_lossy(&keys.member(&self.member)).into_owned(),
                reason: match member {
                    Some(_) => "the member's registration was replaced".into(),
                    None => "the member's session ended".into(),
                },
            },
        }
    }
}
