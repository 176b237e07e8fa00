//! Snapshot export and import: the raw records of a store, streamed.

use crate::backend::{OrderedTree, TreeEngine};
use crate::encoding::{check_record, seal_record, KeyRange};
use crate::error::{MvccError, Result};
use crate::store::{kv_tree_name, read_revisions, ActiveState, Store, ACTIVE_GENERATION};

/// Records per import batch (bounded memory while streaming).
const IMPORT_BATCH_RECORDS: usize = 1024;
/// Bytes per import batch.
const IMPORT_BATCH_BYTES: usize = 4 << 20;

impl Store {
    /// Streams every raw record of the store, app meta included, in key order to `sink`.
    ///
    /// Guarantees: a consistent point-in-time view (commits wait until the export ends,
    /// readers don't); the records fed to [`Store::import_from`] reproduce this store
    /// exactly. The first error (from storage or from `sink`) stops the export and is
    /// returned.
    pub fn export_to(&self, mut sink: impl FnMut(&[u8], &[u8]) -> Result<()>) -> Result<()> {
        let state = self.read_state();
        for item in state.tree.scan(&KeyRange::all(), false) {
            let (k, v) = item?;
            sink(&k, &v)?;
        }
        Ok(())
    }

    /// Replaces the whole content of the store with `records` (as produced by
    /// [`Store::export_to`]).
    ///
    /// Guarantees: atomic with respect to crashes and to concurrent readers — they see
    /// the old content until the switch and the new one after, never a mix; on error the
    /// old content stays. Memory stays bounded (records are written in batches to a fresh
    /// generation tree, which is flushed before the active-generation pointer moves to it).
    /// Every record is checked first (`Corrupt` for a bad one). Afterwards
    /// `current_revision`, `compact_revision` and `app_meta` reflect the imported data.
    /// Must not run concurrently with a [`crate::WriteTxn`] (one in progress becomes stale).
    pub fn import_from(&self, records: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>) -> Result<()> {
        let _import = self.import_lock.lock().unwrap_or_else(|e| e.into_inner());
        let old_generation = self.read_state().generation;
        let generation = old_generation
            .checked_add(1)
            .ok_or_else(|| MvccError::Storage("generation counter exhausted".to_string()))?;
        let name = kv_tree_name(self.group, generation);
        // A crashed import may have left this generation behind half-written.
        self.engine.drop_tree(&name)?;
        let tree = self.engine.open_tree(&name)?;

        let filled = (|| -> Result<(i64, i64, u64)> {
            let mut batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
            let mut batch_bytes = 0usize;
            let mut count = 0u64;
            for record in records {
                let (k, v) = record?;
                check_record(&k, &v)?;
                batch_bytes += k.len() + v.len();
                batch.push((k, Some(v)));
                count += 1;
                if batch.len() >= IMPORT_BATCH_RECORDS || batch_bytes >= IMPORT_BATCH_BYTES {
                    tree.apply(std::mem::take(&mut batch))?;
                    batch_bytes = 0;
                }
            }
            if !batch.is_empty() {
                tree.apply(batch)?;
            }
            let (current, compact) = read_revisions(&tree)?;
            self.engine.flush()?;
            Ok((current, compact, count))
        })();
        let (current_revision, compact_revision, count) = match filled {
            Ok(v) => v,
            Err(e) => {
                if let Err(drop_err) = self.engine.drop_tree(&name) {
                    tracing::warn!(tree = %name, error = %drop_err, "could not drop failed import tree");
                }
                return Err(e);
            }
        };

        // The switch: from here on a restart opens the new generation.
        let pointer = seal_record(&generation)?;
        self.meta.apply([(ACTIVE_GENERATION.to_vec(), Some(pointer))])?;
        self.engine.flush()?;
        {
            let mut state = self.write_state();
            let commit_seq = state.commit_seq.wrapping_add(1);
            *state = ActiveState {
                generation,
                tree,
                current_revision,
                compact_revision,
                commit_seq,
            };
        }
        let old_name = kv_tree_name(self.group, old_generation);
        if let Err(e) = self.engine.drop_tree(&old_name) {
            // The import itself succeeded; the stale tree is dropped at the next open.
            tracing::warn!(tree = %old_name, error = %e, "could not drop replaced generation tree");
        }
        tracing::info!(
            group = %self.group, generation, records = count, current_revision, compact_revision,
            "imported snapshot"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::*;

    fn export(s: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        s.export_to(|k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
        out
    }

    fn populated() -> (sled::Db, Store) {
        let (db, s) = new_store();
        for i in 0..40 {
            put(&s, &format!("k{:02}", i % 13), &format!("v{i}"));
        }
        delete(&s, "k03", "k05");
        compact(&s, 20).unwrap();
        let mut w = s.write_txn();
        w.set_app_meta("last_applied", b"7:42".to_vec());
        w.commit().unwrap();
        (db, s)
    }

    fn all_at(s: &Store, rev: i64) -> Result<RangeResponse> {
        let mut r = rr("\0", "\0");
        r.revision = rev;
        s.range(&r)
    }

    #[test]
    fn export_import_into_another_db_is_identical() {
        let (_db, src) = populated();
        let (_db2, dst) = new_store();
        put(&dst, "junk", "x");
        dst.import_from(export(&src).into_iter().map(Ok)).unwrap();
        assert_eq!(dst.current_revision(), src.current_revision());
        assert_eq!(dst.compact_revision(), 20);
        assert_eq!(dst.hash().unwrap(), src.hash().unwrap());
        assert_eq!(dst.app_meta("last_applied").unwrap(), Some(b"7:42".to_vec()));
        for rev in [0, 19, 20, 30, src.current_revision()] {
            assert_eq!(all_at(&dst, rev), all_at(&src, rev));
        }
        assert_eq!(dst.events(20, 100, true), src.events(20, 100, true));
        assert_eq!(export(&dst), export(&src));
        // The store keeps working after the import.
        put(&dst, "new", "1");
        assert_eq!(dst.current_revision(), src.current_revision() + 1);
    }

    #[test]
    fn import_survives_reopen_and_drops_old_generation() {
        let (_db, src) = populated();
        let dir = tempfile::tempdir().unwrap();
        let expected_hash = src.hash().unwrap();
        {
            let db = open_db_retrying(dir.path());
            let dst = Store::open(&db, GroupId(3)).unwrap();
            put(&dst, "old", "x");
            dst.import_from(export(&src).into_iter().map(Ok)).unwrap();
            dst.flush().unwrap();
            let names: Vec<_> = db.tree_names().iter().map(|n| n.to_vec()).collect();
            assert!(names.contains(&b"g3/kv.1".to_vec()));
            assert!(!names.contains(&b"g3/kv.0".to_vec()));
        }
        let db = open_db_retrying(dir.path());
        let dst = Store::open(&db, GroupId(3)).unwrap();
        assert_eq!(dst.hash().unwrap(), expected_hash);
        assert_eq!(dst.current_revision(), src.current_revision());
        assert_eq!(dst.app_meta("last_applied").unwrap(), Some(b"7:42".to_vec()));
        assert_eq!(all_at(&dst, 0), all_at(&src, 0));
    }

    #[test]
    fn failed_import_keeps_old_content() {
        let (_db, src) = populated();
        let (_db2, dst) = new_store();
        put(&dst, "keep", "me");
        let before = dst.hash().unwrap();
        let mut records = export(&src);
        let n = records.len();
        records[n / 2].1[6] ^= 0x55; // corrupt one payload
        let err = dst.import_from(records.into_iter().map(Ok)).unwrap_err();
        assert!(matches!(err, MvccError::Corrupt(_)), "{err}");
        let failing = vec![
            Ok((b"mx".to_vec(), vec![])),
            Err(MvccError::Storage("stream cut".into())),
        ];
        assert!(dst.import_from(failing.into_iter()).is_err());
        assert_eq!(dst.hash().unwrap(), before);
        assert_eq!(dst.range(&rr("keep", "")).unwrap().kvs[0].value, b"me");
        // A stale tree from an interrupted import is cleaned up on open.
        assert!(!_db2.tree_names().iter().any(|n| n.as_ref() == b"g1/kv.1"));
    }

    #[test]
    fn stale_generation_tree_is_dropped_on_open() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        {
            let s = Store::open(&db, GroupId(1)).unwrap();
            put(&s, "a", "1");
        }
        db.open_tree("g1/kv.7").unwrap().insert(b"x", b"y").unwrap();
        db.open_tree("g11/kv.7").unwrap().insert(b"x", b"y").unwrap();
        let s = Store::open(&db, GroupId(1)).unwrap();
        let names: Vec<_> = db.tree_names().iter().map(|n| n.to_vec()).collect();
        assert!(!names.contains(&b"g1/kv.7".to_vec()));
        assert!(
            names.contains(&b"g11/kv.7".to_vec()),
            "other groups are untouched"
        );
        assert_eq!(s.range(&rr("a", "")).unwrap().count, 1);
    }
}
