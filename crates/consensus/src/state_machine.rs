//! openraft's state machine over the `mvcc` store (sled).
//!
//! Each log entry is applied as one atomic sled batch that holds the entry's data changes,
//! the applied log id and (for membership entries) the membership, so a crash recovers to
//! some earlier applied point and openraft re-applies the rest from the durable log.
//! The state machine is not flushed per entry: the log is the durability point.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use conclave_mvcc::{CommitOutcome, GroupId, MvccError, Store, WriteResponse};
use futures::{Stream, TryStreamExt};
use openraft::alias::SnapshotOf;
use openraft::entry::RaftEntry;
use openraft::storage::{ApplyResponder, EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use prometheus::Histogram;
use tokio::sync::broadcast;

use crate::format::{self, kind};
use crate::snapshot::{self, SnapshotDir, SnapshotFile};
use crate::types::{
    Alarm, AlarmChange, Command, CommandResult, LogId, SnapshotMeta, StoredMembership, TypeConfig,
};

pub(crate) const LAST_APPLIED: &str = "raft.last_applied";
pub(crate) const MEMBERSHIP: &str = "raft.membership";
/// The replicated alarm list (etcd's Maintenance.Alarm).
pub const ALARMS: &str = "alarms";

fn storage_error(e: MvccError) -> io::Error {
    io::Error::other(e.to_string())
}

/// The applied state of one Raft group.
pub struct StateMachine {
    store: Arc<Store>,
    snapshots: Arc<SnapshotDir>,
    commits: broadcast::Sender<Arc<CommitOutcome>>,
    /// Observes how long each apply batch takes to commit to sled.
    commit_seconds: Option<Histogram>,
}

/// Entries applied per sled batch at most (bounds the memory a batch stages).
const APPLY_BATCH: usize = 256;

/// A client to answer once its batch commits: the revision after its entry and its
/// outcome (none for entries without a KV outcome).
type PendingAnswer = (
    ApplyResponder<TypeConfig>,
    i64,
    Option<Result<WriteResponse, MvccError>>,
);

/// What an apply batch has staged besides the data.
#[derive(Default)]
struct ApplyBatch {
    entries: usize,
    last: Option<LogId>,
    /// The alarm list as changed by this batch so far.
    alarms: Option<Vec<Alarm>>,
    /// Who to answer, with the revision after their entry and their outcome.
    answers: Vec<PendingAnswer>,
}

fn apply_alarm_change(mut alarms: Vec<Alarm>, change: &AlarmChange) -> Vec<Alarm> {
    match change {
        AlarmChange::Activate(alarm) => {
            if !alarms.contains(alarm) {
                alarms.push(*alarm);
            }
        }
        AlarmChange::Deactivate(alarm) => alarms.retain(|a| a != alarm),
    }
    alarms
}

/// Builds a snapshot file from a dump taken between two applies.
pub struct SnapshotBuilder {
    snapshot: Option<(SnapshotMeta, SnapshotFile)>,
}

impl StateMachine {
    /// Opens the state machine of `group` in `db`, with its snapshots under `snapshot_dir`.
    pub fn open(db: &sled::Db, group: GroupId, snapshot_dir: &Path) -> io::Result<StateMachine> {
        let store = Store::open(db, group).map_err(storage_error)?;
        let snapshots = SnapshotDir::open(snapshot_dir)?;
        let (commits, _) = broadcast::channel(1024);
        Ok(StateMachine {
            store: Arc::new(store),
            snapshots: Arc::new(snapshots),
            commits,
            commit_seconds: None,
        })
    }

    /// Observes the latency of every apply-batch commit in `histogram` from now on.
    pub fn measure_commits(&mut self, histogram: Histogram) {
        self.commit_seconds = Some(histogram);
    }

    /// The MVCC store this state machine applies to; reads go here directly.
    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// The sender of every commit that changed the store, in apply order (the watch hub
    /// subscribes to it).
    pub fn commit_sender(&self) -> broadcast::Sender<Arc<CommitOutcome>> {
        self.commits.clone()
    }

    /// The directory of this group's snapshots.
    pub fn snapshot_dir(&self) -> Arc<SnapshotDir> {
        self.snapshots.clone()
    }

    fn read_meta(&self) -> io::Result<(Option<LogId>, StoredMembership)> {
        let applied = match self.store.app_meta(LAST_APPLIED).map_err(storage_error)? {
            Some(bytes) => Some(format::decode::<kind::LastApplied>(&bytes)?),
            None => None,
        };
        let membership = match self.store.app_meta(MEMBERSHIP).map_err(storage_error)? {
            Some(bytes) => format::decode::<kind::StoredMembership>(&bytes)?,
            None => StoredMembership::default(),
        };
        Ok((applied, membership))
    }
}

impl StateMachine {
    /// Commits a batch, publishes its events one revision at a time (what watchers
    /// expect), then answers its clients.
    fn commit_batch(&self, mut txn: conclave_mvcc::WriteTxn<'_>, batch: ApplyBatch) -> Result<(), io::Error> {
        if let Some(log_id) = &batch.last {
            txn.set_app_meta(LAST_APPLIED, format::encode::<kind::LastApplied>(log_id)?);
        }
        let started = Instant::now();
        let committed = txn.commit().map_err(storage_error)?;
        if let Some(histogram) = &self.commit_seconds {
            histogram.observe(started.elapsed().as_secs_f64());
        }
        // Nobody listening is fine: watchers subscribe when they exist.
        let mut events = committed.events.into_iter().peekable();
        while let Some(first) = events.next() {
            let revision = first.kv.mod_revision;
            let mut group = vec![first];
            while let Some(next) = events.next_if(|e| e.kv.mod_revision == revision) {
                group.push(next);
            }
            let _ = self.commits.send(Arc::new(CommitOutcome {
                revision,
                events: group,
            }));
        }
        for (responder, revision, outcome) in batch.answers {
            let outcome = outcome.unwrap_or(Ok(WriteResponse::Compact));
            responder.send(CommandResult { revision, outcome });
        }
        Ok(())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        self.read_meta()
    }

    /// Applies entries in batches of up to [`APPLY_BATCH`]: one atomic sled batch holds the
    /// data changes, the last applied log id and any membership or alarm change of every
    /// entry in it, so a crash keeps or loses the batch as a whole (openraft re-applies it
    /// from the log). Clients are answered only after their batch is committed.
    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut batch = ApplyBatch::default();
        let mut txn = self.store.write_txn();
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            let mut outcome = None;
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(Command::Write(request)) => match txn.execute(request) {
                    // Only etcd's deterministic rejections are an entry's outcome; a local
                    // storage failure must stop this member rather than let it skip an
                    // entry the others apply.
                    Err(e @ (MvccError::Storage(_) | MvccError::Corrupt(_))) => {
                        return Err(io::Error::other(format!("applying log entry {log_id}: {e}")));
                    }
                    result => outcome = Some(result),
                },
                EntryPayload::Normal(Command::Alarm(change)) => {
                    // Earlier alarm changes of this batch are staged, not yet in the store.
                    let alarms = match batch.alarms.take() {
                        Some(alarms) => alarms,
                        None => match self.store.app_meta(ALARMS).map_err(storage_error)? {
                            Some(bytes) => format::decode::<kind::Alarms>(&bytes)?,
                            None => Vec::new(),
                        },
                    };
                    let alarms = apply_alarm_change(alarms, change);
                    txn.set_app_meta(ALARMS, format::encode::<kind::Alarms>(&alarms)?);
                    batch.alarms = Some(alarms);
                }
                EntryPayload::Membership(membership) => {
                    let stored = StoredMembership::new(Some(log_id), membership.clone());
                    txn.set_app_meta(MEMBERSHIP, format::encode::<kind::StoredMembership>(&stored)?);
                }
            }
            batch.last = Some(log_id);
            if let Some(responder) = responder {
                batch.answers.push((responder, txn.current_revision(), outcome));
            }
            batch.entries += 1;
            if batch.entries >= APPLY_BATCH {
                self.commit_batch(txn, std::mem::take(&mut batch))?;
                txn = self.store.write_txn();
            }
        }
        if batch.entries > 0 {
            self.commit_batch(txn, batch)?;
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, _force: bool) -> Option<SnapshotBuilder> {
        // The dump is taken here, on the state machine task, so no apply runs during it and
        // it is a consistent point-in-time view; build_snapshot then only hands it over.
        let store = self.store.clone();
        let snapshots = self.snapshots.clone();
        let meta = match self.read_meta() {
            Ok((last_log_id, last_membership)) => SnapshotMeta {
                last_log_id,
                last_membership,
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot read state machine meta for a snapshot; not building one");
                return None;
            }
        };
        let dumped = tokio::task::spawn_blocking(move || {
            snapshots
                .write(&meta, |sink| {
                    store
                        .export_to(|k, v| sink(k, v).map_err(|e| MvccError::Storage(e.to_string())))
                        .map_err(storage_error)
                })
                .map(|(file, records)| (meta, file, records))
        })
        .await;
        match dumped {
            Ok(Ok((meta, file, records))) => {
                tracing::info!(
                    last_log_id = ?meta.last_log_id,
                    records,
                    path = %file.path.display(),
                    "snapshot built"
                );
                Some(SnapshotBuilder {
                    snapshot: Some((meta, file)),
                })
            }
            // Refusing (None) lets openraft try again later; a builder that fails would
            // stop the Raft core.
            Ok(Err(e)) => {
                tracing::error!(error = %e, "building a snapshot failed; will retry later");
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "snapshot task failed; will retry later");
                None
            }
        }
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        self.try_create_snapshot_builder(true)
            .await
            .unwrap_or(SnapshotBuilder { snapshot: None })
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, data: SnapshotFile) -> Result<(), io::Error> {
        let store = self.store.clone();
        let snapshots = self.snapshots.clone();
        let meta = meta.clone();
        let installed = tokio::task::spawn_blocking(move || -> io::Result<(SnapshotMeta, u64)> {
            let (file_meta, records) = snapshot::verify(&data.path)?;
            if file_meta.last_log_id != meta.last_log_id {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "snapshot file is at {:?} but was announced at {:?}",
                        file_meta.last_log_id, meta.last_log_id
                    ),
                ));
            }
            let (_, reader) = snapshot::open_records(&data.path)?;
            store
                .import_from(reader.map(|r| r.map_err(|e| MvccError::Storage(e.to_string()))))
                .map_err(storage_error)?;
            // The dump already holds these, but say them again so the applied state can
            // only ever equal the announced snapshot.
            let mut txn = store.write_txn();
            if let Some(log_id) = &meta.last_log_id {
                txn.set_app_meta(LAST_APPLIED, format::encode::<kind::LastApplied>(log_id)?);
            }
            txn.set_app_meta(
                MEMBERSHIP,
                format::encode::<kind::StoredMembership>(&meta.last_membership)?,
            );
            txn.commit().map_err(storage_error)?;
            store.flush().map_err(storage_error)?;
            snapshots.adopt(&meta, data)?;
            Ok((meta, records))
        })
        .await
        .map_err(io::Error::other)??;
        tracing::info!(last_log_id = ?installed.0.last_log_id, records = installed.1, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, SnapshotFile>>, io::Error> {
        let snapshots = self.snapshots.clone();
        let current = tokio::task::spawn_blocking(move || snapshots.current())
            .await
            .map_err(io::Error::other)??;
        Ok(current.map(|(meta, snapshot)| SnapshotOf::<TypeConfig, SnapshotFile> { meta, snapshot }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TypeConfig, SnapshotFile>, io::Error> {
        match self.snapshot.take() {
            Some((meta, snapshot)) => Ok(SnapshotOf::<TypeConfig, SnapshotFile> { meta, snapshot }),
            None => Err(io::Error::other(
                "the snapshot dump failed; see the earlier error",
            )),
        }
    }
}
