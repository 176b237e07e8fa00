//! `lease`: churn of short-lived leases. One operation = `LeaseGrant(ttl)`, one keep-alive
//! round trip on a new `LeaseKeepAlive` stream, then `LeaseRevoke`.

use anyhow::Result;
use etcd_client::LeaseClient;

use super::Ctx;
use crate::runner::{run, Worker};
use crate::stats::{OpError, Report};

struct LeaseWorker {
    lease: LeaseClient,
    ttl: i64,
}

impl Worker for LeaseWorker {
    async fn op(&mut self) -> Result<&'static str, OpError> {
        let id = self.lease.grant(self.ttl, None).await?.id();
        // `keep_alive` opens the stream, sends one request and waits for its answer.
        let (_keeper, _stream) = self.lease.keep_alive(id).await?;
        self.lease.revoke(id).await?;
        Ok("grant-keepalive-revoke")
    }
}

/// Runs the `lease` workload with leases of `ttl` seconds.
pub async fn run_lease(ctx: &Ctx, ttl: i64) -> Result<Report> {
    let pool = ctx.pool().await?;
    let workers = (0..ctx.clients)
        .map(|i| LeaseWorker {
            lease: pool.client(i).lease_client(),
            ttl,
        })
        .collect();
    let (rec, elapsed) = run(workers, ctx.spec()).await?;
    let mut params = ctx.params();
    params["ttl_s"] = serde_json::json!(ttl);
    Ok(rec.report("lease", elapsed, params))
}
