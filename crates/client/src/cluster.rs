//! Membership and maintenance: members, per-endpoint status and health, snapshots,
//! defragmentation, alarms, hashes and leader moves.
//!
//! Cluster-wide calls go to any member with failover; per-endpoint calls
//! ([`Client::endpoint_status`], [`Client::endpoint_health`], [`Client::defragment`],
//! [`Client::hash_kv`]) go to exactly the endpoint named, with no failover.

use std::time::{Duration, Instant};

use conclave_proto::etcdserverpb::cluster_client::ClusterClient;
use conclave_proto::etcdserverpb::kv_client::KvClient;
use conclave_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use conclave_proto::etcdserverpb::{
    alarm_request, AlarmRequest, AlarmType, DefragmentRequest, HashKvRequest, MemberAddRequest,
    MemberListRequest, MemberPromoteRequest, MemberRemoveRequest, MemberUpdateRequest, MoveLeaderRequest,
    RangeRequest, SnapshotRequest, StatusRequest,
};
use futures::Stream;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};
use crate::transport::Idempotency;
use crate::Client;

/// A member ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId(pub u64);

impl std::fmt::Display for MemberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// A cluster member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its ID.
    pub id: MemberId,
    /// Its name (empty until it has started).
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
    /// Its client URLs (empty until it has started).
    pub client_urls: Vec<String>,
    /// Whether it is a non-voting learner.
    pub is_learner: bool,
}

impl From<conclave_proto::etcdserverpb::Member> for Member {
    fn from(m: conclave_proto::etcdserverpb::Member) -> Self {
        Member {
            id: MemberId(m.id),
            name: m.name,
            peer_urls: m.peer_ur_ls,
            client_urls: m.client_ur_ls,
            is_learner: m.is_learner,
        }
    }
}

/// One endpoint's view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointStatus {
    /// The endpoint asked.
    pub endpoint: String,
    /// The member behind it.
    pub member_id: MemberId,
    /// Its server version.
    pub version: String,
    /// Its database size on disk, bytes.
    pub db_size: i64,
    /// The bytes of its database in use.
    pub db_size_in_use: i64,
    /// The leader it knows (0 = none).
    pub leader: MemberId,
    /// Its last Raft index.
    pub raft_index: u64,
    /// Its Raft term.
    pub raft_term: u64,
    /// Its applied Raft index.
    pub raft_applied_index: u64,
    /// Whether it is a learner.
    pub is_learner: bool,
    /// The store revision it reports.
    pub revision: i64,
    /// Alarms and errors it reports.
    pub errors: Vec<String>,
}

impl EndpointStatus {
    /// Whether this member is the leader.
    pub fn is_leader(&self) -> bool {
        self.leader.0 != 0 && self.leader == self.member_id
    }
}

/// Whether an endpoint serves linearizable reads, and how fast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointHealth {
    /// The endpoint asked.
    pub endpoint: String,
    /// Whether it answered a linearizable read.
    pub healthy: bool,
    /// How long the check took.
    pub took: Duration,
    /// Why it is unhealthy.
    pub error: Option<String>,
}

/// A raised alarm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alarm {
    /// The member that raised it.
    pub member_id: MemberId,
    /// `NOSPACE` or `CORRUPT`.
    pub alarm: String,
}

/// One chunk of a snapshot stream.
#[derive(Clone, Debug)]
pub struct SnapshotChunk {
    /// The bytes.
    pub blob: Vec<u8>,
    /// Bytes still to come after this chunk.
    pub remaining_bytes: u64,
}

fn members(list: Vec<conclave_proto::etcdserverpb::Member>) -> Vec<Member> {
    list.into_iter().map(Member::from).collect()
}

impl Client {
    /// Every member (linearizable).
    pub async fn member_list(&self) -> Result<Vec<Member>> {
        self.pool()
            .call(Idempotency::Idempotent, |channel| async move {
                ClusterClient::new(channel)
                    .member_list(MemberListRequest { linearizable: true })
                    .await
            })
            .await
            .map(|r| members(r.into_inner().members))
    }

    /// Adds a member with `peer_urls` (as a learner if `learner`); returns it and the
    /// new member list. Start it with `--initial-cluster-state existing`.
    pub async fn member_add(&self, peer_urls: Vec<String>, learner: bool) -> Result<(Member, Vec<Member>)> {
        let response = self
            .pool()
            .call(Idempotency::NonIdempotent, |channel| {
                let peer_ur_ls = peer_urls.clone();
                async move {
                    ClusterClient::new(channel)
                        .member_add(MemberAddRequest {
                            peer_ur_ls,
                            is_learner: learner,
                        })
                        .await
                }
            })
            .await?
            .into_inner();
        let member = response.member.map(Member::from).ok_or_else(|| Error::Server {
            code: tonic::Code::Internal,
            message: "member add answered without the member".into(),
        })?;
        Ok((member, members(response.members)))
    }

    /// Removes a member; returns the remaining members.
    pub async fn member_remove(&self, id: MemberId) -> Result<Vec<Member>> {
        self.pool()
            .call(Idempotency::NonIdempotent, |channel| async move {
                ClusterClient::new(channel)
                    .member_remove(MemberRemoveRequest { id: id.0 })
                    .await
            })
            .await
            .map(|r| members(r.into_inner().members))
    }

    /// Promotes a caught-up learner to voter; returns the members.
    pub async fn member_promote(&self, id: MemberId) -> Result<Vec<Member>> {
        self.pool()
            .call(Idempotency::NonIdempotent, |channel| async move {
                ClusterClient::new(channel)
                    .member_promote(MemberPromoteRequest { id: id.0 })
                    .await
            })
            .await
            .map(|r| members(r.into_inner().members))
    }

    /// Changes a member's peer URLs; returns the members.
    pub async fn member_update(&self, id: MemberId, peer_urls: Vec<String>) -> Result<Vec<Member>> {
        self.pool()
            .call(Idempotency::NonIdempotent, |channel| {
                let peer_ur_ls = peer_urls.clone();
                async move {
                    ClusterClient::new(channel)
                        .member_update(MemberUpdateRequest { id: id.0, peer_ur_ls })
                        .await
                }
            })
            .await
            .map(|r| members(r.into_inner().members))
    }

    /// The status of the member at `endpoint` (no failover).
    pub async fn endpoint_status(&self, endpoint: &str) -> Result<EndpointStatus> {
        self.pool().ensure_login().await?;
        let channel = self.pool().channel_for(endpoint)?;
        let timeout = self.options().request_timeout;
        let response =
            tokio::time::timeout(timeout, MaintenanceClient::new(channel).status(StatusRequest {}))
                .await
                .map_err(|_| Error::Timeout(timeout))?
                .map_err(|s| Error::from_status(&s))?
                .into_inner();
        let header = response.header.unwrap_or_default();
        Ok(EndpointStatus {
            endpoint: endpoint.to_string(),
            member_id: MemberId(header.member_id),
            version: response.version,
            db_size: response.db_size,
            db_size_in_use: response.db_size_in_use,
            leader: MemberId(response.leader),
            raft_index: response.raft_index,
            raft_term: response.raft_term,
            raft_applied_index: response.raft_applied_index,
            is_learner: response.is_learner,
            revision: header.revision,
            errors: response.errors,
        })
    }

    /// The status of the preferred member, failing over to the others.
    pub async fn status(&self) -> Result<EndpointStatus> {
        let mut last = None;
        let endpoints = self.endpoints();
        let (first, _) = self.pool().current();
        let ordered = endpoints.iter().cycle().skip(first).take(endpoints.len());
        for endpoint in ordered {
            match self.endpoint_status(endpoint).await {
                Ok(status) => return Ok(status),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(Error::Unavailable {
            message: "no endpoints".into(),
            attempts: 0,
        }))
    }

    /// Whether the member at `endpoint` serves a linearizable read (etcdctl's check:
    /// a get of the key `health`) within the request timeout.
    pub async fn endpoint_health(&self, endpoint: &str) -> EndpointHealth {
        let started = Instant::now();
        let timeout = self.options().request_timeout;
        let channel = match self.pool().ensure_login().await {
            Ok(()) => self.pool().channel_for(endpoint),
            Err(e) => Err(e),
        };
        let outcome = match channel {
            Err(e) => Err(e.to_string()),
            Ok(channel) => {
                let mut kv = KvClient::new(channel).max_decoding_message_size(crate::MAX_RESPONSE_BYTES);
                let read = kv.range(RangeRequest {
                    key: b"health".to_vec(),
                    ..RangeRequest::default()
                });
                match tokio::time::timeout(timeout, read).await {
                    Err(_) => Err(format!("no answer within {timeout:?}")),
                    // etcdctl counts "permission denied" as healthy: the member
                    // answered, only the user may not read the key `health`.
                    Ok(Err(status)) if status.code() == tonic::Code::PermissionDenied => Ok(()),
                    Ok(Err(status)) => Err(Error::from_status(&status).to_string()),
                    Ok(Ok(_)) => Ok(()),
                }
            }
        };
        EndpointHealth {
            endpoint: endpoint.to_string(),
            healthy: outcome.is_ok(),
            took: started.elapsed(),
            error: outcome.err(),
        }
    }

    /// Defragments the member at `endpoint`.
    pub async fn defragment(&self, endpoint: &str) -> Result<()> {
        self.pool().ensure_login().await?;
        let channel = self.pool().channel_for(endpoint)?;
        MaintenanceClient::new(channel)
            .defragment(DefragmentRequest {})
            .await
            .map(|_| ())
            .map_err(|s| Error::from_status(&s))
    }

    /// The hash of the member at `endpoint`'s key-value store at `revision` (0 = latest),
    /// and the revision hashed. Equal on members that agree.
    pub async fn hash_kv(&self, endpoint: &str, revision: i64) -> Result<(u32, i64)> {
        self.pool().ensure_login().await?;
        let channel = self.pool().channel_for(endpoint)?;
        let response = MaintenanceClient::new(channel)
            .hash_kv(HashKvRequest { revision })
            .await
            .map_err(|s| Error::from_status(&s))?
            .into_inner();
        Ok((response.hash, response.header.map_or(0, |h| h.revision)))
    }

    /// Raised alarms.
    pub async fn alarms(&self) -> Result<Vec<Alarm>> {
        self.alarm(alarm_request::AlarmAction::Get, 0, AlarmType::None)
            .await
    }

    /// Disarms every raised alarm; returns those disarmed.
    pub async fn disarm_alarms(&self) -> Result<Vec<Alarm>> {
        let mut disarmed = Vec::new();
        for alarm in self.alarms().await? {
            let kind = AlarmType::from_str_name(&alarm.alarm).unwrap_or(AlarmType::None);
            disarmed.extend(
                self.alarm(alarm_request::AlarmAction::Deactivate, alarm.member_id.0, kind)
                    .await?,
            );
        }
        Ok(disarmed)
    }

    async fn alarm(
        &self,
        action: alarm_request::AlarmAction,
        member: u64,
        kind: AlarmType,
    ) -> Result<Vec<Alarm>> {
        self.pool()
            .call(Idempotency::Idempotent, |channel| async move {
                MaintenanceClient::new(channel)
                    .alarm(AlarmRequest {
                        action: action as i32,
                        member_id: member,
                        alarm: kind as i32,
                    })
                    .await
            })
            .await
            .map(|r| {
                r.into_inner()
                    .alarms
                    .into_iter()
                    .map(|a| Alarm {
                        member_id: MemberId(a.member_id),
                        alarm: AlarmType::try_from(a.alarm)
                            .map_or_else(|_| a.alarm.to_string(), |t| t.as_str_name().to_string()),
                    })
                    .collect()
            })
    }

    /// Hands leadership to `target` (must be sent to the current leader's endpoint or
    /// any member; Conclave forwards).
    pub async fn move_leader(&self, target: MemberId) -> Result<()> {
        self.pool()
            .call(Idempotency::NonIdempotent, |channel| async move {
                MaintenanceClient::new(channel)
                    .move_leader(MoveLeaderRequest { target_id: target.0 })
                    .await
            })
            .await
            .map(|_| ())
    }

    /// Streams a snapshot of the preferred member's store (etcd's format: restorable with
    /// `conclave --restore-snapshot` and `etcdutl snapshot restore`).
    pub async fn snapshot(&self) -> Result<impl Stream<Item = Result<SnapshotChunk>> + Send + Unpin> {
        // No per-attempt timeout and no retry: a member may take long to start streaming
        // a large store, and starting over elsewhere would only repeat that work.
        self.pool().ensure_login().await?;
        let (_, channel) = self.pool().current();
        let stream = MaintenanceClient::new(channel)
            .snapshot(SnapshotRequest {})
            .await
            .map_err(|s| Error::from_status(&s))?
            .into_inner();
        Ok(futures::StreamExt::map(stream, |chunk| {
            chunk
                .map(|c| SnapshotChunk {
                    blob: c.blob,
                    remaining_bytes: c.remaining_bytes,
                })
                .map_err(|s| Error::from_status(&s))
        }))
    }

    /// Writes a snapshot to `writer`, calling `progress(written, remaining)` after each
    /// chunk; returns the bytes written.
    pub async fn snapshot_to<W>(&self, writer: &mut W, mut progress: impl FnMut(u64, u64)) -> Result<u64>
    where
        W: AsyncWrite + Unpin,
    {
        let mut chunks = self.snapshot().await?;
        let mut written = 0u64;
        while let Some(chunk) = futures::StreamExt::next(&mut chunks).await {
            let chunk = chunk?;
            writer.write_all(&chunk.blob).await?;
            written += chunk.blob.len() as u64;
            progress(written, chunk.remaining_bytes);
        }
        writer.flush().await?;
        Ok(written)
    }
}
