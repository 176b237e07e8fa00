//! Leases for HTTP clients: grant, keep alive (one renewal per call), revoke, inspect.
//!
//! The gateway keeps no lease alive by itself: a client that holds keys, leadership or
//! a lock under a lease calls `POST /v1/leases/{id}/keepalive` well within the TTL
//! (every third of it, say).

use axum::http::StatusCode;
use axum::Json;
use conclave_client::{Idempotency, LeaseId};
use conclave_proto::etcdserverpb::lease_client::LeaseClient;
use conclave_proto::etcdserverpb::LeaseGrantRequest;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{de_lease, parse_lease, EncodingQuery};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, P, Q};

/// Body of `POST /v1/leases`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct GrantBody {
    /// Time to live in seconds.
    pub ttl: i64,
    /// Ask for this ID (decimal string or number); default: the gateway picks one.
    #[serde(default, deserialize_with = "de_lease")]
    #[schema(value_type = Option<String>)]
    pub id: Option<String>,
}

/// A granted or renewed lease.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseDto {
    /// The lease ID (decimal string).
    pub id: String,
    /// Seconds left.
    pub ttl: i64,
}

/// A lease as the cluster sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseInfoDto {
    /// The lease ID (decimal string).
    pub id: String,
    /// Seconds left.
    pub ttl: i64,
    /// The TTL it was granted with.
    pub granted_ttl: i64,
    /// Keys attached to it (in the requested encoding).
    pub keys: Vec<String>,
}

/// Every live lease.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseList {
    /// Lease IDs (decimal strings).
    pub leases: Vec<String>,
}

/// A revocation's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// Always true (a missing lease is 404).
    pub revoked: bool,
}

/// `POST /v1/leases`: grants a lease.
#[utoipa::path(post, path = "/v1/leases", tag = "leases",
    request_body = GrantBody,
    responses(
        (status = 201, description = "granted", body = LeaseDto),
        (status = 400, description = "`invalid_argument`", body = ErrorBody),
        (status = 409, description = "`already_exists`: the asked-for ID is taken", body = ErrorBody)))]
pub async fn grant(
    Caller(state): Caller,
    JsonBody(body): JsonBody<GrantBody>,
) -> Result<(StatusCode, Json<LeaseDto>), ApiError> {
    if body.ttl <= 0 {
        return Err(ApiError::invalid("ttl must be a positive number of seconds"));
    }
    let (id, chosen_here) = match body.id.as_deref() {
        Some(id) => (parse_lease(id)?, false),
        // Chosen here, so a retried grant that did apply is recognised.
        None => (conclave_contract::lease_id::fresh(), true),
    };
    let ttl = body.ttl;
    let granted = state
        .client
        .raw_call(Idempotency::Idempotent, |channel| async move {
            match LeaseClient::new(channel)
                .lease_grant(LeaseGrantRequest { ttl, id })
                .await
            {
                Ok(response) => Ok(response.into_inner().ttl),
                // Our own earlier attempt applied (an ID we just chose is ours alone).
                Err(status) if chosen_here && status.message() == conclave_contract::errors::LEASE_EXISTS => {
                    Ok(ttl)
                }
                Err(status) => Err(status),
            }
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(LeaseDto {
            id: id.to_string(),
            ttl: granted,
        }),
    ))
}

/// `GET /v1/leases`: every live lease.
#[utoipa::path(get, path = "/v1/leases", tag = "leases",
    responses((status = 200, description = "lease IDs", body = LeaseList)))]
pub async fn list(Caller(state): Caller) -> Result<Json<LeaseList>, ApiError> {
    let leases = state.client.leases().await?;
    Ok(Json(LeaseList {
        leases: leases.into_iter().map(|l| l.0.to_string()).collect(),
    }))
}

fn not_found(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "lease_not_found",
        format!("lease {id} not found (it expired or was revoked)"),
    )
}

/// `POST /v1/leases/{id}/keepalive`: renews a lease once.
#[utoipa::path(post, path = "/v1/leases/{id}/keepalive", tag = "leases",
    params(("id" = String, Path, description = "lease ID (decimal, or hex with 0x)")),
    responses(
        (status = 200, description = "renewed", body = LeaseDto),
        (status = 404, description = "`lease_not_found`", body = ErrorBody)))]
pub async fn keepalive(Caller(state): Caller, P(id): P<String>) -> Result<Json<LeaseDto>, ApiError> {
    let id = parse_lease(&id)?;
    match state.client.keep_alive_once(LeaseId(id)).await {
        Ok(ttl) => Ok(Json(LeaseDto {
            id: id.to_string(),
            ttl,
        })),
        Err(conclave_client::Error::LeaseNotFound) => Err(not_found(id)),
        Err(error) => Err(error.into()),
    }
}

/// `DELETE /v1/leases/{id}`: revokes a lease, deleting its keys.
#[utoipa::path(delete, path = "/v1/leases/{id}", tag = "leases",
    params(("id" = String, Path, description = "lease ID")),
    responses(
        (status = 200, description = "revoked", body = Revoked),
        (status = 404, description = "`lease_not_found`", body = ErrorBody)))]
pub async fn revoke(Caller(state): Caller, P(id): P<String>) -> Result<Json<Revoked>, ApiError> {
    let id = parse_lease(&id)?;
    match state.client.revoke_lease(LeaseId(id)).await {
        Ok(()) => Ok(Json(Revoked { revoked: true })),
        Err(conclave_client::Error::LeaseNotFound) => Err(not_found(id)),
        Err(error) => Err(error.into()),
    }
}

/// Query of `GET /v1/leases/{id}`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InfoQuery {
    /// `utf8` (default) or `base64`, for the keys.
    pub encoding: Option<crate::encoding::Encoding>,
}

/// `GET /v1/leases/{id}`: TTL left, granted TTL, attached keys.
#[utoipa::path(get, path = "/v1/leases/{id}", tag = "leases",
    params(("id" = String, Path, description = "lease ID"), EncodingQuery),
    responses(
        (status = 200, description = "the lease", body = LeaseInfoDto),
        (status = 404, description = "`lease_not_found`", body = ErrorBody)))]
pub async fn get(
    Caller(state): Caller,
    P(id): P<String>,
    Q(query): Q<InfoQuery>,
) -> Result<Json<LeaseInfoDto>, ApiError> {
    let id = parse_lease(&id)?;
    let encoding = query.encoding.unwrap_or_default();
    let info = match state.client.lease_time_to_live(LeaseId(id), true).await {
        Ok(info) => info,
        Err(conclave_client::Error::LeaseNotFound) => return Err(not_found(id)),
        Err(error) => return Err(error.into()),
    };
    if info.ttl < 0 {
        return Err(not_found(id));
    }
    Ok(Json(LeaseInfoDto {
        id: id.to_string(),
        ttl: info.ttl,
        granted_ttl: info.granted_ttl,
        keys: info
            .keys
            .iter()
            .map(|k| encoding.encode("key", k))
            .collect::<Result<_, _>>()?,
    }))
}
