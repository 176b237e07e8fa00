//! The durable Raft log and vote: openraft's `RaftLogStorage` over [`wal::Wal`].
//!
//! Invariants (see docs/ARCHITECTURE.md):
//! - entries are readable as soon as `append` returns, and openraft's flush callback fires
//!   only after they are `fdatasync`ed;
//! - `save_vote` returns only after the vote is `fdatasync`ed;
//! - every write goes through one FIFO channel to one writer thread, so vote and entries
//!   reach the disk in the order openraft issued them, and concurrent appends share one
//!   `fdatasync` (group commit).
//!
//! Live entries are also kept in memory (the log is purged behind snapshots, which bounds
//! it by the snapshot policy), so replication reads never touch the disk.

pub mod wal;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use prometheus::Histogram;
use tokio::sync::oneshot;

use crate::format::{self, kind};
use crate::types::{Entry, LogId, TypeConfig, Vote};
use wal::Wal;

/// Default size at which a log segment is sealed and a new one started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// One record of the log file (encoded as `format::kind::WalRecord`).
#[derive(Debug)]
pub(crate) enum WalRecord {
    /// Entries, each replacing everything from its index on.
    Entries(Vec<Entry>),
    /// The vote.
    Vote(Vote),
    /// The committed log id.
    Committed(Option<LogId>),
    /// Everything up to this log id is purged.
    Purged(LogId),
    /// Everything after this log id is removed.
    TruncatedAfter(Option<LogId>),
    /// The non-entry state, written first in every new segment.
    Checkpoint {
        vote: Option<Vote>,
        committed: Option<LogId>,
        purged: Option<LogId>,
    },
}

/// The log's state: what readers see, and what replay rebuilds.
#[derive(Debug, Default)]
struct LogContents {
    entries: BTreeMap<u64, Entry>,
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
}

impl LogContents {
    fn apply(&mut self, record: WalRecord) -> Option<u64> {
        match record {
            WalRecord::Entries(entries) => {
                let mut max = None;
                for entry in entries {
                    let index = entry.index();
                    // A rewritten index replaces everything after it (Raft log matching).
                    self.entries.split_off(&index);
                    self.entries.insert(index, entry);
                    max = Some(index);
                }
                max
            }
            WalRecord::Vote(vote) => {
                self.vote = Some(vote);
                None
            }
            WalRecord::Committed(committed) => {
                self.committed = committed;
                None
            }
            WalRecord::Purged(log_id) => {
                self.purge(log_id);
                None
            }
            WalRecord::TruncatedAfter(log_id) => {
                let from = log_id.map_or(0, |id| id.index() + 1);
                self.entries.split_off(&from);
                None
            }
            WalRecord::Checkpoint {
                vote,
                committed,
                purged,
            } => {
                self.vote = vote;
                self.committed = committed;
                if let Some(purged) = purged {
                    self.purge(purged);
                }
                None
            }
        }
    }

    fn purge(&mut self, log_id: LogId) {
        let keep = self.entries.split_off(&(log_id.index() + 1));
        self.entries = keep;
        if self.purged.as_ref().is_none_or(|p| p.index() < log_id.index()) {
            self.purged = Some(log_id);
        }
    }
}

/// Completion of one write, fired by the writer thread after `fdatasync`.
enum Done {
    Nothing,
    Flushed(IOFlushed<TypeConfig>),
    Notify(oneshot::Sender<io::Result<()>>),
}

struct WriteOp {
    record: WalRecord,
    done: Done,
}

struct Shared {
    contents: Mutex<LogContents>,
    /// Number of `fdatasync`s the writer has completed (group commit makes this far
    /// smaller than the number of appends under concurrency).
    syncs: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, LogContents> {
        // A panic while holding the lock leaves the map consistent (every mutation is a
        // single map operation), so a poisoned lock is still safe to read.
        self.contents
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The Raft log and vote of one group, durable on disk.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
    writer: mpsc::Sender<WriteOp>,
}

/// A read handle to the log, used concurrently by replication tasks.
#[derive(Clone)]
pub struct LogReader {
    shared: Arc<Shared>,
}

impl LogStore {
    /// Opens the log in `dir`, replaying what is on disk, and starts its writer thread.
    pub fn open(dir: &Path, segment_bytes: u64) -> io::Result<LogStore> {
        LogStore::open_measured(dir, segment_bytes, None)
    }

    /// [`LogStore::open`], observing the latency of every `fdatasync` in `fsync_seconds`.
    pub fn open_measured(
        dir: &Path,
        segment_bytes: u64,
        fsync_seconds: Option<Histogram>,
    ) -> io::Result<LogStore> {
        let mut contents = LogContents::default();
        let wal = Wal::open(dir, segment_bytes, |bytes| {
            let record = format::decode::<kind::WalRecord>(bytes)?;
            Ok(contents.apply(record))
        })?;
        tracing::info!(
            dir = %dir.display(),
            entries = contents.entries.len(),
            purged = ?contents.purged.as_ref().map(|p| p.index()),
            "raft log opened"
        );
        let state = WriterState {
            vote: contents.vote,
            committed: contents.committed,
            purged: contents.purged,
        };
        let shared = Arc::new(Shared {
            contents: Mutex::new(contents),
            syncs: Default::default(),
        });
        let (tx, rx) = mpsc::channel();
        let writer_shared = shared.clone();
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || run_writer(wal, state, rx, &writer_shared, fsync_seconds))?;
        Ok(LogStore { shared, writer: tx })
    }

    fn submit(&self, record: WalRecord, done: Done) -> io::Result<()> {
        self.writer
            .send(WriteOp { record, done })
            .map_err(|_| io::Error::other("raft log writer thread has stopped"))
    }

    /// Waits until every write submitted so far is on disk.
    pub async fn sync(&self) -> io::Result<()> {
        let committed = self.shared.lock().committed;
        self.submit_and_wait(WalRecord::Committed(committed)).await
    }

    /// How many times the log has been `fdatasync`ed since it was opened.
    pub fn fsync_count(&self) -> u64 {
        self.shared.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn submit_and_wait(&self, record: WalRecord) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.submit(record, Done::Notify(tx))?;
        rx.await
            .map_err(|_| io::Error::other("raft log writer thread has stopped"))?
    }
}

/// What the writer thread tracks to write a checkpoint at each segment rotation.
struct WriterState {
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
}

fn run_writer(
    mut wal: Wal,
    mut state: WriterState,
    rx: mpsc::Receiver<WriteOp>,
    shared: &Shared,
    fsync_seconds: Option<Histogram>,
) {
    let mut failed: Option<String> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());

        let mut result: io::Result<()> = match &failed {
            Some(why) => Err(io::Error::other(why.clone())),
            None => Ok(()),
        };
        if result.is_ok() {
            for op in &batch {
                let max_index = match &op.record {
                    WalRecord::Entries(entries) => entries.last().map(|e| e.index()),
                    WalRecord::Vote(v) => {
                        state.vote = Some(*v);
                        None
                    }
                    WalRecord::Committed(c) => {
                        state.committed = *c;
                        None
                    }
                    WalRecord::Purged(p) => {
                        state.purged = Some(*p);
                        None
                    }
                    WalRecord::TruncatedAfter(_) | WalRecord::Checkpoint { .. } => None,
                };
                result = match &op.record {
                    // One record per entry, so no record grows with the size of a batch.
                    WalRecord::Entries(entries) => entries.iter().try_for_each(|entry| {
                        let bytes = format::encode_wal_entry(entry)?;
                        wal.append(&bytes, Some(entry.index()))
                    }),
                    other => format::encode::<kind::WalRecord>(other)
                        .map_err(io::Error::from)
                        .and_then(|bytes| wal.append(&bytes, max_index)),
                };
                if result.is_err() {
                    break;
                }
            }
        }
        if result.is_ok() {
            let started = Instant::now();
            result = wal.sync();
            if let Some(histogram) = &fsync_seconds {
                histogram.observe(started.elapsed().as_secs_f64());
            }
            shared.syncs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if result.is_ok() && wal.wants_rotation() {
            result = rotate(&mut wal, &state);
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, "raft log write failed; this member stops accepting log writes");
            failed.get_or_insert_with(|| format!("raft log write failed earlier: {e}"));
        }
        for op in batch {
            let res = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            match op.done {
                Done::Nothing => {}
                Done::Flushed(callback) => callback.io_completed(res),
                Done::Notify(tx) => {
                    let _ = tx.send(res);
                }
            }
        }
    }
}

fn rotate(wal: &mut Wal, state: &WriterState) -> io::Result<()> {
    let checkpoint = WalRecord::Checkpoint {
        vote: state.vote,
        committed: state.committed,
        purged: state.purged,
    };
    wal.rotate(&format::encode::<kind::WalRecord>(&checkpoint)?)?;
    if let Some(purged) = &state.purged {
        wal.remove_purged_segments(purged.index())?;
    }
    Ok(())
}

/// Both the store and its reader handles read the same shared contents.
macro_rules! impl_log_reader {
    ($($ty:ty),*) => {$(
        impl RaftLogReader<TypeConfig> for $ty {
            async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
                &mut self,
                range: RB,
            ) -> Result<Vec<Entry>, io::Error> {
                let contents = self.shared.lock();
                Ok(contents.entries.range(range).map(|(_, e)| e.clone()).collect())
            }

            async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
                Ok(self.shared.lock().vote)
            }
        }
    )*};
}

impl_log_reader!(LogReader, LogStore);

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let contents = self.shared.lock();
        let last = contents.entries.values().next_back().map(|e| e.log_id());
        Ok(LogState {
            last_purged_log_id: contents.purged,
            last_log_id: last.or_else(|| contents.purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.shared.lock().vote = Some(*vote);
        self.submit_and_wait(WalRecord::Vote(*vote)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Not waited for: a lost commit index is recomputed by the leader; it only lets a
        // restarted member re-apply its log before it hears from one.
        self.shared.lock().committed = committed;
        self.submit(WalRecord::Committed(committed), Done::Nothing)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.shared.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        {
            let mut contents = self.shared.lock();
            for entry in &entries {
                contents.entries.insert(entry.index(), entry.clone());
            }
        }
        self.submit(WalRecord::Entries(entries), Done::Flushed(callback))
    }

    /// Waits for the truncation to be durable: otherwise a crash could bring back entries
    /// the state machine has already been told were replaced (a log that ends before what
    /// was applied, which openraft refuses to start on).
    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        {
            let mut contents = self.shared.lock();
            let from = last_log_id.as_ref().map_or(0, |id| id.index() + 1);
            contents.entries.split_off(&from);
        }
        self.submit_and_wait(WalRecord::TruncatedAfter(last_log_id)).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        self.shared.lock().purge(log_id);
        self.submit(WalRecord::Purged(log_id), Done::Nothing)
    }
}
