//! The direct-gRPC baseline of `scripts/gateway-bench.sh`: the same operations the
//! gateway serves, sent straight to a member through the SDK (the gateway's own client),
//! so the difference is what HTTP/JSON and the gateway process add.
//!
//! Ignored by default; the script runs it with `BENCH_ENDPOINT`, `BENCH_CLIENTS`,
//! `BENCH_SECONDS` set:
//! `cargo test --release -p conclave-gateway --test overhead -- --ignored --nocapture`

use std::time::{Duration, Instant};

use conclave_client::kv::Get;
use conclave_client::{Client, ClientOptions};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// Runs `op` from `clients` tasks for `seconds`; prints `name rps p99_ms errors`.
async fn measure<F, Fut>(name: &str, clients: usize, seconds: u64, op: F)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..clients as u64)
        .map(|client| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut i = client;
                while Instant::now() < deadline {
                    let started = Instant::now();
                    if op(i).await {
                        latencies.push(started.elapsed());
                    } else {
                        errors += 1;
                    }
                    i += clients as u64;
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    latencies.sort();
    let p99 = latencies
        .get(latencies.len() * 99 / 100)
        .copied()
        .unwrap_or_default();
    println!(
        "BENCH {name} {:.1} {:.2} {errors}",
        latencies.len() as f64 / seconds as f64,
        p99.as_secs_f64() * 1000.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run by scripts/gateway-bench.sh against its cluster"]
async fn sdk_direct_baseline() {
    let endpoint = env("BENCH_ENDPOINT", "127.0.0.1:2379");
    let clients: usize = env("BENCH_CLIENTS", "16").parse().unwrap();
    let seconds: u64 = env("BENCH_SECONDS", "10").parse().unwrap();
    let keys: u64 = env("BENCH_KEYS", "9999").parse().unwrap();
    let client = Client::connect_with([endpoint], ClientOptions::default())
        .await
        .unwrap();
    let value = "x".repeat(256);
    let c = client.clone();
    measure("put", clients, seconds, move |i| {
        let c = c.clone();
        let value = value.clone();
        async move { c.put(format!("/direct/k{:06}", i % 10_000), value).await.is_ok() }
    })
    .await;
    let c = client.clone();
    measure("get", clients, seconds, move |i| {
        let c = c.clone();
        async move {
            c.range(Get::key(format!("/bench/k{:06}", 1 + (i * 7919) % keys)))
                .await
                .is_ok()
        }
    })
    .await;
    let c = client.clone();
    measure("serializable_get", clients, seconds, move |i| {
        let c = c.clone();
        async move {
            c.range(Get::key(format!("/bench/k{:06}", 1 + (i * 7919) % keys)).serializable())
                .await
                .is_ok()
        }
    })
    .await;
}
