//! FROZEN: layout version 1 of the Raft RPCs between members (`conclave.raft.RaftService`
//! payloads): openraft's requests, responses and their `Result`s as its serde derives
//! wrote them under openraft 0.10.0-alpha.37. Do not add, remove or reorder fields or
//! variants here (postcard encodes their order); a new layout is a `v2` module with an
//! upgrade from these types. Only the conversions at the bottom follow the in-memory
//! types.
//!
//! Errors: openraft answers an RPC with `Err` only when its core has stopped. Such an
//! error is written as `Fatal::Panicked` or `Fatal::Stopped` (unit variants every build
//! reads) and any `Err` is read as an opaque [`RemoteFatal`]; a storage error's details
//! (openraft's `StorageError`, whose layout is not ours to freeze) are never written.

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::raft::{entries_from, entries_into, Entry, LogId, Vote};
use super::Invalid;
use crate::format::RemoteFatal;
use crate::types::TypeConfig;

type C = TypeConfig;

/// openraft's `VoteRequest` (also the pre-vote request).
#[derive(Debug, Serialize, Deserialize)]
pub struct VoteRequest {
    /// The candidate's vote.
    pub vote: Vote,
    /// The candidate's last log id.
    pub last_log_id: Option<LogId>,
    /// Sent on behalf of a leadership transfer.
    pub leadership_transfer: bool,
}

/// openraft's `VoteResponse`.
#[derive(Debug, Serialize, Deserialize)]
pub struct VoteResponse {
    /// The responder's vote.
    pub vote: Vote,
    /// Whether the vote was granted.
    pub vote_granted: bool,
    /// The responder's last log id.
    pub last_log_id: Option<LogId>,
}

/// openraft's `AppendEntriesRequest`.
#[derive(Debug, Serialize, Deserialize)]
pub struct AppendEntriesRequest<'a> {
    /// The leader's vote.
    pub vote: Vote,
    /// The log id just before `entries`.
    pub prev_log_id: Option<LogId>,
    /// Entries to append.
    pub entries: Vec<Entry<'a>>,
    /// The leader's committed log id.
    pub leader_commit: Option<LogId>,
}

/// openraft's `AppendEntriesResponse`.
#[derive(Debug, Serialize, Deserialize)]
pub enum AppendEntriesResponse {
    /// 0
    Success,
    /// 1
    PartialSuccess(Option<LogId>),
    /// 2
    Conflict,
    /// 3
    HigherVote(Vote),
}

/// openraft's `TransferLeaderRequest`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TransferLeaderRequest {
    /// The leader handing over.
    pub from_leader: Vote,
    /// The member taking over.
    pub to_node_id: u64,
    /// The leader's last log id.
    pub last_log_id: Option<LogId>,
}

/// openraft's `TransferLeaderError`.
#[derive(Debug, Serialize, Deserialize)]
pub enum TransferLeaderError {
    /// 0
    VoteChanged {
        /// The vote the request named.
        expected: Vote,
        /// The receiver's vote.
        actual: Vote,
    },
    /// 1
    LogNotFlushed {
        /// The log id the request named.
        expected: Option<LogId>,
        /// The receiver's flushed log id.
        actual: Option<LogId>,
    },
}

/// openraft's `SnapshotResponse`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotResponse {
    /// The receiver's vote.
    pub vote: Vote,
}

/// openraft's `Fatal`.
#[derive(Debug, Serialize, Deserialize)]
pub enum Fatal {
    /// 0: read as opaque, never written (see the module docs).
    StorageError(OpaqueStorageError),
    /// 1
    Panicked,
    /// 2
    Stopped,
}

/// openraft's `RaftError<_, Infallible>`: only `Fatal` is ever sent.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftError {
    /// 0: uninhabited.
    ApiError(Never),
    /// 1
    Fatal(Fatal),
}

/// A variant that cannot be sent (openraft's `Infallible`).
#[derive(Debug, Serialize, Deserialize)]
pub enum Never {}

/// The details of a remote storage error: skipped when read. Valid only because an error
/// is the last thing in its message (postcard ignores trailing bytes); refused when
/// written.
#[derive(Debug)]
pub struct OpaqueStorageError;

impl Serialize for OpaqueStorageError {
    fn serialize<S: Serializer>(&self, _serializer: S) -> Result<S::Ok, S::Error> {
        Err(S::Error::custom(
            "a remote storage error is sent as Fatal::Stopped, never in full",
        ))
    }
}

impl<'de> Deserialize<'de> for OpaqueStorageError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Reads nothing: the rest of the message is openraft's StorageError.
        <()>::deserialize(deserializer)
            .map(|()| OpaqueStorageError)
            .map_err(|e| D::Error::custom(format!("storage error: {e}")))
    }
}

/// The answer to a vote or pre-vote.
#[derive(Debug, Serialize, Deserialize)]
pub struct VoteResult(pub Result<VoteResponse, RaftError>);

/// The answer to an append-entries.
#[derive(Debug, Serialize, Deserialize)]
pub struct AppendEntriesResult(pub Result<AppendEntriesResponse, RaftError>);

/// The answer to a transfer-leader.
#[derive(Debug, Serialize, Deserialize)]
pub struct TransferLeaderResult(pub Result<Result<(), TransferLeaderError>, Fatal>);

/// The answer to a snapshot installation.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotResult(pub Result<SnapshotResponse, Fatal>);

// ---- conversions: these follow the in-memory types -------------------------------------

impl From<&openraft::raft::VoteRequest<C>> for VoteRequest {
    fn from(request: &openraft::raft::VoteRequest<C>) -> Self {
        VoteRequest {
            vote: (&request.vote).into(),
            last_log_id: request.last_log_id.as_ref().map(Into::into),
            leadership_transfer: request.leadership_transfer,
        }
    }
}

impl From<VoteRequest> for openraft::raft::VoteRequest<C> {
    fn from(request: VoteRequest) -> Self {
        openraft::raft::VoteRequest {
            vote: request.vote.into(),
            last_log_id: request.last_log_id.map(Into::into),
            leadership_transfer: request.leadership_transfer,
        }
    }
}

impl From<&openraft::raft::VoteResponse<C>> for VoteResponse {
    fn from(response: &openraft::raft::VoteResponse<C>) -> Self {
        VoteResponse {
            vote: (&response.vote).into(),
            vote_granted: response.vote_granted,
            last_log_id: response.last_log_id.as_ref().map(Into::into),
        }
    }
}

impl From<VoteResponse> for openraft::raft::VoteResponse<C> {
    fn from(response: VoteResponse) -> Self {
        openraft::raft::VoteResponse {
            vote: response.vote.into(),
            vote_granted: response.vote_granted,
            last_log_id: response.last_log_id.map(Into::into),
        }
    }
}

impl<'a> From<&'a openraft::raft::AppendEntriesRequest<C>> for AppendEntriesRequest<'a> {
    fn from(request: &'a openraft::raft::AppendEntriesRequest<C>) -> Self {
        AppendEntriesRequest {
            vote: (&request.vote).into(),
            prev_log_id: request.prev_log_id.as_ref().map(Into::into),
            entries: entries_from(&request.entries),
            leader_commit: request.leader_commit.as_ref().map(Into::into),
        }
    }
}

impl TryFrom<AppendEntriesRequest<'_>> for openraft::raft::AppendEntriesRequest<C> {
    type Error = Invalid;

    fn try_from(request: AppendEntriesRequest<'_>) -> Result<Self, Invalid> {
        Ok(openraft::raft::AppendEntriesRequest {
            vote: request.vote.into(),
            prev_log_id: request.prev_log_id.map(Into::into),
            entries: entries_into(request.entries)?,
            leader_commit: request.leader_commit.map(Into::into),
        })
    }
}

impl From<&openraft::raft::AppendEntriesResponse<C>> for AppendEntriesResponse {
    fn from(response: &openraft::raft::AppendEntriesResponse<C>) -> Self {
        use openraft::raft::AppendEntriesResponse as R;
        match response {
            R::Success => AppendEntriesResponse::Success,
            R::PartialSuccess(matched) => {
                AppendEntriesResponse::PartialSuccess(matched.as_ref().map(Into::into))
            }
            R::Conflict => AppendEntriesResponse::Conflict,
            R::HigherVote(vote) => AppendEntriesResponse::HigherVote(vote.into()),
        }
    }
}

impl From<AppendEntriesResponse> for openraft::raft::AppendEntriesResponse<C> {
    fn from(response: AppendEntriesResponse) -> Self {
        use openraft::raft::AppendEntriesResponse as R;
        match response {
            AppendEntriesResponse::Success => R::Success,
            AppendEntriesResponse::PartialSuccess(matched) => R::PartialSuccess(matched.map(Into::into)),
            AppendEntriesResponse::Conflict => R::Conflict,
            AppendEntriesResponse::HigherVote(vote) => R::HigherVote(vote.into()),
        }
    }
}

impl From<&openraft::raft::TransferLeaderRequest<C>> for TransferLeaderRequest {
    fn from(request: &openraft::raft::TransferLeaderRequest<C>) -> Self {
        TransferLeaderRequest {
            from_leader: request.from_leader().into(),
            to_node_id: *request.to_node_id(),
            last_log_id: request.last_log_id().map(Into::into),
        }
    }
}

impl From<TransferLeaderRequest> for openraft::raft::TransferLeaderRequest<C> {
    fn from(request: TransferLeaderRequest) -> Self {
        openraft::raft::TransferLeaderRequest::new(
            request.from_leader.into(),
            request.to_node_id,
            request.last_log_id.map(Into::into),
        )
    }
}

impl From<&openraft::raft::TransferLeaderError<C>> for TransferLeaderError {
    fn from(error: &openraft::raft::TransferLeaderError<C>) -> Self {
        use openraft::raft::TransferLeaderError as E;
        match error {
            E::VoteChanged { expected, actual } => TransferLeaderError::VoteChanged {
                expected: expected.into(),
                actual: actual.into(),
            },
            E::LogNotFlushed { expected, actual } => TransferLeaderError::LogNotFlushed {
                expected: expected.as_ref().map(Into::into),
                actual: actual.as_ref().map(Into::into),
            },
        }
    }
}

impl From<TransferLeaderError> for openraft::raft::TransferLeaderError<C> {
    fn from(error: TransferLeaderError) -> Self {
        use openraft::raft::TransferLeaderError as E;
        match error {
            TransferLeaderError::VoteChanged { expected, actual } => E::VoteChanged {
                expected: expected.into(),
                actual: actual.into(),
            },
            TransferLeaderError::LogNotFlushed { expected, actual } => E::LogNotFlushed {
                expected: expected.map(Into::into),
                actual: actual.map(Into::into),
            },
        }
    }
}

impl From<&RemoteFatal> for Fatal {
    fn from(fatal: &RemoteFatal) -> Self {
        match fatal {
            RemoteFatal::Panicked => Fatal::Panicked,
            // The previous build reads StorageError in full; our layout of it is not
            // frozen, so it is sent as the plain "stopped" it amounts to for a peer.
            RemoteFatal::Stopped | RemoteFatal::StorageError => Fatal::Stopped,
        }
    }
}

impl From<Fatal> for RemoteFatal {
    fn from(fatal: Fatal) -> Self {
        match fatal {
            Fatal::StorageError(_) => RemoteFatal::StorageError,
            Fatal::Panicked => RemoteFatal::Panicked,
            Fatal::Stopped => RemoteFatal::Stopped,
        }
    }
}

impl From<RaftError> for RemoteFatal {
    fn from(error: RaftError) -> Self {
        match error {
            RaftError::ApiError(never) => match never {},
            RaftError::Fatal(fatal) => fatal.into(),
        }
    }
}

/// A result as sent by a member whose errors are [`RemoteFatal`].
fn raft_result<'a, T, W>(
    result: &'a Result<T, RemoteFatal>,
    wire: impl FnOnce(&'a T) -> W,
) -> Result<W, RaftError> {
    match result {
        Ok(value) => Ok(wire(value)),
        Err(fatal) => Err(RaftError::Fatal(fatal.into())),
    }
}

impl From<&Result<openraft::raft::VoteResponse<C>, RemoteFatal>> for VoteResult {
    fn from(result: &Result<openraft::raft::VoteResponse<C>, RemoteFatal>) -> Self {
        VoteResult(raft_result(result, VoteResponse::from))
    }
}

impl From<VoteResult> for Result<openraft::raft::VoteResponse<C>, RemoteFatal> {
    fn from(result: VoteResult) -> Self {
        result.0.map(Into::into).map_err(Into::into)
    }
}

impl From<&Result<openraft::raft::AppendEntriesResponse<C>, RemoteFatal>> for AppendEntriesResult {
    fn from(result: &Result<openraft::raft::AppendEntriesResponse<C>, RemoteFatal>) -> Self {
        AppendEntriesResult(raft_result(result, AppendEntriesResponse::from))
    }
}

impl From<AppendEntriesResult> for Result<openraft::raft::AppendEntriesResponse<C>, RemoteFatal> {
    fn from(result: AppendEntriesResult) -> Self {
        result.0.map(Into::into).map_err(Into::into)
    }
}

impl From<&Result<openraft::raft::TransferLeaderResponse<C>, RemoteFatal>> for TransferLeaderResult {
    fn from(result: &Result<openraft::raft::TransferLeaderResponse<C>, RemoteFatal>) -> Self {
        TransferLeaderResult(match result {
            Ok(Ok(())) => Ok(Ok(())),
            Ok(Err(refused)) => Ok(Err(refused.into())),
            Err(fatal) => Err(fatal.into()),
        })
    }
}

impl From<TransferLeaderResult> for Result<openraft::raft::TransferLeaderResponse<C>, RemoteFatal> {
    fn from(result: TransferLeaderResult) -> Self {
        match result.0 {
            Ok(answer) => Ok(answer.map_err(Into::into)),
            Err(fatal) => Err(fatal.into()),
        }
    }
}

impl From<&Result<openraft::raft::SnapshotResponse<C>, RemoteFatal>> for SnapshotResult {
    fn from(result: &Result<openraft::raft::SnapshotResponse<C>, RemoteFatal>) -> Self {
        SnapshotResult(match result {
            Ok(response) => Ok(SnapshotResponse {
                vote: (&response.vote).into(),
            }),
            Err(fatal) => Err(fatal.into()),
        })
    }
}

impl From<SnapshotResult> for Result<openraft::raft::SnapshotResponse<C>, RemoteFatal> {
    fn from(result: SnapshotResult) -> Self {
        match result.0 {
            Ok(response) => Ok(openraft::raft::SnapshotResponse::new(response.vote.into())),
            Err(fatal) => Err(fatal.into()),
        }
    }
}
