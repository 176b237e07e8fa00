//! FROZEN: layout version 1 of the Raft log: openraft's log ids, votes, entries and
//! memberships as its serde derives wrote them under openraft 0.10.0-alpha.37 (leader ids
//! are `leader_id_adv`: term and node id), our member records, and the WAL's records. Do
//! not add, remove or reorder fields or variants here (postcard encodes their order); a new
//! layout is a `v2` module with an upgrade from these types. Only the conversions at the
//! bottom follow the in-memory types.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::command::Command;
use super::Invalid;
use crate::log_store;
use crate::types;

/// openraft's `leader_id_adv::LeaderId`: also the committed leader id of a log id.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LeaderId {
    /// The leader's term.
    pub term: u64,
    /// The leader's node id.
    pub node_id: u64,
}

/// openraft's `LogId`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LogId {
    /// Who proposed the entry.
    pub leader_id: LeaderId,
    /// Its index.
    pub index: u64,
}

/// openraft's `Vote`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Vote {
    /// The candidate or leader voted for.
    pub leader_id: LeaderId,
    /// Whether a quorum granted it.
    pub committed: bool,
}

/// `types::MemberNode`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberNode {
    /// `--name`.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs.
    pub client_urls: Vec<String>,
}

/// openraft's `Membership`: the (joint) voter configs and every node, learners included.
#[derive(Debug, Serialize, Deserialize)]
pub struct Membership {
    /// One voter set, or two during a joint change.
    pub configs: Vec<BTreeSet<u64>>,
    /// Every member's node.
    pub nodes: BTreeMap<u64, MemberNode>,
}

/// openraft's `StoredMembership` (state-machine meta `raft.membership`).
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredMembership {
    /// The entry that set it.
    pub log_id: Option<LogId>,
    /// The membership.
    pub membership: Membership,
}

/// openraft's `EntryPayload`.
#[derive(Debug, Serialize, Deserialize)]
pub enum EntryPayload<'a> {
    /// 0
    Blank,
    /// 1
    Normal(Command<'a>),
    /// 2
    Membership(Membership),
}

/// openraft's `Entry`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Entry<'a> {
    /// Its log id.
    pub log_id: LogId,
    /// What it holds.
    pub payload: EntryPayload<'a>,
}

/// One record of the WAL (`log_store::WalRecord`).
#[derive(Debug, Serialize, Deserialize)]
pub enum WalRecord<'a> {
    /// 0: entries, each replacing everything from its index on.
    Entries(Vec<Entry<'a>>),
    /// 1
    Vote(Vote),
    /// 2
    Committed(Option<LogId>),
    /// 3
    Purged(LogId),
    /// 4
    TruncatedAfter(Option<LogId>),
    /// 5: the non-entry state, first in every segment.
    Checkpoint {
        /// The vote.
        vote: Option<Vote>,
        /// The committed log id.
        committed: Option<LogId>,
        /// The last purged log id.
        purged: Option<LogId>,
    },
}

/// Borrowed form of [`WalRecord::Entries`], written one entry per record: postcard writes
/// a slice exactly as a `Vec`, and the only variant has `Entries`' index (0), so these
/// bytes are a valid [`WalRecord`] (checked by the golden test). No `Vec` of the batch is
/// built to write it.
#[derive(Debug, Serialize)]
pub enum WalEntries<'s, 'a> {
    /// 0, as [`WalRecord::Entries`].
    Entries(&'s [Entry<'a>]),
}

// ---- conversions: these follow the in-memory types -------------------------------------

impl From<&types::LogId> for LogId {
    fn from(log_id: &types::LogId) -> Self {
        LogId {
            leader_id: LeaderId {
                term: log_id.leader_id.term,
                node_id: log_id.leader_id.node_id,
            },
            index: log_id.index,
        }
    }
}

impl From<LogId> for types::LogId {
    fn from(log_id: LogId) -> Self {
        openraft::LogId::new(
            openraft::impls::leader_id_adv::LeaderId {
                term: log_id.leader_id.term,
                node_id: log_id.leader_id.node_id,
            },
            log_id.index,
        )
    }
}

impl From<&types::Vote> for Vote {
    fn from(vote: &types::Vote) -> Self {
        Vote {
            leader_id: LeaderId {
                term: vote.leader_id.term,
                node_id: vote.leader_id.node_id,
            },
            committed: vote.committed,
        }
    }
}

impl From<Vote> for types::Vote {
    fn from(vote: Vote) -> Self {
        openraft::impls::Vote {
            leader_id: openraft::impls::leader_id_adv::LeaderId {
                term: vote.leader_id.term,
                node_id: vote.leader_id.node_id,
            },
            committed: vote.committed,
        }
    }
}

impl From<&types::MemberNode> for MemberNode {
    fn from(node: &types::MemberNode) -> Self {
        MemberNode {
            name: node.name.clone(),
            peer_urls: node.peer_urls.clone(),
            client_urls: node.client_urls.clone(),
        }
    }
}

impl From<MemberNode> for types::MemberNode {
    fn from(node: MemberNode) -> Self {
        types::MemberNode {
            name: node.name,
            peer_urls: node.peer_urls,
            client_urls: node.client_urls,
        }
    }
}

impl From<&types::Membership> for Membership {
    fn from(membership: &types::Membership) -> Self {
        Membership {
            configs: membership.get_joint_config().clone(),
            nodes: membership.nodes().map(|(id, node)| (*id, node.into())).collect(),
        }
    }
}

/// Rebuilt through openraft's validating constructor: a voter without a node or an empty
/// voter set is refused, not trusted. (No config at all is openraft's "no membership yet",
/// the default, which the constructor accepts.)
impl TryFrom<Membership> for types::Membership {
    type Error = Invalid;

    fn try_from(membership: Membership) -> Result<Self, Invalid> {
        let nodes: BTreeMap<u64, types::MemberNode> = membership
            .nodes
            .into_iter()
            .map(|(id, node)| (id, node.into()))
            .collect();
        openraft::Membership::new(membership.configs, nodes)
            .map_err(|e| Invalid(format!("invalid membership: {e}")))
    }
}

impl From<&types::StoredMembership> for StoredMembership {
    fn from(stored: &types::StoredMembership) -> Self {
        StoredMembership {
            log_id: stored.log_id().as_ref().map(LogId::from),
            membership: stored.membership().into(),
        }
    }
}

impl TryFrom<StoredMembership> for types::StoredMembership {
    type Error = Invalid;

    fn try_from(stored: StoredMembership) -> Result<Self, Invalid> {
        Ok(openraft::StoredMembership::new(
            stored.log_id.map(Into::into),
            stored.membership.try_into()?,
        ))
    }
}

impl<'a> From<&'a types::Entry> for Entry<'a> {
    fn from(entry: &'a types::Entry) -> Self {
        Entry {
            log_id: (&entry.log_id).into(),
            payload: match &entry.payload {
                openraft::EntryPayload::Blank => EntryPayload::Blank,
                openraft::EntryPayload::Normal(command) => EntryPayload::Normal(command.into()),
                openraft::EntryPayload::Membership(membership) => EntryPayload::Membership(membership.into()),
            },
        }
    }
}

/// The in-memory entry (a function: openraft's `Entry` has blanket conversions that rule
/// out a `TryFrom` impl).
pub(crate) fn entry_into(entry: Entry<'_>) -> Result<types::Entry, Invalid> {
    Ok(openraft::Entry {
        log_id: entry.log_id.into(),
        payload: match entry.payload {
            EntryPayload::Blank => openraft::EntryPayload::Blank,
            EntryPayload::Normal(command) => openraft::EntryPayload::Normal(command.into()),
            EntryPayload::Membership(membership) => {
                openraft::EntryPayload::Membership(membership.try_into()?)
            }
        },
    })
}

/// Entries converted one by one, for the messages that carry a batch of them.
pub(crate) fn entries_from(entries: &[types::Entry]) -> Vec<Entry<'_>> {
    entries.iter().map(Entry::from).collect()
}

/// The in-memory entries of a decoded batch.
pub(crate) fn entries_into(entries: Vec<Entry<'_>>) -> Result<Vec<types::Entry>, Invalid> {
    entries.into_iter().map(entry_into).collect()
}

impl<'a> From<&'a log_store::WalRecord> for WalRecord<'a> {
    fn from(record: &'a log_store::WalRecord) -> Self {
        let id = |id: &Option<types::LogId>| id.as_ref().map(LogId::from);
        match record {
            log_store::WalRecord::Entries(entries) => WalRecord::Entries(entries_from(entries)),
            log_store::WalRecord::Vote(vote) => WalRecord::Vote(vote.into()),
            log_store::WalRecord::Committed(committed) => WalRecord::Committed(id(committed)),
            log_store::WalRecord::Purged(purged) => WalRecord::Purged(purged.into()),
            log_store::WalRecord::TruncatedAfter(after) => WalRecord::TruncatedAfter(id(after)),
            log_store::WalRecord::Checkpoint {
                vote,
                committed,
                purged,
            } => WalRecord::Checkpoint {
                vote: vote.as_ref().map(Vote::from),
                committed: id(committed),
                purged: id(purged),
            },
        }
    }
}

impl TryFrom<WalRecord<'_>> for log_store::WalRecord {
    type Error = Invalid;

    fn try_from(record: WalRecord<'_>) -> Result<Self, Invalid> {
        Ok(match record {
            WalRecord::Entries(entries) => log_store::WalRecord::Entries(entries_into(entries)?),
            WalRecord::Vote(vote) => log_store::WalRecord::Vote(vote.into()),
            WalRecord::Committed(committed) => log_store::WalRecord::Committed(committed.map(Into::into)),
            WalRecord::Purged(purged) => log_store::WalRecord::Purged(purged.into()),
            WalRecord::TruncatedAfter(after) => log_store::WalRecord::TruncatedAfter(after.map(Into::into)),
            WalRecord::Checkpoint {
                vote,
                committed,
                purged,
            } => log_store::WalRecord::Checkpoint {
                vote: vote.map(Into::into),
                committed: committed.map(Into::into),
                purged: purged.map(Into::into),
            },
        })
    }
}
