//! The Raft transport, server side: `conclave.raft.RaftService` dispatching to openraft
//! and to [`Node::handle_peer`].

use std::io::Write;

use conclave_proto::raftpb::raft_service_server::{RaftService, RaftServiceServer};
use conclave_proto::raftpb::{RaftReply, RaftRequest, SnapshotChunk};
use openraft::alias::SnapshotOf;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::codec;
use crate::node::Node;
use crate::peer::PeerRequest;
use crate::snapshot::SnapshotFile;
use crate::types::{SnapshotMeta, TypeConfig, Vote};

/// The peer-port gRPC service of one member.
pub struct PeerService {
    node: Node,
}

impl PeerService {
    /// A tonic server for `node`'s peer service, with no message size limit (peers are
    /// trusted; entries are bounded by the client request limit).
    pub fn server(node: Node) -> RaftServiceServer<PeerService> {
        RaftServiceServer::new(PeerService { node })
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    fn decode<T: DeserializeOwned>(&self, request: &RaftRequest) -> Result<T, Status> {
        if request.group_id != crate::node::DEFAULT_GROUP.0 {
            return Err(Status::not_found(format!(
                "unknown raft group {}",
                request.group_id
            )));
        }
        codec::decode(&request.payload).map_err(|e| Status::invalid_argument(e.to_string()))
    }
}

fn reply<T: Serialize>(value: &T) -> Result<Response<RaftReply>, Status> {
    let payload = codec::encode(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftReply { payload }))
}

#[tonic::async_trait]
impl RaftService for PeerService {
    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc: VoteRequest<TypeConfig> = self.decode(request.get_ref())?;
        reply(&self.node.raft().vote(rpc).await)
    }

    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = self.decode(request.get_ref())?;
        reply(&self.node.raft().append_entries(rpc).await)
    }

    async fn transfer_leader(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc: TransferLeaderRequest<TypeConfig> = self.decode(request.get_ref())?;
        reply(&self.node.raft().handle_transfer_leader(rpc).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<RaftReply>, Status> {
        let mut chunks = request.into_inner();
        let first = chunks
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        if first.group_id != crate::node::DEFAULT_GROUP.0 {
            return Err(Status::not_found(format!(
                "unknown raft group {}",
                first.group_id
            )));
        }
        let (vote, meta): (Vote, SnapshotMeta) =
            codec::decode(&first.meta).map_err(|e| Status::invalid_argument(e.to_string()))?;

        // Written to a temporary file chunk by chunk; the state machine verifies it whole
        // before installing, so a broken transfer never replaces good state.
        let path = self.node.snapshots().incoming_path();
        let mut file = std::fs::File::create(&path).map_err(|e| Status::internal(e.to_string()))?;
        let mut bytes = 0u64;
        let mut complete = false;
        let result: Result<(), Status> = async {
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk?;
                file.write_all(&chunk.data)
                    .map_err(|e| Status::internal(e.to_string()))?;
                bytes += chunk.data.len() as u64;
                if chunk.done {
                    complete = true;
                    break;
                }
            }
            if !complete {
                return Err(Status::aborted("snapshot stream ended early"));
            }
            file.sync_all().map_err(|e| Status::internal(e.to_string()))
        }
        .await;
        if let Err(status) = result {
            let _ = std::fs::remove_file(&path);
            return Err(status);
        }
        tracing::info!(bytes, last_log_id = ?meta.last_log_id, "snapshot received");
        let snapshot = SnapshotOf::<TypeConfig, SnapshotFile> {
            meta,
            snapshot: SnapshotFile { path: path.clone() },
        };
        let response = self.node.raft().install_full_snapshot(vote, snapshot).await;
        if path.exists() {
            // Not adopted (older than what we have, or failed): drop the temporary file.
            let _ = std::fs::remove_file(&path);
        }
        reply(&response)
    }

    async fn forward(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let peer_request: PeerRequest = self.decode(request.get_ref())?;
        reply(&self.node.handle_peer(peer_request).await)
    }
}
