//! `v3lockpb.Lock`: Lock and Unlock, etcd 3.5's server-side mutex
//! (`server/etcdserver/api/v3lock` over `clientv3/concurrency.Mutex`), built on
//! [`crate::recipes`].
//!
//! The holder of lock `<name>` is the key under `<name>/` with the lowest create revision;
//! a caller's key is `<name>/<lease hex>`, so calls with the same lease share one place in
//! the queue (re-entrant). A waiter whose lease dies fails with etcd 3.5's
//! "mutex: session is expired" as soon as its key is deleted.

use conclave_proto::v3lockpb as pb;
use conclave_proto::v3lockpb::lock_server::Lock;
use tonic::{Request, Response, Status};

use super::EtcdApi;
use crate::auth::{Access, Credentials};
use crate::recipes;
use conclave_contract::errors::MUTEX_SESSION_EXPIRED;
use conclave_contract::queue;

#[tonic::async_trait]
impl Lock for EtcdApi {
    async fn lock(&self, request: Request<pb::LockRequest>) -> Result<Response<pb::LockResponse>, Status> {
        self.require_leader_if_asked(request.metadata())?;
        crate::quota::check_space(&self.node)?;
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_size(&request)?;
        self.check_queue(&credentials, &request.name, &[Access::Read, Access::Write])
            .await?;
        let lease = recipes::session_lease(&self.node, request.lease).await?;
        let key = queue::owner_key(&request.name, lease);
        let queued = recipes::enqueue(&self.node, &key, Vec::new(), lease).await?;
        let revision =
            recipes::hold_turn(&self.node, &request.name, &key, &queued, MUTEX_SESSION_EXPIRED).await?;
        Ok(Response::new(pb::LockResponse {
            header: self.header(revision),
            key,
        }))
    }

    async fn unlock(
        &self,
        request: Request<pb::UnlockRequest>,
    ) -> Result<Response<pb::UnlockResponse>, Status> {
        self.require_leader_if_asked(request.metadata())?;
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_size(&request)?;
        // The key is `{name}/{lease}`: the write permission on the key itself is what counts.
        crate::groups::guard::check_put(&request.key)?;
        self.auth
            .caller(&credentials)
            .await?
            .check(Access::Write, &request.key, &[])?;
        let revision = recipes::delete(&self.node, request.key).await?;
        Ok(Response::new(pb::UnlockResponse {
            header: self.header(revision),
        }))
    }
}
