//! Turning one key's operations into what the search needs, with exact reductions that keep
//! unknown-outcome operations from blowing up the search.
//!
//! Values are interned to a `u32` state. Every value that no operation *mentions* (no
//! answered read returns it, no CAS expects it) behaves identically under every operation, so
//! all of them share the single state [`OTHER`]; this merges memo entries without changing any
//! verdict.

use std::collections::{HashMap, HashSet};

use crate::history::{OpKind, Operation, Outcome, Response};

/// Interned register state.
pub(crate) type State = u32;
/// The key is absent (its initial state).
pub(crate) const ABSENT: State = 0;
/// Some value that no operation mentions.
pub(crate) const OTHER: State = u32::MAX;

/// An operation as the search sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Read(State),
    Write(State),
    CasOk {
        expected: State,
        new: State,
    },
    CasFailed {
        expected: State,
    },
    /// A CAS whose outcome is unknown: it swaps when the value matches.
    CasUnknown {
        expected: State,
        new: State,
    },
}

impl Step {
    /// The state after applying the step to `state`, or `None` when the recorded response is
    /// impossible in `state`.
    pub(crate) fn apply(self, state: State) -> Option<State> {
        match self {
            Step::Read(seen) => (seen == state).then_some(state),
            Step::Write(new) => Some(new),
            Step::CasOk { expected, new } => (expected == state).then_some(new),
            Step::CasFailed { expected } => (expected != state).then_some(state),
            Step::CasUnknown { expected, new } => Some(if expected == state { new } else { state }),
        }
    }

    /// The value a mutation may leave.
    fn written(self) -> Option<State> {
        match self {
            Step::Write(v) | Step::CasOk { new: v, .. } | Step::CasUnknown { new: v, .. } => Some(v),
            Step::Read(_) | Step::CasFailed { .. } => None,
        }
    }

    fn written_mut(&mut self) -> Option<&mut State> {
        match self {
            Step::Write(v) | Step::CasOk { new: v, .. } | Step::CasUnknown { new: v, .. } => Some(v),
            Step::Read(_) | Step::CasFailed { .. } => None,
        }
    }
}

/// One operation the search must (if `known`) or may (if not) place.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Index into the slice given to [`prepare`].
    pub op: usize,
    pub step: Step,
    pub invoked: u64,
    /// `u64::MAX` stands for +infinity (unknown outcome).
    pub completed: u64,
    /// Whether the operation definitely took effect and so must be placed.
    pub known: bool,
}

/// One key's search problem.
#[derive(Debug, Default)]
pub(crate) struct KeyProblem {
    /// Operations placed by the ordinary WGL search.
    pub entries: Vec<Entry>,
    /// Unknown writes of unmentioned values, as (invocation, op index), by invocation. They are
    /// interchangeable, and setting the state to [`OTHER`] only ever helps a failed CAS that
    /// expects the current value, so the search uses the earliest available one right before
    /// such a CAS and nowhere else (any linearization can be rearranged into that form).
    pub pool: Vec<(u64, usize)>,
    /// Unknown CASes whose new value is unmentioned: left out of the first search, which is
    /// exact unless the key has a failed CAS (the only thing their effect could help).
    pub optional: Vec<Entry>,
    /// Whether some answered CAS failed.
    pub has_failed_cas: bool,
}

pub(crate) fn prepare<'a>(ops: &[&'a Operation]) -> KeyProblem {
    let mut values: HashMap<&'a str, State> = HashMap::new();
    let mut intern = |v: Option<&'a String>| -> State {
        let Some(v) = v else { return ABSENT };
        let next = values.len() as State + 1;
        *values.entry(v.as_str()).or_insert(next)
    };
    let mut entries: Vec<Entry> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let known = match &op.outcome {
            Outcome::Failed => continue,
            Outcome::Ok(response) => Some(response),
            Outcome::Unknown => None,
        };
        let step = match (&op.kind, known) {
            (OpKind::Read, Some(Response::Value(v))) => Step::Read(intern(v.as_ref())),
            (OpKind::Read, _) => continue,
            (OpKind::Write { value }, _) => Step::Write(intern(Some(value))),
            (OpKind::Delete, _) => Step::Write(ABSENT),
            (OpKind::Cas { expected, new }, known) => {
                let expected = intern(expected.as_ref());
                let new = intern(Some(new));
                match known {
                    Some(Response::CasSucceeded(true)) => Step::CasOk { expected, new },
                    Some(_) => Step::CasFailed { expected },
                    None => Step::CasUnknown { expected, new },
                }
            }
        };
        let completed = match (known, op.completed) {
            (Some(_), Some(completed)) => completed,
            _ => u64::MAX,
        };
        entries.push(Entry {
            op: i,
            step,
            invoked: op.invoked,
            completed,
            known: known.is_some(),
        });
    }
    promote_observed_unknowns(&mut entries);
    merge_unmentioned(&mut entries);

    let mut problem = KeyProblem {
        has_failed_cas: entries.iter().any(|e| matches!(e.step, Step::CasFailed { .. })),
        ..KeyProblem::default()
    };
    for e in entries {
        match e.step {
            Step::Write(OTHER) if !e.known => problem.pool.push((e.invoked, e.op)),
            Step::CasUnknown { new: OTHER, .. } if !e.known => problem.optional.push(e),
            _ => problem.entries.push(e),
        }
    }
    problem.pool.sort_unstable();
    problem
}

/// An unknown mutation that alone writes a value an answered operation observed took effect
/// before that observer completed (the key starts absent, so nothing else explains the
/// value): it becomes a known operation completing then.
fn promote_observed_unknowns(entries: &mut [Entry]) {
    let mut writers: HashMap<State, usize> = HashMap::new();
    for e in entries.iter() {
        if let Some(v) = e.step.written() {
            *writers.entry(v).or_default() += 1;
        }
    }
    let mut first_observed: HashMap<State, u64> = HashMap::new();
    for e in entries.iter() {
        let seen = match e.step {
            Step::Read(v) | Step::CasOk { expected: v, .. } if e.known => v,
            _ => continue,
        };
        let at = first_observed.entry(seen).or_insert(u64::MAX);
        *at = (*at).min(e.completed);
    }
    for e in entries.iter_mut().filter(|e| !e.known) {
        let Some(v) = e.step.written() else { continue };
        let Some(&observed_by) = first_observed.get(&v) else {
            continue;
        };
        if v == ABSENT || writers.get(&v) != Some(&1) || observed_by < e.invoked {
            continue;
        }
        e.known = true;
        e.completed = observed_by;
        if let Step::CasUnknown { expected, new } = e.step {
            e.step = Step::CasOk { expected, new };
        }
    }
}

/// Maps every written value that no read returns and no CAS expects to [`OTHER`].
fn merge_unmentioned(entries: &mut [Entry]) {
    let mut mentioned: HashSet<State> = HashSet::from([ABSENT]);
    for e in entries.iter() {
        match e.step {
            Step::Read(v)
            | Step::CasOk { expected: v, .. }
            | Step::CasFailed { expected: v }
            | Step::CasUnknown { expected: v, .. } => mentioned.insert(v),
            Step::Write(_) => false,
        };
    }
    for e in entries.iter_mut() {
        if let Some(v) = e.step.written_mut() {
            if !mentioned.contains(v) {
                *v = OTHER;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::ClientId;

    fn op(kind: OpKind, outcome: Outcome) -> Operation {
        Operation {
            client: ClientId(1),
            key: "k".into(),
            kind,
            invoked: 10,
            completed: Some(20),
            outcome,
        }
    }

    #[test]
    fn observed_unknown_write_becomes_known_and_unobserved_one_joins_the_pool() {
        let ops = [
            op(OpKind::Write { value: "seen".into() }, Outcome::Unknown),
            op(
                OpKind::Write {
                    value: "unseen".into(),
                },
                Outcome::Unknown,
            ),
            op(OpKind::Read, Outcome::Ok(Response::Value(Some("seen".into())))),
        ];
        let refs: Vec<&Operation> = ops.iter().collect();
        let problem = prepare(&refs);
        assert_eq!(problem.pool, vec![(10, 1)]);
        let promoted = &problem.entries[0];
        assert!(promoted.known);
        assert_eq!(promoted.completed, 20);
    }

    #[test]
    fn unmentioned_values_share_one_state() {
        let ops = [
            op(OpKind::Write { value: "a".into() }, Outcome::Ok(Response::Done)),
            op(OpKind::Write { value: "b".into() }, Outcome::Ok(Response::Done)),
        ];
        let refs: Vec<&Operation> = ops.iter().collect();
        let steps: Vec<Step> = prepare(&refs).entries.iter().map(|e| e.step).collect();
        assert_eq!(steps, vec![Step::Write(OTHER), Step::Write(OTHER)]);
    }
}
