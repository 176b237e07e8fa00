//! `etcdserverpb.Maintenance`. Status is served; the other RPCs come with the rest of the
//! etcd API (see docs/compatibility.md) and answer `Unimplemented` until then.

use std::pin::Pin;

use conclave_proto::etcdserverpb as pb;
use conclave_proto::etcdserverpb::maintenance_server::Maintenance;
use futures::Stream;
use tonic::{Request, Response, Status};

use super::{EtcdApi, ETCD_COMPAT_VERSION};

fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!("Maintenance.{rpc} is not implemented yet by Conclave"))
}

#[tonic::async_trait]
impl Maintenance for EtcdApi {
    async fn alarm(&self, _: Request<pb::AlarmRequest>) -> Result<Response<pb::AlarmResponse>, Status> {
        Err(not_yet("Alarm"))
    }

    async fn status(&self, _: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let status = self.node.status();
        let store = self.node.store().clone();
        let (db_size, revision) =
            tokio::task::spawn_blocking(move || (store.size_on_disk(), store.current_revision()))
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        let db_size = i64::try_from(db_size.unwrap_or(0)).unwrap_or(i64::MAX);
        Ok(Response::new(pb::StatusResponse {
            header: self.header(revision),
            version: ETCD_COMPAT_VERSION.to_string(),
            db_size,
            leader: status.leader.unwrap_or(0),
            raft_index: status.committed_index,
            raft_term: status.term,
            raft_applied_index: status.applied_index,
            errors: Vec::new(),
            db_size_in_use: db_size,
            is_learner: status.is_learner,
            ..Default::default()
        }))
    }

    async fn defragment(
        &self,
        _: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        Err(not_yet("Defragment"))
    }

    async fn hash(&self, _: Request<pb::HashRequest>) -> Result<Response<pb::HashResponse>, Status> {
        Err(not_yet("Hash"))
    }

    async fn hash_kv(&self, _: Request<pb::HashKvRequest>) -> Result<Response<pb::HashKvResponse>, Status> {
        Err(not_yet("HashKV"))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

    async fn snapshot(
        &self,
        _: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(not_yet("Snapshot"))
    }

    async fn move_leader(
        &self,
        _: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        Err(not_yet("MoveLeader"))
    }

    async fn downgrade(
        &self,
        _: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(not_yet("Downgrade"))
    }
}
