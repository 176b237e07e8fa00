//! Property tests: the store against the in-memory model (`model/mod.rs`), and state
//! preservation across reopen and snapshot export/import. Leases come from a small id
//! space (`LEASE_IDS`) so grants, puts with leases and revokes collide often.

mod model;

use conclave_mvcc::*;
use model::Model;
use proptest::prelude::*;
use proptest::sample::select;

fn keys() -> Vec<Vec<u8>> {
    vec![
        b"a".to_vec(),
        b"ab".to_vec(),
        b"b".to_vec(),
        b"c".to_vec(),
        b"d".to_vec(),
    ]
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    select(keys())
}

fn range_end() -> impl Strategy<Value = Vec<u8>> {
    select(vec![
        vec![],
        vec![],
        vec![0],
        b"b".to_vec(),
        b"c".to_vec(),
        b"e".to_vec(),
    ])
}

/// Lease ids the requests use; 3 and -1 are granted less often than 1 and 2.
const LEASE_IDS: [i64; 4] = [1, 2, 3, -1];

fn lease_id() -> impl Strategy<Value = i64> {
    select(vec![1i64, 1, 2, 2, 3, -1])
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    select(vec![vec![], b"x".to_vec(), b"y".to_vec(), b"zz".to_vec()])
}

fn put_req() -> impl Strategy<Value = PutRequest> {
    (key(), value(), any::<bool>(), 0..20u8, lease_id()).prop_map(|(key, value, prev_kv, f, lease)| {
        let mut p = PutRequest {
            key,
            value,
            prev_kv,
            ..Default::default()
        };
        match f {
            7 => (p.ignore_value, p.value) = (true, vec![]),
            8 => p.ignore_lease = true,
            9 => (p.ignore_value, p.ignore_lease, p.value) = (true, true, vec![]),
            10..=13 => p.lease = lease,
            14 => p.lease = 5, // never granted
            15 => (p.ignore_value, p.value, p.lease) = (true, vec![], lease),
            19 => p.ignore_value = true, // ValueProvided unless the value is empty
            _ => {}
        }
        p
    })
}

fn del_req() -> impl Strategy<Value = DeleteRangeRequest> {
    (key(), range_end(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

/// A range request; `revision` is absolute (used inside txns).
fn range_req() -> impl Strategy<Value = RangeRequest> {
    (
        (
            key(),
            range_end(),
            0..4i64,
            select(vec![0i64, 0, 0, -1, 1, 2, 3, 5, 8]),
        ),
        (0..3u8, 0..5u8, 0..6u8, 0..8u8),
        (select(vec![0i64, 0, 0, 2, 4]), select(vec![0i64, 0, 0, 3, 6])),
    )
        .prop_map(
            |((key, range_end, limit, revision), (order, target, flags, filt), (lo, hi))| RangeRequest {
                key,
                range_end,
                limit,
                revision,
                sort_order: [SortOrder::None, SortOrder::Ascend, SortOrder::Descend][order as usize],
                sort_target: [
                    SortTarget::Key,
                    SortTarget::Version,
                    SortTarget::Create,
                    SortTarget::Mod,
                    SortTarget::Value,
                ][target as usize],
                keys_only: flags == 1,
                count_only: flags == 2,
                min_mod_revision: if filt & 1 != 0 { lo } else { 0 },
                max_mod_revision: if filt & 2 != 0 { hi } else { 0 },
                min_create_revision: if filt & 4 != 0 { lo } else { 0 },
                max_create_revision: if filt == 7 { hi } else { 0 },
            },
        )
}

fn compare() -> impl Strategy<Value = Compare> {
    (
        key(),
        select(vec![vec![], vec![], vec![], vec![0], b"c".to_vec()]),
        0..4u8,
        0..5u8,
        0..6i64,
        value(),
    )
        .prop_map(|(key, range_end, r, t, n, v)| Compare {
            key,
            range_end,
            result: [
                CompareResult::Equal,
                CompareResult::Greater,
                CompareResult::Less,
                CompareResult::NotEqual,
            ][r as usize],
            target: match t {
                0 => CompareTarget::Version(n),
                1 => CompareTarget::Create(n),
                2 => CompareTarget::Mod(n),
                3 => CompareTarget::Value(v),
                _ => CompareTarget::Lease(n % 4),
            },
        })
}

fn txn_req() -> impl Strategy<Value = TxnRequest> {
    let leaf = prop_oneof![
        2 => range_req().prop_map(RequestOp::Range),
        3 => put_req().prop_map(RequestOp::Put),
        2 => del_req().prop_map(RequestOp::DeleteRange),
    ];
    let op = leaf.prop_recursive(2, 12, 3, |inner| {
        (
            prop::collection::vec(compare(), 0..3),
            prop::collection::vec(inner.clone(), 0..3),
            prop::collection::vec(inner, 0..3),
        )
            .prop_map(|(compare, success, failure)| {
                RequestOp::Txn(TxnRequest {
                    compare,
                    success,
                    failure,
                })
            })
    });
    (
        prop::collection::vec(compare(), 0..3),
        prop::collection::vec(op.clone(), 0..4),
        prop::collection::vec(op, 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        })
}

/// A request; `Compact` carries a seed turned into a revision near the valid window.
#[derive(Debug, Clone)]
enum Req {
    Write(WriteRequest),
    Compact(u32),
}

fn lease_req() -> impl Strategy<Value = WriteRequest> {
    let ttl = select(vec![-1i64, 0, 5, 60, MAX_LEASE_TTL, MAX_LEASE_TTL + 1]);
    let grant_id = select(vec![1i64, 1, 2, 2, 3, -1, 0]);
    let checkpoint = (select(vec![1i64, 2, 3, -1, 9]), select(vec![0i64, 3, 10]))
        .prop_map(|(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl });
    prop_oneof![
        3 => (grant_id, ttl).prop_map(|(id, ttl)| WriteRequest::LeaseGrant { id, ttl }),
        2 => select(vec![1i64, 2, 3, -1, 0]).prop_map(|id| WriteRequest::LeaseRevoke { id }),
        1 => prop::collection::vec(checkpoint, 0..3)
            .prop_map(|checkpoints| WriteRequest::LeaseCheckpoint { checkpoints }),
    ]
}

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        5 => put_req().prop_map(|p| Req::Write(WriteRequest::Put(p))),
        2 => del_req().prop_map(|d| Req::Write(WriteRequest::DeleteRange(d))),
        3 => txn_req().prop_map(|t| Req::Write(WriteRequest::Txn(t))),
        1 => any::<u32>().prop_map(Req::Compact),
        3 => lease_req().prop_map(Req::Write),
    ]
}

#[derive(Debug, Clone)]
struct Step {
    /// Requests executed in one write txn (each its own revision).
    reqs: Vec<Req>,
    /// Range checks after the step; `revision` is replaced by a seed-chosen revision.
    checks: Vec<(RangeRequest, u32)>,
    events: (u32, bool),
}

fn step() -> impl Strategy<Value = Step> {
    (
        prop::collection::vec(req(), 1..3),
        prop::collection::vec((range_req(), any::<u32>()), 1..4),
        (any::<u32>(), any::<bool>()),
    )
        .prop_map(|(reqs, checks, events)| Step { reqs, checks, events })
}

fn resolve(req: &Req, current: i64, compact: i64) -> WriteRequest {
    match req {
        Req::Write(w) => w.clone(),
        Req::Compact(seed) => {
            let span = (current - compact + 3) as u32;
            WriteRequest::Compact {
                revision: compact - 1 + i64::from(seed % span),
            }
        }
    }
}

/// Mostly a revision in `[compact - 1, current + 1]`, sometimes the latest (0) or
/// anything in `[-1, current + 1]`.
fn seeded_revision(seed: u32, current: i64, compact: i64) -> i64 {
    match seed % 8 {
        0 => 0,
        1 => i64::from((seed / 8) % (current as u32 + 3)) - 1,
        _ => compact - 1 + i64::from((seed / 8) % ((current - compact) as u32 + 3)),
    }
}

/// Opens a sled database, retrying while a just-dropped handle to it still holds the file
/// lock (sled 0.34's flusher thread releases it shortly after the drop).
fn open_db_retrying(path: &std::path::Path) -> sled::Db {
    for _ in 0..100 {
        if let Ok(db) = sled::open(path) {
            return db;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    sled::open(path).unwrap()
}

fn temp_store() -> (sled::Db, Store) {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let s = Store::open(&db, GroupId(1)).unwrap();
    (db, s)
}

/// Applies one step to both and checks responses, commit outcome, ranges and events.
fn check_step(store: &Store, model: &mut Model, step: &Step) -> std::result::Result<(), TestCaseError> {
    let events_before = model.events.len();
    let mut w = store.write_txn();
    for r in &step.reqs {
        let req = resolve(r, model.current, model.compact);
        let expected = model.apply(&req);
        let got = w.execute(&req);
        prop_assert_eq!(&got, &expected, "request {:?}", req);
        prop_assert_eq!(w.current_revision(), model.current);
    }
    let out = w.commit().unwrap();
    prop_assert_eq!(out.revision, model.current);
    prop_assert_eq!(&out.events[..], &model.events[events_before..]);
    prop_assert_eq!(store.current_revision(), model.current);
    prop_assert_eq!(store.compact_revision(), model.compact);
    // Leases, and exactly the keys the model derives as attached (so a revoke deleted
    // exactly those: the model deletes the keys whose latest version carries the lease).
    prop_assert_eq!(store.leases().unwrap(), model.lease_list());
    for id in LEASE_IDS {
        prop_assert_eq!(store.lease(id).unwrap(), model.lease(id), "lease {}", id);
    }

    for (req, seed) in &step.checks {
        let mut req = req.clone();
        req.revision = seeded_revision(*seed, model.current, model.compact);
        prop_assert_eq!(store.range(&req), model.range(&req), "range {:?}", req);
    }
    let (seed, prev_kv) = step.events;
    let start = model.compact - 1 + i64::from(seed % (model.current - model.compact + 3) as u32);
    let end = model.current - i64::from(seed % 2);
    prop_assert_eq!(
        store.events(start, end, prev_kv),
        model.events(start, end, prev_kv),
        "events {}..={}",
        start,
        end
    );
    Ok(())
}

/// Everything observable about a store's MVCC state.
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    current: i64,
    compact: i64,
    hash: u32,
    ranges: Vec<Result<RangeResponse>>,
    events: Result<Vec<Event>>,
    app_meta: Option<Vec<u8>>,
    leases: Vec<LeaseInfo>,
    lease_keys: Vec<Option<LeaseInfo>>,
}

fn observe(s: &Store) -> Observed {
    let ranges = (0..=s.current_revision() + 1)
        .map(|rev| {
            s.range(&RangeRequest {
                key: vec![0],
                range_end: vec![0],
                revision: rev,
                ..Default::default()
            })
        })
        .collect();
    Observed {
        current: s.current_revision(),
        compact: s.compact_revision(),
        hash: s.hash().unwrap(),
        ranges,
        events: s.events(s.compact_revision(), i64::MAX, true),
        app_meta: s.app_meta("applied").unwrap(),
        leases: s.leases().unwrap(),
        lease_keys: LEASE_IDS.iter().map(|&id| s.lease(id).unwrap()).collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model(steps in prop::collection::vec(step(), 1..40)) {
        let (_db, store) = temp_store();
        let mut model = Model::default();
        for s in &steps {
            check_step(&store, &mut model, s)?;
        }
        // Every revision at or above the compact revision reads as the model says.
        for rev in model.compact.max(1)..=model.current {
            for (k, end) in [(vec![0u8], vec![0u8]), (b"a".to_vec(), b"c".to_vec()), (b"ab".to_vec(), vec![])] {
                let req = RangeRequest { key: k, range_end: end, revision: rev, ..Default::default() };
                prop_assert_eq!(store.range(&req), model.range(&req));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, max_shrink_iters: 500, ..ProptestConfig::default() })]

    #[test]
    fn reopen_and_snapshot_import_preserve_state(steps in prop::collection::vec(step(), 1..20)) {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::default();
        let (before, records) = {
            let db = open_db_retrying(dir.path());
            let store = Store::open(&db, GroupId(9)).unwrap();
            for (i, s) in steps.iter().enumerate() {
                let mut w = store.write_txn();
                for r in &s.reqs {
                    let req = resolve(r, model.current, model.compact);
                    let _ = model.apply(&req);
                    let _ = w.execute(&req);
                }
                w.set_app_meta("applied", (i as u64).to_be_bytes().to_vec());
                w.commit().unwrap();
            }
            store.flush().unwrap();
            let mut records = Vec::new();
            store.export_to(|k, v| { records.push((k.to_vec(), v.to_vec())); Ok(()) }).unwrap();
            (observe(&store), records)
        };
        prop_assert_eq!(before.current, model.current);
        prop_assert_eq!(&before.leases, &model.lease_list());
        let db = open_db_retrying(dir.path());
        let reopened = Store::open(&db, GroupId(9)).unwrap();
        prop_assert_eq!(observe(&reopened), before.clone());

        let (_db2, imported) = temp_store();
        imported.import_from(records.into_iter().map(Ok)).unwrap();
        prop_assert_eq!(observe(&imported), before);
    }
}
