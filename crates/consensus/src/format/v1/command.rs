//! FROZEN: layout version 1 of the replicated commands: `Command`, every mvcc write
//! request inside it, and alarms. Do not add, remove or reorder fields or variants here
//! (postcard encodes their order); a new layout is a `v2` module with an upgrade from
//! these types. Only the conversions at the bottom follow the in-memory types.
//!
//! Byte fields borrow (`Cow`) so that a log entry is encoded without copying its keys
//! and values; decoding always owns.

use std::borrow::Cow;

use conclave_mvcc as mvcc;
use serde::{Deserialize, Serialize};

use crate::types;

/// `types::Command`.
#[derive(Debug, Serialize, Deserialize)]
pub enum Command<'a> {
    /// 0
    Write(WriteRequest<'a>),
    /// 1
    Alarm(AlarmChange),
}

/// `types::AlarmKind`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum AlarmKind {
    /// 0
    NoSpace,
    /// 1
    Corrupt,
}

/// `types::Alarm`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Alarm {
    /// The member the alarm is about.
    pub member_id: u64,
    /// What it is.
    pub kind: AlarmKind,
}

/// `types::AlarmChange`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum AlarmChange {
    /// 0
    Activate(Alarm),
    /// 1
    Deactivate(Alarm),
}

/// The replicated alarm list (state-machine meta `alarms`): a postcard sequence.
#[derive(Debug, Serialize, Deserialize)]
pub struct AlarmList(pub Vec<Alarm>);

/// `mvcc::WriteRequest`.
#[derive(Debug, Serialize, Deserialize)]
pub enum WriteRequest<'a> {
    /// 0
    Put(PutRequest<'a>),
    /// 1
    DeleteRange(DeleteRangeRequest<'a>),
    /// 2
    Txn(TxnRequest<'a>),
    /// 3
    Compact {
        /// The new compact revision.
        revision: i64,
    },
    /// 4
    LeaseGrant {
        /// Lease id.
        id: i64,
        /// TTL in seconds.
        ttl: i64,
    },
    /// 5
    LeaseRevoke {
        /// Lease id.
        id: i64,
    },
    /// 6
    LeaseCheckpoint {
        /// One entry per lease.
        checkpoints: Vec<LeaseCheckpoint>,
    },
}

/// `mvcc::LeaseCheckpoint`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LeaseCheckpoint {
    /// Lease id.
    pub id: i64,
    /// Remaining TTL in seconds (0: the full TTL).
    pub remaining_ttl: i64,
}

/// `mvcc::PutRequest`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PutRequest<'a> {
    /// Key.
    pub key: Cow<'a, [u8]>,
    /// Value.
    pub value: Cow<'a, [u8]>,
    /// Lease id, 0 for none.
    pub lease: i64,
    /// Return the previous version.
    pub prev_kv: bool,
    /// Keep the current value.
    pub ignore_value: bool,
    /// Keep the current lease.
    pub ignore_lease: bool,
}

/// `mvcc::DeleteRangeRequest`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeleteRangeRequest<'a> {
    /// First key.
    pub key: Cow<'a, [u8]>,
    /// End of the range.
    pub range_end: Cow<'a, [u8]>,
    /// Return the deleted versions.
    pub prev_kv: bool,
}

/// `mvcc::TxnRequest`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TxnRequest<'a> {
    /// Guards.
    pub compare: Vec<Compare<'a>>,
    /// Ops when every guard holds.
    pub success: Vec<RequestOp<'a>>,
    /// Ops otherwise.
    pub failure: Vec<RequestOp<'a>>,
}

/// `mvcc::Compare`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Compare<'a> {
    /// Key.
    pub key: Cow<'a, [u8]>,
    /// End of the range.
    pub range_end: Cow<'a, [u8]>,
    /// Relation.
    pub result: CompareResult,
    /// Field and value.
    pub target: CompareTarget<'a>,
}

/// `mvcc::CompareResult`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum CompareResult {
    /// 0
    Equal,
    /// 1
    Greater,
    /// 2
    Less,
    /// 3
    NotEqual,
}

/// `mvcc::CompareTarget`.
#[derive(Debug, Serialize, Deserialize)]
pub enum CompareTarget<'a> {
    /// 0
    Version(i64),
    /// 1
    Create(i64),
    /// 2
    Mod(i64),
    /// 3
    Value(Cow<'a, [u8]>),
    /// 4
    Lease(i64),
}

/// `mvcc::RequestOp`.
#[derive(Debug, Serialize, Deserialize)]
pub enum RequestOp<'a> {
    /// 0
    Range(RangeRequest<'a>),
    /// 1
    Put(PutRequest<'a>),
    /// 2
    DeleteRange(DeleteRangeRequest<'a>),
    /// 3
    Txn(TxnRequest<'a>),
}

/// `mvcc::RangeRequest`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RangeRequest<'a> {
    /// First key.
    pub key: Cow<'a, [u8]>,
    /// End of the range.
    pub range_end: Cow<'a, [u8]>,
    /// Key limit.
    pub limit: i64,
    /// Read revision.
    pub revision: i64,
    /// Order.
    pub sort_order: SortOrder,
    /// Field the order applies to.
    pub sort_target: SortTarget,
    /// Keys only.
    pub keys_only: bool,
    /// Count only.
    pub count_only: bool,
    /// Filter.
    pub min_mod_revision: i64,
    /// Filter.
    pub max_mod_revision: i64,
    /// Filter.
    pub min_create_revision: i64,
    /// Filter.
    pub max_create_revision: i64,
}

/// `mvcc::SortOrder`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum SortOrder {
    /// 0
    None,
    /// 1
    Ascend,
    /// 2
    Descend,
}

/// `mvcc::SortTarget`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum SortTarget {
    /// 0
    Key,
    /// 1
    Version,
    /// 2
    Create,
    /// 3
    Mod,
    /// 4
    Value,
}

// ---- conversions: these follow the in-memory types -------------------------------------

fn borrow(bytes: &[u8]) -> Cow<'_, [u8]> {
    Cow::Borrowed(bytes)
}

impl<'a> From<&'a types::Command> for Command<'a> {
    fn from(command: &'a types::Command) -> Self {
        match command {
            types::Command::Write(request) => Command::Write(request.into()),
            types::Command::Alarm(change) => Command::Alarm(change.into()),
        }
    }
}

impl From<Command<'_>> for types::Command {
    fn from(command: Command<'_>) -> Self {
        match command {
            Command::Write(request) => types::Command::Write(request.into()),
            Command::Alarm(change) => types::Command::Alarm(change.into()),
        }
    }
}

impl From<&types::AlarmKind> for AlarmKind {
    fn from(kind: &types::AlarmKind) -> Self {
        match kind {
            types::AlarmKind::NoSpace => AlarmKind::NoSpace,
            types::AlarmKind::Corrupt => AlarmKind::Corrupt,
        }
    }
}

impl From<AlarmKind> for types::AlarmKind {
    fn from(kind: AlarmKind) -> Self {
        match kind {
            AlarmKind::NoSpace => types::AlarmKind::NoSpace,
            AlarmKind::Corrupt => types::AlarmKind::Corrupt,
        }
    }
}

impl From<&types::Alarm> for Alarm {
    fn from(alarm: &types::Alarm) -> Self {
        Alarm {
            member_id: alarm.member_id,
            kind: (&alarm.kind).into(),
        }
    }
}

impl From<Alarm> for types::Alarm {
    fn from(alarm: Alarm) -> Self {
        types::Alarm {
            member_id: alarm.member_id,
            kind: alarm.kind.into(),
        }
    }
}

impl From<&types::AlarmChange> for AlarmChange {
    fn from(change: &types::AlarmChange) -> Self {
        match change {
            types::AlarmChange::Activate(alarm) => AlarmChange::Activate(alarm.into()),
            types::AlarmChange::Deactivate(alarm) => AlarmChange::Deactivate(alarm.into()),
        }
    }
}

impl From<AlarmChange> for types::AlarmChange {
    fn from(change: AlarmChange) -> Self {
        match change {
            AlarmChange::Activate(alarm) => types::AlarmChange::Activate(alarm.into()),
            AlarmChange::Deactivate(alarm) => types::AlarmChange::Deactivate(alarm.into()),
        }
    }
}

impl From<&Vec<types::Alarm>> for AlarmList {
    fn from(alarms: &Vec<types::Alarm>) -> Self {
        AlarmList(alarms.iter().map(Alarm::from).collect())
    }
}

impl From<AlarmList> for Vec<types::Alarm> {
    fn from(alarms: AlarmList) -> Self {
        alarms.0.into_iter().map(types::Alarm::from).collect()
    }
}

impl<'a> From<&'a mvcc::WriteRequest> for WriteRequest<'a> {
    fn from(request: &'a mvcc::WriteRequest) -> Self {
        match request {
            mvcc::WriteRequest::Put(put) => WriteRequest::Put(put.into()),
            mvcc::WriteRequest::DeleteRange(delete) => WriteRequest::DeleteRange(delete.into()),
            mvcc::WriteRequest::Txn(txn) => WriteRequest::Txn(txn.into()),
            mvcc::WriteRequest::Compact { revision } => WriteRequest::Compact { revision: *revision },
            mvcc::WriteRequest::LeaseGrant { id, ttl } => WriteRequest::LeaseGrant { id: *id, ttl: *ttl },
            mvcc::WriteRequest::LeaseRevoke { id } => WriteRequest::LeaseRevoke { id: *id },
            mvcc::WriteRequest::LeaseCheckpoint { checkpoints } => WriteRequest::LeaseCheckpoint {
                checkpoints: checkpoints
                    .iter()
                    .map(|c| LeaseCheckpoint {
                        id: c.id,
                        remaining_ttl: c.remaining_ttl,
                    })
                    .collect(),
            },
        }
    }
}

impl From<WriteRequest<'_>> for mvcc::WriteRequest {
    fn from(request: WriteRequest<'_>) -> Self {
        match request {
            WriteRequest::Put(put) => mvcc::WriteRequest::Put(put.into()),
            WriteRequest::DeleteRange(delete) => mvcc::WriteRequest::DeleteRange(delete.into()),
            WriteRequest::Txn(txn) => mvcc::WriteRequest::Txn(txn.into()),
            WriteRequest::Compact { revision } => mvcc::WriteRequest::Compact { revision },
            WriteRequest::LeaseGrant { id, ttl } => mvcc::WriteRequest::LeaseGrant { id, ttl },
            WriteRequest::LeaseRevoke { id } => mvcc::WriteRequest::LeaseRevoke { id },
            WriteRequest::LeaseCheckpoint { checkpoints } => mvcc::WriteRequest::LeaseCheckpoint {
                checkpoints: checkpoints
                    .into_iter()
                    .map(|c| mvcc::LeaseCheckpoint {
                        id: c.id,
                        remaining_ttl: c.remaining_ttl,
                    })
                    .collect(),
            },
        }
    }
}

impl<'a> From<&'a mvcc::PutRequest> for PutRequest<'a> {
    fn from(put: &'a mvcc::PutRequest) -> Self {
        PutRequest {
            key: borrow(&put.key),
            value: borrow(&put.value),
            lease: put.lease,
            prev_kv: put.prev_kv,
            ignore_value: put.ignore_value,
            ignore_lease: put.ignore_lease,
        }
    }
}

impl From<PutRequest<'_>> for mvcc::PutRequest {
    fn from(put: PutRequest<'_>) -> Self {
        mvcc::PutRequest {
            key: put.key.into_owned(),
            value: put.value.into_owned(),
            lease: put.lease,
            prev_kv: put.prev_kv,
            ignore_value: put.ignore_value,
            ignore_lease: put.ignore_lease,
        }
    }
}

impl<'a> From<&'a mvcc::DeleteRangeRequest> for DeleteRangeRequest<'a> {
    fn from(delete: &'a mvcc::DeleteRangeRequest) -> Self {
        DeleteRangeRequest {
            key: borrow(&delete.key),
            range_end: borrow(&delete.range_end),
            prev_kv: delete.prev_kv,
        }
    }
}

impl From<DeleteRangeRequest<'_>> for mvcc::DeleteRangeRequest {
    fn from(delete: DeleteRangeRequest<'_>) -> Self {
        mvcc::DeleteRangeRequest {
            key: delete.key.into_owned(),
            range_end: delete.range_end.into_owned(),
            prev_kv: delete.prev_kv,
        }
    }
}

impl<'a> From<&'a mvcc::TxnRequest> for TxnRequest<'a> {
    fn from(txn: &'a mvcc::TxnRequest) -> Self {
        TxnRequest {
            compare: txn.compare.iter().map(Compare::from).collect(),
            success: txn.success.iter().map(RequestOp::from).collect(),
            failure: txn.failure.iter().map(RequestOp::from).collect(),
        }
    }
}

impl From<TxnRequest<'_>> for mvcc::TxnRequest {
    fn from(txn: TxnRequest<'_>) -> Self {
        mvcc::TxnRequest {
            compare: txn.compare.into_iter().map(mvcc::Compare::from).collect(),
            success: txn.success.into_iter().map(mvcc::RequestOp::from).collect(),
            failure: txn.failure.into_iter().map(mvcc::RequestOp::from).collect(),
        }
    }
}

impl<'a> From<&'a mvcc::Compare> for Compare<'a> {
    fn from(compare: &'a mvcc::Compare) -> Self {
        Compare {
            key: borrow(&compare.key),
            range_end: borrow(&compare.range_end),
            result: match compare.result {
                mvcc::CompareResult::Equal => CompareResult::Equal,
                mvcc::CompareResult::Greater => CompareResult::Greater,
                mvcc::CompareResult::Less => CompareResult::Less,
                mvcc::CompareResult::NotEqual => CompareResult::NotEqual,
            },
            target: match &compare.target {
                mvcc::CompareTarget::Version(v) => CompareTarget::Version(*v),
                mvcc::CompareTarget::Create(v) => CompareTarget::Create(*v),
                mvcc::CompareTarget::Mod(v) => CompareTarget::Mod(*v),
                mvcc::CompareTarget::Value(v) => CompareTarget::Value(borrow(v)),
                mvcc::CompareTarget::Lease(v) => CompareTarget::Lease(*v),
            },
        }
    }
}

impl From<Compare<'_>> for mvcc::Compare {
    fn from(compare: Compare<'_>) -> Self {
        mvcc::Compare {
            key: compare.key.into_owned(),
            range_end: compare.range_end.into_owned(),
            result: match compare.result {
                CompareResult::Equal => mvcc::CompareResult::Equal,
                CompareResult::Greater => mvcc::CompareResult::Greater,
                CompareResult::Less => mvcc::CompareResult::Less,
                CompareResult::NotEqual => mvcc::CompareResult::NotEqual,
            },
            target: match compare.target {
                CompareTarget::Version(v) => mvcc::CompareTarget::Version(v),
                CompareTarget::Create(v) => mvcc::CompareTarget::Create(v),
                CompareTarget::Mod(v) => mvcc::CompareTarget::Mod(v),
                CompareTarget::Value(v) => mvcc::CompareTarget::Value(v.into_owned()),
                CompareTarget::Lease(v) => mvcc::CompareTarget::Lease(v),
            },
        }
    }
}

impl<'a> From<&'a mvcc::RequestOp> for RequestOp<'a> {
    fn from(op: &'a mvcc::RequestOp) -> Self {
        match op {
            mvcc::RequestOp::Range(range) => RequestOp::Range(range.into()),
            mvcc::RequestOp::Put(put) => RequestOp::Put(put.into()),
            mvcc::RequestOp::DeleteRange(delete) => RequestOp::DeleteRange(delete.into()),
            mvcc::RequestOp::Txn(txn) => RequestOp::Txn(txn.into()),
        }
    }
}

impl From<RequestOp<'_>> for mvcc::RequestOp {
    fn from(op: RequestOp<'_>) -> Self {
        match op {
            RequestOp::Range(range) => mvcc::RequestOp::Range(range.into()),
            RequestOp::Put(put) => mvcc::RequestOp::Put(put.into()),
            RequestOp::DeleteRange(delete) => mvcc::RequestOp::DeleteRange(delete.into()),
            RequestOp::Txn(txn) => mvcc::RequestOp::Txn(txn.into()),
        }
    }
}

impl<'a> From<&'a mvcc::RangeRequest> for RangeRequest<'a> {
    fn from(range: &'a mvcc::RangeRequest) -> Self {
        RangeRequest {
            key: borrow(&range.key),
            range_end: borrow(&range.range_end),
            limit: range.limit,
            revision: range.revision,
            sort_order: match range.sort_order {
                mvcc::SortOrder::None => SortOrder::None,
                mvcc::SortOrder::Ascend => SortOrder::Ascend,
                mvcc::SortOrder::Descend => SortOrder::Descend,
            },
            sort_target: match range.sort_target {
                mvcc::SortTarget::Key => SortTarget::Key,
                mvcc::SortTarget::Version => SortTarget::Version,
                mvcc::SortTarget::Create => SortTarget::Create,
                mvcc::SortTarget::Mod => SortTarget::Mod,
                mvcc::SortTarget::Value => SortTarget::Value,
            },
            keys_only: range.keys_only,
            count_only: range.count_only,
            min_mod_revision: range.min_mod_revision,
            max_mod_revision: range.max_mod_revision,
            min_create_revision: range.min_create_revision,
            max_create_revision: range.max_create_revision,
        }
    }
}

impl From<RangeRequest<'_>> for mvcc::RangeRequest {
    fn from(range: RangeRequest<'_>) -> Self {
        mvcc::RangeRequest {
            key: range.key.into_owned(),
            range_end: range.range_end.into_owned(),
            limit: range.limit,
            revision: range.revision,
            sort_order: match range.sort_order {
                SortOrder::None => mvcc::SortOrder::None,
                SortOrder::Ascend => mvcc::SortOrder::Ascend,
                SortOrder::Descend => mvcc::SortOrder::Descend,
            },
            sort_target: match range.sort_target {
                SortTarget::Key => mvcc::SortTarget::Key,
                SortTarget::Version => mvcc::SortTarget::Version,
                SortTarget::Create => mvcc::SortTarget::Create,
                SortTarget::Mod => mvcc::SortTarget::Mod,
                SortTarget::Value => mvcc::SortTarget::Value,
            },
            keys_only: range.keys_only,
            count_only: range.count_only,
            min_mod_revision: range.min_mod_revision,
            max_mod_revision: range.max_mod_revision,
            min_create_revision: range.min_create_revision,
            max_create_revision: range.max_create_revision,
        }
    }
}
