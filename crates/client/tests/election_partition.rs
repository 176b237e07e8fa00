//! Election under a network partition: the cut-off holder's `lost()` fires, a new leader
//! is elected with a strictly higher epoch only after that, and the old holder's
//! guarded writes are refused by the store. At no moment do two holders both succeed
//! with guarded writes.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{client_of, leader, start_cluster};
use conclave_client::kv::Get;
use conclave_client::watch::Watch;
use conclave_client::{Client, Compare, Epoch, Error, Op};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::time::Instant;

/// One guarded write attempt that the store accepted.
#[derive(Clone, Debug)]
struct Accepted {
    holder: &'static str,
    epoch: Epoch,
    revision: i64,
    sent_at: Instant,
}

/// Writes `/fenced/log` guarded by `guard` until `stop` turns true; records acceptances.
fn guarded_writer(
    client: Client,
    holder: &'static str,
    epoch: Epoch,
    guard: Compare,
    accepted: Arc<Mutex<Vec<Accepted>>>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut refused = 0;
        let mut i = 0u64;
        while !*stop.borrow() {
            i += 1;
            let sent_at = Instant::now();
            let attempt = client
                .txn()
                .when([guard.clone()])
                .then([Op::put("/fenced/log", format!("{holder}:{}:{i}", epoch.0))])
                .await;
            match attempt {
                Ok(r) if r.succeeded => accepted.lock().expect("lock").push(Accepted {
                    holder,
                    epoch,
                    revision: r.revision,
                    sent_at,
                }),
                Ok(_) => refused += 1,
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = stop.changed() => {}
            }
        }
        refused
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_leader_loses_and_its_guarded_writes_are_refused() {
    let cluster = start_cluster(3);
    let isolated = leader(&cluster).await;
    let majority: Vec<usize> = (1..=3).filter(|&i| i != isolated).collect();
    // Holder A lives beside the Raft leader's node and talks only to it; B talks to the others.
    let a = client_of(&cluster, &[isolated]).await;
    let b = client_of(&cluster, &majority).await;
    let start_revision = b.put("/fenced/log", "start").await.expect("put").revision;

    let a_lease = a.grant_lease(Duration::from_secs(3)).await.expect("lease A");
    let a_leadership = a
        .election("/elect/p")
        .campaign(&a_lease, "A")
        .await
        .expect("A elected");
    let a_epoch = a_leadership.epoch();

    let b_lease = b.grant_lease(Duration::from_secs(3)).await.expect("lease B");
    let b_campaign = tokio::spawn({
        let b = b.clone();
        let b_lease = b_lease.clone();
        async move {
            let leadership = b.election("/elect/p").campaign(&b_lease, "B").await;
            (leadership, Instant::now())
        }
    });

    let accepted = Arc::new(Mutex::new(Vec::new()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let a_writer = guarded_writer(
        a.clone(),
        "A",
        a_epoch,
        a_leadership.guard(),
        accepted.clone(),
        stop_rx.clone(),
    );
    conclave_testkit::wait_until(
        "A's guarded writes to be accepted",
        Duration::from_secs(5),
        || {
            let n = accepted.lock().expect("lock").len();
            async move { (n >= 5).then_some(()) }
        },
    )
    .await
    .expect("A writes");

    // Cut the leader's node off from its peers.
    cluster.isolate(isolated);
    let isolated_at = Instant::now();
    let lost = tokio::time::timeout(Duration::from_secs(15), a_leadership.lost())
        .await
        .expect("A's lost() fires");
    let a_lost_at = Instant::now();
    assert!(
        matches!(lost, Error::LeaseLost { .. } | Error::LeadershipLost { .. }),
        "{lost:?}"
    );

    let (b_leadership, b_elected_at) = tokio::time::timeout(Duration::from_secs(30), b_campaign)
        .await
        .expect("B elected in time")
        .expect("campaign task");
    let b_leadership = b_leadership.expect("B elected");
    assert!(
        b_leadership.epoch() > a_epoch,
        "epoch went backwards: {:?} <= {a_epoch:?}",
        b_leadership.epoch()
    );
    assert!(
        a_lost_at < b_elected_at,
        "B was elected before A knew it had lost"
    );
    let b_writer = guarded_writer(
        b.clone(),
        "B",
        b_leadership.epoch(),
        b_leadership.guard(),
        accepted.clone(),
        stop_rx,
    );
    conclave_testkit::wait_until(
        "B's guarded writes to be accepted",
        Duration::from_secs(10),
        || {
            let n = accepted
                .lock()
                .expect("lock")
                .iter()
                .filter(|w| w.holder == "B")
                .count();
            async move { (n >= 5).then_some(()) }
        },
    )
    .await
    .expect("B writes");

    // Heal: A's node rejoins, and A's guarded write is refused by the store itself.
    cluster.heal();
    let refusal = conclave_testkit::wait_until(
        "A's guarded write to be answered",
        Duration::from_secs(20),
        || {
            let a = a.clone();
            let guard = a_leadership.guard();
            async move {
                a.txn()
                    .when([guard])
                    .then([Op::put("/fenced/log", "A:late")])
                    .await
                    .ok()
            }
        },
    )
    .await
    .expect("an answer");
    assert!(!refusal.succeeded, "the store accepted a deposed leader's write");
    stop_tx.send_replace(true);
    let a_refused = a_writer.await.expect("A writer");
    b_writer.await.expect("B writer");

    // Every accepted guarded write, in revision order: A's first, then B's, never mixed,
    // and A's were all sent before A's lost() fired.
    let mut accepted = accepted.lock().expect("lock").clone();
    accepted.sort_by_key(|w| w.revision);
    let first_b = accepted.iter().position(|w| w.holder == "B").expect("B wrote");
    assert!(accepted[..first_b].iter().all(|w| w.holder == "A"));
    assert!(
        accepted[first_b..].iter().all(|w| w.holder == "B"),
        "A wrote after B: {accepted:?}"
    );
    assert!(accepted.windows(2).all(|w| w[0].epoch <= w[1].epoch));
    assert!(accepted
        .iter()
        .filter(|w| w.holder == "A")
        .all(|w| w.sent_at < a_lost_at));

    // The store's own history says the same: values in revision order are A's, then B's.
    let mut history = b
        .watch(Watch::key("/fenced/log").start_revision(start_revision + 1))
        .await
        .expect("history");
    let now = b.range(Get::key("/fenced/log")).await.expect("read").revision;
    let mut holders = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), history.next())
        .await
        .expect("history replay")
    {
        let event = event.expect("event");
        holders.push(event.kv.value_str().unwrap_or("?").chars().next().unwrap_or('?'));
        if event.revision() >= now {
            break;
        }
    }
    let switch = holders.iter().position(|&h| h == 'B').expect("B in history");
    assert!(holders[..switch].iter().all(|&h| h == 'A') && holders[switch..].iter().all(|&h| h == 'B'));

    eprintln!(
        "partition: A lost {:?} after the isolation, B elected {:?} after A lost (epochs {} -> {}); accepted writes A={} B={}, A's refused after loss={}",
        a_lost_at - isolated_at,
        b_elected_at - a_lost_at,
        a_epoch,
        b_leadership.epoch(),
        first_b,
        accepted.len() - first_b,
        a_refused
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn locks_exclude_fence_and_release_on_unlock() {
    let cluster = start_cluster(3);
    leader(&cluster).await;
    let client = client_of(&cluster, &[1, 2, 3]).await;
    let first = client.lock("/locks/job").await.expect("lock");
    match client.try_lock("/locks/job").await {
        Err(Error::Locked { .. }) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
    // A second locker waits until the first unlocks.
    let waiter = tokio::spawn({
        let client = client.clone();
        async move { client.lock("/locks/job").await }
    });
    let written = client
        .txn()
        .when([first.guard()])
        .then([Op::put("/locks/data", "1")])
        .await
        .expect("txn");
    assert!(written.succeeded);
    assert!(!waiter.is_finished());
    let first_epoch = first.epoch();
    let stale_guard = first.guard();
    first.unlock().await.expect("unlock");
    let second = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("second acquires")
        .expect("task")
        .expect("lock");
    assert!(second.epoch() > first_epoch);
    let stale = client
        .txn()
        .when([stale_guard])
        .then([Op::put("/locks/data", "stale")])
        .await
        .expect("txn");
    assert!(!stale.succeeded, "a released lock's guard still held");
    drop(second);
    // Dropping the guard releases the lock in the background.
    conclave_testkit::wait_until("the dropped lock to be released", Duration::from_secs(10), || {
        let client = client.clone();
        async move { client.try_lock("/locks/job").await.ok() }
    })
    .await
    .expect("released")
    .unlock()
    .await
    .expect("unlock");
}
