//! Generated Rust bindings for Conclave's wire protocols.
//!
//! * The etcd v3 client API — [`mvccpb`], [`authpb`], [`etcdserverpb`], [`v3electionpb`] and
//!   [`v3lockpb`] — compiled from the `.proto` files under the workspace's top-level `proto/etcd`
//!   directory. Package, message, field and service names and field numbers match etcd v3.5
//!   (plus the v3.6 additions to `StatusResponse`, `HashKVResponse` and `SnapshotResponse`), so
//!   stock etcd clients and `etcdctl` can talk to Conclave.
//! * Conclave's internal peer protocol — [`raftpb`] (protobuf package `conclave.raft`) —
//!   carrying encoded openraft messages between nodes.
//! * Conclave's partition groups — [`partitionpb`] (package `conclave.partition.v1`) —
//!   the `Groups` service applications use for membership, placement and routing.
//!
//! Every module contains prost message types plus tonic `*_client` and `*_server` submodules.
//! The modules sit side by side at the crate root because prost refers to types of sibling
//! packages as `super::<package>::Type`.

/// Key-value and event types (protobuf package `mvccpb`).
pub mod mvccpb {
    #![allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
    tonic::include_proto!("mvccpb");
}

/// User, role and permission types (protobuf package `authpb`).
pub mod authpb {
    #![allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
    tonic::include_proto!("authpb");
}

/// The etcd v3 client services KV, Watch, Lease, Cluster, Maintenance and Auth
/// (protobuf package `etcdserverpb`).
pub mod etcdserverpb {
    #![allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
    tonic::include_proto!("etcdserverpb");
}

/// The etcd v3 Election service (protobuf package `v3electionpb`).
pub mod v3electionpb {
    #![allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
    tonic::include_proto!("v3electionpb");
}

/// The etcd v3 Lock service (protobuf package `v3lockpb`).
pub mod v3lockpb {
    #![allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
    tonic::include_proto!("v3lockpb");
}

/// Conclave's partition groups: membership, placement and routing for applications
/// (protobuf package `conclave.partition.v1`).
pub mod partitionpb {
    #![allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
    tonic::include_proto!("conclave.partition.v1");
}

/// Conclave's node-to-node Raft transport (protobuf package `conclave.raft`).
pub mod raftpb {
    #![allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
    tonic::include_proto!("conclave.raft");
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::etcdserverpb::{self, PutRequest, RangeResponse, ResponseHeader};
    use super::mvccpb::KeyValue;
    use super::raftpb::RaftRequest;

    #[test]
    fn put_request_round_trips() {
        let req = PutRequest {
            key: b"foo".to_vec(),
            value: b"bar".to_vec(),
            lease: 7,
            prev_kv: true,
            ignore_value: false,
            ignore_lease: true,
        };
        let bytes = req.encode_to_vec();
        let decoded = PutRequest::decode(bytes.as_slice()).expect("decode");
        assert_eq!(decoded, req);
    }

    #[test]
    fn cross_package_types_round_trip() {
        let resp = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            kvs: vec![KeyValue {
                key: b"k".to_vec(),
                create_revision: 2,
                mod_revision: 3,
                version: 2,
                value: b"v".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        let decoded = RangeResponse::decode(resp.encode_to_vec().as_slice()).expect("decode");
        assert_eq!(decoded, resp);
    }

    #[test]
    fn field_numbers_match_etcd() {
        // PutRequest.key (field 1, bytes) = tag 0x0a; lease (field 3, varint) = tag 0x18.
        let req = PutRequest {
            key: b"a".to_vec(),
            lease: 5,
            ..Default::default()
        };
        assert_eq!(req.encode_to_vec(), vec![0x0a, 0x01, b'a', 0x18, 0x05]);
        // RaftRequest.group_id (field 1, varint), payload (field 2, bytes), cluster_id (field 3).
        let rr = RaftRequest {
            group_id: 1,
            payload: vec![9],
            cluster_id: 2,
        };
        assert_eq!(rr.encode_to_vec(), vec![0x08, 0x01, 0x12, 0x01, 0x09, 0x18, 0x02]);
    }

    #[test]
    fn service_names_match_etcd() {
        use super::{raftpb, v3electionpb, v3lockpb};
        assert_eq!(etcdserverpb::kv_server::SERVICE_NAME, "etcdserverpb.KV");
        assert_eq!(etcdserverpb::watch_server::SERVICE_NAME, "etcdserverpb.Watch");
        assert_eq!(etcdserverpb::lease_server::SERVICE_NAME, "etcdserverpb.Lease");
        assert_eq!(etcdserverpb::cluster_server::SERVICE_NAME, "etcdserverpb.Cluster");
        assert_eq!(
            etcdserverpb::maintenance_server::SERVICE_NAME,
            "etcdserverpb.Maintenance"
        );
        assert_eq!(etcdserverpb::auth_server::SERVICE_NAME, "etcdserverpb.Auth");
        assert_eq!(
            v3electionpb::election_server::SERVICE_NAME,
            "v3electionpb.Election"
        );
        assert_eq!(v3lockpb::lock_server::SERVICE_NAME, "v3lockpb.Lock");
        assert_eq!(
            raftpb::raft_service_server::SERVICE_NAME,
            "conclave.raft.RaftService"
        );
    }
}
