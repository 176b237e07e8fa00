//! Golden files of the group records (`crates/server/tests/golden/groups/v1/<kind>/<case>.json`):
//! each must decode to its sample and the sample must encode to it byte for byte, so a
//! change to a stored record fails here until a new version and its conversion exist.
//! Enums are walked exhaustively, so a new stage needs a golden case.

use std::collections::BTreeMap;

use conclave_testkit::{golden_variant as variant, Coverage, GoldenSet};

use super::records::*;

fn golden() -> GoldenSet {
    GoldenSet::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/groups/v1"))
}

fn json(case: &str) -> String {
    format!("{case}.json")
}

macro_rules! check {
    ($set:expr, $kind:literal, $case:literal, $ty:ty, $sample:expr) => {
        $set.check(
            $kind,
            &json($case),
            &$sample,
            |r: &$ty| Ok::<_, RecordError>(r.encode()),
            |bytes| <$ty>::decode($kind, bytes),
        )
    };
}

#[test]
fn every_group_record_matches_its_golden_files() {
    let mut set = golden();
    let mut cov = Coverage::default();

    let config = GroupConfig::from_settings(
        &conclave_controller::Settings::new(64, 3),
        DEFAULT_SESSION_TTL_SECONDS,
        DEFAULT_ZONE_LABEL,
    );
    check!(set, "config", "defaults_64x3", GroupConfig, config);

    check!(
        set,
        "map",
        "generation",
        MapHeader,
        MapHeader {
            v: VERSION,
            generation: 1234
        }
    );

    let stages = [
        StoredMemberState::Active,
        StoredMemberState::Draining,
        StoredMemberState::Leaving,
    ];
    for stage in stages {
        variant!(&mut cov, "StoredMemberState", stage, {
            StoredMemberState::Active => "Active",
            StoredMemberState::Draining => "Draining",
            StoredMemberState::Leaving => "Leaving",
        });
    }
    let member = MemberRecord {
        v: VERSION,
        labels: BTreeMap::from([("zone".to_string(), "eu-1".to_string())]),
        weight: 2,
        state: StoredMemberState::Draining,
        advertise_address: "10.0.0.7:7000".into(),
        http_endpoint: "http://10.0.0.7:7000".into(),
        grpc_endpoint: "http://10.0.0.7:7001".into(),
        metadata: BTreeMap::from([("version".to_string(), "1.4.2".to_string())]),
    };
    check!(set, "member", "full", MemberRecord, member);
    let bare = MemberRecord {
        v: VERSION,
        labels: BTreeMap::new(),
        weight: 1,
        state: StoredMemberState::Leaving,
        advertise_address: String::new(),
        http_endpoint: String::new(),
        grpc_endpoint: String::new(),
        metadata: BTreeMap::new(),
    };
    check!(set, "member", "bare", MemberRecord, bare);
    check!(
        set,
        "member",
        "active",
        MemberRecord,
        MemberRecord {
            state: StoredMemberState::Active,
            ..MemberRecord::decode("member", &member.encode()).expect("round trip")
        }
    );

    let replicas = vec![
        StoredReplica {
            member: "a".into(),
            state: StoredReplicaState::Ready,
            replaces: None,
            since_epoch: None,
        },
        StoredReplica {
            member: "b".into(),
            state: StoredReplicaState::Syncing,
            replaces: Some("c".into()),
            since_epoch: Some(77),
        },
        StoredReplica {
            member: "c".into(),
            state: StoredReplicaState::Releasing,
            replaces: None,
            since_epoch: None,
        },
    ];
    for replica in &replicas {
        variant!(&mut cov, "StoredReplicaState", replica.state, {
            StoredReplicaState::Ready => "Ready",
            StoredReplicaState::Syncing => "Syncing",
            StoredReplicaState::Releasing => "Releasing",
        });
    }
    check!(
        set,
        "partition",
        "moving",
        PartitionRecord,
        PartitionRecord {
            v: VERSION,
            replicas,
            last_epoch: 0,
        }
    );
    check!(
        set,
        "partition",
        "leaderless",
        PartitionRecord,
        PartitionRecord {
            v: VERSION,
            replicas: Vec::new(),
            last_epoch: 91,
        }
    );

    check!(
        set,
        "history",
        "entry",
        HistoryRecord,
        HistoryRecord {
            v: VERSION,
            generation: 12,
            changed: vec![0, 5, 17],
            new_leaders: vec![5],
            written_unix_ms: 1_796_000_000_000,
        }
    );
    check!(
        set,
        "controller",
        "claim",
        ControllerClaim,
        ControllerClaim {
            v: VERSION,
            member: "8e9e05c52164694d".into(),
            term: 7,
        }
    );

    cov.check(&["StoredMemberState", "StoredReplicaState"]);
    set.finish();
}
