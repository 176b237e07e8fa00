//! Real `conclave` nodes and real `partitioned-kv` instances for the example's tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use conclave_client::group::{GroupMap, ReplicaStage, Router};
use conclave_client::{Client, ClientOptions};
use conclave_testkit::{wait_until, Cluster, ClusterOptions, Process};
use serde::Deserialize;

/// The group the tests use.
pub const GROUP: &str = "kv";
/// Its partitions and replicas.
pub const PARTITIONS: u32 = 16;
pub const REPLICAS: u32 = 2;
/// Members' session TTL (short: crashes are noticed within it).
pub const SESSION_TTL_SECS: u64 = 2;

pub fn start_cluster() -> Cluster {
    let bin = conclave_testkit::node_binary().expect("node binary");
    Cluster::start(
        &bin,
        ClusterOptions {
            size: 3,
            heartbeat_ms: Some(50),
            election_timeout_ms: Some(400),
            extra_args: vec!["--request-timeout".into(), "3000".into()],
            ..ClusterOptions::default()
        },
    )
    .expect("start cluster")
}

pub async fn client(cluster: &Cluster) -> Client {
    Client::connect_with(
        cluster.client_endpoints(),
        ClientOptions {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
            retry_budget: Duration::from_secs(20),
            keep_alive_interval: Duration::from_millis(500),
            keep_alive_timeout: Duration::from_millis(500),
            lease_safety_margin: Duration::from_millis(500),
            ..ClientOptions::default()
        },
    )
    .await
    .expect("client")
}

/// One running instance of the example.
pub struct Kv {
    pub id: String,
    pub http: String,
    pub log: PathBuf,
    pub process: Process,
}

impl Kv {
    /// Starts instance `id` against `cluster`, its files under `dir`; returns once it
    /// answers HTTP.
    pub async fn start(cluster: &Cluster, dir: &Path, id: &str) -> Kv {
        let port = conclave_testkit::unique_port(std::net::Ipv4Addr::LOCALHOST.into()).expect("port");
        let http = format!("http://127.0.0.1:{port}");
        let log = dir.join(format!("{id}.accepted.jsonl"));
        let args = vec![
            "--endpoints".to_string(),
            cluster.client_endpoints().join(","),
            "--group".into(),
            GROUP.into(),
            "--id".into(),
            id.into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--partitions".into(),
            PARTITIONS.to_string(),
            "--replicas".into(),
            REPLICAS.to_string(),
            "--session-ttl".into(),
            SESSION_TTL_SECS.to_string(),
            "--rebalance-delay-ms".into(),
            "300".into(),
            "--accept-log".into(),
            log.display().to_string(),
        ];
        let process = Process::new(
            id,
            env!("CARGO_BIN_EXE_partitioned-kv"),
            args,
            dir.join(format!("{id}.log")),
        );
        process.start().expect("start partitioned-kv");
        let http_client = reqwest::Client::new();
        let health = format!("{http}/healthz");
        wait_until("the instance to answer", Duration::from_secs(20), || {
            let request = http_client.get(&health).send();
            async move { request.await.ok().filter(|r| r.status().is_success()) }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", process.log_tail(40)));
        Kv {
            id: id.into(),
            http,
            log,
            process,
        }
    }
}

/// Whether every partition has a leader and exactly `REPLICAS` ready replicas (and
/// nothing in flight), all on members in `ids`.
pub fn settled(map: &GroupMap, ids: &[&str]) -> bool {
    map.partitions.len() == PARTITIONS as usize
        && map.partitions.iter().all(|p| {
            p.leader.is_some()
                && p.replicas.len() == REPLICAS as usize
                && p.replicas
                    .iter()
                    .all(|r| r.stage == ReplicaStage::Ready && ids.contains(&r.member.0.as_str()))
        })
}

/// Waits until the map is settled on exactly the members `ids`.
pub async fn wait_settled(router: &mut Router, ids: &[&str], timeout: Duration) -> GroupMap {
    let want: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    router
        .wait_for(timeout, |map| {
            let members: Vec<&str> = map.members.keys().map(|m| m.0.as_str()).collect();
            settled(map, ids)
                && want.iter().all(|w| members.contains(&w.as_str()))
                && members.len() == want.len()
        })
        .await
        .map(|m| (*m).clone())
        .unwrap_or_else(|e| panic!("the map did not settle on {ids:?}: {e}\n{:#?}", router.map()))
}

/// One line of an instance's accept log.
#[derive(Debug, Clone, Deserialize)]
pub struct Accepted {
    pub member: String,
    pub partition: u32,
    pub epoch: i64,
    pub seq: u64,
    pub key: String,
}

/// Every accepted write in the logs of `dir`.
pub fn accepted(dir: &Path) -> Vec<Accepted> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.to_string_lossy().ends_with(".accepted.jsonl") {
            let text = std::fs::read_to_string(&path).expect("log");
            all.extend(
                text.lines()
                    .filter(|l| !l.is_empty())
                    .map(|l| serde_json::from_str(l).expect("line")),
            );
        }
    }
    all
}

/// Which members accepted writes for each (partition, epoch).
pub fn acceptors(all: &[Accepted]) -> BTreeMap<(u32, i64), std::collections::BTreeSet<String>> {
    let mut by = BTreeMap::<(u32, i64), std::collections::BTreeSet<String>>::new();
    for a in all {
        by.entry((a.partition, a.epoch))
            .or_default()
            .insert(a.member.clone());
    }
    by
}
