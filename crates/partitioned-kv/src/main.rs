//! `partitioned-kv`: an example sharded service on Conclave's partition groups.
//!
//! Each instance joins the group (creating it with `--partitions`/`--replicas` if it does
//! not exist), serves `GET`/`PUT /kv/{key}` over HTTP, forwards to the key's partition
//! leader, replicates every write to the partition's other replicas before answering,
//! and in its hooks copies a partition in from its previous owner, catches up when it
//! becomes leader, and drops a partition it lets go. SIGTERM leaves gracefully (hands
//! everything over first). See docs/partitions.md, "The example".
//!
//! ```sh
//! make cluster   # in another terminal
//! target/release/partitioned-kv --id kv-1 --listen 127.0.0.1:7001 &
//! target/release/partitioned-kv --id kv-2 --listen 127.0.0.1:7002 &
//! target/release/partitioned-kv --id kv-3 --listen 127.0.0.1:7003 &
//! curl -X PUT localhost:7001/kv/hello -d world && curl localhost:7003/kv/hello
//! ```

mod http;
mod node;
mod store;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use conclave_client::group::{GroupSettings, JoinOptions, MemberId};
use conclave_client::{Client, Error as SdkError};

use node::{Hooks, Node};

/// An example sharded in-memory KV on a Conclave partition group.
#[derive(Debug, Parser)]
#[command(name = "partitioned-kv")]
struct Args {
    /// Conclave client endpoints.
    #[arg(
        long,
        env = "CONCLAVE_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379"
    )]
    endpoints: Vec<String>,
    /// The group.
    #[arg(long, default_value = "kv")]
    group: String,
    /// This instance's member id.
    #[arg(long)]
    id: String,
    /// The HTTP address to serve on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// This instance's zone label.
    #[arg(long)]
    zone: Option<String>,
    /// Partitions, when this instance creates the group.
    #[arg(long, default_value_t = 16)]
    partitions: u32,
    /// Replicas per partition, when this instance creates the group.
    #[arg(long, default_value_t = 2)]
    replicas: u32,
    /// Members' session TTL in seconds, when this instance creates the group.
    #[arg(long, default_value_t = 10)]
    session_ttl: u64,
    /// Rebalance delay in milliseconds, when this instance creates the group.
    #[arg(long, default_value_t = 5000)]
    rebalance_delay_ms: u64,
    /// Append every accepted write as a JSON line to this file (used by the tests).
    #[arg(long)]
    accept_log: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let client = Client::connect(&args.endpoints).await?;
    let group = client.group(args.group.clone());
    let settings = GroupSettings {
        session_ttl: Some(Duration::from_secs(args.session_ttl)),
        rebalance_delay: Some(Duration::from_millis(args.rebalance_delay_ms)),
        ..GroupSettings::new(args.partitions, args.replicas)
    };
    match group.create(settings).await {
        Ok(_) => tracing::info!(group = %args.group, "group created"),
        Err(SdkError::Server {
            code: tonic::Code::AlreadyExists,
            ..
        }) => {}
        Err(error) => return Err(error).context("creating the group"),
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let router = group.router().await.context("following the group's map")?;
    let accept_log = match &args.accept_log {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        None => None,
    };
    let node = Arc::new(Node::new(
        MemberId(args.id.clone()),
        endpoint.clone(),
        router,
        accept_log,
    )?);
    let server = tokio::spawn(std::future::IntoFuture::into_future(axum::serve(
        listener,
        http::routes(node.clone()),
    )));
    let mut options = JoinOptions::new(args.id.clone()).http_endpoint(endpoint.clone());
    if let Some(zone) = &args.zone {
        options = options.zone(zone.clone());
    }
    let membership = group
        .join(options, Hooks(node.clone()))
        .await
        .context("joining the group")?;
    let _ = node.membership.set(membership);
    tracing::info!(id = %args.id, %endpoint, "serving");

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        served = server => {
            return Err(anyhow::anyhow!("the HTTP server stopped: {served:?}"));
        }
    }
    tracing::info!(id = %args.id, "leaving: handing partitions over");
    if let Some(membership) = node.membership.get() {
        membership
            .leave(Duration::from_secs(60))
            .await
            .context("leaving the group")?;
    }
    tracing::info!(id = %args.id, "left");
    Ok(())
}
