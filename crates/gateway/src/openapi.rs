//! `/openapi.json`: the OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` annotations and the DTOs' `ToSchema` derives, so it describes what
//! the code does. `tests/openapi.rs` checks that it lists exactly the router's routes.

use axum::Json;
use utoipa::OpenApi;

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Conclave HTTP gateway",
        description = "REST/JSON API over a Conclave (etcd v3 compatible) cluster, and etcd's JSON gateway paths. Keys and values are UTF-8 strings unless ?encoding=base64. Errors: {\"error\", \"code\"} (REST) or {\"error\", \"message\", \"code\"} (etcd paths)."
    ),
    paths(
        crate::v1::kv::list,
        crate::v1::kv::get,
        crate::v1::kv::put,
        crate::v1::kv::delete,
        crate::v1::kv::compact,
        crate::v1::txn::txn,
        crate::v1::watch::watch,
        crate::v1::lease::list,
        crate::v1::lease::grant,
        crate::v1::lease::get,
        crate::v1::lease::revoke,
        crate::v1::lease::keepalive,
        crate::v1::election::campaign,
        crate::v1::election::leader,
        crate::v1::election::observe,
        crate::v1::election::resign,
        crate::v1::election::lock,
        crate::v1::election::unlock,
        crate::v1::cluster::cluster,
        crate::v1::groups::settings::create,
        crate::v1::groups::settings::list,
        crate::v1::groups::settings::get,
        crate::v1::groups::settings::update,
        crate::v1::groups::settings::delete,
        crate::v1::groups::members::register,
        crate::v1::groups::members::leave,
        crate::v1::groups::members::drain,
        crate::v1::groups::members::report,
        crate::v1::groups::routing::map,
        crate::v1::groups::routing::route,
        crate::v1::groups::routing::partition_leader,
        crate::v1::groups::routing::history,
        crate::v1::groups::watch::watch,
        crate::etcd::doc::kv_range,
        crate::etcd::doc::kv_put,
        crate::etcd::doc::kv_deleterange,
        crate::etcd::doc::kv_txn,
        crate::etcd::doc::kv_compaction,
        crate::etcd::doc::watch,
        crate::etcd::doc::lease_grant,
        crate::etcd::doc::lease_revoke,
        crate::etcd::doc::lease_keepalive,
        crate::etcd::doc::lease_timetolive,
        crate::etcd::doc::lease_leases,
        crate::v1::candidates::list,
        crate::v1::candidates::observe,
        crate::v1::candidates::status,
        crate::v1::candidates::ping,
        crate::v1::candidates::stepdown,
        crate::etcd::doc::maintenance_status,
        crate::etcd::doc::cluster_member_list,
        crate::etcd::doc::election_campaign,
        crate::etcd::doc::election_proclaim,
        crate::etcd::doc::election_leader,
        crate::etcd::doc::election_observe,
        crate::etcd::doc::election_resign,
        crate::etcd::doc::lock_lock,
        crate::etcd::doc::lock_unlock,
        crate::etcd::auth::doc::authenticate,
        crate::etcd::auth::doc::enable,
        crate::etcd::auth::doc::disable,
        crate::etcd::auth::doc::status,
        crate::etcd::auth::doc::user_add,
        crate::etcd::auth::doc::user_get,
        crate::etcd::auth::doc::user_list,
        crate::etcd::auth::doc::user_delete,
        crate::etcd::auth::doc::user_change_password,
        crate::etcd::auth::doc::user_grant_role,
        crate::etcd::auth::doc::user_revoke_role,
        crate::etcd::auth::doc::role_add,
        crate::etcd::auth::doc::role_get,
        crate::etcd::auth::doc::role_list,
        crate::etcd::auth::doc::role_delete,
        crate::etcd::auth::doc::role_grant_permission,
        crate::etcd::auth::doc::role_revoke_permission,
        crate::health::livez,
        crate::health::healthz,
        crate::health::readyz,
        crate::metrics::render,
        document,
    ),
    // Bodies that only Server-Sent Events carry (the paths name the others).
    components(schemas(
        crate::v1::groups::MapDto,
        crate::v1::groups::watch::ChangeEvent,
        crate::v1::groups::watch::MembersEvent,
        crate::v1::candidates::CandidatesDto,
    )),
    tags(
        (name = "kv", description = "keys, listing, transactions, compaction"),
        (name = "watch", description = "changes as Server-Sent Events"),
        (name = "leases", description = "leases the HTTP client keeps alive"),
        (name = "elections", description = "leader election with fencing epochs"),
        (name = "locks", description = "locks with fencing epochs"),
        (name = "cluster", description = "members and their health"),
        (name = "groups", description = "partition groups: settings, members under client-kept leases, the map (also as Server-Sent Events), reports, routing"),
        (name = "etcd", description = "etcd's JSON gateway paths (etcd's JSON mapping)"),
        (name = "operations", description = "health, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "this document", content_type = "application/json")))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
