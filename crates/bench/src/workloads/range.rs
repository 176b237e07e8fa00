//! `range`: single-key gets of keys chosen uniformly from `--key-space` (preloaded first),
//! linearizable (`--consistency l`) or serializable (`s`).

use anyhow::Result;
use etcd_client::KvClient;

use super::put::KV_PREFIX;
use super::{preload, Consistency, Ctx};
use crate::keys::{KeyGen, Rng};
use crate::runner::{run, Worker};
use crate::stats::{OpError, Report};

struct RangeWorker {
    kv: KvClient,
    keys: KeyGen,
    rng: Rng,
    consistency: Consistency,
}

impl Worker for RangeWorker {
    async fn op(&mut self) -> Result<&'static str, OpError> {
        let key = self.keys.random(&mut self.rng);
        self.kv.get(key, self.consistency.options()).await?;
        Ok("range")
    }
}

/// Runs the `range` workload; `preload_keys` writes the key space first (unmeasured).
pub async fn run_range(ctx: &Ctx, consistency: Consistency, preload_keys: bool) -> Result<Report> {
    let pool = ctx.pool().await?;
    let keys = KeyGen::new(KV_PREFIX, ctx.key_size, ctx.key_space);
    if preload_keys {
        preload(&pool, ctx, &keys).await?;
    }
    let workers = (0..ctx.clients)
        .map(|i| RangeWorker {
            kv: pool.client(i).kv_client(),
            keys: keys.clone(),
            rng: Rng::new(ctx.seed + i as u64),
            consistency,
        })
        .collect();
    let (rec, elapsed) = run(workers, ctx.spec()).await?;
    let mut params = ctx.params();
    params["consistency"] = serde_json::json!(consistency);
    Ok(rec.report("range", elapsed, params))
}
