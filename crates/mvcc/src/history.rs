//! The event history the watch service replays: events rebuilt from the revision index.

use crate::encoding::{
    decode_revision_key, history_key, open_record, revision_key, HistoryRecord, KeyRange, RevisionRecord,
};
use crate::error::{MvccError, Result};
use crate::types::{Event, EventKind, KeyValue};
use crate::view::View;

/// Every event with `start <= revision <= end` in order; see [`crate::Store::events`].
pub(crate) fn events(view: &View<'_>, start: i64, end: i64, prev_kv: bool) -> Result<Vec<Event>> {
    if start < view.compact_revision {
        return Err(MvccError::Compacted);
    }
    let start = start.max(1);
    let end = end.min(view.current_revision);
    if start > end {
        return Ok(Vec::new());
    }
    let index = KeyRange {
        lo: revision_key(start, 0),
        hi: Some(revision_key(end + 1, 0)),
    };
    let mut out = Vec::new();
    for item in view.scan(&index, false) {
        let (raw_key, raw_value) = item?;
        let (rev, sub) = decode_revision_key(&raw_key)?;
        let rec: RevisionRecord = open_record(&raw_key, &raw_value)?;
        let kv = match rec.kind {
            EventKind::Put => {
                let hkey = history_key(&rec.key, rev, sub);
                let raw = view.get(&hkey)?.ok_or_else(|| {
                    MvccError::Corrupt(format!(
                        "revision index entry {rev}.{sub} names a put of {:?} with no history record",
                        String::from_utf8_lossy(&rec.key)
                    ))
                })?;
                match open_record::<HistoryRecord>(&hkey, &raw)? {
                    HistoryRecord::Put(v) => v.into_kv(rec.key.clone()),
                    HistoryRecord::Tombstone => {
                        return Err(MvccError::Corrupt(format!(
                            "revision index entry {rev}.{sub} says put but history holds a tombstone"
                        )))
                    }
                }
            }
            // etcd's delete event: only the key and the deletion revision.
            EventKind::Delete => KeyValue {
                key: rec.key.clone(),
                mod_revision: rev,
                ..KeyValue::default()
            },
        };
        let prev = if prev_kv {
            view.version_before(&rec.key, rev, sub)?
        } else {
            None
        };
        out.push(Event {
            kind: rec.kind,
            kv,
            prev_kv: prev,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::*;

    #[test]
    fn events_in_order_with_delete_shape() {
        let (_db, s) = new_store();
        put(&s, "a", "1"); // 2
        put(&s, "b", "1"); // 3
        put(&s, "a", "2"); // 4
        delete(&s, "a", "c"); // 5: a then b
        let ev = s.events(1, 100, true).unwrap();
        let shape: Vec<_> = ev
            .iter()
            .map(|e| (e.kind, e.kv.key.clone(), e.kv.mod_revision))
            .collect();
        assert_eq!(
            shape,
            vec![
                (EventKind::Put, b"a".to_vec(), 2),
                (EventKind::Put, b"b".to_vec(), 3),
                (EventKind::Put, b"a".to_vec(), 4),
                (EventKind::Delete, b"a".to_vec(), 5),
                (EventKind::Delete, b"b".to_vec(), 5),
            ]
        );
        let del = &ev[3];
        assert_eq!(
            del.kv,
            KeyValue {
                key: b"a".to_vec(),
                mod_revision: 5,
                ..Default::default()
            }
        );
        assert_eq!(del.prev_kv.as_ref().unwrap().value, b"2");
        assert_eq!(ev[2].prev_kv.as_ref().unwrap().version, 1);
        assert_eq!(ev[0].prev_kv, None);
        assert_eq!(ev[2].kv.version, 2);
        assert_eq!(ev[2].kv.create_revision, 2);
        let no_prev = s.events(4, 4, false).unwrap();
        assert_eq!(no_prev.len(), 1);
        assert_eq!(no_prev[0].prev_kv, None);
        assert!(s.events(6, 10, false).unwrap().is_empty());
        assert_eq!(s.events(0, 2, false).unwrap().len(), 1);
    }

    #[test]
    fn commit_events_match_history() {
        let (_db, s) = new_store();
        put(&s, "x", "1");
        let mut w = s.write_txn();
        w.execute(&WriteRequest::Put(PutRequest {
            key: b"x".to_vec(),
            value: b"2".to_vec(),
            ..Default::default()
        }))
        .unwrap();
        w.execute(&WriteRequest::DeleteRange(DeleteRangeRequest {
            key: b"x".to_vec(),
            ..Default::default()
        }))
        .unwrap();
        let out = w.commit().unwrap();
        assert_eq!(out.revision, 4);
        assert_eq!(out.events, s.events(3, 4, true).unwrap());
    }
}
