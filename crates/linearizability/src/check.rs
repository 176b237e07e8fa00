//! Checking a whole history: split by key, search each key, aggregate.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::history::{History, OpId, OpKind, Operation, Outcome, Response};
use crate::search::{self, KeyOutcome};

/// How hard to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOptions {
    /// Upper bound on search time for one key; a key that takes longer gets
    /// [`Verdict::Unknown`]. Default: 10 s.
    pub timeout_per_key: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            timeout_per_key: Duration::from_secs(10),
        }
    }
}

/// Why one key's history is not linearizable: how far a linearization got, and what could not
/// be placed after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    /// The longest sequence of this key's operations that the search could linearize, in
    /// linearization order (it includes unknown operations it chose to let take effect).
    pub longest_prefix: Vec<OpId>,
    /// The key's value after `longest_prefix` (`None`: absent).
    pub value_after_prefix: Option<String>,
    /// The operation that completed before it could be placed after `longest_prefix`.
    pub stuck: OpId,
    /// The operations that were invoked but not yet placed at that point (`stuck` among
    /// them): none of them could come next.
    pub pending: Vec<OpId>,
    /// Copies of `stuck` and the last few operations of `longest_prefix`, so the witness reads
    /// on its own.
    pub context: Vec<(OpId, Operation)>,
}

/// The verdict on one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Some total order of the key's operations respects real time and register semantics.
    /// Sound: if this is reported, such an order exists.
    Linearizable,
    /// No such order exists (the search was exhaustive).
    NotLinearizable(Box<Witness>),
    /// The search hit [`CheckOptions::timeout_per_key`] after exploring `explored`
    /// configurations; nothing is claimed.
    Unknown {
        /// Search steps taken before giving up.
        explored: u64,
    },
}

/// One key's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyReport {
    /// The verdict.
    pub verdict: Verdict,
    /// Operations recorded for the key (every outcome).
    pub operations: usize,
    /// Search time spent on the key.
    pub elapsed: Duration,
}

/// Operation counts over the whole history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Operations recorded.
    pub operations: usize,
    /// Completed with an answer.
    pub ok: usize,
    /// Outcome unknown (timed out, connection lost, or never completed).
    pub unknown: usize,
    /// Definitely not performed.
    pub failed: usize,
    /// Distinct keys.
    pub keys: usize,
}

/// The result of [`check`]: a verdict per key plus counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Verdict per key, in key order.
    pub keys: BTreeMap<String, KeyReport>,
    /// Counts over all operations.
    pub counts: Counts,
    /// Total time spent checking.
    pub elapsed: Duration,
}

impl Report {
    /// Whether every key is [`Verdict::Linearizable`] (so the whole history is, by locality).
    pub fn is_linearizable(&self) -> bool {
        self.keys.values().all(|k| k.verdict == Verdict::Linearizable)
    }

    /// Whether some key is definitely not linearizable.
    pub fn has_violation(&self) -> bool {
        self.violations().next().is_some()
    }

    /// The keys proven not linearizable, with their witnesses.
    pub fn violations(&self) -> impl Iterator<Item = (&str, &Witness)> {
        self.keys.iter().filter_map(|(key, k)| match &k.verdict {
            Verdict::NotLinearizable(w) => Some((key.as_str(), w.as_ref())),
            _ => None,
        })
    }

    /// The keys whose search timed out.
    pub fn undecided(&self) -> impl Iterator<Item = &str> {
        self.keys
            .iter()
            .filter(|(_, k)| matches!(k.verdict, Verdict::Unknown { .. }))
            .map(|(key, _)| key.as_str())
    }
}

/// Checks every key's history for linearizability, each key on its own (linearizability is
/// local: the whole history is linearizable iff every key's is).
///
/// Guarantees: `Linearizable` and `NotLinearizable` verdicts are exact for the register model
/// (reads, writes, compare-and-swap, deletes on `Option<String>`, initially absent), where
/// `Ok` operations took effect once between invocation and completion, `Unknown` ones at most
/// once at any time after invocation, and `Failed` ones never. Each key takes at most about
/// `timeout_per_key` before being reported `Unknown`.
pub fn check(history: &History, options: CheckOptions) -> Report {
    let started = Instant::now();
    let mut by_key: BTreeMap<&str, Vec<(OpId, &Operation)>> = BTreeMap::new();
    let mut counts = Counts {
        operations: history.len(),
        ..Counts::default()
    };
    for (i, op) in history.operations().iter().enumerate() {
        match op.outcome {
            Outcome::Ok(_) => counts.ok += 1,
            Outcome::Unknown => counts.unknown += 1,
            Outcome::Failed => counts.failed += 1,
        }
        by_key.entry(op.key.as_str()).or_default().push((OpId(i), op));
    }
    counts.keys = by_key.len();

    let keys = by_key
        .into_iter()
        .map(|(key, ops)| {
            let key_started = Instant::now();
            let refs: Vec<&Operation> = ops.iter().map(|&(_, op)| op).collect();
            let verdict = match search::check_key(&refs, options.timeout_per_key) {
                KeyOutcome::Linearizable => Verdict::Linearizable,
                KeyOutcome::TimedOut { explored } => Verdict::Unknown { explored },
                KeyOutcome::NotLinearizable(failure) => {
                    let id = |i: usize| ops[i].0;
                    let longest_prefix: Vec<OpId> = failure.prefix.iter().map(|&i| id(i)).collect();
                    let tail = failure.prefix.len().saturating_sub(5);
                    let context = failure.prefix[tail..]
                        .iter()
                        .chain(std::iter::once(&failure.stuck))
                        .map(|&i| (id(i), ops[i].1.clone()))
                        .collect();
                    Verdict::NotLinearizable(Box::new(Witness {
                        longest_prefix,
                        value_after_prefix: replay(failure.prefix.iter().map(|&i| ops[i].1)),
                        stuck: id(failure.stuck),
                        pending: failure.pending.iter().map(|&i| id(i)).collect(),
                        context,
                    }))
                }
            };
            let report = KeyReport {
                verdict,
                operations: ops.len(),
                elapsed: key_started.elapsed(),
            };
            (key.to_owned(), report)
        })
        .collect();
    Report {
        keys,
        counts,
        elapsed: started.elapsed(),
    }
}

/// The register value after applying `ops` in order from the initial (absent) state; an
/// unknown CAS swaps when its expected value matches (that is how the search placed it).
fn replay<'a>(ops: impl Iterator<Item = &'a Operation>) -> Option<String> {
    let mut value = None;
    for op in ops {
        match (&op.kind, &op.outcome) {
            (OpKind::Write { value: v }, _) => value = Some(v.clone()),
            (OpKind::Delete, _) => value = None,
            (OpKind::Cas { new, .. }, Outcome::Ok(Response::CasSucceeded(true))) => value = Some(new.clone()),
            (OpKind::Cas { expected, new }, Outcome::Unknown) if *expected == value => {
                value = Some(new.clone())
            }
            _ => {}
        }
    }
    value
}

impl fmt::Display for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "linearized {} operation(s), leaving value {:?}; {} could not be placed next \
             (pending: {:?})",
            self.longest_prefix.len(),
            self.value_after_prefix,
            self.stuck,
            self.pending.iter().map(|id| id.0).collect::<Vec<_>>()
        )?;
        for (id, op) in &self.context {
            let marker = if *id == self.stuck { "stuck " } else { "" };
            writeln!(f, "  {marker}{id}: {op}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        let verdict = if self.is_linearizable() {
            "linearizable"
        } else if self.has_violation() {
            "NOT linearizable"
        } else {
            "undecided (search timed out)"
        };
        writeln!(
            f,
            "{verdict}: {} operation(s) ({} ok, {} unknown, {} failed) on {} key(s), checked in {:?}",
            c.operations, c.ok, c.unknown, c.failed, c.keys, self.elapsed
        )?;
        for (key, witness) in self.violations() {
            write!(f, "key {key:?}: {witness}")?;
        }
        for key in self.undecided() {
            writeln!(f, "key {key:?}: search timed out")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
