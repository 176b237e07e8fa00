//! Maintenance.Snapshot output restores into a new cluster (`--restore-snapshot`): every
//! key, lease and revision carries over, members that join later get the data, and a
//! damaged file is refused.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use conclave_testkit::{leader_index, unique_port, wait_until_ok, Cluster, ClusterOptions};
use etcd_client::{GetOptions, PutOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saved_snapshot_restores_into_a_new_cluster_that_new_members_can_join() {
    let source = start_cluster(3);
    leader_index(&source, Duration::from_secs(20))
        .await
        .expect("leader");
    let mut client = client_of(&source, 1).await;
    for i in 0..300 {
        client
            .put(format!("r/{i:03}"), format!("v{i}"), None)
            .await
            .expect("put");
    }
    let lease = client.lease_grant(600, None).await.expect("grant").id();
    client
        .put("leased", "yes", Some(PutOptions::new().with_lease(lease)))
        .await
        .expect("put");
    let last_revision = client
        .get("r/000", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision();

    let mut stream = client.snapshot().await.expect("snapshot");
    let mut bytes = Vec::new();
    while let Some(piece) = stream.message().await.expect("piece") {
        bytes.extend_from_slice(piece.blob());
    }
    let files = tempfile::tempdir().expect("tempdir");
    let file = files.path().join("backup.snapshot");
    std::fs::write(&file, &bytes).expect("write");
    drop(source);

    // A damaged file is refused before anything starts.
    let damaged = file.with_extension("damaged");
    let mut broken = bytes.clone();
    broken[100] ^= 0xff;
    std::fs::write(&damaged, &broken).expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = |_| unique_port("127.0.0.1".parse().expect("ip")).expect("port");
    let out = Command::new(bin())
        .args(["--data-dir", dir.path().join("d").to_str().expect("utf8")])
        .args(["--listen-client-urls", &format!("http://127.0.0.1:{}", port(0))])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{}", port(1))])
        .args(["--restore-snapshot", damaged.to_str().expect("utf8")])
        .stdin(Stdio::null())
        .output()
        .expect("run conclave");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("SHA-256"), "{stderr}");

    // Restore every initial member of a new cluster from the file.
    let mut options = fast_options(3);
    options.extra_args.extend([
        "--restore-snapshot".to_string(),
        file.to_str().expect("utf8").to_string(),
    ]);
    let restored = Cluster::start(bin(), ClusterOptions { ..options }).expect("restored cluster");
    leader_index(&restored, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", restored.log_dump()));
    for i in 1..=3 {
        let mut c = client_of(&restored, i).await;
        let all = c
            .get("r/", Some(GetOptions::new().with_prefix()))
            .await
            .expect("range");
        assert_eq!(all.count(), 300, "member {i}");
        assert_eq!(all.kvs()[7].value(), b"v7");
        assert_eq!(
            get_value(&mut c, "leased").await.expect("get"),
            Some(b"yes".to_vec())
        );
    }
    let mut c = client_of(&restored, 2).await;
    let ttl = c.lease_time_to_live(lease, None).await.expect("ttl");
    assert_eq!(ttl.granted_ttl(), 600, "the lease came with the snapshot");
    let put = c.put("after-restore", "1", None).await.expect("put");
    assert!(
        put.header().expect("header").revision() > last_revision,
        "revisions continue"
    );

    // A member that joins later gets the restored data too.
    let joined = restored
        .add_node_joining(&[restored.node(1).client_url().to_string()])
        .expect("join");
    let url = restored.node(joined).client_url().to_string();
    let mut newcomer = wait_until_ok(
        "the joined member to serve the restored data",
        Duration::from_secs(30),
        || {
            let url = url.clone();
            async move {
                let mut c = conclave_testkit::client(&url).await.map_err(|e| e.to_string())?;
                let r = c
                    .get("r/", Some(GetOptions::new().with_prefix().with_count_only()))
                    .await
                    .map_err(|e| e.to_string())?;
                if r.count() == 300 {
                    Ok(c)
                } else {
                    Err(format!("{} keys", r.count()))
                }
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", restored.log_dump()));
    assert_eq!(
        get_value(&mut newcomer, "after-restore").await.expect("get"),
        Some(b"1".to_vec())
    );

    // Restarting a restored member with the same flags keeps its data (the restore only
    // applies to the first start).
    restored.kill(2).expect("kill");
    restored.restart(2).expect("restart");
    let url = restored.node(2).client_url().to_string();
    wait_until_ok("the restarted member to serve", Duration::from_secs(30), || {
        let url = url.clone();
        async move {
            let mut c = conclave_testkit::client(&url).await.map_err(|e| e.to_string())?;
            match get_value(&mut c, "after-restore").await? {
                Some(v) if v == b"1" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", restored.log_dump()));
}
