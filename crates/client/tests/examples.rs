//! The SDK's example programs run against a real cluster and exit 0.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{leader, start_cluster};

/// `target/release/examples/<name>`, built by `make test` (`cargo build --examples`)
/// before the tests run.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = target.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: build the examples first (`cargo build --release -p conclave-client --examples`, as `make test` does)",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_runs_against_a_cluster() {
    let cluster = start_cluster(3);
    leader(&cluster).await;
    let endpoints = cluster.client_endpoints().join(",");
    for (name, expect) in [
        ("kv", "swapped to green: true"),
        ("watch", "Put /example/events/4 = event 4"),
        ("election", "fenced write applied: true"),
        ("lock", "guarded write applied: true"),
    ] {
        let path = example(name);
        let endpoints = endpoints.clone();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(&path)
                .env("CONCLAVE_ENDPOINTS", &endpoints)
                .output()
                .unwrap_or_else(|e| panic!("run {}: {e}", path.display()))
        })
        .await
        .expect("join");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "example {name} failed: {}\n{stdout}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(expect), "example {name} printed:\n{stdout}");
    }
}
