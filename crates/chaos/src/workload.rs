//! Client workers: each talks to one member (reconnecting to another when it fails) and
//! performs random reads, writes and compare-and-swaps on a small key space, recording
//! every operation with its invocation and completion time.
//!
//! Failed writes and CASes are recorded as "unknown" (they may have taken effect); failed
//! reads are recorded as failed (a read that did not return constrains nothing).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use tokio::time::Instant;

use crate::rng::Rng;

/// What an operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    /// Linearizable read.
    Read,
    /// Unconditional put of a unique value.
    Write(String),
    /// Put `new` if the value is `expected` (None: absent).
    Cas {
        /// The value the CAS requires.
        expected: Option<String>,
        /// The value it puts.
        new: String,
    },
}

/// How it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpOutcome {
    /// A read's value.
    Read(Option<String>),
    /// A write acknowledged, with the revision it got.
    Written(i64),
    /// A CAS answered: whether it applied (and its revision when it did).
    Cas(bool, i64),
    /// Definitely did not happen (failed reads).
    Failed,
    /// May or may not have happened.
    Unknown,
}

/// One recorded operation; times are nanoseconds since the run's start.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Worker id.
    pub client: usize,
    /// Key.
    pub key: String,
    /// What.
    pub kind: OpKind,
    /// When it was sent.
    pub invoked: u64,
    /// When it returned.
    pub completed: u64,
    /// How it ended.
    pub outcome: OpOutcome,
}

/// The shared, append-only record of a run.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    ops: Arc<Mutex<Vec<Recorded>>>,
}

impl Recorder {
    /// An empty record whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            start: Instant::now(),
            ops: Arc::default(),
        }
    }

    /// Nanoseconds since the start.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The time of `instant` on this record's clock.
    pub fn at(&self, instant: Instant) -> u64 {
        u64::try_from(instant.saturating_duration_since(self.start).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Adds an operation.
    pub fn push(&self, op: Recorded) {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).push(op);
    }

    /// Everything recorded so far.
    pub fn snapshot(&self) -> Vec<Recorded> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// Per-request bound: a request that does not answer in time has an unknown outcome.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

async fn connect(endpoints: &[String], rng: &mut Rng) -> Option<Client> {
    let endpoint = &endpoints[rng.below(endpoints.len() as u64) as usize];
    conclave_testkit::client(endpoint).await.ok()
}

/// Runs one worker until `stop` is set.
pub async fn run_worker(
    id: usize,
    endpoints: Vec<String>,
    keys: usize,
    mut rng: Rng,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
) {
    let mut client: Option<Client> = None;
    let mut seq = 0u64;
    let mut last_seen: Vec<Option<String>> = vec![None; keys];
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = client.as_mut() else {
            client = connect(&endpoints, &mut rng).await;
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            continue;
        };
        let k = rng.below(keys as u64) as usize;
        let key = format!("chaos/{k}");
        seq += 1;
        let value = format!("c{id}-{seq}");
        let kind = match rng.below(10) {
            0..=4 => OpKind::Read,
            5..=7 => OpKind::Write(value),
            _ => OpKind::Cas {
                expected: last_seen[k].clone(),
                new: value,
            },
        };
        let invoked = recorder.now();
        let result = tokio::time::timeout(REQUEST_TIMEOUT, execute(c, &key, &kind)).await;
        let completed = recorder.now();
        let outcome = match result {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) | Err(_) => {
                // Try another member next time.
                client = None;
                if kind == OpKind::Read {
                    OpOutcome::Failed
                } else {
                    OpOutcome::Unknown
                }
            }
        };
        if let OpOutcome::Read(v) = &outcome {
            last_seen[k] = v.clone();
        }
        recorder.push(Recorded {
            client: id,
            key,
            kind,
            invoked,
            completed,
            outcome,
        });
    }
}

async fn execute(client: &mut Client, key: &str, kind: &OpKind) -> Result<OpOutcome, etcd_client::Error> {
    match kind {
        OpKind::Read => {
            let response = client.get(key, None).await?;
            let value = response
                .kvs()
                .first()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
            Ok(OpOutcome::Read(value))
        }
        OpKind::Write(value) => {
            let response = client.put(key, value.as_str(), None).await?;
            Ok(OpOutcome::Written(response.header().map_or(0, |h| h.revision())))
        }
        OpKind::Cas { expected, new } => {
            let compare = match expected {
                Some(v) => Compare::value(key, CompareOp::Equal, v.as_str()),
                None => Compare::create_revision(key, CompareOp::Equal, 0),
            };
            let txn = Txn::new()
                .when([compare])
                .and_then([TxnOp::put(key, new.as_str(), None)]);
            let response = client.txn(txn).await?;
            Ok(OpOutcome::Cas(
                response.succeeded(),
                response.header().map_or(0, |h| h.revision()),
            ))
        }
    }
}
