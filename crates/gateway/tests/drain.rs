//! SIGTERM drains the gateway: `/readyz` answers 404 at once, new streams are refused,
//! an in-flight long request completes, an open SSE stream ends with `event: shutdown`,
//! and the process exits 0 within its drain timeout.

mod common;

use std::time::{Duration, Instant};

use common::{cluster, http, Gateway, SseReader};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_streams_and_requests_then_exits_zero() {
    let cluster = cluster(1).await;
    let gw = Gateway::start(
        &cluster.client_endpoints(),
        &[
            "--drain-delay",
            "1500",
            "--drain-timeout",
            "6000",
            "--ready-cache",
            "0",
        ],
    )
    .await;
    let http = http();
    assert_eq!(
        http.get(gw.url("/readyz")).send().await.unwrap().status(),
        StatusCode::OK
    );

    // An open SSE stream.
    let mut stream = SseReader::new(http.get(gw.url("/v1/watch?prefix=/d/")).send().await.unwrap());
    assert_eq!(
        stream.next_within(Duration::from_secs(5)).await.unwrap().event,
        "created"
    );

    // An in-flight long request: B campaigns while A leads.
    let grant = |ttl: i64| {
        let http = http.clone();
        let url = gw.url("/v1/leases");
        async move {
            let lease: Value = http
                .post(url)
                .json(&json!({ "ttl": ttl }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            lease["id"].as_str().unwrap().to_string()
        }
    };
    let (a, b) = (grant(30).await, grant(30).await);
    let leader: Value = http
        .post(gw.url("/v1/elections/drain/campaign"))
        .json(&json!({"lease": a, "value": "a"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let http = http.clone();
        let url = gw.url("/v1/elections/drain/campaign");
        let b = b.clone();
        async move {
            http.post(url)
                .json(&json!({"lease": b, "value": "b", "timeout_ms": 20000}))
                .send()
                .await
                .unwrap()
        }
    });
    // Let B's request reach the gateway and queue.
    conclave_testkit::wait_until("B queued behind A", Duration::from_secs(5), || {
        let http = http.clone();
        let url = gw.url(&format!("/v1/leases/{b}"));
        async move {
            let info: Value = http.get(url).send().await.ok()?.json().await.ok()?;
            (!info["keys"].as_array()?.is_empty()).then_some(())
        }
    })
    .await
    .unwrap();

    let terminated_at = Instant::now();
    gw.terminate();
    // /readyz answers 404 at once (well within the drain delay).
    conclave_testkit::wait_until("/readyz answers 404", Duration::from_millis(1000), || {
        let http = http.clone();
        let url = gw.url("/readyz");
        async move { (http.get(url).send().await.ok()?.status() == StatusCode::NOT_FOUND).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_text()));
    assert!(terminated_at.elapsed() < Duration::from_millis(1500));
    // /livez still answers: the process is alive.
    assert_eq!(
        http.get(gw.url("/livez")).send().await.unwrap().status(),
        StatusCode::OK
    );
    // New streams are refused while draining.
    let refused = http.get(gw.url("/v1/watch?prefix=/d/")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["code"], "draining");

    // A resigns (through the draining gateway, still serving): B's in-flight campaign completes.
    let resigned = http
        .post(gw.url("/v1/elections/drain/resign"))
        .json(&json!({"key": leader["key"], "epoch": leader["epoch"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resigned.status(), StatusCode::OK);
    let elected = waiting.await.unwrap();
    assert_eq!(elected.status(), StatusCode::OK);
    let elected: Value = elected.json().await.unwrap();
    assert!(elected["epoch"].as_i64() > leader["epoch"].as_i64());

    // The open stream ends cleanly with a shutdown event after the drain delay.
    let mut last = None;
    while let Some(event) = stream.next_within(Duration::from_secs(5)).await {
        last = Some(event);
    }
    let last = last.expect("a final event");
    assert_eq!(last.event, "shutdown", "{last:?}");
    assert!(
        terminated_at.elapsed() >= Duration::from_millis(1400),
        "not before the drain delay"
    );

    // The process exits 0 within the drain timeout.
    let status = tokio::task::block_in_place(|| gw.wait_exit(Duration::from_secs(8)))
        .unwrap_or_else(|| panic!("still running\n{}", gw.log_text()));
    assert_eq!(status.code(), Some(0), "{}", gw.log_text());
    assert!(
        terminated_at.elapsed() < Duration::from_secs(6),
        "{:?}",
        terminated_at.elapsed()
    );
    // And the listener is closed.
    assert!(http.get(gw.url("/livez")).send().await.is_err());
}
