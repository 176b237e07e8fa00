//! Reading a group's placement: the whole map, where one key goes, one partition's
//! leader (for load balancers), and the latest generations.

use axum::http::StatusCode;
use axum::Json;
use conclave_client::group::PartitionId;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{failed, group_of, MapDto, MemberDto};
use crate::auth::Caller;
use crate::encoding::Encoding;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{P, Q};

/// Most history entries one request may ask for (the cluster keeps 1000 generations).
pub const MAX_HISTORY: u32 = 1000;

/// `GET /v1/groups/{name}/map`: every partition's replicas, leader and epoch, and the
/// members (a linearizable read).
#[utoipa::path(get, operation_id = "group_map", path = "/v1/groups/{name}/map", tag = "groups",
    params(("name" = String, Path, description = "group name")),
    responses(
        (status = 200, description = "the map", body = MapDto),
        (status = 404, description = "`not_found`", body = ErrorBody)))]
pub async fn map(Caller(state): Caller, P(name): P<String>) -> Result<Json<MapDto>, ApiError> {
    let map = group_of(&state, &name)?.map().await.map_err(failed)?;
    Ok(Json(MapDto::from(&map)))
}

/// Query of `GET /v1/groups/{name}/route`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RouteQuery {
    /// The key (UTF-8, or base64 with `encoding=base64`).
    pub key: String,
    /// `utf8` (default) or `base64`.
    pub encoding: Option<Encoding>,
}

/// Where a key goes.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteDto {
    /// The partition owning the key (the documented routing hash of the key, mod P).
    pub partition: u32,
    /// Its leader's member id, or null.
    pub leader: Option<String>,
    /// The leader's registration (its endpoints), or null.
    pub leader_member: Option<MemberDto>,
    /// The partition's epoch.
    pub epoch: i64,
    /// The members holding a replica (any stage).
    pub replicas: Vec<String>,
    /// The map generation this was read at.
    pub generation: u64,
}

/// `GET /v1/groups/{name}/route?key=`: the partition owning a key, its leader (with
/// endpoints), epoch and replicas.
#[utoipa::path(get, operation_id = "group_route", path = "/v1/groups/{name}/route", tag = "groups",
    params(("name" = String, Path, description = "group name"), RouteQuery),
    responses(
        (status = 200, description = "the route", body = RouteDto),
        (status = 400, description = "`invalid_argument`: no key, or bad base64", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody)))]
pub async fn route(
    Caller(state): Caller,
    P(name): P<String>,
    Q(query): Q<RouteQuery>,
) -> Result<Json<RouteDto>, ApiError> {
    let group = group_of(&state, &name)?;
    let key = query.encoding.unwrap_or_default().decode("key", &query.key)?;
    let route = group.route(key).await.map_err(failed)?;
    Ok(Json(RouteDto {
        partition: route.partition.0,
        leader: route.leader.as_ref().map(|m| m.id.0.clone()),
        leader_member: route.leader.as_ref().map(MemberDto::from),
        epoch: route.epoch.0,
        replicas: route.replicas.into_iter().map(|m| m.0).collect(),
        generation: route.generation,
    }))
}

/// A partition's leader, for load balancers and routing proxies.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartitionLeaderDto {
    /// The leader's member id.
    pub member: String,
    /// The leadership's fencing epoch.
    pub epoch: i64,
    /// Where it said it can be reached.
    pub advertise_address: String,
    /// Its HTTP endpoint.
    pub http_endpoint: String,
    /// Its gRPC endpoint.
    pub grpc_endpoint: String,
    /// The map generation this was read at.
    pub generation: u64,
}

/// `GET /v1/groups/{name}/partitions/{partition}/leader`: 200 with the leader's
/// endpoints while the partition has a leader, 503 `no_leader` while it has none (or
/// its leader's registration is already gone) — a health check a load balancer can use
/// to send a partition's traffic to its leader only.
#[utoipa::path(get, operation_id = "group_partition_leader", path = "/v1/groups/{name}/partitions/{partition}/leader", tag = "groups",
    params(("name" = String, Path, description = "group name"),
        ("partition" = u32, Path, description = "partition id")),
    responses(
        (status = 200, description = "the leader", body = PartitionLeaderDto),
        (status = 400, description = "`invalid_argument`: partition out of range", body = ErrorBody),
        (status = 404, description = "`not_found`: no such group", body = ErrorBody),
        (status = 503, description = "`no_leader`", body = ErrorBody)))]
pub async fn partition_leader(
    Caller(state): Caller,
    P((name, partition)): P<(String, u32)>,
) -> Result<Json<PartitionLeaderDto>, ApiError> {
    let map = group_of(&state, &name)?.map().await.map_err(failed)?;
    let id = PartitionId(partition);
    let Some(info) = map.partition(id) else {
        return Err(ApiError::invalid(format!(
            "partition {partition} is out of range: group {name:?} has partitions 0 to {}",
            map.partitions.len().saturating_sub(1)
        )));
    };
    match map.leader(id) {
        Some(leader) => Ok(Json(PartitionLeaderDto {
            member: leader.id.0.clone(),
            epoch: info.epoch.0,
            advertise_address: leader.advertise_address.clone(),
            http_endpoint: leader.http_endpoint.clone(),
            grpc_endpoint: leader.grpc_endpoint.clone(),
            generation: map.generation,
        })),
        None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_leader",
            format!("partition {partition} of group {name:?} has no leader right now"),
        )),
    }
}

/// Query of `GET /v1/groups/{name}/history`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// At most this many, newest first (default 20, at most 1000).
    pub limit: Option<u32>,
}

/// One generation of a group's map.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntryDto {
    /// The generation.
    pub generation: u64,
    /// The store revision it was written at.
    pub revision: i64,
    /// Partitions whose replicas changed.
    pub changed: Vec<u32>,
    /// Partitions whose leader changed.
    pub new_leaders: Vec<u32>,
    /// When the controller wrote it (its wall clock, Unix ms).
    pub written_unix_ms: u64,
}

/// The latest generations.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryDto {
    /// Newest first.
    pub entries: Vec<HistoryEntryDto>,
}

/// `GET /v1/groups/{name}/history?limit=`: the latest generations, newest first.
#[utoipa::path(get, operation_id = "group_history", path = "/v1/groups/{name}/history", tag = "groups",
    params(("name" = String, Path, description = "group name"), HistoryQuery),
    responses(
        (status = 200, description = "the latest generations", body = HistoryDto),
        (status = 400, description = "`invalid_argument`: limit out of range", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody)))]
pub async fn history(
    Caller(state): Caller,
    P(name): P<String>,
    Q(query): Q<HistoryQuery>,
) -> Result<Json<HistoryDto>, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if limit == 0 || limit > MAX_HISTORY {
        return Err(ApiError::invalid(format!(
            "limit must be 1 to {MAX_HISTORY}, not {limit}"
        )));
    }
    let entries = group_of(&state, &name)?.history(limit).await.map_err(failed)?;
    Ok(Json(HistoryDto {
        entries: entries
            .into_iter()
            .map(|e| HistoryEntryDto {
                generation: e.generation,
                revision: e.revision,
                changed: e.changed.into_iter().map(|p| p.0).collect(),
                new_leaders: e.new_leaders.into_iter().map(|p| p.0).collect(),
                written_unix_ms: e.written_unix_ms,
            })
            .collect(),
    }))
}
