//! `put`: writes of `--val-size` bytes to keys chosen uniformly from `--key-space`.

use anyhow::Result;
use etcd_client::KvClient;

use super::Ctx;
use crate::keys::{value, KeyGen, Rng};
use crate::runner::{run, Worker};
use crate::stats::{OpError, Report};

/// Key prefix of the KV workloads (`put`, `range`, `mixed`).
pub const KV_PREFIX: &str = "k";

struct PutWorker {
    kv: KvClient,
    keys: KeyGen,
    rng: Rng,
    value: Vec<u8>,
}

impl Worker for PutWorker {
    async fn op(&mut self) -> Result<&'static str, OpError> {
        let key = self.keys.random(&mut self.rng);
        self.kv.put(key, self.value.clone(), None).await?;
        Ok("put")
    }
}

/// Runs the `put` workload.
pub async fn run_put(ctx: &Ctx) -> Result<Report> {
    let pool = ctx.pool().await?;
    let keys = KeyGen::new(KV_PREFIX, ctx.key_size, ctx.key_space);
    let workers = (0..ctx.clients)
        .map(|i| PutWorker {
            kv: pool.client(i).kv_client(),
            keys: keys.clone(),
            rng: Rng::new(ctx.seed + i as u64),
            value: value(ctx.val_size),
        })
        .collect();
    let (rec, elapsed) = run(workers, ctx.spec()).await?;
    Ok(rec.report("put", elapsed, ctx.params()))
}
