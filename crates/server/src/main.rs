//! `conclave`: the storage node binary.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use conclave_server::{Config, Flags};
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let config = Config::load(&flags).context("loading configuration")?;
    // openraft narrates every election at info; its warnings are what an operator needs.
    let filter = EnvFilter::try_from_env("CONCLAVE_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("openraft=warn,{}", config.log_level)));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let node = conclave_server::start(&config).await?;
    tracing::info!(
        name = %config.name,
        member_id = format!("{:x}", node.node().member_id()),
        client_urls = %config.client_urls().join(","),
        "conclave node started"
    );

    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    node.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
