//! `watch`: `--watchers` watch streams on one prefix, spread over `--conns` connections, and
//! `--clients` writers putting keys under that prefix at `--put-rate` puts/s in total. Each
//! value starts with the send time (Unix nanoseconds, 20 digits); every watcher records
//! put→event delivery latency. The report's ops and latency are deliveries; writer latency is
//! the `put` outcome, and `missing_events` counts deliveries that never arrived.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use etcd_client::{EventType, KvClient, WatchOptions, WatchStream};
use serde_json::json;
use tokio::sync::watch as signal;

use super::Ctx;
use crate::conn::Pool;
use crate::keys::{KeyGen, Rng};
use crate::runner::{run, RunSpec, Worker};
use crate::stats::{OpError, Outcome, Recorder, Report};

/// Key prefix the watchers watch.
pub const WATCH_PREFIX: &str = "w/";
/// How long watchers may lag behind the last put before the run ends anyway.
const DRAIN_GRACE: Duration = Duration::from_secs(10);
/// Digits of the timestamp at the start of each value.
const STAMP_LEN: usize = 20;

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A value of at least `size` bytes whose first 20 bytes are the current time.
fn stamped_value(size: usize) -> Vec<u8> {
    let mut v = format!("{:0width$}", now_nanos(), width = STAMP_LEN).into_bytes();
    v.resize(size.max(STAMP_LEN), b'v');
    v
}

/// Delivery latency of an event whose value was made by [`stamped_value`].
fn delivery_latency(value: &[u8]) -> Option<Duration> {
    let stamp: u128 = std::str::from_utf8(value.get(..STAMP_LEN)?).ok()?.parse().ok()?;
    let nanos = now_nanos().saturating_sub(stamp);
    Some(Duration::from_nanos(u64::try_from(nanos).ok()?))
}

struct Writer {
    kv: KvClient,
    keys: KeyGen,
    rng: Rng,
    val_size: usize,
}

impl Worker for Writer {
    async fn op(&mut self) -> Result<&'static str, OpError> {
        let key = self.keys.random(&mut self.rng);
        self.kv.put(key, stamped_value(self.val_size), None).await?;
        Ok("put")
    }
}

/// Opens a watch on the prefix and waits for the server to confirm it.
async fn open_watch(pool: &Pool, i: usize, prefix: &str) -> Result<WatchStream> {
    let mut client = pool.client(i).watch_client();
    let mut stream = client
        .watch(prefix, Some(WatchOptions::new().with_prefix()))
        .await
        .with_context(|| format!("opening watcher {i}"))?;
    match stream.message().await.context("watch create")? {
        Some(resp) if resp.created() => Ok(stream),
        _ => bail!("watcher {i}: watch was not created"),
    }
}

/// Receives events until told to stop; records delivery latency of every put event.
async fn watch_loop(
    mut stream: WatchStream,
    mut stop: signal::Receiver<bool>,
    delivered: Arc<AtomicU64>,
) -> Recorder {
    let mut rec = Recorder::default();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            msg = stream.message() => match msg {
                Ok(Some(resp)) => {
                    for ev in resp.events() {
                        if ev.event_type() != EventType::Put {
                            continue;
                        }
                        match ev.kv().and_then(|kv| delivery_latency(kv.value())) {
                            Some(lat) => rec.ok("delivery", lat),
                            None => rec.error(&OpError::Other("BadEventValue")),
                        }
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    if resp.canceled() {
                        rec.error(&OpError::Other("WatchCanceled"));
                        break;
                    }
                }
                Ok(None) => {
                    rec.error(&OpError::Other("WatchStreamEnded"));
                    break;
                }
                Err(e) => {
                    rec.error(&OpError::Etcd(e));
                    break;
                }
            },
        }
    }
    rec
}

/// Runs the `watch` workload with `watchers` watch streams and writers paced to `put_rate`.
pub async fn run_watch(ctx: &Ctx, watchers: usize, put_rate: f64) -> Result<Report> {
    // Watch streams live for the whole run, so their connections get no request timeout.
    let watch_pool = Pool::connect(&ctx.endpoints, ctx.conns, None, ctx.tls.as_ref()).await?;
    let pool = ctx.pool().await?;
    let keys = KeyGen::new(WATCH_PREFIX, ctx.key_size, ctx.key_space);

    let (stop_tx, stop_rx) = signal::channel(false);
    let delivered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(watchers);
    for i in 0..watchers {
        let stream = open_watch(&watch_pool, i, WATCH_PREFIX).await?;
        tasks.push(tokio::spawn(watch_loop(
            stream,
            stop_rx.clone(),
            delivered.clone(),
        )));
    }

    let writers = (0..ctx.clients.max(1))
        .map(|i| Writer {
            kv: pool.client(i).kv_client(),
            keys: keys.clone(),
            rng: Rng::new(ctx.seed + i as u64),
            val_size: ctx.val_size,
        })
        .collect();
    let spec = RunSpec {
        limit: ctx.limit,
        rate: Some(put_rate),
    };
    let (put_rec, elapsed) = run(writers, spec).await?;

    // Let the watchers catch up with the last puts, then stop them.
    let expected = put_rec.ok_count() * watchers as u64;
    let drain_start = Instant::now();
    while delivered.load(Ordering::Relaxed) < expected && drain_start.elapsed() < DRAIN_GRACE {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let mut deliveries = Recorder::default();
    for t in tasks {
        deliveries.merge(&t.await.context("a watcher panicked")?);
    }
    let mut errors = put_rec.clone();
    errors.merge(&deliveries);

    let mut params = ctx.params();
    params["watchers"] = json!(watchers);
    params["put_rate"] = json!(put_rate);
    let mut report = deliveries.report("watch", elapsed, params);
    let puts = put_rec.report("put", elapsed, json!({}));
    report.outcomes.insert(
        "put".into(),
        Outcome {
            count: puts.ops,
            latency_ms: puts.latency_ms,
        },
    );
    report.errors = errors.error_count();
    report.error_counts = errors.report("", elapsed, json!({})).error_counts;
    let got = delivered.load(Ordering::Relaxed);
    report.notes.insert("puts".into(), json!(puts.ops));
    report.notes.insert("expected_events".into(), json!(expected));
    report
        .notes
        .insert("missing_events".into(), json!(expected.saturating_sub(got)));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let v = stamped_value(64);
        assert_eq!(v.len(), 64);
        let lat = delivery_latency(&v).unwrap();
        assert!(lat < Duration::from_secs(1));
        assert!(delivery_latency(b"garbage").is_none());
    }
}
