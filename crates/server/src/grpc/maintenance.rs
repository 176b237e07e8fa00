//! `etcdserverpb.Maintenance`: Status, Alarm, Snapshot, Defragment, Hash, HashKV,
//! MoveLeader. Downgrade is not supported (there is only one Conclave storage version).

use std::io::Read;
use std::pin::Pin;

use conclave_consensus::{Alarm, AlarmChange, AlarmKind, ConsensusError};
use conclave_proto::etcdserverpb as pb;
use conclave_proto::etcdserverpb::alarm_request::AlarmAction;
use conclave_proto::etcdserverpb::maintenance_server::Maintenance;
use conclave_proto::etcdserverpb::AlarmType;
use futures::Stream;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{EtcdApi, ETCD_COMPAT_VERSION};
use crate::auth::{Caller, Credentials};
use crate::errors::{consensus_status, mvcc_status};

/// etcd streams snapshots in 32 KiB pieces.
const SNAPSHOT_CHUNK: usize = 32 * 1024;

fn alarm_type(kind: AlarmKind) -> i32 {
    match kind {
        AlarmKind::NoSpace => AlarmType::Nospace as i32,
        AlarmKind::Corrupt => AlarmType::Corrupt as i32,
    }
}

fn alarm_kind(alarm: i32) -> Result<Option<AlarmKind>, Status> {
    match AlarmType::try_from(alarm) {
        Ok(AlarmType::None) => Ok(None),
        Ok(AlarmType::Nospace) => Ok(Some(AlarmKind::NoSpace)),
        Ok(AlarmType::Corrupt) => Ok(Some(AlarmKind::Corrupt)),
        Err(_) => Err(Status::invalid_argument(format!(
            "etcdserver: unknown alarm type {alarm}"
        ))),
    }
}

impl EtcdApi {
    /// Refuses a call that etcd reserves for root once auth is on (Defragment, Snapshot,
    /// Hash, HashKV, MoveLeader, member changes, alarm changes).
    pub(crate) async fn check_admin_call<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.auth
            .authorize_fresh(&Credentials::of(request), Caller::check_admin)
            .await
            .map(|_| ())
    }

    fn alarm_members(&self, filter: Option<AlarmKind>) -> Result<Vec<pb::AlarmMember>, Status> {
        let alarms = self.node.alarms().map_err(|e| consensus_status(&e))?;
        Ok(alarms
            .into_iter()
            .filter(|a| filter.is_none_or(|k| k == a.kind))
            .map(|a| pb::AlarmMember {
                member_id: a.member_id,
                alarm: alarm_type(a.kind),
            })
            .collect())
    }
}

#[tonic::async_trait]
impl Maintenance for EtcdApi {
    async fn alarm(&self, request: Request<pb::AlarmRequest>) -> Result<Response<pb::AlarmResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        let kind = alarm_kind(request.alarm)?;
        let action = AlarmAction::try_from(request.action).map_err(|_| {
            Status::invalid_argument(format!("etcdserver: unknown alarm action {}", request.action))
        })?;
        let alarms = match action {
            // Linearizable, as etcd's (which goes through Raft): a list used to disarm
            // must include every alarm raised before the call.
            AlarmAction::Get => {
                self.node
                    .linearizable_barrier()
                    .await
                    .map_err(|e| consensus_status(&e))?;
                self.alarm_members(kind)?
            }
            AlarmAction::Activate | AlarmAction::Deactivate => {
                // Listing is open, as etcd's; raising or disarming needs root once auth is on.
                self.auth
                    .authorize_fresh(&credentials, Caller::check_admin)
                    .await?;
                let kind = kind
                    .ok_or_else(|| Status::invalid_argument(conclave_contract::errors::ALARM_TYPE_MISSING))?;
                let alarm = Alarm {
                    member_id: request.member_id,
                    kind,
                };
                let change = if action == AlarmAction::Activate {
                    AlarmChange::Activate(alarm)
                } else {
                    AlarmChange::Deactivate(alarm)
                };
                self.node
                    .change_alarm(change)
                    .await
                    .map_err(|e| consensus_status(&e))?;
                vec![pb::AlarmMember {
                    member_id: alarm.member_id,
                    alarm: alarm_type(kind),
                }]
            }
        };
        Ok(Response::new(pb::AlarmResponse {
            header: self.header(self.node.store().current_revision()),
            alarms,
        }))
    }

    async fn status(&self, _: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let status = self.node.status();
        let store = self.node.store().clone();
        let (db_size, revision) =
            tokio::task::spawn_blocking(move || (store.size_on_disk(), store.current_revision()))
                .await
                .map_err(|e| Status::internal(e.to_string()))?;
        let db_size = i64::try_from(db_size.unwrap_or(0)).unwrap_or(i64::MAX);
        let in_use = i64::try_from(self.usage.get()).unwrap_or(i64::MAX);
        let errors = self
            .node
            .alarms()
            .unwrap_or_default()
            .into_iter()
            .map(|a| {
                let kind = match a.kind {
                    AlarmKind::NoSpace => "NOSPACE",
                    AlarmKind::Corrupt => "CORRUPT",
                };
                format!("memberID:{} alarm:{kind} ", a.member_id)
            })
            .collect();
        Ok(Response::new(pb::StatusResponse {
            header: self.header(revision),
            version: ETCD_COMPAT_VERSION.to_string(),
            db_size,
            leader: status.leader.unwrap_or(0),
            raft_index: status.committed_index,
            raft_term: status.term,
            raft_applied_index: status.applied_index,
            errors,
            db_size_in_use: if in_use > 0 { in_use } else { db_size },
            is_learner: status.is_learner,
            db_size_quota: i64::try_from(self.settings.quota_backend_bytes).unwrap_or(i64::MAX),
            ..Default::default()
        }))
    }

    /// sled has no online compaction: defragment makes everything durable and succeeds;
    /// space held by deleted data is reused by sled over time (docs/compatibility.md).
    async fn defragment(
        &self,
        request: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        self.check_admin_call(&request).await?;
        let store = self.node.store().clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| mvcc_status(&e))?;
        Ok(Response::new(pb::DefragmentResponse {
            header: self.header(self.node.store().current_revision()),
        }))
    }

    async fn hash(&self, request: Request<pb::HashRequest>) -> Result<Response<pb::HashResponse>, Status> {
        self.check_admin_call(&request).await?;
        let store = self.node.store().clone();
        let (hash, revision) = tokio::task::spawn_blocking(move || (store.hash(), store.current_revision()))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let hash = hash.map_err(|e| mvcc_status(&e))?;
        Ok(Response::new(pb::HashResponse {
            header: self.header(revision),
            hash,
        }))
    }

    /// The hash of the whole store at its current revision (a `revision` other than 0 or
    /// the current one is not supported: FailedPrecondition).
    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        self.check_admin_call(&request).await?;
        let wanted = request.into_inner().revision;
        let store = self.node.store().clone();
        let (hash, revision, compacted) = tokio::task::spawn_blocking(move || store.hash_at_revision())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| mvcc_status(&e))?;
        if wanted != 0 && wanted != revision {
            return Err(Status::failed_precondition(format!(
                "conclave: HashKV at revision {wanted} is not supported; ask at the current revision (0)"
            )));
        }
        Ok(Response::new(pb::HashKvResponse {
            header: self.header(revision),
            hash,
            compact_revision: compacted,
            hash_revision: revision,
        }))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

    /// Streams a fresh snapshot of this member's state machine (Conclave's snapshot format)
    /// as etcd does: 32 KiB pieces, zero padding to a multiple of 512 bytes, then the
    /// SHA-256 of everything before it — the framing `etcdctl snapshot save` checks.
    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        self.check_admin_call(&request).await?;
        let (_, mut file, len) = self
            .node
            .fresh_snapshot()
            .await
            .map_err(|e| consensus_status(&e))?;
        let padded = len.div_ceil(512) * 512;
        let total = padded + 32;
        let header = self.header(self.node.store().current_revision());
        let (out, responses) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut hasher = Sha256::new();
            let mut sent = 0u64;
            let mut buf = vec![0u8; SNAPSHOT_CHUNK];
            while sent < padded {
                let want =
                    usize::try_from((padded - sent).min(SNAPSHOT_CHUNK as u64)).unwrap_or(SNAPSHOT_CHUNK);
                let mut filled = 0;
                while filled < want {
                    match file.read(&mut buf[filled..want]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) => {
                            let _ = out
                                .blocking_send(Err(Status::internal(format!("reading the snapshot: {e}"))));
                            return;
                        }
                    }
                }
                // Past the end of the file: zero padding.
                buf[filled..want].fill(0);
                hasher.update(&buf[..want]);
                sent += want as u64;
                let piece = pb::SnapshotResponse {
                    header,
                    remaining_bytes: total - sent,
                    blob: buf[..want].to_vec(),
                    version: ETCD_COMPAT_VERSION.to_string(),
                };
                if out.blocking_send(Ok(piece)).is_err() {
                    return;
                }
            }
            let digest = hasher.finalize().to_vec();
            let _ = out.blocking_send(Ok(pb::SnapshotResponse {
                header,
                remaining_bytes: 0,
                blob: digest,
                version: ETCD_COMPAT_VERSION.to_string(),
            }));
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(responses))))
    }

    async fn move_leader(
        &self,
        request: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        self.check_admin_call(&request).await?;
        let target = request.into_inner().target_id;
        self.node
            .move_leader(target)
            .await
            .map_err(|e| consensus_status(&e))?;
        Ok(Response::new(pb::MoveLeaderResponse {
            header: self.header(self.node.store().current_revision()),
        }))
    }

    async fn downgrade(
        &self,
        _: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(consensus_status(&ConsensusError::Config(
            "conclave: downgrade is not supported (there is a single storage version)".into(),
        ))
        .map_code(tonic::Code::Unimplemented))
    }
}

/// Small helper: the same status with another code.
trait MapCode {
    fn map_code(self, code: tonic::Code) -> Status;
}

impl MapCode for Status {
    fn map_code(self, code: tonic::Code) -> Status {
        Status::new(code, self.message().to_string())
    }
}
