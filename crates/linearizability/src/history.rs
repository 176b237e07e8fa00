//! What clients record: operations on keys, with invocation and completion times and outcomes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Identifies the client (one sequential thread of requests) that issued an operation.
///
/// The checker does not require a client's operations to be sequential; the id is kept so a
/// witness can say who did what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {}", self.0)
    }
}

/// Identifies an operation within one [`History`]: its position in recording order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId(pub usize);

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What an operation asked for. Every operation concerns exactly one key, whose value is a
/// register holding `Option<String>` (`None`: the key is absent, its initial state).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Read the key's value. Answered by [`Response::Value`].
    Read,
    /// Set the key to `value`. Answered by [`Response::Done`].
    Write {
        /// The value written.
        value: String,
    },
    /// If the key's value equals `expected`, set it to `new`; otherwise change nothing.
    /// `expected: None` means "create if absent". Answered by [`Response::CasSucceeded`].
    Cas {
        /// The value the key must hold for the swap to happen.
        expected: Option<String>,
        /// The value set when the swap happens.
        new: String,
    },
    /// Remove the key (a no-op when absent). Answered by [`Response::Done`].
    Delete,
}

impl OpKind {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Write { .. } => "write",
            OpKind::Cas { .. } => "cas",
            OpKind::Delete => "delete",
        }
    }
}

/// What the service answered to a completed operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    /// The value a read observed (`None`: absent).
    Value(Option<String>),
    /// A write or delete was applied.
    Done,
    /// Whether a compare-and-swap found the expected value and swapped.
    CasSucceeded(bool),
}

impl Response {
    fn name(&self) -> &'static str {
        match self {
            Response::Value(_) => "value",
            Response::Done => "done",
            Response::CasSucceeded(_) => "cas_succeeded",
        }
    }
}

/// How an operation ended, from the client's point of view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The service answered; the operation took effect exactly once, atomically, at some
    /// instant between its invocation and completion.
    Ok(Response),
    /// No answer (timeout, lost connection, client gave up) or not yet completed: the operation
    /// may or may not have taken effect, at any instant after its invocation. An unknown read
    /// constrains nothing.
    Unknown,
    /// The service definitely did not perform the operation (a definite error). Ignored by the
    /// checker; counted in the report.
    Failed,
}

/// One operation as a client saw it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Operation {
    /// Who issued it.
    pub client: ClientId,
    /// The key it concerns.
    pub key: String,
    /// What it asked for.
    pub kind: OpKind,
    /// When the request was sent (any monotonic u64 clock shared by all clients).
    pub invoked: u64,
    /// When the response arrived; required for `Ok`, informational otherwise (an `Unknown`
    /// operation is treated as completing at +infinity whatever this says).
    pub completed: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
}

/// A recorded history: operations in recording order, each validated on entry.
///
/// Guarantees: every `Ok` operation has a completion time no earlier than its invocation and a
/// response of the shape its kind calls for. Deserialising re-validates, so a JSON dump that
/// loads is as trustworthy as the history it came from. Not synchronised: concurrent clients
/// share it behind a `Mutex` or record locally and [`History::extend`] afterwards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Operation>", into = "Vec<Operation>")]
pub struct History {
    operations: Vec<Operation>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a finished (or abandoned) operation and returns its id.
    ///
    /// Fails, recording nothing, when the operation is inconsistent (see [`Error`]).
    pub fn record(&mut self, op: Operation) -> Result<OpId, Error> {
        let id = OpId(self.operations.len());
        validate(id, &op)?;
        self.operations.push(op);
        Ok(id)
    }

    /// Records every operation in order; stops at the first inconsistent one, keeping those
    /// before it.
    pub fn extend(&mut self, ops: impl IntoIterator<Item = Operation>) -> Result<(), Error> {
        for op in ops {
            self.record(op)?;
        }
        Ok(())
    }

    /// Records that `client` sent a request at `at`; the operation counts as
    /// [`Outcome::Unknown`] until [`History::complete`] is called for the returned id.
    pub fn invoke(&mut self, client: ClientId, key: impl Into<String>, kind: OpKind, at: u64) -> OpId {
        let id = OpId(self.operations.len());
        self.operations.push(Operation {
            client,
            key: key.into(),
            kind,
            invoked: at,
            completed: None,
            outcome: Outcome::Unknown,
        });
        id
    }

    /// Records how an invoked operation ended, at time `at`. Completing with
    /// [`Outcome::Unknown`] just notes when the client gave up.
    ///
    /// Fails, changing nothing, for an id not returned by [`History::invoke`], a second
    /// completion, or an inconsistent outcome.
    pub fn complete(&mut self, id: OpId, at: u64, outcome: Outcome) -> Result<(), Error> {
        let op = self
            .operations
            .get(id.0)
            .ok_or(Error::NoSuchOperation { op: id })?;
        if op.completed.is_some() || op.outcome != Outcome::Unknown {
            return Err(Error::AlreadyCompleted { op: id });
        }
        let updated = Operation {
            completed: Some(at),
            outcome,
            ..op.clone()
        };
        validate(id, &updated)?;
        self.operations[id.0] = updated;
        Ok(())
    }

    /// All operations, indexed by [`OpId`].
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The operation with this id, if any.
    pub fn get(&self, id: OpId) -> Option<&Operation> {
        self.operations.get(id.0)
    }

    /// Number of recorded operations (of every outcome).
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}

impl TryFrom<Vec<Operation>> for History {
    type Error = Error;

    fn try_from(ops: Vec<Operation>) -> Result<Self, Error> {
        let mut history = History::new();
        history.extend(ops)?;
        Ok(history)
    }
}

impl From<History> for Vec<Operation> {
    fn from(history: History) -> Self {
        history.operations
    }
}

fn validate(id: OpId, op: &Operation) -> Result<(), Error> {
    if let Some(completed) = op.completed {
        if completed < op.invoked {
            return Err(Error::CompletedBeforeInvoked {
                op: id,
                invoked: op.invoked,
                completed,
            });
        }
    }
    let Outcome::Ok(response) = &op.outcome else {
        return Ok(());
    };
    if op.completed.is_none() {
        return Err(Error::MissingCompletionTime { op: id });
    }
    let fits = matches!(
        (&op.kind, response),
        (OpKind::Read, Response::Value(_))
            | (OpKind::Write { .. } | OpKind::Delete, Response::Done)
            | (OpKind::Cas { .. }, Response::CasSucceeded(_))
    );
    if fits {
        Ok(())
    } else {
        Err(Error::ResponseDoesNotMatchKind {
            op: id,
            kind: op.kind.name(),
            response: response.name(),
        })
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.client)?;
        match &self.kind {
            OpKind::Read => write!(f, "read {:?}", self.key)?,
            OpKind::Write { value } => write!(f, "write {:?} := {value:?}", self.key)?,
            OpKind::Cas { expected, new } => write!(f, "cas {:?} {expected:?} -> {new:?}", self.key)?,
            OpKind::Delete => write!(f, "delete {:?}", self.key)?,
        }
        match &self.outcome {
            Outcome::Ok(Response::Value(v)) => write!(f, " = {v:?}")?,
            Outcome::Ok(Response::Done) => write!(f, " ok")?,
            Outcome::Ok(Response::CasSucceeded(b)) => {
                write!(f, " = {}", if *b { "swapped" } else { "no match" })?
            }
            Outcome::Unknown => write!(f, " (unknown)")?,
            Outcome::Failed => write!(f, " (failed)")?,
        }
        match self.completed {
            Some(c) => write!(f, " [{}, {}]", self.invoked, c),
            None => write!(f, " [{}, ...]", self.invoked),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(key: &str, value: &str, invoked: u64, completed: u64) -> Operation {
        Operation {
            client: ClientId(1),
            key: key.into(),
            kind: OpKind::Write { value: value.into() },
            invoked,
            completed: Some(completed),
            outcome: Outcome::Ok(Response::Done),
        }
    }

    #[test]
    fn record_rejects_completion_before_invocation() {
        let mut h = History::new();
        let err = h.record(write("k", "v", 10, 5)).unwrap_err();
        assert!(matches!(err, Error::CompletedBeforeInvoked { .. }));
        assert!(h.is_empty());
    }

    #[test]
    fn record_rejects_response_of_the_wrong_shape() {
        let mut h = History::new();
        let mut op = write("k", "v", 1, 2);
        op.outcome = Outcome::Ok(Response::CasSucceeded(true));
        assert!(matches!(
            h.record(op).unwrap_err(),
            Error::ResponseDoesNotMatchKind { .. }
        ));
    }

    #[test]
    fn invoke_then_complete_records_the_outcome_once() {
        let mut h = History::new();
        let id = h.invoke(ClientId(3), "k", OpKind::Read, 5);
        assert_eq!(h.get(id).unwrap().outcome, Outcome::Unknown);
        h.complete(id, 9, Outcome::Ok(Response::Value(None))).unwrap();
        assert_eq!(h.get(id).unwrap().completed, Some(9));
        assert_eq!(
            h.complete(id, 10, Outcome::Failed),
            Err(Error::AlreadyCompleted { op: id })
        );
        assert_eq!(
            h.complete(OpId(7), 10, Outcome::Failed),
            Err(Error::NoSuchOperation { op: OpId(7) })
        );
    }

    #[test]
    fn json_round_trip_revalidates() {
        let mut h = History::new();
        h.record(write("k", "v", 1, 2)).unwrap();
        h.invoke(
            ClientId(2),
            "k",
            OpKind::Cas {
                expected: None,
                new: "w".into(),
            },
            3,
        );
        let json = serde_json::to_string(&h).unwrap();
        let back: History = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        let bad = json.replace("\"invoked\":1", "\"invoked\":100");
        assert!(serde_json::from_str::<History>(&bad).is_err());
    }
}
