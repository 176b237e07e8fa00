//! The Wing-Gong/Lowe search (as in Porcupine) for one key's register history, with a memo
//! of visited configurations (linearized-ops bitset, state, unknown writes used).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use crate::history::Operation;
use crate::reduce::{prepare, Entry, State, Step, ABSENT, OTHER};

/// The search's verdict on one key, in terms of indices into the slice it was given.
#[derive(Debug)]
pub(crate) enum KeyOutcome {
    Linearizable,
    NotLinearizable(Failure),
    TimedOut { explored: u64 },
}

/// Where the search got furthest before it had to give up.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The longest sequence of operations that could be linearized, in order.
    pub prefix: Vec<usize>,
    /// The operation whose completion arrived before it could be placed after `prefix`.
    pub stuck: usize,
    /// The operations that were pending (invoked, not yet placed) at that point; none of them
    /// could be placed next.
    pub pending: Vec<usize>,
}

const NIL: usize = usize::MAX;

#[derive(Debug, Clone)]
struct Node {
    /// Index into the search's entries.
    op: usize,
    time: u64,
    /// For a call node: index of its return node; `NIL` for return nodes.
    ret: usize,
    prev: usize,
    next: usize,
}

/// A step of the current partial linearization.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// The call node placed.
    call: usize,
    /// The state before it.
    state: State,
    /// The pool write placed right before it, if any.
    pool_slot: Option<usize>,
}

/// A small fast hasher for the memo (the keys are our own bitsets, not attacker-chosen).
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }
    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
}

/// Visited configurations, each the linearized-ops bitset followed by one word holding the
/// state and the number of pool writes used. Only configurations from which the search failed
/// are ever revisited, so a hit means "dead end".
type Memo = HashSet<Vec<u64>, BuildHasherDefault<FxHasher>>;

/// Checks one key's operations (all for the same key). `Failed` operations and unknown reads
/// are ignored; unknown mutations may take effect at any instant after their invocation, or
/// never. See [`crate::reduce`] for the exact reductions applied first.
pub(crate) fn check_key(ops: &[&Operation], timeout: Duration) -> KeyOutcome {
    let deadline = Instant::now() + timeout;
    let problem = prepare(ops);
    let mut explored = 0;
    let first = search(&problem.entries, &problem.pool, deadline, &mut explored);
    match first {
        KeyOutcome::NotLinearizable(_) if problem.has_failed_cas && !problem.optional.is_empty() => {
            let all: Vec<Entry> = problem.entries.iter().chain(&problem.optional).cloned().collect();
            search(&all, &problem.pool, deadline, &mut explored)
        }
        other => other,
    }
}

/// The WGL search proper over `steps` plus the interchangeable unknown writes in `pool`,
/// giving up at `deadline`.
fn search(steps: &[Entry], pool: &[(u64, usize)], deadline: Instant, explored: &mut u64) -> KeyOutcome {
    let known_total = steps.iter().filter(|s| s.known).count();
    if known_total == 0 {
        return KeyOutcome::Linearizable;
    }

    // Events sorted by time; at equal times calls come first, so operations that touch at an
    // instant count as concurrent (the permissive, sound choice).
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(steps.len() * 2);
    for (s, step) in steps.iter().enumerate() {
        events.push((step.invoked, false, s));
        events.push((step.completed, true, s));
    }
    events.sort_unstable_by_key(|&(time, is_return, s)| (time, is_return, s));
    let head = events.len();
    let mut nodes: Vec<Node> = Vec::with_capacity(events.len() + 1);
    let mut return_node = vec![NIL; steps.len()];
    for (n, &(time, is_return, s)) in events.iter().enumerate() {
        if is_return {
            return_node[s] = n;
        }
        nodes.push(Node {
            op: s,
            time,
            ret: NIL,
            prev: if n == 0 { head } else { n - 1 },
            next: n + 1,
        });
    }
    if let Some(last) = nodes.last_mut() {
        last.next = NIL;
    }
    nodes.push(Node {
        op: NIL,
        time: 0,
        ret: NIL,
        prev: NIL,
        next: 0,
    });
    for (n, &(_, is_return, s)) in events.iter().enumerate() {
        if !is_return {
            nodes[n].ret = return_node[s];
        }
    }

    let words = steps.len().div_ceil(64);
    // The bitset plus the configuration word, laid out as a memo key.
    let mut linearized = vec![0u64; words + 1];
    let mut memo = Memo::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut state = ABSENT;
    let mut pool_used = 0usize;
    let mut known_done = 0usize;
    let mut best: Option<Failure> = None;
    let mut best_len = 0usize;
    let mut entry = nodes[head].next;

    loop {
        if known_done == known_total {
            return KeyOutcome::Linearizable;
        }
        *explored += 1;
        if explored.is_multiple_of(1024) && Instant::now() > deadline {
            return KeyOutcome::TimedOut { explored: *explored };
        }
        let node = match nodes.get(entry) {
            Some(node) if entry != head => node.clone(),
            // Unreachable while known operations remain (every call is followed by its
            // return); treat it as a dead end rather than trusting that.
            _ => Node {
                op: NIL,
                time: 0,
                ret: NIL,
                prev: NIL,
                next: NIL,
            },
        };
        if node.ret != NIL {
            let s = node.op;
            let placed = match (steps[s].step.apply(state), steps[s].step) {
                (Some(next), _) => Some((next, None)),
                // A failed CAS expecting the current value fits after an unknown write of an
                // unmentioned value, if one was invoked before every pending completion.
                (None, Step::CasFailed { .. })
                    if pool
                        .get(pool_used)
                        .is_some_and(|&(invoked, _)| invoked <= first_return_time(&nodes, entry)) =>
                {
                    Some((OTHER, Some(pool_used)))
                }
                (None, _) => None,
            };
            if let Some((next_state, pool_slot)) = placed {
                let used = pool_used + usize::from(pool_slot.is_some());
                linearized[s / 64] |= 1 << (s % 64);
                linearized[words] = u64::from(next_state) | (used as u64) << 32;
                if !memo.contains(linearized.as_slice()) {
                    memo.insert(linearized.clone());
                    stack.push(Frame {
                        call: entry,
                        state,
                        pool_slot,
                    });
                    state = next_state;
                    pool_used = used;
                    if steps[s].known {
                        known_done += 1;
                    }
                    lift(&mut nodes, entry, node.ret);
                    entry = nodes[head].next;
                    continue;
                }
                linearized[s / 64] &= !(1 << (s % 64));
            }
            entry = node.next;
            continue;
        }
        // A return node (or the end): its operation should have been placed by now.
        if node.op != NIL && (best.is_none() || stack.len() > best_len) {
            best_len = stack.len();
            let mut prefix = Vec::with_capacity(stack.len());
            for frame in &stack {
                if let Some(&(_, pool_op)) = frame.pool_slot.and_then(|slot| pool.get(slot)) {
                    prefix.push(pool_op);
                }
                prefix.push(steps[nodes[frame.call].op].op);
            }
            best = Some(Failure {
                prefix,
                stuck: steps[node.op].op,
                pending: pending_before(&nodes, head, entry)
                    .into_iter()
                    .map(|s| steps[s].op)
                    .collect(),
            });
        }
        // Backtrack. A read or failed CAS never changes the state, and it was enabled when
        // taken, so any linearization of the remaining operations could be rearranged to take
        // it right there (everything that must precede it is already placed). So if the
        // search failed after it, every alternative at its level fails too: keep
        // backtracking past it. (Unknown CASes do not qualify: elsewhere they might swap.)
        loop {
            let Some(frame) = stack.pop() else {
                return KeyOutcome::NotLinearizable(best.unwrap_or_else(|| Failure {
                    prefix: Vec::new(),
                    stuck: steps.first().map_or(0, |s| s.op),
                    pending: Vec::new(),
                }));
            };
            let s = nodes[frame.call].op;
            let forced =
                frame.pool_slot.is_none() && matches!(steps[s].step, Step::Read(_) | Step::CasFailed { .. });
            state = frame.state;
            if frame.pool_slot.is_some() {
                pool_used -= 1;
            }
            linearized[s / 64] &= !(1 << (s % 64));
            if steps[s].known {
                known_done -= 1;
            }
            unlift(&mut nodes, frame.call);
            entry = nodes[frame.call].next;
            if !forced {
                break;
            }
        }
    }
}

/// The time of the first return node at or after `from` (every remaining operation invoked
/// after it must be placed after that operation).
fn first_return_time(nodes: &[Node], from: usize) -> u64 {
    let mut n = from;
    while let Some(node) = nodes.get(n) {
        if node.ret == NIL {
            return node.time;
        }
        n = node.next;
    }
    u64::MAX
}

/// Unlinks a call node and its return node from the list (dancing links: both keep their own
/// `prev`/`next`, so [`unlift`] can restore them in reverse order).
fn lift(nodes: &mut [Node], call: usize, ret: usize) {
    for n in [call, ret] {
        let (prev, next) = (nodes[n].prev, nodes[n].next);
        nodes[prev].next = next;
        if next != NIL {
            nodes[next].prev = prev;
        }
    }
}

fn unlift(nodes: &mut [Node], call: usize) {
    let ret = nodes[call].ret;
    for n in [ret, call] {
        let (prev, next) = (nodes[n].prev, nodes[n].next);
        nodes[prev].next = n;
        if next != NIL {
            nodes[next].prev = n;
        }
    }
}

/// The operations whose calls precede node `until` in the list.
fn pending_before(nodes: &[Node], head: usize, until: usize) -> Vec<usize> {
    let mut pending = Vec::new();
    let mut n = nodes[head].next;
    while n != NIL && n != until {
        if nodes[n].ret != NIL {
            pending.push(nodes[n].op);
        }
        n = nodes[n].next;
    }
    pending
}
