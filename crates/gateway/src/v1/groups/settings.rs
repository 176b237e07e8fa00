//! The groups themselves: create, list, read, change settings, delete.

use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{failed, group_of, GroupDto, SettingsDto};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, P};

/// Body of `POST /v1/groups`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateGroupBody {
    /// The group's name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// Its settings (any left out take the defaults).
    #[serde(flatten)]
    pub settings: SettingsDto,
}

/// Every group.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    /// The groups, with every setting.
    pub groups: Vec<GroupDto>,
}

/// A deletion's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupDeleted {
    /// Whether this call deleted it (false: it went meanwhile, deleted by someone else).
    pub deleted: bool,
}

/// `POST /v1/groups`: creates a group.
#[utoipa::path(post, operation_id = "group_create", path = "/v1/groups", tag = "groups",
    request_body = CreateGroupBody,
    responses(
        (status = 201, description = "created, with every setting", body = GroupDto),
        (status = 400, description = "`invalid_argument`: a bad name or a setting out of range (the message says which)", body = ErrorBody),
        (status = 409, description = "`already_exists`: the name is taken", body = ErrorBody),
        (status = 504, description = "`outcome_unknown`: it may have been created: read it", body = ErrorBody)))]
pub async fn create(
    Caller(state): Caller,
    JsonBody(body): JsonBody<CreateGroupBody>,
) -> Result<(StatusCode, Json<GroupDto>), ApiError> {
    let group = group_of(&state, &body.name)?;
    let settings = body.settings.to_settings()?;
    let created = group.create(settings).await.map_err(failed)?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// `GET /v1/groups`: every group.
#[utoipa::path(get, operation_id = "group_list", path = "/v1/groups", tag = "groups",
    responses((status = 200, description = "the groups", body = GroupList)))]
pub async fn list(Caller(state): Caller) -> Result<Json<GroupList>, ApiError> {
    let groups = state.client.groups().await.map_err(failed)?;
    Ok(Json(GroupList {
        groups: groups.into_iter().map(GroupDto::from).collect(),
    }))
}

/// `GET /v1/groups/{name}`: a group's settings.
#[utoipa::path(get, operation_id = "group_get", path = "/v1/groups/{name}", tag = "groups",
    params(("name" = String, Path, description = "group name")),
    responses(
        (status = 200, description = "the group", body = GroupDto),
        (status = 404, description = "`not_found`", body = ErrorBody)))]
pub async fn get(Caller(state): Caller, P(name): P<String>) -> Result<Json<GroupDto>, ApiError> {
    let info = group_of(&state, &name)?.get().await.map_err(failed)?;
    Ok(Json(info.into()))
}

/// `PATCH /v1/groups/{name}`: changes the settings given (not the partition count).
#[utoipa::path(patch, operation_id = "group_update", path = "/v1/groups/{name}", tag = "groups",
    params(("name" = String, Path, description = "group name")),
    request_body = SettingsDto,
    responses(
        (status = 200, description = "the group as it is now", body = GroupDto),
        (status = 400, description = "`invalid_argument`: a setting out of range", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`failed_precondition`: a different partition count, more replicas than registered members, or a concurrent change", body = ErrorBody)))]
pub async fn update(
    Caller(state): Caller,
    P(name): P<String>,
    JsonBody(body): JsonBody<SettingsDto>,
) -> Result<Json<GroupDto>, ApiError> {
    let group = group_of(&state, &name)?;
    let updated = group.update(body.to_settings()?).await.map_err(failed)?;
    Ok(Json(updated.into()))
}

/// `DELETE /v1/groups/{name}`: deletes a group, its members and its map (watchers get
/// an `error` event and their stream ends).
#[utoipa::path(delete, operation_id = "group_delete", path = "/v1/groups/{name}", tag = "groups",
    params(("name" = String, Path, description = "group name")),
    responses(
        (status = 200, description = "deleted", body = GroupDeleted),
        (status = 404, description = "`not_found`", body = ErrorBody)))]
pub async fn delete(Caller(state): Caller, P(name): P<String>) -> Result<Json<GroupDeleted>, ApiError> {
    let deleted = group_of(&state, &name)?.delete().await.map_err(failed)?;
    Ok(Json(GroupDeleted { deleted }))
}
