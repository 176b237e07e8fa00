//! The encoded kinds: one marker type per kind of value stored or sent, with the layout
//! version it writes, the versions it reads and how each is decoded. Encode and decode
//! with [`crate::format::encode`]`::<Kind>` and [`crate::format::decode`]`::<Kind>`.
//!
//! | kind | value | where |
//! | --- | --- | --- |
//! | `wal_record` | [`WalRecord`] | a record of a WAL segment (`log_store`) |
//! | `last_applied` | [`LastApplied`] | state-machine meta `raft.last_applied` |
//! | `stored_membership` | [`StoredMembership`] | state-machine meta `raft.membership` |
//! | `alarms` | [`Alarms`] | state-machine meta `alarms` |
//! | `snapshot_meta` | [`SnapshotMeta`] | first frame of a snapshot file |
//! | `snapshot_records` | [`SnapshotRecords`] | the other frames of a snapshot file |
//! | `snapshot_offer` | [`SnapshotOffer`] | first chunk of `RaftService.InstallSnapshot` |
//! | `snapshot_result` | [`SnapshotResult`] | its reply |
//! | `vote_request` | [`VoteRequest`] | `RaftService.Vote` / `PreVote` |
//! | `vote_result` | [`VoteResult`] | their reply |
//! | `append_entries_request` | [`AppendEntriesRequest`] | `RaftService.AppendEntries` |
//! | `append_entries_result` | [`AppendEntriesResult`] | its reply |
//! | `transfer_leader_request` | [`TransferLeaderRequest`] | `RaftService.TransferLeader` |
//! | `transfer_leader_result` | [`TransferLeaderResult`] | its reply |
//! | `peer_request` | [`PeerRequest`] | `RaftService.Forward` |
//! | `peer_reply` | [`PeerReply`] | its reply |
//!
//! Every kind writes layout 1 today and reads layout 1 (see the policy in
//! [`crate::format`]); `member.json` is JSON, in [`crate::format::identity`].

use openraft::errors::{Fatal, RaftError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::v1;
use super::FormatError;
use crate::types::{self, TypeConfig};

type C = TypeConfig;

/// One kind of encoded value.
pub trait Kind {
    /// The in-memory value this kind encodes.
    type Value;
    /// The kind's name, in errors and as its golden-file directory.
    const NAME: &'static str;
    /// The layout version this build writes.
    const VERSION: u8;
    /// Every layout version this build reads.
    const READS: &'static [u8];
    /// Appends the payload of `value` in layout [`Kind::VERSION`] to `out`.
    fn write(value: &Self::Value, out: Vec<u8>) -> Result<Vec<u8>, FormatError>;
    /// Decodes a payload of layout `version` (any of [`Kind::READS`]).
    fn read(version: u8, payload: &[u8]) -> Result<Self::Value, FormatError>;
}

/// A member's Raft core has stopped: what a peer learns from an RPC answered with an error
/// (openraft answers with `Err` only then). Opaque by design: the details stay in the
/// stopped member's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RemoteFatal {
    /// The core panicked.
    #[error("raft panicked")]
    Panicked,
    /// The core was shut down.
    #[error("raft stopped")]
    Stopped,
    /// The core stopped on a storage error (sent as [`RemoteFatal::Stopped`]).
    #[error("raft stopped on a storage error")]
    StorageError,
}

impl From<Fatal<C>> for RemoteFatal {
    fn from(fatal: Fatal<C>) -> Self {
        match fatal {
            Fatal::StorageError(_) => RemoteFatal::StorageError,
            Fatal::Panicked => RemoteFatal::Panicked,
            Fatal::Stopped => RemoteFatal::Stopped,
        }
    }
}

impl From<RaftError<C>> for RemoteFatal {
    fn from(error: RaftError<C>) -> Self {
        match error {
            RaftError::APIError(never) => match never {},
            RaftError::Fatal(fatal) => fatal.into(),
        }
    }
}

fn put<K: Kind, W: Serialize>(wire: &W, out: Vec<u8>) -> Result<Vec<u8>, FormatError> {
    postcard::to_extend(wire, out).map_err(|source| FormatError::Payload {
        kind: K::NAME,
        source,
    })
}

fn take<K: Kind, W: DeserializeOwned>(payload: &[u8]) -> Result<W, FormatError> {
    postcard::from_bytes(payload).map_err(|source| FormatError::Payload {
        kind: K::NAME,
        source,
    })
}

fn invalid<K: Kind>(e: v1::Invalid) -> FormatError {
    FormatError::Invalid {
        kind: K::NAME,
        why: e.0,
    }
}

fn unknown<K: Kind>(version: u8) -> FormatError {
    FormatError::UnknownVersion {
        kind: K::NAME,
        version,
        reads: K::READS,
    }
}

/// Declares a kind whose layout 1 is the wire type `$wire`: written from `&Value` with
/// `From`, read back with `TryFrom` (or `From`).
macro_rules! kinds {
    ($(
        $(#[$doc:meta])*
        $vis:vis $name:ident = $kind:literal: $value:ty, v1 $wire:ty;
    )+) => {$(
        $(#[$doc])*
        #[derive(Debug)]
        $vis enum $name {}

        impl Kind for $name {
            type Value = $value;
            const NAME: &'static str = $kind;
            const VERSION: u8 = 1;
            const READS: &'static [u8] = &[1];

            fn write(value: &$value, out: Vec<u8>) -> Result<Vec<u8>, FormatError> {
                put::<Self, _>(&<$wire>::from(value), out)
            }

            fn read(version: u8, payload: &[u8]) -> Result<$value, FormatError> {
                match version {
                    1 => <$value>::try_from(take::<Self, $wire>(payload)?)
                        .map_err(|e| invalid::<Self>(e.into())),
                    _ => Err(unknown::<Self>(version)),
                }
            }
        }
    )+};
}

impl From<std::convert::Infallible> for v1::Invalid {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

kinds! {
    /// A record of a WAL segment.
    pub(crate) WalRecord = "wal_record": crate::log_store::WalRecord, v1 v1::raft::WalRecord<'_>;
    /// The last applied log id (state-machine meta `raft.last_applied`).
    pub LastApplied = "last_applied": types::LogId, v1 v1::raft::LogId;
    /// The applied membership (state-machine meta `raft.membership`).
    pub StoredMembership = "stored_membership": types::StoredMembership, v1 v1::raft::StoredMembership;
    /// The replicated alarm list (state-machine meta `alarms`).
    pub Alarms = "alarms": Vec<types::Alarm>, v1 v1::command::AlarmList;
    /// The meta frame at the start of a snapshot file.
    pub SnapshotMeta = "snapshot_meta": types::SnapshotMeta, v1 v1::snapshot::SnapshotMeta;
    /// A frame of raw state-machine records in a snapshot file.
    pub SnapshotRecords = "snapshot_records": Vec<(Vec<u8>, Vec<u8>)>, v1 v1::snapshot::RecordBatch<'_>;
    /// The vote and meta announced by the first chunk of a streamed snapshot.
    pub SnapshotOffer = "snapshot_offer": (types::Vote, types::SnapshotMeta), v1 v1::snapshot::SnapshotOffer;
    /// The answer to a streamed snapshot.
    pub SnapshotResult = "snapshot_result":
        Result<openraft::raft::SnapshotResponse<C>, RemoteFatal>, v1 v1::rpc::SnapshotResult;
    /// A vote or pre-vote request.
    pub VoteRequest = "vote_request": openraft::raft::VoteRequest<C>, v1 v1::rpc::VoteRequest;
    /// The answer to a vote or pre-vote.
    pub VoteResult = "vote_result": Result<openraft::raft::VoteResponse<C>, RemoteFatal>, v1 v1::rpc::VoteResult;
    /// An append-entries request (entries or a heartbeat).
    pub AppendEntriesRequest = "append_entries_request":
        openraft::raft::AppendEntriesRequest<C>, v1 v1::rpc::AppendEntriesRequest<'_>;
    /// The answer to an append-entries.
    pub AppendEntriesResult = "append_entries_result":
        Result<openraft::raft::AppendEntriesResponse<C>, RemoteFatal>, v1 v1::rpc::AppendEntriesResult;
    /// A transfer-leader request.
    pub TransferLeaderRequest = "transfer_leader_request":
        openraft::raft::TransferLeaderRequest<C>, v1 v1::rpc::TransferLeaderRequest;
    /// The answer to a transfer-leader.
    pub TransferLeaderResult = "transfer_leader_result":
        Result<openraft::raft::TransferLeaderResponse<C>, RemoteFatal>, v1 v1::rpc::TransferLeaderResult;
    /// A cluster-internal request (`RaftService.Forward`).
    pub PeerRequest = "peer_request": crate::peer::PeerRequest, v1 v1::peer::PeerRequest<'_>;
    /// The answer to a cluster-internal request.
    pub PeerReply = "peer_reply": crate::peer::PeerReply, v1 v1::peer::PeerReply;
}

/// Encodes one log entry as a [`WalRecord`] of that entry alone — the same bytes as
/// `encode::<WalRecord>(&Entries(vec![entry]))` — without cloning the entry or its data.
pub fn encode_wal_entry(entry: &types::Entry) -> Result<Vec<u8>, FormatError> {
    let wire = [v1::raft::Entry::from(entry)];
    let out = put::<WalRecord, _>(
        &v1::raft::WalEntries::Entries(&wire),
        vec![0u8; super::HEADER_LEN],
    )?;
    Ok(super::seal_header(WalRecord::VERSION, out))
}
