//! The etcd v3 gRPC services on the client port.

pub mod kv;
pub mod maintenance;

use conclave_consensus::Node;
use conclave_proto::etcdserverpb::ResponseHeader;
use prost::Message;
use tonic::Status;

use crate::errors::REQUEST_TOO_LARGE;

/// The etcd version this server reports; etcd 3.4/3.5 clients and Kubernetes accept it.
pub const ETCD_COMPAT_VERSION: &str = "3.5.0";

/// Request limits (etcd's `--max-request-bytes`, `--max-txn-ops`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted request, in encoded bytes.
    pub max_request_bytes: usize,
    /// Most operations in one txn branch.
    pub max_txn_ops: usize,
}

/// State shared by the etcd services of one node.
#[derive(Clone)]
pub struct EtcdApi {
    node: Node,
    limits: Limits,
}

impl EtcdApi {
    /// The services of `node`, enforcing `limits`.
    pub fn new(node: Node, limits: Limits) -> EtcdApi {
        EtcdApi { node, limits }
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
        if request.encoded_len() > self.limits.max_request_bytes {
            return Err(Status::invalid_argument(REQUEST_TOO_LARGE));
        }
        Ok(())
    }
}
