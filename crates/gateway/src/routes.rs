//! The route table: every route the router serves, in one list that the OpenAPI
//! document is checked against (`tests/openapi.rs`).

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, MethodRouter};
use axum::Router;

use crate::error::ApiError;
use crate::{etcd, health, metrics, openapi, v1, AppState};

/// The router under construction and the routes it has, as `(method, path)`.
pub struct Routes {
    /// The router (state still to be supplied).
    pub router: Router<AppState>,
    /// Every `(method, path)` served, paths in axum's syntax (`{*key}` for the rest).
    pub table: Vec<(&'static str, &'static str)>,
}

impl Routes {
    fn add(mut self, path: &'static str, methods: &[&'static str], route: MethodRouter<AppState>) -> Routes {
        self.router = self.router.route(path, route);
        self.table.extend(methods.iter().map(|m| (*m, path)));
        self
    }
}

async fn route_not_found() -> impl IntoResponse {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        "no such route: see /openapi.json",
    )
}

async fn method_not_allowed() -> impl IntoResponse {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method: see /openapi.json",
    )
}

/// Builds the router with every route of the gateway.
pub fn build() -> Routes {
    let routes = Routes {
        router: Router::new(),
        table: Vec::new(),
    };
    routes
        // REST API
        .add("/v1/kv", &["GET"], get(v1::kv::list))
        .add(
            "/v1/kv/{*key}",
            &["GET", "PUT", "DELETE"],
            get(v1::kv::get).put(v1::kv::put).delete(v1::kv::delete),
        )
        .add("/v1/txn", &["POST"], post(v1::txn::txn))
        .add("/v1/compact", &["POST"], post(v1::kv::compact))
        .add("/v1/watch", &["GET"], get(v1::watch::watch))
        .add(
            "/v1/leases",
            &["GET", "POST"],
            get(v1::lease::list).post(v1::lease::grant),
        )
        .add(
            "/v1/leases/{id}",
            &["GET", "DELETE"],
            get(v1::lease::get).delete(v1::lease::revoke),
        )
        .add("/v1/leases/{id}/keepalive", &["POST"], post(v1::lease::keepalive))
        .add(
            "/v1/elections/{name}/campaign",
            &["POST"],
            post(v1::election::campaign),
        )
        .add("/v1/elections/{name}/leader", &["GET"], get(v1::election::leader))
        .add(
            "/v1/elections/{name}/observe",
            &["GET"],
            get(v1::election::observe),
        )
        .add(
            "/v1/elections/{name}/resign",
            &["POST"],
            post(v1::election::resign),
        )
        .add(
            "/v1/elections/{name}/candidates",
            &["GET"],
            get(v1::candidates::list),
        )
        .add(
            "/v1/elections/{name}/candidates/observe",
            &["GET"],
            get(v1::candidates::observe),
        )
        .add(
            "/v1/elections/{name}/candidates/{id}/status",
            &["GET"],
            get(v1::candidates::status),
        )
        .add(
            "/v1/elections/{name}/candidates/{id}/ping",
            &["POST"],
            post(v1::candidates::ping),
        )
        .add(
            "/v1/elections/{name}/stepdown",
            &["POST"],
            post(v1::candidates::stepdown),
        )
        .add(
            "/v1/locks/{name}",
            &["POST", "DELETE"],
            post(v1::election::lock).delete(v1::election::unlock),
        )
        .add("/v1/cluster", &["GET"], get(v1::cluster::cluster))
        .add(
            "/v1/groups",
            &["GET", "POST"],
            get(v1::groups::settings::list).post(v1::groups::settings::create),
        )
        .add(
            "/v1/groups/{name}",
            &["GET", "PATCH", "DELETE"],
            get(v1::groups::settings::get)
                .patch(v1::groups::settings::update)
                .delete(v1::groups::settings::delete),
        )
        .add(
            "/v1/groups/{name}/members",
            &["POST"],
            post(v1::groups::members::register),
        )
        .add(
            "/v1/groups/{name}/members/{member}",
            &["DELETE"],
            delete(v1::groups::members::leave),
        )
        .add(
            "/v1/groups/{name}/members/{member}/drain",
            &["POST"],
            post(v1::groups::members::drain),
        )
        .add(
            "/v1/groups/{name}/partitions/{partition}/report",
            &["POST"],
            post(v1::groups::members::report),
        )
        .add(
            "/v1/groups/{name}/partitions/{partition}/leader",
            &["GET"],
            get(v1::groups::routing::partition_leader),
        )
        .add("/v1/groups/{name}/map", &["GET"], get(v1::groups::routing::map))
        .add(
            "/v1/groups/{name}/route",
            &["GET"],
            get(v1::groups::routing::route),
        )
        .add(
            "/v1/groups/{name}/history",
            &["GET"],
            get(v1::groups::routing::history),
        )
        .add("/v1/groups/{name}/watch", &["GET"], get(v1::groups::watch::watch))
        // etcd's JSON gateway
        .add("/v3/kv/range", &["POST"], post(etcd::kv_range))
        .add("/v3/kv/put", &["POST"], post(etcd::kv_put))
        .add("/v3/kv/deleterange", &["POST"], post(etcd::kv_deleterange))
        .add("/v3/kv/txn", &["POST"], post(etcd::kv_txn))
        .add("/v3/kv/compaction", &["POST"], post(etcd::kv_compaction))
        .add("/v3/watch", &["POST"], post(etcd::watch))
        .add("/v3/lease/grant", &["POST"], post(etcd::lease_grant))
        .add("/v3/lease/revoke", &["POST"], post(etcd::lease_revoke))
        .add("/v3/lease/keepalive", &["POST"], post(etcd::lease_keepalive))
        .add("/v3/lease/timetolive", &["POST"], post(etcd::lease_timetolive))
        .add("/v3/lease/leases", &["POST"], post(etcd::lease_leases))
        .add(
            "/v3/maintenance/status",
            &["POST"],
            post(etcd::maintenance_status),
        )
        .add(
            "/v3/cluster/member/list",
            &["POST"],
            post(etcd::cluster_member_list),
        )
        .add("/v3/election/campaign", &["POST"], post(etcd::election_campaign))
        .add("/v3/election/proclaim", &["POST"], post(etcd::election_proclaim))
        .add("/v3/election/leader", &["POST"], post(etcd::election_leader))
        .add("/v3/election/observe", &["POST"], post(etcd::election_observe))
        .add("/v3/election/resign", &["POST"], post(etcd::election_resign))
        .add("/v3/lock/lock", &["POST"], post(etcd::lock_lock))
        .add("/v3/lock/unlock", &["POST"], post(etcd::lock_unlock))
        .add("/v3/auth/authenticate", &["POST"], post(etcd::auth::authenticate))
        .add("/v3/auth/enable", &["POST"], post(etcd::auth::enable))
        .add("/v3/auth/disable", &["POST"], post(etcd::auth::disable))
        .add("/v3/auth/status", &["POST"], post(etcd::auth::status))
        .add("/v3/auth/user/add", &["POST"], post(etcd::auth::user_add))
        .add("/v3/auth/user/get", &["POST"], post(etcd::auth::user_get))
        .add("/v3/auth/user/list", &["POST"], post(etcd::auth::user_list))
        .add("/v3/auth/user/delete", &["POST"], post(etcd::auth::user_delete))
        .add(
            "/v3/auth/user/changepw",
            &["POST"],
            post(etcd::auth::user_change_password),
        )
        .add(
            "/v3/auth/user/grant",
            &["POST"],
            post(etcd::auth::user_grant_role),
        )
        .add(
            "/v3/auth/user/revoke",
            &["POST"],
            post(etcd::auth::user_revoke_role),
        )
        .add("/v3/auth/role/add", &["POST"], post(etcd::auth::role_add))
        .add("/v3/auth/role/get", &["POST"], post(etcd::auth::role_get))
        .add("/v3/auth/role/list", &["POST"], post(etcd::auth::role_list))
        .add("/v3/auth/role/delete", &["POST"], post(etcd::auth::role_delete))
        .add(
            "/v3/auth/role/grant",
            &["POST"],
            post(etcd::auth::role_grant_permission),
        )
        .add(
            "/v3/auth/role/revoke",
            &["POST"],
            post(etcd::auth::role_revoke_permission),
        )
        // operations
        .add("/livez", &["GET"], get(health::livez))
        .add("/healthz", &["GET"], get(health::healthz))
        .add("/readyz", &["GET"], get(health::readyz))
        .add("/metrics", &["GET"], get(metrics::render))
        .add("/openapi.json", &["GET"], get(openapi::document))
        .fallback()
}

impl Routes {
    fn fallback(mut self) -> Routes {
        self.router = self
            .router
            .fallback(route_not_found)
            .method_not_allowed_fallback(method_not_allowed);
        self
    }
}

/// Every `(method, path)` the gateway serves.
pub fn table() -> Vec<(&'static str, &'static str)> {
    build().table
}
