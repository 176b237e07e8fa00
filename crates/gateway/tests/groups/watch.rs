//! The map as Server-Sent Events: a snapshot, then every generation once and in order,
//! resumed with `Last-Event-ID` or `?after=` exactly where the client stopped, matching
//! `/history`; a resume point the map never had restarts the client from 0.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};

use super::common::{cluster, http, Gateway, Sse, SseReader};
use super::{call, create_group, kept_lease, registration, settle};

/// Reads events until a `change` (or `snapshot`) with id `generation`.
async fn read_until(stream: &mut SseReader, generation: u64) -> Vec<Sse> {
    let mut events = Vec::new();
    loop {
        let event = stream
            .next_within(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no event up to generation {generation}; got {events:?}"));
        let done = event.event != "members" && event.id.as_deref() == Some(&generation.to_string());
        events.push(event);
        if done {
            return events;
        }
    }
}

fn generation_of(event: &Sse) -> u64 {
    event
        .id
        .as_deref()
        .and_then(|id| id.parse().ok())
        .expect("a generation id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_streams_every_generation_once_in_order_and_resumes_exactly_after_last_event_id() {
    let cluster = cluster(1).await;
    let gw = Gateway::start(&cluster.client_endpoints(), &[]).await;
    let http = http();
    create_group(&http, &gw, "orders", 8).await;
    // Watch from generation 0: the empty map first.
    let watch_url = gw.url("/v1/groups/orders/watch");
    let mut first = SseReader::new(http.get(&watch_url).send().await.unwrap());
    let (lease, keepalive) = kept_lease(&http, &gw, 2).await;
    let (status, member, _) = call(
        &http,
        Method::POST,
        &gw.url("/v1/groups/orders/members"),
        Some(registration("m1", &lease)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{member}");
    let map = settle(&http, &gw, "orders", "m1").await;
    let generation = map["generation"].as_u64().unwrap();

    // The stream from 0: the snapshot, then changes in order. Leave it after a few
    // events and resume with Last-Event-ID: together they hold every generation once.
    // (The first change is the assignment; the reports make at least one more.)
    let events = read_until(&mut first, 1).await;
    drop(first);
    assert_eq!(
        (events[0].event.as_str(), events[0].id.as_deref()),
        ("snapshot", Some("0")),
        "{events:?}"
    );
    assert_eq!(events[0].json()["partitions"].as_array().unwrap().len(), 8);
    assert!(generation > 1, "{map}");
    let resumed_at = 1;
    let mut second = SseReader::new(
        http.get(&watch_url)
            .header("Last-Event-ID", resumed_at.to_string())
            .send()
            .await
            .unwrap(),
    );
    let resumed = read_until(&mut second, generation).await;
    assert!(resumed.iter().all(|e| e.event != "snapshot"), "{resumed:?}");
    let changes: Vec<&Sse> = events
        .iter()
        .chain(&resumed)
        .filter(|e| e.event == "change")
        .collect();
    let delivered: Vec<u64> = changes.iter().map(|e| generation_of(e)).collect();
    assert_eq!(
        delivered,
        (1..=generation).collect::<Vec<_>>(),
        "no gap, no duplicate: {events:?} {resumed:?}"
    );
    for change in &changes {
        assert_eq!(change.json()["generation"], generation_of(change), "{change:?}");
    }
    let joined = events
        .iter()
        .chain(&resumed)
        .find(|e| e.event == "members")
        .expect("m1's registration");
    assert_eq!(joined.json()["updated"][0]["id"], "m1", "{joined:?}");
    // Each generation's partitions are what /history says it changed.
    let (_, history, _) = call(
        &http,
        Method::GET,
        &gw.url("/v1/groups/orders/history?limit=1000"),
        None,
    )
    .await;
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len() as u64, generation, "{history}");
    for change in &changes {
        let g = generation_of(change);
        let entry = entries
            .iter()
            .find(|e| e["generation"] == g)
            .expect("in the history");
        let listed: BTreeSet<u64> = ["changed", "new_leaders"]
            .iter()
            .flat_map(|f| entry[f].as_array().unwrap().iter().map(|p| p.as_u64().unwrap()))
            .collect();
        let sent: BTreeSet<u64> = change.json()["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_u64().unwrap())
            .collect();
        assert_eq!(listed, sent, "generation {g}: {entry} vs {change:?}");
    }
    // ?after= resumes the same way; a generation the map never had restarts from 0.
    let mut after = SseReader::new(
        http.get(format!("{watch_url}?after={}", generation - 1))
            .send()
            .await
            .unwrap(),
    );
    let tail = read_until(&mut after, generation).await;
    assert_eq!(tail.iter().filter(|e| e.event == "change").count(), 1, "{tail:?}");
    let mut ahead = SseReader::new(
        http.get(format!("{watch_url}?after={}", generation + 100))
            .send()
            .await
            .unwrap(),
    );
    let restart = ahead
        .next_within(Duration::from_secs(10))
        .await
        .expect("an error event");
    assert_eq!(
        (restart.event.as_str(), restart.id.as_deref()),
        ("error", Some("0")),
        "{restart:?}"
    );
    assert_eq!(restart.json()["code"], "generation_gone", "{restart:?}");
    let bad = call(&http, Method::GET, &format!("{watch_url}?after=x"), None).await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST);
    keepalive.abort();
}
