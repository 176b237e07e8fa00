//! `txn`: compare-and-swap on a few hot keys. One operation = a linearizable get of a hot key
//! (its `mod_revision`, 0 when absent) followed by `Txn If(mod_revision == r) Then(put)`.
//! Outcomes `cas-success` and `cas-conflict` (another client won the race) are both
//! successful operations; only RPC failures count as errors.

use anyhow::Result;
use etcd_client::{Compare, CompareOp, KvClient, Txn, TxnOp};

use super::Ctx;
use crate::keys::{value, KeyGen, Rng};
use crate::runner::{run, Worker};
use crate::stats::{OpError, Report};

/// Key prefix of the hot keys.
pub const CAS_PREFIX: &str = "cas/";

struct CasWorker {
    kv: KvClient,
    keys: KeyGen,
    rng: Rng,
    value: Vec<u8>,
}

impl Worker for CasWorker {
    async fn op(&mut self) -> Result<&'static str, OpError> {
        let key = self.keys.random(&mut self.rng);
        let current = self.kv.get(key.clone(), None).await?;
        let rev = current.kvs().first().map_or(0, |kv| kv.mod_revision());
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, rev)])
            .and_then([TxnOp::put(key, self.value.clone(), None)]);
        let resp = self.kv.txn(txn).await?;
        Ok(if resp.succeeded() {
            "cas-success"
        } else {
            "cas-conflict"
        })
    }
}

/// Runs the `txn` workload on `hot_keys` keys.
pub async fn run_txn(ctx: &Ctx, hot_keys: u64) -> Result<Report> {
    let pool = ctx.pool().await?;
    let keys = KeyGen::new(CAS_PREFIX, ctx.key_size, hot_keys);
    let workers = (0..ctx.clients)
        .map(|i| CasWorker {
            kv: pool.client(i).kv_client(),
            keys: keys.clone(),
            rng: Rng::new(ctx.seed + i as u64),
            value: value(ctx.val_size),
        })
        .collect();
    let (rec, elapsed) = run(workers, ctx.spec()).await?;
    let mut params = ctx.params();
    params["hot_keys"] = serde_json::json!(hot_keys);
    Ok(rec.report("txn", elapsed, params))
}
