//! The storage engine seam: the only module that touches sled.
//!
//! The MVCC logic needs an ordered byte map with atomic batches ([`OrderedTree`]) and an
//! engine that can create, list and drop named trees ([`TreeEngine`]). Swapping sled for
//! another engine means implementing these two traits and changing the aliases below.

use crate::encoding::KeyRange;
use crate::error::{MvccError, Result};
use std::ops::Bound;

/// A raw record: (record key, enveloped value).
pub(crate) type RawRecord = (Vec<u8>, Vec<u8>);
/// An iterator over raw records in key order (or reverse key order).
pub(crate) type RawIter<'a> = Box<dyn Iterator<Item = Result<RawRecord>> + 'a>;

/// The tree type the store uses.
pub(crate) type Tree = SledTree;
/// The engine type the store uses.
pub(crate) type Engine = SledEngine;

/// An ordered byte-keyed map with atomic multi-key batches.
pub(crate) trait OrderedTree: Send + Sync {
    /// The value under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Records in `range`, ascending or (with `reverse`) descending.
    fn scan(&self, range: &KeyRange, reverse: bool) -> RawIter<'_>;
    /// Applies every write (`None` = remove) atomically: after a crash either all or none
    /// of them are present.
    fn apply<I>(&self, writes: I) -> Result<()>
    where
        I: IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>;
}

/// An engine holding named trees.
pub(crate) trait TreeEngine: Send + Sync {
    /// The tree type.
    type Tree: OrderedTree;
    /// Opens or creates the named tree.
    fn open_tree(&self, name: &str) -> Result<Self::Tree>;
    /// Drops the named tree; Ok(false) if it did not exist.
    fn drop_tree(&self, name: &str) -> Result<bool>;
    /// Names of every tree.
    fn tree_names(&self) -> Vec<String>;
    /// Makes everything written so far durable.
    fn flush(&self) -> Result<()>;
    /// Bytes the engine occupies on disk.
    fn size_on_disk(&self) -> Result<u64>;
}

/// A sled tree with its name (for error messages).
#[derive(Clone)]
pub(crate) struct SledTree {
    tree: sled::Tree,
    name: String,
}

impl SledTree {
    fn err(&self, op: &str, e: sled::Error) -> MvccError {
        MvccError::Storage(format!("sled {op} on tree {} failed: {e}", self.name))
    }
}

impl OrderedTree for SledTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.tree
            .get(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| self.err("get", e))
    }

    fn scan(&self, range: &KeyRange, reverse: bool) -> RawIter<'_> {
        // An empty or inverted range must not reach sled (its traversal may misbehave on
        // lo > hi); it simply yields nothing.
        if range.is_empty() {
            return Box::new(std::iter::empty());
        }
        let lo = Bound::Included(range.lo.as_slice());
        let hi = match &range.hi {
            Some(hi) => Bound::Excluded(hi.as_slice()),
            None => Bound::Unbounded,
        };
        let iter = self.tree.range::<&[u8], _>((lo, hi));
        let map = move |item: sled::Result<(sled::IVec, sled::IVec)>| {
            item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(|e| self.err("scan", e))
        };
        if reverse {
            Box::new(iter.rev().map(map))
        } else {
            Box::new(iter.map(map))
        }
    }

    fn apply<I>(&self, writes: I) -> Result<()>
    where
        I: IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    {
        let mut batch = sled::Batch::default();
        for (k, v) in writes {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.tree
            .apply_batch(batch)
            .map_err(|e| self.err("apply_batch", e))
    }
}

/// A sled database.
#[derive(Clone)]
pub(crate) struct SledEngine {
    db: sled::Db,
}

impl SledEngine {
    pub(crate) fn new(db: &sled::Db) -> SledEngine {
        SledEngine { db: db.clone() }
    }
}

impl TreeEngine for SledEngine {
    type Tree = SledTree;

    fn open_tree(&self, name: &str) -> Result<SledTree> {
        let tree = self
            .db
            .open_tree(name)
            .map_err(|e| MvccError::Storage(format!("sled open_tree {name} failed: {e}")))?;
        Ok(SledTree {
            tree,
            name: name.to_string(),
        })
    }

    fn drop_tree(&self, name: &str) -> Result<bool> {
        self.db
            .drop_tree(name)
            .map_err(|e| MvccError::Storage(format!("sled drop_tree {name} failed: {e}")))
    }

    fn tree_names(&self) -> Vec<String> {
        self.db
            .tree_names()
            .iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect()
    }

    fn flush(&self) -> Result<()> {
        self.db
            .flush()
            .map(drop)
            .map_err(|e| MvccError::Storage(format!("sled flush failed: {e}")))
    }

    fn size_on_disk(&self) -> Result<u64> {
        self.db
            .size_on_disk()
            .map_err(|e| MvccError::Storage(format!("sled size_on_disk failed: {e}")))
    }
}
