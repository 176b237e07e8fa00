//! etcd leases as replicated store state: grant, revoke (deleting the attached keys),
//! checkpoint, and the lease reads.
//!
//! A lease is an `l` record (TTL and last checkpointed remaining TTL); the keys attached
//! to it are indexed by `x` records, which the put/delete paths in `write` keep in step
//! with the `lease` field of each key's latest version (layout in `encoding`). Timing
//! (expiry, keep-alive) is not the store's business: the leader decides when a lease
//! expires and proposes a [`WriteRequest::LeaseRevoke`](crate::WriteRequest), which every
//! member applies identically.

use crate::encoding::{
    self, attach_key, attach_range, decode_attach_key, decode_lease_key, lease_key, lease_records,
    seal_record, LeaseRecord,
};
use crate::error::{MvccError, Result};
use crate::store::Store;
use crate::types::{DeleteRangeRequest, LeaseCheckpoint, LeaseInfo};
use crate::view::View;
use crate::write::Exec;

/// The stored record of lease `id`, if granted.
pub(crate) fn read_lease(view: &View<'_>, id: i64) -> Result<Option<LeaseRecord>> {
    let key = lease_key(id);
    match view.get(&key)? {
        Some(raw) => Ok(Some(encoding::open_record(&key, &raw)?)),
        None => Ok(None),
    }
}

/// The keys indexed as attached to lease `id`, in key order.
pub(crate) fn attached_keys(view: &View<'_>, id: i64) -> Result<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    for item in view.scan(&attach_range(id), false) {
        let (raw_key, raw_value) = item?;
        encoding::open(&raw_key, &raw_value)?;
        keys.push(decode_attach_key(&raw_key)?.1);
    }
    Ok(keys)
}

/// Applies a grant: `LeaseExists` if `id` is taken (the stateless checks ran already).
pub(crate) fn grant(exec: &mut Exec<'_>, id: i64, ttl: i64) -> Result<()> {
    if read_lease(&exec.view(), id)?.is_some() {
        return Err(MvccError::LeaseExists);
    }
    let record = seal_record(&LeaseRecord {
        ttl,
        remaining_ttl: 0,
    })?;
    exec.stage(lease_key(id), Some(record));
    Ok(())
}

/// Applies a revoke: deletes every attached key (each a delete of this request's
/// revision, in key order) and removes the lease; `LeaseNotFound` if unknown.
pub(crate) fn revoke(exec: &mut Exec<'_>, id: i64) -> Result<()> {
    let mut doomed = Vec::new();
    let mut stale = Vec::new();
    {
        let view = exec.view();
        if read_lease(&view, id)?.is_none() {
            return Err(MvccError::LeaseNotFound);
        }
        for key in attached_keys(&view, id)? {
            match view.latest(&key)? {
                Some(kv) if kv.lease == id => doomed.push(key),
                _ => stale.push(key),
            }
        }
    }
    for key in stale {
        // Every write keeps the index in step, so this means a damaged store; the key is
        // not (or no longer) on this lease, so it must survive the revoke.
        tracing::warn!(lease = id, key = ?String::from_utf8_lossy(&key), "dropping stale lease attachment");
        exec.stage(attach_key(id, &key), None);
    }
    for key in doomed {
        // The delete also removes the key's attachment record.
        exec.delete_range(&DeleteRangeRequest {
            key,
            range_end: Vec::new(),
            prev_kv: false,
        })?;
    }
    exec.stage(lease_key(id), None);
    Ok(())
}

/// Applies checkpoints in order; ids that are not granted are skipped.
pub(crate) fn checkpoint(exec: &mut Exec<'_>, checkpoints: &[LeaseCheckpoint]) -> Result<()> {
    for cp in checkpoints {
        let Some(mut record) = read_lease(&exec.view(), cp.id)? else {
            continue;
        };
        record.remaining_ttl = cp.remaining_ttl;
        let sealed = seal_record(&record)?;
        exec.stage(lease_key(cp.id), Some(sealed));
    }
    Ok(())
}

impl Store {
    /// Lease `id` as last committed, with its attached keys; `None` if not granted.
    pub fn lease(&self, id: i64) -> Result<Option<LeaseInfo>> {
        let state = self.read_state();
        let view = state.view();
        let Some(record) = read_lease(&view, id)? else {
            return Ok(None);
        };
        Ok(Some(LeaseInfo {
            id,
            ttl: record.ttl,
            remaining_ttl: record.remaining_ttl,
            keys: attached_keys(&view, id)?,
        }))
    }

    /// Every granted lease as last committed, in ascending id order.
    ///
    /// `keys` is left empty to keep this a scan of the lease records alone; use
    /// [`Store::lease`] for one lease's keys.
    pub fn leases(&self) -> Result<Vec<LeaseInfo>> {
        let state = self.read_state();
        let mut out = Vec::new();
        for item in state.view().scan(&lease_records(), false) {
            let (raw_key, raw_value) = item?;
            let id = decode_lease_key(&raw_key)?;
            let record: LeaseRecord = encoding::open_record(&raw_key, &raw_value)?;
            out.push(LeaseInfo {
                id,
                ttl: record.ttl,
                remaining_ttl: record.remaining_ttl,
                keys: Vec::new(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
