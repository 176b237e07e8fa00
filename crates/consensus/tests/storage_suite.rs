//! openraft's own storage conformance suite (`openraft::testing::log::Suite`, 45 cases)
//! against Conclave's Raft log and state machine, plus durability checks the suite cannot
//! make: what a reopened log and state machine recover.

use std::collections::BTreeMap;

use conclave_consensus::log_store::{LogStore, DEFAULT_SEGMENT_BYTES};
use conclave_consensus::state_machine::StateMachine;
use conclave_consensus::types::{Entry, TypeConfig};
use conclave_consensus::DEFAULT_GROUP;
use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let log = LogStore::open(&dir.path().join("raft"), DEFAULT_SEGMENT_BYTES)
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let db = sled::Config::new()
            .path(dir.path().join("state"))
            .open()
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        let sm = StateMachine::open(&db, DEFAULT_GROUP, &dir.path().join("snapshots"))
            .map_err(|e| StorageError::read(TypeConfig::err_from_error(&e)))?;
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes() {
    Suite::test_all(Builder).await.expect("openraft storage suite");
}

fn entry(term: u64, index: u64) -> Entry {
    openraft::testing::blank_ent::<TypeConfig>(term, 1, index)
}

async fn append_durably(log: &mut LogStore, entries: Vec<Entry>) {
    let (tx, rx) = TypeConfig::oneshot();
    log.append(entries, IOFlushed::signal(tx)).await.expect("append");
    rx.await.expect("flush callback").expect("flushed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_log_recovers_vote_entries_truncation_and_purge() {
    use openraft::entry::RaftEntry;
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so the log rotates and deletes purged segments along the way.
    let mut log = LogStore::open(dir.path(), 512).unwrap();
    let vote = openraft::impls::Vote::new(3, 7);
    log.save_vote(&vote).await.unwrap();
    for batch in 0..20 {
        append_durably(&mut log, (1..=10).map(|i| entry(1, batch * 10 + i)).collect()).await;
    }
    log.truncate_after(Some(entry(1, 150).log_id())).await.unwrap();
    append_durably(&mut log, (151..=160).map(|i| entry(2, i)).collect()).await;
    log.purge(entry(1, 100).log_id()).await.unwrap();
    // A last durable append orders the (unwaited) truncate and purge before it on disk.
    append_durably(&mut log, vec![entry(2, 161)]).await;
    let segments_before = std::fs::read_dir(dir.path()).unwrap().count();
    drop(log);

    let mut log = LogStore::open(dir.path(), 512).unwrap();
    assert_eq!(log.read_vote().await.unwrap(), Some(vote));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(100));
    assert_eq!(state.last_log_id.map(|l| l.index), Some(161));
    let entries = log.try_get_log_entries(0..1000).await.unwrap();
    let terms: BTreeMap<u64, u64> = entries
        .iter()
        .map(|e| (e.index(), e.log_id().leader_id.term))
        .collect();
    assert_eq!(terms.keys().next(), Some(&101));
    assert_eq!(terms.len(), 61);
    assert!(
        terms.range(151..).all(|(_, term)| *term == 2),
        "entries after the truncation point are the new ones"
    );
    assert!(segments_before > 1, "the test should have rotated segments");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_built_snapshot_is_still_the_current_snapshot_after_reopening() {
    use openraft::storage::RaftSnapshotBuilder;
    let dir = tempfile::tempdir().unwrap();
    let built = {
        let db = sled::Config::new().path(dir.path().join("state")).open().unwrap();
        let mut sm = StateMachine::open(&db, DEFAULT_GROUP, &dir.path().join("snapshots")).unwrap();
        let mut builder = sm.try_create_snapshot_builder(true).await.expect("builder");
        builder.build_snapshot().await.expect("snapshot")
    };
    let db = sled::Config::new().path(dir.path().join("state")).open().unwrap();
    let mut sm = StateMachine::open(&db, DEFAULT_GROUP, &dir.path().join("snapshots")).unwrap();
    let current = sm
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("current snapshot after reopen");
    assert_eq!(current.meta, built.meta);
    assert_eq!(current.snapshot.path, built.snapshot.path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogStore::open(dir.path(), DEFAULT_SEGMENT_BYTES).unwrap();
    // Submit 200 appends without waiting for each to be flushed, as openraft does while
    // earlier entries are still being written; then wait for all.
    let mut flushed = Vec::new();
    for i in 1..=200 {
        let (tx, rx) = TypeConfig::oneshot();
        log.append(vec![entry(1, i)], IOFlushed::signal(tx))
            .await
            .expect("append");
        flushed.push(rx);
    }
    for rx in flushed {
        rx.await.expect("callback").expect("flushed");
    }
    let syncs = log.fsync_count();
    assert!(
        syncs < 100,
        "200 appends took {syncs} fsyncs: appends are not group-committed"
    );
    eprintln!("group commit: 200 appends, {syncs} fsyncs");
}
