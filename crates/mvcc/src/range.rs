//! Range reads: etcd's `Range` semantics over a [`View`].

use crate::encoding::UserEnd;
use crate::error::Result;
use crate::types::{KeyValue, RangeRequest, RangeResponse, SortOrder, SortTarget};
use crate::view::View;
use std::cmp::Ordering;

/// Answers `req` from `view` with etcd's semantics.
///
/// Order of work (as etcd's applier): read every key of the range at the revision
/// (`count` = their number), apply the min/max filters, sort, truncate to `limit`
/// (`more` = something was cut), then strip values (`keys_only`) or everything
/// (`count_only`).
pub(crate) fn range(view: &View<'_>, req: &RangeRequest) -> Result<RangeResponse> {
    let rev = view.read_revision(req.revision)?;
    let end = UserEnd::parse(&req.range_end);
    let has_filters = req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0;
    let order = effective_order(req.sort_order, req.sort_target);
    let limit = if req.limit > 0 {
        usize::try_from(req.limit).unwrap_or(usize::MAX)
    } else {
        0
    };

    // Decode only what can be returned: nothing for count_only, the first `limit` keys
    // when neither filters nor sorting need to see every version (`partial`).
    let partial = !req.count_only && !has_filters && order.is_none() && limit != 0;
    let decode = if req.count_only {
        0
    } else if partial {
        limit
    } else {
        usize::MAX
    };
    let mut kvs = Vec::new();
    let mut count: i64 = 0;
    view.visit_at(&req.key, &end, rev, decode, |kv| {
        count += 1;
        if let Some(kv) = kv {
            kvs.push(kv);
        }
    })?;

    if req.count_only {
        return Ok(RangeResponse {
            kvs: Vec::new(),
            more: false,
            count,
        });
    }
    if has_filters {
        kvs.retain(|kv| passes_filters(req, kv));
    }
    if let Some((target, descending)) = order {
        // Stable sort: ties keep key order (ascending) in both directions, so results are
        // deterministic across members.
        kvs.sort_by(|a, b| {
            let ord = compare_by(target, a, b);
            if descending {
                ord.reverse()
            } else {
                ord
            }
        });
    }
    // Without filters every key in the range matches, so `count` is the match count.
    let matched = if partial {
        usize::try_from(count).unwrap_or(usize::MAX)
    } else {
        kvs.len()
    };
    let more = limit != 0 && matched > limit;
    kvs.truncate(if limit == 0 { usize::MAX } else { limit });
    if req.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse { kvs, more, count })
}

/// The sort to apply after reading, `None` when key-ascending order (the scan order) is
/// wanted. etcd: target != KEY with order NONE sorts ascending by the target.
pub(crate) fn effective_order(order: SortOrder, target: SortTarget) -> Option<(SortTarget, bool)> {
    match (order, target) {
        (SortOrder::None | SortOrder::Ascend, SortTarget::Key) => None,
        (SortOrder::None | SortOrder::Ascend, t) => Some((t, false)),
        (SortOrder::Descend, t) => Some((t, true)),
    }
}

fn compare_by(target: SortTarget, a: &KeyValue, b: &KeyValue) -> Ordering {
    match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    }
}

fn passes_filters(req: &RangeRequest, kv: &KeyValue) -> bool {
    (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
        && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
        && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
        && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::*;

    fn keys(resp: &RangeResponse) -> Vec<&[u8]> {
        resp.kvs.iter().map(|kv| kv.key.as_slice()).collect()
    }

    fn seeded() -> (sled::Db, Store) {
        let (db, s) = new_store();
        for (k, v) in [("a", "3"), ("b", "1"), ("ab", "2"), ("c", "0"), ("c\0", "9")] {
            put(&s, k, v);
        }
        put(&s, "b", "5"); // b: version 2
        (db, s)
    }

    #[test]
    fn range_end_conventions() {
        let (_db, s) = seeded();
        let single = s.range(&rr("a", "")).unwrap();
        assert_eq!(keys(&single), vec![b"a"]);
        assert_eq!(single.count, 1);
        let from = s.range(&rr("b", "\0")).unwrap();
        assert_eq!(keys(&from), vec![&b"b"[..], b"c", b"c\0"]);
        let prefix = s.range(&rr("a", "b")).unwrap();
        assert_eq!(keys(&prefix), vec![&b"a"[..], b"ab"]);
        let all = s.range(&rr("\0", "\0")).unwrap();
        assert_eq!(all.count, 5);
        let inverted = s.range(&rr("c", "a")).unwrap();
        assert_eq!(inverted.count, 0);
        let missing = s.range(&rr("zz", "")).unwrap();
        assert!(missing.kvs.is_empty() && !missing.more && missing.count == 0);
        assert_eq!(s.range(&rr("", "")), Err(MvccError::KeyNotProvided));
    }

    #[test]
    fn limit_more_and_count() {
        let (_db, s) = seeded();
        let mut req = rr("\0", "\0");
        req.limit = 2;
        let r = s.range(&req).unwrap();
        assert_eq!(keys(&r), vec![&b"a"[..], b"ab"]);
        assert!(r.more);
        assert_eq!(r.count, 5);
        req.limit = 5;
        let r = s.range(&req).unwrap();
        assert!(!r.more);
        assert_eq!(r.kvs.len(), 5);
        req.limit = -1;
        assert_eq!(s.range(&req).unwrap().kvs.len(), 5);
        req.limit = 1;
        req.count_only = true;
        let r = s.range(&req).unwrap();
        assert!(r.kvs.is_empty() && !r.more && r.count == 5);
        req.count_only = false;
        req.keys_only = true;
        let r = s.range(&req).unwrap();
        assert_eq!(r.kvs[0].key, b"a");
        assert!(r.kvs[0].value.is_empty());
        assert_eq!(r.kvs[0].version, 1);
    }

    #[test]
    fn sorting() {
        let (_db, s) = seeded();
        let mut req = rr("\0", "\0");
        req.sort_target = SortTarget::Value;
        let r = s.range(&req).unwrap(); // order None + target Value => ascending by value
        assert_eq!(keys(&r), vec![&b"c"[..], b"ab", b"a", b"b", b"c\0"]);
        req.sort_order = SortOrder::Descend;
        req.limit = 2;
        let r = s.range(&req).unwrap();
        assert_eq!(keys(&r), vec![&b"c\0"[..], b"b"]);
        assert!(r.more);
        req.sort_target = SortTarget::Key;
        req.limit = 0;
        let r = s.range(&req).unwrap();
        assert_eq!(keys(&r), vec![&b"c\0"[..], b"c", b"b", b"ab", b"a"]);
        req.sort_target = SortTarget::Version;
        let r = s.range(&req).unwrap();
        assert_eq!(keys(&r)[0], b"b");
        req.sort_order = SortOrder::Ascend;
        req.sort_target = SortTarget::Mod;
        let r = s.range(&req).unwrap();
        assert_eq!(keys(&r), vec![&b"a"[..], b"ab", b"c", b"c\0", b"b"]);
        req.sort_target = SortTarget::Create;
        let r = s.range(&req).unwrap();
        assert_eq!(keys(&r), vec![&b"a"[..], b"b", b"ab", b"c", b"c\0"]);
    }

    #[test]
    fn revision_filters_apply_before_limit_not_to_count() {
        let (_db, s) = seeded();
        // revisions: a=2 b=3 ab=4 c=5 c\0=6 b(again)=7
        let mut req = rr("\0", "\0");
        req.min_mod_revision = 4;
        let r = s.range(&req).unwrap();
        assert_eq!(keys(&r), vec![&b"ab"[..], b"b", b"c", b"c\0"]);
        assert_eq!(r.count, 5);
        req.max_mod_revision = 6;
        req.limit = 2;
        let r = s.range(&req).unwrap();
        assert_eq!(keys(&r), vec![&b"ab"[..], b"c"]);
        assert!(r.more);
        let mut req = rr("\0", "\0");
        req.min_create_revision = 3;
        req.max_create_revision = 4;
        let r = s.range(&req).unwrap();
        assert_eq!(keys(&r), vec![&b"ab"[..], b"b"]);
    }

    #[test]
    fn historic_reads_and_revision_errors() {
        let (_db, s) = seeded();
        assert_eq!(s.current_revision(), 7);
        let mut req = rr("b", "");
        req.revision = 6;
        let r = s.range(&req).unwrap();
        assert_eq!(r.kvs[0].value, b"1");
        assert_eq!(r.kvs[0].version, 1);
        req.revision = 2;
        assert_eq!(s.range(&req).unwrap().count, 0);
        req.revision = 1;
        let mut all = rr("\0", "\0");
        all.revision = 1;
        assert_eq!(s.range(&all).unwrap().count, 0);
        all.revision = 4;
        let r = s.range(&all).unwrap();
        assert_eq!(keys(&r), vec![&b"a"[..], b"ab", b"b"]);
        all.limit = 1;
        let r = s.range(&all).unwrap();
        assert!(r.more && r.count == 3 && r.kvs.len() == 1);
        all.revision = 8;
        assert_eq!(s.range(&all), Err(MvccError::FutureRevision));
        delete(&s, "a", "c");
        all.revision = 7;
        all.limit = 0;
        assert_eq!(s.range(&all).unwrap().count, 5);
        all.revision = 0;
        assert_eq!(keys(&s.range(&all).unwrap()), vec![&b"c"[..], b"c\0"]);
    }
}
