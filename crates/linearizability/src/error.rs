//! The crate's one error type.

use crate::history::OpId;

/// Everything this crate can refuse, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An operation claims to have completed before it was invoked.
    #[error(
        "operation {op} completed at {completed} before it was invoked at {invoked}: \
         record both times from the same monotonic clock"
    )]
    CompletedBeforeInvoked {
        /// The offending operation.
        op: OpId,
        /// Its invocation time.
        invoked: u64,
        /// Its completion time.
        completed: u64,
    },
    /// An operation with an `Ok` outcome carries a response of the wrong shape.
    #[error(
        "operation {op} is a {kind} but its response is {response}: reads answer Value, \
         writes and deletes answer Done, compare-and-swaps answer CasSucceeded"
    )]
    ResponseDoesNotMatchKind {
        /// The offending operation.
        op: OpId,
        /// The operation's kind, by name.
        kind: &'static str,
        /// The response's shape, by name.
        response: &'static str,
    },
    /// An operation reported as completed (`Ok`) has no completion time.
    #[error("operation {op} has an Ok outcome but no completion time: pass the time its response arrived")]
    MissingCompletionTime {
        /// The offending operation.
        op: OpId,
    },
    /// `History::complete` was given an id that `History::invoke` never returned.
    #[error("operation {op} was never invoked in this history: complete only ids returned by invoke")]
    NoSuchOperation {
        /// The id given.
        op: OpId,
    },
    /// `History::complete` was called twice for one operation.
    #[error("operation {op} is already completed: complete each invoked operation exactly once")]
    AlreadyCompleted {
        /// The id given.
        op: OpId,
    },
    /// A watch stream delivered a revision lower than one it had already delivered.
    #[error(
        "watch event #{index} has revision {revision} after revision {previous}: \
         a watch must deliver revisions in increasing order"
    )]
    WatchOutOfOrder {
        /// Position of the offending event in the stream.
        index: usize,
        /// Revision of the event before it.
        previous: i64,
        /// Its revision.
        revision: i64,
    },
    /// A watch stream delivered the same (revision, key) event twice.
    #[error("watch event #{index} repeats revision {revision} for key {key:?}: each event must arrive exactly once")]
    WatchDuplicate {
        /// Position of the repeated event in the stream.
        index: usize,
        /// The repeated revision.
        revision: i64,
        /// The key of the repeated event.
        key: String,
    },
    /// Revisions that were committed never reached the watch.
    #[error("watch never delivered {count} expected revision(s), first ones: {first:?}")]
    WatchMissing {
        /// How many expected revisions are missing.
        count: usize,
        /// The lowest missing revisions (at most 10).
        first: Vec<i64>,
    },
    /// The watch delivered a revision nobody committed (or outside the expected range).
    #[error("watch event #{index} has revision {revision}, which no recorded write produced")]
    WatchUnexpected {
        /// Position of the offending event in the stream.
        index: usize,
        /// Its revision.
        revision: i64,
    },
}
