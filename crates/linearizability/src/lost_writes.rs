//! Acknowledged writes that a final read shows were lost.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::history::{History, OpId, OpKind, Operation, Outcome, Response};

/// A key whose final value no surviving write explains.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostWrite {
    /// The key.
    pub key: String,
    /// What the final read returned (`None`: absent).
    pub final_value: Option<String>,
    /// The acknowledged mutations (writes, deletes, successful compare-and-swaps) that no
    /// acknowledged mutation definitely followed: the final value had to be one of theirs (or
    /// of an unknown-outcome mutation's), and is not. At least one of them was lost.
    pub lost: Vec<OpId>,
    /// Every value the key could legitimately hold at the end.
    pub possible_values: Vec<Option<String>>,
}

/// Finds keys whose final read contradicts the acknowledged writes.
///
/// `final_reads` maps keys to the value read after every client stopped and the cluster healed
/// (keys not in it are not checked). A mutation M (write, delete, CAS that succeeded or whose
/// outcome is unknown) is *superseded* when an acknowledged mutation was invoked after M
/// completed (unknown outcomes never complete, so are never superseded). The final value must
/// be the value of some unsuperseded mutation, or absent if no mutation was acknowledged.
///
/// Sound: a key is reported only if no execution consistent with the recorded real-time order
/// could end with the final value read, so every report is a real lost (or invented) write. It
/// is not complete: a value that was overwritten and then resurrected is the linearizability
/// check's job ([`crate::check`] over a history ending with the final reads).
pub fn lost_writes(history: &History, final_reads: &BTreeMap<String, Option<String>>) -> Vec<LostWrite> {
    let mut by_key: BTreeMap<&str, Vec<(OpId, &Operation)>> = BTreeMap::new();
    for (i, op) in history.operations().iter().enumerate() {
        if final_reads.contains_key(&op.key) {
            by_key.entry(op.key.as_str()).or_default().push((OpId(i), op));
        }
    }
    let mut found = Vec::new();
    for (key, final_value) in final_reads {
        let ops = by_key.get(key.as_str()).map(Vec::as_slice).unwrap_or(&[]);
        // (id, value written, acknowledged, completion: None = +infinity)
        let mutations: Vec<(OpId, Option<&String>, bool, Option<u64>)> = ops
            .iter()
            .filter_map(|&(id, op)| {
                let written = match &op.kind {
                    OpKind::Read => return None,
                    OpKind::Write { value } => Some(value),
                    OpKind::Cas { new, .. } => Some(new),
                    OpKind::Delete => None,
                };
                match &op.outcome {
                    Outcome::Ok(Response::CasSucceeded(false)) | Outcome::Failed => None,
                    Outcome::Ok(_) => Some((id, written, true, op.completed)),
                    Outcome::Unknown => Some((id, written, false, None)),
                }
            })
            .collect();
        let acknowledged_invocations: Vec<u64> = mutations
            .iter()
            .filter(|m| m.2)
            .map(|m| history.operations()[m.0 .0].invoked)
            .collect();
        let surviving: Vec<_> = mutations
            .iter()
            .filter(|m| match m.3 {
                None => true,
                Some(completed) => !acknowledged_invocations.iter().any(|&inv| inv > completed),
            })
            .collect();
        let mut possible: Vec<Option<String>> = surviving.iter().map(|m| m.1.cloned()).collect();
        if acknowledged_invocations.is_empty() {
            possible.push(None);
        }
        possible.sort();
        possible.dedup();
        if !possible.contains(final_value) {
            found.push(LostWrite {
                key: key.clone(),
                final_value: final_value.clone(),
                lost: surviving.iter().filter(|m| m.2).map(|m| m.0).collect(),
                possible_values: possible,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::ClientId;

    fn op(kind: OpKind, invoked: u64, completed: u64, outcome: Outcome) -> Operation {
        Operation {
            client: ClientId(1),
            key: "k".into(),
            kind,
            invoked,
            completed: Some(completed),
            outcome,
        }
    }
    fn w(v: &str) -> OpKind {
        OpKind::Write { value: v.into() }
    }
    fn finals(v: Option<&str>) -> BTreeMap<String, Option<String>> {
        BTreeMap::from([("k".to_string(), v.map(String::from))])
    }
    fn done() -> Outcome {
        Outcome::Ok(Response::Done)
    }

    #[test]
    fn last_acknowledged_write_must_be_the_final_value() {
        let mut h = History::new();
        h.record(op(w("a"), 0, 1, done())).unwrap();
        let b = h.record(op(w("b"), 2, 3, done())).unwrap();
        assert!(lost_writes(&h, &finals(Some("b"))).is_empty());
        let lost = lost_writes(&h, &finals(Some("a")));
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].lost, vec![b]);
        assert_eq!(lost[0].possible_values, vec![Some("b".to_string())]);
        assert_eq!(lost_writes(&h, &finals(None)).len(), 1);
    }

    #[test]
    fn concurrent_writes_may_either_win() {
        let mut h = History::new();
        h.record(op(w("a"), 0, 10, done())).unwrap();
        h.record(op(w("b"), 5, 6, done())).unwrap();
        assert!(lost_writes(&h, &finals(Some("a"))).is_empty());
        assert!(lost_writes(&h, &finals(Some("b"))).is_empty());
    }

    #[test]
    fn unknown_writes_and_deletes_may_explain_the_final_value() {
        let mut h = History::new();
        h.record(op(w("a"), 0, 1, done())).unwrap();
        h.record(op(w("u"), 2, 3, Outcome::Unknown)).unwrap();
        h.record(op(OpKind::Delete, 4, 5, Outcome::Unknown)).unwrap();
        for v in [Some("a"), Some("u"), None] {
            assert!(lost_writes(&h, &finals(v)).is_empty(), "{v:?}");
        }
        assert_eq!(lost_writes(&h, &finals(Some("x"))).len(), 1);
    }

    #[test]
    fn failed_cas_and_failed_writes_never_explain_the_final_value() {
        let mut h = History::new();
        h.record(op(w("a"), 0, 1, done())).unwrap();
        let cas = OpKind::Cas {
            expected: None,
            new: "c".into(),
        };
        h.record(op(cas, 2, 3, Outcome::Ok(Response::CasSucceeded(false))))
            .unwrap();
        h.record(op(w("f"), 2, 3, Outcome::Failed)).unwrap();
        assert_eq!(lost_writes(&h, &finals(Some("c"))).len(), 1);
        assert_eq!(lost_writes(&h, &finals(Some("f"))).len(), 1);
    }

    #[test]
    fn untouched_keys_must_stay_absent() {
        let h = History::new();
        assert!(lost_writes(&h, &finals(None)).is_empty());
        assert_eq!(
            lost_writes(&h, &finals(Some("ghost")))[0].possible_values,
            vec![None]
        );
    }
}
