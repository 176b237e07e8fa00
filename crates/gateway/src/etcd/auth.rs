//! etcd's `/v3/auth/*` JSON paths: Authenticate (the token for `Authorization`), auth
//! enable/disable/status, users, roles and their permissions. Each call is sent with the
//! caller's token, so the members decide who may manage users (etcd's rule: `root`).

use std::future::Future;

use axum::Json;
use conclave_client::{Channel, Idempotency};
use conclave_proto::authpb;
use conclave_proto::etcdserverpb::auth_client::AuthClient;
use conclave_proto::etcdserverpb::{self as pb};
use serde_json::Value;
use tonic::Status;

use super::json::{header, header_only, Fields, Obj};
use super::{unary, Answer};
use crate::auth::Caller;
use crate::error::EtcdError;
use crate::extract::EtcdJson;
use crate::AppState;

/// Sends `request` through `send` on the Auth service under the SDK's failover rule.
async fn call<Req, Resp, F, Fut>(
    state: &AppState,
    idempotency: Idempotency,
    request: Req,
    send: F,
) -> Result<Resp, EtcdError>
where
    Req: Clone,
    F: Fn(AuthClient<Channel>, Req) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    unary(state, idempotency, |channel| {
        send(AuthClient::new(channel), request.clone())
    })
    .await
}

/// `POST /v3/auth/authenticate`: `{"name", "password"}` → `{"header", "token"}`.
pub async fn authenticate(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let f = Fields::of(&body)?;
    let request = pb::AuthenticateRequest {
        name: f.string("name")?,
        password: f.string("password")?,
    };
    let r = call(&state, Idempotency::Idempotent, request, |mut c, r| async move {
        c.authenticate(r).await
    })
    .await?;
    Ok(Json(
        Obj::new()
            .message("header", header(r.header.as_ref()))
            .string("token", &r.token)
            .done(),
    ))
}

/// `POST /v3/auth/enable`.
pub async fn enable(Caller(state): Caller) -> Answer {
    let r = call(
        &state,
        Idempotency::Idempotent,
        pb::AuthEnableRequest {},
        |mut c, r| async move { c.auth_enable(r).await },
    )
    .await?;
    Ok(Json(header_only(r.header.as_ref())))
}

/// `POST /v3/auth/disable`.
pub async fn disable(Caller(state): Caller) -> Answer {
    let r = call(
        &state,
        Idempotency::Idempotent,
        pb::AuthDisableRequest {},
        |mut c, r| async move { c.auth_disable(r).await },
    )
    .await?;
    Ok(Json(header_only(r.header.as_ref())))
}

/// `POST /v3/auth/status` → `{"header", "enabled", "authRevision"}`.
pub async fn status(Caller(state): Caller) -> Answer {
    let r = call(
        &state,
        Idempotency::Idempotent,
        pb::AuthStatusRequest {},
        |mut c, r| async move { c.auth_status(r).await },
    )
    .await?;
    Ok(Json(
        Obj::new()
            .message("header", header(r.header.as_ref()))
            .bool("enabled", r.enabled)
            .u64("authRevision", r.auth_revision)
            .done(),
    ))
}

/// `POST /v3/auth/user/add`: `{"name", "password", "options": {"no_password"}}`.
pub async fn user_add(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let f = Fields::of(&body)?;
    let options = match f.message("options")? {
        Some(o) => Some(authpb::UserAddOptions {
            no_password: o.bool("no_password")?,
        }),
        None => None,
    };
    let request = pb::AuthUserAddRequest {
        name: f.string("name")?,
        password: f.string("password")?,
        options,
        hashed_password: f.string("hashedPassword")?,
    };
    let r = call(
        &state,
        Idempotency::NonIdempotent,
        request,
        |mut c, r| async move { c.user_add(r).await },
    )
    .await?;
    Ok(Json(header_only(r.header.as_ref())))
}

/// `POST /v3/auth/user/get`: `{"name"}` → `{"header", "roles"}`.
pub async fn user_get(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let request = pb::AuthUserGetRequest {
        name: Fields::of(&body)?.string("name")?,
    };
    let r = call(&state, Idempotency::Idempotent, request, |mut c, r| async move {
        c.user_get(r).await
    })
    .await?;
    Ok(Json(
        Obj::new()
            .message("header", header(r.header.as_ref()))
            .strings("roles", &r.roles)
            .done(),
    ))
}

/// `POST /v3/auth/user/list` → `{"header", "users"}`.
pub async fn user_list(Caller(state): Caller) -> Answer {
    let r = call(
        &state,
        Idempotency::Idempotent,
        pb::AuthUserListRequest {},
        |mut c, r| async move { c.user_list(r).await },
    )
    .await?;
    Ok(Json(
        Obj::new()
            .message("header", header(r.header.as_ref()))
            .strings("users", &r.users)
            .done(),
    ))
}

/// `POST /v3/auth/user/delete`: `{"name"}`.
pub async fn user_delete(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let request = pb::AuthUserDeleteRequest {
        name: Fields::of(&body)?.string("name")?,
    };
    let r = call(
        &state,
        Idempotency::NonIdempotent,
        request,
        |mut c, r| async move { c.user_delete(r).await },
    )
    .await?;
    Ok(Json(header_only(r.header.as_ref())))
}

/// `POST /v3/auth/user/changepw`: `{"name", "password"}`.
pub async fn user_change_password(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let f = Fields::of(&body)?;
    let request = pb::AuthUserChangePasswordRequest {
        name: f.string("name")?,
        password: f.string("password")?,
        hashed_password: f.string("hashedPassword")?,
    };
    let r = call(&state, Idempotency::Idempotent, request, |mut c, r| async move {
        c.user_change_password(r).await
    })
    .await?;
    Ok(Json(header_only(r.header.as_ref())))
}

/// `POST /v3/auth/user/grant`: `{"user", "role"}`.
pub async fn user_grant_role(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let f = Fields::of(&body)?;
    let request = pb::AuthUserGrantRoleRequest {
        user: f.string("user")?,
        role: f.string("role")?,
    };
    let r = call(&state, Idempotency::Idempotent, request, |mut c, r| async move {
        c.user_grant_role(r).await
    })
    .await?;
    Ok(Json(header_only(r.header.as_ref())))
}

/// `POST /v3/auth/user/revoke`: `{"name", "role"}`.
pub async fn user_revoke_role(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let f = Fields::of(&body)?;
    let request = pb::AuthUserRevokeRoleRequest {
        name: f.string("name")?,
        role: f.string("role")?,
    };
    let r = call(
        &state,
        Idempotency::NonIdempotent,
        request,
        |mut c, r| async move { c.user_revoke_role(r).await },
    )
    .await?;
    Ok(Json(header_only(r.header.as_ref())))
}

/// `POST /v3/auth/role/add`: `{"name"}`.
pub async fn role_add(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let request = pb::AuthRoleAddRequest {
        name: Fields::of(&body)?.string("name")?,
    };
    let r = call(
        &state,
        Idempotency::NonIdempotent,
        request,
        |mut c, r| async move { c.role_add(r).await },
    )
    .await?;
    Ok(Json(header_only(r.header.as_ref())))
}

/// `authpb.Permission` in etcd's JSON mapping.
fn permission(p: &authpb::Permission) -> Value {
    let kind = authpb::permission::Type::try_from(p.perm_type).map_or("READ", |t| t.as_str_name());
    Obj::new()
        .enumeration("permType", kind, "READ")
        .bytes("key", &p.key)
        .bytes("range_end", &p.range_end)
        .done()
}

/// `POST /v3/auth/role/get`: `{"role"}` → `{"header", "perm": [{"permType", "key",
/// "range_end"}]}`.
pub async fn role_get(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let request = pb::AuthRoleGetRequest {
        role: Fields::of(&body)?.string("role")?,
    };
    let r = call(&state, Idempotency::Idempotent, request, |mut c, r| async move {
        c.role_get(r).await
    })
    .await?;
    Ok(Json(
        Obj::new()
            .message("header", header(r.header.as_ref()))
            .messages("perm", r.perm.iter().map(permission).collect())
            .done(),
    ))
}

/// `POST /v3/auth/role/list` → `{"header", "roles"}`.
pub async fn role_list(Caller(state): Caller) -> Answer {
    let r = call(
        &state,
        Idempotency::Idempotent,
        pb::AuthRoleListRequest {},
        |mut c, r| async move { c.role_list(r).await },
    )
    .await?;
    Ok(Json(
        Obj::new()
            .message("header", header(r.header.as_ref()))
            .strings("roles", &r.roles)
            .done(),
    ))
}

/// `POST /v3/auth/role/delete`: `{"role"}`.
pub async fn role_delete(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let request = pb::AuthRoleDeleteRequest {
        role: Fields::of(&body)?.string("role")?,
    };
    let r = call(
        &state,
        Idempotency::NonIdempotent,
        request,
        |mut c, r| async move { c.role_delete(r).await },
    )
    .await?;
    Ok(Json(header_only(r.header.as_ref())))
}

/// `POST /v3/auth/role/grant`: `{"name", "perm": {"permType", "key", "range_end"}}`.
pub async fn role_grant_permission(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let f = Fields::of(&body)?;
    let perm = match f.message("perm")? {
        Some(p) => Some(authpb::Permission {
            perm_type: p.enumeration("permType", |name| {
                authpb::permission::Type::from_str_name(name).map(|t| t as i32)
            })?,
            key: p.bytes("key")?,
            range_end: p.bytes("range_end")?,
        }),
        None => None,
    };
    let request = pb::AuthRoleGrantPermissionRequest {
        name: f.string("name")?,
        perm,
    };
    let r = call(&state, Idempotency::Idempotent, request, |mut c, r| async move {
        c.role_grant_permission(r).await
    })
    .await?;
    Ok(Json(header_only(r.header.as_ref())))
}

/// `POST /v3/auth/role/revoke`: `{"role", "key", "range_end"}`.
pub async fn role_revoke_permission(Caller(state): Caller, EtcdJson(body): EtcdJson<Value>) -> Answer {
    let f = Fields::of(&body)?;
    let request = pb::AuthRoleRevokePermissionRequest {
        role: f.string("role")?,
        key: f.bytes("key")?,
        range_end: f.bytes("range_end")?,
    };
    let r = call(
        &state,
        Idempotency::NonIdempotent,
        request,
        |mut c, r| async move { c.role_revoke_permission(r).await },
    )
    .await?;
    Ok(Json(header_only(r.header.as_ref())))
}

/// OpenAPI stubs of the `/v3/auth` paths.
pub mod doc {
    etcd_path!(
        authenticate,
        "/v3/auth/authenticate",
        "etcd",
        "Auth.Authenticate: `{name, password}` → `{token}`, for `Authorization: Bearer <token>`"
    );
    etcd_path!(enable, "/v3/auth/enable", "etcd", "Auth.AuthEnable");
    etcd_path!(disable, "/v3/auth/disable", "etcd", "Auth.AuthDisable");
    etcd_path!(status, "/v3/auth/status", "etcd", "Auth.AuthStatus");
    etcd_path!(user_add, "/v3/auth/user/add", "etcd", "Auth.UserAdd");
    etcd_path!(user_get, "/v3/auth/user/get", "etcd", "Auth.UserGet");
    etcd_path!(user_list, "/v3/auth/user/list", "etcd", "Auth.UserList");
    etcd_path!(user_delete, "/v3/auth/user/delete", "etcd", "Auth.UserDelete");
    etcd_path!(
        user_change_password,
        "/v3/auth/user/changepw",
        "etcd",
        "Auth.UserChangePassword"
    );
    etcd_path!(
        user_grant_role,
        "/v3/auth/user/grant",
        "etcd",
        "Auth.UserGrantRole"
    );
    etcd_path!(
        user_revoke_role,
        "/v3/auth/user/revoke",
        "etcd",
        "Auth.UserRevokeRole"
    );
    etcd_path!(role_add, "/v3/auth/role/add", "etcd", "Auth.RoleAdd");
    etcd_path!(role_get, "/v3/auth/role/get", "etcd", "Auth.RoleGet");
    etcd_path!(role_list, "/v3/auth/role/list", "etcd", "Auth.RoleList");
    etcd_path!(role_delete, "/v3/auth/role/delete", "etcd", "Auth.RoleDelete");
    etcd_path!(
        role_grant_permission,
        "/v3/auth/role/grant",
        "etcd",
        "Auth.RoleGrantPermission"
    );
    etcd_path!(
        role_revoke_permission,
        "/v3/auth/role/revoke",
        "etcd",
        "Auth.RoleRevokePermission"
    );
}
