//! A group's settings: created with defaults or given values, listed, read, changed
//! field by field (never its partition count), deleted — and refused when out of range.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::common::{cluster, http, Gateway, SseReader};
use super::{assert_error, call};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_created_listed_read_changed_and_deleted_with_their_settings_checked() {
    let cluster = cluster(1).await;
    let gw = Gateway::start(&cluster.client_endpoints(), &[]).await;
    let http = http();
    let groups = gw.url("/v1/groups");

    let refused = call(
        &http,
        Method::POST,
        &groups,
        Some(json!({"name": "g1", "partitions": 0})),
    )
    .await;
    assert_error(
        "zero partitions",
        &refused,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    let refused = call(&http, Method::POST, &groups, Some(json!({"name": "no spaces"}))).await;
    assert_error(
        "a bad name",
        &refused,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    let refused = call(
        &http,
        Method::POST,
        &groups,
        Some(json!({"name": "g1", "session_ttl_seconds": 0})),
    )
    .await;
    assert_error(
        "a zero session TTL",
        &refused,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    let refused = call(&http, Method::POST, &groups, Some(json!({"partitions": 4}))).await;
    assert_error("no name", &refused, StatusCode::BAD_REQUEST, "invalid_argument");

    let settings = json!({
        "name": "g1", "partitions": 4, "replicas": 2, "epsilon": 0.5, "rebalance_delay_ms": 200,
        "session_ttl_seconds": 3, "handoff_timeout_ms": 1000, "max_moves_per_member": 2,
        "max_moves_per_group": 8, "zone_label": "rack"
    });
    let (status, created, _) = call(&http, Method::POST, &groups, Some(settings.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    for (field, value) in settings.as_object().unwrap() {
        assert_eq!(&created[field], value, "{field} of {created}");
    }
    assert!(created["create_revision"].as_i64().unwrap() > 0, "{created}");
    let again = call(&http, Method::POST, &groups, Some(settings.clone())).await;
    assert_error("a taken name", &again, StatusCode::CONFLICT, "already_exists");

    let (status, defaults, _) = call(&http, Method::POST, &groups, Some(json!({"name": "g2"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{defaults}");
    assert_eq!(
        (
            &defaults["partitions"],
            &defaults["replicas"],
            &defaults["epsilon"],
            &defaults["zone_label"]
        ),
        (&json!(16), &json!(3), &json!(0.25), &json!("zone")),
        "{defaults}"
    );

    let (status, list, _) = call(&http, Method::GET, &groups, None).await;
    assert_eq!(status, StatusCode::OK);
    let names: BTreeSet<&str> = list["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["g1", "g2"]), "{list}");
    let (status, read, _) = call(&http, Method::GET, &gw.url("/v1/groups/g1"), None).await;
    assert_eq!((status, &read), (StatusCode::OK, &created));
    let missing = call(&http, Method::GET, &gw.url("/v1/groups/nope"), None).await;
    assert_error("an unknown group", &missing, StatusCode::NOT_FOUND, "not_found");

    // PATCH changes the fields given, and only those.
    let g1 = gw.url("/v1/groups/g1");
    let (status, patched, _) = call(
        &http,
        Method::PATCH,
        &g1,
        Some(json!({"rebalance_delay_ms": 300})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["rebalance_delay_ms"], 300);
    assert_eq!(
        (&patched["replicas"], &patched["zone_label"]),
        (&json!(2), &json!("rack"))
    );
    let refused = call(&http, Method::PATCH, &g1, Some(json!({"partitions": 8}))).await;
    assert_error(
        "a partition count change",
        &refused,
        StatusCode::CONFLICT,
        "failed_precondition",
    );
    let refused = call(&http, Method::PATCH, &g1, Some(json!({"epsilon": 11.0}))).await;
    assert_error(
        "epsilon out of range",
        &refused,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    let refused = call(
        &http,
        Method::PATCH,
        &gw.url("/v1/groups/nope"),
        Some(json!({"replicas": 1})),
    )
    .await;
    assert_error(
        "patching an unknown group",
        &refused,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // A group nobody joined: no leaders anywhere.
    let (status, map, _) = call(&http, Method::GET, &gw.url("/v1/groups/g1/map"), None).await;
    assert_eq!(status, StatusCode::OK, "{map}");
    assert_eq!(map["partitions"].as_array().unwrap().len(), 4, "{map}");
    assert!(map["members"].as_array().unwrap().is_empty(), "{map}");
    let leader = call(
        &http,
        Method::GET,
        &gw.url("/v1/groups/g1/partitions/0/leader"),
        None,
    )
    .await;
    assert_error(
        "a partition without leader",
        &leader,
        StatusCode::SERVICE_UNAVAILABLE,
        "no_leader",
    );
    let leader = call(
        &http,
        Method::GET,
        &gw.url("/v1/groups/g1/partitions/4/leader"),
        None,
    )
    .await;
    assert_error(
        "a partition out of range",
        &leader,
        StatusCode::BAD_REQUEST,
        "invalid_argument",
    );
    let leader = call(
        &http,
        Method::GET,
        &gw.url("/v1/groups/nope/partitions/0/leader"),
        None,
    )
    .await;
    assert_error(
        "an unknown group's partition",
        &leader,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let (status, route, _) = call(&http, Method::GET, &gw.url("/v1/groups/g1/route?key=k"), None).await;
    assert_eq!(status, StatusCode::OK, "{route}");
    assert_eq!(route["leader"], Value::Null, "{route}");
    let history = call(&http, Method::GET, &gw.url("/v1/groups/g1/history?limit=0"), None).await;
    assert_error("limit 0", &history, StatusCode::BAD_REQUEST, "invalid_argument");
    let watch = call(&http, Method::GET, &gw.url("/v1/groups/nope/watch"), None).await;
    assert_error(
        "watching an unknown group",
        &watch,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Deleting a group ends its watchers' streams with an error.
    let mut watcher = SseReader::new(http.get(gw.url("/v1/groups/g2/watch")).send().await.unwrap());
    let snapshot = watcher
        .next_within(Duration::from_secs(10))
        .await
        .expect("a snapshot");
    assert_eq!(
        (snapshot.event.as_str(), snapshot.id.as_deref()),
        ("snapshot", Some("0"))
    );
    let (status, deleted, _) = call(&http, Method::DELETE, &gw.url("/v1/groups/g2"), None).await;
    assert_eq!((status, &deleted), (StatusCode::OK, &json!({"deleted": true})));
    let ended = watcher
        .next_within(Duration::from_secs(10))
        .await
        .expect("an error event");
    assert_eq!(ended.event, "error", "{ended:?}");
    assert_eq!(ended.json()["code"], "not_found", "{ended:?}");
    assert_eq!(
        watcher.next_within(Duration::from_secs(5)).await,
        None,
        "the stream ends"
    );
    let gone = call(&http, Method::GET, &gw.url("/v1/groups/g2"), None).await;
    assert_error("a deleted group", &gone, StatusCode::NOT_FOUND, "not_found");
    let gone = call(&http, Method::DELETE, &gw.url("/v1/groups/g2"), None).await;
    assert_error("deleting it again", &gone, StatusCode::NOT_FOUND, "not_found");
}
