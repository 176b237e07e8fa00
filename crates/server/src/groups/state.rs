//! A group as stored: read in one consistent snapshot (every range at one revision), and
//! the store requests groups are written with.

use conclave_consensus::{Command, CommandResult, Node};
use conclave_controller::{Ack, AckKind, Epoch, Generation, Map, Member, MemberId, Partition, PartitionId};
use conclave_mvcc::{
    self as mvcc, Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyValue, PutRequest,
    RangeRequest, RequestOp, Store, TxnRequest, TxnResponse, WriteRequest, WriteResponse,
};

use super::error::GroupError;
use super::records::{GroupConfig, MapHeader, MemberRecord, PartitionRecord};
use conclave_contract::groups::{GroupKeys, GROUPS};

/// The most operations one group write may carry (a map write touches at most a batch of
/// partitions, their leader keys and the acks it consumes).
pub const MAX_WRITE_OPS: usize = 1 << 16;

/// A registered member as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEntry {
    /// Its id.
    pub id: MemberId,
    /// Its registration.
    pub record: MemberRecord,
    /// Its session lease.
    pub lease: i64,
    /// The revision its key was created at (a leadership's fence includes it).
    pub create_revision: i64,
}

/// A partition as stored, with the revisions a guarded write compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionEntry {
    /// Its state.
    pub partition: Partition,
    /// Mod revision of its record (0: none).
    pub record_revision: i64,
    /// Mod revision of its leader key (0: none) — the epoch while it has a leader.
    pub leader_revision: i64,
}

/// An ack as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckEntry {
    /// What it says.
    pub ack: Ack,
    /// Its key.
    pub key: Vec<u8>,
}

/// One group, read at one revision.
#[derive(Debug, Clone)]
pub struct GroupView {
    /// Its name.
    pub name: String,
    /// Its keys.
    pub keys: GroupKeys,
    /// The revision everything was read at.
    pub revision: i64,
    /// Its settings.
    pub config: GroupConfig,
    /// Create revision of the config key (a group deleted and created again differs).
    pub config_create_revision: i64,
    /// Mod revision of the config key.
    pub config_revision: i64,
    /// Mod revision of the map header (0: no map written yet).
    pub map_revision: i64,
    /// The map's generation.
    pub generation: Generation,
    /// Registered members (their sessions alive), by id.
    pub members: Vec<MemberEntry>,
    /// Every partition, by id.
    pub partitions: Vec<PartitionEntry>,
    /// Pending acks.
    pub acks: Vec<AckEntry>,
}

fn range_at(
    store: &Store,
    key: Vec<u8>,
    range_end: Vec<u8>,
    revision: i64,
) -> Result<Vec<KeyValue>, GroupError> {
    let response = store.range(&RangeRequest {
        key,
        range_end,
        revision,
        ..Default::default()
    })?;
    Ok(response.kvs)
}

fn prefix_range(prefix: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    let end = conclave_contract::keys::prefix_end(&prefix);
    (prefix, end)
}

impl GroupView {
    /// Reads group `name` from `store` at its current revision; `None` if it does not exist.
    pub fn read(store: &Store, name: &str) -> Result<Option<GroupView>, GroupError> {
        let keys = GroupKeys::new(name);
        let (config, revision) = store.range_at_revision(&RangeRequest {
            key: keys.config(),
            ..Default::default()
        })?;
        let Some(config_kv) = config.kvs.into_iter().next() else {
            return Ok(None);
        };
        let what = |kind: &str| format!("group {name:?} {kind}");
        let config = GroupConfig::decode(&what("config"), &config_kv.value)?;
        let map_kv = range_at(store, keys.map(), Vec::new(), revision)?
            .into_iter()
            .next();
        let (map_revision, generation) = match &map_kv {
            Some(kv) => (
                kv.mod_revision,
                Generation(MapHeader::decode(&what("map"), &kv.value)?.generation),
            ),
            None => (0, Generation(0)),
        };

        let (from, to) = prefix_range(keys.members());
        let mut members = Vec::new();
        for kv in range_at(store, from, to, revision)? {
            let Some(id) = keys.tail(b"members/", &kv.key) else {
                continue;
            };
            let record = MemberRecord::decode(&what(&format!("member {id}")), &kv.value)?;
            members.push(MemberEntry {
                id: MemberId(id.to_string()),
                record,
                lease: kv.lease,
                create_revision: kv.create_revision,
            });
        }

        let count = config.partitions as usize;
        let mut records: Vec<Option<(PartitionRecord, i64)>> = vec![None; count];
        let (from, to) = prefix_range(keys.partitions());
        for kv in range_at(store, from, to, revision)? {
            let Some(id) = keys.partition_of(b"partitions/", &kv.key) else {
                continue;
            };
            if let Some(slot) = records.get_mut(id.0 as usize) {
                let record = PartitionRecord::decode(&what(&format!("partition {id}")), &kv.value)?;
                *slot = Some((record, kv.mod_revision));
            }
        }
        let mut leaders: Vec<Option<(MemberId, i64)>> = vec![None; count];
        let (from, to) = prefix_range(keys.leaders());
        for kv in range_at(store, from, to, revision)? {
            let Some(id) = keys.partition_of(b"leaders/", &kv.key) else {
                continue;
            };
            if let Some(slot) = leaders.get_mut(id.0 as usize) {
                let leader = String::from_utf8_lossy(&kv.value).into_owned();
                *slot = Some((MemberId(leader), kv.mod_revision));
            }
        }
        let partitions = records
            .into_iter()
            .zip(leaders)
            .map(|(record, leader)| {
                let leader_revision = leader.as_ref().map_or(0, |(_, r)| *r);
                let record_revision = record.as_ref().map_or(0, |(_, r)| *r);
                let leader = leader.map(|(m, r)| (m, Epoch(r)));
                let partition = match record {
                    Some((record, _)) => record.partition(leader),
                    None => Partition {
                        leader: leader.as_ref().map(|(m, _)| m.clone()),
                        epoch: leader.map_or(Epoch(0), |(_, e)| e),
                        ..Partition::default()
                    },
                };
                PartitionEntry {
                    partition,
                    record_revision,
                    leader_revision,
                }
            })
            .collect();

        let (from, to) = prefix_range(keys.acks());
        let acks = range_at(store, from, to, revision)?
            .into_iter()
            .filter_map(|kv| {
                let (partition, member, kind, epoch) = keys.parse_ack(&kv.key)?;
                Some(AckEntry {
                    ack: Ack {
                        partition,
                        member,
                        kind,
                        epoch,
                    },
                    key: kv.key,
                })
            })
            .collect();

        Ok(Some(GroupView {
            name: name.to_string(),
            keys,
            revision,
            config,
            config_create_revision: config_kv.create_revision,
            config_revision: config_kv.mod_revision,
            map_revision,
            generation,
            members,
            partitions,
            acks,
        }))
    }

    /// The controller's map.
    pub fn map(&self) -> Map {
        Map {
            generation: self.generation,
            partitions: self.partitions.iter().map(|p| p.partition.clone()).collect(),
        }
    }

    /// The controller's members (every registered member is live: its key goes with its
    /// lease).
    pub fn controller_members(&self) -> Vec<Member> {
        self.members
            .iter()
            .map(|m| m.record.member(&m.id.0, &self.config.zone_label))
            .collect()
    }

    /// The registered member `id`.
    pub fn member(&self, id: &MemberId) -> Option<&MemberEntry> {
        self.members.iter().find(|m| &m.id == id)
    }

    /// The stored partition `id`.
    pub fn partition(&self, id: PartitionId) -> Option<&PartitionEntry> {
        self.partitions.get(id.0 as usize)
    }

    /// The acks.
    pub fn pending_acks(&self) -> Vec<Ack> {
        self.acks.iter().map(|a| a.ack.clone()).collect()
    }
}

/// The names of every group, from the config keys.
pub fn group_names(store: &Store) -> Result<Vec<String>, GroupError> {
    let (from, to) = prefix_range(GROUPS.to_vec());
    let response = store.range(&RangeRequest {
        key: from,
        range_end: to,
        keys_only: true,
        ..Default::default()
    })?;
    Ok(response
        .kvs
        .into_iter()
        .filter_map(|kv| {
            let rest = kv.key.strip_prefix(GROUPS)?;
            let name = std::str::from_utf8(rest.strip_suffix(b"/config")?).ok()?;
            (!name.contains('/')).then(|| name.to_string())
        })
        .collect())
}

/// `key = value` attached to `lease` (0: none).
pub fn put(key: Vec<u8>, value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp::Put(PutRequest {
        key,
        value,
        lease,
        ..Default::default()
    })
}

/// Deletes `key`.
pub fn delete(key: Vec<u8>) -> RequestOp {
    RequestOp::DeleteRange(DeleteRangeRequest {
        key,
        ..Default::default()
    })
}

/// Deletes every key starting with `prefix`.
pub fn delete_prefix(prefix: Vec<u8>) -> RequestOp {
    let (key, range_end) = prefix_range(prefix);
    RequestOp::DeleteRange(DeleteRangeRequest {
        key,
        range_end,
        ..Default::default()
    })
}

/// Reads `key` inside a txn.
pub fn get(key: Vec<u8>) -> RequestOp {
    RequestOp::Range(RangeRequest {
        key,
        ..Default::default()
    })
}

fn compare(key: Vec<u8>, result: CompareResult, target: CompareTarget) -> Compare {
    Compare {
        key,
        range_end: Vec::new(),
        result,
        target,
    }
}

/// `mod_revision(key) == revision` (0: the key does not exist).
pub fn mod_is(key: Vec<u8>, revision: i64) -> Compare {
    compare(key, CompareResult::Equal, CompareTarget::Mod(revision))
}

/// `create_revision(key) == revision` (0: the key does not exist).
pub fn created_at(key: Vec<u8>, revision: i64) -> Compare {
    compare(key, CompareResult::Equal, CompareTarget::Create(revision))
}

/// `create_revision(key) > 0`: the key exists.
pub fn exists(key: Vec<u8>) -> Compare {
    compare(key, CompareResult::Greater, CompareTarget::Create(0))
}

/// `lease(key) == lease`.
pub fn lease_is(key: Vec<u8>, lease: i64) -> Compare {
    compare(key, CompareResult::Equal, CompareTarget::Lease(lease))
}

/// Replicates a txn; returns its response and revision.
pub async fn write(node: &Node, txn: TxnRequest) -> Result<(TxnResponse, i64), GroupError> {
    mvcc::validate_txn(&txn, MAX_WRITE_OPS)?;
    let CommandResult { revision, outcome } = node.write(Command::Write(WriteRequest::Txn(txn))).await?;
    match outcome? {
        WriteResponse::Txn(response) => Ok((response, revision)),
        other => Err(GroupError::Internal(format!(
            "the state machine answered a txn with {other:?}"
        ))),
    }
}

/// Reads a group after a read barrier (everything acknowledged before is visible).
pub async fn read_linearizable(node: &Node, name: &str) -> Result<GroupView, GroupError> {
    node.linearizable_barrier().await?;
    read_local(node, name).await
}

/// Reads a group from this member's store (no barrier).
pub async fn read_local(node: &Node, name: &str) -> Result<GroupView, GroupError> {
    let store = node.store().clone();
    let owned = name.to_string();
    tokio::task::spawn_blocking(move || GroupView::read(&store, &owned))
        .await
        .map_err(|e| GroupError::Internal(e.to_string()))??
        .ok_or_else(|| GroupError::NoGroup(name.to_string()))
}

/// The ack kinds' names, for messages.
pub fn kind_name(kind: AckKind) -> &'static str {
    match kind {
        AckKind::Ready => "ready",
        AckKind::Released => "released",
    }
}
