//! A rolling upgrade from the previous build: a cluster of the previous build's members is
//! moved to this build one member at a time while it keeps serving. In the mixed cluster
//! old and new members exchange every RPC (votes, appends, leadership transfers on
//! SIGTERM, forwarded writes, snapshots for the member that was down past a purge), so
//! each reads what the other writes. At the end one member goes back to the previous
//! build, which then reads this build's data dir and snapshots.
//!
//! Needs the previous build's binary, so it is opt-in:
//! `CONCLAVE_PREVIOUS_BIN=/path/to/old/conclave cargo test --release -p conclave-server
//! --test rolling_upgrade -- --ignored`.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use conclave_testkit::{wait_until_ok, Cluster, ClusterOptions};
use etcd_client::{GetOptions, LeaseTimeToLiveOptions, PutOptions};

/// Puts `count` keys `<prefix>/<n>` through member `via`, recording them in `written`.
async fn write_batch(
    cluster: &Cluster,
    via: usize,
    prefix: &str,
    count: usize,
    written: &mut BTreeMap<String, String>,
) {
    let mut kv = client_of(cluster, via).await;
    for n in 0..count {
        let key = format!("{prefix}/{n:03}");
        let value = format!("{prefix}-{n}-via-n{via}");
        let put = wait_until_ok("a put to succeed", Duration::from_secs(20), || {
            let mut kv = kv.clone();
            let (key, value) = (key.clone(), value.clone());
            async move { kv.put(key, value, None).await }
        })
        .await;
        put.unwrap_or_else(|e| panic!("put {key} via n{via}: {e}\n{}", cluster.log_dump()));
        written.insert(key, value);
    }
    kv.status().await.expect("status");
}

/// Waits until member `index` serves exactly `written` from its own state machine.
async fn serves_locally(cluster: &Cluster, index: usize, written: &BTreeMap<String, String>) {
    let mut kv = client_of(cluster, index).await;
    let seen = wait_until_ok(
        &format!("n{index} to serve every written key locally"),
        Duration::from_secs(30),
        || {
            let mut kv = kv.clone();
            async move {
                let all = kv
                    .get("", Some(GetOptions::new().with_from_key().with_serializable()))
                    .await
                    .map_err(|e| e.to_string())?;
                let seen: BTreeMap<String, String> = all
                    .kvs()
                    .iter()
                    .map(|kv| {
                        (
                            String::from_utf8_lossy(kv.key()).into_owned(),
                            String::from_utf8_lossy(kv.value()).into_owned(),
                        )
                    })
                    .collect();
                if seen == *written {
                    Ok(seen)
                } else {
                    Err(format!("{} of {} keys", seen.len(), written.len()))
                }
            }
        },
    )
    .await;
    seen.unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    kv.status().await.expect("status");
}

fn snapshots_installed(cluster: &Cluster, index: usize) -> usize {
    let log = std::fs::read_to_string(cluster.node(index).log_path()).unwrap_or_default();
    log.matches("snapshot installed").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs CONCLAVE_PREVIOUS_BIN, the conclave binary of the previous build"]
async fn a_cluster_of_the_previous_build_upgrades_one_member_at_a_time() {
    let previous = PathBuf::from(
        std::env::var_os("CONCLAVE_PREVIOUS_BIN")
            .expect("CONCLAVE_PREVIOUS_BIN must name the previous build's conclave binary"),
    );
    let options = ClusterOptions {
        size: 3,
        // Snapshots every 20 entries, keeping 5 behind them; openraft purges in batches of
        // 256 (purged index + 256 <= snapshot index - 5), so a member down for 600 writes
        // must be sent a snapshot.
        snapshot_count: Some(20),
        heartbeat_ms: Some(50),
        election_timeout_ms: Some(400),
        extra_args: vec![
            "--snapshot-catchup-entries".into(),
            "5".into(),
            "--request-timeout".into(),
            "3000".into(),
        ],
    };
    let cluster = Cluster::start(&previous, options).expect("start the previous build's cluster");
    let mut written = BTreeMap::new();
    write_batch(&cluster, 1, "old", 30, &mut written).await;

    let mut kv = client_of(&cluster, 2).await;
    let lease = kv.lease_grant(3600, None).await.expect("lease grant").id();
    kv.put(
        "leased",
        "by the old cluster",
        Some(PutOptions::new().with_lease(lease)),
    )
    .await
    .expect("put with lease");
    written.insert("leased".into(), "by the old cluster".into());

    for upgraded in 1..=3 {
        // SIGTERM: a leader hands leadership over first (TransferLeader across builds).
        let exit = cluster.terminate(upgraded).expect("stop with SIGTERM");
        assert!(exit.success(), "n{upgraded} exited with {exit:?}");
        let other = upgraded % 3 + 1;
        write_batch(
            &cluster,
            other,
            &format!("while-n{upgraded}-down"),
            600,
            &mut written,
        )
        .await;

        let installed = snapshots_installed(&cluster, upgraded);
        cluster
            .restart_with_binary(upgraded, bin())
            .expect("start this build on the old data dir");
        for index in 1..=3 {
            serves_locally(&cluster, index, &written).await;
        }
        assert!(
            snapshots_installed(&cluster, upgraded) > installed,
            "n{upgraded} caught up without a snapshot; the test meant to send it one"
        );
        // Through the upgraded member: forwarded to the leader if it is a follower.
        write_batch(
            &cluster,
            upgraded,
            &format!("via-upgraded-n{upgraded}"),
            5,
            &mut written,
        )
        .await;
        for index in 1..=3 {
            serves_locally(&cluster, index, &written).await;
        }
    }

    // And back: the previous build reads this build's data dir and, from a leader of this
    // build, its snapshot stream.
    cluster.terminate(1).expect("stop with SIGTERM");
    write_batch(&cluster, 2, "while-n1-downgraded", 600, &mut written).await;
    let installed = snapshots_installed(&cluster, 1);
    cluster
        .restart_with_binary(1, &previous)
        .expect("start the previous build on this build's data dir");
    for index in 1..=3 {
        serves_locally(&cluster, index, &written).await;
    }
    assert!(
        snapshots_installed(&cluster, 1) > installed,
        "n1 was meant to get a snapshot"
    );

    let mut kv = client_of(&cluster, 3).await;
    let ttl = kv
        .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("lease time to live");
    assert!(ttl.ttl() > 0, "lease {lease:x} expired during the upgrade");
    assert_eq!(ttl.keys(), [b"leased".to_vec()]);
}
