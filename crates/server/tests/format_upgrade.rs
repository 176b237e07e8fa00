//! A data dir written by an earlier build opens with this one and serves exactly what the
//! earlier build served, also after a restart: the on-disk half of a rolling upgrade.
//!
//! The fixture `tests/golden/datadir-v1.tar.gz` is a single-member cluster's data dir
//! written by the build before the format module (format v1: WAL with entries after the
//! last snapshot, a snapshot file, the sled state machine with history, a compaction and a
//! lease), made by `scripts/make-format-fixture.sh`, which also recorded what etcdctl read
//! back into `datadir-v1.expected.json`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use conclave_testkit::{client, unique_port, wait_until_ok, Node, NodeSpec};
use etcd_client::{Client, GetOptions, LeaseTimeToLiveOptions};
use serde::Deserialize;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/datadir-v1.tar.gz");
const EXPECTED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/datadir-v1.expected.json"
);

#[derive(Debug, Deserialize)]
struct Expected {
    member: Member,
    revision: i64,
    compact_revision: i64,
    kvs: Vec<Kv>,
    history: HistoryRead,
    lease: Lease,
}

#[derive(Debug, Deserialize)]
struct Member {
    name: String,
    initial_cluster_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Kv {
    key: String,
    value: String,
    create_revision: i64,
    mod_revision: i64,
    version: i64,
    lease: i64,
}

#[derive(Debug, Deserialize)]
struct HistoryRead {
    key: String,
    revision: i64,
    value: String,
}

#[derive(Debug, Deserialize)]
struct Lease {
    id: i64,
    granted_ttl: i64,
    keys: Vec<String>,
}

fn expected() -> Expected {
    let text = std::fs::read_to_string(EXPECTED).expect("read the expected reads");
    serde_json::from_str(&text).expect("parse the expected reads")
}

/// Unpacks the fixture into `dir/data`.
fn unpack(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("create data dir");
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(FIXTURE)
        .arg("-C")
        .arg(&data)
        .status()
        .expect("run tar");
    assert!(status.success(), "tar -xzf {FIXTURE} failed: {status}");
    data
}

fn member_on(dir: &Path, data: PathBuf, expected: &Expected) -> Node {
    let ip = "127.0.0.1".parse().expect("ip");
    let client_port = unique_port(ip).expect("client port");
    let peer_port = unique_port(ip).expect("peer port");
    Node::new(
        bin(),
        NodeSpec {
            name: expected.member.name.clone(),
            client_url: format!("http://127.0.0.1:{client_port}"),
            peer_listen_addr: format!("127.0.0.1:{peer_port}").parse().expect("addr"),
            advertise_peer_url: format!("http://127.0.0.1:{peer_port}"),
            data_dir: data,
            log_path: dir.join("member.log"),
            extra_args: vec![
                "--initial-cluster-token".into(),
                expected.member.initial_cluster_token.clone(),
                "--heartbeat-interval".into(),
                "50".into(),
                "--election-timeout".into(),
                "400".into(),
            ],
        },
    )
}

/// Connects once the member serves linearizable reads (it has elected itself).
async fn serving(member: &Node) -> Client {
    let mut kv = client(member.client_url()).await.expect("connect");
    wait_until_ok(
        "the upgraded member to serve reads",
        Duration::from_secs(30),
        || {
            let mut kv = kv.clone();
            async move { kv.get("fixture/k00", None).await.map(drop) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", member.log_tail(40)));
    kv.status().await.expect("status");
    kv
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8 test data")
}

/// Checks every key, the revision, an old revision, the compaction and the lease.
async fn check_served(kv: &mut Client, expected: &Expected, extra: &[Kv], revision: i64) {
    let all = kv
        .get("", Some(GetOptions::new().with_from_key()))
        .await
        .expect("read every key");
    assert_eq!(all.header().map(|h| h.revision()), Some(revision), "revision");
    let served: Vec<Kv> = all
        .kvs()
        .iter()
        .map(|kv| Kv {
            key: text(kv.key()),
            value: text(kv.value()),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
        })
        .collect();
    let mut want = expected.kvs.clone();
    want.extend_from_slice(extra);
    want.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(served, want, "every key and value");

    let old = kv
        .get(
            expected.history.key.as_str(),
            Some(GetOptions::new().with_revision(expected.history.revision)),
        )
        .await
        .expect("read at an old revision");
    assert_eq!(
        old.kvs().first().map(|kv| text(kv.value())),
        Some(expected.history.value.clone()),
        "{} at revision {}",
        expected.history.key,
        expected.history.revision
    );
    assert_grpc_error(
        kv.get(
            expected.history.key.as_str(),
            Some(GetOptions::new().with_revision(expected.compact_revision - 1)),
        )
        .await,
        tonic::Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );

    let lease = kv
        .lease_time_to_live(expected.lease.id, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("lease time to live");
    assert_eq!(lease.id(), expected.lease.id);
    assert_eq!(lease.granted_ttl(), expected.lease.granted_ttl);
    assert!(lease.ttl() > 0, "lease {} expired: {lease:?}", expected.lease.id);
    let keys: Vec<String> = lease.keys().iter().map(|k| text(k)).collect();
    assert_eq!(keys, expected.lease.keys, "keys attached to the lease");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_the_previous_build_serves_its_data_after_upgrade_and_restart() {
    let expected = expected();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = unpack(dir.path());
    let member = member_on(dir.path(), data, &expected);

    member.start().expect("start");
    let mut kv = serving(&member).await;
    check_served(&mut kv, &expected, &[], expected.revision).await;

    let put = kv
        .put("fixture/after-upgrade", "written by this build", None)
        .await
        .expect("a new write");
    let revision = expected.revision + 1;
    assert_eq!(put.header().map(|h| h.revision()), Some(revision));
    let written = Kv {
        key: "fixture/after-upgrade".into(),
        value: "written by this build".into(),
        create_revision: revision,
        mod_revision: revision,
        version: 1,
        lease: 0,
    };
    check_served(&mut kv, &expected, std::slice::from_ref(&written), revision).await;

    let exit = member.terminate().expect("stop with SIGTERM");
    assert!(exit.success(), "exit {exit:?}\n{}", member.log_tail(40));
    member.start().expect("restart");
    let mut kv = serving(&member).await;
    check_served(&mut kv, &expected, std::slice::from_ref(&written), revision).await;
    member.terminate().expect("stop with SIGTERM");
}
