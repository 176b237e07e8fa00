//! Partition groups over HTTP, through a real gateway in front of a real node:
//! settings and their validation (`settings`); an HTTP member that keeps its own lease
//! alive, reports its partitions ready, and is then what the map, the route and the load
//! balancers' leader endpoint name, until its session ends (`members`); the map's
//! Server-Sent Events, resumed with `Last-Event-ID` without gap or duplicate (`watch`).

#[path = "../common/mod.rs"]
mod common;
mod members;
mod settings;
mod watch;

use std::time::Duration;

use common::Gateway;
use conclave_testkit::wait_until;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Sends a JSON request; returns the status, the JSON body (Null if none) and the headers.
pub async fn call(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut request = http.request(method.clone(), url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body, headers)
}

/// Asserts an error answer's status and code.
pub fn assert_error(
    what: &str,
    (status, body, _): &(StatusCode, Value, reqwest::header::HeaderMap),
    want: StatusCode,
    code: &str,
) {
    assert_eq!(*status, want, "{what}: {body}");
    assert_eq!(body["code"], code, "{what}: {body}");
}

/// A registration of `member` under `lease`, with labels and endpoints.
fn registration(member: &str, lease: &str) -> Value {
    json!({
        "member_id": member, "lease": lease, "labels": {"zone": "a"},
        "advertise_address": "10.0.0.1", "http_endpoint": "http://10.0.0.1:8080", "grpc_endpoint": "10.0.0.1:9090"
    })
}

/// Creates a group of `partitions` × 1 replica with a quick rebalance and a 2 s session TTL.
async fn create_group(http: &reqwest::Client, gw: &Gateway, name: &str, partitions: u32) {
    let settings = json!({"name": name, "partitions": partitions, "replicas": 1, "rebalance_delay_ms": 200, "session_ttl_seconds": 2});
    let (status, body, _) = call(http, Method::POST, &gw.url("/v1/groups"), Some(settings)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Grants a lease over HTTP and keeps it alive every `ttl / 4` until the task is aborted.
async fn kept_lease(http: &reqwest::Client, gw: &Gateway, ttl: u64) -> (String, tokio::task::JoinHandle<()>) {
    let (status, lease, _) = call(
        http,
        Method::POST,
        &gw.url("/v1/leases"),
        Some(json!({"ttl": ttl})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{lease}");
    let id = lease["id"].as_str().expect("a decimal string").to_string();
    let url = gw.url(&format!("/v1/leases/{id}/keepalive"));
    let http = http.clone();
    let task = tokio::spawn(async move {
        loop {
            let _ = http.post(&url).send().await;
            tokio::time::sleep(Duration::from_millis(ttl * 1000 / 4)).await;
        }
    });
    (id, task)
}

/// Reports `ready` for every partition where `member` is syncing, until the map shows it
/// ready and leading every partition (its only replica); returns that map.
async fn settle(http: &reqwest::Client, gw: &Gateway, group: &str, member: &str) -> Value {
    let map_url = gw.url(&format!("/v1/groups/{group}/map"));
    wait_until(
        &format!("{member} ready and leading every partition"),
        Duration::from_secs(20),
        || {
            let (http, map_url) = (http.clone(), map_url.clone());
            async move {
                let (_, map, _) = call(&http, Method::GET, &map_url, None).await;
                let mut settled = true;
                for partition in map["partitions"].as_array()? {
                    let replicas = partition["replicas"].as_array()?;
                    let mine = replicas.iter().find(|r| r["member"] == member);
                    match mine.map(|r| r["state"].as_str().unwrap_or_default()) {
                        Some("syncing") => {
                            settled = false;
                            let report = gw.url(&format!(
                                "/v1/groups/{group}/partitions/{}/report",
                                partition["id"]
                            ));
                            let body =
                                json!({"member_id": member, "kind": "ready", "epoch": partition["epoch"]});
                            let _ = call(&http, Method::POST, &report, Some(body)).await;
                        }
                        Some("ready") if partition["leader"] == member && replicas.len() == 1 => {}
                        _ => settled = false,
                    }
                }
                settled.then_some(map)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_text()))
}
