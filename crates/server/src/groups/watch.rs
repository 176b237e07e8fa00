//! `WatchMap`: every change of a group's map after a generation, no gap, no duplicate.
//!
//! Each map generation is one revision of the store (the controller writes it as one
//! txn), so following the store's revisions in order gives the generations in order: the
//! stream subscribes to the commit stream *before* reading anything, replays the store's
//! history from just after the generation asked for (its history entry says at which
//! revision it was written), then takes live commits, skipping revisions already sent —
//! the watch sessions' rule. A revision that writes the map header is a generation: the
//! partitions it touched are read whole at that revision. A revision that registers or
//! deregisters members is a membership change.

use conclave_consensus::Node;
use conclave_controller::{Epoch, MemberId, Partition, PartitionId};
use conclave_mvcc::{Event, EventKind, RangeRequest, Store};
use conclave_proto::partitionpb as pb;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::convert::{map_to_pb, member_to_pb, partition_to_pb};
use super::error::GroupError;
use super::records::{HistoryRecord, MapHeader, MemberRecord, PartitionRecord};
use super::state::{self, MemberEntry};
use conclave_contract::groups::GroupKeys;

/// Revisions replayed from history per read.
const REPLAY_WINDOW: i64 = 256;

/// What the stream sends, with the revision it reflects.
pub type Sent = (pb::map_event::Event, i64);

/// Streams the map of `group` after generation `after` (0: a snapshot first) to `out`
/// until the client goes away, the group is deleted, or an error (sent last).
pub async fn stream(node: Node, group: String, after: u64, out: mpsc::Sender<Result<Sent, GroupError>>) {
    if let Err(error) = follow(&node, &group, after, &out).await {
        let _ = out.send(Err(error)).await;
    }
}

async fn follow(
    node: &Node,
    group: &str,
    after: u64,
    out: &mpsc::Sender<Result<Sent, GroupError>>,
) -> Result<(), GroupError> {
    let keys = GroupKeys::new(group);
    // Subscribe before reading: nothing committed after the reads is missed.
    let mut commits = node.subscribe_commits();
    let view = state::read_linearizable(node, group).await?;
    let mut next = if after == 0 {
        if out
            .send(Ok((
                pb::map_event::Event::Snapshot(map_to_pb(&view)),
                view.revision,
            )))
            .await
            .is_err()
        {
            return Ok(());
        }
        view.revision + 1
    } else {
        if after > view.generation.0 {
            return Err(GroupError::FutureGeneration {
                group: group.to_string(),
                given: after,
                current: view.generation.0,
            });
        }
        written_at(node.store(), &keys, group, after, view.generation.0)? + 1
    };
    let prefix = keys.prefix();
    loop {
        // Replay what the store has from `next` on.
        let current = node.store().current_revision();
        while next <= current {
            let until = (next + REPLAY_WINDOW - 1).min(current);
            let store = node.store().clone();
            let events = tokio::task::spawn_blocking(move || store.events(next, until, false))
                .await
                .map_err(|e| GroupError::Internal(e.to_string()))??;
            let mut by_revision: std::collections::BTreeMap<i64, Vec<Event>> = Default::default();
            for event in events.into_iter().filter(|e| e.kv.key.starts_with(&prefix)) {
                by_revision.entry(event.kv.mod_revision).or_default().push(event);
            }
            for (revision, events) in by_revision {
                if !send_revision(node.store(), &keys, revision, &events, out).await? {
                    return Ok(());
                }
            }
            next = until + 1;
        }
        // Then live commits.
        tokio::select! {
            () = out.closed() => return Ok(()),
            commit = commits.recv() => match commit {
                Ok(commit) if commit.revision >= next => {
                    let events: Vec<Event> = commit.events.iter().filter(|e| e.kv.key.starts_with(&prefix)).cloned().collect();
                    if !events.is_empty() && !send_revision(node.store(), &keys, commit.revision, &events, out).await? {
                        return Ok(());
                    }
                    next = commit.revision + 1;
                }
                Ok(_) => {}
                // Lagged: the replay above catches up from the store.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Err(GroupError::Internal("the member is shutting down".into())),
            },
        }
    }
}

/// The revision generation `generation` was written at, from the group's history.
fn written_at(
    store: &Store,
    keys: &GroupKeys,
    group: &str,
    generation: u64,
    current: u64,
) -> Result<i64, GroupError> {
    let entry = store.range(&RangeRequest {
        key: keys.history_entry(conclave_controller::Generation(generation)),
        ..Default::default()
    })?;
    match entry.kvs.first() {
        Some(kv) => Ok(kv.mod_revision),
        None => {
            let oldest = current
                .saturating_sub(conclave_contract::groups::HISTORY - 1)
                .max(1);
            Err(GroupError::GenerationGone {
                group: group.to_string(),
                given: generation,
                oldest,
            })
        }
    }
}

/// Sends what one revision changed; false when the client went away or the group ended.
async fn send_revision(
    store: &std::sync::Arc<Store>,
    keys: &GroupKeys,
    revision: i64,
    events: &[Event],
    out: &mpsc::Sender<Result<Sent, GroupError>>,
) -> Result<bool, GroupError> {
    if events
        .iter()
        .any(|e| e.kv.key == keys.config() && e.kind == EventKind::Delete)
    {
        let _ = out
            .send(Ok((pb::map_event::Event::Deleted(true), revision)))
            .await;
        return Ok(false);
    }
    let mut updated = Vec::new();
    let mut left = Vec::new();
    for event in events {
        let Some(id) = keys.tail(b"members/", &event.kv.key) else {
            continue;
        };
        match event.kind {
            EventKind::Delete => left.push(id.to_string()),
            EventKind::Put => {
                let record = MemberRecord::decode(&format!("member {id}"), &event.kv.value)?;
                updated.push(member_to_pb(&MemberEntry {
                    id: MemberId(id.to_string()),
                    record,
                    lease: event.kv.lease,
                    create_revision: event.kv.create_revision,
                }));
            }
        }
    }
    if !(updated.is_empty() && left.is_empty()) {
        let change = pb::MembersChange { updated, left };
        if out
            .send(Ok((pb::map_event::Event::Members(change), revision)))
            .await
            .is_err()
        {
            return Ok(false);
        }
    }
    let Some(header) = events
        .iter()
        .find(|e| e.kv.key == keys.map() && e.kind == EventKind::Put)
    else {
        return Ok(true);
    };
    let generation = MapHeader::decode("map", &header.kv.value)?.generation;
    let mut touched: Vec<PartitionId> = events
        .iter()
        .filter_map(|e| {
            keys.partition_of(b"partitions/", &e.kv.key)
                .or_else(|| keys.partition_of(b"leaders/", &e.kv.key))
        })
        .collect();
    touched.sort();
    touched.dedup();
    let store = store.clone();
    let keys_owned = keys.clone();
    let partitions = tokio::task::spawn_blocking(move || {
        touched
            .into_iter()
            .map(|id| partition_at(&store, &keys_owned, id, revision).map(|p| partition_to_pb(id, &p)))
            .collect::<Result<Vec<_>, GroupError>>()
    })
    .await
    .map_err(|e| GroupError::Internal(e.to_string()))??;
    let change = pb::MapChange {
        generation,
        partitions,
    };
    Ok(out
        .send(Ok((pb::map_event::Event::Change(change), revision)))
        .await
        .is_ok())
}

/// One partition as it was at `revision`.
pub fn partition_at(
    store: &Store,
    keys: &GroupKeys,
    id: PartitionId,
    revision: i64,
) -> Result<Partition, GroupError> {
    let read = |key: Vec<u8>| {
        store.range(&RangeRequest {
            key,
            revision,
            ..Default::default()
        })
    };
    let record = read(keys.partition(id))?.kvs.into_iter().next();
    let leader = read(keys.leader(id))?.kvs.into_iter().next().map(|kv| {
        (
            MemberId(String::from_utf8_lossy(&kv.value).into_owned()),
            Epoch(kv.mod_revision),
        )
    });
    Ok(match record {
        Some(kv) => PartitionRecord::decode(&format!("partition {id}"), &kv.value)?.partition(leader),
        None => Partition {
            leader: leader.as_ref().map(|(m, _)| m.clone()),
            epoch: leader.map_or(Epoch(0), |(_, e)| e),
            ..Partition::default()
        },
    })
}

/// The latest `limit` history entries, newest first, with the revision each was written at.
pub fn history(store: &Store, keys: &GroupKeys, limit: u32) -> Result<Vec<pb::HistoryEntry>, GroupError> {
    let prefix = keys.history();
    let response = store.range(&RangeRequest {
        range_end: conclave_contract::keys::prefix_end(&prefix),
        key: prefix,
        limit: i64::from(limit.max(1)),
        sort_order: conclave_mvcc::SortOrder::Descend,
        sort_target: conclave_mvcc::SortTarget::Key,
        ..Default::default()
    })?;
    response
        .kvs
        .into_iter()
        .map(|kv| {
            let record = HistoryRecord::decode("history entry", &kv.value)?;
            Ok(pb::HistoryEntry {
                generation: record.generation,
                revision: kv.mod_revision,
                changed: record.changed,
                new_leaders: record.new_leaders,
                written_unix_ms: record.written_unix_ms,
            })
        })
        .collect()
}
