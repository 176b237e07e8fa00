//! Watch over Server-Sent Events: a client that disconnects every few events and
//! reconnects with `Last-Event-ID` sees every change exactly once, in order — also when
//! the member the gateway was talking to is killed midway.

mod common;

use std::time::Duration;

use common::{cluster, http, Gateway, SseReader};
use conclave_client::kv::{Get, Put};
use conclave_client::watch::Watch;
use conclave_client::{Client, Op};
use conclave_testkit::wait_until_ok;
use futures::StreamExt;
use serde_json::json;

/// `R.n` → (R, n) for ordering.
fn order(id: &str) -> (i64, i64) {
    let (r, n) = id.split_once('.').expect("a change id is R.n");
    (r.parse().unwrap(), n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_with_last_event_id_delivers_every_change_once_across_a_node_kill() {
    let cluster = cluster(3).await;
    let endpoints = cluster.client_endpoints();
    // The gateway's SDK spreads calls over all three members; its watch lives on one of
    // them, and killing n1 midway breaks it or the requests around it.
    let gw = Gateway::start(&endpoints, &[]).await;
    let http = http();
    let url = gw.url("/v1/watch?prefix=/sse/");

    let mut stream = SseReader::new(http.get(&url).send().await.unwrap());
    let created = stream
        .next_within(Duration::from_secs(10))
        .await
        .expect("created");
    assert_eq!(created.event, "created");
    let created_revision = created.json()["revision"].as_i64().unwrap();
    let mut last_id = created.id.clone().expect("the created event carries an id");

    // Writes through the SDK directly: single puts and two-key txns (two changes in one
    // revision), then a final marker.
    let writer_client = Client::connect(&endpoints).await.unwrap();
    let writer = tokio::spawn(async move {
        for i in 0..120u32 {
            let _ = if i % 3 == 0 {
                writer_client
                    .txn()
                    .then([
                        Op::put(format!("/sse/a{i:03}"), "x"),
                        Op::put(format!("/sse/b{i:03}"), "y"),
                    ])
                    .await
                    .map(|_| ())
            } else {
                writer_client.put(format!("/sse/k{i:03}"), "z").await.map(|_| ())
            };
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        loop {
            if writer_client
                .put_with(Put::new("/sse/zz-done", "1"))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let mut received: Vec<(String, String, i64)> = Vec::new();
    let mut killed = false;
    let mut reconnects = 0;
    'outer: loop {
        // Read up to 17 changes on this connection, then drop it.
        let mut on_this_connection = 0;
        while on_this_connection < 17 {
            let Some(event) = stream.next_within(Duration::from_secs(20)).await else {
                break;
            };
            match event.event.as_str() {
                "put" | "delete" => {
                    let id = event.id.clone().expect("changes carry ids");
                    let data = event.json();
                    let key = data["key"].as_str().unwrap().to_string();
                    received.push((id.clone(), key.clone(), data["mod_revision"].as_i64().unwrap()));
                    last_id = id;
                    on_this_connection += 1;
                    if key == "/sse/zz-done" {
                        break 'outer;
                    }
                }
                "created" => {}
                other => panic!("unexpected event {other}: {}", event.data),
            }
        }
        if !killed && received.len() >= 40 {
            cluster.kill(1).expect("kill n1");
            killed = true;
        }
        reconnects += 1;
        assert!(reconnects < 200, "too many reconnects");
        drop(stream);
        stream = wait_until_ok("the watch reconnects", Duration::from_secs(30), || {
            let http = http.clone();
            let url = url.clone();
            let last_id = last_id.clone();
            async move {
                let response = http
                    .get(&url)
                    .header("Last-Event-ID", last_id)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if response.status().is_success() {
                    Ok(SseReader::new(response))
                } else {
                    Err(format!(
                        "{}: {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    ))
                }
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_text()));
    }
    writer.await.unwrap();
    assert!(killed, "n1 was killed midway");

    // Ids strictly increase: nothing twice, nothing out of order.
    for pair in received.windows(2) {
        assert!(
            order(&pair[0].0) < order(&pair[1].0),
            "out of order or repeated: {pair:?}"
        );
    }
    // And nothing is missing: compare with the cluster's own history.
    let sdk = Client::connect(cluster.running_client_endpoints()).await.unwrap();
    let mut history = sdk
        .watch(Watch::prefix("/sse/").start_revision(created_revision + 1))
        .await
        .unwrap();
    let mut expected = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), history.next())
        .await
        .unwrap()
    {
        let event = event.unwrap();
        let key = String::from_utf8(event.kv.key.clone()).unwrap();
        expected.push((key.clone(), event.kv.mod_revision));
        if key == "/sse/zz-done" {
            break;
        }
    }
    let got: Vec<(String, i64)> = received.iter().map(|(_, k, r)| (k.clone(), *r)).collect();
    assert_eq!(
        got, expected,
        "every change exactly once, in order ({reconnects} reconnects)"
    );
    eprintln!(
        "{} changes over {} connections, n1 killed after 40; all delivered once in order",
        got.len(),
        reconnects + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_compacted_revision_ends_with_an_error_event() {
    let cluster = cluster(1).await;
    let gw = Gateway::start(&cluster.client_endpoints(), &["--sse-keep-alive", "200"]).await;
    let http = http();
    let sdk = Client::connect(cluster.client_endpoints()).await.unwrap();
    for i in 0..5 {
        sdk.put(format!("/c/{i}"), "v").await.unwrap();
    }
    let revision = sdk.range(Get::key("/c/4")).await.unwrap().revision;
    sdk.compact(revision, true).await.unwrap();
    let response = http
        .get(gw.url("/v1/watch?prefix=/c/&start_revision=1"))
        .send()
        .await
        .unwrap();
    if response.status() == reqwest::StatusCode::GONE {
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["code"], "compacted");
        return;
    }
    let mut stream = SseReader::new(response);
    let mut events = Vec::new();
    while let Some(event) = stream.next_within(Duration::from_secs(10)).await {
        events.push(event.clone());
        if event.event == "error" {
            break;
        }
    }
    let last = events.last().expect("events");
    assert_eq!(last.event, "error", "{events:?}");
    assert_eq!(last.json()["code"], json!("compacted"));
    assert!(
        stream.next_within(Duration::from_secs(2)).await.is_none(),
        "the stream ends after the error"
    );
}
