//! Elections and locks with fencing epochs, for clients that keep a lease alive
//! themselves (see [`crate::recipe`] for the queue and its key layout).
//!
//! Campaign and lock are long polls bounded by the body's `timeout_ms` (default 10 s,
//! at most `--max-poll-timeout`): they answer when the caller leads (holds the lock) or
//! with 409 `not_elected` / `locked` when the time is up — the caller is then withdrawn
//! from the queue, so it must campaign again. The `epoch` of the answer is the fencing
//! token: compare it (`create_revision` of `key`) in a txn to make writes apply only
//! while the leadership or lock is held.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::sse::Event as SseEvent;
use axum::response::Response;
use axum::Json;
use conclave_client::LeaderInfo;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::watch::{drained_events, error_event, sse_response};
use super::{de_lease, parse_lease, EncodingQuery};
use crate::auth::Caller;
use crate::encoding::Encoding;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, P, Q};
use crate::recipe::{self, WaitError};
use crate::AppState;

/// Default long-poll timeout of campaign and lock.
pub const DEFAULT_POLL: Duration = Duration::from_secs(10);

/// Body of `POST /v1/elections/{name}/campaign`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CampaignBody {
    /// The lease the leadership is held under (kept alive by the caller).
    #[serde(deserialize_with = "de_lease")]
    #[schema(value_type = String)]
    pub lease: Option<String>,
    /// The value to proclaim (UTF-8, or base64 with `?encoding=base64`).
    #[serde(default)]
    pub value: String,
    /// How long to wait for leadership, in milliseconds (default 10000).
    pub timeout_ms: Option<u64>,
}

/// Leadership or a lock: its key and fencing epoch.
#[derive(Debug, Serialize, ToSchema)]
pub struct Holder {
    /// The election or lock name.
    pub name: String,
    /// The key held (`<name>/<lease hex>`); pass it to resign or unlock.
    pub key: String,
    /// The fencing epoch: the key's create revision, higher for every later holder.
    pub epoch: i64,
    /// The lease (decimal string).
    pub lease: String,
}

/// The current leader of an election.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaderDto {
    /// The leader key.
    pub key: String,
    /// The value the leader proclaimed.
    pub value: String,
    /// The leader's fencing epoch.
    pub epoch: i64,
    /// The leader's lease (decimal string).
    pub lease: Option<String>,
}

/// Body of `POST /v1/elections/{name}/resign`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResignBody {
    /// The leader key from the campaign's answer.
    pub key: String,
    /// The epoch from the campaign's answer.
    pub epoch: i64,
}

/// Answer of resign and unlock.
#[derive(Debug, Serialize, ToSchema)]
pub struct Released {
    /// Always true (a key no longer held is 409).
    pub released: bool,
}

/// A long poll's wait: `timeout_ms` (default `default`), at most `--max-poll-timeout`.
pub(crate) fn poll_timeout(state: &AppState, timeout_ms: Option<u64>, default: Duration) -> Duration {
    timeout_ms
        .map_or(default, Duration::from_millis)
        .min(state.config.max_poll_timeout())
}

/// A lease a request must name (not 0).
pub(crate) fn required_lease(lease: Option<&str>) -> Result<i64, ApiError> {
    let lease = parse_lease(
        lease.ok_or_else(|| ApiError::invalid("lease is required (grant one with POST /v1/leases)"))?,
    )?;
    if lease == 0 {
        return Err(ApiError::invalid("lease 0 is not a lease"));
    }
    Ok(lease)
}

fn check_key(state: &AppState, name: &str, key: &str) -> Result<(), ApiError> {
    if state.client.queue(name).owns(key) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "key {key:?} does not belong to {name:?}"
        )))
    }
}

/// Queues under `lease` and waits; maps the outcomes.
async fn hold(
    state: &AppState,
    name: &str,
    lease: i64,
    value: &[u8],
    timeout: Duration,
    busy_code: &'static str,
) -> Result<Holder, ApiError> {
    if state.drain.is_draining() {
        return Err(ApiError::draining());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    // The wait runs in its own task so that it can withdraw the contender when this
    // request goes away (the client disconnected and axum dropped the handler): `alive`
    // is dropped with the handler, which cancels the wait. Otherwise an abandoned
    // contender would stay queued — and later lead without knowing — for as long as its
    // lease is kept alive.
    let (alive, gone) = tokio::sync::oneshot::channel::<()>();
    let task = {
        let state = state.clone();
        let name = name.to_string();
        let value = value.to_vec();
        tokio::spawn(async move {
            let cancel = async {
                tokio::select! {
                    () = state.drain.closed() => {}
                    _ = gone => {}
                }
            };
            recipe::acquire(&state.client, &name, lease, &value, deadline, cancel).await
        })
    };
    let outcome = task
        .await
        .map_err(|e| ApiError::internal(format!("the wait task failed: {e}")))?;
    drop(alive);
    match outcome {
        Ok(ticket) => Ok(Holder {
            name: name.to_string(),
            key: ticket.key,
            epoch: ticket.create_revision,
            lease: lease.to_string(),
        }),
        Err(WaitError::Timeout(after)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            busy_code,
            format!("{name:?} is held by another contender; not first within {after:?} (withdrawn from the queue: try again)"),
        )),
        Err(WaitError::KeyLost(key)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "lease_not_found",
            format!("{key:?} was deleted while waiting: the lease expired or was revoked"),
        )),
        Err(WaitError::Cancelled) => Err(ApiError::draining()),
        Err(WaitError::Client(error)) => Err(error.into()),
        Err(stranded @ WaitError::Stranded { .. }) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "outcome_unknown",
            format!("{stranded}: resign or unlock it, or revoke the lease"),
        )),
    }
}

/// `POST /v1/elections/{name}/campaign`: waits (up to `timeout_ms`) to lead.
#[utoipa::path(post, path = "/v1/elections/{name}/campaign", tag = "elections",
    params(("name" = String, Path, description = "election name"), EncodingQuery),
    request_body = CampaignBody,
    responses(
        (status = 200, description = "elected", body = Holder),
        (status = 404, description = "`lease_not_found`", body = ErrorBody),
        (status = 409, description = "`not_elected`: another leader held on for the whole timeout", body = ErrorBody)))]
pub async fn campaign(
    Caller(state): Caller,
    P(name): P<String>,
    Q(query): Q<EncodingQuery>,
    JsonBody(body): JsonBody<CampaignBody>,
) -> Result<Json<Holder>, ApiError> {
    let encoding = query.encoding.unwrap_or_default();
    let lease = required_lease(body.lease.as_deref())?;
    let value = encoding.decode("value", &body.value)?;
    let timeout = poll_timeout(&state, body.timeout_ms, DEFAULT_POLL);
    hold(&state, &name, lease, &value, timeout, "not_elected")
        .await
        .map(Json)
}

fn leader_dto(leader: &LeaderInfo, encoding: Encoding) -> Result<LeaderDto, ApiError> {
    Ok(LeaderDto {
        key: leader.key.clone(),
        value: encoding.encode("the leader's value", &leader.value)?,
        epoch: leader.epoch.0,
        lease: leader.lease.map(|l| l.0.to_string()),
    })
}

/// `GET /v1/elections/{name}/leader`: the current leader.
#[utoipa::path(get, path = "/v1/elections/{name}/leader", tag = "elections",
    params(("name" = String, Path, description = "election name"), EncodingQuery),
    responses(
        (status = 200, description = "the leader", body = LeaderDto),
        (status = 404, description = "`no_leader`", body = ErrorBody)))]
pub async fn leader(
    Caller(state): Caller,
    P(name): P<String>,
    Q(query): Q<EncodingQuery>,
) -> Result<Json<LeaderDto>, ApiError> {
    let encoding = query.encoding.unwrap_or_default();
    match state.client.election(name.clone()).leader().await? {
        Some(leader) => leader_dto(&leader, encoding).map(Json),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_leader",
            format!("election {name:?} has no leader"),
        )),
    }
}

/// `GET /v1/elections/{name}/observe`: leader changes as Server-Sent Events
/// (`event: leader`, data `{"leader": LeaderDto | null}`), the current leader first.
#[utoipa::path(get, path = "/v1/elections/{name}/observe", tag = "elections",
    params(("name" = String, Path, description = "election name"), EncodingQuery),
    responses(
        (status = 200, description = "`text/event-stream` of `leader` events", body = LeaderDto, content_type = "text/event-stream"),
        (status = 503, description = "`draining` or `unavailable`", body = ErrorBody)))]
pub async fn observe(
    Caller(state): Caller,
    P(name): P<String>,
    Q(query): Q<EncodingQuery>,
) -> Result<Response, ApiError> {
    if state.drain.is_draining() {
        return Err(ApiError::draining());
    }
    let encoding = query.encoding.unwrap_or_default();
    let leaders = state.client.election(name).observe().await?;
    let stream = drained_events(&state, leaders, move |next| match next {
        Ok(leader) => match leader.as_ref().map(|l| leader_dto(l, encoding)).transpose() {
            Ok(dto) => (
                SseEvent::default()
                    .event("leader")
                    .json_data(serde_json::json!({ "leader": dto }))
                    .unwrap_or_else(|_| SseEvent::default().event("leader").data("{}")),
                false,
            ),
            Err(error) => (error_event(error), true),
        },
        Err(error) => (error_event(error.into()), true),
    });
    Ok(sse_response(&state, stream))
}

/// `POST /v1/elections/{name}/resign`: gives up leadership (or a place in the queue).
#[utoipa::path(post, path = "/v1/elections/{name}/resign", tag = "elections",
    params(("name" = String, Path, description = "election name")),
    request_body = ResignBody,
    responses(
        (status = 200, description = "resigned", body = Released),
        (status = 409, description = "`not_leader`: that key and epoch are no longer held", body = ErrorBody)))]
pub async fn resign(
    Caller(state): Caller,
    P(name): P<String>,
    JsonBody(body): JsonBody<ResignBody>,
) -> Result<Json<Released>, ApiError> {
    check_key(&state, &name, &body.key)?;
    if recipe::release(&state.client, &name, &body.key, body.epoch).await? {
        Ok(Json(Released { released: true }))
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_leader",
            format!("{:?} with epoch {} is not held", body.key, body.epoch),
        ))
    }
}

/// Body of `POST /v1/locks/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LockBody {
    /// The lease the lock is held under (kept alive by the caller).
    #[serde(deserialize_with = "de_lease")]
    #[schema(value_type = String)]
    pub lease: Option<String>,
    /// How long to wait for the lock, in milliseconds (default 10000).
    pub timeout_ms: Option<u64>,
}

/// `POST /v1/locks/{name}`: waits (up to `timeout_ms`) for the lock.
#[utoipa::path(post, path = "/v1/locks/{name}", tag = "locks",
    params(("name" = String, Path, description = "lock name")),
    request_body = LockBody,
    responses(
        (status = 200, description = "locked", body = Holder),
        (status = 404, description = "`lease_not_found`", body = ErrorBody),
        (status = 409, description = "`locked`: held by another owner for the whole timeout", body = ErrorBody)))]
pub async fn lock(
    Caller(state): Caller,
    P(name): P<String>,
    JsonBody(body): JsonBody<LockBody>,
) -> Result<Json<Holder>, ApiError> {
    let lease = required_lease(body.lease.as_deref())?;
    let timeout = poll_timeout(&state, body.timeout_ms, DEFAULT_POLL);
    hold(&state, &name, lease, b"", timeout, "locked").await.map(Json)
}

/// Query of `DELETE /v1/locks/{name}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnlockQuery {
    /// The lock key from the lock's answer.
    pub key: String,
    /// The epoch from the lock's answer.
    pub epoch: i64,
}

/// `DELETE /v1/locks/{name}?key=&epoch=`: releases the lock.
#[utoipa::path(delete, path = "/v1/locks/{name}", tag = "locks",
    params(("name" = String, Path, description = "lock name"), UnlockQuery),
    responses(
        (status = 200, description = "unlocked", body = Released),
        (status = 409, description = "`not_holder`: that key and epoch are no longer held", body = ErrorBody)))]
pub async fn unlock(
    Caller(state): Caller,
    P(name): P<String>,
    Q(query): Q<UnlockQuery>,
) -> Result<Json<Released>, ApiError> {
    check_key(&state, &name, &query.key)?;
    if recipe::release(&state.client, &name, &query.key, query.epoch).await? {
        Ok(Json(Released { released: true }))
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_holder",
            format!("{:?} with epoch {} is not held", query.key, query.epoch),
        ))
    }
}
