//! etcd's server-side Lock (`v3lockpb.Lock`) and Election (`v3electionpb.Election`)
//! services, driven through the Rust etcd-client against a real 3-member cluster: mutual
//! exclusion, queueing, re-entrancy, lease loss of holders and waiters, campaign,
//! proclaim, observe, resign and fencing revisions.

mod common;

use std::time::Duration;

use common::*;
use conclave_testkit::{leader_index, wait_until, Cluster};
use etcd_client::{
    Client, GetOptions, LeaderKey, LeaseTimeToLiveOptions, LockOptions, LockResponse, ObserveStream,
    ProclaimOptions, ResignOptions,
};
use tokio::task::JoinHandle;

/// How long a blocked Lock/Campaign is watched to make sure it keeps waiting.
const STILL_WAITING: Duration = Duration::from_millis(1500);

fn lock_key(name: &str, lease: i64) -> Vec<u8> {
    format!("{name}/{lease:x}").into_bytes()
}

async fn exists(client: &mut Client, key: &[u8]) -> bool {
    let response = tokio::time::timeout(REQUEST, client.get(key, None))
        .await
        .expect("get timed out")
        .expect("get");
    !response.kvs().is_empty()
}

/// Waits until `key` exists (a waiter has queued) or no longer exists.
async fn wait_for_key(cluster: &Cluster, client: &Client, key: &[u8], present: bool) {
    let what = format!(
        "{} to {}",
        String::from_utf8_lossy(key),
        if present { "appear" } else { "disappear" }
    );
    wait_until(&what, REQUEST, || {
        let mut c = client.clone();
        let key = key.to_vec();
        async move { (exists(&mut c, &key).await == present).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
}

async fn grant(client: &mut Client, ttl: i64) -> i64 {
    client.lease_grant(ttl, None).await.expect("grant").id()
}

fn spawn_lock(
    client: &Client,
    name: &str,
    lease: i64,
) -> JoinHandle<Result<LockResponse, etcd_client::Error>> {
    let mut client = client.clone();
    let name = name.to_owned();
    tokio::spawn(async move {
        client
            .lock(name, Some(LockOptions::new().with_lease(lease)))
            .await
    })
}

/// Asserts that a spawned call is still blocked after [`STILL_WAITING`].
async fn assert_still_waiting<T: std::fmt::Debug>(what: &str, handle: &mut JoinHandle<T>) {
    if let Ok(done) = tokio::time::timeout(STILL_WAITING, &mut *handle).await {
        panic!("{what} should still be waiting, but returned {done:?}");
    }
}

/// The outcome of a spawned call, which must come within [`REQUEST`].
async fn finished<T>(what: &str, handle: JoinHandle<T>) -> T {
    tokio::time::timeout(REQUEST, handle)
        .await
        .unwrap_or_else(|_| panic!("{what} did not return"))
        .expect("task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_is_mutually_exclusive_queued_reentrant_and_released_with_leases() {
    let cluster = start_cluster(3);
    let leader = leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let follower = (1..=3).find(|i| *i != leader).expect("follower");
    // The two contenders talk to different members.
    let mut a = client_of(&cluster, leader).await;
    let mut b = client_of(&cluster, follower).await;
    let lease1 = grant(&mut a, 30).await;
    let lease2 = grant(&mut b, 30).await;

    // Acquire: the key is <name>/<lease hex>; locking again with the same lease is a no-op.
    let held = a
        .lock("mtx", Some(LockOptions::new().with_lease(lease1)))
        .await
        .expect("lock");
    assert_eq!(held.key(), lock_key("mtx", lease1).as_slice());
    let again = tokio::time::timeout(
        REQUEST,
        a.lock("mtx", Some(LockOptions::new().with_lease(lease1))),
    )
    .await
    .expect("re-entrant lock returned")
    .expect("re-entrant lock");
    assert_eq!(again.key(), held.key());

    // A second lease waits until the holder unlocks.
    let mut waiter = spawn_lock(&b, "mtx", lease2);
    wait_for_key(&cluster, &b, &lock_key("mtx", lease2), true).await;
    assert_still_waiting("the second Lock", &mut waiter).await;
    let unlocked = a.unlock(held.key()).await.expect("unlock");
    let acquired = finished("the second Lock", waiter).await.expect("second lock");
    assert_eq!(acquired.key(), lock_key("mtx", lease2).as_slice());
    let unlock_rev = unlocked.header().expect("header").revision();
    assert!(acquired.header().expect("header").revision() >= unlock_rev);
    assert!(!exists(&mut a, &lock_key("mtx", lease1)).await);

    // A lease that does not exist.
    assert_grpc_error(
        a.lock("mtx", Some(LockOptions::new().with_lease(0x7777))).await,
        tonic::Code::NotFound,
        "etcdserver: requested lease not found",
    );

    // A waiter behind a holder whose lease is revoked gets the lock.
    let lease3 = grant(&mut a, 30).await;
    let mut waiter = spawn_lock(&a, "mtx", lease3);
    wait_for_key(&cluster, &a, &lock_key("mtx", lease3), true).await;
    assert_still_waiting("the Lock behind lease 2", &mut waiter).await;
    b.lease_revoke(lease2).await.expect("revoke holder");
    let acquired = finished("the Lock behind a revoked holder", waiter)
        .await
        .expect("lock after the holder's revoke");
    assert_eq!(acquired.key(), lock_key("mtx", lease3).as_slice());

    // A waiter whose own lease is revoked fails instead of waiting forever; the holder
    // keeps the lock.
    let lease4 = grant(&mut b, 30).await;
    let mut waiter = spawn_lock(&b, "mtx", lease4);
    wait_for_key(&cluster, &b, &lock_key("mtx", lease4), true).await;
    assert_still_waiting("the Lock of lease 4", &mut waiter).await;
    a.lease_revoke(lease4).await.expect("revoke waiter");
    let failed = finished("the Lock whose lease was revoked", waiter).await;
    assert_grpc_error(failed, tonic::Code::Unknown, "mutex: session is expired");
    assert!(
        exists(&mut a, &lock_key("mtx", lease3)).await,
        "the holder lost the lock"
    );

    // A waiting Lock whose client gives up is taken out of the queue (as etcd unlocks).
    let lease5 = grant(&mut b, 30).await;
    let gave_up = tokio::time::timeout(
        STILL_WAITING,
        b.lock("mtx", Some(LockOptions::new().with_lease(lease5))),
    )
    .await;
    assert!(gave_up.is_err(), "the Lock of lease 5 should have been waiting");
    wait_for_key(&cluster, &b, &lock_key("mtx", lease5), false).await;

    // Lease 0: the server grants a 60 s lease for the lock, as etcd's session does.
    let own = a.lock("zero", None).await.expect("lock without a lease");
    let key = String::from_utf8(own.key().to_vec()).expect("utf-8 key");
    let hex = key.strip_prefix("zero/").expect("key under zero/");
    let lease = i64::from_str_radix(hex, 16).expect("hex lease id");
    let ttl = a
        .lease_time_to_live(lease, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("ttl");
    assert_eq!(ttl.granted_ttl(), 60);
    assert_eq!(ttl.keys(), &[own.key().to_vec()]);
}

async fn next_leader(what: &str, observe: &mut ObserveStream) -> (Vec<u8>, Vec<u8>, i64) {
    let response = tokio::time::timeout(REQUEST, observe.message())
        .await
        .unwrap_or_else(|_| panic!("observe did not report {what}"))
        .expect("observe")
        .expect("observe stream ended");
    let kv = response.kv().expect("leader kv");
    (kv.key().to_vec(), kv.value().to_vec(), kv.create_revision())
}

fn leader_of(response: &etcd_client::CampaignResponse) -> LeaderKey {
    response.leader().expect("leader key").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn election_campaign_proclaim_observe_resign_and_lease_loss() {
    let cluster = start_cluster(3);
    let leader = leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let follower = (1..=3).find(|i| *i != leader).expect("follower");
    let other = (1..=3).find(|i| *i != leader && *i != follower).expect("other");
    let mut a = client_of(&cluster, leader).await;
    let mut b = client_of(&cluster, follower).await;
    let mut watcher = client_of(&cluster, other).await;

    // No candidate yet.
    assert_grpc_error(
        a.leader("elect").await,
        tonic::Code::Unknown,
        "election: no leader",
    );
    let mut observe = watcher.observe("elect").await.expect("observe");

    // The first candidate wins at once.
    let lease1 = grant(&mut a, 30).await;
    let won = a.campaign("elect", "v1", lease1).await.expect("campaign");
    let leader1 = leader_of(&won);
    assert_eq!(leader1.key(), lock_key("elect", lease1).as_slice());
    assert_eq!(leader1.name(), b"elect");
    assert_eq!(leader1.lease(), lease1);
    let current = b.leader("elect").await.expect("leader");
    let kv = current.kv().expect("kv");
    assert_eq!((kv.key(), kv.value()), (leader1.key(), &b"v1"[..]));
    assert_eq!(kv.create_revision(), leader1.rev());
    assert_eq!(
        next_leader("the first leader", &mut observe).await,
        (leader1.key().to_vec(), b"v1".to_vec(), leader1.rev())
    );

    // A second candidate waits.
    let lease2 = grant(&mut b, 30).await;
    let mut second = {
        let mut b = b.clone();
        tokio::spawn(async move { b.campaign("elect", "v2", lease2).await })
    };
    wait_for_key(&cluster, &b, &lock_key("elect", lease2), true).await;
    assert_still_waiting("the second Campaign", &mut second).await;

    // Proclaim changes the leader's value; observers see it.
    a.proclaim("v1b", Some(ProclaimOptions::new().with_leader(leader1.clone())))
        .await
        .expect("proclaim");
    assert_eq!(
        next_leader("the proclaimed value", &mut observe).await,
        (leader1.key().to_vec(), b"v1b".to_vec(), leader1.rev())
    );
    let current = b.leader("elect").await.expect("leader");
    assert_eq!(current.kv().expect("kv").value(), b"v1b");

    // Resigning hands leadership to the waiting candidate, with a higher (fencing) revision.
    a.resign(Some(ResignOptions::new().with_leader(leader1.clone())))
        .await
        .expect("resign");
    let leader2 = leader_of(
        &finished("the second Campaign", second)
            .await
            .expect("second campaign"),
    );
    assert_eq!(leader2.key(), lock_key("elect", lease2).as_slice());
    assert!(
        leader2.rev() > leader1.rev(),
        "{} <= {}",
        leader2.rev(),
        leader1.rev()
    );
    assert_eq!(
        next_leader("the second leader", &mut observe).await,
        (leader2.key().to_vec(), b"v2".to_vec(), leader2.rev())
    );

    // The deposed leader can neither proclaim nor (harmfully) resign.
    assert_grpc_error(
        a.proclaim("stale", Some(ProclaimOptions::new().with_leader(leader1.clone())))
            .await,
        tonic::Code::Unknown,
        "election: not leader",
    );
    a.resign(Some(ResignOptions::new().with_leader(leader1.clone())))
        .await
        .expect("resign when not leader is no error");
    assert_eq!(
        a.leader("elect").await.expect("leader").kv().expect("kv").key(),
        leader2.key()
    );
    assert_grpc_error(
        a.proclaim("x", None).await,
        tonic::Code::Unknown,
        "\"leader\" field must be provided",
    );
    assert_grpc_error(
        a.resign(None).await,
        tonic::Code::Unknown,
        "\"leader\" field must be provided",
    );

    // A candidate whose lease expires while it waits gets an error, not an endless wait.
    let short = grant(&mut a, 2).await;
    let expired = tokio::time::timeout(Duration::from_secs(20), a.campaign("elect", "short", short))
        .await
        .expect("a campaign whose lease expired must return");
    assert_grpc_error(expired, tonic::Code::Unknown, "election: session is expired");

    // The leader's lease is revoked: the next candidate leads and observers see it.
    let lease3 = grant(&mut a, 30).await;
    let mut third = {
        let mut a = a.clone();
        tokio::spawn(async move { a.campaign("elect", "v3", lease3).await })
    };
    wait_for_key(&cluster, &a, &lock_key("elect", lease3), true).await;
    assert_still_waiting("the third Campaign", &mut third).await;
    b.lease_revoke(lease2).await.expect("revoke the leader's lease");
    let (key, value, rev) = next_leader("the leader after a revoke", &mut observe).await;
    assert_eq!(
        (key.as_slice(), value.as_slice()),
        (lock_key("elect", lease3).as_slice(), &b"v3"[..])
    );
    let leader3 = leader_of(
        &finished("the third Campaign", third)
            .await
            .expect("third campaign"),
    );
    assert_eq!(leader3.rev(), rev);
    assert!(leader3.rev() > leader2.rev());

    // Campaigning again with the same lease keeps the place and proclaims the new value.
    let again = a.campaign("elect", "v3b", lease3).await.expect("campaign again");
    assert_eq!(leader_of(&again).rev(), leader3.rev());
    assert_eq!(
        next_leader("the re-campaigned value", &mut observe).await,
        (leader3.key().to_vec(), b"v3b".to_vec(), leader3.rev())
    );
    let keys = a
        .get("elect/", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .expect("count");
    assert_eq!(keys.count(), 1, "only the leader's key is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lockers_on_every_member_never_overlap() {
    use etcd_client::{Compare, CompareOp, Txn, TxnOp};

    const WORKERS: usize = 6;
    const ROUNDS: usize = 3;
    let cluster = start_cluster(3);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let mut client = client_of(&cluster, w % 3 + 1).await;
        workers.push(tokio::spawn(async move {
            let lease = grant(&mut client, 30).await;
            for _ in 0..ROUNDS {
                let held = tokio::time::timeout(
                    Duration::from_secs(30),
                    client.lock("shared", Some(LockOptions::new().with_lease(lease))),
                )
                .await
                .expect("lock returned")
                .expect("lock");
                // Only one holder at a time: claiming the marker must always succeed.
                let claim = Txn::new()
                    .when([Compare::create_revision("owner", CompareOp::Equal, 0)])
                    .and_then([TxnOp::put("owner", format!("{w}"), None)]);
                let claimed = client.txn(claim).await.expect("claim");
                assert!(
                    claimed.succeeded(),
                    "worker {w} holds the lock while another does"
                );
                let count = client.get("count", None).await.expect("get count");
                let next = count.kvs().first().map_or(0, |kv| {
                    kv.value_str().expect("utf-8").parse::<u64>().expect("number")
                }) + 1;
                client
                    .put("count", next.to_string(), None)
                    .await
                    .expect("put count");
                client.delete("owner", None).await.expect("release marker");
                client.unlock(held.key()).await.expect("unlock");
            }
        }));
    }
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(90), worker)
            .await
            .unwrap_or_else(|_| panic!("a lock worker did not finish\n{}", cluster.log_dump()))
            .expect("lock worker");
    }
    let mut client = client_of(&cluster, 1).await;
    assert_eq!(
        get_value(&mut client, "count").await.expect("count"),
        Some((WORKERS * ROUNDS).to_string().into_bytes()),
        "an update was lost: two workers held the lock together"
    );
}
