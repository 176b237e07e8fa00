//! Transactions: `when(compares).then(ops).otherwise(ops)`, applied atomically at one
//! revision.
//!
//! ```no_run
//! # async fn demo(client: conclave_client::Client) -> conclave_client::Result<()> {
//! use conclave_client::{Compare, Op};
//! let response = client
//!     .txn()
//!     .when([Compare::version("/jobs/42").eq(0)])
//!     .then([Op::put("/jobs/42", "claimed")])
//!     .otherwise([Op::get("/jobs/42")])
//!     .await?;
//! println!("claimed: {}", response.succeeded);
//! # Ok(()) }
//! ```

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use conclave_proto::etcdserverpb::kv_client::KvClient;
use conclave_proto::etcdserverpb::{compare, request_op, response_op, RequestOp, TxnRequest};

use crate::kv::{Delete, DeleteResponse, Get, Put, PutResponse, RangeResponse};
use crate::lease::LeaseId;
use crate::transport::Idempotency;
use crate::{Client, Result};

/// One condition of a transaction. Build it from a target — [`Compare::value`],
/// [`Compare::version`], [`Compare::create_revision`], [`Compare::mod_revision`],
/// [`Compare::lease`] — and a relation (`eq`, `ne`, `gt`, `lt`).
#[derive(Clone, Debug, PartialEq)]
pub struct Compare {
    pub(crate) inner: conclave_proto::etcdserverpb::Compare,
}

/// A compare target waiting for its relation.
#[derive(Clone, Debug)]
pub struct CompareTarget {
    key: Vec<u8>,
    target: compare::CompareTarget,
}

impl Compare {
    /// Compares the key's value (bytes).
    pub fn value(key: impl Into<Vec<u8>>) -> CompareTarget {
        CompareTarget {
            key: key.into(),
            target: compare::CompareTarget::Value,
        }
    }

    /// Compares the key's version (0 = absent).
    pub fn version(key: impl Into<Vec<u8>>) -> CompareTarget {
        CompareTarget {
            key: key.into(),
            target: compare::CompareTarget::Version,
        }
    }

    /// Compares the key's creation revision (0 = absent).
    pub fn create_revision(key: impl Into<Vec<u8>>) -> CompareTarget {
        CompareTarget {
            key: key.into(),
            target: compare::CompareTarget::Create,
        }
    }

    /// Compares the key's last modification revision (0 = absent).
    pub fn mod_revision(key: impl Into<Vec<u8>>) -> CompareTarget {
        CompareTarget {
            key: key.into(),
            target: compare::CompareTarget::Mod,
        }
    }

    /// Compares the key's lease ID (0 = none).
    pub fn lease(key: impl Into<Vec<u8>>) -> CompareTarget {
        CompareTarget {
            key: key.into(),
            target: compare::CompareTarget::Lease,
        }
    }

    /// The fencing compare of a queue place (election leadership, a held lock): holds
    /// only while `ticket`'s key is still the incarnation it created.
    pub fn fencing(ticket: &crate::queue::Ticket) -> Compare {
        Compare {
            inner: conclave_contract::queue::guard(ticket.key.as_bytes(), ticket.create_revision),
        }
    }

    /// Applies the compare to `[key, end)` instead of one key (every key must match).
    pub fn with_range_end(mut self, end: impl Into<Vec<u8>>) -> Compare {
        self.inner.range_end = end.into();
        self
    }
}

/// The right-hand side of a compare: a number for versions, revisions and leases, bytes
/// for values.
#[derive(Clone, Debug)]
pub enum CompareValue {
    /// A version, revision or lease ID.
    Number(i64),
    /// A value.
    Bytes(Vec<u8>),
}

impl From<i64> for CompareValue {
    fn from(n: i64) -> Self {
        CompareValue::Number(n)
    }
}
impl From<LeaseId> for CompareValue {
    fn from(id: LeaseId) -> Self {
        CompareValue::Number(id.0)
    }
}
impl From<&str> for CompareValue {
    fn from(s: &str) -> Self {
        CompareValue::Bytes(s.as_bytes().to_vec())
    }
}
impl From<String> for CompareValue {
    fn from(s: String) -> Self {
        CompareValue::Bytes(s.into_bytes())
    }
}
impl From<Vec<u8>> for CompareValue {
    fn from(b: Vec<u8>) -> Self {
        CompareValue::Bytes(b)
    }
}
impl From<&[u8]> for CompareValue {
    fn from(b: &[u8]) -> Self {
        CompareValue::Bytes(b.to_vec())
    }
}

impl CompareTarget {
    fn build(self, result: compare::CompareResult, value: CompareValue) -> Compare {
        use compare::{CompareTarget as T, TargetUnion as U};
        let number = |v: &CompareValue| match v {
            CompareValue::Number(n) => *n,
            CompareValue::Bytes(_) => 0,
        };
        let union = match self.target {
            T::Value => U::Value(match value {
                CompareValue::Bytes(b) => b,
                CompareValue::Number(n) => n.to_string().into_bytes(),
            }),
            T::Version => U::Version(number(&value)),
            T::Create => U::CreateRevision(number(&value)),
            T::Mod => U::ModRevision(number(&value)),
            T::Lease => U::Lease(number(&value)),
        };
        Compare {
            inner: conclave_proto::etcdserverpb::Compare {
                result: result as i32,
                target: self.target as i32,
                key: self.key,
                range_end: Vec::new(),
                target_union: Some(union),
            },
        }
    }

    /// Holds when the target equals `value`.
    pub fn eq(self, value: impl Into<CompareValue>) -> Compare {
        self.build(compare::CompareResult::Equal, value.into())
    }

    /// Holds when the target differs from `value`.
    pub fn ne(self, value: impl Into<CompareValue>) -> Compare {
        self.build(compare::CompareResult::NotEqual, value.into())
    }

    /// Holds when the target is greater than `value`.
    pub fn gt(self, value: impl Into<CompareValue>) -> Compare {
        self.build(compare::CompareResult::Greater, value.into())
    }

    /// Holds when the target is less than `value`.
    pub fn lt(self, value: impl Into<CompareValue>) -> Compare {
        self.build(compare::CompareResult::Less, value.into())
    }
}

/// One operation of a transaction branch.
#[derive(Clone, Debug)]
pub enum Op {
    /// A range read.
    Get(Get),
    /// A put.
    Put(Put),
    /// A delete.
    Delete(Delete),
    /// A nested transaction.
    Txn(Box<Txn<()>>),
}

impl Op {
    /// Reads one key.
    pub fn get(key: impl Into<Vec<u8>>) -> Op {
        Op::Get(Get::key(key))
    }

    /// Sets `key` to `value`.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Op {
        Op::Put(Put::new(key, value))
    }

    /// Deletes one key.
    pub fn delete(key: impl Into<Vec<u8>>) -> Op {
        Op::Delete(Delete::key(key))
    }

    fn is_read_only(&self) -> bool {
        match self {
            Op::Get(_) => true,
            Op::Put(_) | Op::Delete(_) => false,
            Op::Txn(txn) => txn.is_read_only(),
        }
    }

    fn into_request(self) -> RequestOp {
        let request = match self {
            Op::Get(get) => request_op::Request::RequestRange(get.request),
            Op::Put(put) => request_op::Request::RequestPut(put.request),
            Op::Delete(delete) => request_op::Request::RequestDeleteRange(delete.request),
            Op::Txn(txn) => request_op::Request::RequestTxn(txn.into_request()),
        };
        RequestOp {
            request: Some(request),
        }
    }
}

impl From<Get> for Op {
    fn from(get: Get) -> Self {
        Op::Get(get)
    }
}
impl From<Put> for Op {
    fn from(put: Put) -> Self {
        Op::Put(put)
    }
}
impl From<Delete> for Op {
    fn from(delete: Delete) -> Self {
        Op::Delete(delete)
    }
}

/// A transaction. `Txn<Client>` (from [`Client::txn`]) is sent by `.await`; `Txn<()>`
/// (from [`Txn::new`]) is a nested transaction for [`Op::Txn`].
#[derive(Clone, Debug)]
#[must_use = "a transaction does nothing until awaited"]
pub struct Txn<C = Client> {
    client: C,
    compares: Vec<Compare>,
    success: Vec<Op>,
    failure: Vec<Op>,
}

impl Txn<()> {
    /// A transaction to nest inside another as [`Op::Txn`].
    pub fn new() -> Txn<()> {
        Txn {
            client: (),
            compares: Vec::new(),
            success: Vec::new(),
            failure: Vec::new(),
        }
    }
}

impl Default for Txn<()> {
    fn default() -> Self {
        Txn::new()
    }
}

impl<C> Txn<C> {
    /// Adds conditions; the `then` branch runs when all hold.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }

    /// Adds operations run when every condition holds.
    pub fn then<O: Into<Op>>(mut self, ops: impl IntoIterator<Item = O>) -> Self {
        self.success.extend(ops.into_iter().map(Into::into));
        self
    }

    /// Adds operations run when some condition fails.
    pub fn otherwise<O: Into<Op>>(mut self, ops: impl IntoIterator<Item = O>) -> Self {
        self.failure.extend(ops.into_iter().map(Into::into));
        self
    }

    fn is_read_only(&self) -> bool {
        self.success.iter().chain(&self.failure).all(Op::is_read_only)
    }

    fn into_request(self) -> TxnRequest {
        TxnRequest {
            compare: self.compares.into_iter().map(|c| c.inner).collect(),
            success: self.success.into_iter().map(Op::into_request).collect(),
            failure: self.failure.into_iter().map(Op::into_request).collect(),
        }
    }
}

/// The answer of one operation in a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResponse {
    /// A range read's answer.
    Get(RangeResponse),
    /// A put's answer.
    Put(PutResponse),
    /// A delete's answer.
    Delete(DeleteResponse),
    /// A nested transaction's answer.
    Txn(TxnResponse),
}

/// The answer to a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether every compare held (the `then` branch ran).
    pub succeeded: bool,
    /// The revision after the transaction.
    pub revision: i64,
    /// One answer per operation of the branch that ran.
    pub responses: Vec<OpResponse>,
}

impl From<conclave_proto::etcdserverpb::TxnResponse> for TxnResponse {
    fn from(r: conclave_proto::etcdserverpb::TxnResponse) -> Self {
        let revision = r.header.map_or(0, |h| h.revision);
        let responses = r
            .responses
            .into_iter()
            .filter_map(|op| op.response)
            .map(|op| match op {
                response_op::Response::ResponseRange(r) => OpResponse::Get(r.into()),
                response_op::Response::ResponsePut(r) => OpResponse::Put(r.into()),
                response_op::Response::ResponseDeleteRange(r) => OpResponse::Delete(r.into()),
                response_op::Response::ResponseTxn(r) => OpResponse::Txn(r.into()),
            })
            .collect();
        TxnResponse {
            succeeded: r.succeeded,
            revision,
            responses,
        }
    }
}

impl TxnResponse {
    /// The first range answer of the branch that ran, if any.
    pub fn first_get(&self) -> Option<&RangeResponse> {
        self.responses.iter().find_map(|r| match r {
            OpResponse::Get(get) => Some(get),
            _ => None,
        })
    }
}

impl Client {
    /// Starts a transaction; send it with `.await`.
    pub fn txn(&self) -> Txn<Client> {
        Txn {
            client: self.clone(),
            compares: Vec::new(),
            success: Vec::new(),
            failure: Vec::new(),
        }
    }

    /// Sends a wire-form transaction under the retry rule of `idempotency` and returns
    /// the wire-form answer (for the queue requests `conclave_contract` builds).
    pub(crate) async fn raw_txn(
        &self,
        request: TxnRequest,
        idempotency: Idempotency,
    ) -> Result<conclave_proto::etcdserverpb::TxnResponse> {
        self.pool()
            .call(idempotency, |channel| {
                let request = request.clone();
                async move {
                    KvClient::new(channel)
                        .max_decoding_message_size(crate::MAX_RESPONSE_BYTES)
                        .txn(request)
                        .await
                }
            })
            .await
            .map(|r| r.into_inner())
    }
}

impl IntoFuture for Txn<Client> {
    type Output = Result<TxnResponse>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<TxnResponse>> + Send>>;

    /// Sends the transaction. A read-only transaction is retried like a read; one that
    /// writes is never re-sent once it may have reached a member.
    fn into_future(self) -> Self::IntoFuture {
        let idempotency = if self.is_read_only() {
            Idempotency::Idempotent
        } else {
            Idempotency::NonIdempotent
        };
        let Txn {
            client,
            compares,
            success,
            failure,
        } = self;
        let request = Txn {
            client: (),
            compares,
            success,
            failure,
        }
        .into_request();
        Box::pin(async move { client.raw_txn(request, idempotency).await.map(TxnResponse::from) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_build_etcd_messages() {
        let c = Compare::mod_revision("k").lt(7).inner;
        assert_eq!(c.target, compare::CompareTarget::Mod as i32);
        assert_eq!(c.result, compare::CompareResult::Less as i32);
        assert_eq!(c.target_union, Some(compare::TargetUnion::ModRevision(7)));
        let v = Compare::value("k").eq("x").inner;
        assert_eq!(v.target_union, Some(compare::TargetUnion::Value(b"x".to_vec())));
    }

    #[test]
    fn read_only_txns_are_recognised() {
        let reads = Txn::new().when([]).then([Op::get("a")]).otherwise([Op::get("b")]);
        assert!(reads.is_read_only());
        let nested = Txn::new().then([Op::Txn(Box::new(Txn::new().then([Op::put("a", "1")])))]);
        assert!(!nested.is_read_only());
    }
}
