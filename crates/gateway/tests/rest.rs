//! The REST API against a real node through a real gateway process.

mod common;

use std::time::Duration;

use common::{cluster, http, Gateway, SseReader};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn body(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_round_trip_with_base64_conditions_and_errors() {
    let cluster = cluster(1).await;
    let gw = Gateway::start(&cluster.client_endpoints(), &["--max-body-bytes", "4000000"]).await;
    let http = http();

    // Put and get, with the key's slashes percent-encoded.
    let (status, put) = body(
        http.put(gw.url("/v1/kv/%2Fapp%2Fa"))
            .json(&json!({"value": "hello"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    let revision = put["revision"].as_i64().unwrap();
    let got = http.get(gw.url("/v1/kv/%2Fapp%2Fa")).send().await.unwrap();
    assert_eq!(got.headers()["etag"], format!("\"{revision}\"").as_str());
    let (status, kv) = body(got).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kv["key"], "/app/a");
    assert_eq!(kv["value"], "hello");
    assert_eq!(kv["mod_revision"], revision);
    assert_eq!(kv["version"], 1);
    assert_eq!(kv["lease"], Value::Null);

    // Absent key: 404 key_not_found.
    let (status, error) = body(http.get(gw.url("/v1/kv/missing")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error["code"], "key_not_found");

    // Compare-and-swap: the right mod revision wins, a stale one gets 412.
    let (status, swapped) = body(
        http.put(gw.url("/v1/kv/%2Fapp%2Fa"))
            .header("If-Match", revision.to_string())
            .json(&json!({"value": "v2"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{swapped}");
    let (status, error) = body(
        http.put(gw.url("/v1/kv/%2Fapp%2Fa"))
            .header("If-Match", revision.to_string())
            .json(&json!({"value": "v3"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(error["code"], "revision_mismatch");
    // Create only.
    let (status, error) = body(
        http.put(gw.url("/v1/kv/%2Fapp%2Fa"))
            .header("If-None-Match", "*")
            .json(&json!({"value": "v3"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(error["code"], "key_exists");
    let (status, _) = body(
        http.put(gw.url("/v1/kv/%2Fapp%2Fnew"))
            .header("If-None-Match", "*")
            .json(&json!({"value": "fresh"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // The key's slashes may also be written as they are.
    let (status, kv) = body(http.get(gw.url("/v1/kv//app/new")).send().await.unwrap()).await;
    assert_eq!(
        (status, kv["value"].as_str()),
        (StatusCode::OK, Some("fresh")),
        "{kv}"
    );

    // Binary key and value through base64 (URL-safe in the path).
    let (status, _) = body(
        http.put(gw.url("/v1/kv/AP8B?encoding=base64"))
            .json(&json!({"value": "//79"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, kv) = body(
        http.get(gw.url("/v1/kv/AP8B?encoding=base64"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kv["key"], "AP8B");
    assert_eq!(kv["value"], "//79");
    // A binary value read as UTF-8 is refused (422 not_utf8) rather than mangled.
    http.put(gw.url("/v1/kv/YmludmFs?encoding=base64"))
        .json(&json!({"value": "/w=="}))
        .send()
        .await
        .unwrap();
    let (status, error) = body(http.get(gw.url("/v1/kv/binval")).send().await.unwrap()).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("not_utf8"))
    );
    // ... but the answer to a write that applied is never refused: a binary previous
    // value comes back in base64, marked as such.
    let (status, put) = body(
        http.put(gw.url("/v1/kv/binval?prev_kv=true"))
            .json(&json!({"value": "text now"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["prev_kv"]["encoding"], "base64");
    assert_eq!(put["prev_kv"]["value"], "/w==");
    let (_, now) = body(http.get(gw.url("/v1/kv/binval")).send().await.unwrap()).await;
    assert_eq!(now["value"], "text now");

    // Bad JSON: 400 invalid_argument.
    let (status, error) = body(
        http.put(gw.url("/v1/kv/x"))
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["code"], "invalid_argument");

    // Too large: beyond the gateway's body limit, and beyond etcd's 1.5 MiB request limit.
    let huge = "x".repeat(4_100_000);
    let (status, error) = body(
        http.put(gw.url("/v1/kv/big"))
            .json(&json!({ "value": huge }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{error}");
    assert_eq!(error["code"], "too_large");
    let large = "x".repeat(2_000_000);
    let (status, error) = body(
        http.put(gw.url("/v1/kv/big"))
            .json(&json!({ "value": large }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{error}");
    assert_eq!(error["code"], "too_large");

    // Txn: compare and both branches.
    let txn = json!({
        "compare": [{"key": "/app/a", "target": "value", "result": "=", "value": "v2"}],
        "success": [{"put": {"key": "/app/b", "value": "from-txn"}}, {"get": {"key": "/app/", "prefix": true}}],
        "failure": [{"get": {"key": "/app/a"}}]
    });
    let (status, result) = body(http.post(gw.url("/v1/txn")).json(&txn).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["succeeded"], true);
    let listed = result["responses"][1]["get"]["kvs"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{result}");
    let (_, result) = body(http.post(gw.url("/v1/txn")).json(&txn).send().await.unwrap()).await;
    assert_eq!(result["succeeded"], true, "the compare still holds");
    let failing = json!({
        "compare": [{"key": "/app/a", "target": "mod_revision", "result": "<", "value": 1}],
        "failure": [{"get": {"key": "/app/a"}}]
    });
    let (_, result) = body(http.post(gw.url("/v1/txn")).json(&failing).send().await.unwrap()).await;
    assert_eq!(result["succeeded"], false);
    assert_eq!(result["responses"][0]["get"]["kvs"][0]["value"], "v2");

    // Delete with If-Match, then a prefix delete.
    let (status, error) = body(
        http.delete(gw.url("/v1/kv/%2Fapp%2Fa"))
            .header("If-Match", "1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{error}");
    let (status, deleted) = body(
        http.delete(gw.url("/v1/kv/%2Fapp%2F?prefix=true&prev_kv=true"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["deleted"], 3, "{deleted}");
    assert_eq!(deleted["prev_kvs"].as_array().unwrap().len(), 3);

    // Compaction: a read below it is 410 compacted.
    let (status, compacted) = body(
        http.post(gw.url("/v1/compact"))
            .json(&json!({"revision": revision + 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{compacted}");
    let (status, error) = body(
        http.get(gw.url(&format!("/v1/kv/big?revision={revision}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::GONE, "{error}");
    assert_eq!(error["code"], "compacted");

    // Unknown routes and methods answer JSON too.
    let (status, error) = body(http.get(gw.url("/v1/nope")).send().await.unwrap()).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("route_not_found"))
    );
    let (status, _) = body(http.post(gw.url("/v1/kv/x")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // Metrics count what happened.
    let metrics = http
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"conclave_gateway_http_requests_total{method="PUT",route="/v1/kv/{*key}",status="412"}"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("conclave_gateway_http_request_duration_seconds_bucket"));
    assert!(metrics.contains(r#"conclave_gateway_upstream_errors_total{kind="compacted"}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_reads_every_page_at_the_first_pages_revision() {
    let cluster = cluster(1).await;
    let gw = Gateway::start(&cluster.client_endpoints(), &[]).await;
    let http = http();
    // 250 keys in one txn-free burst of puts through the gateway.
    let puts = (0..250).map(|i| {
        let http = http.clone();
        let url = gw.url(&format!("/v1/kv/%2Flist%2Fk{i:03}"));
        async move {
            let response = http
                .put(url)
                .json(&json!({"value": format!("v{i}")}))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        }
    });
    futures::future::join_all(puts).await;

    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    let mut listing_revision = None;
    loop {
        let mut url = gw.url("/v1/kv?prefix=/list/&limit=100");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&after={cursor}"));
        }
        let (status, page) = body(http.get(url).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        let revision = page["revision"].as_i64().unwrap();
        assert_eq!(
            *listing_revision.get_or_insert(revision),
            revision,
            "every page at one revision"
        );
        let kvs = page["kvs"].as_array().unwrap();
        assert!(kvs.len() <= 100);
        keys.extend(kvs.iter().map(|kv| kv["key"].as_str().unwrap().to_string()));
        if pages == 1 {
            // Changes after the first page must not show in later pages.
            http.delete(gw.url("/v1/kv/%2Flist%2Fk200")).send().await.unwrap();
            http.put(gw.url("/v1/kv/%2Flist%2Fk999"))
                .json(&json!({"value": "late"}))
                .send()
                .await
                .unwrap();
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..250).map(|i| format!("/list/k{i:03}")).collect();
    assert_eq!(
        keys, expected,
        "the snapshot of the first page, in order, once each"
    );

    let (status, error) = body(
        http.get(gw.url("/v1/kv?prefix=/list/&limit=1001"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_argument"))
    );
    let (status, _) = body(
        http.get(gw.url("/v1/kv?prefix=/list/&after=garbage"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A cursor of another prefix is refused.
    let (_, page) = body(
        http.get(gw.url("/v1/kv?prefix=/list/&limit=1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let next = page["next"].as_str().unwrap();
    let (status, _) = body(
        http.get(gw.url(&format!("/v1/kv?prefix=/other/&after={next}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_elections_and_locks_carry_increasing_epochs() {
    let cluster = cluster(1).await;
    let gw = Gateway::start(&cluster.client_endpoints(), &[]).await;
    let http = http();
    let grant = |ttl: i64| {
        let http = http.clone();
        let url = gw.url("/v1/leases");
        async move {
            let (status, lease) =
                body(http.post(url).json(&json!({ "ttl": ttl })).send().await.unwrap()).await;
            assert_eq!(status, StatusCode::CREATED, "{lease}");
            lease["id"].as_str().unwrap().to_string()
        }
    };

    // Leases: grant, attach a key, keep alive, inspect, revoke.
    let lease = grant(30).await;
    http.put(gw.url("/v1/kv/leased"))
        .json(&json!({"value": "x", "lease": lease}))
        .send()
        .await
        .unwrap();
    let (status, renewed) = body(
        http.post(gw.url(&format!("/v1/leases/{lease}/keepalive")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["ttl"], 30);
    let (status, info) = body(
        http.get(gw.url(&format!("/v1/leases/{lease}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["granted_ttl"], 30);
    assert_eq!(info["keys"], json!(["leased"]));
    let (_, kv) = body(http.get(gw.url("/v1/kv/leased")).send().await.unwrap()).await;
    assert_eq!(kv["lease"], lease.as_str());
    let (_, list) = body(http.get(gw.url("/v1/leases")).send().await.unwrap()).await;
    assert!(list["leases"].as_array().unwrap().contains(&json!(lease)));
    let (status, _) = body(
        http.delete(gw.url(&format!("/v1/leases/{lease}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = body(http.get(gw.url("/v1/kv/leased")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "revoking deletes attached keys");
    let (status, error) = body(
        http.post(gw.url(&format!("/v1/leases/{lease}/keepalive")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("lease_not_found"))
    );

    // Elections: A leads, B times out (409 not_elected), A resigns, B leads with a higher epoch.
    let a = grant(30).await;
    let b = grant(30).await;
    let mut observer = SseReader::new(
        http.get(gw.url("/v1/elections/jobs/observe"))
            .send()
            .await
            .unwrap(),
    );
    let first = observer
        .next_within(Duration::from_secs(5))
        .await
        .expect("current leader");
    assert_eq!(first.event, "leader");
    assert_eq!(first.json()["leader"], Value::Null);

    let campaign = |lease: String, value: &'static str, timeout_ms: u64| {
        let http = http.clone();
        let url = gw.url("/v1/elections/jobs/campaign");
        async move {
            body(
                http.post(url)
                    .json(&json!({"lease": lease, "value": value, "timeout_ms": timeout_ms}))
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    let (status, leader_a) = campaign(a.clone(), "a", 5000).await;
    assert_eq!(status, StatusCode::OK, "{leader_a}");
    let epoch_a = leader_a["epoch"].as_i64().unwrap();
    assert_eq!(leader_a["key"], format!("jobs/{:x}", a.parse::<i64>().unwrap()));
    let (status, error) = campaign(b.clone(), "b", 300).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_elected")),
        "{error}"
    );
    // A campaign whose HTTP client goes away is withdrawn too (not left queued, to lead
    // later without knowing it).
    let abandoned = http
        .post(gw.url("/v1/elections/jobs/campaign"))
        .json(&json!({"lease": b, "value": "b", "timeout_ms": 20000}))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(abandoned.is_err(), "the client gave up");
    conclave_testkit::wait_until(
        "the abandoned contender is withdrawn",
        Duration::from_secs(5),
        || {
            let http = http.clone();
            let url = gw.url(&format!("/v1/leases/{b}"));
            async move {
                let info: Value = http.get(url).send().await.ok()?.json().await.ok()?;
                info["keys"].as_array()?.is_empty().then_some(())
            }
        },
    )
    .await
    .unwrap();
    let (status, current) = body(
        http.get(gw.url("/v1/elections/jobs/leader"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (current["value"].as_str(), current["epoch"].as_i64()),
        (Some("a"), Some(epoch_a))
    );
    let seen = observer
        .next_within(Duration::from_secs(5))
        .await
        .expect("A elected");
    assert_eq!(seen.json()["leader"]["epoch"], epoch_a);

    // B waits; A resigns; B is elected while waiting.
    let waiting_b = tokio::spawn(campaign(b.clone(), "b", 10_000));
    let resign = json!({"key": leader_a["key"], "epoch": epoch_a});
    let (status, resigned) = body(
        http.post(gw.url("/v1/elections/jobs/resign"))
            .json(&resign)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resigned}");
    let (status, leader_b) = waiting_b.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{leader_b}");
    let epoch_b = leader_b["epoch"].as_i64().unwrap();
    assert!(epoch_b > epoch_a, "epochs increase: {epoch_a} then {epoch_b}");
    // Resigning an old leadership again is refused.
    let (status, error) = body(
        http.post(gw.url("/v1/elections/jobs/resign"))
            .json(&resign)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_leader"))
    );
    let mut observed = Vec::new();
    while let Some(event) = observer.next_within(Duration::from_secs(2)).await {
        observed.push(event.json()["leader"]["epoch"].clone());
        if observed.last() == Some(&json!(epoch_b)) {
            break;
        }
    }
    assert_eq!(
        observed.last(),
        Some(&json!(epoch_b)),
        "the observer saw B: {observed:?}"
    );

    // Locks: held, contended (409 locked), released, re-acquired with a higher epoch.
    let (status, held) = body(
        http.post(gw.url("/v1/locks/reindex"))
            .json(&json!({"lease": a}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{held}");
    let (status, error) = body(
        http.post(gw.url("/v1/locks/reindex"))
            .json(&json!({"lease": b, "timeout_ms": 300}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::CONFLICT, Some("locked"))
    );
    let unlock = gw.url(&format!(
        "/v1/locks/reindex?key={}&epoch={}",
        held["key"].as_str().unwrap(),
        held["epoch"]
    ));
    let (status, _) = body(http.delete(&unlock).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, again) = body(
        http.post(gw.url("/v1/locks/reindex"))
            .json(&json!({"lease": b, "timeout_ms": 2000}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert!(again["epoch"].as_i64() > held["epoch"].as_i64());
    let (status, _) = body(http.delete(&unlock).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT, "an old lock key is no longer held");

    // The cluster view (member status is asked at the client URLs a member publishes
    // shortly after it starts).
    let view = conclave_testkit::wait_until(
        "the cluster view lists a member status",
        Duration::from_secs(10),
        || {
            let http = http.clone();
            let url = gw.url("/v1/cluster");
            async move {
                let (status, view) = body(http.get(url).send().await.ok()?).await;
                (status == StatusCode::OK && view["members"][0]["status"][0].is_object()).then_some(view)
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(view["members"].as_array().unwrap().len(), 1);
    assert_eq!(view["members"][0]["is_leader"], true);
    assert_eq!(view["members"][0]["status"][0]["healthy"], true);
    assert!(view["raft_term"].as_u64().unwrap() >= 1);
    assert!(view["revision"].as_i64().unwrap() >= epoch_b);
}
