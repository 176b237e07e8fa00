//! Rendering partition groups: their settings, members, map, routes, history and map
//! events, as JSON (stable snake_case names, those of `partition.proto` where there is
//! one), simple text lines and tables.

use std::collections::BTreeMap;
use std::time::Duration;

use conclave_client::group::{
    GroupInfo, GroupMap, MemberId, MemberInfo, MemberState, PartitionInfo, ReplicaStage, Route,
};
use serde_json::{json, Value};

use super::table;

mod changes;

pub use changes::{event_json, event_lines, history_json, history_line, history_table};

/// What no leader (or no value) is shown as in text.
const NONE: &str = "(none)";

/// A duration in the CLI's own syntax (`5s`, `200ms`, `1.5s` as `1500ms`).
pub fn duration_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{d:?}")
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A group's settings as JSON.
pub fn group_json(g: &GroupInfo) -> Value {
    json!({
        "name": g.name,
        "partitions": g.partitions,
        "replicas": g.replicas,
        "epsilon": g.epsilon,
        "rebalance_delay_ms": millis(g.rebalance_delay),
        "session_ttl_seconds": g.session_ttl.as_secs(),
        "handoff_timeout_ms": millis(g.handoff_timeout),
        "max_moves_per_member": g.max_moves_per_member,
        "max_moves_per_group": g.max_moves_per_group,
        "zone_label": g.zone_label,
        "create_revision": g.create_revision,
    })
}

/// A group's settings as `name: value` lines.
pub fn group_lines(g: &GroupInfo) -> Vec<String> {
    vec![
        format!("name: {}", g.name),
        format!("partitions: {}", g.partitions),
        format!("replicas: {}", g.replicas),
        format!("epsilon: {}", g.epsilon),
        format!("rebalance delay: {}", duration_text(g.rebalance_delay)),
        format!("session TTL: {}", duration_text(g.session_ttl)),
        format!("handoff timeout: {}", duration_text(g.handoff_timeout)),
        format!("max moves per member: {}", g.max_moves_per_member),
        format!("max moves per group: {}", g.max_moves_per_group),
        format!("zone label: {}", g.zone_label),
        format!("create revision: {}", g.create_revision),
    ]
}

/// Groups as a table, one row each.
pub fn groups_table(groups: &[GroupInfo]) -> String {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.name.clone(),
                g.partitions.to_string(),
                g.replicas.to_string(),
                g.epsilon.to_string(),
                duration_text(g.rebalance_delay),
                duration_text(g.session_ttl),
                duration_text(g.handoff_timeout),
                format!("{}/{}", g.max_moves_per_member, g.max_moves_per_group),
                g.zone_label.clone(),
                g.create_revision.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "PARTITIONS",
            "REPLICAS",
            "EPSILON",
            "REBALANCE DELAY",
            "SESSION TTL",
            "HANDOFF TIMEOUT",
            "MAX MOVES (MEMBER/GROUP)",
            "ZONE LABEL",
            "CREATE REVISION",
        ],
        &rows,
    )
}

/// What each member holds in `map`: replicas (any stage) and leaderships. Members that
/// hold nothing are absent.
pub fn holdings(map: &GroupMap) -> BTreeMap<MemberId, (u32, u32)> {
    let mut held: BTreeMap<MemberId, (u32, u32)> = BTreeMap::new();
    for partition in &map.partitions {
        for member in partition.members() {
            held.entry(member.clone()).or_default().0 += 1;
        }
        if let Some(leader) = &partition.leader {
            held.entry(leader.clone()).or_default().1 += 1;
        }
    }
    held
}

fn state_name(state: MemberState) -> &'static str {
    match state {
        MemberState::Active => "active",
        MemberState::Draining => "draining",
        MemberState::Leaving => "leaving",
    }
}

/// A member's registration as JSON, with what it holds when known.
pub fn member_json(m: &MemberInfo, holding: Option<(u32, u32)>) -> Value {
    let mut value = json!({
        "id": m.id.0,
        "state": state_name(m.state),
        "weight": m.weight,
        "labels": m.labels,
        "advertise_address": m.advertise_address,
        "http_endpoint": m.http_endpoint,
        "grpc_endpoint": m.grpc_endpoint,
        "metadata": m.metadata,
        "lease": m.lease,
        "create_revision": m.create_revision,
    });
    if let (Some((replicas, leaderships)), Some(map)) = (holding, value.as_object_mut()) {
        map.insert("replicas".into(), json!(replicas));
        map.insert("leaderships".into(), json!(leaderships));
    }
    value
}

fn labels_text(m: &MemberInfo) -> String {
    m.labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A member's published endpoints, those that are set, labelled.
pub fn endpoints_text(m: &MemberInfo) -> String {
    [
        ("advertise", &m.advertise_address),
        ("http", &m.http_endpoint),
        ("grpc", &m.grpc_endpoint),
    ]
    .iter()
    .filter(|(_, value)| !value.is_empty())
    .map(|(name, value)| format!("{name} {value}"))
    .collect::<Vec<_>>()
    .join(", ")
}

/// A member on one line: id, state, weight, what it holds, labels and endpoints.
pub fn member_line(m: &MemberInfo, holding: (u32, u32)) -> String {
    let mut line = format!(
        "{}, {}, weight {}, replicas {}, leaderships {}",
        m.id,
        state_name(m.state),
        m.weight,
        holding.0,
        holding.1
    );
    if !m.labels.is_empty() {
        line.push_str(&format!(", labels {}", labels_text(m)));
    }
    let endpoints = endpoints_text(m);
    if !endpoints.is_empty() {
        line.push_str(&format!(", {endpoints}"));
    }
    line
}

/// The members of `map` as a table.
pub fn members_table(map: &GroupMap) -> String {
    let held = holdings(map);
    let rows: Vec<Vec<String>> = map
        .members
        .values()
        .map(|m| {
            let (replicas, leaderships) = held.get(&m.id).copied().unwrap_or_default();
            vec![
                m.id.to_string(),
                state_name(m.state).into(),
                m.weight.to_string(),
                labels_text(m),
                replicas.to_string(),
                leaderships.to_string(),
                m.advertise_address.clone(),
                m.http_endpoint.clone(),
                m.grpc_endpoint.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STATE",
            "WEIGHT",
            "LABELS",
            "REPLICAS",
            "LEADERSHIPS",
            "ADVERTISE",
            "HTTP",
            "GRPC",
        ],
        &rows,
    )
}

/// A replica with its stage unless ready: `m4(syncing replaces m1)`, `m1(releasing)`.
fn replica_text(member: &MemberId, stage: &ReplicaStage) -> String {
    match stage {
        ReplicaStage::Ready => member.to_string(),
        ReplicaStage::Syncing { replaces: Some(old) } => format!("{member}(syncing replaces {old})"),
        ReplicaStage::Syncing { replaces: None } => format!("{member}(syncing)"),
        ReplicaStage::Releasing => format!("{member}(releasing)"),
    }
}

fn replicas_text(p: &PartitionInfo) -> String {
    if p.replicas.is_empty() {
        return NONE.into();
    }
    p.replicas
        .iter()
        .map(|r| replica_text(&r.member, &r.stage))
        .collect::<Vec<_>>()
        .join(" ")
}

fn leader_text(leader: Option<&MemberId>) -> String {
    leader.map_or_else(|| NONE.to_string(), MemberId::to_string)
}

/// A partition as JSON: each replica with its state (`ready`, `syncing` with what it
/// replaces, `releasing`); `leader` null when it has none.
pub fn partition_json(p: &PartitionInfo) -> Value {
    let replicas: Vec<Value> = p
        .replicas
        .iter()
        .map(|r| match &r.stage {
            ReplicaStage::Ready => json!({ "member": r.member.0, "state": "ready" }),
            ReplicaStage::Syncing { replaces } => json!({
                "member": r.member.0,
                "state": "syncing",
                "replaces": replaces.as_ref().map(|m| m.0.clone()),
            }),
            ReplicaStage::Releasing => json!({ "member": r.member.0, "state": "releasing" }),
        })
        .collect();
    json!({
        "id": p.id.0,
        "epoch": p.epoch.0,
        "leader": p.leader.as_ref().map(|m| m.0.clone()),
        "replicas": replicas,
    })
}

/// A partition on one line: id, epoch, leader, replicas (stages marked).
pub fn partition_line(p: &PartitionInfo) -> String {
    format!(
        "{}, {}, {}, {}",
        p.id,
        p.epoch.0,
        leader_text(p.leader.as_ref()),
        replicas_text(p)
    )
}

/// The first line of a map: its generation and revision.
pub fn map_heading(map: &GroupMap) -> String {
    format!("generation {}, revision {}", map.generation, map.revision)
}

/// A map as JSON: generation, revision, partitions, and the members with what each holds.
pub fn map_json(map: &GroupMap) -> Value {
    let held = holdings(map);
    json!({
        "group": map.group,
        "generation": map.generation,
        "revision": map.revision,
        "partitions": map.partitions.iter().map(partition_json).collect::<Vec<_>>(),
        "members": map
            .members
            .values()
            .map(|m| member_json(m, Some(held.get(&m.id).copied().unwrap_or_default())))
            .collect::<Vec<_>>(),
    })
}

/// A map's partitions as a table.
pub fn map_table(map: &GroupMap) -> String {
    let rows: Vec<Vec<String>> = map
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                p.epoch.0.to_string(),
                leader_text(p.leader.as_ref()),
                replicas_text(p),
            ]
        })
        .collect();
    table(&["PARTITION", "EPOCH", "LEADER", "REPLICAS"], &rows)
}

/// A route as JSON.
pub fn route_json(group: &str, route: &Route) -> Value {
    json!({
        "group": group,
        "partition": route.partition.0,
        "epoch": route.epoch.0,
        "leader": route.leader.as_ref().map(|m| m.id.0.clone()),
        "leader_member": route.leader.as_ref().map(|m| member_json(m, None)),
        "replicas": route.replicas.iter().map(|m| m.0.clone()).collect::<Vec<_>>(),
        "generation": route.generation,
    })
}

fn ids_text(ids: &[MemberId]) -> String {
    if ids.is_empty() {
        return NONE.into();
    }
    ids.iter().map(MemberId::to_string).collect::<Vec<_>>().join(" ")
}

/// A route as `name: value` lines.
pub fn route_lines(route: &Route) -> Vec<String> {
    let mut lines = vec![
        format!("partition: {}", route.partition),
        format!("epoch: {}", route.epoch.0),
        format!("leader: {}", leader_text(route.leader.as_ref().map(|m| &m.id))),
    ];
    if let Some(leader) = &route.leader {
        let endpoints = endpoints_text(leader);
        lines.push(format!(
            "leader endpoints: {}",
            if endpoints.is_empty() { NONE } else { &endpoints }
        ));
    }
    lines.push(format!("replicas: {}", ids_text(&route.replicas)));
    lines.push(format!("generation: {}", route.generation));
    lines
}

/// A route as a one-row table.
pub fn route_table(route: &Route) -> String {
    let row = vec![
        route.partition.to_string(),
        route.epoch.0.to_string(),
        leader_text(route.leader.as_ref().map(|m| &m.id)),
        route.leader.as_ref().map(endpoints_text).unwrap_or_default(),
        ids_text(&route.replicas),
        route.generation.to_string(),
    ];
    table(
        &[
            "PARTITION",
            "EPOCH",
            "LEADER",
            "LEADER ENDPOINTS",
            "REPLICAS",
            "GENERATION",
        ],
        &[row],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use conclave_client::group::{PartitionId, ReplicaInfo};
    use conclave_client::Epoch;

    pub(super) fn member(id: &str) -> MemberInfo {
        MemberInfo {
            id: MemberId::from(id),
            labels: [("zone".to_string(), "eu-1".to_string())].into(),
            weight: 1,
            state: MemberState::Active,
            advertise_address: String::new(),
            http_endpoint: format!("http://{id}:8080"),
            grpc_endpoint: String::new(),
            metadata: BTreeMap::new(),
            lease: 0x10,
            create_revision: 3,
        }
    }

    pub(super) fn moving() -> PartitionInfo {
        PartitionInfo {
            id: PartitionId(2),
            replicas: vec![
                ReplicaInfo {
                    member: MemberId::from("m1"),
                    stage: ReplicaStage::Ready,
                },
                ReplicaInfo {
                    member: MemberId::from("m2"),
                    stage: ReplicaStage::Syncing {
                        replaces: Some(MemberId::from("m1")),
                    },
                },
            ],
            leader: Some(MemberId::from("m1")),
            epoch: Epoch(45),
        }
    }

    pub(super) fn map() -> GroupMap {
        GroupMap {
            group: "g".into(),
            generation: 7,
            revision: 90,
            partitions: vec![
                moving(),
                PartitionInfo {
                    id: PartitionId(3),
                    ..PartitionInfo::default()
                },
            ],
            members: [("m1", member("m1")), ("m2", member("m2"))]
                .into_iter()
                .map(|(id, m)| (MemberId::from(id), m))
                .collect(),
        }
    }

    #[test]
    fn a_move_in_flight_is_marked_on_its_replicas() {
        assert_eq!(partition_line(&moving()), "2, 45, m1, m1 m2(syncing replaces m1)");
        assert_eq!(
            partition_json(&moving()),
            json!({"id": 2, "epoch": 45, "leader": "m1", "replicas": [
                {"member": "m1", "state": "ready"},
                {"member": "m2", "state": "syncing", "replaces": "m1"},
            ]})
        );
        let idle = PartitionInfo::default();
        assert_eq!(partition_line(&idle), "0, 0, (none), (none)");
        assert_eq!(partition_json(&idle)["leader"], Value::Null);
    }

    #[test]
    fn members_are_shown_with_what_they_hold() {
        let map = map();
        let held = holdings(&map);
        assert_eq!(held[&MemberId::from("m1")], (1, 1));
        assert_eq!(held[&MemberId::from("m2")], (1, 0));
        assert_eq!(
            member_line(&map.members[&MemberId::from("m2")], held[&MemberId::from("m2")]),
            "m2, active, weight 1, replicas 1, leaderships 0, labels zone=eu-1, http http://m2:8080"
        );
        let json = map_json(&map);
        assert_eq!(json["generation"], 7);
        assert_eq!(json["members"][0]["id"], "m1");
        assert_eq!(json["members"][0]["leaderships"], 1);
        assert_eq!(json["members"][1]["replicas"], 1);
    }

    #[test]
    fn durations_print_in_the_syntax_the_flags_take() {
        assert_eq!(duration_text(Duration::from_secs(5)), "5s");
        assert_eq!(duration_text(Duration::from_millis(200)), "200ms");
        assert_eq!(duration_text(Duration::from_millis(1500)), "1500ms");
        for text in ["5s", "200ms", "1500ms"] {
            let parsed = crate::args::parse_duration(text).unwrap();
            assert_eq!(duration_text(parsed), text);
        }
    }
}
