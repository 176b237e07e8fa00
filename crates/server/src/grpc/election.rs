//! `v3electionpb.Election`: Campaign, Proclaim, Leader, Observe, Resign, etcd 3.5's
//! server-side election (`server/etcdserver/api/v3election` over
//! `clientv3/concurrency.Election`), built on [`crate::recipes`].
//!
//! The leader of election `<name>` is the key under `<name>/` with the lowest create
//! revision; its value is the proclaimed value and its create revision (`LeaderKey.rev`)
//! a fencing token that grows with every new leadership. Unlike etcd, a Campaign whose
//! lease dies while it waits fails ("election: session is expired") instead of waiting on.

use std::pin::Pin;

use conclave_mvcc::KeyValue;
use conclave_proto::v3electionpb as pb;
use conclave_proto::v3electionpb::election_server::Election;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::auth::{Access, Credentials};

use super::EtcdApi;
use crate::convert::kv_to_pb;
use crate::errors::{consensus_status, recipe_status};
use crate::recipes;
use conclave_contract::errors::{
    ELECTION_NOT_LEADER, ELECTION_NO_LEADER, ELECTION_SESSION_EXPIRED, MISSING_LEADER_KEY,
};
use conclave_contract::queue;

/// Observe responses buffered for a slow client.
const OBSERVE_BUFFER: usize = 16;

impl EtcdApi {
    /// Streams the leader of the election under `prefix` to `out`: the current one (once
    /// there is one), then every change of leader or of the leader's value (each put on
    /// the leader key, as etcd), until the client goes away.
    async fn observe_leader(self, prefix: Vec<u8>, out: mpsc::Sender<Result<pb::LeaderResponse, Status>>) {
        // Subscribe before the first read: no change after it is missed.
        let mut commits = self.node.subscribe_commits();
        if let Err(e) = self.node.linearizable_barrier().await {
            let _ = out.send(Err(consensus_status(&e))).await;
            return;
        }
        // The last leader version sent: key and mod revision.
        let mut sent: Option<(Vec<u8>, i64)> = None;
        loop {
            let (leader, seen) = match recipes::oldest(&self.node, &prefix).await {
                Ok(read) => read,
                Err(status) => {
                    let _ = out.send(Err(status)).await;
                    return;
                }
            };
            if let Some(kv) = leader {
                let version = (kv.key.clone(), kv.mod_revision);
                if sent.as_ref() != Some(&version) {
                    sent = Some(version);
                    let response = pb::LeaderResponse {
                        header: self.header(seen),
                        kv: Some(kv_to_pb(kv)),
                    };
                    if out.send(Ok(response)).await.is_err() {
                        return;
                    }
                }
            }
            let change = recipes::next_change(&mut commits, seen, |event| event.kv.key.starts_with(&prefix));
            tokio::select! {
                () = out.closed() => return,
                changed = change => {
                    if let Err(status) = changed {
                        let _ = out.send(Err(status)).await;
                        return;
                    }
                }
            }
        }
    }
}

/// The leader key of a Proclaim or Resign, which etcd requires.
fn leader_key(leader: Option<pb::LeaderKey>) -> Result<pb::LeaderKey, Status> {
    leader.ok_or_else(|| recipe_status(MISSING_LEADER_KEY))
}

impl EtcdApi {
    /// Refuses a caller without `accesses` on the queue of election or lock `name` (the
    /// keys `{name}/…`), and names under the reserved prefix `/_conclave/`.
    pub(crate) async fn check_queue(
        &self,
        credentials: &Credentials,
        name: &[u8],
        accesses: &[Access],
    ) -> Result<(), Status> {
        let prefix = queue::prefix(name);
        crate::groups::guard::check_put(&prefix)?;
        let end = conclave_contract::keys::prefix_end(&prefix);
        self.auth
            .authorize_fresh(credentials, |caller| {
                accesses
                    .iter()
                    .try_for_each(|access| caller.check(*access, &prefix, &end))
            })
            .await
            .map(|_| ())
    }
}

#[tonic::async_trait]
impl Election for EtcdApi {
    async fn campaign(
        &self,
        request: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::CampaignResponse>, Status> {
        self.require_leader_if_asked(request.metadata())?;
        crate::quota::check_space(&self.node)?;
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_size(&request)?;
        self.check_queue(&credentials, &request.name, &[Access::Read, Access::Write])
            .await?;
        let lease = recipes::session_lease(&self.node, request.lease).await?;
        let key = queue::owner_key(&request.name, lease);
        let queued = recipes::enqueue(&self.node, &key, request.value.clone(), lease).await?;
        if !queued.created && queued.value != request.value {
            // Campaigning again with another value proclaims it (etcd's Campaign).
            let (proclaimed, _) = recipes::put_if_created_at(
                &self.node,
                &key,
                queued.create_revision,
                request.value.clone(),
                lease,
            )
            .await?;
            if !proclaimed {
                return Err(recipe_status(ELECTION_NOT_LEADER));
            }
        }
        let revision =
            recipes::hold_turn(&self.node, &request.name, &key, &queued, ELECTION_SESSION_EXPIRED).await?;
        Ok(Response::new(pb::CampaignResponse {
            header: self.header(revision),
            leader: Some(pb::LeaderKey {
                name: request.name,
                key,
                rev: queued.create_revision,
                lease,
            }),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<pb::ProclaimRequest>,
    ) -> Result<Response<pb::ProclaimResponse>, Status> {
        self.require_leader_if_asked(request.metadata())?;
        crate::quota::check_space(&self.node)?;
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_size(&request)?;
        let leader = leader_key(request.leader)?;
        self.check_queue(&credentials, &leader.name, &[Access::Write])
            .await?;
        let (proclaimed, revision) =
            recipes::put_if_created_at(&self.node, &leader.key, leader.rev, request.value, leader.lease)
                .await?;
        if !proclaimed {
            return Err(recipe_status(ELECTION_NOT_LEADER));
        }
        Ok(Response::new(pb::ProclaimResponse {
            header: self.header(revision),
        }))
    }

    async fn leader(
        &self,
        request: Request<pb::LeaderRequest>,
    ) -> Result<Response<pb::LeaderResponse>, Status> {
        self.require_leader_if_asked(request.metadata())?;
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_size(&request)?;
        self.node
            .linearizable_barrier()
            .await
            .map_err(|e| consensus_status(&e))?;
        self.check_queue(&credentials, &request.name, &[Access::Read])
            .await?;
        let (leader, revision) = recipes::oldest(&self.node, &queue::prefix(&request.name)).await?;
        let kv: KeyValue = leader.ok_or_else(|| recipe_status(ELECTION_NO_LEADER))?;
        Ok(Response::new(pb::LeaderResponse {
            header: self.header(revision),
            kv: Some(kv_to_pb(kv)),
        }))
    }

    type ObserveStream = Pin<Box<dyn Stream<Item = Result<pb::LeaderResponse, Status>> + Send>>;

    async fn observe(
        &self,
        request: Request<pb::LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        self.require_leader_if_asked(request.metadata())?;
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_size(&request)?;
        self.check_queue(&credentials, &request.name, &[Access::Read])
            .await?;
        let (out, responses) = mpsc::channel(OBSERVE_BUFFER);
        tokio::spawn(self.clone().observe_leader(queue::prefix(&request.name), out));
        Ok(Response::new(Box::pin(ReceiverStream::new(responses))))
    }

    async fn resign(
        &self,
        request: Request<pb::ResignRequest>,
    ) -> Result<Response<pb::ResignResponse>, Status> {
        self.require_leader_if_asked(request.metadata())?;
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_size(&request)?;
        let leader = leader_key(request.leader)?;
        self.check_queue(&credentials, &leader.name, &[Access::Write])
            .await?;
        // Not being the leader (any more) is no error, as in etcd.
        let (_, revision) = recipes::delete_if_created_at(&self.node, &leader.key, leader.rev).await?;
        Ok(Response::new(pb::ResignResponse {
            header: self.header(revision),
        }))
    }
}
