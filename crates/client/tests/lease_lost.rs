//! `Lease::lost()` fires by the client's own deadline when it is cut off, before the
//! cluster can have expired the lease; and a kept-alive lease survives member failures.

mod common;

use std::time::Duration;

use common::{client_of, client_of_all, leader, start_cluster};
use conclave_client::Error;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_fires_before_the_cluster_could_expire_the_lease() {
    let cluster = start_cluster(3);
    let lead = leader(&cluster).await;
    let follower = (1..=3).find(|&i| i != lead).expect("a follower");
    // The holder talks to one follower only; an observer watches the lease elsewhere.
    let holder = client_of(&cluster, &[follower]).await;
    let observer = client_of(&cluster, &[lead]).await;

    let lease = holder.grant_lease(Duration::from_secs(4)).await.expect("grant");
    holder
        .put_with(conclave_client::kv::Put::new("/held", "x").lease(lease.id()))
        .await
        .expect("put");
    // Let a few keep-alives succeed.
    conclave_testkit::wait_until("a renewed deadline", Duration::from_secs(5), || {
        let lease = lease.clone();
        let first = lease.deadline();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            (lease.deadline() > first).then_some(())
        }
    })
    .await
    .expect("keep-alive works");

    // Cut the holder off: its member stops answering.
    let deadline = lease.deadline().expect("alive");
    cluster.pause(follower).expect("pause");
    let paused_at = Instant::now();
    let lost = tokio::time::timeout(Duration::from_secs(10), lease.lost())
        .await
        .expect("lost() fires");
    let lost_at = Instant::now();
    assert!(matches!(lost, Error::LeaseLost { .. }), "{lost:?}");
    assert!(lease.is_lost());

    // The cluster still holds the lease when lost() fires: the key is still there.
    let still_there = observer.get("/held").await.expect("read").is_some();
    // ... and expires it only later.
    let expired_at =
        conclave_testkit::wait_until("the cluster expires the lease", Duration::from_secs(15), || {
            let observer = observer.clone();
            async move {
                match observer.get("/held").await {
                    Ok(None) => Some(Instant::now()),
                    _ => None,
                }
            }
        })
        .await
        .expect("expiry");
    cluster.resume(follower).expect("resume");

    eprintln!(
        "lost() fired {:?} after the pause (local deadline was {:?} after it); the cluster expired the lease {:?} after lost()",
        lost_at - paused_at,
        deadline.saturating_duration_since(paused_at),
        expired_at - lost_at
    );
    assert!(still_there, "the cluster expired the lease before lost() fired");
    assert!(lost_at >= deadline, "lost() fired before its own deadline");
    assert!(expired_at > lost_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kept_alive_lease_survives_a_leader_kill() {
    let cluster = start_cluster(3);
    let old = leader(&cluster).await;
    let client = client_of_all(&cluster).await;
    let lease = client.grant_lease(Duration::from_secs(3)).await.expect("grant");
    client
        .put_with(conclave_client::kv::Put::new("/kept", "x").lease(lease.id()))
        .await
        .expect("put");
    cluster.kill(old).expect("kill leader");
    // Well past the TTL, the lease is alive on the new leader and locally.
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        assert!(!lease.is_lost(), "lease lost across a leader kill");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(client.get("/kept").await.expect("read").is_some());
    let info = client.lease_time_to_live(lease.id(), true).await.expect("ttl");
    assert!(info.ttl > 0);
    assert_eq!(info.keys, vec![b"/kept".to_vec()]);
    lease.revoke().await.expect("revoke");
    assert_eq!(client.get("/kept").await.expect("read"), None);
}
