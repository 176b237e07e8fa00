//! Judging a recorded history with the linearizability checker
//! (`conclave-linearizability`): each key is a register with read, write and
//! compare-and-swap; failed writes count as "may or may not have happened".

use std::time::Duration;

use conclave_linearizability as lin;

use crate::workload::{OpKind, OpOutcome, Recorded};

/// Search budget per key.
const TIMEOUT_PER_KEY: Duration = Duration::from_secs(30);

/// The checker's verdict on a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's history is linearizable.
    Linearizable,
    /// A key's history is not; the description says where.
    Violation(String),
    /// The search did not finish in time for some key, or the history was malformed.
    Inconclusive(String),
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Linearizable => f.write_str("linearizable"),
            Verdict::Violation(why) => write!(f, "NOT linearizable: {why}"),
            Verdict::Inconclusive(why) => write!(f, "inconclusive: {why}"),
        }
    }
}

/// The checker's form of one recorded operation.
fn to_operation(op: &Recorded) -> lin::Operation {
    let kind = match &op.kind {
        OpKind::Read => lin::OpKind::Read,
        OpKind::Write(value) => lin::OpKind::Write { value: value.clone() },
        OpKind::Cas { expected, new } => lin::OpKind::Cas {
            expected: expected.clone(),
            new: new.clone(),
        },
    };
    let outcome = match &op.outcome {
        OpOutcome::Read(value) => lin::Outcome::Ok(lin::Response::Value(value.clone())),
        OpOutcome::Written(_) => lin::Outcome::Ok(lin::Response::Done),
        OpOutcome::Cas(swapped, _) => lin::Outcome::Ok(lin::Response::CasSucceeded(*swapped)),
        OpOutcome::Failed => lin::Outcome::Failed,
        OpOutcome::Unknown => lin::Outcome::Unknown,
    };
    lin::Operation {
        client: lin::ClientId(op.client as u64),
        key: op.key.clone(),
        kind,
        invoked: op.invoked,
        completed: Some(op.completed),
        outcome,
    }
}

/// Checks `ops`.
pub fn judge(ops: &[Recorded]) -> Verdict {
    let mut history = lin::History::new();
    if let Err(e) = history.extend(ops.iter().map(to_operation)) {
        return Verdict::Inconclusive(format!("malformed history: {e}"));
    }
    let report = lin::check(
        &history,
        lin::CheckOptions {
            timeout_per_key: TIMEOUT_PER_KEY,
        },
    );
    if let Some((key, witness)) = report.violations().next() {
        return Verdict::Violation(format!(
            "key {key}: stuck at {} after a linearizable prefix of {} operations (value then {:?})",
            witness.stuck,
            witness.longest_prefix.len(),
            witness.value_after_prefix
        ));
    }
    let undecided: Vec<&str> = report.undecided().collect();
    if !undecided.is_empty() {
        return Verdict::Inconclusive(format!("search budget exhausted for keys {undecided:?}"));
    }
    Verdict::Linearizable
}
