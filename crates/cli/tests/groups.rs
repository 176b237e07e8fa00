//! `conclavectl group ...` against a real 3-member cluster, with real group members: the
//! test process itself joins through the SDK (hooks `()`, which report ready by
//! themselves), and the CLI — a separate process — must show what the members hold, route
//! as the map says, drain and remove them, list the history and follow the map.

mod common;

use std::time::{Duration, Instant};

use common::{exit_code, read_lines, signal, Ctl, WAIT};
use conclave_client::group::{JoinOptions, Membership};
use conclave_client::{Client, ClientOptions};
use conclave_testkit::{leader_index, node_binary, wait_until, Cluster, ClusterOptions};
use serde_json::Value;

/// Client options for the test's own members: failures noticed within about a second.
fn member_options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(2),
        retry_budget: Duration::from_secs(20),
        keep_alive_interval: Duration::from_millis(500),
        keep_alive_timeout: Duration::from_millis(500),
        lease_safety_margin: Duration::from_millis(500),
        ..ClientOptions::default()
    }
}

/// The member `id` of `show -w json`'s members: (state, replicas, leaderships).
fn holding(show: &Value, id: &str) -> Option<(String, u64, u64)> {
    let member = show["members"].as_array()?.iter().find(|m| m["id"] == id)?;
    Some((
        member["state"].as_str()?.to_string(),
        member["replicas"].as_u64()?,
        member["leaderships"].as_u64()?,
    ))
}

/// Whether every partition of `map -w json` is led by one of `leaders`, at an epoch, with
/// only ready replicas.
fn settled_on(map: &Value, leaders: &[&str]) -> bool {
    map["partitions"].as_array().is_some_and(|partitions| {
        partitions.iter().all(|p| {
            p["leader"].as_str().is_some_and(|l| leaders.contains(&l))
                && p["epoch"].as_i64().is_some_and(|e| e > 0)
                && p["replicas"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty() && r.iter().all(|r| r["state"] == "ready"))
        })
    })
}

async fn join(client: &Client, group: &str, id: &str, rack: &str) -> Membership {
    let options = JoinOptions::new(id)
        .label("rack", rack)
        .http_endpoint(format!("http://{id}.example:8080"));
    client
        .group(group)
        .join(options, ())
        .await
        .unwrap_or_else(|e| panic!("{id} joins {group}: {e}"))
}

/// Waits until `group map -w json` satisfies `condition`; returns that map.
async fn wait_for_map(ctl: &Ctl, group: &str, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
    let waited = wait_until(what, WAIT, || async {
        let map = ctl.json(&["group", "map", group, "-w", "json"]).await;
        condition(&map).then_some(map)
    })
    .await;
    match waited {
        Ok(value) => value,
        Err(e) => panic!("{e}: {}", ctl.ok(&["group", "map", group]).await),
    }
}

/// Waits until `group show -w json` satisfies `condition`; returns it.
async fn wait_for_show(ctl: &Ctl, group: &str, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
    let waited = wait_until(what, WAIT, || async {
        let show = ctl.json(&["group", "show", group, "-w", "json"]).await;
        condition(&show).then_some(show)
    })
    .await;
    match waited {
        Ok(value) => value,
        Err(e) => panic!("{e}: {}", ctl.ok(&["group", "show", group]).await),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conclavectl_manages_partition_groups_with_real_members() {
    let bin = node_binary().expect("the conclave binary (cargo build --release -p conclave-server)");
    let options = ClusterOptions {
        size: 3,
        heartbeat_ms: Some(50),
        election_timeout_ms: Some(400),
        extra_args: vec!["--request-timeout".into(), "3000".into()],
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(&bin, options).expect("start cluster");
    leader_index(&cluster, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    let ctl = Ctl {
        endpoints: cluster.client_endpoints().join(","),
    };
    let client = Client::connect_with(cluster.client_endpoints(), member_options())
        .await
        .expect("client");

    let started = Instant::now();
    settings_are_checked_listed_and_updated(&ctl).await;
    eprintln!("settings: {:?}", started.elapsed());
    let m1 = join(&client, "orders", "m1", "r1").await;
    let map = a_member_shows_in_the_map_and_routes_agree(&ctl, &client).await;
    eprintln!("map and routes: {:?}", started.elapsed());
    let m2 = watch_prints_the_next_change_and_drain_moves_everything(&ctl, &client, &map).await;
    eprintln!("watch and drain: {:?}", started.elapsed());
    a_resumed_member_leaves_gracefully(&ctl).await;
    m1.stop().await;
    history_lists_consecutive_generations_newest_first(&ctl).await;
    eprintln!("leave and history: {:?}", started.elapsed());
    let stalled = a_leave_of_a_member_that_stopped_acknowledging_times_out(&ctl, &client).await;
    eprintln!("leave timeout: {:?}", started.elapsed());
    deleting_ends_watches_and_the_group_is_gone(&ctl).await;
    drop(stalled);
    m2.stop().await;
    eprintln!("total: {:?}", started.elapsed());
}

async fn settings_are_checked_listed_and_updated(ctl: &Ctl) {
    let created = ctl
        .ok(&[
            "group",
            "create",
            "orders",
            "--partitions",
            "8",
            "--replicas",
            "1",
            "--rebalance-delay",
            "200ms",
            "--session-ttl",
            "3s",
            "--zone-label",
            "rack",
        ])
        .await;
    assert_eq!(created, "group orders created (partitions 8, replicas 1)\n");

    let duplicate = ctl.fails(&["group", "create", "orders"], 1).await;
    assert!(
        duplicate.contains("already exists") && duplicate.contains("group update orders"),
        "{duplicate}"
    );
    for (flag, value, says) in [
        ("--replicas", "9", "replicas must be between 1 and 7, not 9"),
        ("--partitions", "0", "partitions must be between 1 and 4096"),
        ("--epsilon", "11", "epsilon must be between 0 and 10"),
        ("--max-moves-per-member", "0", "move limits must be at least 1"),
        ("--session-ttl", "500ms", "whole number of seconds"),
    ] {
        let refused = ctl.fails(&["group", "create", "bad", flag, value], 1).await;
        assert!(refused.contains(says), "{flag} {value}: {refused}");
    }
    let bad_name = ctl.fails(&["group", "create", "no/slashes"], 1).await;
    assert!(bad_name.contains("is not valid"), "{bad_name}");

    // Unknown names: the not-found exit code, and where to look.
    for args in [
        &["group", "show", "nope"][..],
        &["group", "map", "nope"],
        &["group", "route", "nope", "k"],
        &["group", "history", "nope"],
        &["group", "delete", "nope"],
        &["group", "update", "nope", "--replicas", "2"],
    ] {
        let missing = ctl.fails(args, 5).await;
        assert!(
            missing.contains("\"nope\" not found") && missing.contains("group list"),
            "{args:?}: {missing}"
        );
    }
    let ghost = ctl.fails(&["group", "drain", "orders", "ghost"], 5).await;
    assert!(
        ghost.contains("\"ghost\" is not registered") && ghost.contains("group show orders"),
        "{ghost}"
    );

    let list = ctl.json(&["group", "list", "-w", "json"]).await;
    let groups = list["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 1, "only the group created: {list}");
    let orders = &groups[0];
    assert_eq!(orders["name"], "orders");
    assert_eq!(orders["partitions"], 8);
    assert_eq!(orders["replicas"], 1);
    assert_eq!(orders["rebalance_delay_ms"], 200);
    assert_eq!(orders["session_ttl_seconds"], 3);
    assert_eq!(orders["zone_label"], "rack");
    assert_eq!(orders["max_moves_per_member"], 4, "a default");
    assert_eq!(
        ctl.ok(&["group", "list"]).await,
        "orders, partitions 8, replicas 1\n"
    );

    let updated = ctl
        .json(&[
            "group",
            "update",
            "orders",
            "--max-moves-per-member",
            "8",
            "-w",
            "json",
        ])
        .await;
    assert_eq!(updated["group"]["max_moves_per_member"], 8);
    assert_eq!(updated["group"]["partitions"], 8, "unchanged");
    assert_eq!(updated["group"]["rebalance_delay_ms"], 200, "unchanged");
    let nothing = ctl.fails(&["group", "update", "orders"], 1).await;
    assert!(nothing.contains("nothing to change"), "{nothing}");
    // The partition count is not a flag of update: a usage error.
    ctl.fails(&["group", "update", "orders", "--partitions", "4"], 2)
        .await;

    let show = ctl.ok(&["group", "show", "orders"]).await;
    for line in [
        "name: orders",
        "rebalance delay: 200ms",
        "session TTL: 3s",
        "max moves per member: 8",
        "members: 0",
    ] {
        assert!(show.lines().any(|l| l == line), "{line:?} in {show}");
    }
}

async fn a_member_shows_in_the_map_and_routes_agree(ctl: &Ctl, client: &Client) -> Value {
    let map = wait_for_map(ctl, "orders", "m1 to lead every partition", |map| {
        settled_on(map, &["m1"])
    })
    .await;
    let partitions = map["partitions"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 8);
    for (i, p) in partitions.iter().enumerate() {
        assert_eq!(p["id"], i as u64);
        assert_eq!(
            p["replicas"],
            serde_json::json!([{"member": "m1", "state": "ready"}])
        );
    }
    assert!(map["generation"].as_u64().is_some_and(|g| g > 0), "{map}");

    let show = ctl.json(&["group", "show", "orders", "-w", "json"]).await;
    assert_eq!(holding(&show, "m1"), Some(("active".into(), 8, 8)), "{show}");
    let member = &show["members"][0];
    assert_eq!(member["labels"]["rack"], "r1");
    assert_eq!(member["http_endpoint"], "http://m1.example:8080");
    assert_eq!(member["weight"], 1);
    let text = ctl.ok(&["group", "show", "orders"]).await;
    assert!(
        text.contains(
            "m1, active, weight 1, replicas 8, leaderships 8, labels rack=r1, http http://m1.example:8080"
        ),
        "{text}"
    );
    let table = ctl.ok(&["group", "map", "orders", "-w", "table"]).await;
    assert!(
        table.contains("| PARTITION | EPOCH | LEADER | REPLICAS |"),
        "{table}"
    );
    assert_eq!(
        table.lines().filter(|l| l.contains("|     m1 |")).count(),
        8,
        "{table}"
    );

    // A route is the map's partition for the key (the documented hash), with its leader,
    // the leader's endpoints, the epoch and the replicas.
    let sdk_map = client.group("orders").map().await.expect("map");
    for key in ["order/1", "order/2", "customer/9", ""] {
        let route = ctl.json(&["group", "route", "orders", key, "-w", "json"]).await;
        let id = route["partition"].as_u64().expect("partition");
        assert_eq!(id, u64::from(sdk_map.partition_for(key.as_bytes()).0), "{key:?}");
        let partition = &partitions[id as usize];
        assert_eq!(route["leader"], partition["leader"], "{key:?}: {route}");
        assert_eq!(route["epoch"], partition["epoch"], "{key:?}: {route}");
        assert_eq!(route["replicas"], serde_json::json!(["m1"]));
        assert_eq!(route["leader_member"]["http_endpoint"], "http://m1.example:8080");
        assert_eq!(route["generation"], map["generation"]);
    }
    let text = ctl.ok(&["group", "route", "orders", "order/1"]).await;
    assert!(
        text.contains("leader: m1\nleader endpoints: http http://m1.example:8080\nreplicas: m1\n"),
        "{text}"
    );
    map
}

async fn watch_prints_the_next_change_and_drain_moves_everything(
    ctl: &Ctl,
    client: &Client,
    map: &Value,
) -> Membership {
    let generation = map["generation"].as_u64().expect("generation");
    let after = generation.to_string();
    let (mut watch, mut lines) = ctl.spawn(&["group", "watch", "orders", "--after", &after, "-w", "json"]);
    let m2 = join(client, "orders", "m2", "r2").await;
    // Membership events may come first; the next generation is the first change.
    let change = loop {
        let line = read_lines(&mut lines, 1).await.remove(0);
        let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_ne!(
            event["type"], "snapshot",
            "a watch after a generation starts with changes: {line}"
        );
        if event["type"] == "change" {
            break event;
        }
        assert_eq!(event["type"], "members", "{line}");
    };
    assert_eq!(change["generation"], generation + 1, "{change}");
    assert!(
        change["partitions"].as_array().is_some_and(|p| !p.is_empty()),
        "{change}"
    );

    let drained = ctl.ok(&["group", "drain", "orders", "m1"]).await;
    assert!(
        drained.starts_with("member m1 of group orders is draining"),
        "{drained}"
    );
    let show = wait_for_show(ctl, "orders", "m2 to take over everything from m1", |show| {
        holding(show, "m1") == Some(("draining".into(), 0, 0))
            && holding(show, "m2").is_some_and(|h| h.2 == 8)
    })
    .await;
    assert_eq!(holding(&show, "m2"), Some(("active".into(), 8, 8)), "{show}");
    wait_for_map(ctl, "orders", "m2 to lead every partition", |map| {
        settled_on(map, &["m2"])
    })
    .await;

    // Ctrl-C ends the watch, successfully, as `watch` does.
    signal(&watch, "INT").await;
    assert_eq!(exit_code(&mut watch).await, Some(0));
    m2
}

async fn a_resumed_member_leaves_gracefully(ctl: &Ctl) {
    let resumed = ctl.ok(&["group", "drain", "orders", "m1", "--resume"]).await;
    assert!(resumed.contains("takes partitions again"), "{resumed}");
    wait_for_show(ctl, "orders", "m1 to lead partitions again", |show| {
        holding(show, "m1").is_some_and(|(state, _, led)| state == "active" && led > 0)
    })
    .await;
    // m1's process (this test's membership) is running: it hands everything over.
    let left = ctl
        .ok(&["group", "leave", "orders", "m1", "--timeout", "30s"])
        .await;
    assert_eq!(left, "member m1 left group orders\n");
    let show = ctl.json(&["group", "show", "orders", "-w", "json"]).await;
    assert_eq!(holding(&show, "m1"), None, "deregistered: {show}");
    assert_eq!(holding(&show, "m2"), Some(("active".into(), 8, 8)), "{show}");
}

async fn history_lists_consecutive_generations_newest_first(ctl: &Ctl) {
    let current = ctl.json(&["group", "map", "orders", "-w", "json"]).await["generation"]
        .as_u64()
        .expect("generation");
    let history = ctl
        .json(&["group", "history", "orders", "--limit", "5", "-w", "json"])
        .await;
    let entries = history["entries"].as_array().expect("entries");
    assert_eq!(entries.len() as u64, current.min(5), "{history}");
    assert_eq!(entries[0]["generation"], current, "the newest first: {history}");
    for pair in entries.windows(2) {
        let (newer, older) = (&pair[0], &pair[1]);
        assert_eq!(
            newer["generation"].as_u64(),
            older["generation"].as_u64().map(|g| g + 1),
            "consecutive: {history}"
        );
        assert!(
            newer["revision"].as_i64() > older["revision"].as_i64(),
            "{history}"
        );
    }
    let text = ctl.ok(&["group", "history", "orders", "--limit", "3"]).await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with(&format!("{current}, ")), "{text}");
    assert!(
        lines[0].contains("Z, changed "),
        "a UTC time, then what changed: {text}"
    );
}

async fn a_leave_of_a_member_that_stopped_acknowledging_times_out(ctl: &Ctl, client: &Client) -> Membership {
    ctl.ok(&[
        "group",
        "create",
        "stalled",
        "--partitions",
        "4",
        "--replicas",
        "1",
        "--rebalance-delay",
        "200ms",
        "--session-ttl",
        "10s",
        "--handoff-timeout",
        "60s",
    ])
    .await;
    let m3 = join(client, "stalled", "m3", "r1").await;
    wait_for_map(ctl, "stalled", "m3 to lead every partition", |map| {
        settled_on(map, &["m3"])
    })
    .await;
    let m4 = join(client, "stalled", "m4", "r2").await;
    wait_for_show(ctl, "stalled", "m3 and m4 to share the partitions", |show| {
        holding(show, "m3").is_some_and(|h| h.2 > 0) && holding(show, "m4").is_some_and(|h| h.2 > 0)
    })
    .await;
    wait_for_map(ctl, "stalled", "the moves to m4 to finish", |map| {
        settled_on(map, &["m3", "m4"])
    })
    .await;

    // m3's process stops: nothing of it acknowledges any more, but its session lease has
    // most of its 10 s to live, so it stays registered holding its partitions.
    drop(m3);
    let started = Instant::now();
    let refused = ctl
        .fails(&["group", "leave", "stalled", "m3", "--timeout", "1s"], 6)
        .await;
    let took = started.elapsed();
    assert!(
        refused.contains("member m3 of group stalled did not hand everything over within 1s (it still holds"),
        "{refused}"
    );
    assert!(refused.contains("must be running"), "{refused}");
    assert!(
        took < Duration::from_secs(6),
        "answered after the leave timeout, not retried: {took:?}"
    );
    let show = ctl.json(&["group", "show", "stalled", "-w", "json"]).await;
    assert!(
        holding(&show, "m3").is_some_and(|(state, replicas, _)| state == "leaving" && replicas > 0),
        "still registered, leaving, holding: {show}"
    );
    m4
}

async fn deleting_ends_watches_and_the_group_is_gone(ctl: &Ctl) {
    let (mut watch, mut lines) = ctl.spawn(&["group", "watch", "stalled"]);
    let first = read_lines(&mut lines, 1).await.remove(0);
    assert!(first.starts_with("SNAPSHOT generation "), "{first}");
    assert_eq!(
        ctl.ok(&["group", "delete", "stalled"]).await,
        "group stalled deleted\n"
    );
    assert_eq!(
        exit_code(&mut watch).await,
        Some(5),
        "a deleted group ends the watch: not found"
    );

    let deleted = ctl.json(&["group", "delete", "orders", "-w", "json"]).await;
    assert_eq!(deleted, serde_json::json!({"group": "orders", "deleted": true}));
    ctl.fails(&["group", "show", "orders"], 5).await;
    ctl.fails(&["group", "delete", "orders"], 5).await;
    let list = ctl.json(&["group", "list", "-w", "json"]).await;
    assert_eq!(list, serde_json::json!({"groups": []}));
}

#[tokio::test]
async fn group_commands_are_in_the_shell_completions() {
    let ctl = Ctl {
        endpoints: "127.0.0.1:9".into(),
    };
    let script = ctl.ok(&["completion", "bash"]).await;
    for word in [
        "group",
        "drain",
        "history",
        "--rebalance-delay",
        "--after",
        "--resume",
    ] {
        assert!(script.contains(word), "{word} in the bash completion");
    }
}
