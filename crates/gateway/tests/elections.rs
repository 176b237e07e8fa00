//! The election registry over REST: list, Server-Sent Events of changes, status and ping
//! answered by the candidates, remote step-down, and the typed errors — through a real
//! gateway process in front of a real cluster, with SDK candidates.

mod common;

use std::time::Duration;

use common::{cluster, http, Gateway, SseReader};
use conclave_client::{Candidate, CandidateHandle, Client, ElectionHooks};
use conclave_testkit::wait_until;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

struct Quiet;
impl ElectionHooks for Quiet {}

async fn candidate(endpoints: &[String], id: &str) -> CandidateHandle {
    let client = Client::connect(endpoints).await.expect("client");
    Candidate::new(client.election("g-elect"), id.to_string())
        .id(id)
        .address(format!("{id}.example:80"))
        .label("zone", "z1")
        .lease_ttl(Duration::from_secs(5))
        .start(Quiet)
        .expect("a valid id")
}

async fn get(url: &str) -> (u16, Value) {
    let response = http().get(url).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post(url: &str, body: Value) -> (u16, Value) {
    let response = http().post(url).json(&body).send().await.expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The leader's id once the registry shows three candidates and one leader.
async fn settled(gw: &Gateway) -> (String, i64) {
    let url = gw.url("/v1/elections/g-elect/candidates");
    wait_until("three candidates, one leader", WAIT, || async {
        let (status, body) = get(&url).await;
        let list = body["candidates"].as_array()?.clone();
        let leaders: Vec<&Value> = list.iter().filter(|c| c["state"] == "leader").collect();
        (status == 200
            && list.len() == 3
            && leaders.len() == 1
            && list.iter().all(|c| c["state"] != "follower"))
        .then(|| {
            (
                leaders[0]["id"].as_str().unwrap_or("").to_string(),
                leaders[0]["epoch"].as_i64().unwrap_or(0),
            )
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_is_listed_followed_and_steered_over_rest() {
    let cluster = cluster(3).await;
    let endpoints = cluster.client_endpoints();
    let gw = Gateway::start(&endpoints, &[]).await;
    let mut handles = Vec::new();
    for id in ["g1", "g2", "g3"] {
        handles.push(candidate(&endpoints, id).await);
    }
    let (leader, epoch) = settled(&gw).await;

    // The list matches the election's leader.
    let (status, body) = get(&gw.url("/v1/elections/g-elect/candidates")).await;
    assert_eq!(status, 200, "{body}");
    let (_, current) = get(&gw.url("/v1/elections/g-elect/leader")).await;
    assert_eq!(current["epoch"], epoch, "{current} {body}");
    let ids: Vec<&str> = body["candidates"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, ["g1", "g2", "g3"], "{body}");
    let first = &body["candidates"][0];
    assert_eq!(first["address"], "g1.example:80", "{body}");
    assert_eq!(first["metadata"]["zone"], "z1", "{body}");

    // Status and ping, answered by the candidates.
    let (status, report) = get(&gw.url(&format!("/v1/elections/g-elect/candidates/{leader}/status"))).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["candidate"]["state"], "leader", "{report}");
    assert_eq!(report["leader_epoch"], epoch, "{report}");
    assert_eq!(report["connected"], true, "{report}");
    let (status, pong) = post(&gw.url("/v1/elections/g-elect/candidates/g2/ping"), json!({})).await;
    assert_eq!(status, 200, "{pong}");
    assert!(pong["rtt_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{pong}");

    // The SSE stream: a snapshot, then the step-down's changes.
    let response = http()
        .get(gw.url("/v1/elections/g-elect/candidates/observe"))
        .send()
        .await
        .expect("observe");
    let mut events = SseReader::new(response);
    let snapshot = events.next_within(WAIT).await.expect("snapshot");
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!(
        snapshot.json()["candidates"].as_array().map(Vec::len),
        Some(3),
        "{snapshot:?}"
    );

    let (status, moved) = post(
        &gw.url("/v1/elections/g-elect/stepdown"),
        json!({ "cooldown_ms": 2000 }),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["candidate"], leader.as_str(), "{moved}");
    assert_eq!(moved["epoch"], epoch, "{moved}");
    let next = moved["new_leader"]["candidate"]
        .as_str()
        .expect("the next leader's id")
        .to_string();
    assert_ne!(next, leader, "{moved}");
    assert!(moved["new_leader"]["epoch"].as_i64() > Some(epoch), "{moved}");
    // The stream shows the old leader as a follower and the new one as leader.
    let mut saw_follower = false;
    let mut saw_leader = false;
    while !(saw_follower && saw_leader) {
        let event = events.next_within(WAIT).await.expect("a registry change");
        assert_eq!(event.event, "put", "{event:?}");
        let candidate = &event.json()["candidate"];
        saw_follower |= candidate["id"] == leader.as_str() && candidate["state"] == "follower";
        saw_leader |= candidate["id"] == next.as_str() && candidate["state"] == "leader";
    }

    // Refusals and unknowns, typed.
    let not_leading = if next == "g1" { "g2" } else { "g1" };
    let (status, refused) = post(
        &gw.url("/v1/elections/g-elect/stepdown"),
        json!({ "candidate": not_leading }),
    )
    .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("refused")),
        "{refused}"
    );
    let (status, unknown) = get(&gw.url("/v1/elections/g-elect/candidates/nobody/status")).await;
    assert_eq!(
        (status, unknown["code"].as_str()),
        (404, Some("unknown_candidate")),
        "{unknown}"
    );
    let (status, bad) = post(
        &gw.url("/v1/elections/g-elect/stepdown"),
        json!({ "cooldown": 1 }),
    )
    .await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("invalid_argument")),
        "{bad}"
    );
    // An entry nobody answers for (a candidate that died a moment ago): 504 no_answer.
    let writer = Client::connect(&endpoints).await.expect("client");
    let ghost = json!({"id": "ghost", "state": "follower", "since_unix_ms": 0, "version": "0"});
    writer
        .put("g-elect.candidates/ghost", ghost.to_string())
        .await
        .expect("put");
    let (status, silent) = post(
        &gw.url("/v1/elections/g-elect/candidates/ghost/ping?timeout_ms=500"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, silent["code"].as_str()),
        (504, Some("no_answer")),
        "{silent}"
    );
    writer.delete("g-elect.candidates/ghost").await.expect("delete");
    // Other changes may come first (the ghost's put, cooldowns ending).
    loop {
        let event = events.next_within(WAIT).await.expect("the ghost going");
        if event.event == "gone" {
            assert_eq!(event.json()["id"], "ghost", "{event:?}");
            break;
        }
    }

    // A stopped candidate's entry goes at once.
    let stopped = handles.remove(0);
    let stopped_id = stopped.id().to_string();
    stopped.stop().await;
    loop {
        let event = events
            .next_within(WAIT)
            .await
            .expect("the stopped candidate going");
        if event.event == "gone" {
            assert_eq!(event.json()["id"], stopped_id.as_str(), "{event:?}");
            break;
        }
    }
    for handle in handles {
        handle.stop().await;
    }
}
