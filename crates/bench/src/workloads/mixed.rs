//! `mixed`: each operation is a get with probability `--read-ratio`, otherwise a put, on keys
//! chosen uniformly from the (preloaded) key space. Reads and writes are also reported apart.

use anyhow::Result;
use etcd_client::KvClient;

use super::put::KV_PREFIX;
use super::{preload, Consistency, Ctx};
use crate::keys::{value, KeyGen, Rng};
use crate::runner::{run, Worker};
use crate::stats::{OpError, Report};

struct MixedWorker {
    kv: KvClient,
    keys: KeyGen,
    rng: Rng,
    value: Vec<u8>,
    read_ratio: f64,
    consistency: Consistency,
}

impl Worker for MixedWorker {
    async fn op(&mut self) -> Result<&'static str, OpError> {
        let key = self.keys.random(&mut self.rng);
        if self.rng.chance(self.read_ratio) {
            self.kv.get(key, self.consistency.options()).await?;
            Ok("read")
        } else {
            self.kv.put(key, self.value.clone(), None).await?;
            Ok("write")
        }
    }
}

/// Runs the `mixed` workload.
pub async fn run_mixed(
    ctx: &Ctx,
    read_ratio: f64,
    consistency: Consistency,
    preload_keys: bool,
) -> Result<Report> {
    let pool = ctx.pool().await?;
    let keys = KeyGen::new(KV_PREFIX, ctx.key_size, ctx.key_space);
    if preload_keys {
        preload(&pool, ctx, &keys).await?;
    }
    let workers = (0..ctx.clients)
        .map(|i| MixedWorker {
            kv: pool.client(i).kv_client(),
            keys: keys.clone(),
            rng: Rng::new(ctx.seed + i as u64),
            value: value(ctx.val_size),
            read_ratio: read_ratio.clamp(0.0, 1.0),
            consistency,
        })
        .collect();
    let (rec, elapsed) = run(workers, ctx.spec()).await?;
    let mut params = ctx.params();
    params["read_ratio"] = serde_json::json!(read_ratio);
    params["consistency"] = serde_json::json!(consistency);
    Ok(rec.report("mixed", elapsed, params))
}
