//! One module per workload; each builds its workers and hands them to [`crate::runner::run`].

pub mod lease;
pub mod mixed;
pub mod put;
pub mod range;
pub mod txn;
pub mod watch;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use etcd_client::GetOptions;
use serde_json::json;

use crate::conn::Pool;
use crate::keys::{value, KeyGen};
use crate::runner::{Limit, RunSpec};

/// Settings shared by every workload (the global command-line knobs).
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `host:port` or URLs.
    pub endpoints: Vec<String>,
    /// gRPC connections; clients are spread over them round-robin.
    pub conns: usize,
    /// Concurrent clients, one request in flight each.
    pub clients: usize,
    /// When to stop.
    pub limit: Limit,
    /// Total ops/s cap (`None`: unlimited).
    pub rate: Option<f64>,
    pub key_size: usize,
    pub val_size: usize,
    pub key_space: u64,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Seed for key choice (client `i` uses `seed + i`).
    pub seed: u64,
    /// TLS (`--cacert`/`--cert`/`--key`), when given.
    pub tls: Option<std::sync::Arc<conclave_tls::ClientTls>>,
}

impl Ctx {
    /// Connections with the per-request timeout (for unary RPCs).
    pub async fn pool(&self) -> Result<Pool> {
        Pool::connect(&self.endpoints, self.conns, Some(self.timeout), self.tls.as_ref()).await
    }

    /// The runner settings.
    pub fn spec(&self) -> RunSpec {
        RunSpec {
            limit: self.limit,
            rate: self.rate,
        }
    }

    /// The settings as recorded in the report.
    pub fn params(&self) -> serde_json::Value {
        let (total, duration_s) = match self.limit {
            Limit::Total(t) => (Some(t), None),
            Limit::Duration(d) => (None, Some(d.as_secs_f64())),
        };
        json!({
            "endpoints": self.endpoints,
            "conns": self.conns,
            "clients": self.clients,
            "total": total,
            "duration_s": duration_s,
            "rate": self.rate,
            "key_size": self.key_size,
            "val_size": self.val_size,
            "key_space": self.key_space,
        })
    }
}

/// Read consistency of range requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Consistency {
    /// Linearizable (read index through the leader).
    L,
    /// Serializable (the member's local state).
    S,
}

impl Consistency {
    /// Get options for this consistency.
    pub fn options(self) -> Option<GetOptions> {
        match self {
            Consistency::L => None,
            Consistency::S => Some(GetOptions::new().with_serializable()),
        }
    }
}

/// Makes sure every key of `keys` exists (values of `val_size` bytes) so reads find data;
/// skipped when the prefix already holds at least that many keys. Not measured.
pub async fn preload(pool: &Pool, ctx: &Ctx, keys: &KeyGen) -> Result<()> {
    let mut kv = pool.client(0).kv_client();
    let existing = kv
        .get(
            keys.prefix(),
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .context("counting preloaded keys")?
        .count();
    if existing >= keys.space() as i64 {
        return Ok(());
    }
    let writers = ctx.clients.clamp(1, 64);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut kv = pool.client(w).kv_client();
        let keys = keys.clone();
        let val = value(ctx.val_size);
        tasks.push(tokio::spawn(async move {
            let mut i = w as u64;
            while i < keys.space() {
                kv.put(keys.key(i), val.clone(), None).await?;
                i += writers as u64;
            }
            Ok::<(), etcd_client::Error>(())
        }));
    }
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e).context("preloading keys"),
            Err(e) => bail!("preload task failed: {e}"),
        }
    }
    Ok(())
}
