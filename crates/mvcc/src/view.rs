//! A read view: the committed tree, optionally overlaid with a write txn's staged
//! records, plus the typed MVCC reads (latest version, version at a revision) on top.
//!
//! Readers outside a write txn use the tree alone; the writer uses the overlay so that
//! later ops of a txn see its earlier writes.

use crate::backend::{OrderedTree, RawIter, RawRecord, Tree};
use crate::encoding::{
    self, history_prefix, history_prefix_end, history_range, latest_key, latest_range, with_rev,
    HistoryRecord, KeyRange, StoredVersion, UserEnd,
};
use crate::error::{MvccError, Result};
use crate::types::KeyValue;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::Bound;

/// Records staged by a write txn: `None` removes the record.
pub(crate) type Pending = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Staged records of a range, in scan order.
type OverlayIter<'a> = Box<dyn Iterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)> + 'a>;

/// A consistent view of one generation tree at `current_revision`.
pub(crate) struct View<'a> {
    tree: &'a Tree,
    pending: Option<&'a Pending>,
    /// Latest revision visible in this view.
    pub(crate) current_revision: i64,
    /// Revisions below this are compacted.
    pub(crate) compact_revision: i64,
}

impl<'a> View<'a> {
    pub(crate) fn new(
        tree: &'a Tree,
        pending: Option<&'a Pending>,
        current_revision: i64,
        compact_revision: i64,
    ) -> View<'a> {
        View {
            tree,
            pending,
            current_revision,
            compact_revision,
        }
    }

    /// The raw value under `key`, staged records first.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(staged) = self.pending.and_then(|p| p.get(key)) {
            return Ok(staged.clone());
        }
        self.tree.get(key)
    }

    /// Raw records in `range`, merging staged records over the tree.
    pub(crate) fn scan(&self, range: &KeyRange, reverse: bool) -> RawIter<'a> {
        let base = self.tree.scan(range, reverse);
        let pending = match self.pending {
            Some(p) if !p.is_empty() && !range.is_empty() => p,
            _ => return base,
        };
        let lo = Bound::Included(range.lo.as_slice());
        let hi = match &range.hi {
            Some(hi) => Bound::Excluded(hi.as_slice()),
            None => Bound::Unbounded,
        };
        let over = pending.range::<[u8], _>((lo, hi));
        let over: OverlayIter<'a> = if reverse {
            Box::new(over.rev())
        } else {
            Box::new(over)
        };
        Box::new(Merged {
            base: base.peekable(),
            over: over.peekable(),
            reverse,
        })
    }

    /// Resolves a read revision with etcd's rules: `<= 0` is the latest; below the compact
    /// revision is `Compacted`; above the current revision is `FutureRevision`.
    pub(crate) fn read_revision(&self, revision: i64) -> Result<i64> {
        if revision <= 0 {
            return Ok(self.current_revision);
        }
        if revision > self.current_revision {
            return Err(MvccError::FutureRevision);
        }
        if revision < self.compact_revision {
            return Err(MvccError::Compacted);
        }
        Ok(revision)
    }

    /// The latest live version of `key`.
    pub(crate) fn latest(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        let raw_key = latest_key(key);
        match self.get(&raw_key)? {
            Some(raw) => {
                let v: StoredVersion = encoding::open_record(&raw_key, &raw)?;
                Ok(Some(v.into_kv(key.to_vec())))
            }
            None => Ok(None),
        }
    }

    /// Visits every key live at `rev` in `[key, end)` in key order. The first `decode`
    /// keys get `Some(version)`; later ones `None` (counted only, so the latest-revision
    /// path can skip decoding them).
    pub(crate) fn visit_at(
        &self,
        key: &[u8],
        end: &UserEnd,
        rev: i64,
        decode: usize,
        mut visit: impl FnMut(Option<KeyValue>),
    ) -> Result<()> {
        let mut decoded = 0usize;
        if rev == self.current_revision {
            // The latest index holds exactly the keys live at the current revision.
            for item in self.scan(&latest_range(key, end), false) {
                let (raw_key, raw_value) = item?;
                if decoded < decode {
                    decoded += 1;
                    let v: StoredVersion = encoding::open_record(&raw_key, &raw_value)?;
                    visit(Some(v.into_kv(raw_key[1..].to_vec())));
                } else {
                    visit(None);
                }
            }
            return Ok(());
        }
        let range = history_range(key, end);
        let mut cursor = range.clone();
        loop {
            let first = self.scan(&cursor, false).next();
            let Some(first) = first else { break };
            let (raw_key, _) = first?;
            let (user_key, _, _) = encoding::decode_history_key(&raw_key)?;
            let prefix = history_prefix(&user_key);
            if let Some(kv) = self.version_in(&prefix, &user_key, rev.saturating_add(1), 0)? {
                if decoded < decode {
                    decoded += 1;
                    visit(Some(kv));
                } else {
                    visit(None);
                }
            }
            // Jump past every record of this key.
            cursor.lo = history_prefix_end(&prefix);
        }
        Ok(())
    }

    /// The version of `key` just before change `rev.sub` (None if missing, deleted, or
    /// compacted away).
    pub(crate) fn version_before(&self, key: &[u8], rev: i64, sub: i64) -> Result<Option<KeyValue>> {
        self.version_in(&history_prefix(key), key, rev, sub)
    }

    /// The last history record of the key with `prefix` strictly before `rev.sub`,
    /// as a version (None if there is none or it is a tombstone).
    fn version_in(&self, prefix: &[u8], user_key: &[u8], rev: i64, sub: i64) -> Result<Option<KeyValue>> {
        let range = KeyRange {
            lo: prefix.to_vec(),
            hi: Some(with_rev(prefix, rev, sub)),
        };
        match self.scan(&range, true).next() {
            None => Ok(None),
            Some(item) => {
                let (raw_key, raw_value) = item?;
                match encoding::open_record::<HistoryRecord>(&raw_key, &raw_value)? {
                    HistoryRecord::Put(v) => Ok(Some(v.into_kv(user_key.to_vec()))),
                    HistoryRecord::Tombstone => Ok(None),
                }
            }
        }
    }
}

/// Merges staged records over tree records; staged ones win, staged removals hide.
struct Merged<'a> {
    base: Peekable<RawIter<'a>>,
    over: Peekable<OverlayIter<'a>>,
    reverse: bool,
}

enum Side {
    Base,
    Over,
    Both,
}

impl Iterator for Merged<'_> {
    type Item = Result<RawRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let side = {
                let base_key = match self.base.peek() {
                    Some(Ok((k, _))) => Some(k),
                    Some(Err(_)) => return self.base.next(),
                    None => None,
                };
                let over_key = self.over.peek().map(|(k, _)| *k);
                match (base_key, over_key) {
                    (None, None) => return None,
                    (Some(_), None) => Side::Base,
                    (None, Some(_)) => Side::Over,
                    (Some(b), Some(o)) => {
                        let ord = b.cmp(o);
                        let ord = if self.reverse { ord.reverse() } else { ord };
                        match ord {
                            Ordering::Less => Side::Base,
                            Ordering::Greater => Side::Over,
                            Ordering::Equal => Side::Both,
                        }
                    }
                }
            };
            match side {
                Side::Base => return self.base.next(),
                Side::Over | Side::Both => {
                    if matches!(side, Side::Both) {
                        self.base.next();
                    }
                    let (k, v) = self.over.next()?;
                    if let Some(v) = v {
                        return Some(Ok((k.clone(), v.clone())));
                    }
                    // A staged removal hides the tree record: keep going.
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Engine, TreeEngine};

    fn tree() -> (sled::Db, Tree) {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let t = Engine::new(&db).open_tree("t").unwrap();
        (db, t)
    }

    #[test]
    fn merged_scan_overlays_and_hides() {
        let (_db, t) = tree();
        t.apply(vec![
            (b"a".to_vec(), Some(b"1".to_vec())),
            (b"b".to_vec(), Some(b"2".to_vec())),
            (b"d".to_vec(), Some(b"4".to_vec())),
        ])
        .unwrap();
        let mut p = Pending::new();
        p.insert(b"b".to_vec(), None);
        p.insert(b"c".to_vec(), Some(b"3".to_vec()));
        p.insert(b"d".to_vec(), Some(b"40".to_vec()));
        p.insert(b"e".to_vec(), None);
        let v = View::new(&t, Some(&p), 1, 0);
        let fwd: Vec<_> = v.scan(&KeyRange::all(), false).map(|r| r.unwrap()).collect();
        assert_eq!(
            fwd,
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"c".to_vec(), b"3".to_vec()),
                (b"d".to_vec(), b"40".to_vec())
            ]
        );
        let mut back: Vec<_> = v.scan(&KeyRange::all(), true).map(|r| r.unwrap()).collect();
        back.reverse();
        assert_eq!(back, fwd);
        let sub: Vec<_> = v
            .scan(
                &KeyRange {
                    lo: b"b".to_vec(),
                    hi: Some(b"d".to_vec()),
                },
                false,
            )
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(sub, vec![b"c".to_vec()]);
        assert_eq!(v.get(b"b").unwrap(), None);
        assert_eq!(v.get(b"a").unwrap(), Some(b"1".to_vec()));
        let inverted = KeyRange {
            lo: b"d".to_vec(),
            hi: Some(b"a".to_vec()),
        };
        assert_eq!(v.scan(&inverted, false).count(), 0);
    }

    #[test]
    fn read_revision_rules() {
        let (_db, t) = tree();
        let v = View::new(&t, None, 10, 4);
        assert_eq!(v.read_revision(0), Ok(10));
        assert_eq!(v.read_revision(-3), Ok(10));
        assert_eq!(v.read_revision(4), Ok(4));
        assert_eq!(v.read_revision(3), Err(MvccError::Compacted));
        assert_eq!(v.read_revision(11), Err(MvccError::FutureRevision));
    }
}
