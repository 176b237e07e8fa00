//! Members over HTTP: a registration bound to a lease the HTTP client keeps alive with
//! `POST /v1/leases/{id}/keepalive` (the gateway holds no session), a graceful leave (a
//! long poll), drain and resume, and the reports that move hand-overs on.
//!
//! An HTTP member runs no hooks: it follows the map (`GET .../map` or `.../watch`) and
//! reports `ready` for each partition where its replica is `syncing` once its data is in
//! place, and `released` where it is `releasing` once it let go, each at the epoch the map
//! shows for that partition.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use axum::Json;
use conclave_client::group::{JoinOptions, PartitionId};
use conclave_client::{Epoch, LeaseId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::group_of;
use super::MemberDto;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, GroupCall};
use crate::extract::{JsonBody, P, Q};
use crate::v1::de_lease;
use crate::v1::election::{poll_timeout, required_lease};

/// Default wait of a graceful leave.
pub const DEFAULT_LEAVE: Duration = Duration::from_secs(30);

/// Body of `POST /v1/groups/{name}/members`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterBody {
    /// The member's id, unique in the group while its session lives: 1 to 128 of
    /// `A-Z a-z 0-9 . _ - : @`.
    pub member_id: String,
    /// The session lease (decimal string), granted with the group's `session_ttl_seconds`
    /// and kept alive by the caller: the member leaves when it ends.
    #[serde(deserialize_with = "de_lease")]
    #[schema(value_type = String)]
    pub lease: Option<String>,
    /// Labels; the group's `zone_label` places replicas apart.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Relative capacity (default 1; 0 holds nothing).
    pub weight: Option<u32>,
    /// Where it can be reached.
    #[serde(default)]
    pub advertise_address: String,
    /// Its HTTP endpoint (what `/partitions/{partition}/leader` and `/route` hand out).
    #[serde(default)]
    pub http_endpoint: String,
    /// Its gRPC endpoint.
    #[serde(default)]
    pub grpc_endpoint: String,
    /// Anything else to publish.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

fn member_id(id: &str) -> Result<(), ApiError> {
    conclave_contract::groups::check_member_id(id).map_err(ApiError::invalid)
}

/// `POST /v1/groups/{name}/members`: registers a member under a lease (again with the
/// same lease: updates the registration, keeping its stage).
#[utoipa::path(post, operation_id = "group_register", path = "/v1/groups/{name}/members", tag = "groups",
    params(("name" = String, Path, description = "group name")),
    request_body = RegisterBody,
    responses(
        (status = 200, description = "registered", body = MemberDto),
        (status = 400, description = "`invalid_argument`: a bad id, lease or label", body = ErrorBody),
        (status = 404, description = "`not_found` (the group) or `lease_not_found`", body = ErrorBody),
        (status = 409, description = "`member_taken`: another live session holds the id", body = ErrorBody),
        (status = 503, description = "`busy`: the id's previous session is still being cleared — retry after `Retry-After`", body = ErrorBody)))]
pub async fn register(
    Caller(state): Caller,
    P(name): P<String>,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Result<Json<MemberDto>, ApiError> {
    let group = group_of(&state, &name)?;
    member_id(&body.member_id)?;
    let lease = required_lease(body.lease.as_deref())?;
    let options = JoinOptions {
        member_id: body.member_id,
        labels: body.labels,
        weight: body.weight,
        advertise_address: body.advertise_address,
        http_endpoint: body.http_endpoint,
        grpc_endpoint: body.grpc_endpoint,
        metadata: body.metadata,
    };
    match group.register(&options, LeaseId(lease)).await {
        Ok(member) => Ok(Json(MemberDto::from(&member))),
        Err(error) => {
            let api = ApiError::group(GroupCall::Join, error);
            // NotFound names the group or the lease; which one is a question for the
            // cluster, not for the message's text: if the group is there, the lease is not.
            if api.code == "not_found" && group.get().await.is_ok() {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "lease_not_found",
                    format!("lease {lease} not found (it expired or was revoked): grant a new one with POST /v1/leases and register again"),
                ));
            }
            Err(api)
        }
    }
}

/// Query of `DELETE /v1/groups/{name}/members/{member}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LeaveQuery {
    /// How long to wait for the hand-over, ms (default 30000, at most
    /// `--max-poll-timeout`).
    pub timeout_ms: Option<u64>,
}

/// Answer of a graceful leave.
#[derive(Debug, Serialize, ToSchema)]
pub struct Left {
    /// Always true (a hand-over that did not finish is 504 `timeout`).
    pub left: bool,
}

/// `DELETE /v1/groups/{name}/members/{member}?timeout_ms=`: graceful leave — the member
/// takes no more partitions and hands everything over (it must keep reporting
/// meanwhile); answers once it holds nothing and is deregistered.
#[utoipa::path(delete, operation_id = "group_leave", path = "/v1/groups/{name}/members/{member}", tag = "groups",
    params(("name" = String, Path, description = "group name"),
        ("member" = String, Path, description = "member id"), LeaveQuery),
    responses(
        (status = 200, description = "handed over and deregistered", body = Left),
        (status = 404, description = "`not_found`: no such group, or the member is not registered", body = ErrorBody),
        (status = 503, description = "`draining`: this gateway is shutting down; the member stays leaving — leave again (through another gateway)", body = ErrorBody),
        (status = 504, description = "`timeout`: the hand-over did not finish; the member stays registered and leaving", body = ErrorBody)))]
pub async fn leave(
    Caller(state): Caller,
    P((name, member)): P<(String, String)>,
    Q(query): Q<LeaveQuery>,
) -> Result<Json<Left>, ApiError> {
    let group = group_of(&state, &name)?;
    member_id(&member)?;
    if state.drain.is_draining() {
        return Err(ApiError::draining());
    }
    let timeout = poll_timeout(&state, query.timeout_ms, DEFAULT_LEAVE);
    // Dropping the call (the gateway closes, the client goes away) cancels only the
    // wait: the member stays marked leaving, and a later leave picks it up.
    tokio::select! {
        biased;
        () = state.drain.closed() => Err(ApiError::draining()),
        left = group.leave_member(&member, timeout) => match left {
            Ok(()) => Ok(Json(Left { left: true })),
            Err(error) => Err(ApiError::group(GroupCall::Leave, error)),
        },
    }
}

/// Body of `POST /v1/groups/{name}/members/{member}/drain`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DrainBody {
    /// Take partitions again instead of draining.
    #[serde(default)]
    pub resume: bool,
}

/// What a member still holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct Holdings {
    /// Replicas, any stage.
    pub replicas: u32,
    /// Leaderships.
    pub leaderships: u32,
}

/// `POST /v1/groups/{name}/members/{member}/drain`: moves the member's replicas and
/// leaderships away while it stays registered (`{"resume": true}`: it takes partitions
/// again). Answers at once with what it still holds; poll the map for progress.
#[utoipa::path(post, operation_id = "group_drain", path = "/v1/groups/{name}/members/{member}/drain", tag = "groups",
    params(("name" = String, Path, description = "group name"),
        ("member" = String, Path, description = "member id")),
    request_body = DrainBody,
    responses(
        (status = 200, description = "draining (or resumed); what it still holds", body = Holdings),
        (status = 404, description = "`not_found`", body = ErrorBody)))]
pub async fn drain(
    Caller(state): Caller,
    P((name, member)): P<(String, String)>,
    JsonBody(body): JsonBody<DrainBody>,
) -> Result<Json<Holdings>, ApiError> {
    let group = group_of(&state, &name)?;
    member_id(&member)?;
    let (replicas, leaderships) = group
        .drain(&member, body.resume)
        .await
        .map_err(|e| ApiError::group(GroupCall::Member, e))?;
    Ok(Json(Holdings {
        replicas,
        leaderships,
    }))
}

/// What a report says.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    /// The member's syncing replica has its data in place.
    Ready,
    /// The member's releasing replica let go.
    Released,
}

/// Body of `POST /v1/groups/{name}/partitions/{partition}/report`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReportBody {
    /// The reporting member.
    pub member_id: String,
    /// `ready` or `released`.
    pub kind: ReportKind,
    /// The partition's epoch as the member saw it in the map.
    pub epoch: i64,
}

/// Answer of a report.
#[derive(Debug, Serialize, ToSchema)]
pub struct Reported {
    /// Always true (also for a report made before: reports are idempotent).
    pub reported: bool,
}

/// `POST /v1/groups/{name}/partitions/{partition}/report`: a member reports a partition
/// ready (its syncing replica has the data) or released (its releasing replica let go),
/// at the epoch it saw.
#[utoipa::path(post, operation_id = "group_report", path = "/v1/groups/{name}/partitions/{partition}/report", tag = "groups",
    params(("name" = String, Path, description = "group name"),
        ("partition" = u32, Path, description = "partition id")),
    request_body = ReportBody,
    responses(
        (status = 200, description = "recorded", body = Reported),
        (status = 400, description = "`invalid_argument`: a partition out of range", body = ErrorBody),
        (status = 404, description = "`not_found`: no such group, or the member is not registered", body = ErrorBody),
        (status = 409, description = "`stale_epoch` (the partition moved on: `current_epoch` says to what; re-read the map) or `failed_precondition` (the member holds no replica in that stage)", body = ErrorBody)))]
pub async fn report(
    Caller(state): Caller,
    P((name, partition)): P<(String, u32)>,
    JsonBody(body): JsonBody<ReportBody>,
) -> Result<Json<Reported>, ApiError> {
    let group = group_of(&state, &name)?;
    member_id(&body.member_id)?;
    let ready = matches!(body.kind, ReportKind::Ready);
    group
        .report(&body.member_id, PartitionId(partition), ready, Epoch(body.epoch))
        .await
        .map_err(|e| ApiError::group(GroupCall::Member, e))?;
    Ok(Json(Reported { reported: true }))
}
