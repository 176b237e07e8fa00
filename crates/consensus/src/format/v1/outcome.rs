//! FROZEN: layout version 1 of what applying a command produced: `CommandResult`, every
//! mvcc write response inside it, and `MvccError` (sent back to a member that forwarded a
//! write). Do not add, remove or reorder fields or variants here (postcard encodes their
//! order); a new layout is a `v2` module with an upgrade from these types. Only the
//! conversions at the bottom follow the in-memory types.

use conclave_mvcc as mvcc;
use serde::{Deserialize, Serialize};

use crate::types;

/// `types::CommandResult`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CommandResult {
    /// Store revision after the command.
    pub revision: i64,
    /// The response, or the deterministic error.
    pub outcome: Result<WriteResponse, MvccError>,
}

/// `mvcc::WriteResponse`.
#[derive(Debug, Serialize, Deserialize)]
pub enum WriteResponse {
    /// 0
    Put(PutResponse),
    /// 1
    DeleteRange(DeleteRangeResponse),
    /// 2
    Txn(TxnResponse),
    /// 3
    Compact,
    /// 4
    LeaseGrant {
        /// Lease id.
        id: i64,
        /// Stored TTL.
        ttl: i64,
    },
    /// 5
    LeaseRevoke,
    /// 6
    LeaseCheckpoint,
}

/// `mvcc::KeyValue`.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyValue {
    /// Key.
    pub key: Vec<u8>,
    /// Creation revision.
    pub create_revision: i64,
    /// Last modification revision.
    pub mod_revision: i64,
    /// Puts since creation.
    pub version: i64,
    /// Value.
    pub value: Vec<u8>,
    /// Lease id, 0 for none.
    pub lease: i64,
}

/// `mvcc::PutResponse`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PutResponse {
    /// The replaced version.
    pub prev_kv: Option<KeyValue>,
}

/// `mvcc::DeleteRangeResponse`.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeleteRangeResponse {
    /// Number of keys deleted.
    pub deleted: i64,
    /// The deleted versions.
    pub prev_kvs: Vec<KeyValue>,
}

/// `mvcc::RangeResponse`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RangeResponse {
    /// Matching versions.
    pub kvs: Vec<KeyValue>,
    /// Whether the limit cut matches off.
    pub more: bool,
    /// Keys in the range.
    pub count: i64,
}

/// `mvcc::TxnResponse`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TxnResponse {
    /// Whether the guards held.
    pub succeeded: bool,
    /// One response per op.
    pub responses: Vec<ResponseOp>,
}

/// `mvcc::ResponseOp`.
#[derive(Debug, Serialize, Deserialize)]
pub enum ResponseOp {
    /// 0
    Range(RangeResponse),
    /// 1
    Put(PutResponse),
    /// 2
    DeleteRange(DeleteRangeResponse),
    /// 3
    Txn(TxnResponse),
}

/// `mvcc::MvccError`.
#[derive(Debug, Serialize, Deserialize)]
pub enum MvccError {
    /// 0
    KeyNotProvided,
    /// 1
    Compacted,
    /// 2
    FutureRevision,
    /// 3
    KeyNotFound,
    /// 4
    ValueProvided,
    /// 5
    LeaseProvided,
    /// 6
    LeaseNotFound,
    /// 7
    TooManyOps,
    /// 8
    DuplicateKey,
    /// 9
    Storage(String),
    /// 10
    Corrupt(String),
    /// 11
    LeaseExists,
    /// 12
    LeaseTtlTooLarge,
}

// ---- conversions: these follow the in-memory types -------------------------------------

impl From<&types::CommandResult> for CommandResult {
    fn from(result: &types::CommandResult) -> Self {
        CommandResult {
            revision: result.revision,
            outcome: match &result.outcome {
                Ok(response) => Ok(response.into()),
                Err(error) => Err(error.into()),
            },
        }
    }
}

impl From<CommandResult> for types::CommandResult {
    fn from(result: CommandResult) -> Self {
        types::CommandResult {
            revision: result.revision,
            outcome: result.outcome.map(Into::into).map_err(Into::into),
        }
    }
}

impl From<&mvcc::WriteResponse> for WriteResponse {
    fn from(response: &mvcc::WriteResponse) -> Self {
        match response {
            mvcc::WriteResponse::Put(put) => WriteResponse::Put(put.into()),
            mvcc::WriteResponse::DeleteRange(delete) => WriteResponse::DeleteRange(delete.into()),
            mvcc::WriteResponse::Txn(txn) => WriteResponse::Txn(txn.into()),
            mvcc::WriteResponse::Compact => WriteResponse::Compact,
            mvcc::WriteResponse::LeaseGrant { id, ttl } => WriteResponse::LeaseGrant { id: *id, ttl: *ttl },
            mvcc::WriteResponse::LeaseRevoke => WriteResponse::LeaseRevoke,
            mvcc::WriteResponse::LeaseCheckpoint => WriteResponse::LeaseCheckpoint,
        }
    }
}

impl From<WriteResponse> for mvcc::WriteResponse {
    fn from(response: WriteResponse) -> Self {
        match response {
            WriteResponse::Put(put) => mvcc::WriteResponse::Put(put.into()),
            WriteResponse::DeleteRange(delete) => mvcc::WriteResponse::DeleteRange(delete.into()),
            WriteResponse::Txn(txn) => mvcc::WriteResponse::Txn(txn.into()),
            WriteResponse::Compact => mvcc::WriteResponse::Compact,
            WriteResponse::LeaseGrant { id, ttl } => mvcc::WriteResponse::LeaseGrant { id, ttl },
            WriteResponse::LeaseRevoke => mvcc::WriteResponse::LeaseRevoke,
            WriteResponse::LeaseCheckpoint => mvcc::WriteResponse::LeaseCheckpoint,
        }
    }
}

impl From<&mvcc::KeyValue> for KeyValue {
    fn from(kv: &mvcc::KeyValue) -> Self {
        KeyValue {
            key: kv.key.clone(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            value: kv.value.clone(),
            lease: kv.lease,
        }
    }
}

impl From<KeyValue> for mvcc::KeyValue {
    fn from(kv: KeyValue) -> Self {
        mvcc::KeyValue {
            key: kv.key,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            value: kv.value,
            lease: kv.lease,
        }
    }
}

impl From<&mvcc::PutResponse> for PutResponse {
    fn from(put: &mvcc::PutResponse) -> Self {
        PutResponse {
            prev_kv: put.prev_kv.as_ref().map(KeyValue::from),
        }
    }
}

impl From<PutResponse> for mvcc::PutResponse {
    fn from(put: PutResponse) -> Self {
        mvcc::PutResponse {
            prev_kv: put.prev_kv.map(Into::into),
        }
    }
}

impl From<&mvcc::DeleteRangeResponse> for DeleteRangeResponse {
    fn from(delete: &mvcc::DeleteRangeResponse) -> Self {
        DeleteRangeResponse {
            deleted: delete.deleted,
            prev_kvs: delete.prev_kvs.iter().map(KeyValue::from).collect(),
        }
    }
}

impl From<DeleteRangeResponse> for mvcc::DeleteRangeResponse {
    fn from(delete: DeleteRangeResponse) -> Self {
        mvcc::DeleteRangeResponse {
            deleted: delete.deleted,
            prev_kvs: delete.prev_kvs.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<&mvcc::RangeResponse> for RangeResponse {
    fn from(range: &mvcc::RangeResponse) -> Self {
        RangeResponse {
            kvs: range.kvs.iter().map(KeyValue::from).collect(),
            more: range.more,
            count: range.count,
        }
    }
}

impl From<RangeResponse> for mvcc::RangeResponse {
    fn from(range: RangeResponse) -> Self {
        mvcc::RangeResponse {
            kvs: range.kvs.into_iter().map(Into::into).collect(),
            more: range.more,
            count: range.count,
        }
    }
}

impl From<&mvcc::TxnResponse> for TxnResponse {
    fn from(txn: &mvcc::TxnResponse) -> Self {
        TxnResponse {
            succeeded: txn.succeeded,
            responses: txn.responses.iter().map(ResponseOp::from).collect(),
        }
    }
}

impl From<TxnResponse> for mvcc::TxnResponse {
    fn from(txn: TxnResponse) -> Self {
        mvcc::TxnResponse {
            succeeded: txn.succeeded,
            responses: txn.responses.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<&mvcc::ResponseOp> for ResponseOp {
    fn from(op: &mvcc::ResponseOp) -> Self {
        match op {
            mvcc::ResponseOp::Range(range) => ResponseOp::Range(range.into()),
            mvcc::ResponseOp::Put(put) => ResponseOp::Put(put.into()),
            mvcc::ResponseOp::DeleteRange(delete) => ResponseOp::DeleteRange(delete.into()),
            mvcc::ResponseOp::Txn(txn) => ResponseOp::Txn(txn.into()),
        }
    }
}

impl From<ResponseOp> for mvcc::ResponseOp {
    fn from(op: ResponseOp) -> Self {
        match op {
            ResponseOp::Range(range) => mvcc::ResponseOp::Range(range.into()),
            ResponseOp::Put(put) => mvcc::ResponseOp::Put(put.into()),
            ResponseOp::DeleteRange(delete) => mvcc::ResponseOp::DeleteRange(delete.into()),
            ResponseOp::Txn(txn) => mvcc::ResponseOp::Txn(txn.into()),
        }
    }
}

impl From<&mvcc::MvccError> for MvccError {
    fn from(error: &mvcc::MvccError) -> Self {
        match error {
            mvcc::MvccError::KeyNotProvided => MvccError::KeyNotProvided,
            mvcc::MvccError::Compacted => MvccError::Compacted,
            mvcc::MvccError::FutureRevision => MvccError::FutureRevision,
            mvcc::MvccError::KeyNotFound => MvccError::KeyNotFound,
            mvcc::MvccError::ValueProvided => MvccError::ValueProvided,
            mvcc::MvccError::LeaseProvided => MvccError::LeaseProvided,
            mvcc::MvccError::LeaseNotFound => MvccError::LeaseNotFound,
            mvcc::MvccError::TooManyOps => MvccError::TooManyOps,
            mvcc::MvccError::DuplicateKey => MvccError::DuplicateKey,
            mvcc::MvccError::Storage(why) => MvccError::Storage(why.clone()),
            mvcc::MvccError::Corrupt(why) => MvccError::Corrupt(why.clone()),
            mvcc::MvccError::LeaseExists => MvccError::LeaseExists,
            mvcc::MvccError::LeaseTtlTooLarge => MvccError::LeaseTtlTooLarge,
        }
    }
}

impl From<MvccError> for mvcc::MvccError {
    fn from(error: MvccError) -> Self {
        match error {
            MvccError::KeyNotProvided => mvcc::MvccError::KeyNotProvided,
            MvccError::Compacted => mvcc::MvccError::Compacted,
            MvccError::FutureRevision => mvcc::MvccError::FutureRevision,
            MvccError::KeyNotFound => mvcc::MvccError::KeyNotFound,
            MvccError::ValueProvided => mvcc::MvccError::ValueProvided,
            MvccError::LeaseProvided => mvcc::MvccError::LeaseProvided,
            MvccError::LeaseNotFound => mvcc::MvccError::LeaseNotFound,
            MvccError::TooManyOps => mvcc::MvccError::TooManyOps,
            MvccError::DuplicateKey => mvcc::MvccError::DuplicateKey,
            MvccError::Storage(why) => mvcc::MvccError::Storage(why),
            MvccError::Corrupt(why) => mvcc::MvccError::Corrupt(why),
            MvccError::LeaseExists => mvcc::MvccError::LeaseExists,
            MvccError::LeaseTtlTooLarge => mvcc::MvccError::LeaseTtlTooLarge,
        }
    }
}
