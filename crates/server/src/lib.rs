//! The Conclave storage node: configuration, wiring, and the etcd v3 gRPC services.
//!
//! Embeddable: a Rust program starts a node in-process with [`start`] and a [`Config`].

pub mod auth;
pub mod config;
pub mod convert;
pub mod errors;
pub mod groups;
pub mod grpc;
pub mod health;
pub mod metrics;
pub mod quota;
pub mod recipes;
pub mod tls;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use conclave_consensus::{Node, PeerService};
use conclave_proto::etcdserverpb::auth_server::AuthServer;
use conclave_proto::etcdserverpb::cluster_server::ClusterServer;
use conclave_proto::etcdserverpb::kv_server::KvServer;
use conclave_proto::etcdserverpb::lease_server::LeaseServer;
use conclave_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use conclave_proto::etcdserverpb::watch_server::WatchServer;
use conclave_proto::partitionpb::groups_server::GroupsServer;
use conclave_proto::v3electionpb::election_server::ElectionServer;
use conclave_proto::v3lockpb::lock_server::LockServer;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::{Routes, RoutesBuilder};

pub use config::{Config, ConfigError, Flags};
use grpc::{ApiSettings, EtcdApi};
use metrics::{Exporter, Metrics};
use watch::SessionSettings;

/// gRPC framing allowance above `--max-request-bytes`, as etcd: requests between the limit
/// and this get etcd's "request is too large"; larger ones the transport refuses.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source} (is another process using the port?)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The consensus core failed to start.
    #[error(transparent)]
    Consensus(#[from] conclave_consensus::ConsensusError),
    /// The metrics could not be set up.
    #[error("setting up metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// A TLS setting or file is unusable (the message names the flag and the file).
    #[error(transparent)]
    Tls(#[from] conclave_tls::TlsError),
}

/// A running node: its consensus core and its gRPC servers.
pub struct RunningNode {
    node: Node,
    stop: tokio::sync::watch::Sender<bool>,
    servers: Vec<JoinHandle<Result<(), tonic::transport::Error>>>,
}

async fn bind(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, StartError> {
    let mut listeners = Vec::new();
    for addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr: *addr, source })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Binds `https://` and `http://` listeners alike; each comes back with whether it is TLS.
async fn bind_urls(addrs: &[(SocketAddr, bool)]) -> Result<Vec<(TcpListener, bool)>, StartError> {
    let plain: Vec<SocketAddr> = addrs.iter().map(|(addr, _)| *addr).collect();
    let listeners = bind(&plain).await?;
    Ok(listeners
        .into_iter()
        .zip(addrs.iter().map(|(_, tls)| *tls))
        .collect())
}

/// Serves `router` on `listener`, through TLS when `tls` is given.
fn serve<L>(
    router: tonic::transport::server::Router<L>,
    listener: TcpListener,
    tls: Option<Arc<conclave_tls::ServerTls>>,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<Result<(), tonic::transport::Error>>
where
    L: tower_layer::Layer<Routes> + Clone + Send + 'static,
    L::Service: tower_service::Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    <L::Service as tower_service::Service<http::Request<tonic::body::Body>>>::Future: Send + 'static,
    <L::Service as tower_service::Service<http::Request<tonic::body::Body>>>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    match tls {
        Some(tls) => tokio::spawn(router.serve_with_incoming_shutdown(
            conclave_tls::server::incoming(listener, tls),
            wait_stopped(stopped),
        )),
        None => tokio::spawn(
            router.serve_with_incoming_shutdown(accepted_without_delay(listener), wait_stopped(stopped)),
        ),
    }
}

/// Starts a node: binds its ports first (so a busy port fails fast), then starts Raft and
/// serves the etcd API (and `/metrics` over HTTP/1.1) on the client port, the Raft
/// transport on the peer port, and `/metrics` alone on any metrics port.
pub async fn start(config: &Config) -> Result<RunningNode, StartError> {
    let metrics = Arc::new(Metrics::new()?);
    let mut node_config = config.node_config()?;
    let auth_settings = config.auth_settings()?;
    node_config.metrics = Some(metrics.consensus());
    let client_addrs = config.client_listen_addrs()?;
    let peer_addrs = config.peer_listen_addrs()?;
    // Certificates are read and checked before anything starts, so a bad file is a
    // start error that names it.
    let client_tls = tls::client_server(config, client_addrs.iter().any(|(_, tls)| *tls))?;
    let peer_tls = tls::peer_server(config, peer_addrs.iter().any(|(_, tls)| *tls))?;
    node_config.peer_tls = tls::peer_client(config)?;
    let client_listeners = bind_urls(&client_addrs).await?;
    let peer_listeners = bind_urls(&peer_addrs).await?;
    let metrics_listeners = bind(&config.metrics_listen_addrs()?).await?;

    let node = Node::start(node_config).await?;
    let settings = ApiSettings {
        max_request_bytes: config.max_request_bytes,
        max_txn_ops: config.max_txn_ops,
        watch: SessionSettings {
            buffer: 256,
            slow_client_timeout: Duration::from_millis(config.watch_slow_client_timeout),
            progress_interval: Duration::from_millis(config.watch_progress_notify_interval.max(1)),
            max_response_bytes: config.max_request_bytes,
        },
        quota_backend_bytes: config.quota_backend_bytes,
    };
    let usage = Arc::new(quota::UsageGauge::default());
    tokio::spawn(quota::run(
        node.clone(),
        config.quota_backend_bytes,
        usage.clone(),
    ));
    let exporter = Exporter::new(
        metrics.clone(),
        node.clone(),
        usage.clone(),
        config.quota_backend_bytes,
    );
    let auth = auth::Auth::new(node.clone(), auth_settings, metrics.auth());
    let api = EtcdApi::new(node.clone(), auth.clone(), settings, usage, metrics.watch());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let max_message = config.max_request_bytes + GRPC_OVERHEAD_BYTES;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    tokio::spawn(health::run(node.clone(), health_reporter, stopped.clone()));
    tokio::spawn(groups::controller::run(
        node.clone(),
        metrics.controller(),
        stopped.clone(),
    ));
    let groups = groups::GroupsApi::new(node.clone(), auth.clone(), config.max_request_bytes);

    let mut servers = Vec::new();
    for (listener, https) in client_listeners {
        tracing::info!(addr = %listener.local_addr().map_err(|source| StartError::Bind { addr: ([0, 0, 0, 0], 0).into(), source })?, tls = https, "serving etcd v3 API");
        let mut services = RoutesBuilder::default();
        services
            .add_service(KvServer::new(api.clone()).max_decoding_message_size(max_message))
            .add_service(MaintenanceServer::new(api.clone()).max_decoding_message_size(max_message))
            .add_service(WatchServer::new(api.clone()).max_decoding_message_size(max_message))
            .add_service(LeaseServer::new(api.clone()).max_decoding_message_size(max_message))
            .add_service(health_service.clone())
            .add_service(ClusterServer::new(api.clone()).max_decoding_message_size(max_message))
            .add_service(ElectionServer::new(api.clone()).max_decoding_message_size(max_message))
            .add_service(LockServer::new(api.clone()).max_decoding_message_size(max_message))
            .add_service(AuthServer::new(api.clone()).max_decoding_message_size(max_message))
            .add_service(GroupsServer::new(groups.clone()).max_decoding_message_size(max_message))
            // Joining members may name a client URL in --join.
            .add_service(PeerService::join_server(node.clone()));
        // As etcd, the client port also answers plain HTTP/1.1 for /metrics: gRPC clients
        // open with HTTP/2's preface, which tells the two apart on each connection.
        let routes = Routes::from(
            services
                .routes()
                .into_axum_router()
                .merge(metrics::routes(exporter.clone())),
        );
        let router = tonic::transport::Server::builder()
            .accept_http1(true)
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .layer(metrics.grpc_layer())
            .add_routes(routes);
        // Over TLS too, /metrics is plain HTTP/1.1 inside the TLS session (ALPN offers
        // both h2 and http/1.1).
        let tls = if https { client_tls.clone() } else { None };
        servers.push(serve(router, listener, tls, stopped.clone()));
    }
    for listener in metrics_listeners {
        tracing::info!(addr = ?listener.local_addr().ok(), "serving /metrics");
        let router = tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(Routes::from(metrics::routes(exporter.clone())));
        servers.push(tokio::spawn(router.serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            wait_stopped(stopped.clone()),
        )));
    }
    for (listener, https) in peer_listeners {
        tracing::info!(addr = ?listener.local_addr().ok(), tls = https, "serving raft peer transport");
        let router = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(PeerService::server(node.clone()));
        let tls = if https { peer_tls.clone() } else { None };
        servers.push(serve(router, listener, tls, stopped.clone()));
    }
    Ok(RunningNode { node, stop, servers })
}

/// Connections accepted on `listener` with `TCP_NODELAY` set. The builder's `tcp_nodelay`
/// applies only to listeners tonic binds itself; without it, small responses wait for the
/// peer's delayed ACK (~40 ms per read on Linux).
fn accepted_without_delay(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

async fn wait_stopped(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

impl RunningNode {
    /// The consensus node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Graceful shutdown: a leader hands leadership over, Raft stops, the servers drain.
    pub async fn shutdown(self) {
        self.node.shutdown().await;
        let _ = self.stop.send(true);
        for server in self.servers {
            match tokio::time::timeout(Duration::from_secs(5), server).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "server stopped with an error"),
                Ok(Err(e)) => tracing::warn!(error = %e, "server task failed"),
                Err(_) => tracing::warn!("server did not drain within 5 s"),
            }
        }
    }
}
