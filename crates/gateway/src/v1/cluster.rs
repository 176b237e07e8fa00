//! `GET /v1/cluster`: members, the leader, the revision and Raft term, and each
//! member's health as seen from this gateway.

use std::time::Duration;

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// How long one member's status or health check may take.
const MEMBER_BUDGET: Duration = Duration::from_secs(2);

/// One member's status, asked at one of its client URLs.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberStatus {
    /// The client URL asked.
    pub endpoint: String,
    /// Whether it answered a linearizable read.
    pub healthy: bool,
    /// Milliseconds the health check took.
    pub took_ms: u64,
    /// Why it is unhealthy or its status failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The store revision it reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Its Raft term.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_term: Option<u64>,
    /// Its last Raft index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_index: Option<u64>,
    /// Its applied Raft index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_applied_index: Option<u64>,
    /// Its database size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_size: Option<i64>,
    /// Its server version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Alarms it reports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<String>,
}

/// A member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDto {
    /// Member ID (hex, as etcdctl prints it).
    pub id: String,
    /// Name (empty until started).
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs.
    pub client_urls: Vec<String>,
    /// Whether it is a non-voting learner.
    pub is_learner: bool,
    /// Whether it is the leader.
    pub is_leader: bool,
    /// Its status at each client URL.
    pub status: Vec<MemberStatus>,
}

/// The cluster as this gateway sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterDto {
    /// The leader's member ID (hex), null when no member reports one.
    pub leader: Option<String>,
    /// The highest store revision reported.
    pub revision: i64,
    /// The highest Raft term reported.
    pub raft_term: u64,
    /// The members.
    pub members: Vec<MemberDto>,
}

async fn member_status(state: &AppState, endpoint: String) -> (MemberStatus, Option<u64>) {
    let client = &state.client;
    let (health, status) = tokio::join!(
        tokio::time::timeout(MEMBER_BUDGET, client.endpoint_health(&endpoint)),
        tokio::time::timeout(MEMBER_BUDGET, client.endpoint_status(&endpoint)),
    );
    let (healthy, took_ms, mut error) = match health {
        Ok(h) => (h.healthy, h.took.as_millis() as u64, h.error),
        Err(_) => (
            false,
            MEMBER_BUDGET.as_millis() as u64,
            Some(format!("no answer within {MEMBER_BUDGET:?}")),
        ),
    };
    let status = match status {
        Ok(Ok(status)) => Some(status),
        Ok(Err(e)) => {
            error.get_or_insert_with(|| e.to_string());
            None
        }
        Err(_) => None,
    };
    let leader = status.as_ref().map(|s| s.leader.0).filter(|l| *l != 0);
    (
        MemberStatus {
            endpoint,
            healthy,
            took_ms,
            error,
            revision: status.as_ref().map(|s| s.revision),
            raft_term: status.as_ref().map(|s| s.raft_term),
            raft_index: status.as_ref().map(|s| s.raft_index),
            raft_applied_index: status.as_ref().map(|s| s.raft_applied_index),
            db_size: status.as_ref().map(|s| s.db_size),
            version: status.as_ref().map(|s| s.version.clone()),
            alarms: status.map(|s| s.errors).unwrap_or_default(),
        },
        leader,
    )
}

/// `GET /v1/cluster`: members, leader, revision, Raft term, per-member health.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster",
    responses(
        (status = 200, description = "the cluster", body = ClusterDto),
        (status = 503, description = "`unavailable`: no member answered the member list", body = ErrorBody)))]
pub async fn cluster(Caller(state): Caller) -> Result<Json<ClusterDto>, ApiError> {
    let members = state.client.member_list().await?;
    let checks = members.iter().map(|member| {
        let state = state.clone();
        let urls = member.client_urls.clone();
        async move {
            let mut statuses = Vec::new();
            let mut leader = None;
            for url in urls {
                let (status, seen) = member_status(&state, url).await;
                leader = leader.or(seen);
                statuses.push(status);
            }
            (statuses, leader)
        }
    });
    let results = futures::future::join_all(checks).await;
    let mut leader = None;
    let mut revision = 0;
    let mut raft_term = 0;
    for (statuses, seen) in &results {
        leader = leader.or(*seen);
        for status in statuses {
            revision = revision.max(status.revision.unwrap_or(0));
            raft_term = raft_term.max(status.raft_term.unwrap_or(0));
        }
    }
    let members = members
        .into_iter()
        .zip(results)
        .map(|(member, (status, _))| MemberDto {
            id: format!("{:x}", member.id.0),
            is_leader: leader == Some(member.id.0),
            name: member.name,
            peer_urls: member.peer_urls,
            client_urls: member.client_urls,
            is_learner: member.is_learner,
            status,
        })
        .collect();
    Ok(Json(ClusterDto {
        leader: leader.map(|l| format!("{l:x}")),
        revision,
        raft_term,
        members,
    }))
}
