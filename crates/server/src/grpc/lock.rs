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
use crate::errors::{recipe_status, MUTEX_SESSION_EXPIRED};
use crate::recipes::{self, WaitError, Withdraw};

#[tonic::async_trait]
impl Lock for EtcdApi {
    async fn lock(&self, request: Request<pb::LockRequest>) -> Result<Response<pb::LockResponse>, Status> {
        self.require_leader_if_asked(request.metadata())?;
        crate::quota::check_space(&self.node)?;
        let request = request.into_inner();
        self.check_size(&request)?;
        let lease = recipes::session_lease(&self.node, request.lease).await?;
        let key = recipes::owner_key(&request.name, lease);
        let queued = recipes::enqueue(&self.node, &key, Vec::new(), lease).await?;
        // Only a key this call created is withdrawn if the call ends early: an existing
        // one belongs to an earlier Lock with the same lease.
        let mut withdraw = Withdraw::new(
            self.node.clone(),
            key.clone(),
            queued.create_revision,
            queued.created,
        );
        let prefix = recipes::prefix(&request.name);
        match recipes::wait_for_turn(&self.node, &prefix, &key, queued.create_revision).await {
            Ok(revision) => {
                withdraw.disarm();
                Ok(Response::new(pb::LockResponse {
                    header: self.header(revision),
                    key,
                }))
            }
            Err(WaitError::Expired) => {
                withdraw.disarm();
                Err(recipe_status(MUTEX_SESSION_EXPIRED))
            }
            // The guard withdraws the key, as etcd unlocks when waiting fails.
            Err(WaitError::Failed(status)) => Err(status),
        }
    }

    async fn unlock(
        &self,
        request: Request<pb::UnlockRequest>,
    ) -> Result<Response<pb::UnlockResponse>, Status> {
        self.require_leader_if_asked(request.metadata())?;
        let request = request.into_inner();
        self.check_size(&request)?;
        let revision = recipes::delete(&self.node, request.key).await?;
        Ok(Response::new(pb::UnlockResponse {
            header: self.header(revision),
        }))
    }
}
