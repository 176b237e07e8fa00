//! `etcdserverpb.KV`: Range, Put, DeleteRange, Txn, Compact.

use conclave_consensus::{Command, CommandResult};
use conclave_mvcc::{self as mvcc, WriteRequest, WriteResponse};
use conclave_proto::etcdserverpb as pb;
use conclave_proto::etcdserverpb::kv_server::Kv;
use tonic::{Request, Response, Status};

use super::EtcdApi;
use crate::auth::{self, Credentials};
use crate::convert;
use crate::errors::{consensus_status, mvcc_status};
use crate::groups::guard;
use crate::quota;

impl EtcdApi {
    /// Replicates a write and returns its response and revision.
    pub(crate) async fn replicate(&self, request: WriteRequest) -> Result<(WriteResponse, i64), Status> {
        let CommandResult { revision, outcome } = self
            .node
            .write(Command::Write(request))
            .await
            .map_err(|e| consensus_status(&e))?;
        let response = outcome.map_err(|e| mvcc_status(&e))?;
        Ok((response, revision))
    }

    /// Replicates a client's KV write once its caller may make it. A user's write is
    /// proposed under the auth guard ([`auth::Caller::guard`]); when the auth state changed
    /// before it applied, it is checked again against the new state and resent.
    pub(crate) async fn replicate_authorized(
        &self,
        credentials: &Credentials,
        write: WriteRequest,
    ) -> Result<(WriteResponse, i64), Status> {
        let mut caller = self
            .auth
            .authorize(credentials, |caller| caller.check_write(&write))
            .await?;
        for _ in 0..GUARD_ATTEMPTS {
            let Some(guarded) = caller.guard(&write, self.node.is_leader()) else {
                return self.replicate(write).await;
            };
            let (response, revision) = self.replicate(guarded).await?;
            if let Some(response) = auth::unguard(response) {
                return Ok((response, revision));
            }
            // The auth state changed between the check and the write: check again.
            caller = self.auth.fresh_caller(credentials).await?;
            caller.check_write(&write)?;
        }
        Err(Status::unavailable(conclave_contract::errors::TIMEOUT))
    }
}

/// Times a user's write is resent after racing with auth changes.
const GUARD_ATTEMPTS: usize = 8;

/// Whether a txn can add data (puts in any branch, nested included): refused under NOSPACE.
fn txn_puts(txn: &mvcc::TxnRequest) -> bool {
    txn.success.iter().chain(&txn.failure).any(|op| match op {
        mvcc::RequestOp::Put(_) => true,
        mvcc::RequestOp::Txn(nested) => txn_puts(nested),
        _ => false,
    })
}

fn unexpected(what: &str) -> Status {
    Status::internal(format!(
        "state machine answered a {what} with another response type"
    ))
}

#[tonic::async_trait]
impl Kv for EtcdApi {
    async fn range(&self, request: Request<pb::RangeRequest>) -> Result<Response<pb::RangeResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_size(&request)?;
        let serializable = request.serializable;
        let range = convert::range_from_pb(request)?;
        mvcc::validate_range(&range).map_err(|e| mvcc_status(&e))?;
        if !serializable {
            self.node
                .linearizable_barrier()
                .await
                .map_err(|e| consensus_status(&e))?;
        }
        // After the barrier: a revocation acknowledged before this read is applied here.
        self.auth
            .authorize(&credentials, |caller| caller.check_range(&range))
            .await?;
        let store = self.node.store().clone();
        let (response, revision) = tokio::task::spawn_blocking(move || store.range_at_revision(&range))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| mvcc_status(&e))?;
        Ok(Response::new(convert::range_to_pb(
            response,
            self.header(revision),
        )))
    }

    async fn put(&self, request: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_size(&request)?;
        let put = convert::put_from_pb(request);
        mvcc::validate_put(&put).map_err(|e| mvcc_status(&e))?;
        guard::check_put(&put.key)?;
        quota::check_space(&self.node)?;
        match self
            .replicate_authorized(&credentials, WriteRequest::Put(put))
            .await?
        {
            (WriteResponse::Put(r), revision) => {
                Ok(Response::new(convert::put_to_pb(r, self.header(revision))))
            }
            _ => Err(unexpected("put")),
        }
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_size(&request)?;
        let delete = convert::delete_from_pb(request);
        mvcc::validate_delete_range(&delete).map_err(|e| mvcc_status(&e))?;
        guard::check_fresh(&self.node, |store| {
            guard::check_delete(store, &delete.key, &delete.range_end)
        })
        .await?;
        match self
            .replicate_authorized(&credentials, WriteRequest::DeleteRange(delete))
            .await?
        {
            (WriteResponse::DeleteRange(r), revision) => {
                Ok(Response::new(convert::delete_to_pb(r, self.header(revision))))
            }
            _ => Err(unexpected("delete")),
        }
    }

    async fn txn(&self, request: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_size(&request)?;
        let txn = convert::txn_from_pb(request)?;
        mvcc::validate_txn(&txn, self.settings.max_txn_ops).map_err(|e| mvcc_status(&e))?;
        guard::check_fresh(&self.node, |store| guard::check_txn(store, &txn)).await?;
        if txn_puts(&txn) {
            quota::check_space(&self.node)?;
        }
        match self
            .replicate_authorized(&credentials, WriteRequest::Txn(txn))
            .await?
        {
            (WriteResponse::Txn(r), revision) => Ok(Response::new(convert::txn_to_pb(
                r,
                self.header(revision),
                revision,
            ))),
            _ => Err(unexpected("txn")),
        }
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        // As etcd: compaction needs the root role once auth is on.
        self.auth
            .caller(&Credentials::of(&request))
            .await?
            .check_admin()?;
        let request = request.into_inner();
        // Compaction is applied synchronously with the entry, so `physical` is always honoured.
        let (_, revision) = self
            .replicate(WriteRequest::Compact {
                revision: request.revision,
            })
            .await?;
        Ok(Response::new(pb::CompactionResponse {
            header: self.header(revision),
        }))
    }
}
