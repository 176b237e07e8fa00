//! The candidate registry of an election and the control requests its candidates
//! answer themselves (SDK `Candidate`s and `conclavectl elect run`): list, follow as
//! Server-Sent Events, status, ping, and remote step-down. See the SDK's
//! `election::registry` for the key layout and `election::control` for how a request
//! travels through the store.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::response::sse::Event as SseEvent;
use axum::response::Response;
use axum::Json;
use conclave_client::{CandidateChange, CandidateEntry, CandidateState};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::election::poll_timeout;
use super::watch::{drained_events, error_event, sse_response};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, P, Q};

/// Default wait of status, ping and step-down for the candidate's answer.
const DEFAULT_ANSWER: Duration = Duration::from_secs(5);

/// A registered candidate.
#[derive(Debug, Serialize, ToSchema)]
pub struct CandidateDto {
    /// Its id, unique in the election.
    pub id: String,
    /// Where its application can be reached (free-form).
    pub address: String,
    /// Its labels.
    pub metadata: BTreeMap<String, String>,
    /// `follower` (cooling down or backing off), `candidate` (queued) or `leader`.
    pub state: String,
    /// Its fencing epoch while it leads.
    pub epoch: Option<i64>,
    /// Since when it is in this state (Unix milliseconds, its clock).
    pub since_unix_ms: u64,
    /// When its step-down cooldown ends (Unix milliseconds), while one runs.
    pub cooldown_until_unix_ms: Option<u64>,
    /// Its SDK version.
    pub version: String,
}

impl From<CandidateEntry> for CandidateDto {
    fn from(entry: CandidateEntry) -> CandidateDto {
        CandidateDto {
            state: match entry.state {
                CandidateState::Follower => "follower",
                CandidateState::Candidate => "candidate",
                CandidateState::Leader => "leader",
            }
            .to_string(),
            id: entry.id,
            address: entry.address,
            metadata: entry.metadata,
            epoch: entry.epoch,
            since_unix_ms: entry.since_unix_ms,
            cooldown_until_unix_ms: entry.cooldown_until_unix_ms,
            version: entry.version,
        }
    }
}

/// The registry of an election.
#[derive(Debug, Serialize, ToSchema)]
pub struct CandidatesDto {
    /// The registered candidates, ordered by id.
    pub candidates: Vec<CandidateDto>,
}

/// `GET /v1/elections/{name}/candidates`: the registered candidates.
#[utoipa::path(get, path = "/v1/elections/{name}/candidates", tag = "elections",
    params(("name" = String, Path, description = "election name")),
    responses((status = 200, description = "the registry", body = CandidatesDto)))]
pub async fn list(Caller(state): Caller, P(name): P<String>) -> Result<Json<CandidatesDto>, ApiError> {
    let entries = state.client.election(name).candidates().await?;
    Ok(Json(CandidatesDto {
        candidates: entries.into_iter().map(CandidateDto::from).collect(),
    }))
}

/// A registry change, as the `put` event carries it (`gone` carries `{"id": ..}`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CandidateEvent {
    /// The candidate's entry now.
    pub candidate: CandidateDto,
}

/// `GET /v1/elections/{name}/candidates/observe`: the registry as Server-Sent Events:
/// first `snapshot` (`{"candidates": [..]}`), then `put` (`{"candidate": ..}`) when a
/// candidate registers or changes state, and `gone` (`{"id": ..}`) when its entry goes.
#[utoipa::path(get, path = "/v1/elections/{name}/candidates/observe", tag = "elections",
    params(("name" = String, Path, description = "election name")),
    responses(
        (status = 200, description = "`text/event-stream` of `snapshot`, `put` and `gone` events", body = CandidateEvent, content_type = "text/event-stream"),
        (status = 503, description = "`draining` or `unavailable`", body = ErrorBody)))]
pub async fn observe(Caller(state): Caller, P(name): P<String>) -> Result<Response, ApiError> {
    if state.drain.is_draining() {
        return Err(ApiError::draining());
    }
    let mut changes = state.client.election(name).candidate_changes().await?;
    let initial: Vec<CandidateDto> = std::mem::take(&mut changes.initial)
        .into_iter()
        .map(CandidateDto::from)
        .collect();
    let snapshot = json_event("snapshot", &serde_json::json!({ "candidates": initial }));
    let rest = drained_events(&state, changes, |change| match change {
        Ok(CandidateChange::Put(entry)) => (
            json_event(
                "put",
                &serde_json::json!({ "candidate": CandidateDto::from(entry) }),
            ),
            false,
        ),
        Ok(CandidateChange::Gone(id)) => (json_event("gone", &serde_json::json!({ "id": id })), false),
        Err(error) => (error_event(error.into()), true),
    });
    let stream = futures::stream::once(async move { Ok(snapshot) }).chain(rest);
    Ok(sse_response(&state, stream))
}

fn json_event(name: &'static str, value: &serde_json::Value) -> SseEvent {
    SseEvent::default()
        .event(name)
        .json_data(value)
        .unwrap_or_else(|_| SseEvent::default().event(name).data("{}"))
}

/// Query of status and ping.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnswerQuery {
    /// How long to wait for the candidate's answer, in milliseconds (default 5000).
    pub timeout_ms: Option<u64>,
}

/// A candidate's own report.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusDto {
    /// Its entry as it is now.
    pub candidate: CandidateDto,
    /// The leader key it last observed.
    pub leader_key: Option<String>,
    /// The leader's epoch it last observed.
    pub leader_epoch: Option<i64>,
    /// Whether its client reaches the cluster.
    pub connected: bool,
    /// The round trip through the store, in milliseconds.
    pub answered_in_ms: f64,
}

/// `GET /v1/elections/{name}/candidates/{id}/status`: the candidate's status, answered
/// by the candidate itself through the store.
#[utoipa::path(get, path = "/v1/elections/{name}/candidates/{id}/status", tag = "elections",
    params(("name" = String, Path, description = "election name"), ("id" = String, Path, description = "candidate id"), AnswerQuery),
    responses(
        (status = 200, description = "its report", body = StatusDto),
        (status = 404, description = "`unknown_candidate`", body = ErrorBody),
        (status = 504, description = "`no_answer`: paused, cut off or gone", body = ErrorBody)))]
pub async fn status(
    Caller(state): Caller,
    P((name, id)): P<(String, String)>,
    Q(query): Q<AnswerQuery>,
) -> Result<Json<StatusDto>, ApiError> {
    let timeout = poll_timeout(&state, query.timeout_ms, DEFAULT_ANSWER);
    let asked = std::time::Instant::now();
    let report = state.client.election(name).status_of(&id, timeout).await?;
    Ok(Json(StatusDto {
        candidate: report.entry.into(),
        leader_key: report.leader_key,
        leader_epoch: report.leader_epoch,
        connected: report.connected,
        answered_in_ms: asked.elapsed().as_secs_f64() * 1000.0,
    }))
}

/// Answer of ping.
#[derive(Debug, Serialize, ToSchema)]
pub struct PongDto {
    /// The candidate.
    pub id: String,
    /// The round trip through the store, in milliseconds.
    pub rtt_ms: f64,
}

/// `POST /v1/elections/{name}/candidates/{id}/ping`: a request the candidate answers at
/// once; the answer's `rtt_ms` is the round trip through the store.
#[utoipa::path(post, path = "/v1/elections/{name}/candidates/{id}/ping", tag = "elections",
    params(("name" = String, Path, description = "election name"), ("id" = String, Path, description = "candidate id"), AnswerQuery),
    responses(
        (status = 200, description = "answered", body = PongDto),
        (status = 404, description = "`unknown_candidate`", body = ErrorBody),
        (status = 504, description = "`no_answer`: paused, cut off or gone", body = ErrorBody)))]
pub async fn ping(
    Caller(state): Caller,
    P((name, id)): P<(String, String)>,
    Q(query): Q<AnswerQuery>,
) -> Result<Json<PongDto>, ApiError> {
    let timeout = poll_timeout(&state, query.timeout_ms, DEFAULT_ANSWER);
    let rtt = state.client.election(name).ping(&id, timeout).await?;
    Ok(Json(PongDto {
        id,
        rtt_ms: rtt.as_secs_f64() * 1000.0,
    }))
}

/// Body of `POST /v1/elections/{name}/stepdown` (every field optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepdownBody {
    /// The candidate that must step down (it must lead); default: whoever leads.
    pub candidate: Option<String>,
    /// How long it stays out, in milliseconds (default: its own configured cooldown).
    pub cooldown_ms: Option<u64>,
    /// How long to wait for its answer and the next leader, in milliseconds (default 10000).
    pub timeout_ms: Option<u64>,
}

/// The leader after a step-down.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewLeaderDto {
    /// The leader key.
    pub key: String,
    /// Its fencing epoch.
    pub epoch: i64,
    /// Its registry id, when found.
    pub candidate: Option<String>,
}

/// Answer of step-down.
#[derive(Debug, Serialize, ToSchema)]
pub struct SteppedDownDto {
    /// The candidate that stepped down.
    pub candidate: String,
    /// The epoch it gave up.
    pub epoch: i64,
    /// The next leader.
    pub new_leader: NewLeaderDto,
    /// From the request to the next leader, in milliseconds.
    pub elapsed_ms: f64,
}

/// `POST /v1/elections/{name}/stepdown`: asks the leader (or `candidate`) to step down,
/// honouring its cooldown, and answers once the next leader is elected.
#[utoipa::path(post, path = "/v1/elections/{name}/stepdown", tag = "elections",
    params(("name" = String, Path, description = "election name")),
    request_body = StepdownBody,
    responses(
        (status = 200, description = "leadership moved", body = SteppedDownDto),
        (status = 404, description = "`unknown_candidate` or `no_leader`", body = ErrorBody),
        (status = 409, description = "`refused`: the candidate does not lead", body = ErrorBody),
        (status = 504, description = "`no_answer` (the holder did not react) or `no_successor`", body = ErrorBody)))]
pub async fn stepdown(
    Caller(state): Caller,
    P(name): P<String>,
    JsonBody(body): JsonBody<StepdownBody>,
) -> Result<Json<SteppedDownDto>, ApiError> {
    let timeout = poll_timeout(&state, body.timeout_ms, Duration::from_secs(10));
    let outcome = state
        .client
        .election(name)
        .request_step_down(
            body.candidate.as_deref(),
            body.cooldown_ms.map(Duration::from_millis),
            timeout,
        )
        .await?;
    let Some(leader) = outcome.new_leader else {
        return Err(ApiError::new(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            "no_successor",
            format!(
                "{} stepped down from epoch {}, but no other leader was elected within {timeout:?}",
                outcome.candidate, outcome.epoch
            ),
        ));
    };
    Ok(Json(SteppedDownDto {
        candidate: outcome.candidate,
        epoch: outcome.epoch.0,
        new_leader: NewLeaderDto {
            key: leader.key,
            epoch: leader.epoch.0,
            candidate: outcome.new_leader_candidate,
        },
        elapsed_ms: outcome.elapsed.as_secs_f64() * 1000.0,
    }))
}
