//! The single writer path: [`WriteTxn`] stages client requests (put, delete, txn,
//! compact, lease grant/revoke/checkpoint) and caller metadata, and commits them with one
//! atomic batch.

use crate::backend::{OrderedTree, Tree};
use crate::encoding::{
    attach_key, history_key, latest_key, meta_key, revision_key, seal, seal_record, HistoryRecord,
    RevisionRecord, StoredVersion, UserEnd, META_CURRENT_REVISION,
};
use crate::error::{MvccError, Result};
use crate::store::{ensure_fresh, Store};
use crate::types::{
    CommitOutcome, DeleteRangeRequest, DeleteRangeResponse, Event, EventKind, KeyValue, PutRequest,
    PutResponse, RangeRequest, RangeResponse, WriteRequest, WriteResponse,
};
use crate::validate::{validate_delete_range, validate_lease_grant, validate_put, validate_txn};
use crate::view::{Pending, View};
use crate::{compaction, lease, range, txn};

/// The store's single writer: applies client requests and caller metadata, then commits
/// them together.
///
/// Guarantees:
/// - [`WriteTxn::execute`] is all-or-nothing: on `Err` nothing of that request is staged.
/// - Each executed request that changes something gets its own next revision; requests
///   that change no key (a delete matching no key, a read-only txn, a compaction, a lease
///   grant or checkpoint, a revoke of a lease without keys) don't.
/// - Nothing is visible to readers before [`WriteTxn::commit`], which writes every staged
///   record, app meta included, in one atomic batch: after a crash either all of it or
///   none of it is present (durable once [`Store::flush`] returns).
/// - Dropping a `WriteTxn` without committing discards it.
///
/// Only one `WriteTxn` may be in use at a time; a commit or import that happens after a
/// `WriteTxn` started makes it stale (its `execute`/`commit` then fail with `Storage`).
pub struct WriteTxn<'a> {
    store: &'a Store,
    generation: u64,
    commit_seq: u64,
    pending: Pending,
    current_revision: i64,
    compact_revision: i64,
    events: Vec<Event>,
}

impl<'a> WriteTxn<'a> {
    pub(crate) fn new(store: &'a Store) -> WriteTxn<'a> {
        let state = store.read_state();
        WriteTxn {
            store,
            generation: state.generation,
            commit_seq: state.commit_seq,
            pending: Pending::new(),
            current_revision: state.current_revision,
            compact_revision: state.compact_revision,
            events: Vec::new(),
        }
    }

    /// The current revision including the requests executed so far in this txn.
    pub fn current_revision(&self) -> i64 {
        self.current_revision
    }

    /// Applies one client request with etcd's semantics and stages its changes.
    ///
    /// Guarantees: runs the same validation as the `validate_*` functions (without the
    /// op limit) first; on any error leaves this txn exactly as it was.
    pub fn execute(&mut self, req: &WriteRequest) -> Result<WriteResponse> {
        validate_write(req)?;
        let state = self.store.read_state();
        ensure_fresh(&state, self.generation, self.commit_seq)?;
        let mut exec = Exec::new(
            &state.tree,
            &mut self.pending,
            self.current_revision,
            self.compact_revision,
        );
        let result = exec.run(req);
        match result {
            Ok(resp) => {
                let (revision, compact_revision, mut events) = exec.into_outcome();
                self.current_revision = revision;
                self.compact_revision = compact_revision;
                self.events.append(&mut events);
                Ok(resp)
            }
            Err(e) => {
                exec.rollback();
                Err(e)
            }
        }
    }

    /// Stages caller metadata under `name`, committed atomically with the data.
    pub fn set_app_meta(&mut self, name: &str, value: Vec<u8>) {
        self.pending
            .insert(crate::encoding::app_key(name), Some(seal(&value)));
    }

    /// Stages the removal of caller metadata `name`, committed atomically with the data.
    pub fn remove_app_meta(&mut self, name: &str) {
        self.pending.insert(crate::encoding::app_key(name), None);
    }

    /// Writes everything staged in one atomic batch and makes it visible to readers.
    ///
    /// Guarantees: readers see either none or all of it; returns the new current revision
    /// and the events of every revision created (empty if nothing changed). A txn with
    /// nothing staged writes nothing.
    pub fn commit(self) -> Result<CommitOutcome> {
        let WriteTxn {
            store,
            generation,
            commit_seq,
            pending,
            current_revision,
            compact_revision,
            events,
        } = self;
        let mut state = store.write_state();
        ensure_fresh(&state, generation, commit_seq)?;
        if !pending.is_empty() {
            state.tree.apply(pending)?;
            state.current_revision = current_revision;
            state.compact_revision = compact_revision;
            state.commit_seq += 1;
        }
        Ok(CommitOutcome {
            revision: current_revision,
            events,
        })
    }
}

fn validate_write(req: &WriteRequest) -> Result<()> {
    match req {
        WriteRequest::Put(p) => validate_put(p),
        WriteRequest::DeleteRange(d) => validate_delete_range(d),
        WriteRequest::Txn(t) => validate_txn(t, usize::MAX),
        WriteRequest::LeaseGrant { id, ttl } => validate_lease_grant(*id, *ttl),
        WriteRequest::Compact { .. }
        | WriteRequest::LeaseRevoke { .. }
        | WriteRequest::LeaseCheckpoint { .. } => Ok(()),
    }
}

/// Previous state of a staged record: `None` = it was not staged.
type Undo = (Vec<u8>, Option<Option<Vec<u8>>>);

/// Execution of one request: stages changes at `revision` with increasing sub-revisions
/// and remembers how to undo them.
pub(crate) struct Exec<'t> {
    tree: &'t Tree,
    pending: &'t mut Pending,
    undo: Vec<Undo>,
    /// Revision before this request.
    pub(crate) base_revision: i64,
    /// Compact revision (updated by a compaction).
    pub(crate) compact_revision: i64,
    /// The revision this request's changes get.
    revision: i64,
    /// Next sub-revision; > 0 once something changed.
    sub: i64,
    events: Vec<Event>,
}

impl<'t> Exec<'t> {
    fn new(tree: &'t Tree, pending: &'t mut Pending, base: i64, compact: i64) -> Exec<'t> {
        Exec {
            tree,
            pending,
            undo: Vec::new(),
            base_revision: base,
            compact_revision: compact,
            revision: base.saturating_add(1),
            sub: 0,
            events: Vec::new(),
        }
    }

    fn run(&mut self, req: &WriteRequest) -> Result<WriteResponse> {
        let resp = match req {
            WriteRequest::Put(p) => WriteResponse::Put(self.put(p)?),
            WriteRequest::DeleteRange(d) => WriteResponse::DeleteRange(self.delete_range(d)?),
            WriteRequest::Txn(t) => WriteResponse::Txn(txn::execute_txn(self, t)?),
            WriteRequest::Compact { revision } => {
                compaction::compact(self, *revision)?;
                WriteResponse::Compact
            }
            WriteRequest::LeaseGrant { id, ttl } => {
                lease::grant(self, *id, *ttl)?;
                WriteResponse::LeaseGrant { id: *id, ttl: *ttl }
            }
            WriteRequest::LeaseRevoke { id } => {
                lease::revoke(self, *id)?;
                WriteResponse::LeaseRevoke
            }
            WriteRequest::LeaseCheckpoint { checkpoints } => {
                lease::checkpoint(self, checkpoints)?;
                WriteResponse::LeaseCheckpoint
            }
        };
        if self.sub > 0 {
            let rev = seal_record(&self.revision)?;
            self.stage(meta_key(META_CURRENT_REVISION), Some(rev));
        }
        Ok(resp)
    }

    /// (current revision, compact revision, events) after a successful request.
    fn into_outcome(self) -> (i64, i64, Vec<Event>) {
        let current = if self.sub > 0 {
            self.revision
        } else {
            self.base_revision
        };
        (current, self.compact_revision, self.events)
    }

    /// Restores the staged records to their state before this request.
    fn rollback(self) {
        for (key, prev) in self.undo.into_iter().rev() {
            match prev {
                Some(v) => {
                    self.pending.insert(key, v);
                }
                None => {
                    self.pending.remove(&key);
                }
            }
        }
    }

    /// The revision latest reads see: this request's revision once it changed something.
    pub(crate) fn visible_revision(&self) -> i64 {
        if self.sub > 0 {
            self.revision
        } else {
            self.base_revision
        }
    }

    /// The committed tree overlaid with everything staged so far.
    pub(crate) fn view(&self) -> View<'_> {
        View::new(
            self.tree,
            Some(&*self.pending),
            self.visible_revision(),
            self.compact_revision,
        )
    }

    /// Stages one record write (`None` removes it).
    pub(crate) fn stage(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let prev = self.pending.insert(key.clone(), value);
        self.undo.push((key, prev));
    }

    /// Claims the next sub-revision of this request's revision.
    fn next_sub(&mut self) -> Result<i64> {
        if self.base_revision == i64::MAX {
            return Err(MvccError::Storage("revision space exhausted".to_string()));
        }
        let sub = self.sub;
        self.sub += 1;
        Ok(sub)
    }

    /// Whether lease `id` is granted, including grants and revokes staged earlier in this
    /// write txn (replicated state only, so every member decides identically).
    pub(crate) fn lease_exists(&self, id: i64) -> Result<bool> {
        Ok(lease::read_lease(&self.view(), id)?.is_some())
    }

    /// A range read inside the request (sees its earlier writes).
    pub(crate) fn range(&self, req: &RangeRequest) -> Result<RangeResponse> {
        range::range(&self.view(), req)
    }

    /// etcd's put: always a change (even with the same value). Moves the key's lease
    /// attachment from its previous lease (if any) to the new one (if any).
    pub(crate) fn put(&mut self, req: &PutRequest) -> Result<PutResponse> {
        // etcd's standalone put checks the lease first (inside a txn, `execute_txn`
        // checks every put beforehand, key first, as etcd's `checkRequestPut`).
        if req.lease != 0 && !self.lease_exists(req.lease)? {
            return Err(MvccError::LeaseNotFound);
        }
        let prev = self.view().latest(&req.key)?;
        if (req.ignore_value || req.ignore_lease) && prev.is_none() {
            return Err(MvccError::KeyNotFound);
        }
        let rev = self.revision;
        let sub = self.next_sub()?;
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |p| p.version.saturating_add(1)),
            value: match (&prev, req.ignore_value) {
                (Some(p), true) => p.value.clone(),
                _ => req.value.clone(),
            },
            lease: match (&prev, req.ignore_lease) {
                (Some(p), true) => p.lease,
                _ => req.lease,
            },
        };
        let stored = StoredVersion::from_kv(&kv);
        let latest = seal_record(&stored)?;
        let history = seal_record(&HistoryRecord::Put(stored))?;
        let index = seal_record(&RevisionRecord {
            key: req.key.clone(),
            kind: EventKind::Put,
        })?;
        let old_lease = prev.as_ref().map_or(0, |p| p.lease);
        if old_lease != kv.lease {
            if old_lease != 0 {
                self.stage(attach_key(old_lease, &req.key), None);
            }
            if kv.lease != 0 {
                self.stage(attach_key(kv.lease, &req.key), Some(seal(&[])));
            }
        }
        self.stage(latest_key(&req.key), Some(latest));
        self.stage(history_key(&req.key, rev, sub), Some(history));
        self.stage(revision_key(rev, sub), Some(index));
        self.events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: prev.clone(),
        });
        Ok(PutResponse {
            prev_kv: if req.prev_kv { prev } else { None },
        })
    }

    /// etcd's delete: one tombstone and one event per live key in the range, in key order;
    /// each deleted key is detached from its lease.
    pub(crate) fn delete_range(&mut self, req: &DeleteRangeRequest) -> Result<DeleteRangeResponse> {
        let end = UserEnd::parse(&req.range_end);
        let mut victims = Vec::new();
        {
            let view = self.view();
            view.visit_at(&req.key, &end, view.current_revision, usize::MAX, |kv| {
                victims.extend(kv);
            })?;
        }
        let rev = self.revision;
        for prev in &victims {
            let sub = self.next_sub()?;
            let history = seal_record(&HistoryRecord::Tombstone)?;
            let index = seal_record(&RevisionRecord {
                key: prev.key.clone(),
                kind: EventKind::Delete,
            })?;
            if prev.lease != 0 {
                self.stage(attach_key(prev.lease, &prev.key), None);
            }
            self.stage(latest_key(&prev.key), None);
            self.stage(history_key(&prev.key, rev, sub), Some(history));
            self.stage(revision_key(rev, sub), Some(index));
            self.events.push(Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: prev.key.clone(),
                    mod_revision: rev,
                    ..KeyValue::default()
                },
                prev_kv: Some(prev.clone()),
            });
        }
        let deleted = i64::try_from(victims.len()).unwrap_or(i64::MAX);
        Ok(DeleteRangeResponse {
            deleted,
            prev_kvs: if req.prev_kv { victims } else { Vec::new() },
        })
    }
}

#[cfg(test)]
mod tests;
