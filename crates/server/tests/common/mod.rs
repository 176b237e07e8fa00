//! Helpers shared by the node's integration tests (each test file includes this module).
#![allow(dead_code)]

pub mod etcdctl;
pub mod scrape;
pub mod tls;

use std::path::Path;
use std::time::Duration;

use conclave_testkit::{client, Cluster, ClusterOptions};
use etcd_client::{Client, GetOptions};

/// The node binary Cargo built for these tests.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_conclave"))
}

/// Timing used by the cluster tests: fast elections, short request timeouts.
pub fn fast_options(size: usize) -> ClusterOptions {
    ClusterOptions {
        size,
        heartbeat_ms: Some(50),
        election_timeout_ms: Some(400),
        extra_args: vec!["--request-timeout".into(), "3000".into()],
        ..ClusterOptions::default()
    }
}

/// Starts a cluster with [`fast_options`].
pub fn start_cluster(size: usize) -> Cluster {
    Cluster::start(bin(), fast_options(size)).expect("start cluster")
}

/// A client of node `i` only.
pub async fn client_of(cluster: &Cluster, i: usize) -> Client {
    client(cluster.node(i).client_url()).await.expect("connect")
}

/// A generous bound for one request in a healthy cluster.
pub const REQUEST: Duration = Duration::from_secs(10);

/// Linearizable get of one key's value through `client`, bounded by [`REQUEST`].
pub async fn get_value(client: &mut Client, key: &str) -> Result<Option<Vec<u8>>, String> {
    let response = tokio::time::timeout(REQUEST, client.get(key, None))
        .await
        .map_err(|_| "get timed out".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(response.kvs().first().map(|kv| kv.value().to_vec()))
}

/// Serializable (member-local) get.
pub async fn get_local(client: &mut Client, key: &str) -> Result<Option<Vec<u8>>, String> {
    let response = tokio::time::timeout(
        REQUEST,
        client.get(key, Some(GetOptions::new().with_serializable())),
    )
    .await
    .map_err(|_| "get timed out".to_string())?
    .map_err(|e| e.to_string())?;
    Ok(response.kvs().first().map(|kv| kv.value().to_vec()))
}

/// The gRPC status of an etcd-client error, if it is one.
pub fn grpc_status(error: &etcd_client::Error) -> Option<(tonic::Code, String)> {
    match error {
        etcd_client::Error::GRpcStatus(status) => Some((status.code(), status.message().to_string())),
        _ => None,
    }
}

/// Asserts that `result` failed with exactly this gRPC code and etcd message.
pub fn assert_grpc_error<T: std::fmt::Debug>(
    result: Result<T, etcd_client::Error>,
    code: tonic::Code,
    message: &str,
) {
    let error = result.expect_err(message);
    assert_eq!(
        grpc_status(&error),
        Some((code, message.to_string())),
        "{error:?}"
    );
}
