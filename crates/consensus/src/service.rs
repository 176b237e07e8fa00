//! The Raft transport, server side: `conclave.raft.RaftService` dispatching to openraft
//! and to [`Node::handle_peer`].
//!
//! Every message must name this member's cluster and group; a member of another cluster
//! (stale URLs, a wiped and re-created cluster) is refused with etcd's "cluster ID
//! mismatch". On the client port only `Forward` with `Join`/`Identify` is served, so
//! a client can never inject Raft traffic.

use std::io::Write;
use std::path::PathBuf;

use conclave_proto::raftpb::raft_service_server::{RaftService, RaftServiceServer};
use conclave_proto::raftpb::{RaftReply, RaftRequest, SnapshotChunk};
use openraft::alias::SnapshotOf;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::format::{self, kind, Kind, RemoteFatal};
use crate::node::{Node, DEFAULT_GROUP};
use crate::peer::PeerRequest;
use crate::snapshot::{self, SnapshotFile};
use crate::types::TypeConfig;

/// Largest message accepted on the peer port: a replication batch of entries, each
/// bounded by the client request limit (see the Raft config in `node`).
pub const MAX_PEER_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
/// Largest message accepted by the join service on the client port.
const MAX_JOIN_MESSAGE_BYTES: usize = 64 * 1024;

/// Which port a [`PeerService`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    /// The peer port: everything.
    Peer,
    /// The client port: only joining (`--join` may name a client URL).
    Client,
}

/// The Raft-transport gRPC service of one member.
pub struct PeerService {
    node: Node,
    port: Port,
}

impl PeerService {
    /// The full service, for the peer port.
    pub fn server(node: Node) -> RaftServiceServer<PeerService> {
        RaftServiceServer::new(PeerService {
            node,
            port: Port::Peer,
        })
        .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES)
    }

    /// The join-only service, for the client port.
    pub fn join_server(node: Node) -> RaftServiceServer<PeerService> {
        RaftServiceServer::new(PeerService {
            node,
            port: Port::Client,
        })
        .max_decoding_message_size(MAX_JOIN_MESSAGE_BYTES)
    }

    fn check_origin(&self, group_id: u64, cluster_id: u64) -> Result<(), Status> {
        if self.port == Port::Client {
            return Err(Status::permission_denied(
                "the raft transport is served on the peer port only",
            ));
        }
        if cluster_id != self.node.cluster_id() {
            return Err(Status::failed_precondition(format!(
                "etcdserver: cluster ID mismatch (message for cluster {cluster_id:x}, this member is in {:x})",
                self.node.cluster_id()
            )));
        }
        if group_id != DEFAULT_GROUP.0 {
            return Err(Status::not_found(format!("unknown raft group {group_id}")));
        }
        Ok(())
    }

    fn decode<K: Kind>(&self, request: &RaftRequest) -> Result<K::Value, Status> {
        self.check_origin(request.group_id, request.cluster_id)?;
        format::decode::<K>(&request.payload).map_err(|e| Status::invalid_argument(e.to_string()))
    }
}

fn reply<K: Kind>(value: &K::Value) -> Result<Response<RaftReply>, Status> {
    let payload = format::encode::<K>(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftReply { payload }))
}

/// Deletes a received snapshot file unless it was handed over (also when the request is
/// dropped midway because the sender went away).
struct IncomingFile(Option<PathBuf>);

impl Drop for IncomingFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            if path.exists() {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

#[tonic::async_trait]
impl RaftService for PeerService {
    async fn vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc = self.decode::<kind::VoteRequest>(request.get_ref())?;
        reply::<kind::VoteResult>(&self.node.raft().vote(rpc).await.map_err(RemoteFatal::from))
    }

    async fn pre_vote(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc = self.decode::<kind::VoteRequest>(request.get_ref())?;
        reply::<kind::VoteResult>(&self.node.raft().pre_vote(rpc).await.map_err(RemoteFatal::from))
    }

    async fn append_entries(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc = self.decode::<kind::AppendEntriesRequest>(request.get_ref())?;
        let answer = self.node.raft().append_entries(rpc).await;
        if let Ok(response) = &answer {
            // Heard from a leader this member accepts (not a stale one it refused).
            if !matches!(response, openraft::raft::AppendEntriesResponse::HigherVote(_)) {
                self.node.note_leader_contact();
            }
        }
        reply::<kind::AppendEntriesResult>(&answer.map_err(RemoteFatal::from))
    }

    async fn transfer_leader(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let rpc = self.decode::<kind::TransferLeaderRequest>(request.get_ref())?;
        let answer = self.node.raft().handle_transfer_leader(rpc).await;
        reply::<kind::TransferLeaderResult>(&answer.map_err(RemoteFatal::from))
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
        self.check_origin(first.group_id, first.cluster_id)?;
        let (vote, meta) = format::decode::<kind::SnapshotOffer>(&first.meta)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;

        // Written to a temporary file chunk by chunk, then verified whole before openraft
        // sees it: a broken transfer is an error for the sender, never a failed install.
        let path = self.node.snapshots().incoming_path();
        let guard = IncomingFile(Some(path.clone()));
        let mut file = std::fs::File::create(&path).map_err(|e| Status::internal(e.to_string()))?;
        let mut bytes = 0u64;
        let mut complete = false;
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
        file.sync_all().map_err(|e| Status::internal(e.to_string()))?;
        drop(file);
        let check = path.clone();
        let (file_meta, records) = tokio::task::spawn_blocking(move || snapshot::verify(&check))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::data_loss(format!("received snapshot is damaged: {e}")))?;
        if file_meta.last_log_id != meta.last_log_id {
            return Err(Status::invalid_argument(
                "snapshot file does not match its announced meta",
            ));
        }
        tracing::info!(bytes, records, last_log_id = ?meta.last_log_id, "snapshot received");
        let snapshot = SnapshotOf::<TypeConfig, SnapshotFile> {
            meta,
            snapshot: SnapshotFile { path },
        };
        let response = self.node.raft().install_full_snapshot(vote, snapshot).await;
        // An adopted file has moved; one that was not (older than ours, or failed) is
        // removed by the guard.
        drop(guard);
        reply::<kind::SnapshotResult>(&response.map_err(RemoteFatal::from))
    }

    async fn forward(&self, request: Request<RaftRequest>) -> Result<Response<RaftReply>, Status> {
        let request = request.into_inner();
        let peer_request = format::decode::<kind::PeerRequest>(&request.payload)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // A member that is joining or identifying itself does not know the cluster id yet.
        let introduction = matches!(peer_request, PeerRequest::Join(_) | PeerRequest::Identify(_));
        if introduction && request.cluster_id == 0 {
            if request.group_id != DEFAULT_GROUP.0 {
                return Err(Status::not_found(format!(
                    "unknown raft group {}",
                    request.group_id
                )));
            }
        } else {
            self.check_origin(request.group_id, request.cluster_id)?;
        }
        reply::<kind::PeerReply>(&self.node.handle_peer(peer_request).await)
    }
}
