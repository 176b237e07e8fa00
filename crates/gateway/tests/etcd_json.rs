//! etcd's JSON gateway paths with etcd's JSON mapping: proto field names, base64 bytes,
//! 64-bit integers as strings, enums by name, defaults left out, etcd's error shape.

mod common;

use std::time::Duration;

use common::{cluster, http, Gateway};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn post(http: &reqwest::Client, gw: &Gateway, path: &str, body: Value) -> (StatusCode, Value) {
    let response = http.post(gw.url(path)).json(&body).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(text.trim()).unwrap_or(Value::String(text));
    (status, value)
}

/// Reads newline-delimited JSON objects off a streaming response.
struct Lines {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: Vec<u8>,
}

impl Lines {
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=end).collect();
                return serde_json::from_slice(&line).ok();
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.body.next())
                .await
                .ok()??;
            self.buffer.extend_from_slice(&chunk.ok()?);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_paths_speak_etcds_json_mapping() {
    let cluster = cluster(1).await;
    let gw = Gateway::start(&cluster.client_endpoints(), &[]).await;
    let http = http();

    // Put a base64 key; the header's revision is a string.
    let (status, put) = post(&http, &gw, "/v3/kv/put", json!({"key": "Zm9v", "value": "YmFy"})).await;
    assert_eq!(status, StatusCode::OK, "{put}");
    let revision: i64 = put["header"]["revision"]
        .as_str()
        .expect("revision as a string")
        .parse()
        .unwrap();
    assert!(put["header"]["cluster_id"].is_string() && put["header"]["member_id"].is_string());
    assert!(
        put.get("prev_kv").is_none(),
        "absent messages are left out: {put}"
    );

    // Range returns base64 bytes, int64 as strings, and leaves defaults out.
    let (status, range) = post(&http, &gw, "/v3/kv/range", json!({"key": "Zm9v"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(range["count"], "1");
    assert!(range.get("more").is_none(), "false is left out: {range}");
    let kv = &range["kvs"][0];
    assert_eq!(kv["key"], "Zm9v");
    assert_eq!(kv["value"], "YmFy");
    assert_eq!(kv["mod_revision"], revision.to_string());
    assert_eq!(kv["version"], "1");
    assert!(kv.get("lease").is_none());
    // Both the proto name and the JSON name are accepted; numbers as strings or numbers.
    post(&http, &gw, "/v3/kv/put", json!({"key": "Zm9w", "value": "eA=="})).await;
    let (_, range) = post(
        &http,
        &gw,
        "/v3/kv/range",
        json!({"key": "Zm9v", "rangeEnd": "Zm9x", "limit": 5, "sort_order": "DESCEND", "keys_only": true}),
    )
    .await;
    assert_eq!(range["count"], "2");
    assert_eq!(range["kvs"][0]["key"], "Zm9w");
    assert!(range["kvs"][0].get("value").is_none());

    // Txn with a compare by enum names, and nested responses by oneof field name.
    let txn = json!({
        "compare": [{"key": "Zm9v", "target": "MOD", "result": "EQUAL", "mod_revision": revision.to_string()}],
        "success": [{"request_put": {"key": "Zm9v", "value": "YmF6", "prev_kv": true}}],
        "failure": [{"request_range": {"key": "Zm9v"}}]
    });
    let (status, answer) = post(&http, &gw, "/v3/kv/txn", txn.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["succeeded"], true);
    assert_eq!(answer["responses"][0]["response_put"]["prev_kv"]["value"], "YmFy");
    let (_, answer) = post(&http, &gw, "/v3/kv/txn", txn).await;
    assert!(answer.get("succeeded").is_none(), "false is left out: {answer}");
    assert_eq!(
        answer["responses"][0]["response_range"]["kvs"][0]["value"],
        "YmF6"
    );

    // A watch streams {"result": WatchResponse} lines: created, then events; PUT (the
    // enum's zero) is left out, DELETE is named.
    let response = http
        .post(gw.url("/v3/watch"))
        .json(&json!({"create_request": {"key": "dy8=", "range_end": "dzA="}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut lines = Lines {
        body: response.bytes_stream().boxed(),
        buffer: Vec::new(),
    };
    let created = lines.next().await.expect("created");
    assert_eq!(created["result"]["created"], true, "{created}");
    post(&http, &gw, "/v3/kv/put", json!({"key": "dy9h", "value": "MQ=="})).await;
    post(&http, &gw, "/v3/kv/deleterange", json!({"key": "dy9h"})).await;
    let mut events = Vec::new();
    while events.len() < 2 {
        let line = lines.next().await.expect("events");
        events.extend(line["result"]["events"].as_array().cloned().unwrap_or_default());
    }
    assert!(events[0].get("type").is_none(), "{events:?}");
    assert_eq!(events[0]["kv"]["key"], "dy9h");
    assert_eq!(events[1]["type"], "DELETE");

    // Deleterange counts as a string.
    let (_, deleted) = post(&http, &gw, "/v3/kv/deleterange", json!({"key": "Zm9w"})).await;
    assert_eq!(deleted["deleted"], "1");

    // Leases: TTL and ID in etcd's capitalisation, keys in base64.
    let (status, lease) = post(&http, &gw, "/v3/lease/grant", json!({"TTL": "30"})).await;
    assert_eq!(status, StatusCode::OK, "{lease}");
    assert_eq!(lease["TTL"], "30");
    let id = lease["ID"].as_str().expect("ID as a string").to_string();
    post(
        &http,
        &gw,
        "/v3/kv/put",
        json!({"key": "bGVhc2Vk", "value": "eA==", "lease": id}),
    )
    .await;
    let (_, ttl) = post(
        &http,
        &gw,
        "/v3/lease/timetolive",
        json!({"ID": id, "keys": true}),
    )
    .await;
    assert_eq!(ttl["grantedTTL"], "30");
    assert_eq!(ttl["keys"], json!(["bGVhc2Vk"]));
    let (status, renewed) = post(&http, &gw, "/v3/lease/keepalive", json!({"ID": id})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(renewed["result"]["TTL"], "30", "{renewed}");
    let (_, leases) = post(&http, &gw, "/v3/lease/leases", json!({})).await;
    assert!(leases["leases"].as_array().unwrap().contains(&json!({"ID": id})));
    let (status, _) = post(&http, &gw, "/v3/lease/revoke", json!({"ID": id})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, error) = post(&http, &gw, "/v3/lease/revoke", json!({"ID": id})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["code"], 5);
    assert_eq!(error["error"], "etcdserver: requested lease not found");
    assert_eq!(error["message"], error["error"]);

    // Status and members in etcd's camelCase field names.
    let (_, status_answer) = post(&http, &gw, "/v3/maintenance/status", json!({})).await;
    assert!(status_answer["version"].is_string());
    assert!(status_answer["leader"].is_string() && status_answer["raftTerm"].is_string());
    assert!(status_answer["dbSize"].is_string());
    // A member publishes its client URLs shortly after it starts.
    let members = conclave_testkit::wait_until(
        "the member's client URLs are published",
        Duration::from_secs(10),
        || async {
            let (_, members) = post(&http, &gw, "/v3/cluster/member/list", json!({})).await;
            members["members"][0]["clientURLs"].is_array().then_some(members)
        },
    )
    .await
    .unwrap();
    let member = &members["members"][0];
    assert!(
        member["ID"].is_string() && member["peerURLs"].is_array() && member["clientURLs"].is_array(),
        "{members}"
    );

    // Election and lock.
    let (_, lease) = post(&http, &gw, "/v3/lease/grant", json!({"TTL": 30})).await;
    let id = lease["ID"].as_str().unwrap().to_string();
    let (status, campaign) = post(
        &http,
        &gw,
        "/v3/election/campaign",
        json!({"name": "ZWxlY3Rpb24=", "lease": id, "value": "djE="}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{campaign}");
    let leader = campaign["leader"].clone();
    assert!(
        leader["rev"].is_string() && leader["key"].is_string(),
        "{campaign}"
    );
    let (_, current) = post(&http, &gw, "/v3/election/leader", json!({"name": "ZWxlY3Rpb24="})).await;
    assert_eq!(current["kv"]["value"], "djE=");
    let (status, _) = post(
        &http,
        &gw,
        "/v3/election/proclaim",
        json!({"leader": leader, "value": "djI="}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, current) = post(&http, &gw, "/v3/election/leader", json!({"name": "ZWxlY3Rpb24="})).await;
    assert_eq!(current["kv"]["value"], "djI=");
    let (status, _) = post(&http, &gw, "/v3/election/resign", json!({"leader": leader})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, locked) = post(
        &http,
        &gw,
        "/v3/lock/lock",
        json!({"name": "bG9jaw==", "lease": id}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{locked}");
    assert!(locked["key"].is_string());
    let (status, _) = post(&http, &gw, "/v3/lock/unlock", json!({"key": locked["key"]})).await;
    assert_eq!(status, StatusCode::OK);

    // Errors in etcd's shape with the HTTP status mapped from the gRPC code.
    let (_, compacted) = post(
        &http,
        &gw,
        "/v3/kv/compaction",
        json!({"revision": revision + 1, "physical": true}),
    )
    .await;
    assert!(compacted["header"].is_object(), "{compacted}");
    let (status, error) = post(
        &http,
        &gw,
        "/v3/kv/range",
        json!({"key": "Zm9v", "revision": revision}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], 11);
    assert_eq!(
        error["error"],
        "etcdserver: mvcc: required revision has been compacted"
    );
    let (status, error) = post(&http, &gw, "/v3/kv/put", json!({"key": "", "value": "eA=="})).await;
    assert_eq!(
        (status, error["code"].as_i64()),
        (StatusCode::BAD_REQUEST, Some(3)),
        "{error}"
    );
    let bad = http
        .post(gw.url("/v3/kv/range"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["code"], 3);
}
