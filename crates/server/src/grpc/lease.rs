//! `etcdserverpb.Lease`: Grant, Revoke, KeepAlive (stream), TimeToLive, Leases.
//! Countdowns are kept by the leader; see `conclave_consensus::lessor`.

use conclave_proto::etcdserverpb as pb;
use conclave_proto::etcdserverpb::lease_server::Lease;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::EtcdApi;
use crate::auth::{Access, Caller, Credentials};
use crate::errors::{consensus_status, mvcc_status};

impl EtcdApi {
    /// Refuses `access` unless the caller may have it on every key attached to lease `id`
    /// (etcd checks a revoke against the keys it deletes).
    fn check_lease_keys(&self, caller: &Caller, id: i64, access: Access) -> Result<(), Status> {
        if caller.is_admin() {
            return Ok(());
        }
        let keys = self
            .node
            .store()
            .lease(id)
            .map_err(|e| mvcc_status(&e))?
            .map(|l| l.keys)
            .unwrap_or_default();
        keys.iter().try_for_each(|key| caller.check(access, key, &[]))
    }
}

#[tonic::async_trait]
impl Lease for EtcdApi {
    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        // Any authenticated user may grant leases (etcd does not even ask for a token).
        self.auth.caller(&Credentials::of(&request)).await?;
        let request = request.into_inner();
        crate::quota::check_space(&self.node)?;
        let (id, ttl) = self
            .node
            .lease_grant(request.id, request.ttl)
            .await
            .map_err(|e| consensus_status(&e))?;
        let revision = self.node.store().current_revision();
        Ok(Response::new(pb::LeaseGrantResponse {
            header: self.header(revision),
            id,
            ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let credentials = Credentials::of(&request);
        let id = request.into_inner().id;
        self.auth
            .authorize_fresh(&credentials, |caller| {
                self.check_lease_keys(caller, id, Access::Write)
            })
            .await?;
        let revision = self
            .node
            .lease_revoke(id)
            .await
            .map_err(|e| consensus_status(&e))?;
        Ok(Response::new(pb::LeaseRevokeResponse {
            header: self.header(revision),
        }))
    }

    type LeaseKeepAliveStream = ReceiverStream<Result<pb::LeaseKeepAliveResponse, Status>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        self.auth.caller(&Credentials::of(&request)).await?;
        let mut requests = request.into_inner();
        let (out, responses) = mpsc::channel(16);
        let api = self.clone();
        tokio::spawn(async move {
            loop {
                let request = match requests.message().await {
                    Ok(Some(request)) => request,
                    Ok(None) | Err(_) => return,
                };
                let response = match api.node.lease_keep_alive(request.id).await {
                    Ok(ttl) => Ok(pb::LeaseKeepAliveResponse {
                        header: api.header(api.node.store().current_revision()),
                        id: request.id,
                        ttl,
                    }),
                    Err(e) => Err(consensus_status(&e)),
                };
                let failed = response.is_err();
                if out.send(response).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(responses)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        if request.keys {
            self.auth
                .authorize_fresh(&credentials, |caller| {
                    self.check_lease_keys(caller, request.id, Access::Read)
                })
                .await?;
        } else {
            self.auth.caller(&credentials).await?;
        }
        let ttl = self
            .node
            .lease_time_to_live(request.id)
            .await
            .map_err(|e| consensus_status(&e))?;
        let keys = if request.keys && ttl.remaining >= 0 {
            self.node
                .store()
                .lease(request.id)
                .map_err(|e| mvcc_status(&e))?
                .map(|l| l.keys)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::LeaseTimeToLiveResponse {
            header: self.header(self.node.store().current_revision()),
            id: request.id,
            ttl: ttl.remaining,
            granted_ttl: ttl.granted,
            keys,
        }))
    }

    async fn lease_leases(
        &self,
        request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        self.auth.caller(&Credentials::of(&request)).await?;
        self.node
            .linearizable_barrier()
            .await
            .map_err(|e| consensus_status(&e))?;
        let leases = self.node.store().leases().map_err(|e| mvcc_status(&e))?;
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: self.header(self.node.store().current_revision()),
            leases: leases.into_iter().map(|l| pb::LeaseStatus { id: l.id }).collect(),
        }))
    }
}
