//! Health endpoints for load balancers and orchestrators.
//!
//! - `/livez` (and `/healthz`): the process is alive and serving HTTP. Never fails
//!   because the cluster is unreachable or has lost quorum: restarting a gateway cannot
//!   fix that.
//! - `/readyz`: a member answers a linearizable read within `--ready-budget` (1 s). The
//!   result is reused for `--ready-cache` (250 ms), and concurrent probes share one
//!   read, so probes from many load balancers do not load the cluster. While draining it
//!   answers **404** (HAProxy's `http-check disable-on-404` then stops sending new
//!   traffic without marking the gateway down). `?verbose` lists each check as text.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use conclave_client::kv::Get;
use conclave_client::Error;
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::AppState;

/// The last readiness result and when it was taken.
#[derive(Debug, Default)]
pub struct ReadyCache {
    last: Mutex<Option<(Instant, Result<Duration, String>)>>,
}

impl ReadyCache {
    /// The cached result if fresh, else a new linearizable read bounded by `budget`.
    /// Concurrent callers wait for one read.
    pub async fn check(&self, state: &AppState) -> Result<Duration, String> {
        let mut last = self.last.lock().await;
        if let Some((at, result)) = last.as_ref() {
            if at.elapsed() < state.config.ready_cache() {
                return result.clone();
            }
        }
        let started = Instant::now();
        let budget = state.config.ready_budget();
        // etcdctl's health check reads the key `health`; any linearizable read proves
        // a leader and a quorum. With auth enabled the gateway's own client has no user
        // and the read is refused before any quorum is asked; a linearizable member
        // list proves the same and needs no user.
        let probe = async {
            match state.client.range(Get::key("health").count_only()).await {
                Err(Error::AuthRequired | Error::PermissionDenied | Error::InvalidToken { .. }) => {
                    state.client.member_list().await.map(|_| ())
                }
                other => other.map(|_| ()),
            }
        };
        let read = tokio::time::timeout(budget, probe).await;
        let result = match read {
            Ok(Ok(_)) => Ok(started.elapsed()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no linearizable read within {budget:?}")),
        };
        *last = Some((Instant::now(), result.clone()));
        result
    }
}

/// `?verbose` on the health endpoints.
#[derive(Debug, Default, Deserialize)]
pub struct Verbose {
    verbose: Option<String>,
}

/// `GET /livez`: the process is alive.
#[utoipa::path(get, path = "/livez", tag = "operations",
    responses((status = 200, description = "alive", content_type = "text/plain")))]
pub async fn livez() -> &'static str {
    "ok"
}

/// `GET /healthz`: the same as `/livez`.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "alive", content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz[?verbose]`: ready to serve (a linearizable read succeeds), 503 if not,
/// 404 while draining.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    params(("verbose" = Option<String>, Query, description = "list each check")),
    responses(
        (status = 200, description = "ready", content_type = "text/plain"),
        (status = 404, description = "draining (shutting down): take out of rotation", content_type = "text/plain"),
        (status = 503, description = "no member answered a linearizable read in time", content_type = "text/plain")))]
pub async fn readyz(State(state): State<AppState>, Query(verbose): Query<Verbose>) -> Response {
    let verbose = verbose.verbose.is_some();
    if state.drain.is_draining() {
        let text = if verbose {
            "[-]draining: shutting down\nreadyz check failed\n"
        } else {
            "draining\n"
        };
        return (StatusCode::NOT_FOUND, text).into_response();
    }
    let read = state.ready.check(&state).await;
    let (status, text) = match &read {
        Ok(took) if verbose => (
            StatusCode::OK,
            format!("[+]draining ok\n[+]linearizable-read ok ({took:?})\nreadyz check passed\n"),
        ),
        Ok(_) => (StatusCode::OK, "ok\n".to_string()),
        Err(error) if verbose => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("[+]draining ok\n[-]linearizable-read failed: {error}\nreadyz check failed\n"),
        ),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {error}\n")),
    };
    (status, text).into_response()
}
