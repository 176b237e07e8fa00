//! Hand-made histories that pin what the checker accepts and rejects.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::history::{ClientId, OpKind, Response};

/// Records operations tersely: times are `[invoked, completed]`.
#[derive(Default)]
struct Recorder(History);

impl Recorder {
    fn op(&mut self, client: u64, key: &str, kind: OpKind, at: [u64; 2], outcome: Outcome) -> OpId {
        let op = Operation {
            client: ClientId(client),
            key: key.into(),
            kind,
            invoked: at[0],
            completed: Some(at[1]),
            outcome,
        };
        self.0.record(op).unwrap()
    }
    fn write(&mut self, client: u64, key: &str, value: &str, at: [u64; 2]) -> OpId {
        self.op(
            client,
            key,
            OpKind::Write { value: value.into() },
            at,
            Outcome::Ok(Response::Done),
        )
    }
    fn read(&mut self, client: u64, key: &str, seen: Option<&str>, at: [u64; 2]) -> OpId {
        self.op(
            client,
            key,
            OpKind::Read,
            at,
            Outcome::Ok(Response::Value(seen.map(String::from))),
        )
    }
    fn cas(
        &mut self,
        client: u64,
        key: &str,
        expected: Option<&str>,
        new: &str,
        at: [u64; 2],
        swapped: bool,
    ) -> OpId {
        let kind = OpKind::Cas {
            expected: expected.map(String::from),
            new: new.into(),
        };
        self.op(
            client,
            key,
            kind,
            at,
            Outcome::Ok(Response::CasSucceeded(swapped)),
        )
    }
    fn unknown_write(&mut self, client: u64, key: &str, value: &str, at: [u64; 2]) -> OpId {
        self.op(
            client,
            key,
            OpKind::Write { value: value.into() },
            at,
            Outcome::Unknown,
        )
    }
    fn report(&self) -> Report {
        check(&self.0, CheckOptions::default())
    }
    fn witness(&self, key: &str) -> Witness {
        match &self.report().keys[key].verdict {
            Verdict::NotLinearizable(w) => (**w).clone(),
            other => panic!("expected a violation on {key:?}, got {other:?}"),
        }
    }
}

#[test]
fn sequential_history_is_linearizable() {
    let mut h = Recorder::default();
    h.read(1, "k", None, [0, 1]);
    h.write(1, "k", "a", [2, 3]);
    h.read(2, "k", Some("a"), [4, 5]);
    h.cas(1, "k", Some("a"), "b", [6, 7], true);
    h.cas(2, "k", Some("a"), "c", [8, 9], false);
    h.op(1, "k", OpKind::Delete, [10, 11], Outcome::Ok(Response::Done));
    h.read(2, "k", None, [12, 13]);
    h.cas(2, "k", None, "d", [14, 15], true);
    h.read(1, "k", Some("d"), [16, 17]);
    assert!(h.report().is_linearizable(), "{}", h.report());
}

#[test]
fn overlapping_writes_may_take_effect_in_either_order() {
    for winner in ["a", "b"] {
        let mut h = Recorder::default();
        h.write(1, "k", "a", [0, 10]);
        h.write(2, "k", "b", [1, 9]);
        h.read(3, "k", Some(winner), [11, 12]);
        h.read(3, "k", Some(winner), [13, 14]);
        assert!(h.report().is_linearizable(), "{winner}: {}", h.report());
    }
}

#[test]
fn read_concurrent_with_a_write_may_see_old_or_new_value() {
    let mut h = Recorder::default();
    h.write(1, "k", "a", [0, 1]);
    h.write(1, "k", "b", [5, 20]);
    h.read(2, "k", Some("b"), [6, 8]);
    h.read(3, "k", Some("b"), [9, 10]);
    h.read(4, "k", Some("a"), [7, 12]);
    assert!(h.report().is_linearizable(), "{}", h.report());
}

#[test]
fn concurrent_reads_must_agree_on_one_order_of_writes() {
    // Once a reader saw b then a, the writes are ordered b < a; a later read of b contradicts it.
    let mut h = Recorder::default();
    h.write(1, "k", "a", [0, 100]);
    h.write(2, "k", "b", [0, 100]);
    h.read(3, "k", Some("b"), [10, 11]);
    h.read(3, "k", Some("a"), [12, 13]);
    h.read(4, "k", Some("b"), [14, 15]);
    assert!(h.report().has_violation());
}

#[test]
fn stale_read_is_detected() {
    let mut h = Recorder::default();
    h.write(1, "k", "a", [0, 1]);
    h.write(1, "k", "b", [2, 3]);
    let stale = h.read(2, "k", Some("a"), [4, 5]);
    let w = h.witness("k");
    assert_eq!(w.stuck, stale);
    assert_eq!(w.value_after_prefix.as_deref(), Some("b"));
    assert_eq!(w.longest_prefix, vec![OpId(0), OpId(1)]);
}

#[test]
fn read_of_the_initial_value_after_an_acknowledged_write_is_detected() {
    let mut h = Recorder::default();
    h.write(1, "k", "a", [0, 10]);
    h.read(2, "k", None, [20, 30]);
    assert!(h.report().has_violation());
}

#[test]
fn lost_write_is_detected() {
    // b was acknowledged, but a read after it (and later ones) still see a.
    let mut h = Recorder::default();
    h.write(1, "k", "a", [0, 1]);
    let lost = h.write(2, "k", "b", [2, 3]);
    h.read(3, "k", Some("a"), [4, 5]);
    h.read(1, "k", Some("a"), [6, 7]);
    let w = h.witness("k");
    assert!(w.longest_prefix.contains(&lost));
    assert_eq!(w.stuck, OpId(2));
    let rendered = w.to_string();
    assert!(rendered.contains("stuck #2"), "{rendered}");
}

#[test]
fn cas_reported_success_without_a_match_is_detected() {
    let mut h = Recorder::default();
    h.write(1, "k", "a", [0, 1]);
    h.cas(2, "k", Some("x"), "y", [2, 3], true);
    assert!(h.report().has_violation());

    let mut h = Recorder::default();
    h.write(1, "k", "a", [0, 1]);
    h.cas(2, "k", None, "y", [2, 3], true); // create-if-absent on a present key
    assert!(h.report().has_violation());
}

#[test]
fn cas_reported_failure_when_the_value_matched_is_detected() {
    let mut h = Recorder::default();
    h.write(1, "k", "a", [0, 1]);
    h.cas(2, "k", Some("a"), "b", [2, 3], false);
    assert!(h.report().has_violation());

    let mut h = Recorder::default();
    h.cas(2, "k", None, "b", [2, 3], false); // create-if-absent on an absent key
    assert!(h.report().has_violation());
}

#[test]
fn two_successful_cas_from_the_same_value_are_detected() {
    let mut h = Recorder::default();
    h.write(1, "k", "a", [0, 1]);
    h.cas(2, "k", Some("a"), "b", [2, 10], true);
    h.cas(3, "k", Some("a"), "c", [2, 10], true);
    assert!(h.report().has_violation());
}

#[test]
fn unknown_write_that_is_later_observed_is_accepted() {
    let mut h = Recorder::default();
    h.write(1, "k", "a", [0, 1]);
    h.unknown_write(2, "k", "u", [2, 3]);
    h.read(3, "k", Some("a"), [10, 11]);
    h.read(3, "k", Some("u"), [100, 101]); // took effect long after the client gave up
    assert!(h.report().is_linearizable(), "{}", h.report());
}

#[test]
fn unknown_write_that_is_never_observed_is_accepted() {
    let mut h = Recorder::default();
    h.write(1, "k", "a", [0, 1]);
    h.unknown_write(2, "k", "u", [2, 3]);
    h.read(3, "k", Some("a"), [10, 11]);
    h.op(
        4,
        "k",
        OpKind::Cas {
            expected: Some("a".into()),
            new: "c".into(),
        },
        [12, 13],
        Outcome::Unknown,
    );
    h.read(3, "k", Some("a"), [100, 101]);
    assert!(h.report().is_linearizable(), "{}", h.report());
}

#[test]
fn unknown_write_takes_effect_at_most_once_and_not_before_invocation() {
    let mut h = Recorder::default();
    h.unknown_write(2, "k", "u", [2, 3]);
    h.read(3, "k", Some("u"), [10, 11]);
    h.read(3, "k", None, [12, 13]);
    assert!(h.report().has_violation());

    let mut h = Recorder::default();
    h.read(3, "k", Some("u"), [0, 1]);
    h.unknown_write(2, "k", "u", [2, 3]);
    assert!(h.report().has_violation());
}

#[test]
fn unobserved_unknown_mutation_can_explain_a_failed_cas() {
    // Only an unknown write (or unknown CAS) of a value nobody reads can have moved the key
    // off "a" before the CAS expecting "a" failed.
    let mut h = Recorder::default();
    h.write(1, "k", "a", [0, 1]);
    h.unknown_write(2, "k", "u", [2, 3]);
    h.cas(3, "k", Some("a"), "b", [10, 11], false);
    h.write(1, "k", "c", [20, 21]);
    h.read(3, "k", Some("c"), [22, 23]);
    assert!(h.report().is_linearizable(), "{}", h.report());

    let mut h = Recorder::default();
    h.write(1, "k", "a", [0, 1]);
    h.op(
        2,
        "k",
        OpKind::Cas {
            expected: Some("a".into()),
            new: "x".into(),
        },
        [2, 3],
        Outcome::Unknown,
    );
    h.cas(3, "k", Some("a"), "b", [10, 11], false);
    assert!(h.report().is_linearizable(), "{}", h.report());

    // ...but not one invoked after the CAS completed.
    let mut h = Recorder::default();
    h.write(1, "k", "a", [0, 1]);
    h.cas(3, "k", Some("a"), "b", [10, 11], false);
    h.unknown_write(2, "k", "u", [12, 13]);
    assert!(h.report().has_violation());
}

#[test]
fn unknown_reads_and_failed_operations_constrain_nothing() {
    let mut h = Recorder::default();
    h.write(1, "k", "a", [0, 1]);
    h.op(2, "k", OpKind::Read, [2, 3], Outcome::Unknown);
    h.op(
        2,
        "k",
        OpKind::Write { value: "f".into() },
        [4, 5],
        Outcome::Failed,
    );
    h.read(3, "k", Some("a"), [6, 7]);
    let report = h.report();
    assert!(report.is_linearizable(), "{report}");
    assert_eq!(
        report.counts,
        Counts {
            operations: 4,
            ok: 2,
            unknown: 1,
            failed: 1,
            keys: 1
        }
    );

    // A failed write must not be observed.
    h.read(3, "k", Some("f"), [8, 9]);
    assert!(h.report().has_violation());
}

#[test]
fn pending_operations_count_as_unknown() {
    let mut h = History::new();
    h.invoke(ClientId(1), "k", OpKind::Write { value: "a".into() }, 0);
    let read = h.invoke(ClientId(2), "k", OpKind::Read, 5);
    h.complete(read, 6, Outcome::Ok(Response::Value(Some("a".into()))))
        .unwrap();
    let report = check(&h, CheckOptions::default());
    assert!(report.is_linearizable(), "{report}");
    assert_eq!(report.counts.unknown, 1);
}

#[test]
fn keys_are_checked_independently() {
    let mut h = Recorder::default();
    h.write(1, "good", "a", [0, 1]);
    h.write(1, "bad", "a", [0, 1]);
    h.write(2, "bad", "b", [2, 3]);
    h.read(2, "good", Some("a"), [4, 5]); // would be stale on "bad", fine on "good"
    h.read(2, "bad", Some("a"), [4, 5]);
    let report = h.report();
    assert_eq!(report.keys["good"].verdict, Verdict::Linearizable);
    assert!(matches!(report.keys["bad"].verdict, Verdict::NotLinearizable(_)));
    assert_eq!(
        report.violations().map(|(k, _)| k).collect::<Vec<_>>(),
        vec!["bad"]
    );
    assert!(!report.is_linearizable());
    assert_eq!(report.counts.keys, 2);
}

#[test]
fn timeout_yields_unknown_verdict() {
    let mut h = Recorder::default();
    for i in 0..5000u64 {
        h.write(1, "k", &i.to_string(), [2 * i, 2 * i + 1]);
    }
    let report = check(
        &h.0,
        CheckOptions {
            timeout_per_key: Duration::ZERO,
        },
    );
    assert!(
        matches!(report.keys["k"].verdict, Verdict::Unknown { .. }),
        "{report}"
    );
    assert!(!report.is_linearizable() && !report.has_violation());
    assert_eq!(report.undecided().collect::<Vec<_>>(), vec!["k"]);
}

/// A tiny deterministic generator, so the stress tests are reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A valid concurrent history: `clients` clients, each operation takes effect at its own
/// instant `10 * i` inside a window of up to 200 ns around it (so ~20 operations overlap).
/// Some writes have unknown outcomes, half of which took effect.
fn concurrent_history(seed: u64, ops: u64, clients: u64) -> History {
    let mut rng = Rng(seed);
    let mut h = Recorder::default();
    let mut value: Option<String> = None;
    let mut client_free_at = vec![0u64; clients as usize];
    for i in 0..ops {
        let client = i % clients;
        let at = 10 * i + 1000;
        let invoked = (at - rng.below(100)).max(client_free_at[client as usize]);
        let completed = at + rng.below(100);
        client_free_at[client as usize] = completed + 1;
        let times = [invoked, completed];
        match rng.below(10) {
            0..=3 => {
                h.read(client, "k", value.as_deref(), times);
            }
            4..=6 => {
                let new = format!("w{i}");
                if rng.below(30) == 0 {
                    h.unknown_write(client, "k", &new, times);
                    if rng.below(2) == 0 {
                        continue; // never took effect
                    }
                } else {
                    h.write(client, "k", &new, times);
                }
                value = Some(new);
            }
            _ => {
                let expected = if rng.below(2) == 0 {
                    value.clone()
                } else {
                    Some("nope".into())
                };
                let swapped = expected == value;
                h.cas(client, "k", expected.as_deref(), &format!("c{i}"), times, swapped);
                if swapped {
                    value = Some(format!("c{i}"));
                }
            }
        }
    }
    h.0
}

#[test]
fn thousands_of_concurrent_operations_check_quickly() {
    let history = concurrent_history(0x5eed, 4000, 16);
    let started = Instant::now();
    let report = check(&history, CheckOptions::default());
    let elapsed = started.elapsed();
    assert!(report.is_linearizable(), "{report}");
    // Typically ~0.3 s in release on one core; the bound leaves room for a loaded CI machine.
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[test]
fn a_single_corrupted_read_in_a_long_concurrent_history_is_found() {
    let mut ops: Vec<Operation> = concurrent_history(0xbad, 3000, 16).into();
    let victim = ops
        .iter()
        .rposition(|op| {
            op.kind == OpKind::Read && op.outcome == Outcome::Ok(Response::Value(Some("w3".into())))
        })
        .or_else(|| ops.iter().rposition(|op| op.kind == OpKind::Read))
        .unwrap();
    ops[victim].outcome = Outcome::Ok(Response::Value(Some("w3".into())));
    ops[victim].invoked = ops.last().unwrap().completed.unwrap() + 1;
    ops[victim].completed = Some(ops[victim].invoked + 1);
    let history = History::try_from(ops).unwrap();
    let started = Instant::now();
    let report = check(&history, CheckOptions::default());
    assert!(report.has_violation(), "{report}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

proptest! {
    #[test]
    fn random_sequential_histories_are_linearizable(steps in prop::collection::vec((0u8..4, 0u8..4, 0u8..3), 0..60)) {
        let mut h = Recorder::default();
        let mut value: Option<String> = None;
        for (i, (kind, arg, key)) in steps.into_iter().enumerate() {
            let at = [2 * i as u64, 2 * i as u64 + 1];
            // One register per key index, so only key 0 is tracked; other keys get reads of absent.
            let key_name = format!("k{key}");
            if key != 0 {
                h.read(1, &key_name, None, at);
                continue;
            }
            let v = format!("v{arg}");
            match kind {
                0 => { h.read(1, &key_name, value.as_deref(), at); }
                1 => { h.write(1, &key_name, &v, at); value = Some(v); }
                2 => {
                    let expected = if arg % 2 == 0 { value.clone() } else { Some(format!("v{}", arg / 2)) };
                    let swapped = expected == value;
                    h.cas(1, &key_name, expected.as_deref(), &v, at, swapped);
                    if swapped { value = Some(v); }
                }
                _ => { h.op(1, &key_name, OpKind::Delete, at, Outcome::Ok(Response::Done)); value = None; }
            }
        }
        prop_assert!(h.report().is_linearizable());
    }
}
