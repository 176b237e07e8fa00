//! The [`Store`]: one Raft group's MVCC data in a sled database.
//!
//! Trees (all named after the group):
//! - `g<group>/meta`: the active-generation pointer (`active_generation` → u64).
//! - `g<group>/kv.<generation>`: every record of the store (layout in `encoding`). A
//!   snapshot import writes a fresh generation and then moves the pointer, so a crash at
//!   any point leaves either the old or the new content, never a mix.

use crate::backend::{Engine, OrderedTree, Tree, TreeEngine};
use crate::encoding::{
    self, app_key, meta_key, KeyRange, UserEnd, META_COMPACT_REVISION, META_CURRENT_REVISION, TAG_APP,
};
use crate::error::{MvccError, Result};
use crate::types::{Event, GroupId, RangeRequest, RangeResponse};
use crate::view::View;
use crate::write::WriteTxn;
use crate::{history, range, validate};
use std::fmt;
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Key of the active-generation pointer in the group's meta tree.
pub(crate) const ACTIVE_GENERATION: &[u8] = b"active_generation";

/// The generation tree currently serving reads and writes, with its cached meta.
pub(crate) struct ActiveState {
    pub(crate) generation: u64,
    pub(crate) tree: Tree,
    pub(crate) current_revision: i64,
    pub(crate) compact_revision: i64,
    /// Bumped by every commit and import; a write txn started at another value is stale.
    pub(crate) commit_seq: u64,
}

impl ActiveState {
    pub(crate) fn view(&self) -> View<'_> {
        View::new(&self.tree, None, self.current_revision, self.compact_revision)
    }
}

/// One Raft group's multi-version key-value store (etcd's data model).
///
/// Guarantees: `Send + Sync`; any number of readers may run concurrently with the single
/// writer, and no reader ever observes part of a commit or of a snapshot import. Only one
/// `Store` may be open per (database, group) at a time.
pub struct Store {
    pub(crate) engine: Engine,
    pub(crate) group: GroupId,
    pub(crate) meta: Tree,
    pub(crate) state: RwLock<ActiveState>,
    /// Serialises snapshot imports.
    pub(crate) import_lock: Mutex<()>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read_state();
        f.debug_struct("Store")
            .field("group", &self.group)
            .field("generation", &state.generation)
            .field("current_revision", &state.current_revision)
            .field("compact_revision", &state.compact_revision)
            .finish()
    }
}

/// Name of the group's meta tree.
pub(crate) fn meta_tree_name(group: GroupId) -> String {
    format!("g{}/meta", group.0)
}

/// Name of one data generation tree of the group.
pub(crate) fn kv_tree_name(group: GroupId, generation: u64) -> String {
    format!("{}{generation}", kv_tree_prefix(group))
}

fn kv_tree_prefix(group: GroupId) -> String {
    format!("g{}/kv.", group.0)
}

/// Reads (current revision, compact revision) from a generation tree; absent records
/// mean an empty store (revision 1, never compacted).
pub(crate) fn read_revisions(tree: &Tree) -> Result<(i64, i64)> {
    let read = |name: &[u8], default: i64| -> Result<i64> {
        let key = meta_key(name);
        match tree.get(&key)? {
            Some(raw) => encoding::open_record::<i64>(&key, &raw),
            None => Ok(default),
        }
    };
    Ok((read(META_CURRENT_REVISION, 1)?, read(META_COMPACT_REVISION, 0)?))
}

impl Store {
    /// Opens (or creates) the data of `group` in `db`.
    ///
    /// Guarantees: the store reflects the last atomically committed state that reached
    /// disk; leftovers of an interrupted snapshot import are discarded. A new store is at
    /// revision 1 with compact revision 0.
    pub fn open(db: &sled::Db, group: GroupId) -> Result<Store> {
        let engine = Engine::new(db);
        let meta = engine.open_tree(&meta_tree_name(group))?;
        let generation = match meta.get(ACTIVE_GENERATION)? {
            Some(raw) => encoding::open_record::<u64>(ACTIVE_GENERATION, &raw)?,
            None => 0,
        };
        let active_name = kv_tree_name(group, generation);
        let prefix = kv_tree_prefix(group);
        for name in engine.tree_names() {
            let is_generation = name
                .strip_prefix(&prefix)
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()));
            if is_generation && name != active_name {
                tracing::info!(tree = %name, group = %group, "dropping stale generation tree");
                engine.drop_tree(&name)?;
            }
        }
        let tree = engine.open_tree(&active_name)?;
        let (current_revision, compact_revision) = read_revisions(&tree)?;
        tracing::debug!(group = %group, generation, current_revision, compact_revision, "opened mvcc store");
        Ok(Store {
            engine,
            group,
            meta,
            state: RwLock::new(ActiveState {
                generation,
                tree,
                current_revision,
                compact_revision,
                commit_seq: 0,
            }),
            import_lock: Mutex::new(()),
        })
    }

    /// Read access to the active state. A poisoned lock (a panic while it was held) is
    /// recovered: the state is only replaced wholesale after a successful write, so it is
    /// never half-updated.
    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, ActiveState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Exclusive access to the active state (commits and imports).
    pub(crate) fn write_state(&self) -> RwLockWriteGuard<'_, ActiveState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The group this store holds.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// The revision of the last change (1 for an empty store, as etcd).
    pub fn current_revision(&self) -> i64 {
        self.read_state().current_revision
    }

    /// The revision of the last compaction (0 when never compacted).
    pub fn compact_revision(&self) -> i64 {
        self.read_state().compact_revision
    }

    /// Reads a key or range at `req.revision` (<= 0: latest) with etcd's semantics.
    ///
    /// Guarantees: sees only whole commits; errors `KeyNotProvided` for an empty key,
    /// `Compacted` below the compact revision, `FutureRevision` above the current one.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        self.range_at_revision(req).map(|(response, _)| response)
    }

    /// [`Store::range`], together with the store's current revision at the moment of the
    /// read (what etcd puts in the response header): no commit lands between the two, so
    /// a client that lists and then watches from `revision + 1` misses nothing.
    pub fn range_at_revision(&self, req: &RangeRequest) -> Result<(RangeResponse, i64)> {
        validate::validate_range(req)?;
        let state = self.read_state();
        let response = range::range(&state.view(), req)?;
        Ok((response, state.current_revision))
    }

    /// Starts the single writer's transaction; see [`WriteTxn`].
    pub fn write_txn(&self) -> WriteTxn<'_> {
        WriteTxn::new(self)
    }

    /// Caller metadata staged with [`WriteTxn::set_app_meta`], as last committed.
    pub fn app_meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let key = app_key(name);
        let state = self.read_state();
        match state.tree.get(&key)? {
            Some(raw) => Ok(Some(encoding::open(&key, &raw)?.to_vec())),
            None => Ok(None),
        }
    }

    /// Every event with `start_revision <= revision <= end_revision`, in revision and
    /// sub-revision order (the end is clamped to the current revision; a start <= 0 means
    /// 1). With `prev_kv`, each event carries the version it replaced when that is still
    /// stored.
    ///
    /// Errors `Compacted` when `start_revision` is below the compact revision (etcd's
    /// watch rule). History at exactly the compact revision is served, minus what the
    /// compaction removed there (deletions, and versions superseded within it).
    pub fn events(&self, start_revision: i64, end_revision: i64, prev_kv: bool) -> Result<Vec<Event>> {
        let state = self.read_state();
        history::events(&state.view(), start_revision, end_revision, prev_kv)
    }

    /// A crc32 over every MVCC record (revisions, latest index, history, event log, leases
    /// and their key attachments) in key order.
    ///
    /// Guarantees: members that applied the same writes and compactions (or installed a
    /// snapshot of such a member) get the same hash. App meta is excluded: it holds each
    /// member's own Raft positions, which legitimately differ at the same revision.
    pub fn hash(&self) -> Result<u32> {
        self.hash_at_revision().map(|(hash, _, _)| hash)
    }

    /// [`Store::hash`] with the current and compact revisions it was computed at, read
    /// under one lock (what HashKV reports).
    pub fn hash_at_revision(&self) -> Result<(u32, i64, i64)> {
        let state = self.read_state();
        let mut hasher = crc32fast::Hasher::new();
        for item in state.tree.scan(&KeyRange::all(), false) {
            let (k, v) = item?;
            if k.first() == Some(&TAG_APP) {
                continue;
            }
            // Length-prefix both parts so record boundaries are part of the hash.
            hasher.update(&(k.len() as u64).to_be_bytes());
            hasher.update(&k);
            hasher.update(&(v.len() as u64).to_be_bytes());
            hasher.update(&v);
        }
        Ok((hasher.finalize(), state.current_revision, state.compact_revision))
    }

    /// Bytes of live records (keys and values, history included) in this store: what the
    /// data would occupy if stored compactly. Unlike [`Store::size_on_disk`] it shrinks
    /// when keys are deleted and history is compacted. Scans the store.
    ///
    /// The scan runs on a handle to the tree without holding the store's lock, so commits
    /// and reads proceed meanwhile (the total is then approximate, which a quota check
    /// tolerates).
    pub fn size_in_use(&self) -> Result<u64> {
        let tree = self.read_state().tree.clone();
        let mut total = 0u64;
        for item in tree.scan(&KeyRange::all(), false) {
            let (k, v) = item?;
            total += (k.len() + v.len()) as u64;
        }
        Ok(total)
    }

    /// Bytes the whole sled database occupies on disk (all groups).
    pub fn size_on_disk(&self) -> Result<u64> {
        self.engine.size_on_disk()
    }

    /// Makes every commit so far durable (flushes the whole sled database).
    pub fn flush(&self) -> Result<()> {
        self.engine.flush()
    }

    /// Number of keys live at the latest revision.
    pub fn key_count(&self) -> Result<i64> {
        let state = self.read_state();
        let mut n = 0i64;
        state
            .view()
            .visit_at(b"", &UserEnd::ToEnd, state.current_revision, 0, |_| n += 1)?;
        Ok(n)
    }
}

/// Checks that a [`WriteTxn`] is still based on the active state.
pub(crate) fn ensure_fresh(state: &ActiveState, generation: u64, commit_seq: u64) -> Result<()> {
    if state.generation != generation || state.commit_seq != commit_seq {
        return Err(MvccError::Storage(
            "write txn is stale: another commit or a snapshot import happened since it \
             started; the single writer must start a new write txn"
                .to_string(),
        ));
    }
    Ok(())
}
