//! The public data model: etcd's KV messages as plain Rust values.
//!
//! These are in-memory types only: the consensus layer, which ships [`WriteRequest`]s
//! through Raft and results back to members, owns how they are encoded (its `format`
//! module, with a frozen layout per version), and the store's own records are
//! `encoding`'s. So fields and variants here may change without changing any stored byte.

use std::fmt;

/// Identifies one Raft group's slice of the keyspace.
///
/// Guarantees: every sled tree a [`crate::Store`] touches carries this id in its name, so
/// several groups can share one `sled::Db` without seeing each other's data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub u64);

impl fmt::Display for GroupId {
    /// Formats the group as its plain decimal id (`1`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One version of one key, exactly as etcd's `mvccpb.KeyValue`.
///
/// Guarantees: `version` is 1 at creation and +1 per put; `create_revision` is the
/// revision of the put that (re)created the key since its last delete; `mod_revision` is
/// the revision of the last put.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyValue {
    /// The user key (never empty for a stored key).
    pub key: Vec<u8>,
    /// Revision of the put that created the key (reset by delete).
    pub create_revision: i64,
    /// Revision of the last modification.
    pub mod_revision: i64,
    /// Number of puts since creation (1 at creation).
    pub version: i64,
    /// The value bytes.
    pub value: Vec<u8>,
    /// Attached lease id, 0 for none.
    pub lease: i64,
}

/// What an [`Event`] did to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change of one key, as etcd's `mvccpb.Event`.
///
/// Guarantees: a `Put` event's `kv` is the full new version; a `Delete` event's `kv`
/// carries only `key` and `mod_revision` (= the deletion revision), the other fields
/// zero/empty, as etcd sends it. `prev_kv` is the version the change replaced, when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The new version (put) or the key and deletion revision (delete).
    pub kv: KeyValue,
    /// The replaced version, if any and if it was requested/available.
    pub prev_kv: Option<KeyValue>,
}

/// Requested order of a range result (etcd `SortOrder`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SortOrder {
    /// No explicit order: key order, unless the sort target is not `Key`.
    #[default]
    None,
    /// Ascending by the sort target.
    Ascend,
    /// Descending by the sort target.
    Descend,
}

/// Field a range result is sorted by (etcd `SortTarget`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SortTarget {
    /// The key bytes.
    #[default]
    Key,
    /// `version`.
    Version,
    /// `create_revision`.
    Create,
    /// `mod_revision`.
    Mod,
    /// The value bytes.
    Value,
}

/// A read of a key or key range at a revision (etcd `RangeRequest`).
///
/// `range_end`: empty = the single `key`; `"\0"` = every key `>= key`; otherwise
/// `[key, range_end)`. `revision <= 0` reads the latest revision. `limit <= 0` is
/// unlimited. The min/max revision filters are inactive when 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeRequest {
    /// First key (inclusive).
    pub key: Vec<u8>,
    /// End of the range, see the type's docs.
    pub range_end: Vec<u8>,
    /// Maximum number of keys returned, <= 0 for no limit.
    pub limit: i64,
    /// Revision to read at, <= 0 for the latest.
    pub revision: i64,
    /// Result order.
    pub sort_order: SortOrder,
    /// Field the order applies to.
    pub sort_target: SortTarget,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Keep only versions with `mod_revision >=` this (0 = unset).
    pub min_mod_revision: i64,
    /// Keep only versions with `mod_revision <=` this (0 = unset).
    pub max_mod_revision: i64,
    /// Keep only versions with `create_revision >=` this (0 = unset).
    pub min_create_revision: i64,
    /// Keep only versions with `create_revision <=` this (0 = unset).
    pub max_create_revision: i64,
}

/// Result of a range (etcd `RangeResponse`, without the header).
///
/// Guarantees: `count` is the number of keys in the range at the read revision, before
/// `limit` and before the min/max filters; `more` is true when `limit` cut matches off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// The matching versions (empty for `count_only`).
    pub kvs: Vec<KeyValue>,
    /// Whether more keys matched than `limit` allowed.
    pub more: bool,
    /// Number of keys in the range.
    pub count: i64,
}

/// Create or update one key (etcd `PutRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutRequest {
    /// The key (must not be empty).
    pub key: Vec<u8>,
    /// The new value (must be empty with `ignore_value`).
    pub value: Vec<u8>,
    /// Lease to attach, 0 for none (must be 0 with `ignore_lease`).
    pub lease: i64,
    /// Return the previous version in the response.
    pub prev_kv: bool,
    /// Keep the current value (the key must exist).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist).
    pub ignore_lease: bool,
}

/// Result of a put (etcd `PutResponse`, without the header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutResponse {
    /// The replaced version, when requested and the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// Delete a key or key range (etcd `DeleteRangeRequest`); `range_end` as in [`RangeRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteRangeRequest {
    /// First key (must not be empty).
    pub key: Vec<u8>,
    /// End of the range, see [`RangeRequest`].
    pub range_end: Vec<u8>,
    /// Return the deleted versions.
    pub prev_kv: bool,
}

/// Result of a delete (etcd `DeleteRangeResponse`, without the header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteRangeResponse {
    /// Number of keys deleted.
    pub deleted: i64,
    /// The deleted versions in key order, when requested.
    pub prev_kvs: Vec<KeyValue>,
}

/// How a [`Compare`] relates the stored field to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareResult {
    /// stored == target
    Equal,
    /// stored > target
    Greater,
    /// stored < target
    Less,
    /// stored != target
    NotEqual,
}

/// Field a [`Compare`] reads, with the value it is compared to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    /// Compare `version`.
    Version(i64),
    /// Compare `create_revision`.
    Create(i64),
    /// Compare `mod_revision`.
    Mod(i64),
    /// Compare the value bytes (always false on a missing key).
    Value(Vec<u8>),
    /// Compare the lease id.
    Lease(i64),
}

/// A txn guard (etcd `Compare`).
///
/// Guarantees: a missing key compares as `KeyValue::default()` except that a `Value`
/// compare on a missing key is false; with `range_end` every key in the range must satisfy
/// the compare and an empty range behaves like a missing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    /// The key (must not be empty).
    pub key: Vec<u8>,
    /// End of the range, see [`RangeRequest`].
    pub range_end: Vec<u8>,
    /// The relation that must hold.
    pub result: CompareResult,
    /// The field and the value it is compared to.
    pub target: CompareTarget,
}

/// One operation inside a txn branch (etcd `RequestOp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOp {
    /// A read; sees the earlier writes of the same txn.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A nested txn.
    Txn(TxnRequest),
}

/// Result of one [`RequestOp`], in the same position (etcd `ResponseOp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseOp {
    /// Result of a range.
    Range(RangeResponse),
    /// Result of a put.
    Put(PutResponse),
    /// Result of a delete.
    DeleteRange(DeleteRangeResponse),
    /// Result of a nested txn.
    Txn(TxnResponse),
}

/// An atomic compare-then-branch request (etcd `TxnRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnRequest {
    /// Guards; all must hold for `success` to run, else `failure` runs.
    pub compare: Vec<Compare>,
    /// Ops run when every compare holds.
    pub success: Vec<RequestOp>,
    /// Ops run otherwise.
    pub failure: Vec<RequestOp>,
}

/// Result of a txn (etcd `TxnResponse`, without the header).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether the compares held (the success branch ran).
    pub succeeded: bool,
    /// One response per op of the branch that ran, in order.
    pub responses: Vec<ResponseOp>,
}

/// A client request that goes through Raft and is applied by [`crate::WriteTxn::execute`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteRequest {
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A txn (read-only txns are accepted too and change nothing).
    Txn(TxnRequest),
    /// Drop history superseded at or before `revision`.
    Compact {
        /// The new compact revision.
        revision: i64,
    },
    /// Grant a lease (etcd `LeaseGrant` as applied): `LeaseExists` if `id` is taken,
    /// `LeaseTtlTooLarge` above 9,000,000,000 s. The server chooses the id when the
    /// client sends 0 and raises `ttl` to its minimum before proposing; the store keeps
    /// the `ttl` it is given. Does not bump the revision.
    LeaseGrant {
        /// The lease id (non-zero; see [`crate::validate_lease_grant`]).
        id: i64,
        /// Time to live in seconds.
        ttl: i64,
    },
    /// Revoke a lease (etcd `LeaseRevoke`, also used for expiry): deletes every key
    /// attached to it in one new revision (one delete event per key, in key order; no
    /// revision when none is attached) and removes the lease. `LeaseNotFound` if unknown.
    LeaseRevoke {
        /// The lease id.
        id: i64,
    },
    /// Record leases' remaining TTLs (etcd's internal `LeaseCheckpoint`); unknown ids are
    /// ignored. Does not bump the revision.
    LeaseCheckpoint {
        /// One entry per lease, applied in order.
        checkpoints: Vec<LeaseCheckpoint>,
    },
}

/// One lease's remaining TTL as of a checkpoint (etcd `LeaseCheckpoint`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LeaseCheckpoint {
    /// The lease id.
    pub id: i64,
    /// Remaining TTL in seconds; 0 = the full TTL (recorded after a keep-alive).
    pub remaining_ttl: i64,
}

/// A lease as stored, returned by [`crate::Store::lease`] and [`crate::Store::leases`].
///
/// Guarantees: `keys` are exactly the live keys whose latest version carries this lease,
/// in key order (left empty by [`crate::Store::leases`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lease id.
    pub id: i64,
    /// Granted TTL in seconds.
    pub ttl: i64,
    /// Remaining TTL at the last checkpoint; 0 = no checkpoint (or reset by a keep-alive),
    /// i.e. the full TTL.
    pub remaining_ttl: i64,
    /// Attached keys in key order.
    pub keys: Vec<Vec<u8>>,
}

/// Result of a [`WriteRequest`], variant for variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteResponse {
    /// Result of a put.
    Put(PutResponse),
    /// Result of a delete.
    DeleteRange(DeleteRangeResponse),
    /// Result of a txn.
    Txn(TxnResponse),
    /// The compaction was applied.
    Compact,
    /// The lease was granted.
    LeaseGrant {
        /// The lease id.
        id: i64,
        /// The stored TTL.
        ttl: i64,
    },
    /// The lease was revoked and its keys deleted.
    LeaseRevoke,
    /// The checkpoints were recorded.
    LeaseCheckpoint,
}

/// What a [`crate::WriteTxn::commit`] made durable-on-flush and visible.
///
/// Guarantees: `revision` is the store's current revision after the commit; `events`
/// are the events of every revision this commit created, in revision and sub-revision
/// order, each with `prev_kv` filled when the key had a previous version (empty when
/// nothing changed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Current revision after the commit.
    pub revision: i64,
    /// Events created by the commit, in order.
    pub events: Vec<Event>,
}
