//! An HTTP member: registered under a lease it keeps alive, reports its syncing
//! partitions ready, then leads them — as the map, the route and `/partitions/{p}/leader`
//! say — until its session ends; a taken id, stale and misplaced reports, drain, a leave
//! that cannot hand over, and a new session of the same id.

use std::collections::BTreeMap;
use std::time::Duration;

use conclave_client::group::{GroupMap, PartitionInfo};
use conclave_testkit::wait_until;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::common::{cluster, http, Gateway};
use super::{assert_error, call, create_group, kept_lease, registration, settle};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_member_reports_ready_leads_every_partition_and_is_routed_to_until_its_lease_ends() {
    let cluster = cluster(1).await;
    let gw = Gateway::start(&cluster.client_endpoints(), &[]).await;
    let http = http();
    create_group(&http, &gw, "orders", 8).await;
    let (lease, keepalive) = kept_lease(&http, &gw, 2).await;
    let members = gw.url("/v1/groups/orders/members");
    let registration = registration("m1", &lease);
    let (status, member, _) = call(&http, Method::POST, &members, Some(registration.clone())).await;
    assert_eq!(status, StatusCode::OK, "{member}");
    assert_eq!(
        (&member["id"], &member["state"], &member["lease"]),
        (&json!("m1"), &json!("active"), &json!(lease))
    );

    // The only member gets every partition as syncing, reports each ready at the epoch
    // the map shows, and then holds and leads all of them.
    let map = settle(&http, &gw, "orders", "m1").await;
    let generation = map["generation"].as_u64().unwrap();
    assert_eq!(
        map["members"][0]["http_endpoint"], "http://10.0.0.1:8080",
        "{map}"
    );
    let epochs: Vec<i64> = map["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["epoch"].as_i64().unwrap())
        .collect();
    assert!(epochs.iter().all(|e| *e > 0), "{map}");
    for (p, epoch) in epochs.iter().enumerate() {
        let (status, leader, _) = call(
            &http,
            Method::GET,
            &gw.url(&format!("/v1/groups/orders/partitions/{p}/leader")),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{leader}");
        assert_eq!(
            leader,
            json!({"member": "m1", "epoch": epoch, "advertise_address": "10.0.0.1", "http_endpoint": "http://10.0.0.1:8080",
                   "grpc_endpoint": "10.0.0.1:9090", "generation": generation})
        );
    }

    // The route agrees with the map and with the documented hash (UTF-8 and base64 keys).
    let hash = GroupMap {
        group: "orders".into(),
        generation,
        revision: 0,
        partitions: vec![PartitionInfo::default(); 8],
        members: BTreeMap::new(),
    };
    for (query, key) in [
        ("key=order%2F42", b"order/42".to_vec()),
        ("key=AP8B&encoding=base64", vec![0, 0xff, 1]),
    ] {
        let (status, route, _) = call(
            &http,
            Method::GET,
            &gw.url(&format!("/v1/groups/orders/route?{query}")),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{route}");
        let partition = hash.partition_for(&key).0;
        assert_eq!(route["partition"], partition, "{route}");
        assert_eq!(
            (&route["leader"], &route["leader_member"]["http_endpoint"]),
            (&json!("m1"), &json!("http://10.0.0.1:8080"))
        );
        assert_eq!(route["epoch"], epochs[partition as usize], "{route}");
        assert_eq!(
            (&route["replicas"], &route["generation"]),
            (&json!(["m1"]), &json!(generation))
        );
    }

    // Reports at an old epoch are refused with the current one; a report for a stage
    // the member is not in is a precondition failure.
    let report = gw.url("/v1/groups/orders/partitions/0/report");
    let stale = call(
        &http,
        Method::POST,
        &report,
        Some(json!({"member_id": "m1", "kind": "ready", "epoch": epochs[0] - 1})),
    )
    .await;
    assert_error("a stale report", &stale, StatusCode::CONFLICT, "stale_epoch");
    assert_eq!(stale.1["current_epoch"], epochs[0], "{}", stale.1);
    let wrong = call(
        &http,
        Method::POST,
        &report,
        Some(json!({"member_id": "m1", "kind": "released", "epoch": epochs[0]})),
    )
    .await;
    assert_error(
        "releasing a ready replica",
        &wrong,
        StatusCode::CONFLICT,
        "failed_precondition",
    );
    let (status, again, _) = call(
        &http,
        Method::POST,
        &report,
        Some(json!({"member_id": "m1", "kind": "ready", "epoch": epochs[0]})),
    )
    .await;
    assert_eq!(
        (status, again),
        (StatusCode::OK, json!({"reported": true})),
        "a repeated report is fine"
    );

    // The id is taken while m1's session lives; the same session may register again.
    let (other_lease, other_keepalive) = kept_lease(&http, &gw, 2).await;
    let mut taken = registration.clone();
    taken["lease"] = json!(other_lease);
    let refused = call(&http, Method::POST, &members, Some(taken)).await;
    assert_error(
        "a taken member id",
        &refused,
        StatusCode::CONFLICT,
        "member_taken",
    );
    let (status, _, _) = call(&http, Method::POST, &members, Some(registration.clone())).await;
    assert_eq!(status, StatusCode::OK);
    let mut gone_lease = registration.clone();
    gone_lease["member_id"] = json!("m9");
    gone_lease["lease"] = json!("12345");
    let refused = call(&http, Method::POST, &members, Some(gone_lease)).await;
    assert_error(
        "an unknown lease",
        &refused,
        StatusCode::NOT_FOUND,
        "lease_not_found",
    );
    let nowhere = gw.url("/v1/groups/nope/members");
    let refused = call(&http, Method::POST, &nowhere, Some(registration.clone())).await;
    assert_error("an unknown group", &refused, StatusCode::NOT_FOUND, "not_found");

    // Draining the only member moves nothing (there is nowhere to go); a leave cannot
    // hand over either, so it times out and the member stays, leaving.
    let drain = gw.url("/v1/groups/orders/members/m1/drain");
    let (status, held, _) = call(&http, Method::POST, &drain, Some(json!({}))).await;
    assert_eq!(
        (status, held),
        (StatusCode::OK, json!({"replicas": 8, "leaderships": 8}))
    );
    let (status, _, _) = call(&http, Method::POST, &drain, Some(json!({"resume": true}))).await;
    assert_eq!(status, StatusCode::OK);
    let leave = call(
        &http,
        Method::DELETE,
        &gw.url("/v1/groups/orders/members/m1?timeout_ms=500"),
        None,
    )
    .await;
    assert_error(
        "a leave that cannot hand over",
        &leave,
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
    );
    let (_, map, _) = call(&http, Method::GET, &gw.url("/v1/groups/orders/map"), None).await;
    assert_eq!(map["members"][0]["state"], "leaving", "{map}");

    // The session ends: within its TTL and a few seconds no partition has a leader.
    keepalive.abort();
    let (status, _, _) = call(
        &http,
        Method::DELETE,
        &gw.url(&format!("/v1/leases/{lease}")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    wait_until(
        "every partition without a leader",
        Duration::from_secs(2 + 5),
        || {
            let http = http.clone();
            let gw = &gw;
            async move {
                for p in 0..8 {
                    let (status, _, _) = call(
                        &http,
                        Method::GET,
                        &gw.url(&format!("/v1/groups/orders/partitions/{p}/leader")),
                        None,
                    )
                    .await;
                    if status != StatusCode::SERVICE_UNAVAILABLE {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_text()));
    // A new session of the id registers once the old one's partitions are cleared
    // (until then: 503 busy, with Retry-After).
    let mut rejoin = registration.clone();
    rejoin["lease"] = json!(other_lease);
    wait_until(
        "m1 registers under a new session",
        Duration::from_secs(10),
        || {
            let (http, members, rejoin) = (http.clone(), members.clone(), rejoin.clone());
            async move {
                let answer = call(&http, Method::POST, &members, Some(rejoin)).await;
                if answer.0 != StatusCode::OK {
                    assert_error(
                        "registering while the old session is cleared",
                        &answer,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "busy",
                    );
                    assert!(answer.2.contains_key("retry-after"));
                    return None;
                }
                Some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log_text()));
    other_keepalive.abort();
}
