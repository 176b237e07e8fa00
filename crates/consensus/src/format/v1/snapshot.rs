//! FROZEN: layout version 1 of snapshots: openraft's `SnapshotMeta` (the first frame of a
//! snapshot file), the frames of raw state-machine records after it, and what the first
//! chunk of a streamed snapshot announces. Do not add, remove or reorder fields or variants
//! here (postcard encodes their order); a new layout is a `v2` module with an upgrade from
//! these types. Only the conversions at the bottom follow the in-memory types.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::raft::{LogId, StoredMembership, Vote};
use super::Invalid;
use crate::types;

/// openraft's `SnapshotMeta`, which openraft serializes with a third field: the
/// `snapshot_id` of 0.9, always empty since 0.10 and ignored when read.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last entry the snapshot includes.
    pub last_log_id: Option<LogId>,
    /// The membership as of that entry.
    pub last_membership: StoredMembership,
    /// Reserved (0.9's snapshot id): written empty, ignored when read.
    pub snapshot_id: String,
}

/// One frame of raw state-machine records `(key, value)`, as `mvcc` exports them.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordBatch<'a>(pub Cow<'a, [(Vec<u8>, Vec<u8>)]>);

/// The first chunk of a streamed snapshot: the leader's vote and the snapshot's meta.
#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotOffer {
    /// The sender's vote.
    pub vote: Vote,
    /// What the snapshot holds.
    pub meta: SnapshotMeta,
}

// ---- conversions: these follow the in-memory types -------------------------------------

impl From<&types::SnapshotMeta> for SnapshotMeta {
    fn from(meta: &types::SnapshotMeta) -> Self {
        SnapshotMeta {
            last_log_id: meta.last_log_id.as_ref().map(Into::into),
            last_membership: (&meta.last_membership).into(),
            snapshot_id: String::new(),
        }
    }
}

impl TryFrom<SnapshotMeta> for types::SnapshotMeta {
    type Error = Invalid;

    fn try_from(meta: SnapshotMeta) -> Result<Self, Invalid> {
        Ok(openraft::SnapshotMeta {
            last_log_id: meta.last_log_id.map(Into::into),
            last_membership: meta.last_membership.try_into()?,
        })
    }
}

impl<'a> From<&'a Vec<(Vec<u8>, Vec<u8>)>> for RecordBatch<'a> {
    fn from(records: &'a Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        RecordBatch(Cow::Borrowed(records))
    }
}

impl From<RecordBatch<'_>> for Vec<(Vec<u8>, Vec<u8>)> {
    fn from(batch: RecordBatch<'_>) -> Self {
        batch.0.into_owned()
    }
}

impl From<&(types::Vote, types::SnapshotMeta)> for SnapshotOffer {
    fn from((vote, meta): &(types::Vote, types::SnapshotMeta)) -> Self {
        SnapshotOffer {
            vote: vote.into(),
            meta: meta.into(),
        }
    }
}

impl TryFrom<SnapshotOffer> for (types::Vote, types::SnapshotMeta) {
    type Error = Invalid;

    fn try_from(offer: SnapshotOffer) -> Result<Self, Invalid> {
        Ok((offer.vote.into(), offer.meta.try_into()?))
    }
}
