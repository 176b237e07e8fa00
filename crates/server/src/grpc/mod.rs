//! The etcd v3 gRPC services on the client port.

pub mod auth;
pub mod cluster;
pub mod election;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod watch;

use conclave_consensus::Node;
use conclave_proto::etcdserverpb::ResponseHeader;
use prost::Message;
use tonic::Status;

use crate::metrics::WatchGauges;
use crate::quota::UsageGauge;
use crate::watch::SessionSettings;
use conclave_contract::errors::REQUEST_TOO_LARGE;
use std::sync::Arc;

/// The etcd version this server reports; etcd 3.4/3.5 clients and Kubernetes accept it.
pub const ETCD_COMPAT_VERSION: &str = "3.5.0";

/// Settings of the etcd services (limits are etcd's `--max-request-bytes`,
/// `--max-txn-ops`).
#[derive(Debug, Clone, Copy)]
pub struct ApiSettings {
    /// Largest accepted request, in encoded bytes.
    pub max_request_bytes: usize,
    /// Most operations in one txn branch.
    pub max_txn_ops: usize,
    /// Watch sessions.
    pub watch: SessionSettings,
    /// The backend quota in bytes (0 = none), reported by Status.
    pub quota_backend_bytes: u64,
}

/// State shared by the etcd services of one node.
#[derive(Clone)]
pub struct EtcdApi {
    node: Node,
    auth: crate::auth::Auth,
    settings: ApiSettings,
    usage: Arc<UsageGauge>,
    watch_gauges: WatchGauges,
}

/// Whether a call carries etcd's `hasleader: true` metadata (clientv3's `WithRequireLeader`).
fn asks_for_leader(metadata: &tonic::metadata::MetadataMap) -> bool {
    metadata.get("hasleader").and_then(|v| v.to_str().ok()) == Some("true")
}

impl EtcdApi {
    /// The services of `node` (checking requests with `auth`); watch sessions keep `watch_gauges` up to date.
    pub fn new(
        node: Node,
        auth: crate::auth::Auth,
        settings: ApiSettings,
        usage: Arc<UsageGauge>,
        watch_gauges: WatchGauges,
    ) -> EtcdApi {
        EtcdApi {
            node,
            auth,
            settings,
            usage,
            watch_gauges,
        }
    }

    /// etcd clients send metadata `hasleader: true` to ask that a member without a leader
    /// refuse the call rather than serve it. "Without a leader" includes a member that
    /// still names one but has not heard from it within an election timeout (cut off).
    fn require_leader_if_asked(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        if asks_for_leader(metadata) && !self.node.has_live_leader(self.node.election_timeout()) {
            return Err(Status::unavailable(conclave_contract::errors::NO_LEADER));
        }
        Ok(())
    }

    /// etcd's response header at `revision`.
    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.node.cluster_id(),
            member_id: self.node.member_id(),
            revision,
            raft_term: self.node.term(),
        })
    }

    /// Refuses requests over the size limit with etcd's error.
    fn check_size(&self, request: &impl Message) -> Result<(), Status> {
        if request.encoded_len() > self.settings.max_request_bytes {
            return Err(Status::invalid_argument(REQUEST_TOO_LARGE));
        }
        Ok(())
    }
}
