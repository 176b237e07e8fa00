//! The Raft transport, client side: openraft's `RaftNetworkV2` over the tonic
//! `conclave.raft.RaftService` on each member's peer URL.
//!
//! Messages are encoded by [`crate::format`] (a versioned envelope per kind), tagged with
//! the Raft group they belong to. Outgoing connections bind to this member's peer IP when it
//! listens on a specific one, so a member's traffic is identifiable by source address.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conclave_mvcc::GroupId;
use conclave_proto::raftpb::raft_service_client::RaftServiceClient;
use conclave_proto::raftpb::{RaftRequest, SnapshotChunk};
use conclave_tls::{ClientTls, Connector};
use openraft::alias::SnapshotOf;
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::AnyError;
use tokio::io::AsyncReadExt;
use tonic::transport::{Channel, Endpoint};

use crate::error::ConsensusError;
use crate::format::{self, kind, Kind, RemoteFatal};
use crate::snapshot::SnapshotFile;
use crate::types::{MemberNode, TypeConfig, Vote};

/// Size of one streamed snapshot chunk.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Shared pool of peer channels, keyed by URL (tonic channels reconnect by themselves),
/// and the cluster id every outgoing message is stamped with.
#[derive(Clone, Default)]
pub struct PeerChannels {
    local_ip: Option<IpAddr>,
    /// TLS for `https://` peer URLs (the peer CA, and the peer certificate presented as
    /// this member's client certificate); `None`: `https://` URLs are refused.
    tls: Option<Arc<ClientTls>>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    cluster_id: Arc<AtomicU64>,
}

impl PeerChannels {
    /// A pool whose connections originate from `local_ip` (when given) and dial
    /// `https://` URLs with `tls`.
    pub fn new(local_ip: Option<IpAddr>, tls: Option<Arc<ClientTls>>) -> PeerChannels {
        PeerChannels {
            local_ip,
            tls,
            channels: Arc::default(),
            cluster_id: Arc::default(),
        }
    }

    /// Stamps outgoing messages with `cluster_id` from now on (0 until a member knows its
    /// cluster).
    pub fn set_cluster_id(&self, cluster_id: u64) {
        self.cluster_id.store(cluster_id, Ordering::Relaxed);
    }

    /// The cluster id outgoing messages carry.
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id.load(Ordering::Relaxed)
    }

    /// The channel to `url`, created lazily (no connection is made until it is used).
    pub fn channel(&self, url: &str) -> Result<Channel, ConsensusError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(url) {
            return Ok(channel.clone());
        }
        let channel = match conclave_tls::client::split_https(url) {
            // TLS is the connector's (it re-reads the peer certificate files on each dial,
            // so rotated certificates are used without a restart); tonic sees plain HTTP/2.
            Some((plain, host)) => {
                let tls = self.tls.clone().ok_or_else(|| {
                    ConsensusError::Config(format!(
                        "peer URL {url} is https:// but this member has no peer TLS \
                         (--peer-trusted-ca-file with --peer-cert-file/--peer-key-file, \
                         or --peer-auto-tls)"
                    ))
                })?;
                let connector = Connector::new(tls, &host, self.local_ip)
                    .map_err(|e| ConsensusError::Config(format!("peer URL {url}: {e}")))?;
                endpoint(&plain)?.connect_with_connector_lazy(connector)
            }
            None => endpoint(url)?.local_address(self.local_ip).connect_lazy(),
        };
        channels.insert(url.to_string(), channel.clone());
        Ok(channel)
    }

    /// A Raft-service client for `node`'s first peer URL.
    pub fn client(&self, node: &MemberNode) -> Result<RaftServiceClient<Channel>, AnyError> {
        let url = node
            .peer_urls
            .first()
            .ok_or_else(|| AnyError::error(format!("member {} has no peer URL", node.name)))?;
        let channel = self.channel(url).map_err(|e| AnyError::error(e.to_string()))?;
        Ok(RaftServiceClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX))
    }
}

fn endpoint(url: &str) -> Result<Endpoint, ConsensusError> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| ConsensusError::Config(format!("peer URL {url} is not usable: {e}")))?;
    Ok(endpoint
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5)))
}

/// Creates one [`PeerClient`] per target member for a Raft group.
#[derive(Clone)]
pub struct PeerNetwork {
    group: GroupId,
    channels: PeerChannels,
}

impl PeerNetwork {
    /// The network of `group`, over `channels`.
    pub fn new(group: GroupId, channels: PeerChannels) -> PeerNetwork {
        PeerNetwork { group, channels }
    }
}

/// The connection from this member to one target member.
pub struct PeerClient {
    group: GroupId,
    target: u64,
    node: MemberNode,
    channels: PeerChannels,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &MemberNode) -> PeerClient {
        PeerClient {
            group: self.group,
            target,
            node: node.clone(),
            channels: self.channels.clone(),
        }
    }
}

fn unreachable(e: impl std::fmt::Display) -> Unreachable<TypeConfig> {
    Unreachable::new(&AnyError::error(e.to_string()))
}

fn network(e: impl std::fmt::Display) -> NetworkError<TypeConfig> {
    NetworkError::new(&AnyError::error(e.to_string()))
}

/// Connection-level failures mean "back off and retry", anything else is a network error.
fn status_error<E: std::error::Error>(status: tonic::Status) -> RPCError<TypeConfig, E> {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => {
            RPCError::Unreachable(unreachable(status.message()))
        }
        _ => RPCError::Network(network(status.message())),
    }
}

impl PeerClient {
    /// Sends `request` as kind `Q` and reads the answer as kind `A`.
    async fn call<Q, A, T>(
        &mut self,
        method: Method,
        request: &Q::Value,
        option: &RPCOption,
    ) -> Result<T, RPCError<TypeConfig>>
    where
        Q: Kind,
        A: Kind<Value = Result<T, RemoteFatal>>,
    {
        let mut client = self
            .channels
            .client(&self.node)
            .map_err(|e| RPCError::Unreachable(unreachable(e)))?;
        let payload = format::encode::<Q>(request).map_err(|e| RPCError::Network(network(e)))?;
        let mut req = tonic::Request::new(RaftRequest {
            group_id: self.group.0,
            payload,
            cluster_id: self.channels.cluster_id(),
        });
        req.set_timeout(option.hard_ttl());
        let reply = match method {
            Method::Vote => client.vote(req).await,
            Method::PreVote => client.pre_vote(req).await,
            Method::Append => client.append_entries(req).await,
            Method::TransferLeader => client.transfer_leader(req).await,
        }
        .map_err(status_error)?;
        let result =
            format::decode::<A>(&reply.into_inner().payload).map_err(|e| RPCError::Network(network(e)))?;
        // The only error a peer's Raft returns here is that its core stopped: treat the
        // peer as unreachable so replication backs off until it is restarted.
        result.map_err(|e| {
            RPCError::Unreachable(unreachable(format!(
                "member {:x} ({}): {e}",
                self.target, self.node.name
            )))
        })
    }
}

#[derive(Clone, Copy)]
enum Method {
    Vote,
    PreVote,
    Append,
    TransferLeader,
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call::<kind::AppendEntriesRequest, kind::AppendEntriesResult, _>(Method::Append, &rpc, &option)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call::<kind::VoteRequest, kind::VoteResult, _>(Method::Vote, &rpc, &option)
            .await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call::<kind::VoteRequest, kind::VoteResult, _>(Method::PreVote, &rpc, &option)
            .await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call::<kind::TransferLeaderRequest, kind::TransferLeaderResult, _>(
            Method::TransferLeader,
            &req,
            &option,
        )
        .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: SnapshotOf<TypeConfig, SnapshotFile>,
        cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut client = self
            .channels
            .client(&self.node)
            .map_err(|e| StreamingError::Unreachable(unreachable(e)))?;
        let meta = format::encode::<kind::SnapshotOffer>(&(vote, snapshot.meta.clone()))
            .map_err(|e| StreamingError::Network(network(e)))?;
        let mut file = tokio::fs::File::open(&snapshot.snapshot.path)
            .await
            .map_err(|e| StreamingError::Network(network(format!("open snapshot: {e}"))))?;
        let group_id = self.group.0;
        let cluster_id = self.channels.cluster_id();

        // Chunks are read from the file as the stream is polled, so at most a few chunks
        // are in memory whatever the snapshot's size.
        let (tx, rx) = tokio::sync::mpsc::channel::<SnapshotChunk>(2);
        let reader = tokio::spawn(async move {
            if tx
                .send(SnapshotChunk {
                    group_id,
                    meta,
                    data: Vec::new(),
                    done: false,
                    cluster_id,
                })
                .await
                .is_err()
            {
                return Ok(());
            }
            loop {
                let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES];
                let n = file.read(&mut buf).await?;
                buf.truncate(n);
                let done = n == 0;
                if tx
                    .send(SnapshotChunk {
                        group_id,
                        meta: Vec::new(),
                        data: buf,
                        done,
                        cluster_id,
                    })
                    .await
                    .is_err()
                    || done
                {
                    return Ok::<(), std::io::Error>(());
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let send = client.install_snapshot(stream);
        let reply = tokio::select! {
            reply = send => reply,
            closed = cancel => {
                reader.abort();
                return Err(StreamingError::Closed(closed));
            }
        };
        match reader.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StreamingError::Network(network(format!("read snapshot: {e}")))),
            Err(e) => return Err(StreamingError::Network(network(e))),
        }
        let reply = reply.map_err(|status| match status.code() {
            tonic::Code::Unavailable => StreamingError::Unreachable(unreachable(status.message())),
            _ => StreamingError::Network(network(status.message())),
        })?;
        let result = format::decode::<kind::SnapshotResult>(&reply.into_inner().payload)
            .map_err(|e| StreamingError::Network(network(e)))?;
        result.map_err(|e| StreamingError::Network(network(e)))
    }
}
