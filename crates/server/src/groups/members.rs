//! What members do: join (bound to their session lease), leave gracefully, drain, and
//! report their hand-over steps.

use std::time::Duration;

use conclave_consensus::Node;
use conclave_controller::handoff::ack_applies;
use conclave_controller::{Ack, AckKind, Epoch, MemberId, PartitionId, ReplicaState};
use conclave_mvcc::{MvccError, ResponseOp, TxnRequest};
use conclave_proto::partitionpb as pb;

use super::convert::labels;
use super::error::GroupError;
use super::records::{MemberRecord, StoredMemberState, VERSION};
use super::state::{self, created_at, delete, exists, get, lease_is, mod_is, put, GroupView, MemberEntry};
use conclave_contract::groups::{check_group_name, check_member_id, GroupKeys};

/// How often a write that lost a race with another is tried again.
const ATTEMPTS: usize = 5;
/// Default time a graceful leave waits for the hand-over.
pub const DEFAULT_LEAVE_TIMEOUT: Duration = Duration::from_secs(60);

fn checked(group: &str, member: &str) -> Result<(GroupKeys, MemberId), GroupError> {
    check_group_name(group).map_err(GroupError::Invalid)?;
    check_member_id(member).map_err(GroupError::Invalid)?;
    Ok((GroupKeys::new(group), MemberId(member.to_string())))
}

fn no_member(group: &str, member: &MemberId) -> GroupError {
    GroupError::NoMember {
        group: group.to_string(),
        member: member.0.clone(),
    }
}

/// The first range answer of a txn branch, by position.
fn range_at(responses: &[ResponseOp], index: usize) -> Option<&conclave_mvcc::KeyValue> {
    match responses.get(index) {
        Some(ResponseOp::Range(range)) => range.kvs.first(),
        _ => None,
    }
}

/// Registers (or re-registers, with the same lease) a member; returns its entry and the
/// group as read after.
pub async fn join(node: &Node, request: &pb::JoinRequest) -> Result<(MemberEntry, GroupView), GroupError> {
    let (keys, id) = checked(&request.group, &request.member_id)?;
    if request.lease == 0 {
        return Err(GroupError::Invalid(
            "a member joins under a session lease: grant one with the group's session TTL, keep it alive, and pass its id"
                .into(),
        ));
    }
    let mut record = MemberRecord {
        v: VERSION,
        labels: labels("labels", &request.labels)?,
        weight: request.weight.unwrap_or(1),
        state: StoredMemberState::Active,
        advertise_address: request.advertise_address.clone(),
        http_endpoint: request.http_endpoint.clone(),
        grpc_endpoint: request.grpc_endpoint.clone(),
        metadata: labels("metadata", &request.metadata)?,
    };
    let member_key = keys.member(&id);
    for attempt in 0..ATTEMPTS {
        // A new session of an id starts clean: while the map still lists the id (its
        // previous session ended, and the controller has not yet taken its replicas
        // away), it cannot register — the check and the registration are tied to the
        // map's generation, so the controller cannot miss the change of session.
        let view = if attempt == 0 {
            state::read_linearizable(node, &request.group).await?
        } else {
            state::read_local(node, &request.group).await?
        };
        if view.member(&id).is_none() {
            let listed = view
                .partitions
                .iter()
                .filter(|p| p.partition.replica(&id).is_some())
                .count();
            if listed > 0 {
                return Err(GroupError::Busy(format!(
                    "member {id}'s previous session still holds {listed} partitions of {:?}; the controller is taking them away — join again in a moment",
                    request.group
                )));
            }
        }
        let txn = TxnRequest {
            compare: vec![
                exists(keys.config()),
                created_at(member_key.clone(), 0),
                mod_is(keys.map(), view.map_revision),
            ],
            success: vec![put(member_key.clone(), record.encode(), request.lease)],
            failure: vec![get(keys.config()), get(member_key.clone())],
        };
        let (response, _) = match state::write(node, txn).await {
            Err(GroupError::Store(MvccError::LeaseNotFound)) => {
                return Err(GroupError::NoLease(request.lease))
            }
            other => other?,
        };
        if !response.succeeded {
            if range_at(&response.responses, 0).is_none() {
                return Err(GroupError::NoGroup(request.group.clone()));
            }
            let Some(existing) = range_at(&response.responses, 1) else {
                continue; // the map moved on meanwhile, or the key went: look again
            };
            if existing.lease != request.lease {
                return Err(GroupError::MemberTaken {
                    group: request.group.clone(),
                    member: id.0.clone(),
                    lease: existing.lease,
                });
            }
            // The same session joins again: update the registration, keep its stage (a
            // re-join does not undo a drain or a leave).
            if let Ok(old) = MemberRecord::decode("member", &existing.value) {
                record.state = old.state;
            }
            let update = TxnRequest {
                compare: vec![
                    lease_is(member_key.clone(), request.lease),
                    created_at(member_key.clone(), existing.create_revision),
                ],
                success: vec![put(member_key.clone(), record.encode(), request.lease)],
                failure: Vec::new(),
            };
            if !state::write(node, update).await?.0.succeeded {
                continue;
            }
        }
        let view = state::read_local(node, &request.group).await?;
        let entry = view
            .member(&id)
            .cloned()
            .ok_or_else(|| no_member(&request.group, &id))?;
        return Ok((entry, view));
    }
    Err(GroupError::Timeout(format!(
        "joining {:?} as {id} kept racing with other changes; try again",
        request.group
    )))
}

/// Sets a registered member's stage, keeping its lease; returns the group as read before.
async fn set_state(
    node: &Node,
    group: &str,
    id: &MemberId,
    stage: StoredMemberState,
) -> Result<(MemberEntry, GroupView), GroupError> {
    let keys = GroupKeys::new(group);
    for _ in 0..ATTEMPTS {
        let view = state::read_linearizable(node, group).await?;
        let entry = view.member(id).cloned().ok_or_else(|| no_member(group, id))?;
        if entry.record.state == stage {
            return Ok((entry, view));
        }
        let mut record = entry.record.clone();
        record.state = stage;
        let txn = TxnRequest {
            compare: vec![created_at(keys.member(id), entry.create_revision)],
            success: vec![put(keys.member(id), record.encode(), entry.lease)],
            failure: Vec::new(),
        };
        if state::write(node, txn).await?.0.succeeded {
            return Ok((entry, view));
        }
    }
    Err(GroupError::Timeout(format!(
        "changing {id} kept racing with other changes; try again"
    )))
}

/// What a member holds: replicas (any stage) and leaderships.
pub fn holdings(view: &GroupView, id: &MemberId) -> (u32, u32) {
    let mut replicas = 0;
    let mut led = 0;
    for entry in &view.partitions {
        if entry.partition.replica(id).is_some() {
            replicas += 1;
        }
        if entry.partition.leader.as_ref() == Some(id) {
            led += 1;
        }
    }
    (replicas, led)
}

/// Drains a member (or resumes it); returns what it still holds.
pub async fn drain(node: &Node, request: &pb::DrainRequest) -> Result<(u32, u32, i64), GroupError> {
    let (_, id) = checked(&request.group, &request.member_id)?;
    let stage = if request.resume {
        StoredMemberState::Active
    } else {
        StoredMemberState::Draining
    };
    let (_, view) = set_state(node, &request.group, &id, stage).await?;
    let (replicas, led) = holdings(&view, &id);
    Ok((replicas, led, view.revision))
}

/// Graceful leave: marks the member leaving, waits until it holds nothing, deregisters
/// it. Returns the revision of the deregistration.
pub async fn leave(node: &Node, request: &pb::LeaveRequest) -> Result<i64, GroupError> {
    let (keys, id) = checked(&request.group, &request.member_id)?;
    let timeout = match request.timeout_ms {
        0 => DEFAULT_LEAVE_TIMEOUT,
        ms => Duration::from_millis(ms),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut commits = node.subscribe_commits();
    let (entry, _) = set_state(node, &request.group, &id, StoredMemberState::Leaving).await?;
    let prefix = keys.prefix();
    loop {
        let view = state::read_local(node, &request.group).await?;
        let Some(current) = view
            .member(&id)
            .filter(|m| m.create_revision == entry.create_revision)
        else {
            // Its session ended meanwhile: it is gone.
            return Ok(view.revision);
        };
        if holdings(&view, &id).0 == 0 {
            let txn = TxnRequest {
                compare: vec![created_at(keys.member(&id), current.create_revision)],
                success: vec![delete(keys.member(&id))],
                failure: Vec::new(),
            };
            let (_, revision) = state::write(node, txn).await?;
            return Ok(revision);
        }
        let change = crate::recipes::next_change(&mut commits, view.revision, |event| {
            event.kv.key.starts_with(&prefix)
        });
        match tokio::time::timeout_at(deadline, change).await {
            Ok(Ok(())) => {}
            Ok(Err(status)) => return Err(GroupError::Internal(status.message().to_string())),
            Err(_) => {
                let (replicas, led) = holdings(&view, &id);
                return Err(GroupError::Timeout(format!(
                    "{id} still holds {replicas} replicas ({led} leaderships) of {:?} after {timeout:?}; it stays registered and leaving: keep it acknowledging, and leave again to wait more",
                    request.group
                )));
            }
        }
    }
}

/// Records a member's report about a partition, if it applies to the partition as it is.
pub async fn report(node: &Node, request: &pb::ReportRequest) -> Result<i64, GroupError> {
    let (keys, id) = checked(&request.group, &request.member_id)?;
    let kind = match pb::ReportKind::try_from(request.kind) {
        Ok(pb::ReportKind::Ready) => AckKind::Ready,
        Ok(pb::ReportKind::Released) => AckKind::Released,
        Err(_) => {
            return Err(GroupError::Invalid(format!(
                "unknown report kind {}",
                request.kind
            )))
        }
    };
    let partition = PartitionId(request.partition);
    let ack = Ack {
        partition,
        member: id.clone(),
        kind,
        epoch: Epoch(request.epoch),
    };
    for attempt in 0..ATTEMPTS {
        let view = if attempt == 0 {
            state::read_linearizable(node, &request.group).await?
        } else {
            state::read_local(node, &request.group).await?
        };
        let member = view
            .member(&id)
            .cloned()
            .ok_or_else(|| no_member(&request.group, &id))?;
        let entry = view.partition(partition).ok_or_else(|| {
            GroupError::Invalid(format!(
                "partition {partition} is out of range: group {:?} has partitions 0 to {}",
                request.group,
                view.config.partitions.saturating_sub(1)
            ))
        })?;
        let current = entry.partition.epoch;
        if current != ack.epoch && !ack_applies(&entry.partition, &ack) {
            return Err(GroupError::StaleEpoch {
                group: request.group.clone(),
                partition: partition.0,
                current: current.0,
                given: ack.epoch.0,
            });
        }
        if !ack_applies(&entry.partition, &ack) {
            let stage = entry.partition.replica(&id).map(|r| r.state.clone());
            // Reported already (a retried report): nothing to do.
            let done = matches!(
                (kind, &stage),
                (AckKind::Ready, Some(ReplicaState::Ready)) | (AckKind::Released, None)
            );
            if done {
                return Ok(view.revision);
            }
            if kind == AckKind::Ready
                && stage
                    .as_ref()
                    .is_some_and(|s| conclave_controller::handoff::source_changed(&entry.partition, s))
            {
                return Err(GroupError::Precondition(format!(
                    "the move of partition {partition} of {:?} to {id} is being given up: the partition's leadership changed since the replica was added",
                    request.group
                )));
            }
            let wanted = match kind {
                AckKind::Ready => "syncing",
                AckKind::Released => "releasing",
            };
            let now = match stage {
                None => "holds none".to_string(),
                Some(ReplicaState::Ready) => "holds a ready one".to_string(),
                Some(ReplicaState::Releasing) => "holds a releasing one".to_string(),
                Some(ReplicaState::Syncing { .. }) => "holds a syncing one".to_string(),
            };
            return Err(GroupError::Precondition(format!(
                "{id} has no {wanted} replica of partition {partition} of {:?} to report {} (it {now})",
                request.group,
                state::kind_name(kind)
            )));
        }
        let txn = TxnRequest {
            compare: vec![
                mod_is(keys.partition(partition), entry.record_revision),
                mod_is(keys.leader(partition), entry.leader_revision),
                created_at(keys.member(&id), member.create_revision),
            ],
            success: vec![put(
                keys.ack(partition, &id, kind, ack.epoch),
                Vec::new(),
                member.lease,
            )],
            failure: Vec::new(),
        };
        let (response, revision) = state::write(node, txn).await?;
        if response.succeeded {
            return Ok(revision);
        }
    }
    Err(GroupError::Timeout(format!(
        "reporting partition {partition} kept racing with map changes; try again"
    )))
}
