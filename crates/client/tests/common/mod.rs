//! Helpers shared by the SDK's tests against real `conclave` node processes.
#![allow(dead_code)]

use std::time::Duration;

use conclave_client::{Client, ClientOptions};
use conclave_testkit::{Cluster, ClusterOptions};

/// Fast elections and short request timeouts, as the node's own tests use.
pub fn start_cluster(size: usize) -> Cluster {
    start_cluster_with(size, &[])
}

/// [`start_cluster`] with further node arguments (e.g. `--auth-token-ttl 2`).
pub fn start_cluster_with(size: usize, extra: &[&str]) -> Cluster {
    let bin = conclave_testkit::node_binary().expect("node binary");
    let mut extra_args: Vec<String> = vec!["--request-timeout".into(), "3000".into()];
    extra_args.extend(extra.iter().map(|arg| arg.to_string()));
    Cluster::start(
        &bin,
        ClusterOptions {
            size,
            heartbeat_ms: Some(50),
            election_timeout_ms: Some(400),
            extra_args,
            ..ClusterOptions::default()
        },
    )
    .expect("start cluster")
}

/// Client options for tests: failures noticed within about a second.
pub fn fast_options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        retry_budget: Duration::from_secs(20),
        keep_alive_interval: Duration::from_millis(500),
        keep_alive_timeout: Duration::from_millis(500),
        lease_safety_margin: Duration::from_millis(500),
        ..ClientOptions::default()
    }
}

/// An SDK client of the given nodes (1-based indexes), in that order of preference.
pub async fn client_of(cluster: &Cluster, nodes: &[usize]) -> Client {
    let endpoints: Vec<String> = nodes
        .iter()
        .map(|&i| cluster.node(i).client_url().to_string())
        .collect();
    Client::connect_with(endpoints, fast_options())
        .await
        .expect("client")
}

/// An SDK client of every node.
pub async fn client_of_all(cluster: &Cluster) -> Client {
    let all: Vec<usize> = (1..=cluster.size()).collect();
    client_of(cluster, &all).await
}

/// The leader's index, waiting up to 10 s for one.
pub async fn leader(cluster: &Cluster) -> usize {
    conclave_testkit::leader_index(cluster, Duration::from_secs(10))
        .await
        .expect("leader")
}

/// The median of some durations.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// root's password in [`set_up_auth`].
pub const ROOT_PW: &str = "root-pw";
/// alice's password in [`set_up_auth`].
pub const ALICE_PW: &str = "alice-pw";

/// Through `admin` (auth disabled): root with the root role, role `app` with READWRITE on
/// `/app/`, user alice with `app`; then auth enabled.
pub async fn set_up_auth(admin: &Client) {
    use conclave_client::auth::{Permission, PermissionType};
    let auth = admin.auth();
    auth.user_add("root", Some(ROOT_PW)).await.expect("user add root");
    auth.role_add("root").await.expect("role add root");
    auth.user_grant_role("root", "root").await.expect("grant root");
    auth.role_add("app").await.expect("role add app");
    auth.role_grant_permission("app", Permission::prefix(PermissionType::ReadWrite, "/app/"))
        .await
        .expect("grant /app/");
    auth.user_add("alice", Some(ALICE_PW))
        .await
        .expect("user add alice");
    auth.user_grant_role("alice", "app").await.expect("grant app");
    auth.enable().await.expect("auth enable");
}
