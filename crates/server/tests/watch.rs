//! etcd's Watch service: history replay then live events with no gap or duplicate,
//! filters, prev_kv, compaction, cancel, progress, slow clients, and resuming after a
//! member is killed.

mod common;

use std::time::Duration;

use common::*;
use conclave_testkit::{leader_index, Cluster, ClusterOptions};
use etcd_client::{EventType, WatchFilterType, WatchOptions, WatchStream};

/// Next response of `stream`, bounded by [`REQUEST`].
async fn next(stream: &mut WatchStream) -> etcd_client::WatchResponse {
    tokio::time::timeout(REQUEST, stream.message())
        .await
        .expect("watch response timed out")
        .expect("watch stream error")
        .expect("watch stream ended")
}

/// Collects (revision, key, type) of events until `count` events arrived.
async fn collect(stream: &mut WatchStream, count: usize) -> Vec<(i64, String, EventType)> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let response = next(stream).await;
        for event in response.events() {
            let kv = event.kv().expect("kv");
            seen.push((
                kv.mod_revision(),
                String::from_utf8_lossy(kv.key()).into_owned(),
                event.event_type(),
            ));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_from_an_old_revision_replays_history_then_streams_live_events_exactly_once() {
    let cluster = start_cluster(3);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let mut writer = client_of(&cluster, 1).await;
    let first = writer
        .put("w/0", "0", None)
        .await
        .expect("put")
        .header()
        .expect("header")
        .revision();
    for i in 1..300 {
        writer
            .put(format!("w/{i}"), i.to_string(), None)
            .await
            .expect("put");
    }
    writer.delete("w/5", None).await.expect("delete");
    writer.put("other", "x", None).await.expect("put");

    // Watch from a follower-or-leader alike, starting at the first write.
    let mut watcher = client_of(&cluster, 2).await;
    let mut stream = watcher
        .watch(
            "w/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(first)
                    .with_prev_key(),
            ),
        )
        .await
        .expect("watch");
    let created = next(&mut stream).await;
    assert!(created.created());
    // Live writes race the replay on purpose.
    let live = tokio::spawn(async move {
        for i in 300..400 {
            writer
                .put(format!("w/{i}"), i.to_string(), None)
                .await
                .expect("put");
        }
    });
    let events = collect(&mut stream, 401).await;
    live.await.expect("writer");
    let revisions: Vec<i64> = events.iter().map(|e| e.0).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "events out of order or repeated"
    );
    assert_eq!(events.len(), 401, "300 puts + 1 delete + 100 live puts");
    assert_eq!(events[300].1, "w/5");
    assert_eq!(events[300].2, EventType::Delete);
    assert!(events.iter().all(|e| e.1.starts_with("w/")));
    // Revision numbers of the prefix are contiguous except for the write to `other`.
    assert_eq!(revisions[0], first);
    assert_eq!(revisions[400], first + 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn filters_prev_kv_cancel_progress_and_compaction_behave_as_in_etcd() {
    let cluster = start_cluster(3);
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let mut client = client_of(&cluster, 3).await;
    client.put("f", "1", None).await.expect("put");

    let mut stream = client
        .watch(
            "f",
            Some(
                WatchOptions::new()
                    .with_filters([WatchFilterType::NoPut])
                    .with_prev_key(),
            ),
        )
        .await
        .expect("watch");
    let created = next(&mut stream).await;
    let id = created.watch_id();
    client.put("f", "2", None).await.expect("put");
    client.delete("f", None).await.expect("delete");
    let response = next(&mut stream).await;
    assert_eq!(response.events().len(), 1, "NOPUT drops the put");
    let event = &response.events()[0];
    assert_eq!(event.event_type(), EventType::Delete);
    assert_eq!(event.prev_kv().map(|kv| kv.value()), Some(b"2".as_ref()));

    // Progress request: a response with no events and the current revision, watch id -1.
    stream.request_progress().await.expect("progress");
    let progress = next(&mut stream).await;
    assert!(progress.events().is_empty());
    assert_eq!(progress.watch_id(), -1);
    let current = client
        .get("f", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision();
    assert_eq!(progress.header().expect("header").revision(), current);

    stream.cancel(id).await.expect("cancel");
    let canceled = next(&mut stream).await;
    assert!(canceled.canceled());
    assert_eq!(canceled.watch_id(), id);

    // A watch below the compacted revision is created, then canceled with the compact
    // revision, as etcd does.
    for i in 0..5 {
        client.put("c", i.to_string(), None).await.expect("put");
    }
    let latest = client
        .get("c", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision();
    client.compact(latest - 1, None).await.expect("compact");
    // A linearizable read makes this member apply the compaction before the watch starts.
    client.get("c", None).await.expect("get");
    let mut old = client
        .watch("c", Some(WatchOptions::new().with_start_revision(2)))
        .await
        .expect("watch");
    assert!(next(&mut old).await.created());
    let canceled = next(&mut old).await;
    assert!(canceled.canceled());
    assert_eq!(canceled.compact_revision(), latest - 1);
    assert!(
        canceled.cancel_reason().contains("compacted"),
        "{}",
        canceled.cancel_reason()
    );
    // At the compacted revision itself the watch works.
    let mut at = client
        .watch("c", Some(WatchOptions::new().with_start_revision(latest)))
        .await
        .expect("watch");
    assert!(next(&mut at).await.created());
    let events = collect(&mut at, 1).await;
    assert_eq!(events[0].0, latest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watches_resume_on_another_member_after_theirs_is_killed_without_loss_or_repeat() {
    let cluster = start_cluster(3);
    let leader = leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    // Watch through the leader, which is then killed.
    let mut watching = client_of(&cluster, leader).await;
    let mut stream = watching
        .watch("r/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    assert!(next(&mut stream).await.created());
    let others: Vec<usize> = (1..=3).filter(|i| *i != leader).collect();
    let mut writer = client_of(&cluster, others[0]).await;
    // 400 acknowledged writes; failures during the election (outcome unknown) are
    // followed by fresh writes, and whatever of them applied shows up in the watch too.
    let writes = tokio::spawn(async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut acked = Vec::new();
        let mut i = 0;
        while acked.len() < 400 && std::time::Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(5), writer.put(format!("r/{i:04}"), "v", None))
                .await
            {
                Ok(Ok(r)) => acked.push(r.header().expect("header").revision()),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
            i += 1;
        }
        acked
    });
    let mut seen = collect(&mut stream, 50).await;
    cluster.kill(leader).expect("kill leader");
    // Drain what the dead member still delivered, then resume elsewhere from the next revision.
    while let Ok(Ok(Some(response))) =
        tokio::time::timeout(Duration::from_millis(500), stream.message()).await
    {
        for event in response.events() {
            let kv = event.kv().expect("kv");
            seen.push((
                kv.mod_revision(),
                String::from_utf8_lossy(kv.key()).into_owned(),
                event.event_type(),
            ));
        }
    }
    let last = seen.last().expect("events").0;
    let mut resumed_client = client_of(&cluster, others[1]).await;
    let mut resumed = resumed_client
        .watch(
            "r/",
            Some(WatchOptions::new().with_prefix().with_start_revision(last + 1)),
        )
        .await
        .expect("watch");
    assert!(next(&mut resumed).await.created());
    let acked = writes.await.expect("writer");
    assert_eq!(
        acked.len(),
        400,
        "writes did not resume after the leader kill\n{}",
        cluster.log_dump()
    );
    let final_revision = *acked.last().expect("acked writes");
    while seen.last().expect("events").0 < final_revision {
        let response = next(&mut resumed).await;
        for event in response.events() {
            let kv = event.kv().expect("kv");
            seen.push((
                kv.mod_revision(),
                String::from_utf8_lossy(kv.key()).into_owned(),
                event.event_type(),
            ));
        }
    }
    let revisions: Vec<i64> = seen.iter().map(|e| e.0).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "a revision was repeated or reordered"
    );
    for revision in &acked {
        assert!(
            revisions.binary_search(revision).is_ok(),
            "acknowledged write at {revision} never seen"
        );
    }
    eprintln!(
        "watch resume: {} events seen exactly once across a member kill; {} acked writes",
        seen.len(),
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stops_reading_is_cut_off_without_stalling_writes_or_other_watchers() {
    let options = ClusterOptions {
        extra_args: vec!["--watch-slow-client-timeout".into(), "1000".into()],
        ..fast_options(3)
    };
    let cluster = Cluster::start(bin(), options).expect("cluster");
    leader_index(&cluster, Duration::from_secs(20))
        .await
        .expect("leader");
    let mut slow_client = client_of(&cluster, 1).await;
    let mut slow = slow_client
        .watch("s/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    assert!(next(&mut slow).await.created());
    let mut fast_client = client_of(&cluster, 1).await;
    let mut fast = fast_client
        .watch("s/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("watch");
    assert!(next(&mut fast).await.created());

    // 2,000 events of 16 KiB (31 MiB): far beyond HTTP/2 flow-control windows and the
    // server's buffer of 256 responses (4 MiB here), so the slow stream must stall.
    let mut writer = client_of(&cluster, 2).await;
    let value = vec![b'x'; 16 * 1024];
    let reader = tokio::spawn(async move { collect(&mut fast, 2000).await.len() });
    for i in 0..2000 {
        tokio::time::timeout(REQUEST, writer.put(format!("s/{i:04}"), value.clone(), None))
            .await
            .expect("a put stalled behind a slow watcher")
            .expect("put");
    }
    assert_eq!(
        reader.await.expect("fast watcher"),
        2000,
        "the reading watcher got every event"
    );

    // The slow stream ends with a clear error once its client reads again.
    // It reads what was buffered, then the error.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let ended = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow stream never ended\n{}",
            cluster.log_dump()
        );
        match tokio::time::timeout(Duration::from_secs(5), slow.message()).await {
            Ok(Err(e)) => break e.to_string(),
            Ok(Ok(None)) => panic!("the slow stream ended without saying why"),
            Ok(Ok(Some(_))) | Err(_) => {}
        }
    };
    assert!(ended.contains("did not read"), "{ended}");
}
