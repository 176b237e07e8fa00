//! Key-value reads and writes: [`Get`], [`Put`] and [`Delete`] request builders, and the
//! [`Client`] calls that send them.
//!
//! Reads are linearizable unless [`Get::serializable`] is set, and are retried on another
//! member on transient failures. Writes are never re-sent once they may have reached a
//! member; such a failure is [`Error::OutcomeUnknown`](crate::Error::OutcomeUnknown).

use conclave_proto::etcdserverpb::kv_client::KvClient;
use conclave_proto::etcdserverpb::{
    range_request, CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest,
};
use conclave_proto::mvccpb;

use crate::lease::LeaseId;
use crate::transport::Idempotency;
use crate::{Client, Result};

/// A key with its value and metadata at some revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The revision of the key's creation (since its last deletion).
    pub create_revision: i64,
    /// The revision of the key's last modification.
    pub mod_revision: i64,
    /// Writes to the key since its creation (1 after the first put).
    pub version: i64,
    /// The lease the key is attached to, if any.
    pub lease: Option<LeaseId>,
}

impl KeyValue {
    /// The key as UTF-8, if it is.
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }

    /// The value as UTF-8, if it is.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

impl From<mvccpb::KeyValue> for KeyValue {
    fn from(kv: mvccpb::KeyValue) -> Self {
        KeyValue {
            key: kv.key,
            value: kv.value,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: (kv.lease != 0).then_some(LeaseId(kv.lease)),
        }
    }
}

/// The answer to a range read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// The keys found (none with [`Get::count_only`]; values empty with [`Get::keys_only`]).
    pub kvs: Vec<KeyValue>,
    /// How many keys are in the range (regardless of the limit).
    pub count: i64,
    /// Whether more keys exist beyond the limit.
    pub more: bool,
    /// The store revision the read was served at.
    pub revision: i64,
}

impl From<conclave_proto::etcdserverpb::RangeResponse> for RangeResponse {
    fn from(r: conclave_proto::etcdserverpb::RangeResponse) -> Self {
        RangeResponse {
            revision: r.header.map_or(0, |h| h.revision),
            kvs: r.kvs.into_iter().map(KeyValue::from).collect(),
            count: r.count,
            more: r.more,
        }
    }
}

/// The answer to a put.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PutResponse {
    /// The revision the put was committed at.
    pub revision: i64,
    /// The previous key-value, when asked for with [`Put::prev_kv`].
    pub prev_kv: Option<KeyValue>,
}

impl From<conclave_proto::etcdserverpb::PutResponse> for PutResponse {
    fn from(r: conclave_proto::etcdserverpb::PutResponse) -> Self {
        PutResponse {
            revision: r.header.map_or(0, |h| h.revision),
            prev_kv: r.prev_kv.map(KeyValue::from),
        }
    }
}

/// The answer to a delete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeleteResponse {
    /// How many keys were deleted.
    pub deleted: i64,
    /// The deleted key-values, when asked for with [`Delete::prev_kv`].
    pub prev_kvs: Vec<KeyValue>,
    /// The revision the delete was committed at (the current revision if nothing was deleted).
    pub revision: i64,
}

impl From<conclave_proto::etcdserverpb::DeleteRangeResponse> for DeleteResponse {
    fn from(r: conclave_proto::etcdserverpb::DeleteRangeResponse) -> Self {
        DeleteResponse {
            revision: r.header.map_or(0, |h| h.revision),
            deleted: r.deleted,
            prev_kvs: r.prev_kvs.into_iter().map(KeyValue::from).collect(),
        }
    }
}

/// What a range is sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortTarget {
    /// By key (the default order).
    Key,
    /// By version.
    Version,
    /// By creation revision.
    Create,
    /// By modification revision.
    Mod,
    /// By value.
    Value,
}

/// Sort direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortOrder {
    /// Smallest first.
    Ascend,
    /// Largest first.
    Descend,
}

/// The range end that selects every key starting with `prefix` (etcd's rule: the prefix
/// with its last byte below 0xff incremented; `\0` — all keys — for an all-0xff prefix).
pub use conclave_contract::keys::prefix_end;

/// A range read: one key, a prefix, or `[key, end)`.
#[derive(Clone, Debug, Default)]
pub struct Get {
    pub(crate) request: RangeRequest,
}

impl Get {
    /// Reads one key.
    pub fn key(key: impl Into<Vec<u8>>) -> Get {
        Get {
            request: RangeRequest {
                key: key.into(),
                ..RangeRequest::default()
            },
        }
    }

    /// Reads every key starting with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Get {
        let key = prefix.into();
        let range_end = prefix_end(&key);
        Get {
            request: RangeRequest {
                key,
                range_end,
                ..RangeRequest::default()
            },
        }
    }

    /// Reads `[key, end)`.
    pub fn range(key: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Get {
        Get {
            request: RangeRequest {
                key: key.into(),
                range_end: end.into(),
                ..RangeRequest::default()
            },
        }
    }

    /// Reads every key `>= key`.
    pub fn from_key(key: impl Into<Vec<u8>>) -> Get {
        Get::range(key, vec![0])
    }

    /// Returns at most `limit` keys (0 = no limit).
    pub fn limit(mut self, limit: i64) -> Get {
        self.request.limit = limit;
        self
    }

    /// Reads at an older revision (0 = the latest).
    pub fn revision(mut self, revision: i64) -> Get {
        self.request.revision = revision;
        self
    }

    /// Serves the read from the member's local state, without confirming with a
    /// quorum: faster, may be stale.
    pub fn serializable(mut self) -> Get {
        self.request.serializable = true;
        self
    }

    /// Returns keys without values.
    pub fn keys_only(mut self) -> Get {
        self.request.keys_only = true;
        self
    }

    /// Returns only the count.
    pub fn count_only(mut self) -> Get {
        self.request.count_only = true;
        self
    }

    /// Sorts the result.
    pub fn sort(mut self, target: SortTarget, order: SortOrder) -> Get {
        self.request.sort_target = match target {
            SortTarget::Key => range_request::SortTarget::Key,
            SortTarget::Version => range_request::SortTarget::Version,
            SortTarget::Create => range_request::SortTarget::Create,
            SortTarget::Mod => range_request::SortTarget::Mod,
            SortTarget::Value => range_request::SortTarget::Value,
        } as i32;
        self.request.sort_order = match order {
            SortOrder::Ascend => range_request::SortOrder::Ascend,
            SortOrder::Descend => range_request::SortOrder::Descend,
        } as i32;
        self
    }

    /// Only keys modified at or after `revision`.
    pub fn min_mod_revision(mut self, revision: i64) -> Get {
        self.request.min_mod_revision = revision;
        self
    }

    /// Only keys created at or before `revision`.
    pub fn max_create_revision(mut self, revision: i64) -> Get {
        self.request.max_create_revision = revision;
        self
    }
}

/// A put of one key.
#[derive(Clone, Debug, Default)]
pub struct Put {
    pub(crate) request: PutRequest,
}

impl Put {
    /// Sets `key` to `value`.
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Put {
        Put {
            request: PutRequest {
                key: key.into(),
                value: value.into(),
                ..PutRequest::default()
            },
        }
    }

    /// Attaches the key to a lease: it is deleted when the lease ends.
    pub fn lease(mut self, lease: LeaseId) -> Put {
        self.request.lease = lease.0;
        self
    }

    /// Returns the previous key-value.
    pub fn prev_kv(mut self) -> Put {
        self.request.prev_kv = true;
        self
    }

    /// Keeps the key's current value (changes only the lease).
    pub fn ignore_value(mut self) -> Put {
        self.request.ignore_value = true;
        self
    }

    /// Keeps the key's current lease (changes only the value).
    pub fn ignore_lease(mut self) -> Put {
        self.request.ignore_lease = true;
        self
    }
}

/// A delete of one key, a prefix, or `[key, end)`.
#[derive(Clone, Debug, Default)]
pub struct Delete {
    pub(crate) request: DeleteRangeRequest,
}

impl Delete {
    /// Deletes one key.
    pub fn key(key: impl Into<Vec<u8>>) -> Delete {
        Delete {
            request: DeleteRangeRequest {
                key: key.into(),
                ..DeleteRangeRequest::default()
            },
        }
    }

    /// Deletes every key starting with `prefix`.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> Delete {
        let key = prefix.into();
        let range_end = prefix_end(&key);
        Delete {
            request: DeleteRangeRequest {
                key,
                range_end,
                ..DeleteRangeRequest::default()
            },
        }
    }

    /// Deletes `[key, end)`.
    pub fn range(key: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Delete {
        Delete {
            request: DeleteRangeRequest {
                key: key.into(),
                range_end: end.into(),
                ..DeleteRangeRequest::default()
            },
        }
    }

    /// Returns the deleted key-values.
    pub fn prev_kv(mut self) -> Delete {
        self.request.prev_kv = true;
        self
    }
}

impl Client {
    /// Linearizable read of one key; `None` when absent.
    pub async fn get(&self, key: impl Into<Vec<u8>>) -> Result<Option<KeyValue>> {
        Ok(self.range(Get::key(key)).await?.kvs.into_iter().next())
    }

    /// Sends a range read, retried on another member on transient failures.
    pub async fn range(&self, get: Get) -> Result<RangeResponse> {
        let request = get.request;
        self.pool()
            .call(Idempotency::Idempotent, |channel| {
                let request = request.clone();
                async move {
                    KvClient::new(channel)
                        .max_decoding_message_size(crate::MAX_RESPONSE_BYTES)
                        .range(request)
                        .await
                }
            })
            .await
            .map(|r| RangeResponse::from(r.into_inner()))
    }

    /// Sets `key` to `value`.
    pub async fn put(&self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Result<PutResponse> {
        self.put_with(Put::new(key, value)).await
    }

    /// Sends a put built with [`Put`].
    pub async fn put_with(&self, put: Put) -> Result<PutResponse> {
        let request = put.request;
        self.pool()
            .call(Idempotency::NonIdempotent, |channel| {
                let request = request.clone();
                async move {
                    KvClient::new(channel)
                        .max_decoding_message_size(crate::MAX_RESPONSE_BYTES)
                        .put(request)
                        .await
                }
            })
            .await
            .map(|r| PutResponse::from(r.into_inner()))
    }

    /// Deletes one key.
    pub async fn delete(&self, key: impl Into<Vec<u8>>) -> Result<DeleteResponse> {
        self.delete_with(Delete::key(key)).await
    }

    /// Sends a delete built with [`Delete`].
    pub async fn delete_with(&self, delete: Delete) -> Result<DeleteResponse> {
        let request = delete.request;
        self.pool()
            .call(Idempotency::NonIdempotent, |channel| {
                let request = request.clone();
                async move {
                    KvClient::new(channel)
                        .max_decoding_message_size(crate::MAX_RESPONSE_BYTES)
                        .delete_range(request)
                        .await
                }
            })
            .await
            .map(|r| DeleteResponse::from(r.into_inner()))
    }

    /// Compacts history below `revision`; with `physical`, waits until the compaction is
    /// applied on the member. Returns the revision at the time of the compaction.
    pub async fn compact(&self, revision: i64, physical: bool) -> Result<i64> {
        self.pool()
            .call(Idempotency::NonIdempotent, |channel| async move {
                KvClient::new(channel)
                    .max_decoding_message_size(crate::MAX_RESPONSE_BYTES)
                    .compact(CompactionRequest { revision, physical })
                    .await
            })
            .await
            .map(|r| r.into_inner().header.map_or(0, |h| h.revision))
    }
}
