//! The SDK's watch stream across member failures: every event exactly once, in revision
//! order, with no gap.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{client_of, leader, start_cluster};
use conclave_client::watch::Watch;
use conclave_client::{Error, EventKind};
use futures::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_across_a_leader_kill_delivers_every_event_once_in_order() {
    let cluster = start_cluster(3);
    let old = leader(&cluster).await;
    let others: Vec<usize> = (1..=3).filter(|&i| i != old).collect();
    // The watcher prefers the leader, so the kill breaks its stream.
    let watcher = client_of(&cluster, &[old, others[0], others[1]]).await;
    let writer = client_of(&cluster, &others).await;

    let mut events = watcher
        .watch(Watch::prefix("/w/").prev_kv())
        .await
        .expect("watch");
    let start = events.created_revision();

    const WRITES: usize = 400;
    let writes = tokio::spawn({
        let writer = writer.clone();
        async move {
            let mut acknowledged = BTreeSet::new();
            let mut i = 0usize;
            while acknowledged.len() < WRITES {
                i += 1;
                // Writes may fail around the kill with "outcome unknown": those may or may
                // not appear in the stream, but every acknowledged one must.
                match writer.put(format!("/w/{}", i % 50), i.to_string()).await {
                    Ok(put) => {
                        acknowledged.insert(put.revision);
                    }
                    Err(Error::OutcomeUnknown { .. }) | Err(Error::Unavailable { .. }) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(other) => panic!("unexpected write error {other:?}"),
                }
            }
            acknowledged
        }
    });

    // Kill the leader once the watcher has seen some events.
    let mut seen = Vec::new();
    while seen.len() < 60 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("events before the kill")
            .expect("stream open")
            .expect("event");
        seen.push(event);
    }
    cluster.kill(old).expect("kill leader");

    let acknowledged = writes.await.expect("writer");
    let last = *acknowledged.iter().next_back().expect("some writes acknowledged");
    while seen.last().map(|e| e.revision()) < Some(last) {
        let event = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("the watch resumes after the kill")
            .expect("stream open")
            .expect("event");
        seen.push(event);
    }

    let revisions: Vec<i64> = seen.iter().map(|e| e.revision()).collect();
    // Exactly once and in order: one put per revision here, so strictly increasing.
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "out of order or repeated: {revisions:?}"
    );
    // No gap: every revision after the watch's creation is a write of ours.
    assert_eq!(revisions.first(), Some(&(start + 1)));
    assert!(
        revisions.windows(2).all(|w| w[1] == w[0] + 1),
        "gap in {revisions:?}"
    );
    let delivered: BTreeSet<i64> = revisions.iter().copied().collect();
    let missing: Vec<_> = acknowledged.difference(&delivered).collect();
    assert!(
        missing.is_empty(),
        "acknowledged writes never delivered: {missing:?}"
    );
    assert!(seen.iter().all(|e| e.kind == EventKind::Put));
    eprintln!(
        "watch across leader kill: {} events delivered once each, {} acknowledged writes",
        seen.len(),
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_from_a_compacted_revision_fails_with_a_typed_error() {
    let cluster = start_cluster(3);
    leader(&cluster).await;
    // One member: a physical compaction is waited for on the member that received it, and
    // a watch is checked against that member's compaction.
    let client = client_of(&cluster, &[1]).await;
    let first = client.put("/c/k", "1").await.expect("put").revision;
    let now = client.put("/c/k", "2").await.expect("put").revision;
    client.compact(now, true).await.expect("compact");
    let outcome: Result<(), Error> = match client.watch(Watch::key("/c/k").start_revision(first)).await {
        Err(error) => Err(error),
        Ok(mut stream) => match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Ok(Some(Err(error))) => Err(error),
            other => panic!("expected a compaction error, got {other:?}"),
        },
    };
    match outcome {
        Err(Error::Compacted { compact_revision }) => assert_eq!(compact_revision, Some(now)),
        other => panic!("expected Compacted, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_on_a_member_cut_off_from_the_quorum_moves_to_another_member() {
    let cluster = start_cluster(3);
    let lead = leader(&cluster).await;
    let cut = (1..=3).find(|&i| i != lead).expect("a follower");
    let others: Vec<usize> = (1..=3).filter(|&i| i != cut).collect();
    let watcher = client_of(&cluster, &[cut, others[0], others[1]]).await;
    let writer = client_of(&cluster, &others).await;
    let mut events = watcher.watch(Watch::prefix("/iso/")).await.expect("watch");

    writer.put("/iso/before", "1").await.expect("put");
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("event before the cut")
        .expect("open")
        .expect("event");
    assert_eq!(first.kv.key, b"/iso/before".to_vec());

    // The watcher's member still answers pings but sees no new commits.
    cluster.isolate(cut);
    let after = writer
        .put("/iso/after", "2")
        .await
        .expect("put on the majority")
        .revision;
    let event = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("the watch moved to a member with a leader")
        .expect("open")
        .expect("event");
    assert_eq!(
        (event.kv.key.as_slice(), event.revision()),
        (&b"/iso/after"[..], after)
    );
    cluster.heal();
}
