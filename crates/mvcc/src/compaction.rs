//! Compaction: physically drop history that no read at or above the compact revision
//! can see.

use crate::encoding::{
    decode_revision_key, history_key, history_prefix, meta_key, open, open_record, revision_key, seal_record,
    with_rev, KeyRange, RevisionRecord, META_COMPACT_REVISION,
};
use crate::error::{MvccError, Result};
use crate::write::Exec;
use std::collections::{BTreeSet, HashSet};

/// Compacts at `rev`: `Compacted` if `rev <= compact revision`, `FutureRevision` if
/// `rev > current revision`. Does not bump the revision.
///
/// For every key, removes each history record at or before `rev` except the latest one,
/// and that one too if it is a tombstone (as etcd's `keyIndex.compact`). Reads at any
/// revision `>= rev` answer exactly as before. The event log keeps nothing below `rev`
/// (no read can reach it) and, at `rev` itself, only the entries whose history record
/// survived.
///
/// Only keys changed since the previous compaction can hold removable records (earlier
/// compactions left at most one live version per key), so the work is proportional to
/// the changes since then, found through the revision index.
pub(crate) fn compact(exec: &mut Exec<'_>, rev: i64) -> Result<()> {
    if rev <= exec.compact_revision {
        return Err(MvccError::Compacted);
    }
    if rev > exec.visible_revision() {
        return Err(MvccError::FutureRevision);
    }
    let previous = exec.compact_revision.max(0);
    let mut removals: Vec<Vec<u8>> = Vec::new();
    {
        let view = exec.view();
        let mut touched: BTreeSet<Vec<u8>> = BTreeSet::new();
        // Event-log entries at `rev` with the history record they describe.
        let mut at_rev: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let index = KeyRange {
            lo: revision_key(previous, 0),
            hi: Some(revision_key(rev.saturating_add(1), 0)),
        };
        for item in view.scan(&index, false) {
            let (raw_key, raw_value) = item?;
            let (r, sub) = decode_revision_key(&raw_key)?;
            let rec: RevisionRecord = open_record(&raw_key, &raw_value)?;
            if r < rev {
                removals.push(raw_key);
            } else {
                at_rev.push((raw_key, history_key(&rec.key, r, sub)));
            }
            touched.insert(rec.key);
        }

        let mut removed_history: HashSet<Vec<u8>> = HashSet::new();
        for key in &touched {
            let prefix = history_prefix(key);
            let upto = KeyRange {
                lo: prefix.clone(),
                hi: Some(with_rev(&prefix, rev.saturating_add(1), 0)),
            };
            let mut last: Option<(Vec<u8>, bool)> = None;
            for item in view.scan(&upto, false) {
                let (raw_key, raw_value) = item?;
                let tombstone = is_tombstone(&raw_key, &raw_value)?;
                if let Some((superseded, _)) = last.replace((raw_key, tombstone)) {
                    removed_history.insert(superseded.clone());
                    removals.push(superseded);
                }
            }
            if let Some((raw_key, true)) = last {
                removed_history.insert(raw_key.clone());
                removals.push(raw_key);
            }
        }
        for (index_key, history) in at_rev {
            if removed_history.contains(&history) {
                removals.push(index_key);
            }
        }
    }
    tracing::debug!(revision = rev, records = removals.len(), "compacting");
    for key in removals {
        exec.stage(key, None);
    }
    exec.compact_revision = rev;
    exec.stage(meta_key(META_COMPACT_REVISION), Some(seal_record(&rev)?));
    Ok(())
}

/// Whether a history record is a tombstone, without decoding the version it may hold:
/// postcard writes the enum variant index (0 = Put, 1 = Tombstone) first.
fn is_tombstone(raw_key: &[u8], raw_value: &[u8]) -> Result<bool> {
    match open(raw_key, raw_value)?.first() {
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        _ => Err(MvccError::Corrupt(format!(
            "{}: unknown history record kind",
            crate::encoding::describe(raw_key)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use crate::encoding::{seal_record, HistoryRecord, StoredVersion};
    use crate::testutil::*;
    use crate::*;

    #[test]
    fn history_record_kind_is_the_first_payload_byte() {
        let put = seal_record(&HistoryRecord::Put(StoredVersion {
            create_revision: 1,
            mod_revision: 1,
            version: 1,
            value: vec![1],
            lease: 0,
        }))
        .unwrap();
        let tomb = seal_record(&HistoryRecord::Tombstone).unwrap();
        assert!(!super::is_tombstone(b"h", &put).unwrap());
        assert!(super::is_tombstone(b"h", &tomb).unwrap());
    }

    #[test]
    fn compact_errors_and_exact_revision() {
        let (_db, s) = new_store();
        for i in 0..5 {
            put(&s, "k", &i.to_string()); // revisions 2..=6
        }
        assert_eq!(compact(&s, 7), Err(MvccError::FutureRevision));
        assert_eq!(compact(&s, 0), Err(MvccError::Compacted));
        compact(&s, 4).unwrap();
        assert_eq!(s.compact_revision(), 4);
        assert_eq!(s.current_revision(), 6, "compaction does not bump the revision");
        assert_eq!(compact(&s, 4), Err(MvccError::Compacted));
        assert_eq!(compact(&s, 3), Err(MvccError::Compacted));
        let mut req = rr("k", "");
        req.revision = 3;
        assert_eq!(s.range(&req), Err(MvccError::Compacted));
        req.revision = 4; // exactly the compact revision is readable
        let r = s.range(&req).unwrap();
        assert_eq!(r.kvs[0].value, b"2");
        assert_eq!(r.kvs[0].version, 3);
        compact(&s, 6).unwrap(); // compacting at the current revision is allowed
        assert_eq!(s.range(&rr("k", "")).unwrap().kvs[0].version, 5);
    }

    #[test]
    fn compaction_keeps_reads_at_and_after_it_identical() {
        let (_db, s) = new_store();
        put(&s, "a", "1"); // 2
        put(&s, "b", "1"); // 3
        put(&s, "a", "2"); // 4
        delete(&s, "b", ""); // 5
        put(&s, "c", "1"); // 6
        delete(&s, "c", ""); // 7
        put(&s, "c", "2"); // 8
        put(&s, "a", "3"); // 9
        let all = |rev: i64| {
            let mut r = rr("\0", "\0");
            r.revision = rev;
            s.range(&r).unwrap()
        };
        let before: Vec<_> = (5..=9).map(all).collect();
        let events_before = s.events(7, 9, true).unwrap();
        let hash_before = s.hash().unwrap();
        compact(&s, 7).unwrap();
        assert_ne!(s.hash().unwrap(), hash_before);
        let after: Vec<_> = (7..=9).map(all).collect();
        assert_eq!(&before[2..], &after[..]);
        assert_eq!(s.events(6, 9, false), Err(MvccError::Compacted));
        // At the compact revision only surviving records remain: the delete of c at 7 is
        // gone; later events are untouched.
        let events_after = s.events(7, 9, true).unwrap();
        assert_eq!(&events_after[..], &events_before[1..]);
        // Only a@4 (latest <= 7 of a) plus later history survive for a; b is gone.
        let mut req = rr("b", "");
        req.revision = 7;
        assert_eq!(s.range(&req).unwrap().count, 0);
    }

    #[test]
    fn repeated_compactions_equal_one() {
        let run = |steps: &[i64]| {
            let (_db, s) = new_store();
            for i in 0..6 {
                put(&s, "a", &i.to_string());
                put(&s, &format!("k{}", i % 3), "x");
                if i % 2 == 0 {
                    delete(&s, "k0", "k2");
                }
            }
            for &c in steps {
                compact(&s, c).unwrap();
            }
            s.hash().unwrap()
        };
        assert_eq!(run(&[5, 9, 14]), run(&[14]));
        assert_eq!(run(&[3, 14]), run(&[14]));
    }
}
